"""The JT/T 808 frame: `7E`, header, body, XOR check code, `7E`, byte-stuffed in between.

On the wire every 0x7E between the delimiters is sent as `7D 02` and every 0x7D as `7D 01`
(`escape`/`unescape`). The check code is the XOR of every byte from the message id to the end of
the body, before stuffing. The header is:

    message id (2) | attributes (2) | [version (1), 2019 only] | terminal phone (6, or 10 in 2019)
    | serial (2) | [packet count (2), packet index (2), when sub-packaged]

Attribute bits: 0-9 body length, 10-12 encryption, 13 sub-packaged, 14 the 2019 layout.

The vendor messages 0x5501/0x5502 (compact lock reports) use a one-byte serial and their own
attribute bits (bit 15 asks for a 0x4401 reply); `parse` knows them.
"""

from __future__ import annotations

import struct

from protocols.jt808.identity import BadField

DELIMITER = 0x7E
#: The messages with a one-byte serial (and no sub-packaging or 2019 layout).
COMPACT = frozenset((0x5501, 0x5502))
#: Largest body the 10-bit length field can announce.
MAX_BODY = 0x3FF

_ATTR_2019 = 0x4000
_ATTR_SUBPACKAGE = 0x2000
_HH = struct.Struct(">HH")


def escape(data: bytes) -> bytes:
    """Stuff 0x7D and 0x7E (the bytes between the delimiters, check code included)."""
    if b"\x7d" in data:
        data = data.replace(b"\x7d", b"\x7d\x01")
    if b"\x7e" in data:
        data = data.replace(b"\x7e", b"\x7d\x02")
    return data


def unescape(data: bytes) -> bytes:
    """Undo `escape`. Raises BadField for a 0x7D not followed by 01 or 02.

    Every 0x7D on the wire starts an escape, so `7D 02` never overlaps another escape: two
    `replace` calls (02 first) undo the stuffing in one linear pass each.
    """
    escapes = data.count(b"\x7d")
    if escapes:
        if data.count(b"\x7d\x02") + data.count(b"\x7d\x01") != escapes:
            at = _bad_escape(data)
            raise BadField(f"byte stuffing: 0x7D at offset {at} is not followed by 01 or 02")
        data = data.replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")
    return data


def _bad_escape(data: bytes) -> int:
    i = data.find(b"\x7d")
    while i >= 0 and data[i + 1:i + 2] in (b"\x01", b"\x02"):
        i = data.find(b"\x7d", i + 2)
    return i


def xor(data: bytes) -> int:
    """The XOR of all bytes: the bytes as one number, folded onto itself in halves (bits above
    the current half are left as they are: only the lowest byte is kept in the end)."""
    value = int.from_bytes(data, "little")
    shift = 1 << ((len(data) * 8 - 1).bit_length() - 1)
    while shift >= 8:
        value ^= value >> shift
        shift >>= 1
    return value & 0xFF


class Header:
    """A parsed frame: header fields, body, and whether the check code and length agree."""

    __slots__ = ("body", "checksum_ok", "encryption", "length_ok", "msg_id", "packet_count",
                 "packet_index", "phone", "reply_flag", "serial", "version")

    msg_id: int
    #: The 2019 protocol version byte, None for the 2011/2013 layout.
    version: int | None
    phone: bytes
    serial: int
    #: Sub-packaging: total packets and this packet's index (from 1); 0 when not sub-packaged.
    packet_count: int
    packet_index: int
    body: bytes
    checksum_ok: bool
    length_ok: bool
    encryption: int
    #: 0x5501/0x5502: attribute bit 15, the device wants a 0x4401 reply.
    reply_flag: bool


def parse(frame: bytes) -> Header:
    """A wire frame (`7E ... 7E`, still stuffed) to its Header. Raises BadField saying what is
    wrong when the frame is too short for its header or badly stuffed."""
    if len(frame) < 3 or frame[0] != DELIMITER or frame[-1] != DELIMITER:
        raise BadField("frame: must start and end with 0x7E")
    inner = frame[1:-1]
    if b"\x7e" in inner:
        raise BadField("frame: 0x7E inside a frame (two frames given as one; use the framer)")
    inner = unescape(inner)
    n = len(inner)
    if n < 12:
        raise BadField(f"header: frame has {n} bytes between the delimiters, at least 12 needed")
    msg_id, attributes = _HH.unpack_from(inner)
    header = Header()
    header.msg_id = msg_id
    if msg_id in COMPACT:
        header.version = None
        header.phone = inner[4:10]
        header.serial = inner[10]
        header.packet_count = header.packet_index = 0
        header.encryption = 0
        header.reply_flag = bool(attributes & 0x8000)
        start = 11
    else:
        header.reply_flag = False
        header.encryption = (attributes >> 10) & 7
        pos = 4
        if attributes & _ATTR_2019:
            header.version = inner[4]
            pos = 15
            header.phone = inner[5:15]
        else:
            header.version = None
            pos = 10
            header.phone = inner[4:10]
        start = pos + 2
        if attributes & _ATTR_SUBPACKAGE:
            start += 4
        if start + 1 > n:
            raise BadField(f"header: frame has {n} bytes between the delimiters, {start + 1} "
                           "needed for this header")
        header.serial = (inner[pos] << 8) | inner[pos + 1]
        if attributes & _ATTR_SUBPACKAGE:
            header.packet_count, header.packet_index = _HH.unpack_from(inner, pos + 2)
            if not header.packet_count:
                raise BadField("header: sub-packaged message with a packet count of 0")
        else:
            header.packet_count = header.packet_index = 0
    body = inner[start:n - 1]
    header.body = body
    header.checksum_ok = xor(inner[:n - 1]) == inner[n - 1]
    header.length_ok = (attributes & MAX_BODY) == len(body)
    return header


def build(msg_id: int, phone: bytes, serial: int, body: bytes, *, version: int | None = None,
          packet: tuple[int, int] | None = None, short_serial: bool = False,
          attribute_bits: int = 0) -> bytes:
    """A complete wire frame. `packet` = (count, index) sub-packages it; `short_serial` writes
    the one-byte serial of 0x4401/0x5501/0x5502."""
    if len(body) > MAX_BODY:
        raise ValueError(f"body of {len(body)} bytes: at most {MAX_BODY} fit in one frame "
                         "(split it into packets)")
    attributes = len(body) | attribute_bits
    head = bytearray(_HH.pack(msg_id, 0))
    if version is not None:
        attributes |= _ATTR_2019
        head.append(version & 0xFF)
    head += phone
    if short_serial:
        head.append(serial & 0xFF)
    else:
        head += (serial & 0xFFFF).to_bytes(2, "big")
    if packet is not None:
        attributes |= _ATTR_SUBPACKAGE
        head += _HH.pack(*packet)
    head[2:4] = attributes.to_bytes(2, "big")
    head += body
    head.append(xor(bytes(head)))
    return b"\x7e" + escape(bytes(head)) + b"\x7e"


class ReplyPrefix:
    """The constant part of the server's replies to one terminal (message id, attributes,
    version, phone, serial 0000), already stuffed, and its XOR, so that a reply costs a few
    byte operations."""

    __slots__ = ("_general", "_general_xor")

    def __init__(self, phone: bytes, version: int | None) -> None:
        head = bytearray(b"\x80\x01\x00\x05")
        if version is not None:
            head[2] = 0x40
            head.append(version & 0xFF)
        head += phone
        head += b"\x00\x00"
        self._general = b"\x7e" + escape(bytes(head))
        self._general_xor = xor(bytes(head))

    def general(self, serial: int, msg_id: int, result: int) -> bytes:
        """0x8001: the answered serial and message id, and the result (0 = success)."""
        high, low = (serial >> 8) & 0xFF, serial & 0xFF
        check = self._general_xor ^ high ^ low ^ (msg_id >> 8) ^ (msg_id & 0xFF) ^ result
        tail = bytes((high, low, msg_id >> 8, msg_id & 0xFF, result, check))
        return self._general + escape(tail) + b"\x7e"
