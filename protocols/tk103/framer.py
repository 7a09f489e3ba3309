"""TCP framing for tk103: `(` ... `)`, where a `)` inside `$...$` free text does not end a frame."""

from __future__ import annotations

from protocols.framing import DEFAULT_MAX_FRAME_BYTES, RESTART, BoundedFramer, FramerOutput


class Tk103Framer(BoundedFramer):
    """Cuts a tk103 byte stream into `(...)` frames.

    A frame starts at `(` (anything before it is garbage) and ends at the first `)` preceded by an
    even number of `$` since the frame start: ZC03 command results carry free text between `$`
    signs, and that text may hold `(` and `)` (`minute(s)`). Frames may contain CR/LF (cell
    lists, ZC03). A `(` outside such text while a frame is open starts a new frame: the open one
    is reported as Discarded.
    """

    __slots__ = ("_last_dollars", "_last_scanned", "_last_start", "_resume", "_resume_dollars")

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        super().__init__(max_frame_bytes)
        # Where the scan of a frame left off in the previous feed (offset from the frame start,
        # 0 = none) and how many `$` it had seen: an unfinished frame fed a few bytes at a time
        # is then scanned once overall, not once per feed.
        self._resume = 0
        self._resume_dollars = 0
        self._last_start = -1
        self._last_scanned = 0
        self._last_dollars = 0

    def feed(self, data: bytes) -> list[FramerOutput]:
        """Add bytes; return the frames now complete, and what was discarded on the way."""
        total = len(self._buf) + len(data)
        self._last_start = -1
        out = super().feed(data)
        kept = len(self._buf)
        if kept and self._last_start == total - kept:
            # The unfinished frame the last scan stopped in is the one kept, now at offset 0.
            self._resume = self._last_scanned
            self._resume_dollars = self._last_dollars
        else:
            self._resume = 0
        return out

    def _find_start(self, buf: bytes, pos: int) -> int:
        return buf.find(b"(", pos)

    def _find_end(self, buf: bytes, start: int) -> int:
        if start == 0 and self._resume:
            scanned = self._resume
            dollars = self._resume_dollars
            self._resume = 0
        else:
            scanned = start + 1
            dollars = 0
        while True:
            close = buf.find(b")", scanned)
            # A `(` outside `$...$` text before the close starts the next frame: this one lost
            # its `)` (a device sent a full-width `）`, or the line dropped bytes). It is
            # discarded and the next frame kept, instead of both being swallowed as one.
            opening = buf.find(b"(", scanned, close if close >= 0 else len(buf))
            while opening >= 0:
                if (dollars + buf.count(b"$", scanned, opening)) % 2 == 0:
                    self._restart_at = opening
                    return RESTART
                opening = buf.find(b"(", opening + 1, close if close >= 0 else len(buf))
            if close < 0:
                self._last_start = start
                self._last_scanned = scanned - start
                self._last_dollars = dollars
                return -1
            dollars += buf.count(b"$", scanned, close)
            if dollars % 2 == 0:
                return close + 1
            scanned = close + 1
