"""The position record of `UD`, `UD2`, `UD3`, `UD_LTE`, `UD_WCDMA`, `AL*` and `WT` messages.

    date,time,A|V,lat,N|S,lon,E|W,speed,course,altitude,satellites,rssi,battery,steps,
    tumbles,status,<cells>,<wifi>,<extras>

Coordinates are signed decimal degrees; the hemisphere letter may be empty, and S/W make the
value negative whatever its sign (`-9.000000,W` is 9 degrees west, as `9.000000,W` is). Times
are UTC, speed km/h, altitude metres, status a hex word: the low 16 bits are state (bit 4:
moving), the high bits alarms.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from protocols.events import AlarmType, AttrValue, Position

#: Alarm bits of the status word, in the order they are reported: SOS first, so that a state
#: bit such as low battery can never hide it.
_ALARM_BITS: tuple[tuple[int, AlarmType], ...] = (
    (16, AlarmType.SOS),
    (20, AlarmType.REMOVING),
    (21, AlarmType.FALL_DOWN),
    (22, AlarmType.FALL_DOWN),
    (17, AlarmType.LOW_BATTERY),
    (18, AlarmType.GEOFENCE_EXIT),
    (19, AlarmType.GEOFENCE_ENTER),
    (14, AlarmType.POWER_CUT),
    (0, AlarmType.LOW_BATTERY),
    (1, AlarmType.GEOFENCE_EXIT),
    (2, AlarmType.GEOFENCE_ENTER),
)
_ALARM_MASK = sum(1 << bit for bit, _ in _ALARM_BITS)
#: The bit a device sets for each alarm it raises (the high, alarm half of the status word).
ALARM_BIT: dict[AlarmType, int] = {
    AlarmType.SOS: 16,
    AlarmType.LOW_BATTERY: 17,
    AlarmType.GEOFENCE_EXIT: 18,
    AlarmType.GEOFENCE_ENTER: 19,
    AlarmType.REMOVING: 20,
    AlarmType.FALL_DOWN: 21,
    AlarmType.POWER_CUT: 14,
}
_MOTION_BIT = 1 << 4
_INF = float("inf")
#: Cells and access points decoded at most (a hostile count cannot make a long loop).
_MAX_CELLS = 16
_MAX_WIFI = 32


class PositionError(ValueError):
    """The position record is malformed; the message names the field."""


def alarms_of(status: int) -> list[AlarmType]:
    """Every alarm whose bit is set, SOS first; empty when none is."""
    if not status & _ALARM_MASK:
        return []
    found: list[AlarmType] = []
    for bit, alarm in _ALARM_BITS:
        if status >> bit & 1 and alarm not in found:
            found.append(alarm)
    return found


def parse_position(device_id: str, kind: str, body: str) -> tuple[Position, int, bool]:
    """(position, status word, whether the cell/Wi-Fi block was readable) of a record.

    Raises PositionError naming the field that is wrong.
    """
    fields = body.split(",")
    try:
        return _fast(device_id, fields)
    except (ValueError, OverflowError):
        # Anything unusual (empty numbers, lenient dates, bad fields) takes the checked path,
        # which reads what it can and names what it cannot.
        return _checked(device_id, kind, fields)


def _fast(device_id: str, fields: list[str]) -> tuple[Position, int, bool]:
    """The common well-formed record, with fewer checks per field: ValueError for anything
    the checked path must look at. Accepts a subset of what `_checked` accepts, with the
    same result."""
    (date, time, flag, lat_text, ns, lon_text, ew, speed_text, course_text, altitude_text,
     satellites_text, rssi_text, battery_text, steps_text, _tumbles, status_text) = fields[:16]
    ymd = _DATE_CACHE.get(date) or _date(date)
    if len(time) != 6 or not time.isdigit():
        raise ValueError("time")
    hour, rest = divmod(int(time), 10000)
    minute, second = divmod(rest, 100)
    fix_time = datetime(ymd[0], ymd[1], ymd[2], hour, minute, second, tzinfo=UTC)
    if flag != "A" and flag != "V":
        raise ValueError("flag")
    lat = float(lat_text)
    lon = float(lon_text)
    if ns == "S":
        lat = -abs(lat)
    elif ns != "N" and ns:
        raise ValueError("hemisphere")
    if ew == "W":
        lon = -abs(lon)
    elif ew != "E" and ew:
        raise ValueError("hemisphere")
    speed = float(speed_text)
    course = float(course_text)
    altitude = float(altitude_text)
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0 and 0.0 <= speed < _INF
            and 0.0 <= course <= 360.0 and -_INF < altitude < _INF):
        raise ValueError("range")
    return _build(device_id, fix_time, flag, lat, lon, speed, course, altitude,
                  int(satellites_text), int(rssi_text), int(battery_text), int(steps_text),
                  int(status_text, 16), fields)


def _checked(device_id: str, kind: str, fields: list[str]) -> tuple[Position, int, bool]:
    if len(fields) < 16:
        raise PositionError(
            f"{kind} position has {len(fields)} fields, expected at least 16")
    date, time, flag, lat_text, ns, lon_text, ew = fields[:7]
    fix_time = _fix_time(date, time)
    if flag not in ("A", "V"):
        raise PositionError(f"{kind} validity flag must be A or V, got {flag[:8]!r}")
    try:
        lat = float(lat_text)
    except ValueError:
        raise PositionError(f"{kind} latitude {lat_text[:16]!r} is not a number") from None
    try:
        lon = float(lon_text)
    except ValueError:
        raise PositionError(f"{kind} longitude {lon_text[:16]!r} is not a number") from None
    if ns == "S":
        lat = -abs(lat)
    elif ns not in ("N", ""):
        raise PositionError(f"{kind} latitude hemisphere must be N or S, got {ns[:8]!r}")
    if ew == "W":
        lon = -abs(lon)
    elif ew not in ("E", ""):
        raise PositionError(f"{kind} longitude hemisphere must be E or W, got {ew[:8]!r}")
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise PositionError(f"{kind} coordinates out of range ({lat_text[:16]}, "
                            f"{lon_text[:16]})")
    speed = _number(fields[7], "speed", kind)
    course = _number(fields[8], "course", kind)
    altitude = _number(fields[9], "altitude", kind)
    satellites = _integer(fields[10], "satellites", kind)
    rssi = _integer(fields[11], "rssi", kind)
    battery = _integer(fields[12], "battery", kind)
    steps = _integer(fields[13], "steps", kind)
    status_text = fields[15]
    try:
        status = int(status_text, 16)
    except ValueError:
        raise PositionError(f"{kind} status {status_text[:12]!r} is not hex") from None
    if speed < 0 or not 0.0 <= course <= 360.0:
        raise PositionError(f"{kind} speed or course out of range ({fields[7][:16]}, "
                            f"{fields[8][:16]})")
    return _build(device_id, fix_time, flag, lat, lon, speed, course, altitude, satellites,
                  rssi, battery, steps, status, fields)


def _build(device_id: str, fix_time: datetime, flag: str, lat: float, lon: float,
           speed: float, course: float, altitude: float, satellites: int, rssi: int,
           battery: int, steps: int, status: int,
           fields: list[str]) -> tuple[Position, int, bool]:
    attributes: dict[str, AttrValue] = {
        "rssi": rssi,
        "battery_level": battery,
        "steps": steps,
        "status": status,
        "motion": bool(status & _MOTION_BIT),
    }
    network_ok = _network(fields, 16, attributes)
    position = Position(
        device_id=device_id,
        fix_time=fix_time,
        valid=flag == "A",
        lat=lat,
        lon=lon,
        speed_kmh=speed,
        course_deg=course % 360.0,
        altitude_m=altitude,
        satellites=satellites,
        attributes=MappingProxyType(attributes),
    )
    return position, status, network_ok


def with_alarm(position: Position, alarm: AlarmType) -> Position:
    """The position with its `alarm` attribute set (the first alarm of an AL message)."""
    attributes = dict(position.attributes)
    attributes["alarm"] = alarm.value
    return Position(
        device_id=position.device_id,
        fix_time=position.fix_time,
        valid=position.valid,
        lat=position.lat,
        lon=position.lon,
        speed_kmh=position.speed_kmh,
        course_deg=position.course_deg,
        altitude_m=position.altitude_m,
        satellites=position.satellites,
        attributes=MappingProxyType(attributes),
    )


_DATE_CACHE: dict[str, tuple[int, int, int]] = {}


def _date(date: str) -> tuple[int, int, int]:
    """(year, month, day) of a `ddmmyy` field; consecutive messages share their date, so it
    is cached (bounded). ValueError for anything but six digits."""
    if len(date) != 6 or not date.isdigit():
        raise ValueError("date")
    ymd = (2000 + int(date[4:6]), int(date[2:4]), int(date[0:2]))
    if len(_DATE_CACHE) >= 4096:
        _DATE_CACHE.clear()
    _DATE_CACHE[date] = ymd
    return ymd


def _fix_time(date: str, time: str) -> datetime:
    if not (len(date) == 6 and date.isdigit() and len(time) == 6 and time.isdigit()):
        raise PositionError(f"date and time must be ddmmyy,hhmmss, got {date[:8]!r},{time[:8]!r}")
    year, month, day = _DATE_CACHE.get(date) or _date(date)
    hour, minute, second = int(time[0:2]), int(time[2:4]), int(time[4:6])
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        pass
    # A device without a fix may send day or month 00 or second 60: carry over, as a lenient
    # calendar does (month 00 is December of the year before).
    if hour > 23 or minute > 59 or second > 60 or month > 12 or day > 31:
        raise PositionError(f"date and time {date},{time} are not a calendar time") from None
    base = datetime(year + (month - 1) // 12, (month - 1) % 12 + 1, 1, tzinfo=UTC)
    return base + timedelta(days=day - 1, hours=hour, minutes=minute, seconds=second)


def _number(text: str, name: str, kind: str) -> float:
    if not text:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise PositionError(f"{kind} {name} {text[:16]!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise PositionError(f"{kind} {name} {text[:16]!r} is not a finite number")
    return value


def _integer(text: str, name: str, kind: str) -> int:
    if not text:
        return 0
    try:
        return int(text)
    except ValueError:
        raise PositionError(f"{kind} {name} {text[:16]!r} is not a whole number") from None


def _cell_number(text: str) -> int:
    """LAC and cell ids are decimal, or hex when they hold a hex letter (`55C0`)."""
    for char in text:
        if char in "abcdefABCDEF":
            return int(text, 16)
    return int(text)


def _network(fields: list[str], start: int, into: dict[str, AttrValue]) -> bool:
    """Cell towers and Wi-Fi access points after the status word. Returns False (adding
    nothing) when the block does not follow the layout: the fix is still good.

    `cells[,ta,mcc,mnc,(lac,cid,rssi)*cells],wifi[,(name,mac,rssi)*wifi],...`: the timing
    advance, MCC and MNC are present only when there are cells.
    """
    if len(fields) <= start or not fields[start]:
        return True
    if fields[start] == "0" and (len(fields) == start + 1 or fields[start + 1] in ("0", "")):
        return True  # no cells and no access points
    found: dict[str, AttrValue] = {}
    try:
        i = start
        cells = int(fields[i])
        i += 1
        if not 0 <= cells <= _MAX_CELLS:
            return False
        if cells:
            mcc_text, mnc_text = fields[i + 1], fields[i + 2]
            i += 3
            first_lac = _cell_number(fields[i])
            first_cid = _cell_number(fields[i + 1])
            if len(fields) < i + 3 * cells:
                return False
            for n in range(cells):
                _cell_number(fields[i + 3 * n])
                _cell_number(fields[i + 3 * n + 1])
            i += 3 * cells
            found.update(mcc=int(mcc_text) if mcc_text else 0,
                         mnc=int(mnc_text) if mnc_text else 0,
                         lac=first_lac, cell_id=first_cid, cell_count=cells)
        if i < len(fields) and fields[i]:
            wifi = int(fields[i])
            i += 1
            if not 0 <= wifi <= _MAX_WIFI or len(fields) < i + 3 * wifi:
                return False
            seen = 0
            for n in range(wifi):
                mac = fields[i + 3 * n + 1]
                if mac and mac != "0" and fields[i + 3 * n + 2]:
                    int(fields[i + 3 * n + 2])
                    seen += 1
            if seen:
                found["wifi_count"] = seen
    except (ValueError, IndexError):
        return False
    into.update(found)
    return True
