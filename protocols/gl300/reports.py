"""Decoders for the @Track report types (`+RESP:GTxxx` / `+BUFF:GTxxx`) and ACKs (`+ACK:GTxxx`).

Layouts, from PROTOCOLS.md §3 and the Queclink GL300 manual:

* **Numbered** (FRI, GEO, RTL, DOG, STR, CTN, NMR, SOS, TMP, ERI, SPD, PNL, HBM, IGL): a
  `Number` field N (1..15) followed by N points of 12 fields (accuracy, speed, azimuth, altitude,
  lon, lat, GPS time, MCC, MNC, LAC, cell, reserved/mileage), then trailing fields, send time,
  count. What precedes the Number field varies by family (report id/type; GV trackers add
  external power; GTERI adds a mask; GTTMP an alarm type and temperature), so the Number field is
  found structurally: the first field from index 4 whose N points all look like GPS points.
* **GL50x** (GL500/GL530 firmware with `...,<report id>,<report type>,<?>,<temperature>,
  <battery %>,<point of 11 fields>,...`): tried when no Number field fits.
* **Basic heuristic** for every other type: the first pair of fields shaped like 6-decimal
  coordinates is lon,lat; the 4 fields before are accuracy, speed, azimuth, altitude; the next
  field is the GPS time, followed by MCC, MNC, LAC, cell and a reserved/mileage field.

A point with empty coordinates gives no Position; its cell data goes into a Status instead.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from types import MappingProxyType

from protocols.events import (
    Alarm,
    AlarmType,
    AttrValue,
    CommandResult,
    Event,
    Heartbeat,
    Position,
    Status,
)
from protocols.gl300.fields import (
    COORD6,
    FieldError,
    is_vin,
    opt_float,
    opt_int,
    parse_time,
    percent,
    point_shape,
)

Attrs = dict[str, AttrValue]

NUMBERED = frozenset({
    "FRI", "GEO", "RTL", "DOG", "STR", "CTN", "NMR", "SOS", "TMP", "ERI", "SPD", "PNL", "HBM",
    "IGL",
})

ALARMS: dict[str, AlarmType] = {
    "SOS": AlarmType.SOS,
    "SPD": AlarmType.OVERSPEED,
    "TOW": AlarmType.TOW,
    "IDL": AlarmType.IDLE,
    "EPN": AlarmType.POWER_RESTORED,
    "MPN": AlarmType.POWER_RESTORED,
    "EPF": AlarmType.POWER_CUT,
    "MPF": AlarmType.POWER_CUT,
    "BPL": AlarmType.LOW_BATTERY,
    "STT": AlarmType.MOVEMENT,
    "SWG": AlarmType.GEOFENCE,
    "TMP": AlarmType.TEMPERATURE,
    "TEM": AlarmType.TEMPERATURE,
    "JDR": AlarmType.JAMMING,
    "JDS": AlarmType.JAMMING,
    "PNA": AlarmType.POWER_ON,
    "PFA": AlarmType.POWER_OFF,
    "HBM": AlarmType.GENERAL,  # refined from the report type, see _hbm_alarm
}

#: GTHBM report type (GV-series manuals): 0 harsh braking, 1 harsh acceleration, 2 harsh turn.
_HBM: dict[str, AlarmType] = {
    "0": AlarmType.BRAKING,
    "1": AlarmType.ACCELERATION,
    "2": AlarmType.CORNERING,
}

#: Trailing-field index of the battery percentage after the points, for families whose tail is
#: longer than the single battery field of the GL200/GL300: GL500M (`DE`) sends
#: `<?>,<reserved>,<battery %>,...` (corpus records assert 93, 85 and 79 there). `2E` has the same
#: tail shape in its one corpus record; that mapping is inferred from that record only.
_BATTERY_TAIL_INDEX: dict[str, int] = {"DE": 2, "2E": 2}

_IGNITION: dict[str, bool] = {"IGN": True, "VGN": True, "IGF": False, "VGF": False}


class Frame:
    """One split frame and what every event of it shares."""

    __slots__ = ("buffered", "common", "device_id", "fields", "send_time", "type", "version")

    def __init__(self, fields: list[str], msg_type: str, device_id: str, version: str,
                 buffered: bool, send_time: datetime | None, common: Attrs) -> None:
        self.fields = fields
        self.type = msg_type
        self.device_id = device_id
        self.version = version
        self.buffered = buffered
        self.send_time = send_time
        self.common = common


# Structure search ----------------------------------------------------------------------------

def find_numbered(f: list[str]) -> tuple[int, list[bool]] | None:
    """(index of the Number field, shape of each point) for the numbered layout, or None."""
    last = len(f) - 2  # index of the send time
    for k in range(4, min(9, last)):
        s = f[k]
        if len(s) == 1:
            n = ord(s) - 48
            if not 1 <= n <= 9:
                continue
        elif len(s) == 2 and s.isascii() and s.isdigit():
            n = int(s)
            if not 1 <= n <= 15:
                continue
        else:
            continue
        if k + 1 + 12 * n > last:
            continue
        shapes: list[bool] = []
        for p in range(n):
            shape = point_shape(f, k + 1 + 12 * p)
            if shape is None:
                break
            shapes.append(shape)
        else:
            return k, shapes
    return None


def _gl50x(f: list[str]) -> bool:
    """The GL50x layout: one 11-field point at index 9 (see the module docstring)."""
    return (len(f) >= 22 and f[6].isascii() and f[6].isdigit()
            and point_shape(f, 9, strict=False) is not None)


def find_basic(f: list[str]) -> int | None:
    """Index of the accuracy field of the first heuristic GPS point, or None."""
    last = len(f) - 2
    for j in range(8, last - 2):
        if COORD6.fullmatch(f[j]) is not None and COORD6.fullmatch(f[j + 1]) is not None:
            return j - 4
    return None


# Points ---------------------------------------------------------------------------------------

def _cells(f: list[str], i: int, limit: int, into: Attrs) -> None:
    """MCC, MNC, LAC, cell id (and a mileage in the reserved slot) after the point at i."""
    if i + 10 < limit:
        mcc, mnc, lac, cell = f[i + 7], f[i + 8], f[i + 9], f[i + 10]
        try:
            # One try for the common all-valid case (this is the hot path); per-field below.
            if mcc:
                into["mcc"] = int(mcc)
            if mnc:
                into["mnc"] = int(mnc)
            if lac:
                into["lac"] = int(lac, 16)
            if cell:
                into["cell_id"] = int(cell, 16)
        except ValueError:
            for key, text, base in (("mcc", mcc, 10), ("mnc", mnc, 10), ("lac", lac, 16),
                                    ("cell_id", cell, 16)):
                value = opt_int(text, base)
                if value is None:
                    into.pop(key, None)
                else:
                    into[key] = value
    if i + 11 < limit:
        reserved = f[i + 11]
        # The reserved slot holds the mileage in km on newer firmware ("25.2", "280.3");
        # plain integers there ("00", "10800") are something else and are left alone.
        if "." in reserved:
            km = opt_float(reserved)
            if km is not None and km >= 0:
                into["odometer"] = km * 1000.0  # metres


def _position(device_id: str, f: list[str], i: int, attributes: Attrs) -> Position:
    """The Position for the GPS point at f[i] (its shape already checked by point_shape)."""
    lon_text, lat_text = f[i + 4], f[i + 5]
    lat = float(lat_text)
    lon = float(lon_text)
    if not -90.0 <= lat <= 90.0:
        raise FieldError(f"latitude out of range: {lat_text}")
    if not -180.0 <= lon <= 180.0:
        raise FieldError(f"longitude out of range: {lon_text}")
    time_text = f[i + 6]
    try:
        # point_shape checked 14 ASCII digits; fromisoformat checks the calendar.
        fix_time = datetime.fromisoformat(f"{time_text[:8]}T{time_text[8:]}+00:00")
    except ValueError:
        raise FieldError(f"invalid GPS time {time_text!r}") from None
    a, s, c, h = f[i], f[i + 1], f[i + 2], f[i + 3]
    try:
        accuracy = float(a) if a else None
        speed = float(s) if s else None
        course = float(c) if c else None
        altitude = float(h) if h else None
    except ValueError:
        accuracy, speed, course, altitude = opt_float(a), opt_float(s), opt_float(c), opt_float(h)
    # The range checks also drop NaN and infinities (float() accepts "nan" and "inf").
    if accuracy is not None and not 0.0 <= accuracy < 1000.0:
        accuracy = None
    # GPS accuracy 0 means "last known position": the device had no current fix.
    valid = accuracy != 0.0
    if speed is not None:
        if not -1000.0 < speed < 10000.0:
            speed = None
        elif speed < 0.0:
            # -1 marks points the device considers stationary (movement detection).
            speed = 0.0
    if course is not None and not 0.0 <= course <= 360.0:
        course = None
    if altitude is not None and not -100000.0 < altitude < 1000000.0:
        altitude = None
    # Positional arguments: keyword construction of the frozen dataclass is measurably slower
    # on this hot path. Order: device_id, fix_time, valid, lat, lon, speed_kmh, course_deg,
    # altitude_m, satellites, hdop, attributes.
    return Position(device_id, fix_time, valid, lat, lon, speed, course, altitude, None,
                    accuracy if accuracy else None, MappingProxyType(attributes))


# Type-specific fields ---------------------------------------------------------------------------

def _state(value: str, into: Attrs) -> None:
    """Motion state (INF/STT): 0x1x ignition off, 0x2x ignition on, 0x4x no ignition sensing;
    low nibble 1 rest, 2 motion; 0x16/0x1A tow / fake tow."""
    state = opt_int(value, 16)
    if state is None:
        return
    into["state"] = value
    high, low = state >> 4, state & 0x0F
    if high == 2:
        into["ignition"] = True
    elif high == 1:
        into["ignition"] = False
    if low in (1, 2):
        into["motion"] = low == 2
    elif state in (0x16, 0x1A):
        into["tow"] = True


def _numbered_tail(frame: Frame, k: int, n: int, extra: Attrs) -> None:
    f = frame.fields
    tail = f[k + 1 + 12 * n:-2]
    if len(tail) == 1:
        level = percent(tail[0])
        if level is not None:
            extra["battery_level"] = level
    elif len(tail) >= 5 and tail[1].count(":") == 2:
        # GV trackers: mileage, hour meter, ADC 1, ADC 2, backup battery %, device status, ...
        km = opt_float(tail[0])
        if km is not None:
            extra["odometer"] = km * 1000.0
        extra["hours"] = tail[1]
        level = percent(tail[4])
        if level is not None:
            extra["battery_level"] = level
        if len(tail) > 5 and tail[5]:
            extra["device_status"] = tail[5]
    else:
        index = _BATTERY_TAIL_INDEX.get(frame.version[:2].upper())
        if index is not None and index < len(tail):
            level = percent(tail[index])
            if level is not None:
                extra["battery_level"] = level
    if k >= 6 and frame.type not in ("ERI", "TMP"):
        report_type = f[k - 1]
        if report_type:
            extra["report_type"] = report_type
    name = f[3]
    if len(name) == 17 and is_vin(name):
        extra["vin"] = name


_TYPE_FIELDS = frozenset({
    "IGN", "IGF", "VGN", "VGF", "STT", "BPL", "TEM", "TMP", "LSW", "TSW", "JDS", "SWG", "LBC",
    "NMR",
})


def _type_fields(frame: Frame, extra: Attrs) -> None:
    """Fields before the GPS point that some types carry (PROTOCOLS.md §3.3, GL300 manual)."""
    f, t = frame.fields, frame.type
    if t in _IGNITION:
        extra["ignition"] = _IGNITION[t]
        duration = opt_int(f[4])
        if duration is not None:
            extra["duration_s"] = duration
    elif t == "STT":
        _state(f[4], extra)
    elif t == "BPL":
        voltage = opt_float(f[4])
        if voltage is not None:
            extra["battery_voltage"] = voltage
    elif t in ("TEM", "TMP"):
        # <alarm type>,<temperature>: 1 below min, 2 inside range, 3 above max.
        extra["temperature_alarm"] = f[4]
        temperature = opt_float(f[5])
        if temperature is not None:
            extra["temp1"] = temperature
    elif t in ("LSW", "TSW"):
        extra["switch_type"] = f[4]
        state = opt_int(f[5])
        if state is not None:
            extra["switch_state"] = state
    elif t == "JDS":
        extra["jamming_state"] = f[4]
    elif t == "SWG":
        extra["geofence_switch"] = f[4]
    elif t == "LBC":
        extra["phone"] = f[4]
    elif t == "NMR" and f[5] in ("0", "1"):
        # Report type 1: the device started moving; 0: it stopped.
        extra["motion"] = f[5] == "1"


def single_fix(f: list[str], device_id: str, common: Attrs) -> tuple[Event] | None:
    """Hot path for the commonest frame: GTFRI/GTRTL with one point that has a fix and the
    GL200/GL300 tail (battery only), i.e. 22 fields with Number = 1 at index 6.

    It gives exactly what decode_report gives for such a frame (a test checks this): when
    the point at index 7 is a fix, no Number field at index 4 or 5 can fit (their first point
    would put a coordinate where the GPS time must be), so the general search also lands on
    index 6. Returns None when the frame is not of this shape.
    """
    if f[6] != "1" or not point_shape(f, 7):
        return None
    attributes = dict(common)
    _cells(f, 7, 20, attributes)
    level = percent(f[19])
    if level is not None:
        attributes["battery_level"] = level
    if f[5]:
        attributes["report_type"] = f[5]
    name = f[3]
    if len(name) == 17 and is_vin(name):
        attributes["vin"] = name
    return (_position(device_id, f, 7, attributes),)


# Report decoding --------------------------------------------------------------------------------

def decode_report(frame: Frame) -> list[Event]:
    """Positions, an Alarm and/or a Status for a `+RESP:` / `+BUFF:` frame."""
    t = frame.type
    special = _SPECIAL.get(t)
    if special is not None:
        return [special(frame)]

    f = frame.fields
    limit = len(f) - 2
    extra: Attrs = {}
    points: list[tuple[int, bool]] = []  # (index of the accuracy field, has a fix)
    hbm_type: str | None = None
    if t in NUMBERED:
        found = find_numbered(f)
        if found is not None:
            k, shapes = found
            points = [(k + 1 + 12 * p, shape) for p, shape in enumerate(shapes)]
            _numbered_tail(frame, k, len(shapes), extra)
            hbm_type = f[k - 1]
        elif _gl50x(f):
            points = [(9, bool(point_shape(f, 9, strict=False)))]
            temperature = opt_float(f[7])
            if temperature is not None:
                extra["temp1"] = temperature
            level = percent(f[8])
            if level is not None:
                extra["battery_level"] = level
    if not points:
        basic = find_basic(f)
        if basic is not None and point_shape(f, basic, strict=False):
            points = [(basic, True)]
            hbm_type = f[basic - 1] if basic >= 5 else None
    if t in _TYPE_FIELDS and len(f) > 5:
        _type_fields(frame, extra)

    alarm = ALARMS.get(t)
    if alarm is AlarmType.GENERAL and hbm_type is not None:
        alarm = _HBM.get(hbm_type, AlarmType.GENERAL)

    fixes: list[tuple[int, Attrs]] = []
    last_cells: Attrs = {}
    for i, shape in points:
        cells: Attrs = {}
        _cells(f, i, limit, cells)
        if shape:
            fixes.append((i, cells))
        else:
            last_cells = cells

    events: list[Event] = []
    if fixes:
        positions: list[Position] = []
        last = len(fixes) - 1
        for index, (i, cells) in enumerate(fixes):
            attributes = dict(frame.common)
            attributes.update(cells)
            if index == last:
                attributes.update(extra)
                if alarm is not None:
                    attributes["alarm"] = alarm.value
            positions.append(_position(frame.device_id, f, i, attributes))
        events.extend(positions)
        if alarm is not None:
            events.append(Alarm(frame.device_id, alarm, "GT" + t, positions[-1],
                                positions[-1].fix_time, positions[-1].attributes))
        return events

    attributes = dict(frame.common)
    attributes.update(last_cells)
    attributes.update(extra)
    if alarm is not None:
        return [Alarm(frame.device_id, alarm, "GT" + t, None, frame.send_time,
                      MappingProxyType(attributes))]
    return [Status(frame.device_id, frame.send_time, MappingProxyType(attributes))]


def _field(f: list[str], index: int) -> str:
    """f[index] when it lies before the send time, else ''."""
    return f[index] if index < len(f) - 2 else ""


def _inf(frame: Frame) -> Status:
    """GTINF: state, ICCID, RSSI, BER, external power, mileage, reserved, battery voltage,
    charging, LED on, GPS on need, antenna type, antenna state, last fix time, battery %,
    flash type, temperature (GL300 manual §3.3.2)."""
    f = frame.fields
    a = dict(frame.common)
    _state(_field(f, 4), a)
    if _field(f, 5):
        a["iccid"] = f[5]
    rssi = opt_int(_field(f, 6))
    if rssi is not None:
        a["rssi"] = rssi
    external = _field(f, 8)
    if external in ("0", "1"):
        a["external_power"] = external == "1"
    km = opt_float(_field(f, 9))
    if km is not None:
        a["odometer"] = km * 1000.0
    voltage = opt_float(_field(f, 11))
    if voltage is not None:
        a["battery_voltage"] = voltage
    charging = _field(f, 12)
    if charging in ("0", "1"):
        a["charging"] = charging == "1"
    last_fix = parse_time(_field(f, 17))
    if last_fix is not None:
        a["last_fix_time"] = last_fix.isoformat()
    level = percent(_field(f, 18))
    if level is not None:
        a["battery_level"] = level
    temperature = opt_float(_field(f, 20))
    if temperature is not None:
        a["temp1"] = temperature
    return Status(frame.device_id, frame.send_time, MappingProxyType(a))


def _ver(frame: Frame) -> Status:
    """GTVER: device type, firmware version, hardware version (hex `MMmm`)."""
    f = frame.fields
    a = dict(frame.common)
    if _field(f, 4):
        a["device_type"] = f[4]
    if _field(f, 5):
        a["firmware_version"] = f[5]
    if _field(f, 6):
        a["hardware_version"] = f[6]
    return Status(frame.device_id, frame.send_time, MappingProxyType(a))


def _gsm(frame: Frame) -> Status:
    """GTGSM: fix type, then 7 cells of (MCC, MNC, LAC, cell id, RxLev, reserved): 6 neighbours
    and the serving cell last. Kept as `cells` text `mcc-mnc-lac-cid-rxlev;...`."""
    f = frame.fields
    a = dict(frame.common)
    a["fix_type"] = f[3]
    cells: list[str] = []
    for i in range(4, len(f) - 2 - 4, 6):
        mcc, mnc, lac, cid, rxlev = f[i:i + 5]
        if mcc and cid:
            cells.append(f"{mcc}-{mnc}-{lac}-{cid}-{rxlev}")
    if cells:
        a["cells"] = ";".join(cells)
    a["cell_count"] = len(cells)
    return Status(frame.device_id, frame.send_time, MappingProxyType(a))


def _wif(frame: Frame) -> Status:
    """GTWIF: number of access points, then (MAC, RSSI, ...) groups; kept as `wifi` text
    `mac:rssi;...` plus the battery percentage that precedes the send time."""
    f = frame.fields
    a = dict(frame.common)
    aps: list[str] = []
    for i in range(5, len(f) - 3):
        mac = f[i]
        if len(mac) == 12 and opt_int(mac, 16) is not None and opt_int(f[i + 1]) is not None:
            aps.append(f"{mac.lower()}:{f[i + 1]}")
    if aps:
        a["wifi"] = ";".join(aps)
    a["wifi_count"] = len(aps)
    level = percent(f[-3]) if len(f) > 6 else None
    if level is not None:
        a["battery_level"] = level
    return Status(frame.device_id, frame.send_time, MappingProxyType(a))


_SPECIAL: dict[str, Callable[[Frame], Status]] = {
    "INF": _inf,
    "VER": _ver,
    "GSM": _gsm,
    "WIF": _wif,
}


# Acknowledgements --------------------------------------------------------------------------------

def decode_ack(frame: Frame) -> list[Event]:
    """`+ACK:GTHBD` is the heartbeat; any other `+ACK:GTxxx` acknowledges command AT+GTxxx.

    Layout: version, id, name, [sub-command or other fields,] serial number, send time, count.
    """
    f = frame.fields
    a = dict(frame.common)
    if frame.type == "HBD":
        return [Heartbeat(frame.device_id, MappingProxyType(a))]
    middle = f[4:-2]
    if middle and len(middle[-1]) == 4 and opt_int(middle[-1], 16) is not None:
        a["serial_number"] = middle[-1]
        middle = middle[:-1]
    if frame.type == "RTO" and middle:
        a["sub_command"] = middle[0]
    result = ",".join(middle) if middle else "OK"
    return [CommandResult(frame.device_id, frame.type, result, frame.send_time,
                          MappingProxyType(a))]
