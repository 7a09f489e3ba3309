"""TCP framing for the watch protocol: `[` ... `]`, un-escaped.

A frame starts at `[` followed by a two-character maker and `*` (`[3G*`, `[SG*`, `[ZJ*`...).
It ends at the `]` that closes it, counting brackets (Wi-Fi names such as `[LG_Wall-Mount A/C]`
hold balanced brackets), or earlier at the position the header's length field points to when
a `]` stands there. The length field alone is not trusted: many real frames carry a wrong one,
and it counts the payload before escaping. It only rescues frames whose text holds an unbalanced
`[`. Both rules look at bytes in order, so any chunking of a stream gives the same frames.

The returned frame is un-escaped (`protocols.watch.escape`), as the decoder expects it.
"""

from __future__ import annotations

from protocols.framing import DEFAULT_MAX_FRAME_BYTES, BoundedFramer, Discarded, FramerOutput
from protocols.watch.escape import unescape

_CLOSE = 0x5D  # ]
_STAR = 0x2A  # *
_HEX = frozenset(b"0123456789abcdefABCDEF")
#: Where the `*` after an id of at most 20 characters can be, from the frame start.
_HEADER_MAX = 4 + 20 + 1


_MAKER = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _is_hex4(buf: bytes, at: int) -> bool:
    return len(buf) >= at + 4 and all(b in _HEX for b in buf[at:at + 4])


def hinted_end(buf: bytes, start: int) -> int:
    """Where the length field says the frame's `]` is (an index into buf), or -1 when the
    header has no length field or is not complete yet.

    The answer never changes as more bytes arrive, except from -1 to a position the scan has
    not reached yet: the framer's decisions do not depend on how the stream was chunked.
    """
    id_end = buf.find(b"*", start + 4, start + _HEADER_MAX)
    if id_end < 0:
        return -1
    first = id_end + 1
    if len(buf) < first + 5 or buf[first + 4] != _STAR or not _is_hex4(buf, first):
        return -1
    # `<index>*<length>*` (ZJ devices) when four more hex digits and a `*` follow.
    second = buf[first + 5:first + 10]
    for i, byte in enumerate(second):
        if (byte not in _HEX) if i < 4 else (byte != _STAR):
            return first + 5 + int(buf[first:first + 4], 16)
    if len(second) < 5:
        return -1
    return first + 10 + int(buf[first + 5:first + 9], 16)


class WatchFramer(BoundedFramer):
    """Incremental framer for `[MF*id*len*content]` frames (see the module docstring)."""

    __slots__ = ("_last_depth", "_last_scanned", "_last_start", "_resume", "_resume_depth")

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        super().__init__(max_frame_bytes)
        # Where the scan of an unfinished frame stopped in the previous feed (offset from the
        # frame start, 0 = none) and the bracket depth there: a frame arriving a few bytes at
        # a time is scanned once overall, not once per feed.
        self._resume = 0
        self._resume_depth = 0
        self._last_start = -1
        self._last_scanned = 0
        self._last_depth = 0

    def feed(self, data: bytes) -> list[FramerOutput]:
        """Add bytes; return the frames now complete, and what was discarded on the way.

        The loop of `BoundedFramer.feed`, with the usual frame (a header, no bracket before
        its `]`) cut inline: the same frames and discards, fewer calls per frame.
        """
        out: list[FramerOutput] = []
        buf = self._buf + data if self._buf else bytes(data)
        total = n = len(buf)
        limit = self.max_frame_bytes
        self._last_start = -1
        pos = 0
        while pos < n:
            i = buf.find(b"[", pos)
            if (i >= 0 and i + 3 < n and buf[i + 3] == _STAR and buf[i + 1] in _MAKER
                    and buf[i + 2] in _MAKER):
                start = i
            else:
                start = self._find_start(buf, pos)
                if start < 0:
                    self._report_garbage(buf, pos, n, out)
                    pos = n
                    break
            if start > pos:
                self._report_garbage(buf, pos, start, out)
            close = -1 if start == 0 and self._resume else buf.find(b"]", start + 4)
            if close >= 0 and buf.find(b"[", start + 1, close) < 0:
                end = close + 1
            else:
                end = self._find_end(buf, start)
            if end < 0:
                if n - start > limit:
                    # As BoundedFramer: keep only the last `limit` bytes, in one jump.
                    resume = max(start + 1, n - limit)
                    out.append(Discarded(f"frame longer than {limit} bytes", resume - start))
                    pos = resume
                    continue
                pos = start
                break
            if end - start > limit:
                out.append(Discarded(f"frame longer than {limit} bytes", end - start))
            else:
                frame = buf[start:end]
                out.append(unescape(frame) if b"}" in frame else frame)
            pos = end
        self._buf = buf[pos:]
        kept = len(self._buf)
        if kept and self._last_start == total - kept:
            self._resume = self._last_scanned
            self._resume_depth = self._last_depth
        else:
            self._resume = 0
        return out

    def _find_start(self, buf: bytes, pos: int) -> int:
        n = len(buf)
        i = buf.find(b"[", pos)
        while i >= 0:
            if i + 3 >= n:
                # `[`, `[3` or `[3G` at the end: may still become a frame start.
                if all(b in _MAKER for b in buf[i + 1:]):
                    return i
                return -1
            if buf[i + 3] == _STAR and buf[i + 1] in _MAKER and buf[i + 2] in _MAKER:
                return i
            i = buf.find(b"[", i + 1)
        return -1

    def _find_end(self, buf: bytes, start: int) -> int:
        if len(buf) - start < 4:
            return -1
        if start == 0 and self._resume:
            scanned = self._resume
            depth = self._resume_depth
            self._resume = 0
        else:
            scanned = start + 1
            depth = 1
        hint = -2  # not looked up yet: most frames end at their first `]`
        while True:
            close = buf.find(b"]", scanned)
            if close < 0:
                self._last_start = start
                self._last_scanned = len(buf) - start
                self._last_depth = depth + buf.count(b"[", scanned)
                return -1
            depth += buf.count(b"[", scanned, close) - 1
            if depth <= 0:
                return close + 1
            if hint == -2:
                hint = hinted_end(buf, start)
            if close == hint:
                return close + 1
            scanned = close + 1

    def _frame(self, buf: bytes, start: int, end: int) -> bytes:
        return unescape(buf[start:end])
