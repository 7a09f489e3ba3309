"""The development channel: one JSON object a line in a file (the only place codes are clear)."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from gateway.notify.base import Message


class OutboxNotifier:
    """Appends `{to, channel, purpose, imei, code, until, alarm, at, text, sent_at}` lines to
    `path`."""

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
            "until": message.until.isoformat() if message.until else None,
            "alarm": message.alarm,
            "at": message.at.isoformat() if message.at else None,
            "text": message.body,
            "sent_at": datetime.now(UTC).isoformat(),
        })
        async with self._lock:
            await asyncio.to_thread(self._append, line)

    def _append(self, line: str) -> None:
        # Owner-only: the file holds codes in clear.
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
