"""TCP framing for eelink: `67 67` type(1) length(2) serial(2) content(length - 2).

The length field counts the serial and the content, so a package is 5 + length bytes. There is
no checksum and no end marker: a start marker followed by an impossible length (less than 2, or
a package longer than the framer's bound) is reported and skipped two bytes at a time until the
next `67 67`. The same framer cuts what the server sends (acks and commands use the same form).
"""

from __future__ import annotations

from protocols.framing import BoundedFramer, Discarded, FramerOutput

MARKER = b"gg"  # 0x67 0x67
HEADER_BYTES = 5


class EelinkFramer(BoundedFramer):
    """Incremental framer for `67 67` packages."""

    __slots__ = ()

    def feed(self, data: bytes) -> list[FramerOutput]:
        """Add bytes; return the packages now complete, and what was discarded on the way."""
        out: list[FramerOutput] = []
        buf = self._buf + data if self._buf else bytes(data)
        n = len(buf)
        pos = 0
        limit = self.max_frame_bytes
        while pos < n:
            start = buf.find(MARKER, pos)
            if start < 0:
                # A last 0x67 may be the first byte of the next marker: keep it.
                keep = n - 1 if buf[n - 1] == 0x67 else n
                if keep > pos:
                    out.append(Discarded("bytes outside a package (no 67 67 marker)", keep - pos))
                pos = keep
                break
            if start > pos:
                out.append(Discarded("bytes outside a package (no 67 67 marker)", start - pos))
            if n - start < HEADER_BYTES:
                pos = start
                break
            length = buf[start + 3] << 8 | buf[start + 4]
            size = HEADER_BYTES + length
            if length < 2 or size > limit:
                reason = ("package length below 2 (the serial alone is 2 bytes)" if length < 2
                          else f"package of {size} bytes is longer than {limit}")
                out.append(Discarded(reason, 2))
                pos = start + 2
                continue
            if n - start < size:
                pos = start
                break
            out.append(buf[start:start + size])
            pos = start + size
        self._buf = buf[pos:]
        return out
