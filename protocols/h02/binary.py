"""Binary `$` frames: a position in BCD, fixed offsets.

| offset | size | content                                                              |
|--------|------|----------------------------------------------------------------------|
| 0      | 1    | `$`                                                                  |
| 1      | 5    | device id, 10 BCD digits (8 bytes / 15 digits when the frame is 42)  |
| +0     | 3    | time hh mm ss (BCD)                                                  |
| +3     | 3    | date dd mm yy (BCD)                                                  |
| +6     | 4    | latitude DD MM mmmm (BCD, minutes x 10000)                           |
| +10    | 1    | battery                                                              |
| +11    | 4.5  | longitude DDD MM mmmm (9 BCD digits)                                 |
| +15 lo | 0.5  | flags: bit 1 valid, bit 2 north, bit 3 east                          |
| +16    | 1.5  | speed, 3 BCD digits (knots)                                          |
| +17 lo | 1.5  | course: hundreds in the low nibble, then 2 BCD digits                |
| +19    | 4    | status word                                                          |
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from protocols.events import AlarmType, AttrValue
from protocols.h02.status import read_status
from protocols.units import KMH_PER_KNOT

_UTC = UTC


class BadBinary(ValueError):
    """A binary frame that cannot be decoded (the message names the field)."""


def _digits(data: bytes) -> str:
    text = data.hex()
    if not text.isdigit():
        raise BadBinary
    return text


def battery_level(value: int) -> int | None:
    """The battery byte as a percentage: 1-3 and 4-6 are coarse levels, 7-100 a percentage,
    0xF1-0xF6 another coarse scale; anything else is unknown."""
    if value == 0:
        return None
    if value <= 3:
        return (value - 1) * 10
    if value <= 6:
        return (value - 1) * 20
    if value <= 100:
        return value
    if 0xF1 <= value <= 0xF6:
        return value - 0xF0
    return None


def lenient_utc(year: int, month: int, day: int, hour: int, minute: int,
                second: int) -> datetime:
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=_UTC)
    except ValueError:
        base = datetime(year + (month - 1) // 12, (month - 1) % 12 + 1, 1, tzinfo=_UTC)
        return base + timedelta(days=day - 1, hours=hour, minutes=minute, seconds=second)


class BinaryFix:
    """What a binary frame says."""

    __slots__ = ("alarm", "attrs", "course", "device_id", "fix_time", "lat", "lon",
                 "speed_kmh", "valid")

    def __init__(self) -> None:
        self.device_id = ""
        self.fix_time = datetime(2000, 1, 1, tzinfo=_UTC)
        self.valid = False
        self.lat = 0.0
        self.lon = 0.0
        self.speed_kmh = 0.0
        self.course = 0.0
        self.attrs: dict[str, AttrValue] = {}
        self.alarm: AlarmType | None = None


def decode_binary(frame: bytes) -> BinaryFix:
    """Read a `$` frame; BadBinary (with the field named) when a field is not BCD."""
    if len(frame) < 29:
        raise BadBinary(f"binary frame of {len(frame)} bytes is shorter than its 29 fields")
    out = BinaryFix()
    long_id = len(frame) == 42
    if long_id:
        try:
            out.device_id = _digits(frame[1:9])[:15]
        except BadBinary:
            raise BadBinary("binary device id is not BCD digits") from None
        p = 9
    else:
        try:
            out.device_id = _digits(frame[1:6])
        except BadBinary:
            raise BadBinary("binary device id is not BCD digits") from None
        p = 6
    if len(frame) < p + 23:
        raise BadBinary(f"binary frame of {len(frame)} bytes is shorter than its fields")
    try:
        clock = _digits(frame[p:p + 6])
    except BadBinary:
        raise BadBinary("binary time or date is not BCD digits") from None
    out.fix_time = lenient_utc(2000 + int(clock[10:12]), int(clock[8:10]), int(clock[6:8]),
                               int(clock[0:2]), int(clock[2:4]), int(clock[4:6]))
    try:
        lat_digits = _digits(frame[p + 6:p + 10])
        lon_digits = frame[p + 11:p + 16].hex()[:9]  # the tenth nibble holds the flags
        if not lon_digits.isdigit():
            raise BadBinary
        speed_course = frame[p + 16:p + 19].hex()
        speed = int(speed_course[0:3])
        course = int(speed_course[3]) * 100 + int(speed_course[4:6])
    except (BadBinary, ValueError):
        raise BadBinary("binary coordinates, speed or course are not BCD digits") from None
    lat = int(lat_digits[0:2]) + int(lat_digits[2:8]) / 10000.0 / 60.0
    lon = int(lon_digits[0:3]) + int(lon_digits[3:9]) / 10000.0 / 60.0
    flags = frame[p + 15] & 0x0F
    if lat > 90.0 or lon > 180.0:
        raise BadBinary("binary coordinates out of range")
    out.valid = bool(flags & 0x02)
    out.lat = lat if flags & 0x04 else -lat
    out.lon = lon if flags & 0x08 else -lon
    out.speed_kmh = speed * KMH_PER_KNOT
    out.course = float(course)
    level = battery_level(frame[p + 10])
    if level is not None:
        out.attrs["battery_level"] = level
    out.alarm = read_status(frame[p + 19:p + 23].hex(), out.attrs)
    return out
