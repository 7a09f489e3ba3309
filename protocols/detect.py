"""Tell the protocol from the first bytes of a stream, so that one port can serve several."""

from __future__ import annotations


class UnknownProtocol(ValueError):
    """The stream does not begin like any supported protocol."""


# (prefix, protocol). A stream that is still a strict prefix of one of these is undecided.
_PREFIXES: tuple[tuple[bytes, str], ...] = (
    (b"(", "tk103"),
    (b"imei:", "gps103"),
    (b"##,", "gps103"),
    (b"+RESP:", "gl300"),
    (b"+BUFF:", "gl300"),
    (b"+ACK:", "gl300"),
    (b"$GP", "nmea"),
    (b"$GN", "nmea"),
)

_LEADING_FILLER = b" \t\r\n\x00"


def detect(data: bytes) -> str | None:
    """The protocol name for a stream that starts with `data`, or None if more bytes are needed.

    Recognised: `tk103` (`(`), `gps103` (`imei:`, `##,` or the digits of a bare-IMEI heartbeat),
    `gl300` (`+RESP:`, `+BUFF:`, `+ACK:`) and raw `nmea` (`$GP...`, `$GN...`). Leading whitespace
    and NUL bytes are ignored. Raises UnknownProtocol for anything else.
    """
    head = data.lstrip(_LEADING_FILLER)
    if not head:
        return None
    if head[:1].isdigit():
        return "gps103"
    undecided = False
    for prefix, name in _PREFIXES:
        if head.startswith(prefix):
            return name
        if prefix.startswith(head):
            undecided = True
    if undecided:
        return None
    raise UnknownProtocol(
        f"first bytes {head[:16]!r} match no supported protocol "
        "(expected '(' for tk103, 'imei:'/'##,' for gps103, '+RESP:'/'+BUFF:'/'+ACK:' for gl300)"
    )
