"""Where the browser tests find their browser, and what to do when it is not there.

The browser tests drive Debian's Chromium through Playwright (`playwright install` downloads a
browser build of its own, which CI machines may not reach). `GATEWAY_TEST_CHROMIUM` points them
at another Chromium or Chrome binary.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DEFAULT_CHROMIUM = "/usr/bin/chromium"


def chromium_executable() -> Path:
    """The Chromium binary the browser tests drive; fails the test (never skips it) with what
    to install when it is missing."""
    path = Path(os.environ.get("GATEWAY_TEST_CHROMIUM") or DEFAULT_CHROMIUM)
    if path.is_file() and os.access(path, os.X_OK):
        return path
    pytest.fail(
        f"the browser tests need Chromium at {path}, and there is none: install it with "
        "`apt-get install chromium` (Debian, Ubuntu), or point GATEWAY_TEST_CHROMIUM at a "
        "Chromium or Chrome binary; `.ci/run` installs it", pytrace=False)
