"""Text `*XX,<id>,<type>,...#` messages: what each type carries.

    *HQ,<id>,V1,<hhmmss>,<A|V|B>,<DDMM.MMMM>,<N|S>,<DDDMM.MMMM>,<E|W>,<knots>,<course>,
        [<battery>,]<ddmmyy>,<status>[,extra...]#

Positions come in V1 and its kin (any type starting with V: V2, V5, V6, V8, V19, ...) and in
V4, a command answer that carries the device's answer text before its position. NBR, V3 and
LINK carry cells or device state without a fix, VP1 a fix or cells, HTBT / V0 a heartbeat, SMS
free text. The parsers split on commas instead of one pattern per type, so that a layout
variant (a battery field after the course, an empty date, the SIM fields of V19) moves the
fields it is about and nothing else.
"""

from __future__ import annotations

from datetime import datetime

from protocols.events import AlarmType, AttrValue
from protocols.h02.binary import lenient_utc
from protocols.h02.status import is_status, read_status
from protocols.units import KMH_PER_KNOT

#: Extra values kept as io1..ioN at most.
_MAX_EXTRAS = 16


class Bad(ValueError):
    """A message that cannot be decoded; the text says which field and why."""


class Parsed:
    """What one text message says."""

    __slots__ = ("alarm", "attrs", "cells", "course", "event_time", "fix_time", "has_fix",
                 "heartbeat", "lat", "lon", "result", "speed_kmh", "time_missing", "valid")

    def __init__(self) -> None:
        self.has_fix = False
        self.fix_time: datetime | None = None
        #: The message had no date: the fix time is the time the server received it.
        self.time_missing = False
        self.valid = False
        self.lat = 0.0
        self.lon = 0.0
        self.speed_kmh: float | None = None
        self.course: float | None = None
        self.event_time: datetime | None = None
        self.attrs: dict[str, AttrValue] = {}
        self.alarm: AlarmType | None = None
        self.result: str | None = None
        self.heartbeat = False
        self.cells: list[str] = []


def _int(text: str, name: str) -> int:
    text = text.strip()
    if not text.isascii() or not text.isdigit():
        raise Bad(f"{name} {text[:12]!r} is not a number")
    return int(text)


def _float(text: str, name: str) -> float:
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        raise Bad(f"{name} {text[:12]!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")) or value < 0:
        raise Bad(f"{name} {text[:12]!r} is not a number")
    return value


def coordinate(text: str, hemisphere: str, limit: float, name: str) -> float:
    """`DDMM.MMMM`, `-D-M.MMMM` or `DDMMmmmm` (no dot) plus N/S/E/W, to signed degrees."""
    text = text.strip()
    if text.startswith("-"):
        degrees_text, _, minutes_text = text[1:].partition("-")
    elif "." in text:
        dot = text.index(".")
        if dot < 2:
            raise Bad(f"{name} {text[:16]!r} has no minutes")
        degrees_text, minutes_text = text[:dot - 2] or "0", text[dot - 2:]
    elif len(text) >= 7:
        degrees_text, minutes_text = text[:-6], f"{text[-6:-4]}.{text[-4:]}"
    else:
        raise Bad(f"{name} {text[:16]!r} is not DDMM.MMMM")
    if not degrees_text.isascii() or not degrees_text.isdigit():
        raise Bad(f"{name} {text[:16]!r} is not DDMM.MMMM")
    minutes = _float(minutes_text, name)
    value = int(degrees_text) + minutes / 60.0
    if value > limit:
        raise Bad(f"{name} {text[:16]!r} is out of range")
    return -value if hemisphere in ("S", "W") else value


def _time_of_day(text: str) -> tuple[int, int, int] | None:
    if len(text) != 6 or not text.isascii() or not text.isdigit():
        return None
    return int(text[0:2]), int(text[2:4]), int(text[4:6])


def _date(text: str) -> tuple[int, int, int] | None:
    """ddmmyy -> (year, month, day)."""
    if len(text) != 6 or not text.isascii() or not text.isdigit():
        return None
    return 2000 + int(text[4:6]), int(text[2:4]), int(text[0:2])


def _when(date: str, time: str) -> datetime | None:
    ymd = _date(date)
    if ymd is None:
        return None
    hms = _time_of_day(time) or (0, 0, 0)
    return lenient_utc(*ymd, *hms)


def _find_fix(fields: list[str], first: int, last_match: bool) -> int:
    """Index of the N/S field of the position block (time, validity, lat, N/S, lon, E/W)."""
    found = -1
    for j in range(max(first + 3, 0), len(fields) - 2):
        if fields[j] in ("N", "S") and fields[j + 2] in ("E", "W"):
            found = j
            if not last_match:
                break
    return found


def _validity(text: str) -> bool | None:
    """A, V, B, empty, or a number (a coding scheme, which means a valid fix)."""
    if text in ("A", "B"):
        return True
    if text in ("V", ""):
        return False
    if text.isascii() and text.isdigit():
        return True
    return None


def position_message(fields: list[str], kind: str) -> Parsed:
    """V1 and the other position types, and V4 (answer text, then a position)."""
    out = Parsed()
    j = _find_fix(fields, 3, last_match=kind == "V4")
    if kind == "V4":
        out.result = ",".join(fields[3:j - 3] if j >= 0 else fields[3:])
    if j < 0 or (kind != "V4" and j != 6):
        _status_only(fields, out)
        return out
    valid = _validity(fields[j - 2])
    if valid is None:
        raise Bad(f"validity {fields[j - 2][:8]!r} is not A, V or B")
    out.valid = valid
    try:
        out.lat = coordinate(fields[j - 1], fields[j], 90.0, "latitude")
        out.lon = coordinate(fields[j + 1], fields[j + 2], 180.0, "longitude")
    except Bad:
        if fields[j - 1].strip() or fields[j + 1].strip():
            raise
        _status_only(fields, out)  # a message without coordinates (no fix yet)
        return out
    rest = fields[j + 3:]
    if len(rest) < 2:
        raise Bad(f"{kind} message ends before speed and course")
    out.speed_kmh = _float(rest[0], "speed") * KMH_PER_KNOT if rest[0].strip() else None
    out.course = _float(rest[1], "course") if rest[1].strip() else None
    rest = rest[2:]
    # Some devices put a battery field (of unknown scale: not kept) between course and date.
    if len(rest) >= 2 and _date(rest[0]) is None and rest[0].isdigit() and (
            _date(rest[1]) is not None or rest[1] == ""):
        rest = rest[1:]
    date = rest[0] if rest else ""
    rest = rest[1:]
    when = _when(date, fields[j - 3])
    out.has_fix = True
    if when is None:
        out.time_missing = True
    out.fix_time = when
    _status_and_extras(rest, out)
    return out


def _status_only(fields: list[str], out: Parsed) -> None:
    """A position type without a usable position: keep its status word, if it has one."""
    for index in range(len(fields) - 1, 2, -1):
        if is_status(fields[index]):
            out.alarm = read_status(fields[index], out.attrs)
            if index >= 1 and _date(fields[index - 1]) is not None:
                out.event_time = _when(fields[index - 1], fields[3])
            return
    if out.result is None:
        raise Bad("position message without a position or a status word")


def _status_and_extras(rest: list[str], out: Parsed) -> None:
    """The status word after the date and what follows it (or, for V19, the status word last
    after the SIM fields)."""
    while rest and rest[-1] == "":
        rest = rest[:-1]
    if not rest:
        return
    if is_status(rest[0]):
        out.alarm = read_status(rest[0], out.attrs)
        extras = rest[1:]
    elif is_status(rest[-1]):
        out.alarm = read_status(rest[-1], out.attrs)
        return  # the fields before it are the SIM's (phone number, ICCID)
    else:
        extras = rest
    values = out.attrs
    if len(extras) == 6 and _six_values(extras, values):
        return
    for index, value in enumerate(extras[:_MAX_EXTRAS], start=1):
        values[f"io{index}"] = value.strip()


def _six_values(extras: list[str], values: dict[str, AttrValue]) -> bool:
    """odometer, temperature, fuel, altitude, LAC (hex), cell id (hex)."""
    odometer, temperature, fuel, altitude, lac, cid = (x.strip() for x in extras)
    try:
        if not (odometer.isdigit() and "." in fuel):
            return False
        parsed: dict[str, AttrValue] = {
            "odometer": int(odometer), "temp1": int(temperature), "fuel": float(fuel),
            "altitude": int(altitude), "lac": int(lac, 16), "cid": int(cid, 16),
        }
    except ValueError:
        return False
    values.update(parsed)
    return True


def nbr_message(fields: list[str]) -> Parsed:
    """NBR: `<hhmmss>,<mcc>,<mnc>,<delay>,<count>,(<lac>,<cid>,<rssi>,)...,<ddmmyy>,<status>`."""
    out = Parsed()
    if len(fields) < 10:
        raise Bad("NBR message has too few fields")
    mcc = _int(fields[4], "NBR mcc")
    mnc = _int(fields[5], "NBR mnc")
    index = 8
    while index + 1 < len(fields) and not (_date(fields[index]) is not None
                                            and is_status(fields[index + 1])):
        if index + 3 > len(fields):
            raise Bad("NBR cell list is cut short")
        lac, cid, rssi = fields[index:index + 3]
        out.cells.append(f"{mcc},{mnc},{_int(lac, 'NBR lac')},{_int(cid, 'NBR cell id')},"
                         f"{int(rssi) if rssi.lstrip('-').isdigit() else ''}")
        index += 3
    if index + 1 >= len(fields):
        raise Bad("NBR message has no date and status word")
    out.event_time = _when(fields[index], fields[3])
    out.alarm = read_status(fields[index + 1], out.attrs)
    return out


def link_message(fields: list[str]) -> Parsed:
    """LINK: `<hhmmss>,<rssi>,<satellites>,<battery %>,<steps>,<turnovers>,<ddmmyy>,<status>`."""
    if len(fields) < 11 or not is_status(fields[10]):
        raise Bad("LINK message needs time, rssi, satellites, battery, steps, turnovers, "
                  "date and status")
    out = Parsed()
    values = out.attrs
    values["rssi"] = _int(fields[4], "LINK rssi")
    values["satellites"] = _int(fields[5], "LINK satellites")
    values["battery_level"] = _int(fields[6], "LINK battery")
    values["steps"] = _int(fields[7], "LINK steps")
    values["turnovers"] = _int(fields[8], "LINK turnovers")
    out.event_time = _when(fields[9], fields[3])
    out.alarm = read_status(fields[10], values)
    return out


def v3_message(fields: list[str]) -> Parsed:
    """V3: `<hhmmss>,<mcc><mnc>,<count>,(<lac>,<cid>,<x>,<rssi>,)...,<battery hex>,<reboot>,X,
    <ddmmyy>,<status>`."""
    if len(fields) < 11 or not is_status(fields[-1]) or fields[-3] != "X":
        raise Bad("V3 message needs cells, battery, 'X', date and status")
    out = Parsed()
    operator = fields[4]
    if len(operator) < 4 or not operator.isdigit():
        raise Bad(f"V3 operator {operator[:8]!r} is not MCC+MNC digits")
    mcc, mnc = int(operator[:3]), int(operator[3:])
    count = _int(fields[5], "V3 cell count")
    cells = fields[6:-5]
    for index in range(min(count, len(cells) // 4)):
        lac, cid = cells[index * 4], cells[index * 4 + 1]
        out.cells.append(f"{mcc},{mnc},{_int(lac, 'V3 lac')},{_int(cid, 'V3 cell id')},")
    try:
        out.attrs["battery"] = int(fields[-5], 16)
    except ValueError:
        raise Bad(f"V3 battery {fields[-5][:8]!r} is not hex") from None
    out.event_time = _when(fields[-2], fields[3])
    out.alarm = read_status(fields[-1], out.attrs)
    return out


def vp1_message(fields: list[str]) -> Parsed:
    """VP1: `V,<mcc>,<mnc>,<lac>,<cid>,<rssi>Y<lac>,...` (cells) or
    `A,<lat>,<N|S>,<lon>,<E|W>,<knots>,<course>,<ddmmyy>` (a fix, no time of day)."""
    out = Parsed()
    if len(fields) >= 7 and fields[3] == "V":
        mcc = _int(fields[4], "VP1 mcc")
        mnc = _int(fields[5], "VP1 mnc")
        for cell in ",".join(fields[6:]).split("Y"):
            parts = cell.split(",")
            if len(parts) < 3:
                raise Bad("VP1 cell needs lac, cell id and rssi")
            out.cells.append(f"{mcc},{mnc},{_int(parts[0], 'VP1 lac')},"
                             f"{_int(parts[1], 'VP1 cell id')},{_int(parts[2], 'VP1 rssi')}")
        return out
    if len(fields) >= 11 and fields[3] in ("A", "B"):
        out.valid = True
        out.lat = coordinate(fields[4], fields[5], 90.0, "latitude")
        out.lon = coordinate(fields[6], fields[7], 180.0, "longitude")
        out.speed_kmh = _float(fields[8], "speed") * KMH_PER_KNOT
        out.course = _float(fields[9], "course")
        out.fix_time = _when(fields[10], "")
        if out.fix_time is None:
            raise Bad(f"VP1 date {fields[10][:8]!r} is not ddmmyy")
        out.has_fix = True
        return out
    raise Bad("VP1 message is neither cells ('V') nor a fix ('A')")


def heartbeat_message(fields: list[str]) -> Parsed:
    """HTBT / V0, with an optional battery percentage."""
    out = Parsed()
    out.heartbeat = True
    if len(fields) >= 4 and fields[3].isascii() and fields[3].isdigit():
        out.attrs["battery_level"] = int(fields[3])
    return out
