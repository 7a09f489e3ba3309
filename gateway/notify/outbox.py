"""The development channel: one JSON object a line in a file (the only place codes are clear)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

from gateway.notify.base import Message


class OutboxNotifier:
    """Appends `{to, channel, purpose, imei, code, sent_at}` lines to `path`."""

    channel = "outbox"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = asyncio.Lock()

    async def send(self, message: Message) -> None:
        line = json.dumps({
            "to": message.to,
            "channel": message.kind,
            "purpose": message.purpose,
            "imei": message.imei,
            "code": message.code,
            "sent_at": datetime.now(UTC).isoformat(),
        })
        async with self._lock:
            await asyncio.to_thread(self._append, line)

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
