"""A bounds-checked cursor over one packet, for the decoders of the packet families."""

from __future__ import annotations


class Truncated(Exception):
    """A field runs past the end of the packet."""


class Reader:
    """Reads big-endian fields from `data[pos:]`.

    `readable()` counts the bytes left up to the end of the frame, trailer (serial, CRC, stop)
    included, as the reference decoder's checks do (`readable() >= 3 + 6` means three content
    bytes are left before the six trailer bytes). Reads never go into the trailer's last six
    bytes' positions unless asked to; a read past the end raises Truncated.
    """

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def readable(self) -> int:
        return self.end - self.pos

    def _advance(self, size: int) -> int:
        pos = self.pos
        if pos + size > self.end:
            raise Truncated
        self.pos = pos + size
        return pos

    def skip(self, size: int) -> None:
        self._advance(max(size, 0))

    def u8(self) -> int:
        return self.data[self._advance(1)]

    def peek_u8(self) -> int:
        if self.pos >= self.end:
            raise Truncated
        return self.data[self.pos]

    def u16(self) -> int:
        p = self._advance(2)
        return int.from_bytes(self.data[p:p + 2], "big")

    def s16(self) -> int:
        p = self._advance(2)
        return int.from_bytes(self.data[p:p + 2], "big", signed=True)

    def u24(self) -> int:
        p = self._advance(3)
        return int.from_bytes(self.data[p:p + 3], "big")

    def u32(self) -> int:
        p = self._advance(4)
        return int.from_bytes(self.data[p:p + 4], "big")

    def s32(self) -> int:
        p = self._advance(4)
        return int.from_bytes(self.data[p:p + 4], "big", signed=True)

    def u32le(self) -> int:
        p = self._advance(4)
        return int.from_bytes(self.data[p:p + 4], "little")

    def s64(self) -> int:
        p = self._advance(8)
        return int.from_bytes(self.data[p:p + 8], "big", signed=True)

    def take(self, size: int) -> bytes:
        p = self._advance(max(size, 0))
        return self.data[p:p + size]
