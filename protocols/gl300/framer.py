"""Framing of the Queclink @Track text protocol: `+RESP:` / `+BUFF:` / `+ACK:` ... `$`.

A frame starts at a text header and ends at the first `$` (kept in the frame) or, when a device
terminates with NUL instead, at the first NUL (dropped). Whichever of the two comes first ends the
frame: a NUL never occurs inside a text frame, so stopping there cannot cut a good frame short.

The binary @Track variant (`+RSP`, `+EVT`, `+HBD`, ... with length-prefixed bodies) is out of
scope; its bytes are skipped and reported as Discarded with a reason naming the header.
"""

from __future__ import annotations

from protocols.framing import BoundedFramer, Discarded, FramerOutput

#: Text headers a device sends. `+SACK:` goes the other way (server to device) and is not one.
HEADERS: tuple[bytes, ...] = (b"+RESP:", b"+BUFF:", b"+ACK:")
_LONGEST = max(len(h) for h in HEADERS)


def _header_at(buf: bytes, i: int) -> int:
    """1 if a full text header starts at i, 0 if a header could still start there (cut off by
    the end of the buffer), -1 otherwise."""
    if buf.startswith(HEADERS, i):
        return 1
    head = buf[i:i + _LONGEST]
    if i + len(head) == len(buf):
        for header in HEADERS:
            if header.startswith(head):
                return 0
    return -1


class Gl300Framer(BoundedFramer):
    """Incremental framer for @Track text frames (see the module docstring for the rules)."""

    __slots__ = ()

    def feed(self, data: bytes) -> list[FramerOutput]:
        # The common case, a read that holds one whole frame and nothing else (a tracker sends
        # each report in its own packet): returned as it came, without the general search
        # (about a microsecond per frame). Anything else (a held partial frame, a second
        # header or '+', a NUL, another '$', an over-long frame) takes the general path,
        # which gives the same result for this case (a test checks both on any input).
        if (not self._buf and data.__class__ is bytes and len(data) <= self.max_frame_bytes
                and data.find(b"$") == len(data) - 1 and data.startswith(HEADERS)
                and data.find(b"+", 1) < 0 and data.find(b"\x00") < 0):
            return [data]
        return BoundedFramer.feed(self, data)

    def _find_start(self, buf: bytes, pos: int) -> int:
        i = buf.find(b"+", pos)
        while i >= 0:
            if buf.startswith(HEADERS, i) or _header_at(buf, i) == 0:
                return i
            i = buf.find(b"+", i + 1)
        return -1

    def _find_end(self, buf: bytes, start: int) -> int:
        end = buf.find(b"$", start)
        nul = buf.find(b"\x00", start, end if end >= 0 else len(buf))
        if nul >= 0:
            end = nul
        # A header before the terminator means this frame lost its end (a device reset or a
        # dropped packet): cut it there, so that the next frame is not swallowed with it. The
        # decoder then rejects the truncated piece with a reason.
        limit = end if end >= 0 else len(buf)
        plus = buf.find(b"+", start + 1, limit)
        while plus >= 0:
            if buf.startswith(HEADERS, plus):
                return plus
            plus = buf.find(b"+", plus + 1, limit)
        return end + 1 if end >= 0 else -1

    def _frame(self, buf: bytes, start: int, end: int) -> bytes:
        if buf[end - 1] == 0:
            return buf[start:end - 1]
        return buf[start:end]

    def _report_garbage(self, buf: bytes, start: int, end: int, out: list[FramerOutput]) -> None:
        chunk = buf[start:end]
        if self._is_filler(chunk):
            return
        if chunk[:1] == b"+" and chunk[1:4].isalpha():
            name = chunk[:5].decode("ascii", "replace")
            out.append(Discarded(
                f"not an @Track text header ({name!r}; the binary variant is not supported)",
                len(chunk)))
        else:
            out.append(Discarded("bytes outside a frame", len(chunk)))
