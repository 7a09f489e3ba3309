"""TCP framing for gps103: a frame ends at `;`, `*` or a line feed, terminator included."""

from __future__ import annotations

import re

from protocols.framing import BoundedFramer

# Where a frame may begin: a report or login (`imei:`, `##,`), or the digits of a bare-IMEI
# heartbeat. A start cut off at the end of the buffer (`im`, `#`) is kept so that the rest of it
# can arrive in the next chunk.
_START = re.compile(rb"imei:|##,|[0-9]|(?:i|im|ime|imei|#|##)\Z")

# The device ends a frame with `;` (reports, login, heartbeat), `*` (the alternative format) or a
# line break. `\r\n` and `\n` give the same frame, so looking for `\n` alone is enough; the
# earliest terminator wins, as the shortest frame does in Traccar's delimiter decoder.
_END = re.compile(rb"[;*\n]")


class Gps103Framer(BoundedFramer):
    """Splits a gps103 TCP stream into frames, terminators kept (`*` selects a format)."""

    __slots__ = ()

    def _find_start(self, buf: bytes, pos: int) -> int:
        match = _START.search(buf, pos)
        return match.start() if match else -1

    def _find_end(self, buf: bytes, start: int) -> int:
        match = _END.search(buf, start)
        return match.end() if match else -1
