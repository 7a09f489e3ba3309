"""The regular gps103 report.

    imei:<id>,<keyword>,<local yymmddhhmm[ss] | yy/mm/dd hh:mm>,<phone|rfid>,F,<UTC hhmmss[.sss]>,
        <A|V>,<ddmm.mmmm>,<N|S>,<dddmm.mmmm>,<E|W>,<knots>,<course>,<altitude>,
        <ignition>,<door>,<fuel1 %>,<fuel2 %>,<temperature>
    imei:<id>,<keyword>,<local time>,<phone>,L,,,<lac hex>,,<cid hex>,,,...   (no fix: cell only)

Firmwares differ in the tail: hemisphere letters may come before the number or be missing, and the
auxiliary fields after the altitude are parsed only as far as they look like what they should be.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from protocols.codec import Decoded, Reply, rejected
from protocols.events import Alarm, AlarmType, Attributes, AttrValue, Event, Position, Status
from protocols.gps103.values import lenient_number, percent
from protocols.units import KMH_PER_KNOT

#: The keyword of the SOS report; the server answers it with `**,imei:<id>,E;` to stop the alarm.
SOS_KEYWORD = "help me"

_ALARMS: dict[str, AlarmType] = {
    SOS_KEYWORD: AlarmType.SOS,
    "low battery": AlarmType.LOW_BATTERY,
    "stockade": AlarmType.GEOFENCE,
    "move": AlarmType.MOVEMENT,
    "speed": AlarmType.OVERSPEED,
    "door alarm": AlarmType.DOOR,
    "ac alarm": AlarmType.POWER_CUT,
    "accident alarm": AlarmType.ACCIDENT,
    "sensor alarm": AlarmType.VIBRATION,
    "bonnet alarm": AlarmType.BONNET,
    "footbrake alarm": AlarmType.FOOT_BRAKE,
    "DTC": AlarmType.FAULT,
}

_NO_ATTRIBUTES: Attributes = MappingProxyType({})
_HEX = re.compile(r"[0-9A-Fa-f]{1,8}\Z")
_DTC = re.compile(r"[PCBU][0-9A-F]{4}\Z")
_MINUTES_PER_DAY = 24 * 60
_ONE_DAY = timedelta(days=1)

# Field positions of the standard layout.
_LOCAL_TIME = 2
_PHONE = 3
_FLAG = 4
_UTC_TIME = 5
_VALIDITY = 6
_COORDINATES = 7
_CELL_LAC = 7
_CELL_CID = 9
_CELL_EXTRAS = 14  # ignition slot of an L frame (its speed/course/altitude slots are empty)


def sos_reply(imei: str) -> Reply:
    """`**,imei:<id>,E;`: acknowledges the SOS so that the device stops repeating it."""
    return Reply(b"**,imei:" + imei.encode("ascii") + b",E;", after_store=True)


def decode_report(raw: bytes, imei: str, fields: list[str]) -> Decoded:
    """Decode an `imei:` report already split at commas (terminator removed)."""
    if len(fields) <= _FLAG:
        return rejected(raw, f"report has {len(fields)} fields, expected at least 5", imei)
    flag = fields[_FLAG]
    if flag == "F":
        try:
            events = _fix_events(imei, fields)
        except ValueError as exc:
            return rejected(raw, str(exc), imei)
    elif flag == "L":
        events = (_cell_event(imei, fields),)
    else:
        return rejected(raw, f"unknown fix flag {flag!r} (expected F or L)", imei)
    replies = (sos_reply(imei),) if fields[1] == SOS_KEYWORD else ()
    return Decoded(raw=raw, device_id=imei, events=events, replies=replies)


def _fix_events(imei: str, fields: list[str]) -> tuple[Event, ...]:
    """Position (and Alarm) of an `F` frame; raises ValueError with the rejection reason.

    This is the hot path of the gateway, hence the inlined field parsing.
    """
    n = len(fields)
    fix_time = fix_time_of(fields[_LOCAL_TIME], fields[_UTC_TIME] if n > _UTC_TIME else "")
    validity = fields[_VALIDITY] if n > _VALIDITY else ""
    if validity == "A":
        valid = True
    elif validity == "V":
        valid = False
    else:
        raise ValueError(f"unknown validity flag {validity!r} (expected A or V)")

    # Hemisphere letters may precede the number (`N,5306.64155,E,00700.77848`), follow it, or be
    # missing altogether; an empty field after the longitude is an empty E/W slot.
    i = _COORDINATES
    lat_hemisphere = lon_hemisphere = ""
    if i < n and fields[i] in ("N", "S"):
        lat_hemisphere = fields[i]
        i += 1
    lat_text = fields[i] if i < n else ""
    i += 1
    if not lat_hemisphere and i < n and fields[i] in ("N", "S"):
        lat_hemisphere = fields[i]
        i += 1
    lon_before = i < n and fields[i] in ("E", "W")
    if lon_before:
        lon_hemisphere = fields[i]
        i += 1
    lon_text = fields[i] if i < n else ""
    i += 1
    if not lon_before and i < n and fields[i] in ("E", "W", ""):
        lon_hemisphere = fields[i]
        i += 1
    lat = _ddmm(lat_text, "latitude")
    if not lat <= 90.0:
        raise ValueError(f"latitude out of range {lat_text!r}")
    lon = _ddmm(lon_text, "longitude")
    if not lon <= 180.0:
        raise ValueError(f"longitude out of range {lon_text!r}")
    if lat_hemisphere == "S":
        lat = -lat
    if lon_hemisphere == "W":
        lon = -lon

    # Comparisons written so that NaN and infinities fail them.
    speed_kmh = course = altitude = None
    if i < n and fields[i]:
        speed_kmh = _float(fields[i], "speed") * KMH_PER_KNOT
        if not 0.0 <= speed_kmh < 1e6:
            raise ValueError(f"speed out of range {fields[i]!r}")
    if i + 1 < n and fields[i + 1]:
        course = _float(fields[i + 1], "course")
        if not 0.0 <= course <= 360.0:
            raise ValueError(f"course out of range {fields[i + 1]!r}")
    if i + 2 < n and fields[i + 2]:
        altitude = _float(fields[i + 2], "altitude")
        if not -1e6 < altitude < 1e6:
            raise ValueError(f"altitude out of range {fields[i + 2]!r}")

    attributes: dict[str, AttrValue] = {}
    if i + 3 < n:
        _extras(fields, i + 3, attributes)
    keyword = fields[1]
    alarm = None if keyword == "tracker" else _keyword(keyword, fields[_PHONE], attributes)
    if alarm is not None:
        attributes["alarm"] = alarm.value
    position = Position(
        imei, fix_time, valid, lat, lon, speed_kmh, course, altitude, None, None,
        MappingProxyType(attributes) if attributes else _NO_ATTRIBUTES,
    )
    if alarm is None:
        return (position,)
    return (position, Alarm(imei, alarm, keyword, position, fix_time))


def _float(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"invalid {name} {text!r}") from None


def _ddmm(text: str, name: str) -> float:
    """Unsigned `ddmm.mmmm` (any number of degree digits) to degrees; NaN/inf rejected."""
    if not text:
        raise ValueError(f"missing {name}")
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"invalid {name} {text!r}") from None
    if not 0.0 <= number < 1e6:
        raise ValueError(f"invalid {name} {text!r}")
    degrees = number // 100
    minutes = number - degrees * 100
    if minutes >= 60.0:
        raise ValueError(f"minutes out of range in {name} {text!r}")
    return degrees + minutes / 60.0


def _cell_event(imei: str, fields: list[str]) -> Alarm | Status:
    """An `L` frame: no fix, only the serving cell. An alarm keyword still raises the Alarm."""
    n = len(fields)
    attributes: dict[str, AttrValue] = {}
    for index, key in ((_CELL_LAC, "lac"), (_CELL_CID, "cid")):
        if index < n and _HEX.match(fields[index]):
            attributes[key] = int(fields[index], 16)
    _extras(fields, _CELL_EXTRAS, attributes)
    keyword = fields[1]
    alarm = _keyword(keyword, fields[_PHONE], attributes)
    mapping = MappingProxyType(attributes) if attributes else _NO_ATTRIBUTES
    # The local date field has no UTC companion here, so its time zone is unknown: no event time
    # rather than a wrong one (the gateway falls back to the reception time).
    if alarm is not None:
        return Alarm(imei, alarm, keyword, None, None, mapping)
    return Status(imei, None, mapping)


def _keyword(keyword: str, phone: str, attributes: dict[str, AttrValue]) -> AlarmType | None:
    """Apply what the keyword says (it overrides the tail fields); return its alarm, if any."""
    alarm = _ALARMS.get(keyword)
    if alarm is not None:
        return alarm
    if keyword == "tracker" or not keyword:
        return None
    if keyword == "acc on":
        attributes["ignition"] = True
        return None
    if keyword == "acc off":
        attributes["ignition"] = False
        return None
    if keyword.startswith("T:"):
        temperature = lenient_number(keyword[2:])
        if temperature is not None:
            attributes["temp1"] = temperature
        return AlarmType.TEMPERATURE
    if keyword.startswith("oil"):
        if keyword.startswith("oil "):
            level = lenient_number(keyword[4:])
            if level is not None:
                attributes["fuel"] = float(level)
        return AlarmType.FUEL_LEAK
    attributes["event"] = keyword
    if keyword == "rfid" and phone:
        attributes["driver_unique_id"] = phone
    return None


def _extras(fields: list[str], start: int, attributes: dict[str, AttrValue]) -> None:
    """Ignition, door, fuel1, fuel2 (or a DTC), temperature, from `start` on.

    Stops at the first field that does not look like what the slot should hold: firmwares that
    put other data there (`oil1` reports) are left undecoded rather than misread.
    """
    n = len(fields)
    for offset, key in ((0, "ignition"), (1, "door")):
        if start + offset >= n:
            return
        flag = fields[start + offset]
        if flag in ("0", "1"):
            attributes[key] = flag == "1"
        elif flag:
            return
    index = start + 2
    if index >= n:
        return
    if fields[index]:
        fuel1 = percent(fields[index])
        if fuel1 is None:
            return
        attributes["fuel1"] = fuel1
    index += 1
    if index >= n:
        return
    slot = fields[index]
    if slot:
        fuel2 = percent(slot)
        if fuel2 is not None:
            attributes["fuel2"] = fuel2
        elif _DTC.match(slot):
            attributes["dtcs"] = slot
    index += 1
    if index < n and fields[index]:
        temperature = lenient_number(fields[index])
        if temperature is not None:
            attributes["temp1"] = temperature


def fix_time_of(local: str, utc: str) -> datetime:
    """UTC fix time from the device's local date/time field and its UTC time-of-day field.

    The date and hh:mm come from the local field and the seconds from the UTC field; the local
    minus UTC hh:mm difference, wrapped to +-12 h, is the device's time-zone offset and is
    subtracted. Without a usable UTC field the local time is taken as UTC (nothing better is
    known). Raises ValueError naming the bad field.
    """
    text = local
    if not ((len(text) == 12 or len(text) == 10) and text.isascii() and text.isdigit()):
        text = local.replace("/", "").replace(" ", "").replace(":", "")
        if not ((len(text) == 12 or len(text) == 10) and text.isascii() and text.isdigit()):
            raise ValueError(f"invalid local date/time {local!r}")
    # One int() and divmods: this runs for every fix, and is cheaper than slicing.
    value = int(text)
    local_second = 0
    if len(text) == 12:
        value, local_second = divmod(value, 100)
    value, minute = divmod(value, 100)
    value, hour = divmod(value, 100)
    value, day = divmod(value, 100)
    year, month = divmod(value, 100)
    year += 2000

    # UTC time of day `hhmmss[.sss]`. Some firmwares put other numbers there (`31.0`, `0.0`):
    # those mean "no UTC time", not an error.
    head = utc[:6]
    tail = utc[6:]
    if not (
        len(head) == 6
        and head.isascii() and head.isdigit()
        and (not tail or (tail[0] == "." and (len(tail) == 1 or (
            tail[1:].isascii() and tail[1:].isdigit()))))
    ):
        try:
            return datetime(year, month, day, hour, minute, local_second, tzinfo=UTC)
        except ValueError:
            raise ValueError(f"invalid local date/time {local!r}") from None
    utc_value = int(head)
    utc_value, second = divmod(utc_value, 100)
    utc_hour, utc_minute = divmod(utc_value, 100)
    microsecond = int(tail[1:7].ljust(6, "0")) if len(tail) > 1 else 0
    if utc_hour > 23 or utc_minute > 59 or second > 59:
        raise ValueError(f"invalid UTC time {utc!r}")
    # Subtracting the (wrapped) offset from the local hh:mm gives the UTC hh:mm, give or take a
    # day: so only the day needs adjusting.
    delta = (hour - utc_hour) * 60 + minute - utc_minute
    local_minutes = hour * 60 + minute
    if delta <= -_MINUTES_PER_DAY // 2:
        delta += _MINUTES_PER_DAY
    elif delta > _MINUTES_PER_DAY // 2:
        delta -= _MINUTES_PER_DAY
    if hour > 23 or minute > 59:
        raise ValueError(f"invalid local date/time {local!r}")
    try:
        result = datetime(year, month, day, utc_hour, utc_minute, second, microsecond, tzinfo=UTC)
    except ValueError:
        raise ValueError(f"invalid local date/time {local!r}") from None
    utc_minutes = local_minutes - delta
    if utc_minutes < 0:
        return result - _ONE_DAY
    if utc_minutes >= _MINUTES_PER_DAY:
        return result + _ONE_DAY
    return result
