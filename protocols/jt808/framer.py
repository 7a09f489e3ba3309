"""TCP framing for JT/T 808: `7E ... 7E` binary frames, and Jimi `( ... )` text results.

Frames are handed on as they came over the wire (still byte-stuffed): the session un-stuffs
them, so the gateway keeps and shows the bytes the device really sent, and the simulated device
writes exactly what the framer cut. Bytes before a frame (a `$$` some units send first) are
reported as discarded. Two delimiters in a row (`7E 7E`, after a lost byte) resynchronise: the
second one starts the next frame.

Each byte is searched once: when a frame is incomplete at the end of a feed, the next feed
continues the search for its closing byte where the last one stopped.
"""

from __future__ import annotations

from protocols.framing import DEFAULT_MAX_FRAME_BYTES, BoundedFramer, FramerOutput

_DELIMITER = 0x7E


class Jt808Framer(BoundedFramer):
    """Cuts a JT/T 808 stream into wire frames (see the module docstring)."""

    __slots__ = ("_delimiter", "_resume")

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        super().__init__(max_frame_bytes)
        #: How far the unfinished frame kept at the start of the buffer was already searched.
        self._resume = 0
        #: Within one feed: the first 0x7E at or after the last start searched (-1: none left),
        #: so that a run of text frames does not search the rest of the buffer for each.
        self._delimiter: int | None = None

    def feed(self, data: bytes) -> list[FramerOutput]:
        """Add bytes; return the frames now complete, and what was discarded on the way."""
        self._delimiter = None
        out = super().feed(data)
        # Whatever is kept is an unfinished frame whose whole length was searched for its end.
        self._resume = len(self._buf)
        return out

    def _find_start(self, buf: bytes, pos: int) -> int:
        delimiter = self._delimiter
        if delimiter is None or 0 <= delimiter < pos:
            delimiter = self._delimiter = buf.find(b"\x7e", pos)
        text = buf.find(b"(", pos, delimiter if delimiter >= 0 else len(buf))
        return text if text >= 0 else delimiter

    def _find_end(self, buf: bytes, start: int) -> int:
        search = start + 1
        if start == 0 and self._resume > 1:
            search = self._resume
        self._resume = 0
        if buf[start] == _DELIMITER:
            end = buf.find(b"\x7e", search)
            if end < 0:
                return -1
            # `7E 7E`: the end of a frame whose start was lost, then the start of the next one:
            # drop the first delimiter alone.
            return start + 1 if end == start + 1 else end + 1
        # A text result ends at `)`; a 0x7E before it means the text lost its end: cut there so
        # that the binary frame is not swallowed (the decoder rejects the piece with a reason).
        frame = self._delimiter  # _find_start's search, from a position before this start
        if frame is None or 0 <= frame < search:
            frame = self._delimiter = buf.find(b"\x7e", search)
        close = buf.find(b")", search, frame if frame >= 0 else len(buf))
        if close >= 0:
            return close + 1
        return frame

    def _frame(self, buf: bytes, start: int, end: int) -> bytes:
        return buf[start:end] if end - start > 1 else b""
