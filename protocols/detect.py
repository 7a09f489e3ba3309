"""Tell the protocol from the first bytes of a stream, so that one port can serve several.

Each protocol declares its own test (`Codec.detect`); this module asks them in registry order.
Raw NMEA sentences (`$GP...`, `$GN...`, a serial GPS) are recognised too, for the simulators'
serial paths; the gateway serves only registered protocols.
"""

from __future__ import annotations

from protocols.registry import codecs

#: Bytes looked at to tell a protocol; a stream still undecided after this many is refused.
DETECT_MAX_BYTES = 64

_NMEA = (b"$GP", b"$GN")
_LEADING_FILLER = b" \t\r\n\x00"


class UnknownProtocol(ValueError):
    """The stream does not begin like any supported protocol."""


def detect(data: bytes) -> str | None:
    """The protocol name for a stream that starts with `data`, or None if more bytes are needed.

    Leading whitespace and NUL bytes are ignored. Raises UnknownProtocol when no registered
    protocol (nor raw `nmea`) can start this way, or when `DETECT_MAX_BYTES` did not decide.
    """
    head = data.lstrip(_LEADING_FILLER)
    if not head:
        return None
    undecided = False
    for codec in codecs():
        verdict = codec.detect(head)
        if verdict:
            if not undecided:
                return codec.name
        elif verdict is None:
            undecided = True
    if head.startswith(_NMEA):
        return "nmea"
    if any(prefix.startswith(head) for prefix in _NMEA):
        undecided = True
    if undecided and len(data) < DETECT_MAX_BYTES:
        return None
    raise UnknownProtocol(
        f"first bytes {head[:16]!r} match no supported protocol (expected the start of a "
        + ", ".join(codec.name for codec in codecs()) + " frame)")
