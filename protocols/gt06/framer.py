"""TCP framing for gt06: `78 78` / `79 79` packets, cut by their length field.

A packet ends where its length field says, when `0D 0A` sits there. Some devices send a wrong
length byte (Wi-Fi packets 0x17/0x69 with length 0 or 3): then the packet ends at the first
`0D 0A` after its header, as the reference server cuts it. A packet whose declared end is not
buffered yet is waited for, so that a `0D 0A` inside the content of a correctly framed packet
(0x9B serial data, for instance) never cuts it short, whatever the chunking.

The same framer cuts what the server sends (acks, time replies, 0x80 commands) for the
simulated device.
"""

from __future__ import annotations

import re

from protocols.framing import BoundedFramer

_SHORT = b"\x78\x78"
_LONG = b"\x79\x79"
_MARKERS = (_SHORT, _LONG)
_STOP = b"\r\n"
_MARKER_SEARCH = re.compile(b"\x78\x78|\x79\x79")


class Gt06Framer(BoundedFramer):
    """Cuts a gt06 byte stream into packets (see the module docstring for the rules)."""

    __slots__ = ()

    def _find_start(self, buf: bytes, pos: int) -> int:
        if buf.startswith(_MARKERS, pos):
            return pos  # packets back to back: the common case
        # One scan that stops at the first marker of either kind: linear over a whole stream
        # of garbage and markers, where a find() per marker kind would rescan the rest each time.
        found = _MARKER_SEARCH.search(buf, pos)
        if found is not None:
            return found.start()
        # A marker cut in half at the end of what arrived: keep it.
        if len(buf) > pos and buf[-1] in (0x78, 0x79):
            return len(buf) - 1
        return -1

    def _find_end(self, buf: bytes, start: int) -> int:
        n = len(buf)
        if n - start < 5:
            return -1
        if buf[start] == 0x78:
            size = buf[start + 2] + 5
            header = 3
        else:
            size = ((buf[start + 2] << 8) | buf[start + 3]) + 6
            header = 4
        end = start + size
        if end <= n:
            if buf[end - 2] == 0x0D and buf[end - 1] == 0x0A:
                return end
        elif size <= self.max_frame_bytes:
            return -1  # the declared end has not arrived yet
        # The length field is wrong: the packet ends at the first CR LF after its header.
        stop = buf.find(_STOP, start + header)
        return stop + 2 if stop >= 0 else -1
