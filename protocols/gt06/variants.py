"""Layout variants: the same protocol number means different layouts on different devices.

The reference decoder tells them apart by the start marker, the protocol number and the length
byte of each packet, and for a few by the device model set in its configuration. The same
rules apply here; `Gt06Options.model` plays the part of the per-device model.
"""

from __future__ import annotations

import enum


class Variant(enum.Enum):
    STANDARD = "standard"
    VXT01 = "vxt01"
    WANWAY_S20 = "wanway_s20"
    SR411_MINI = "sr411_mini"
    GT06E_CARD = "gt06e_card"
    BENWAY = "benway"
    S5 = "s5"
    SPACE10X = "space10x"
    OBD6 = "obd6"
    WETRUST = "wetrust"
    JC400 = "jc400"
    SL4X = "sl4x"
    SEEWORLD = "seeworld"
    RFID = "rfid"
    LW4G = "lw4g"
    TRX16I = "trx16i"


#: (protocol number, length byte) -> variant, for short (`78 78`) packets.
_BY_LENGTH: dict[tuple[int, int], Variant] = {
    (0x12, 0x24): Variant.VXT01,
    (0x16, 0x24): Variant.VXT01,
    (0x24, 0x31): Variant.WANWAY_S20,
    (0x24, 0x2E): Variant.SR411_MINI,
    (0x12, 0x21): Variant.BENWAY,
    (0x12, 0x2B): Variant.S5,
    (0x13, 0x13): Variant.OBD6,
    (0x12, 0x29): Variant.WETRUST,
    (0x34, 0x37): Variant.SL4X,
    (0x31, 0x2A): Variant.SL4X,
    (0x32, 0x27): Variant.SL4X,
    (0x32, 0x29): Variant.SL4X,
    (0x22, 0x2F): Variant.SEEWORLD,
    (0x16, 0x26): Variant.SEEWORLD,
    (0xA3, 0x0C): Variant.SEEWORLD,
    (0xA3, 0x18): Variant.SEEWORLD,
    (0x17, 0x28): Variant.RFID,
    (0xA2, 0x40): Variant.LW4G,
    (0x36, 0x35): Variant.TRX16I,
    (0x16, 0x2D): Variant.TRX16I,
}


def variant_of(frame: bytes) -> Variant:
    """The layout variant of one packet (STANDARD for extended packets and unknown pairs)."""
    if frame[0] != 0x78 or len(frame) < 6:
        return Variant.STANDARD
    length = frame[2]
    kind = frame[3]
    found = _BY_LENGTH.get((kind, length))
    if found is not None:
        return found
    if kind == 0x12 and length >= 0x71:
        return Variant.GT06E_CARD
    if kind == 0x19 and length >= 0x17:
        return Variant.SPACE10X
    if kind == 0x95 and frame[4] == 0xFF and frame[5] == 0xFF:
        return Variant.JC400
    return Variant.STANDARD


#: Models whose 0x22 / 0x25 packets carry the NT layout (device time, power, odometer, hours).
NT_MODELS = frozenset({"NT11", "NT20", "NT26", "NT40", "NT46", "VL100", "XT40"})
#: Models whose alarm codes 0x09 / 0x28 / 0x30 mean tow / power off / braking.
VL_MODELS = frozenset({"VL103", "LL303", "VL512", "G18"})


class Model:
    """What the configured device model changes (upper-cased; empty: no model)."""

    __slots__ = ("lw", "name", "nt", "sw", "vl")

    def __init__(self, name: str) -> None:
        self.name = name.upper()
        self.lw = self.name.startswith("LW")
        self.sw = self.name == "SEEWORLD"
        self.nt = self.name in NT_MODELS
        self.vl = self.name in VL_MODELS
