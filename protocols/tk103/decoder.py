"""Decoding tk103 frames into typed events, and the replies the server owes for them."""

from __future__ import annotations

import re
import struct
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from protocols.codec import Decoded, Reply, rejected
from protocols.events import (
    Alarm,
    AlarmType,
    AttrValue,
    CommandResult,
    Event,
    Heartbeat,
    Login,
    Position,
    Status,
    attrs,
)
from protocols.tk103.header import Header, split_header

_UTC = UTC

# The main position record, after the type code. Both layouts: the fixed one packs the fields
# (`151024A2555.3531S02855.3329E004.7055148276.1701000000L00009AA3`), the comma one separates
# them (`240414,A,4527.3513N,00909.9758E,4.80,112825,155.49`). Repetitions are bounded so that
# hostile input cannot make the regex backtrack for long.
_MAIN = re.compile(
    r",?(?P<pre>.{0,40}?),?"                      # BP05 IMEI, BO01 digit, `ALARM,1,164`, `G,2`
    r"(?P<date>\d{6}),?(?P<valid>[AV]),?"
    r" *(?P<lat>\d{0,2}\d\d\.\d{1,8})(?P<ns>[NS]),?"
    r" *(?P<lon>\d{0,3}\d\d\.\d{1,8})(?P<ew>[EW]),?"
    r"(?P<speed>[ \d.]{1,5})(?:\d{0,8},)?"        # km/h, up to 5 characters
    r"(?P<time>\d{6}),?"
    r"(?:"
    r"(?:(?P<course>[ \d.]{6})|(?P<course2>\d\d)),?"
    r"(?P<charge>[01])(?P<ign>[01])(?P<io1>[0-9A-Fa-f])(?P<io2>[0-9A-Fa-f])(?P<io3>[0-9A-Fa-f])"
    r"(?P<fuel>[0-9A-Fa-f]{3}),?L(?P<odo>[0-9A-Fa-f]{1,16})"
    r"|(?P<course3>\d{1,3}\.\d{1,6})"
    r")?"
    r"(?P<tail>.*)",
    re.S | re.A,
)
_TEMPERATURE = re.compile(r"([+-]\d{3}\.\d)", re.A)
_BQ81_ALARM = re.compile(r"ALARM,(\d)", re.A)
_CELL = re.compile(r"\{(\d{1,4}),(\d{1,4}),(\d{1,10}),(\d{1,10})\}", re.A)
_COMMAND_RESULT = re.compile(r"(\d{6}),(\d{6}),\$(.*?)\$?\s*$", re.S | re.A)

_BO01_ALARMS = {
    "1": AlarmType.ACCIDENT,
    "2": AlarmType.SOS,
    "3": AlarmType.VIBRATION,
    "4": AlarmType.LOW_SPEED,
    "5": AlarmType.OVERSPEED,
    "6": AlarmType.GEOFENCE_EXIT,
}
_BQ81_ALARMS = {
    "0": AlarmType.LOW_BATTERY,
    "1": AlarmType.OVERSPEED,
    "2": AlarmType.IDLE,
    "3": AlarmType.ACCELERATION,
    "4": AlarmType.BRAKING,
    "5": AlarmType.TEMPERATURE,
}
# Alarms told by the type code alone (ZCxx: comma dialect; DW3x: with GPS, DW5x: LBS/WiFi).
_TYPE_ALARMS = {
    **dict.fromkeys(("ZC11", "DW31", "DW51"), AlarmType.MOVEMENT),
    **dict.fromkeys(("ZC12", "DW32", "DW52"), AlarmType.LOW_BATTERY),
    **dict.fromkeys(("ZC13", "DW33", "DW53"), AlarmType.POWER_CUT),
    **dict.fromkeys(("ZC15", "ZC29", "DW35", "DW55", "DW42", "DW62"), AlarmType.IGNITION_ON),
    **dict.fromkeys(("ZC16", "DW36", "DW56"), AlarmType.IGNITION_OFF),
    **dict.fromkeys(("ZC17", "DW37", "DW57"), AlarmType.REMOVING),
    **dict.fromkeys(("ZC25", "DW3E", "DW5E"), AlarmType.SOS),
    **dict.fromkeys(("ZC26", "DW3F", "DW5F"), AlarmType.TAMPERING),
    **dict.fromkeys(("ZC27", "DW40", "DW60"), AlarmType.LOW_POWER),
}
# ZC20 battery level steps as the devices report them.
_BATTERY_LEVELS = {2: 10, 3: 20, 4: 50, 5: 80, 6: 100}
# Types whose body is the main position record; any other type that does not parse is unknown.
_POSITION_TYPES = frozenset(
    ("BP02", "BP04", "BP05", "BR00", "BR01", "BR02", "BR05", "BO01", "BQ81", "ZC07")
) | frozenset(t for t in _TYPE_ALARMS if t.startswith(("ZC", "DW3"))) | frozenset(
    f"DW3{c}" for c in "0123456789AB"
)


class _Bad(Exception):
    """A frame that cannot be decoded; carries the reason for the Rejected event."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _int(value: str, field: str, kind: str, base: int = 10) -> int:
    """`value` as an integer, or a rejection naming the field: `ZC20 battery level 'a' is not a
    number`. Only ASCII digits (and hex digits with base 16) are taken."""
    text = value.strip()
    digits = _HEX_DIGITS if base == 16 else _DEC_DIGITS
    if not text or not text.isascii() or not all(c in digits for c in text):
        kind_text = "a hexadecimal number" if base == 16 else "a number"
        raise _Bad(f"{kind} {field} {value[:20]!r} is not {kind_text}")
    return int(text, base)


_DEC_DIGITS = frozenset("0123456789")


def _ascii_digits(text: str) -> bool:
    # str.isdigit() alone takes superscripts and other scripts' digits, which int() refuses.
    return text.isascii() and text.isdigit()
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def decode(frame: bytes, options: object = None) -> Decoded:
    """Decode one tk103 frame (with or without its parentheses) into events and replies.

    Never raises: an undecodable frame gives a single Rejected event saying why. Replies are sent
    only for the fixed layout (`(<id>BP00...)` -> `(<id>AP01HSO)`, `(<id>BP05...)` ->
    `(<id>AP05)`), never for the comma layout, as real servers do.
    """
    device_id: str | None = None
    try:
        text = frame.decode("latin-1")
        if text[:1] == "(" and text[-1:] == ")" and len(text) > 1:
            inner = text[1:-1]  # the framer's output: the common case
        else:
            text = text.strip(" \t\r\n\x00")
            start = 1 if text.startswith("(") else 0
            end = len(text) - 1 if text.endswith(")") and len(text) > start else len(text)
            inner = text[start:end]
        header = split_header(inner)
        if header is None:
            return rejected(frame, "no device id and message type found")
        device_id = header.device_id
        return _decode(frame, header)
    except _Bad as exc:
        return rejected(frame, exc.reason, device_id)
    except Exception:  # last line of defence: decode() must never raise
        # Every known bad field has its own reason; this one means a case nobody foresaw.
        return rejected(frame, "tk103 frame not understood (a field in an unexpected form; "
                        "the frame is kept in the device's recent frames)", device_id)


def _decode(frame: bytes, header: Header) -> Decoded:
    kind = header.type
    if kind == "BP00":
        events: tuple[Event, ...] = (Heartbeat(header.device_id),)
        return _with_reply(frame, header, events, b"AP01HSO", after_store=False)
    if "{" in header.body:
        return _decode_cells(frame, header)
    if kind == "ZC20":
        return _done(frame, header, (_decode_battery(header),))
    if kind == "BZ00":
        return _done(frame, header, (_decode_network(header),))
    if kind == "ZC03":
        return _done(frame, header, (_decode_command_result(header),))
    if kind.startswith("DW5"):
        return _done(frame, header, _decode_lbs_wifi(header))
    if kind == "BV00":
        return _done(frame, header, (_decode_vin(header),))
    if kind == "BS50":
        return _done(frame, header, (_decode_bms_record(header),))
    if kind == "BS51":
        return _done(frame, header, (_decode_bms_blocks(header),))
    return _decode_position(frame, header)


def _done(frame: bytes, header: Header, events: tuple[Event, ...]) -> Decoded:
    return Decoded(raw=frame, device_id=header.device_id, events=events)


def _with_reply(
    frame: bytes, header: Header, events: tuple[Event, ...], code: bytes, *, after_store: bool
) -> Decoded:
    if header.comma_layout:
        return _done(frame, header, events)
    reply = Reply(b"(" + header.device_id.encode("ascii") + code + b")", after_store)
    return Decoded(raw=frame, device_id=header.device_id, events=events, replies=(reply,))


def _login(header: Header, prefix: str) -> Login:
    """BP05 registration; a 15-digit body prefix (IMEI, or `000` + ID) is kept as `imei`."""
    imei = prefix if len(prefix) == 15 and prefix.isascii() and prefix.isdigit() else None
    return Login(header.device_id, attrs(imei=imei))


def utc_datetime(year: int, month: int, day: int, hour: int, minute: int, second: int) -> datetime:
    """A UTC datetime where out-of-range fields carry over, like a lenient calendar.

    Devices without a fix send dates such as `000007` (month 00) and times with second 60:
    month 00 is December of the year before, day 00 the last day of the month before, and so on.
    """
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=_UTC)
    except ValueError:
        pass
    base = datetime(year + (month - 1) // 12, (month - 1) % 12 + 1, 1, tzinfo=_UTC)
    return base + timedelta(days=day - 1, hours=hour, minutes=minute, seconds=second)


_DATE_CACHE: dict[tuple[str, bool], tuple[int, int, int]] = {}


def _date_time(date: str, time: str, day_first: bool) -> datetime:
    # Consecutive frames share their date, so its parsing is cached (bounded: cleared when full).
    key = (date, day_first)
    ymd = _DATE_CACHE.get(key)
    if ymd is None:
        if day_first:
            ymd = (2000 + int(date[4:6]), int(date[2:4]), int(date[0:2]))
        else:
            ymd = (2000 + int(date[0:2]), int(date[2:4]), int(date[4:6]))
        if len(_DATE_CACHE) >= 4096:
            _DATE_CACHE.clear()
        _DATE_CACHE[key] = ymd
    year, month, day = ymd
    hms = int(time)
    hour, rest = divmod(hms, 10000)
    minute, second = divmod(rest, 100)
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=_UTC)
    except ValueError:
        return utc_datetime(year, month, day, hour, minute, second)


def _coordinate(value: str, hemisphere: str, limit: float, name: str) -> float:
    number = float(value)
    degrees = int(number // 100)
    minutes = number - degrees * 100
    if minutes >= 60:
        raise _Bad(f"{name} minutes out of range in {value!r}")
    result = degrees + minutes / 60.0
    if result > limit:
        raise _Bad(f"{name} out of range")
    return -result if hemisphere in "SW" else result


def _decode_position(frame: bytes, header: Header) -> Decoded:
    kind = header.type
    match = _MAIN.match(header.body)
    if match is None:
        if kind in _POSITION_TYPES:
            raise _Bad(f"malformed {kind} position record")
        raise _Bad(f"unknown message type {kind}")
    (
        pre, date, valid, lat_text, ns, lon_text, ew, speed_text, time, course1, course2,
        charge, ignition, io1, io2, io3, fuel, odometer, course3, tail,
    ) = match.groups()
    device_id = header.device_id

    # ddmm.mmmm to degrees, inline: this is the hot path of every position.
    number = float(lat_text)
    degrees = number // 100
    lat = degrees + (number - degrees * 100) / 60.0
    if lat > 90.0 or number - degrees * 100 >= 60.0:
        lat = _coordinate(lat_text, ns, 90.0, "latitude")  # raises with the precise reason
    elif ns == "S":
        lat = -lat
    number = float(lon_text)
    degrees = number // 100
    lon = degrees + (number - degrees * 100) / 60.0
    if lon > 180.0 or number - degrees * 100 >= 60.0:
        lon = _coordinate(lon_text, ew, 180.0, "longitude")
    elif ew == "W":
        lon = -lon
    try:
        speed = float(speed_text)
    except ValueError:
        raise _Bad(f"bad speed field {speed_text!r}") from None
    fix_time = _date_time(date, time, header.comma_layout)

    course: float | None = None
    raw_course = course1 or course2 or course3
    if raw_course is not None:
        try:
            course = float(raw_course)
        except ValueError:
            course = None
        if course is not None and not 0.0 <= course < 360.0:
            course = None  # filler such as `990000` is not a heading

    attributes: dict[str, AttrValue]
    if charge is not None:
        attributes = _io_flags(charge + ignition + io1 + io2 + io3).copy()
        attributes["fuel"] = int(fuel, 16)
        attributes["odometer"] = int(odometer, 16)  # metres
    else:
        attributes = {}
    if tail:
        temperature = _TEMPERATURE.match(tail)
        if temperature is not None:
            attributes["temp1"] = float(temperature.group(1))

    alarm_type, raw_code = _alarm(kind, pre)
    if alarm_type is not None:
        attributes["alarm"] = alarm_type.value
        if alarm_type is AlarmType.IGNITION_ON:
            attributes["ignition"] = True
        elif alarm_type is AlarmType.IGNITION_OFF:
            attributes["ignition"] = False

    position = Position(
        device_id=device_id,
        fix_time=fix_time,
        valid=valid == "A",
        lat=lat,
        lon=lon,
        speed_kmh=speed,
        course_deg=course,
        attributes=MappingProxyType(attributes),
    )
    if kind == "BP05":
        # The fixed layout may carry the IMEI after BP05; the comma layout's ID usually is one.
        prefix = header.device_id if header.comma_layout else pre
        events: tuple[Event, ...] = (_login(header, prefix), position)
        return _with_reply(frame, header, events, b"AP05", after_store=True)
    if alarm_type is not None:
        alarm = Alarm(device_id, alarm_type, raw_code, position=position, event_time=fix_time)
        return _done(frame, header, (position, alarm))
    if kind == "BP04":
        # BP04 is the device's answer to a single-position request (AP00).
        answer = CommandResult(device_id, "AP00", "position", event_time=fix_time)
        return _done(frame, header, (position, answer))
    return _done(frame, header, (position,))


_IO_CACHE: dict[str, dict[str, AttrValue]] = {}


def _io_flags(io: str) -> dict[str, AttrValue]:
    """Charge, ignition and the three IO hex digits as named flags.

    Cached, as a device repeats the same few states: at most 2 * 2 * 22**3 spellings.
    """
    flags = _IO_CACHE.get(io)
    if flags is None:
        io1, io2, io3 = int(io[2], 16), int(io[3], 16), int(io[4], 16)
        flags = {
            "charge": io[0] == "0",  # the device sends 0 while charging
            "ignition": io[1] == "1",
            "in2": bool(io1 & 1),
            "panic": bool(io1 & 2),
            "out2": bool(io1 & 4),
            "blocked": bool(io1 & 8),
            "hs3": bool(io2 & 1),
            "hs2": bool(io2 & 2),
            "hs1": bool(io2 & 4),
            "door": bool(io2 & 8),
            "ls3": bool(io3 & 2),
            "ls2": bool(io3 & 4),
            "ls1": bool(io3 & 8),
        }
        _IO_CACHE[io] = flags
    return flags


def _alarm(kind: str, prefix: str) -> tuple[AlarmType | None, str]:
    if kind == "BO01":
        digit = prefix[:1]
        return _BO01_ALARMS.get(digit, AlarmType.GENERAL), kind + digit
    if kind == "BQ81":
        found = _BQ81_ALARM.search(prefix)
        digit = found.group(1) if found else ""
        return _BQ81_ALARMS.get(digit, AlarmType.GENERAL), f"{kind},ALARM,{digit}"
    return _TYPE_ALARMS.get(kind), kind


def _decode_cells(frame: bytes, header: Header) -> Decoded:
    """`(<id><type>[IMEI],{mcc,mnc,lac,cid}\\n{...}\\n,<8 hex>)`: cell towers, no position."""
    cells = _CELL.findall(header.body)
    if not cells:
        raise _Bad(f"malformed cell list in {header.type} frame")
    if len(cells) != header.body.count("{"):
        bad = next(i for i, block in enumerate(header.body.split("{")[1:], start=1)
                   if _CELL.match("{" + block) is None)
        raise _Bad(f"{header.type} cell {bad} is not {{mcc,mnc,lac,cid}} in decimal digits")
    mcc, mnc, lac, cid = cells[0]
    tail = header.body[header.body.rfind("}") + 1:].strip(", \r\n")
    status = Status(
        header.device_id,
        attributes=attrs(
            mcc=int(mcc),
            mnc=int(mnc),
            lac=int(lac),
            cid=int(cid),
            cell_count=len(cells),
            cells=";".join(",".join(cell) for cell in cells),
            io_state=tail or None,
        ),
    )
    if header.type == "BP05":
        prefix = header.body[: header.body.find(",")] if "," in header.body else ""
        events: tuple[Event, ...] = (_login(header, prefix), status)
        # The frame carries no position: the AP05 acknowledges only the registration.
        return _with_reply(frame, header, events, b"AP05", after_store=False)
    return _done(frame, header, (status,))


def _fields(body: str, count: int, kind: str) -> list[str]:
    fields = body.strip(", \r\n").split(",")
    if len(fields) < count:
        raise _Bad(f"{kind} frame has {len(fields)} fields, expected at least {count}")
    return fields


def _decode_battery(header: Header) -> Status:
    """ZC20: `DDMMYY,HHMMSS,level(2..6),battery centivolts,power decivolts,installed`."""
    date, time, level, battery, power = _fields(header.body, 5, "ZC20")[:5]
    if not (len(date) == 6 and len(time) == 6 and _ascii_digits(date + time)):
        raise _Bad("bad ZC20 date or time")
    battery_cv = _int(battery, "battery voltage", "ZC20")
    power_dv = _int(power, "power voltage", "ZC20")
    return Status(
        header.device_id,
        event_time=_date_time(date, time, True),
        attributes=attrs(
            # 255: not available
            battery_level=_BATTERY_LEVELS.get(_int(level, "battery level", "ZC20")),
            battery=None if battery_cv == 65535 else round(battery_cv * 0.01, 2),
            power=None if power_dv == 65535 else round(power_dv * 0.1, 1),
        ),
    )


def _decode_network(header: Header) -> Status:
    """BZ00: `mcc,mnc,lac(hex),cid(hex),...`: the serving cell."""
    mcc, mnc, lac, cid = _fields(header.body, 4, "BZ00")[:4]
    return Status(
        header.device_id,
        attributes=attrs(mcc=_int(mcc, "MCC", "BZ00"), mnc=_int(mnc, "MNC", "BZ00"),
                         lac=_int(lac, "LAC", "BZ00", 16), cid=_int(cid, "cell id", "BZ00", 16)),
    )


def _decode_command_result(header: Header) -> CommandResult:
    """ZC03: `DDMMYY,HHMMSS,$free text$`: the device's answer to a (usually SMS-style) command."""
    match = _COMMAND_RESULT.match(header.body.lstrip(","))
    if match is None:
        raise _Bad("malformed ZC03 command result")
    return CommandResult(
        header.device_id,
        command="",  # the frame does not say which command it answers
        result=match.group(3),
        event_time=_date_time(match.group(1), match.group(2), True),
    )


def _decode_lbs_wifi(header: Header) -> tuple[Event, ...]:
    """DW5x: `mcc,mnc,lac,cid,n,mac*rssi*ch,...,DDMMYY,HHMMSS`: cell and WiFi, no GPS fix.

    The record only says which towers and access points were seen; turning that into
    coordinates needs an external geolocation service, so this gives a Status, not a Position.
    """
    fields = _fields(header.body, 7, header.type)
    mcc, mnc, lac, cid, count = fields[:5]
    date, time = fields[-2], fields[-1]
    if not (len(date) == 6 and len(time) == 6 and _ascii_digits(date + time)):
        raise _Bad(f"bad {header.type} date or time")
    wifi = fields[5:-2]
    kind = header.type
    if len(wifi) != _int(count, "WiFi count", kind):
        raise _Bad(f"{header.type} announces {count} WiFi access points but carries {len(wifi)}")
    event_time = _date_time(date, time, True)
    alarm_type = _TYPE_ALARMS.get(header.type)
    status = Status(
        header.device_id,
        event_time=event_time,
        attributes=attrs(
            mcc=_int(mcc, "MCC", kind),
            mnc=_int(mnc, "MNC", kind),
            lac=_int(lac, "LAC", kind),
            cid=_int(cid, "cell id", kind),
            wifi_count=len(wifi),
            wifi=";".join(wifi) or None,
            alarm=alarm_type.value if alarm_type else None,
        ),
    )
    if alarm_type is None:
        return (status,)
    return (status, Alarm(header.device_id, alarm_type, header.type, event_time=event_time))


def _decode_vin(header: Header) -> Status:
    """BV00: the vehicle identification number read from the OBD port."""
    vin = header.body.strip()
    if len(vin) != 17 or not vin.isascii() or not vin.isalnum():
        raise _Bad(f"BV00 VIN must be 17 letters and digits, got {len(vin)} characters")
    return Status(header.device_id, attributes=attrs(vin=vin))


#: BS50 battery-management record: 3 header bytes, the cell count, 24 cell voltages (mV), then
#: charge flag, current (0.1 A), pack voltage (0.01 V), level (%), three protection flags, two
#: unused bytes, cycles, fault code, 6 unused bytes, the temperature count, power-board and
#: balancing temperatures, 7 cell temperatures (all deg C + 40), calibrated capacity (0.01 Ah)
#: and discharged capacity. Little-endian.
_BMS = struct.Struct("<3xB24HBHHBBBB2xHB6xBBB7BHI")


def _bms_bytes(text: str, kind: str) -> bytes:
    text = text.strip()
    if len(text) % 2 or not text.isascii() or not all(c in _HEX_DIGITS for c in text):
        raise _Bad(f"{kind} payload is not hexadecimal bytes")
    return bytes.fromhex(text)


def _decode_bms_record(header: Header) -> Status:
    """BS50: the battery-management record of a scooter/e-bike unit, as one hex payload."""
    data = _bms_bytes(header.body, "BS50")
    if len(data) < _BMS.size:
        raise _Bad(f"BS50 battery record has {len(data)} bytes, expected at least {_BMS.size}")
    values = _BMS.unpack_from(data)
    cells, voltages = values[0], values[1:25]
    (charge, current, pack, level, overheat, charge_protection, discharge_protection, cycles,
     fault, temperatures, power_temp, balance_temp) = values[25:37]
    cell_temps, calibration, discharged = values[37:44], values[44], values[45]
    attributes: dict[str, AttrValue] = {
        "cell_count": cells,
        "charging": charge == 0,
        "current": current / 10,
        "battery": pack / 100,
        "battery_level": level,
        "battery_overheat": overheat > 0,
        "charge_protection": charge_protection > 0,
        "discharge_protection": discharge_protection > 0,
        "cycles": cycles,
        "fault_alarm": fault,
        "power_temp": power_temp - 40,
        "balance_temp": balance_temp - 40,
        "calibration_capacity": calibration / 100,
        "discharge_capacity": discharged,
    }
    for index, millivolts in enumerate(voltages[:min(cells, 24)], start=1):
        attributes[f"battery{index}"] = millivolts / 1000
    for index, raw in enumerate(cell_temps[:min(temperatures, 7)], start=1):
        attributes[f"battery_temp{index}"] = raw - 40
    return Status(header.device_id, attributes=MappingProxyType(attributes))


def _decode_bms_blocks(header: Header) -> Status:
    """BS51: battery-management blocks `<key hex>:<bytes hex>,...`; keys 90 (pack voltages,
    current, state of charge), 91 (cell voltage extremes), 92 (temperature extremes) and 96
    (cell temperatures) are read, others kept as hex.

    Unlike BS50, the words are big-endian: read so, the real frames give a 53.3 V pack at 47.6 %
    and cells of 3.804-3.816 V; little-endian (the reference decoder's reading) gives 5632 % and
    59 V cells. A cell temperature byte of 0 is an absent sensor and is left out.
    """
    attributes: dict[str, AttrValue] = {}
    for block in header.body.strip().split(","):
        key_text, colon, payload = block.partition(":")
        if not colon:
            raise _Bad(f"BS51 block {block[:20]!r} is not <key>:<hex bytes>")
        key = _int(key_text, "block key", "BS51", 16)
        data = _bms_bytes(payload, "BS51")
        if key == 0x90 and len(data) >= 8:
            cumulative, gathered, current, soc = struct.unpack_from(">4H", data)
            attributes.update(cumulative_voltage=cumulative / 10, gather_voltage=gathered / 10,
                              current=(current - 30000) / 10, soc=soc / 10)
        elif key == 0x91 and len(data) >= 6:
            high, high_cell, low, low_cell = struct.unpack_from(">HBHB", data)
            attributes.update(max_cell_voltage=high / 1000, max_cell_voltage_cell=high_cell,
                              min_cell_voltage=low / 1000, min_cell_voltage_cell=low_cell)
        elif key == 0x92 and len(data) >= 4:
            high, high_cell, low, low_cell = data[:4]
            attributes.update(max_temp=high - 40, max_temp_cell=high_cell,
                              min_temp=low - 40, min_temp_cell=low_cell)
        elif key == 0x96 and data:
            for index, raw in enumerate(data[1:], start=1):
                if raw:
                    attributes[f"cell_temp{index}"] = raw - 40
        else:
            attributes[f"bms_{key:02x}"] = data.hex()
    return Status(header.device_id, attributes=MappingProxyType(attributes))
