"""`python -m simulators ...` is `trackersim ...`."""

import sys

from simulators.cli import main

sys.exit(main())
