"""Bounded, incremental framing shared by the protocol framers.

A framer is fed bytes in chunks of any size and hands back complete frames. Its buffer never holds
more than `max_frame_bytes`: an over-long frame is dropped with a reason instead of growing memory.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Largest frame any supported text protocol sends in practice is well under 2 KiB (a 15-point
#: GL300 report); 4 KiB leaves room without letting a hostile peer pin memory.
DEFAULT_MAX_FRAME_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Discarded:
    """Bytes the framer threw away instead of returning them as a frame."""

    reason: str
    size: int


FramerOutput = bytes | Discarded

#: What `_find_end` returns when the open frame is broken and a new frame starts at
#: `_restart_at` (the broken part is discarded, the new frame kept).
RESTART = -2


class BoundedFramer:
    """Base class: keeps the partial frame and enforces the size bound.

    Subclasses implement `_find_start` (where the next frame begins at or after `pos`, or -1;
    a possible frame start cut off at the end of the buffer, such as `+RE` of `+RESP:`, must be
    returned as a start so that it is kept) and `_find_end` (the index one past the frame's last
    byte, -1 when the frame is not complete yet, or RESTART after setting `_restart_at` when the
    start of another frame shows that this one was cut short). `_frame` may trim the frame
    before it is returned; an empty result is dropped silently.
    """

    __slots__ = ("_buf", "_restart_at", "max_frame_bytes")

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        if max_frame_bytes < 16:
            raise ValueError("max_frame_bytes must be at least 16")
        self.max_frame_bytes = max_frame_bytes
        self._buf = b""
        self._restart_at = 0

    @property
    def buffered(self) -> int:
        """How many bytes are held waiting for the rest of a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[FramerOutput]:
        """Add bytes; return the frames now complete, and what was discarded on the way."""
        out: list[FramerOutput] = []
        buf = self._buf + data if self._buf else bytes(data)
        pos = 0
        n = len(buf)
        while pos < n:
            start = self._find_start(buf, pos)
            if start < 0:
                self._report_garbage(buf, pos, n, out)
                pos = n
                break
            if start > pos:
                self._report_garbage(buf, pos, start, out)
            end = self._find_end(buf, start)
            if end == RESTART:
                restart = self._restart_at
                out.append(Discarded("frame cut short by the start of the next one",
                                     restart - start))
                pos = restart
                continue
            if end < 0:
                if n - start > self.max_frame_bytes:
                    # Keep only the last max_frame_bytes: a frame that can still complete starts
                    # there. Jumping (rather than retrying at start + 1) keeps feeding linear
                    # even for hostile input made of nothing but frame-start markers.
                    resume = max(start + 1, n - self.max_frame_bytes)
                    out.append(Discarded(
                        f"frame longer than {self.max_frame_bytes} bytes", resume - start))
                    pos = resume
                    continue
                pos = start
                break
            if end - start > self.max_frame_bytes:
                out.append(Discarded(
                    f"frame longer than {self.max_frame_bytes} bytes", end - start))
            else:
                frame = self._frame(buf, start, end)
                if frame:
                    out.append(frame)
            pos = end
        self._buf = buf[pos:]
        return out

    def _report_garbage(self, buf: bytes, start: int, end: int, out: list[FramerOutput]) -> None:
        if self._is_filler(buf[start:end]):
            return
        out.append(Discarded("bytes outside a frame", end - start))

    # Hooks ---------------------------------------------------------------------------------

    def _find_start(self, buf: bytes, pos: int) -> int:
        raise NotImplementedError

    def _find_end(self, buf: bytes, start: int) -> int:
        raise NotImplementedError

    def _frame(self, buf: bytes, start: int, end: int) -> bytes:
        return buf[start:end]

    def _is_filler(self, chunk: bytes) -> bool:
        """Whitespace between frames (CR/LF after a terminator) is not worth reporting."""
        return not chunk.strip(b" \r\n\t\x00")
