"""The UDP datagram of eelink: `EL` length(2) checksum(2) IMEI(8, BCD) packages.

The length counts the bytes after the length field. The checksum covers the bytes after the
checksum field: starting from 0, for each byte the 16-bit sum is rotated left by one bit and
the byte added, modulo 65536. Each reply to a datagram is a datagram of its own, with the same
header around one reply package.
"""

from __future__ import annotations

MAGIC = b"EL"
HEADER_BYTES = 14  # EL, length, checksum, IMEI


def checksum(data: bytes) -> int:
    total = 0
    for byte in data:
        total = ((total << 1 | total >> 15) & 0xFFFF) + byte & 0xFFFF
    return total


def imei_bcd(imei: str) -> bytes:
    """The 8 BCD bytes of a 15-digit IMEI (a leading 0 nibble)."""
    if len(imei) != 15 or not imei.isascii() or not imei.isdigit():
        raise ValueError(f"eelink IMEI must be 15 digits, got {imei!r}")
    return bytes.fromhex("0" + imei)


def wrap(imei: str, packages: bytes) -> bytes:
    """A datagram carrying `packages` for the device `imei`."""
    body = imei_bcd(imei) + packages
    return MAGIC + (len(body) + 2).to_bytes(2, "big") + checksum(body).to_bytes(2, "big") + body
