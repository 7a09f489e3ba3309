"""CPU time of the per-commit hooks (`Gateway.on_stored`) that commands and alarms added, for
the frame every device sends most: one position, no alarm, no command answer.

    python bench/on_stored.py [--items 1000000]

Measures `CommandService.stored` and `AlarmNotifier.stored` alone (they only look at the
item's events; the work they start is for alarms and answers, which are rare), against an
empty loop over the same items for reference.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.config import AlarmSettings, CommandSettings, NotifySettings
from gateway.outbound.alarms import AlarmNotifier
from gateway.outbound.commands import CommandService
from gateway.store.ingest import IngestItem
from protocols import Position


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    args = parser.parse_args()
    now = datetime.now(UTC)
    item = IngestItem("359586010001234", "gl300", "192.0.2.1", now, b"frame",
                      (Position("359586010001234", now, True, 52.5, 13.4),))
    items = [item] * args.items
    commands = CommandService(None, CommandSettings(), instance="bench")  # type: ignore[arg-type]
    alarms = AlarmNotifier(None, AlarmSettings(), NotifySettings(), None,  # type: ignore[arg-type]
                           public_url="http://127.0.0.1:8000")

    def run(hook: object) -> float:
        started = time.process_time()
        if hook is None:
            for _one in items:
                pass
        else:
            stored = hook  # bound method
            for one in items:
                stored(one)  # type: ignore[operator]
        return (time.process_time() - started) / len(items) * 1e9

    base = run(None)
    for name, hook in (("CommandService.stored", commands.stored),
                       ("AlarmNotifier.stored", alarms.stored)):
        print(f"{name}: {run(hook) - base:.0f} ns per position item "
              f"(loop overhead {base:.0f} ns subtracted)")


if __name__ == "__main__":
    main()
