"""The content of eelink packages, by type, to events (PROTOCOLS-WAVE2 §4).

* Old protocol, 0x02 GPS, 0x04 alarm, 0x05 state, 0x06 SMS: time, lat, lon, speed, course,
  one cell, a flags byte (bit 0: fix valid), then what the type adds.
* New protocol, 0x12 location, 0x14 warning, 0x15 report, 0x16-0x19: time, a mask of the
  blocks that follow (bit 0 GPS, 1-3 cells, 4-6 Wi-Fi, 7 LTE), then an alarm (0x14) or report
  type (0x15) byte, a status word, and for 0x12 battery, ADCs, odometer, steps and sensors.
* 0x03 heartbeat, 0x07 OBD (a status word, or PID values), 0x80 the answer to a command.

Times are UNIX seconds (UTC); coordinates signed 32-bit integers of 1/1,800,000 degree.
A package without a GPS block gives a Status (and an Alarm without position), never a
position made up from an earlier one.
"""

from __future__ import annotations

import re
import struct
from datetime import UTC, datetime
from types import MappingProxyType
from typing import NamedTuple

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

LOGIN = 0x01
GPS = 0x02
HEARTBEAT = 0x03
ALARM = 0x04
STATE = 0x05
SMS = 0x06
OBD = 0x07
LOCATION = 0x12
WARNING = 0x14
REPORT = 0x15
MESSAGE = 0x16
OBD_DATA = 0x17
OBD_BODY = 0x18
OBD_CODE = 0x19
DOWNLINK = 0x80
DATA = 0x81
#: Package types the server does not acknowledge (PROTOCOLS-WAVE2 §4.4).
UNACKNOWLEDGED = frozenset({GPS, DATA})
#: Acknowledgements sent at once: they confirm a handshake, not data the device deletes.
HANDSHAKES = frozenset({LOGIN, HEARTBEAT})

ALARMS: dict[int, AlarmType] = {
    0x01: AlarmType.POWER_OFF,
    0x02: AlarmType.SOS,
    0x03: AlarmType.LOW_BATTERY,
    0x04: AlarmType.VIBRATION,
    0x08: AlarmType.FAULT,  # GPS antenna cut
    0x09: AlarmType.FAULT,  # GPS antenna short circuit
    0x25: AlarmType.REMOVING,
    0x81: AlarmType.LOW_SPEED,
    0x82: AlarmType.OVERSPEED,
    0x83: AlarmType.GEOFENCE_ENTER,
    0x84: AlarmType.GEOFENCE_EXIT,
    0x85: AlarmType.ACCIDENT,
    0x86: AlarmType.FALL_DOWN,
}
#: The code a device sends for each alarm type (the first code where several mean the same).
ALARM_CODES: dict[AlarmType, int] = {}
for _code, _alarm in ALARMS.items():
    ALARM_CODES.setdefault(_alarm, _code)

COORDINATE_UNIT = 1_800_000.0

_OLD = struct.Struct(">IiiBHHHH3sB")  # time lat lon speed course mcc mnc lac cid(24) flags
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_S16 = struct.Struct(">h")
_GPS = struct.Struct(">iihHHB")  # lat lon altitude speed course satellites
_PLAIN = struct.Struct(">IBiihHHBH")  # time mask(0x01) GPS block status
_CELL = struct.Struct(">HHHIB")  # mcc mnc lac cid rssi
_NEIGHBOUR = struct.Struct(">HIB")  # lac cid rssi
_LTE = struct.Struct(">HHHHIHHHb")  # mcc mnc lac tac cid ta pci earfcn rssi
_PID = struct.Struct(">Bi")
_SENSORS = struct.Struct(">hHII")  # temp1/256 humidity/10 illuminance/256 co2
_TAG = struct.Struct(">6sBBBBHhH")  # id signal reserved model version battery temp data
_RESULT = re.compile(
    r"Lat:([NS])(\d+\.\d+).*?Lon:([EW])(\d+\.\d+).*?Course:(\d+\.\d+).*?Speed:(\d+\.\d+)"
    r".*?Date ?Time:(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)", re.S | re.A)


class PackageError(ValueError):
    """A package too short or with impossible values; the message says which."""


class Package(NamedTuple):
    type: int
    serial: int
    #: What follows the serial.
    content: bytes


def split_packages(data: bytes) -> list[Package]:
    """The `67 67` packages of a TCP frame or of a UDP datagram's body, in order."""
    packages: list[Package] = []
    pos = 0
    n = len(data)
    while pos < n:
        if n - pos < 7 or data[pos] != 0x67 or data[pos + 1] != 0x67:
            raise PackageError(f"expected a 67 67 package at byte {pos} of {n}")
        length = data[pos + 3] << 8 | data[pos + 4]
        end = pos + 5 + length
        if length < 2 or end > n:
            raise PackageError(f"package length {length} does not fit the {n - pos - 5} bytes "
                               "after its header")
        packages.append(Package(data[pos + 2], data[pos + 5] << 8 | data[pos + 6],
                                data[pos + 7:end]))
        pos = end
    return packages


def bcd_imei(raw: bytes) -> str:
    """8 BCD bytes (a leading 0 and 15 digits) to the IMEI; PackageError if not BCD."""
    digits = raw.hex()
    if len(digits) != 16 or not digits.isdigit():
        raise PackageError(f"IMEI field {digits!r} is not 8 BCD bytes")
    return digits[1:]


def decode_package(device_id: str, package: Package) -> tuple[Event, ...]:
    """The events of one package of an identified device (not the login)."""
    kind = package.type
    content = package.content
    if kind in (GPS, ALARM, STATE, SMS):
        return _old(device_id, kind, content)
    if LOCATION <= kind <= OBD_CODE:
        return _new(device_id, kind, content)
    if kind == HEARTBEAT:
        values = _status_flags(_U16.unpack_from(content)[0]) if len(content) >= 2 else {}
        return (Heartbeat(device_id, MappingProxyType(values)),)
    if kind == OBD:
        return (_obd(device_id, content),)
    if kind == DOWNLINK:
        return _result(device_id, content)
    return (Status(device_id, attributes=MappingProxyType(
        {"package_type": f"0x{kind:02x}", "undecoded": True})),)


def _time(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _coordinates(lat_raw: int, lon_raw: int) -> tuple[float, float]:
    lat = lat_raw / COORDINATE_UNIT
    lon = lon_raw / COORDINATE_UNIT
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise PackageError(f"coordinates out of range ({lat:.6f}, {lon:.6f})")
    return lat, lon


def _status_flags(status: int) -> dict[str, AttrValue]:
    """The status word of old packages, heartbeats and 0x07: each flag only where the device
    says it is known (the bit below it)."""
    out: dict[str, AttrValue] = {}
    if status & 0x02:
        out["ignition"] = bool(status & 0x04)
    if status & 0x08:
        out["armed"] = bool(status & 0x10)
    if status & 0x20:
        out["blocked"] = not status & 0x40
    if status & 0x80:
        out["charge"] = bool(status & 0x100)
    out["status"] = status
    return out


def _old(device_id: str, kind: int, content: bytes) -> tuple[Event, ...]:
    if len(content) < _OLD.size:
        raise PackageError(f"package 0x{kind:02x} has {len(content)} bytes, "
                           f"at least {_OLD.size} needed")
    seconds, lat_raw, lon_raw, speed, course, mcc, mnc, lac, cid, flags = _OLD.unpack_from(content)
    lat, lon = _coordinates(lat_raw, lon_raw)
    fix_time = _time(seconds)
    attributes: dict[str, AttrValue] = {
        "mcc": mcc, "mnc": mnc, "lac": lac, "cell_id": int.from_bytes(cid, "big"),
    }
    rest = content[_OLD.size:]
    alarm: AlarmType | None = None
    code = 0
    if kind == GPS:
        if len(rest) >= 2:
            attributes.update(_status_flags(_U16.unpack_from(rest)[0]))
        if len(rest) >= 10:
            battery, rssi, adc1, adc2 = struct.unpack_from(">HHHH", rest, 2)
            attributes.update(battery=battery / 1000.0, rssi=rssi, adc1=adc1, adc2=adc2)
    elif kind == ALARM:
        if not rest:
            raise PackageError("alarm package 0x04 has no alarm byte")
        code = rest[0]
        alarm = ALARMS.get(code, AlarmType.GENERAL)
        attributes["alarm"] = alarm.value
    elif kind == STATE and rest:
        event = rest[0]
        attributes["event"] = event
        if event in (1, 2, 3) and len(rest) >= 7:
            attributes.update(_status_flags(_U16.unpack_from(rest, 5)[0]))
    position = Position(device_id=device_id, fix_time=fix_time, valid=bool(flags & 1),
                        lat=lat, lon=lon, speed_kmh=float(speed), course_deg=course % 360.0,
                        attributes=MappingProxyType(attributes))
    if alarm is None:
        return (position,)
    return (position, Alarm(device_id, alarm, f"0x{code:02x}", position=position,
                            event_time=fix_time))


def _new(device_id: str, kind: int, content: bytes) -> tuple[Event, ...]:
    if kind == LOCATION and len(content) >= _PLAIN.size and content[4] == 0x01:
        # The usual location: GPS block only, then the status word.
        seconds, _mask, lat_raw, lon_raw, altitude, speed, course, satellites, status = \
            _PLAIN.unpack_from(content)
        lat = lat_raw / COORDINATE_UNIT
        lon = lon_raw / COORDINATE_UNIT
        if -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0:
            attributes: dict[str, AttrValue] = {}
            _new_status(status, attributes)
            _location_extras(content, _PLAIN.size, attributes)
            return (Position(device_id=device_id, fix_time=_time(seconds),
                             valid=bool(status & 0x01), lat=lat, lon=lon,
                             speed_kmh=float(speed), course_deg=course % 360.0,
                             altitude_m=float(altitude), satellites=satellites,
                             attributes=MappingProxyType(attributes)),)
    return _blocks(device_id, kind, content)


def _blocks(device_id: str, kind: int, content: bytes) -> tuple[Event, ...]:
    """Any new-protocol package, block by block (`_new` shortcuts the usual one)."""
    if len(content) < 5:
        raise PackageError(f"package 0x{kind:02x} has {len(content)} bytes, at least 5 needed")
    seconds = _U32.unpack_from(content)[0]
    mask = content[4]
    pos = 5
    event_time = _time(seconds)
    attributes: dict[str, AttrValue] = {}
    gps: tuple[float, float, int, int, int, int] | None = None
    try:
        if mask & 0x01:
            lat_raw, lon_raw, altitude, speed, course, satellites = _GPS.unpack_from(content, pos)
            pos += _GPS.size
            lat, lon = _coordinates(lat_raw, lon_raw)
            gps = (lat, lon, altitude, speed, course, satellites)
        if mask & 0x02:
            mcc, mnc, lac, cid, rssi = _CELL.unpack_from(content, pos)
            pos += _CELL.size
            attributes.update(mcc=mcc, mnc=mnc, lac=lac, cell_id=cid, rssi=rssi)
        cells = 1 if mask & 0x02 else 0
        for bit in (0x04, 0x08):
            if mask & bit:
                _NEIGHBOUR.unpack_from(content, pos)
                pos += _NEIGHBOUR.size
                cells += 1
        wifi = 0
        for bit in (0x10, 0x20, 0x40):
            if mask & bit:
                if len(content) < pos + 7:
                    raise PackageError("Wi-Fi block cut short")
                pos += 7
                wifi += 1
        if mask & 0x80:
            pos, lte_cells, lte_wifi = _lte(content, pos, attributes)
            cells += lte_cells
            wifi += lte_wifi
        if cells:
            attributes["cell_count"] = cells
        if wifi:
            attributes["wifi_count"] = wifi
        alarm: AlarmType | None = None
        code = 0
        if kind == WARNING:
            code = content[pos]
            pos += 1
            alarm = ALARMS.get(code, AlarmType.GENERAL)
            attributes["alarm"] = alarm.value
        elif kind == REPORT:
            attributes["report_type"] = content[pos]
            pos += 1
        valid = False
        if kind in (LOCATION, WARNING, REPORT):
            status = _U16.unpack_from(content, pos)[0]
            pos += 2
            valid = bool(status & 0x01)
            _new_status(status, attributes)
        if kind == LOCATION:
            _location_extras(content, pos, attributes)
    except (struct.error, IndexError):
        raise PackageError(f"package 0x{kind:02x} is cut short (mask 0x{mask:02x}, "
                           f"{len(content)} bytes)") from None
    frozen = MappingProxyType(attributes)
    raw_code = f"0x{code:02x}"
    if gps is None:
        status_event = Status(device_id, event_time=event_time, attributes=frozen)
        if alarm is None:
            return (status_event,)
        return (status_event, Alarm(device_id, alarm, raw_code, event_time=event_time,
                                    attributes=frozen))
    lat, lon, altitude, speed, course, satellites = gps
    position = Position(device_id=device_id, fix_time=event_time, valid=valid, lat=lat, lon=lon,
                        speed_kmh=float(speed), course_deg=course % 360.0,
                        altitude_m=float(altitude), satellites=satellites, attributes=frozen)
    if alarm is None:
        return (position,)
    return (position, Alarm(device_id, alarm, raw_code, position=position,
                            event_time=event_time))


def _lte(content: bytes, pos: int, attributes: dict[str, AttrValue]) -> tuple[int, int, int]:
    """The LTE block: radio technology, counts, the serving cell, neighbours, Wi-Fi."""
    count = content[pos + 1]
    pos += 2
    cells = count & 0x07
    wifi = count >> 3 & 0x0F
    if cells:
        mcc, mnc, lac, _tac, cid, _ta, _pci, _earfcn, rssi = _LTE.unpack_from(content, pos)
        pos += _LTE.size + (cells - 1) * 5
        attributes.setdefault("mcc", mcc)
        attributes.setdefault("mnc", mnc)
        attributes.setdefault("lac", lac)
        attributes.setdefault("cell_id", cid)
        attributes.setdefault("rssi", rssi)
    pos += wifi * 7
    if pos > len(content):
        raise PackageError("LTE block cut short")
    return pos, cells, wifi


def _new_status(status: int, attributes: dict[str, AttrValue]) -> None:
    if status & 0x02:
        attributes["ignition"] = bool(status & 0x04)
    if status & 0x08:
        attributes["armed"] = bool(status & 0x10)
        attributes["motion"] = bool(status & 0x200)
    if status & 0x20:
        # Not inverted here, unlike the old protocol's status word.
        attributes["blocked"] = bool(status & 0x40)
    if status & 0x80:
        attributes["charge"] = bool(status & 0x100)
    attributes["gps"] = bool(status & 0x400)
    attributes["status"] = status


def _location_extras(content: bytes, pos: int, attributes: dict[str, AttrValue]) -> None:
    """What a 0x12 package carries after its status word, each part only if present."""
    left = len(content) - pos
    if left >= 2:
        attributes["battery"] = _U16.unpack_from(content, pos)[0] / 1000.0
        pos += 2
        left -= 2
    if left >= 4:
        attributes["adc0"], attributes["adc1"] = struct.unpack_from(">HH", content, pos)
        pos += 4
        left -= 4
    if left >= 4:
        attributes["odometer"] = _U32.unpack_from(content, pos)[0]  # metres
        pos += 4
        left -= 4
    if left >= 4:  # GSM and GPS counters
        pos += 4
        left -= 4
    if left >= 4:
        attributes["steps"] = _U16.unpack_from(content, pos)[0]
        pos += 4  # and the walking time
        left -= 4
    if left >= 12:
        temp1, humidity, illuminance, co2 = _SENSORS.unpack_from(content, pos)
        attributes.update(temp1=temp1 / 256.0, humidity=humidity / 10.0,
                          illuminance=illuminance / 256.0, co2=co2)
        pos += 12
        left -= 12
    if left >= 2:
        attributes["temp2"] = _S16.unpack_from(content, pos)[0] / 16.0
        pos += 2
        left -= 2
    if left >= 2:
        count = content[pos]
        pos += 2  # the count and an id byte
        tags = 0
        for number in range(1, count + 1):  # at most 255, and only while bytes last
            if len(content) < pos + _TAG.size:
                break
            tag_id, _signal, _reserved, _model, _version, battery, temp, data = \
                _TAG.unpack_from(content, pos)
            pos += _TAG.size
            attributes[f"tag{number}_id"] = tag_id.hex()
            attributes[f"tag{number}_battery"] = battery / 1000.0
            attributes[f"tag{number}_temp"] = temp / 256.0
            attributes[f"tag{number}_data"] = data
            tags = number
        if tags:
            attributes["tag_count"] = tags


def _obd(device_id: str, content: bytes) -> Status:
    """0x07: a status word (4 bytes), or a time and (PID, value) pairs."""
    if len(content) == 4:
        return Status(device_id, attributes=MappingProxyType(
            _status_flags(_U16.unpack_from(content)[0])))
    if len(content) < 4 or (len(content) - 4) % _PID.size:
        raise PackageError(f"OBD package 0x07 of {len(content)} bytes is not a time and "
                           "5-byte PID values")
    attributes: dict[str, AttrValue] = {}
    for pid, value in _PID.iter_unpack(content[4:]):
        if pid == 0x89:
            attributes["fuel_consumption"] = value
        elif pid == 0x8A:
            attributes["odometer"] = value * 1000  # the device counts km
        elif pid == 0x8B:
            attributes["fuel"] = value / 10.0
    attributes["obd_values"] = (len(content) - 4) // _PID.size
    return Status(device_id, event_time=_time(_U32.unpack_from(content)[0]),
                  attributes=MappingProxyType(attributes))


def _result(device_id: str, content: bytes) -> tuple[Event, ...]:
    """0x80 from the device: its answer to a server command (`WHERE#` answers with a fix)."""
    if len(content) < 5:
        raise PackageError("command answer 0x80 needs a type byte and a 4-byte id")
    text = content[5:].decode("utf-8", "replace")
    answer = CommandResult(device_id, command="", result=text[:500])
    match = _RESULT.search(text)
    if match is None:
        return (answer,)
    ns, lat_text, ew, lon_text, course, speed, *when = match.groups()
    lat = float(lat_text) * (-1 if ns == "S" else 1)
    lon = float(lon_text) * (-1 if ew == "W" else 1)
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise PackageError(f"answer coordinates out of range ({lat}, {lon})")
    try:
        year, month, day, hour, minute, second = (int(v) for v in when)
        fix_time = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise PackageError("answer date and time are not a calendar time") from None
    position = Position(device_id=device_id, fix_time=fix_time, valid=True, lat=lat, lon=lon,
                        speed_kmh=float(speed), course_deg=float(course) % 360.0)
    return (position, CommandResult(device_id, command="", result=text[:500],
                                    event_time=fix_time))
