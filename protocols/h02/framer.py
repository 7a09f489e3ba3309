"""TCP framing for h02: text `*...#` frames and fixed-length binary `$` / `X` frames.

* Text: from `*` to the first `#` (kept). CR / LF between frames are dropped silently.
* Binary `$`: a fixed length, 32 bytes ("short"), 45 ("long") or 42 (15-digit id). A connection
  keeps the length of its first binary frame. That length is told by where the next frame
  begins: the framer waits until the byte after 32 (then 42, then 45) bytes has arrived and
  checks whether a frame starts there (`$` and the same device id, or `*` and a maker code).
  The reference server guesses instead from how many bytes one read returned, which depends on
  how TCP split the stream; waiting makes the cut the same for any chunking, at the price of
  holding a connection's first binary frame until the next frame's first bytes arrive. When
  neither length is followed by a frame start, 32 is used (the reference's default).
* Binary `X` (an alternative format): always 32 bytes.

Anything else before a frame start is skipped and reported as discarded.
"""

from __future__ import annotations

import re

from protocols.framing import DEFAULT_MAX_FRAME_BYTES, BoundedFramer

SHORT = 32
LONG = 45
LONG_ID = 42
_MARKERS = b"*$X"
_MARKER_SEARCH = re.compile(rb"[*$X]")
#: Binary lengths tried, in order, when a connection's first binary frame arrives.
CANDIDATES = (SHORT, LONG_ID, LONG)


class H02Framer(BoundedFramer):
    """Cuts an h02 byte stream into frames (see the module docstring for the rules)."""

    __slots__ = ("binary_length",)

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        super().__init__(max(max_frame_bytes, 64))
        #: The binary frame length this connection uses (0 until its first binary frame).
        self.binary_length = 0

    def _find_start(self, buf: bytes, pos: int) -> int:
        if pos < len(buf) and buf[pos] in _MARKERS:
            return pos  # frames back to back: the common case
        found = _MARKER_SEARCH.search(buf, pos)
        return found.start() if found is not None else -1

    def _find_end(self, buf: bytes, start: int) -> int:
        marker = buf[start]
        if marker == 0x2A:  # "*"
            end = buf.find(b"#", start + 1)
            return end + 1 if end >= 0 else -1
        if marker == 0x58:  # "X"
            return start + SHORT if len(buf) - start >= SHORT else -1
        if self.binary_length:
            end = start + self.binary_length
            return end if end <= len(buf) else -1
        length = self._learn(buf, start)
        if length <= 0:
            return -1
        self.binary_length = length
        return start + length

    @staticmethod
    def _learn(buf: bytes, start: int) -> int:
        """The length of a connection's first binary frame, 0 while undecided."""
        n = len(buf)
        for length in CANDIDATES:
            at = start + length
            if at >= n:
                return 0
            follower = buf[at]
            if follower == 0x24:  # "$": the next binary frame names the same device
                if at + 6 > n:
                    return 0
                if buf[at + 1:at + 6] == buf[start + 1:start + 6]:
                    return length
            elif follower == 0x2A:  # "*": a text frame's maker code and comma
                if at + 4 > n:
                    return 0
                if buf[at + 1:at + 3].isalpha() and buf[at + 3] == 0x2C:
                    return length
        return SHORT
