"""The gt06 packet envelope: start marker, length, protocol number, serial number, CRC, stop.

    short:    78 78 | L (1 byte)  | protocol | content | serial (2) | CRC (2) | 0D 0A
    extended: 79 79 | L (2 bytes) | protocol | content | serial (2) | CRC (2) | 0D 0A

L counts the protocol byte, the content, the serial and the CRC. The CRC is CRC-16/X-25 over
everything from the length field through the serial, written big-endian.
"""

from __future__ import annotations

import binascii

SHORT_START = b"\x78\x78"
LONG_START = b"\x79\x79"
STOP = b"\r\n"

# CRC-16/X-25 is the reflected form of the CRC-CCITT that binascii.crc_hqx computes (same
# polynomial, same all-ones start). Reversing the bits of every input byte (a C-speed translate)
# and of the 16-bit result turns one into the other, so the CRC costs no Python loop per byte.
_REVERSED = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def crc16_x25(data: bytes) -> int:
    """CRC-16/X-25 (poly 0x1021 reflected, init 0xFFFF, final XOR 0xFFFF) of `data`."""
    crc = binascii.crc_hqx(data.translate(_REVERSED), 0xFFFF)
    return ((_REVERSED[crc & 0xFF] << 8) | _REVERSED[crc >> 8]) ^ 0xFFFF


def packet(protocol: int, content: bytes = b"", serial: int = 0, *,
           extended: bool = False) -> bytes:
    """A complete packet (start, length, protocol, content, serial, CRC, stop)."""
    length = 5 + len(content)
    head = (length.to_bytes(2, "big") if extended else bytes((length,)))
    body = head + bytes((protocol,)) + content + (serial & 0xFFFF).to_bytes(2, "big")
    crc = crc16_x25(body).to_bytes(2, "big")
    return (LONG_START if extended else SHORT_START) + body + crc + STOP


def ack(protocol: int, serial: int, *, extended: bool = False) -> bytes:
    """The server's acknowledgement: an empty packet of the same protocol with the serial echoed."""
    if extended:
        return packet(protocol, b"", serial, extended=True)
    # The short ack is built directly: it is the reply to nearly every packet.
    body = bytes((5, protocol, (serial >> 8) & 0xFF, serial & 0xFF))
    crc = crc16_x25(body)
    return SHORT_START + body + bytes((crc >> 8, crc & 0xFF)) + STOP


def declared_size(frame: bytes) -> int | None:
    """The whole frame's size according to its length field (None if too short to tell)."""
    if frame[:2] == SHORT_START and len(frame) >= 3:
        return frame[2] + 5
    if frame[:2] == LONG_START and len(frame) >= 4:
        return ((frame[2] << 8) | frame[3]) + 6
    return None
