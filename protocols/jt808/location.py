"""Location messages: the 0x0200 body (also inside 0x0201, 0x0704, 0x0210) and the compact
0x5501/0x5502 lock reports.

The 0x0200 body is a 28-byte basic block (PROTOCOLS-WAVE2.md §5.4) and additional-information
items (`protocols.jt808.items`):

    alarm flags (4) | status (4) | latitude (4, 1e-6 deg) | longitude (4) | altitude (2, m)
    | speed (2, 0.1 km/h) | course (2) | time (6, BCD YYMMDDhhmmss, device time zone)

Status bits: 0 ignition, 1 fix valid, 2 south, 3 west, 10 oil/circuit cut (`blocked`), 26
charging; bit 16 is the door on MiCODUS MV710G/MV810G. The alarm flags of the standard are
mapped to AlarmType below; padlock and AOVX units use them differently (`Jt808Options.model`).
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from protocols.events import Alarm, AlarmType, AttrValue, Position
from protocols.jt808.identity import BadField
from protocols.jt808.items import ITEMS, OBD_EXTENSION, Reading, lock_command, s16, u16, u32

_BASIC = struct.Struct(">IIIIhHH6s")
BASIC_SIZE = _BASIC.size  # 28
_ITEM_ERRORS = (struct.error, IndexError, ValueError, UnicodeDecodeError)

#: Standard alarm flag bits (JT/T 808 table 24, and the vendors' uses the reference decodes).
#: Bit 2 fatigue driving and bit 19 overtime parking have no AlarmType of their own.
_ALARM_BITS: tuple[tuple[int, AlarmType, str], ...] = (
    (0, AlarmType.SOS, "bit0 emergency"),
    (1, AlarmType.OVERSPEED, "bit1 overspeed"),
    (2, AlarmType.GENERAL, "bit2 fatigue driving"),
    (4, AlarmType.FAULT, "bit4 GNSS module fault"),
    (5, AlarmType.FAULT, "bit5 GNSS antenna cut"),
    (6, AlarmType.FAULT, "bit6 GNSS antenna short"),
    (7, AlarmType.LOW_BATTERY, "bit7 main power low"),
    (8, AlarmType.POWER_CUT, "bit8 main power lost"),
    (9, AlarmType.FAULT, "bit9 display fault"),
    (10, AlarmType.FAULT, "bit10 TTS fault"),
    (11, AlarmType.FAULT, "bit11 camera fault"),
    (15, AlarmType.VIBRATION, "bit15 vibration"),
    (16, AlarmType.TAMPERING, "bit16 tampering"),
    (17, AlarmType.TAMPERING, "bit17 tampering"),
    (18, AlarmType.LOW_BATTERY, "bit18 low battery"),
    (19, AlarmType.GENERAL, "bit19 overtime parking"),
    (20, AlarmType.GEOFENCE, "bit20 area"),
    (26, AlarmType.GENERAL, "bit26"),
    (28, AlarmType.MOVEMENT, "bit28 illegal movement"),
    (29, AlarmType.ACCIDENT, "bit29 collision"),
    (30, AlarmType.ACCIDENT, "bit30 rollover"),
)
_ALARM_MASK = sum(1 << bit for bit, _kind, _code in _ALARM_BITS)
_VL300_IGNORED = (1 << 29) | (1 << 30)


#: Byte -> its two BCD digits as a number, -1 when a nibble is above 9.
_BCD = tuple((b >> 4) * 10 + (b & 15) if b >> 4 <= 9 and b & 15 <= 9 else -1
             for b in range(256))
#: Offset -> {date bytes -> UNIX time of that local midnight}. Consecutive reports share their
#: date; each inner cache is cleared when full.
_DAYS: dict[timedelta, dict[bytes, float]] = {}


def _midnight(year: int, month: int, day: int) -> datetime:
    try:
        return datetime(2000 + year, month, day, tzinfo=UTC)
    except ValueError:  # month 00, day 00...: carry over like a lenient calendar
        base = datetime(2000 + year + (month - 1) // 12, (month - 1) % 12 + 1, 1, tzinfo=UTC)
        return base + timedelta(days=day - 1)


def local_time(bcd: bytes, offset: timedelta, *, day_first: bool = False) -> datetime:
    """A 6-byte BCD time (`YYMMDDhhmmss`, or `DDMMYYhhmmss` with day_first) in a clock
    `offset` from UTC, as an aware UTC datetime. Out-of-range fields carry over (a unit without
    a fix sends month 00)."""
    if len(bcd) != 6:
        raise BadField(f"time: {len(bcd)} bytes, 6 BCD bytes needed")
    days = _DAYS.get(offset)
    if days is None:
        days = _DAYS.setdefault(offset, {})
    date = bcd[:3]
    midnight = None if day_first else days.get(date)
    hour, minute, second = _BCD[bcd[3]], _BCD[bcd[4]], _BCD[bcd[5]]
    if midnight is None:
        first, month, third = _BCD[bcd[0]], _BCD[bcd[1]], _BCD[bcd[2]]
        if min(first, month, third) < 0:
            raise BadField(f"time: {bcd.hex().upper()} is not BCD")
        year, day = (third, first) if day_first else (first, third)
        midnight = (_midnight(year, month, day) - offset).timestamp()
        if not day_first:
            if len(days) >= 1024:
                days.clear()
            days[date] = midnight
    if min(hour, minute, second) < 0:
        raise BadField(f"time: {bcd.hex().upper()} is not BCD")
    return datetime.fromtimestamp(midnight + (hour * 3600 + minute * 60 + second), UTC)


def alarm_flags(flags: int, family: str, into: Reading) -> None:
    """The alarm word of the basic block, as the unit's family uses it."""
    if family == "padlock":
        if flags & 0x11:
            into.alarm(AlarmType.REMOVING, "padlock bit0/bit4")
        if flags & 0x2:
            into.alarm(AlarmType.TAMPERING, "padlock bit1")
        return
    if family == "aovx":
        if flags & 0x10000:
            into.alarm(AlarmType.MOVEMENT, "aovx bit16")
        return
    if family == "vl300":
        flags &= ~_VL300_IGNORED
    if not flags & _ALARM_MASK:
        return
    for bit, kind, code in _ALARM_BITS:
        if flags >> bit & 1:
            into.alarm(kind, code)


#: (status word, family) -> the attributes it gives; units repeat a few states. Bounded.
_STATUS: dict[tuple[int, str], dict[str, AttrValue]] = {}


def status_attributes(status: int, family: str, attrs: dict[str, AttrValue]) -> None:
    key = (status, family)
    known = _STATUS.get(key)
    if known is None:
        known = {"ignition": bool(status & 1), "blocked": bool(status & 0x400),
                 "charge": bool(status & 0x4000000)}
        if family == "micodus":
            known["door"] = bool(status & 0x10000)
        elif family == "g1c":
            known["motion"] = bool(status & 0x10)
        if len(_STATUS) >= 4096:
            _STATUS.clear()
        _STATUS[key] = known
    attrs.update(known)


def coordinates(status: int, lat_raw: int, lon_raw: int) -> tuple[float, float]:
    """Millionths of a degree and the hemisphere bits of the status word."""
    lat = lat_raw / 1e6
    lon = lon_raw / 1e6
    if lat > 90.0:
        raise BadField(f"latitude {lat} out of range (more than 90 degrees)")
    if lon > 180.0:
        raise BadField(f"longitude {lon} out of range (more than 180 degrees)")
    return (-lat if status & 4 else lat), (-lon if status & 8 else lon)


def read_items(body: bytes, pos: int, reading: Reading, notes: list[str]) -> None:
    """The additional-information items from `pos` to the end of `body`."""
    attrs = reading.attrs
    table = ITEMS
    extension = False
    n = len(body)
    while pos + 2 <= n:
        item = body[pos]
        size = body[pos + 1]
        start = pos + 2
        end = start + size
        if end > n:
            notes.append("bad_item")
            return
        pos = end
        # The three items nearly every unit sends, without a call.
        if not extension:
            if item == 0x01 and size == 4:
                attrs["odometer"] = int.from_bytes(body[start:end], "big") * 100
                continue
            if item == 0x30 and size == 1:
                attrs["rssi"] = body[start]
                continue
            if item == 0x31 and size == 1:
                reading.satellites = body[start]
                continue
            if item == 0x80:
                # Everything after item 0x80 is OBD data with its own item ids.
                extension = True
                continue
            handler = table.get(item)
            if handler is None:
                continue
            try:
                handler(body[start:end], reading)
            except _ITEM_ERRORS:
                notes.append("bad_item")
        else:
            entry = OBD_EXTENSION.get(item)
            if entry is None or not size:
                continue
            try:
                attrs[entry[0]] = entry[1](body[start:end])
            except _ITEM_ERRORS:
                notes.append("bad_item")


#: Some units follow the basic block with 18 bytes that are no items: battery and mileage (4,
#: skipped), odometer (4, km), battery (2, 0.1 V), area id (4), signal (1), reserved (3).
_FIXED_EXTENSION = 18


def _items_fit(body: bytes) -> bool:
    """Whether the item lengths after the basic block end exactly at the end of the body."""
    pos, n = BASIC_SIZE, len(body)
    while pos + 2 <= n:
        pos += 2 + body[pos + 1]
    return pos == n


def _fixed_extension(body: bytes, attrs: dict[str, AttrValue]) -> None:
    attrs["odometer"] = u32(body, BASIC_SIZE + 4) * 1000
    attrs["battery"] = u16(body, BASIC_SIZE + 8) / 10.0
    attrs["rssi"] = body[BASIC_SIZE + 14]


def decode_location(body: bytes, device_id: str, family: str, offset: timedelta,
                    notes: list[str], *, buffered: bool = False) -> tuple[Position, list[Alarm]]:
    """A 0x0200 body to its Position and one Alarm per alarm it raises."""
    if len(body) < BASIC_SIZE:
        raise BadField(f"location: {len(body)} bytes, the basic block needs {BASIC_SIZE}")
    flags, status, lat_raw, lon_raw, altitude, speed, course, time = _BASIC.unpack_from(body)
    fix_time = local_time(time, offset)
    lat = lat_raw / 1e6
    lon = lon_raw / 1e6
    if lat > 90.0 or lon > 180.0:
        coordinates(status, lat_raw, lon_raw)  # raises, naming the coordinate
    if status & 4:
        lat = -lat
    if status & 8:
        lon = -lon
    reading = Reading(family)
    attrs = reading.attrs
    known = _STATUS.get((status, family))
    if known is None:
        status_attributes(status, family, attrs)
    else:
        attrs.update(known)
    if flags:
        alarm_flags(flags, family, reading)
    if len(body) == BASIC_SIZE + _FIXED_EXTENSION and not _items_fit(body):
        _fixed_extension(body, attrs)
    elif len(body) > BASIC_SIZE:
        read_items(body, BASIC_SIZE, reading, notes)
    if buffered:
        attrs["buffered"] = True
    return _position(device_id, fix_time, bool(status & 2), lat, lon, speed / 10.0,
                     float(course) if course < 360 else None, float(altitude), reading)


def _position(device_id: str, fix_time: datetime, valid: bool, lat: float, lon: float,
              speed: float | None, course: float | None, altitude: float | None,
              reading: Reading) -> tuple[Position, list[Alarm]]:
    attrs = reading.attrs
    alarms = reading.alarms
    if alarms:
        attrs["alarm"] = ",".join(kind.value for kind in alarms)
    position = Position(
        device_id=device_id, fix_time=fix_time, valid=valid, lat=lat, lon=lon,
        speed_kmh=speed, course_deg=course, altitude_m=altitude,
        satellites=reading.satellites, hdop=reading.hdop, attributes=MappingProxyType(attrs))
    events = [Alarm(device_id, kind, code, position=position, event_time=fix_time)
              for kind, code in alarms.items()]
    return position, events


def decode_batch(body: bytes, device_id: str, family: str, offset: timedelta,
                 notes: list[str], *, short_lengths: bool) -> tuple[list[Position], list[Alarm]]:
    """0x0704 (count (2), type (1, non-zero: blind-area data), records of `length (2) | 0x0200
    body`) or 0x0210 (records of `length (1) | body`). A bad record is skipped (`bad_record`);
    a batch without any good record is refused with the first record's reason."""
    positions: list[Position] = []
    alarms: list[Alarm] = []
    if short_lengths:
        pos, buffered, announced = 0, False, None
    else:
        if len(body) < 3:
            raise BadField(f"location batch: {len(body)} bytes, the count and type need 3")
        announced, buffered, pos = u16(body), body[2] != 0, 3
    first_error: str | None = None
    n = len(body)
    width = 1 if short_lengths else 2
    while pos + width <= n:
        size = body[pos] if short_lengths else (body[pos] << 8) | body[pos + 1]
        pos += width
        record = body[pos:pos + size]
        pos += size
        if len(record) < size:
            first_error = first_error or f"location batch: record of {size} bytes cut short"
            notes.append("bad_record")
            break
        try:
            position, raised = decode_location(record, device_id, family, offset, notes,
                                               buffered=buffered)
        except BadField as exc:
            first_error = first_error or exc.reason
            notes.append("bad_record")
            continue
        positions.append(position)
        alarms.extend(raised)
    if not positions:
        raise BadField(first_error or "location batch: no location records")
    if announced is not None and announced != len(positions) and first_error is None:
        notes.append("batch_count_mismatch")
    return positions, alarms


# Compact lock reports 0x5501 / 0x5502 ----------------------------------------------------------

_COMPACT_ALARMS_LOCK: tuple[tuple[int, AlarmType], ...] = (
    (0, AlarmType.OVERSPEED), (1, AlarmType.LOW_POWER), (2, AlarmType.VIBRATION),
    (3, AlarmType.LOW_BATTERY), (5, AlarmType.GEOFENCE_ENTER), (6, AlarmType.GEOFENCE_EXIT),
)
_KNOT = 1.852


def _bcd_int(data: bytes) -> int:
    digits = data.hex()
    if not digits.isdigit():
        raise BadField(f"compact location: {digits.upper()} is not BCD")
    return int(digits)


def _degrees(value: int) -> float:
    """`DDDMMmmmm` (minutes with 4 decimals) to degrees."""
    return value // 1_000_000 + (value % 1_000_000) / 10_000 / 60


def decode_compact(msg_id: int, body: bytes, device_id: str,
                   notes: list[str]) -> tuple[Position, list[Alarm]]:
    """0x5501 (live) / 0x5502 (stored) lock report: time (BCD DDMMYYhhmmss, UTC), latitude
    (4 BCD bytes DDMMmmmm), longitude (9 BCD digits) and a flag nibble (bit 0 fix, bit 1 north,
    bit 2 east), speed (BCD knots), course / 2, signal, satellites, odometer km, battery (%, AA
    or AB: charging), cell id, area code, product, status, alarms, then items."""
    if len(body) < 35:
        raise BadField(f"compact location: {len(body)} bytes, at least 35 needed")
    fix_time = local_time(body[0:6], timedelta(0), day_first=True)
    lat = _degrees(_bcd_int(body[6:10]))
    lon_digits = body[10:15].hex()
    if not lon_digits[:9].isdigit():
        raise BadField(f"compact location: longitude {lon_digits[:9].upper()} is not BCD")
    lon = _degrees(int(lon_digits[:9]))
    flags = body[14] & 0x0F
    if lat > 90.0 or lon > 180.0:
        raise BadField(f"compact location: coordinates {lat}, {lon} out of range")
    if not flags & 2:
        lat = -lat
    if not flags & 4:
        lon = -lon
    speed = _bcd_int(body[15:16]) * _KNOT
    course = body[16] * 2.0
    reading = Reading("")
    attrs = reading.attrs
    attrs["rssi"] = body[17]
    reading.satellites = body[18]
    attrs["odometer"] = u32(body, 19) * 1000
    battery = body[23]
    if battery <= 100:
        attrs["battery_level"] = battery
    elif battery in (0xAA, 0xAB):
        attrs["charge"] = True
    product = body[30]
    status = u16(body, 31)
    alarm = u16(body, 33)
    if product in (1, 2):
        if alarm & 1:
            reading.alarm(AlarmType.LOW_POWER, "compact bit0")
    elif product == 3:
        attrs["blocked"] = bool(status & 0x20)
        for bit, kind in _COMPACT_ALARMS_LOCK:
            if alarm >> bit & 1:
                reading.alarm(kind, f"compact bit{bit}")
    attrs["status"] = status
    if msg_id == 0x5502:
        attrs["buffered"] = True
    altitude: float | None = None
    pos, n = 35, len(body)
    while pos + 2 <= n:
        item, size = body[pos], body[pos + 1]
        value = body[pos + 2:pos + 2 + size]
        pos += 2 + size
        if len(value) < size:
            notes.append("bad_item")
            break
        try:
            if item == 0x02:
                altitude = float(s16(value))
            elif item == 0x10:
                attrs["wake_source"] = value[0]
            elif item == 0x0B:
                lock_command(value, reading)
            elif item == 0x0C:
                attrs["tilt"] = f"[{s16(value)},{s16(value, 2)},{s16(value, 4)}]"
            elif item == 0xFC:
                attrs["geofence"] = value[0]
        except _ITEM_ERRORS:
            notes.append("bad_item")
    return _position(device_id, fix_time, bool(flags & 1), lat, lon, speed, course, altitude,
                     reading)


__all__ = [
    "BASIC_SIZE",
    "alarm_flags",
    "coordinates",
    "decode_batch",
    "decode_compact",
    "decode_location",
    "local_time",
    "read_items",
    "status_attributes",
]
