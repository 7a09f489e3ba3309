"""The two other report layouts: OBD data, and the `*`-terminated alternative format.

    imei:<id>,OBD,<yymmddhhmmss>,<odometer>,<fuel instant>,<fuel average>,<engine hours>,<speed>,
        <load %>,<coolant>,<throttle %>,<rpm>,<battery V>,<dtc>,<dtc>...
    imei:<id>,<name>,<event>,<sensor id>,<sensor V>,<hhmmss>,<ddmmyy>,<rssi>,<gps 0|1>,
        <lat deg>,<lon deg>,<km/h>,<course>,<altitude>,<hdop>,<satellites>,<ignition>,<charge>,
        <error>,*
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import MappingProxyType

from protocols.codec import Decoded, rejected
from protocols.events import AttrValue, Position, Status
from protocols.gps103.values import digits, lenient_number, optional_float, percent

_OBD_FIELDS = 13
_ALTERNATIVE_FIELDS = 19


def decode_obd(raw: bytes, imei: str, fields: list[str]) -> Decoded:
    """An OBD report: a Status with the engine values (no fix in this frame)."""
    if len(fields) < _OBD_FIELDS:
        return rejected(
            raw, f"OBD report has {len(fields)} fields, expected at least {_OBD_FIELDS}", imei)
    stamp = fields[2]
    if len(stamp) != 12 or not digits(stamp):
        return rejected(raw, f"invalid OBD date/time {stamp!r}", imei)
    try:
        event_time = datetime(
            2000 + int(stamp[0:2]), int(stamp[2:4]), int(stamp[4:6]),
            int(stamp[6:8]), int(stamp[8:10]), int(stamp[10:12]), tzinfo=UTC)
    except ValueError:
        return rejected(raw, f"invalid OBD date/time {stamp!r}", imei)

    # Firmwares leave slots empty or put a bare sign in them (`+` for an unknown coolant
    # temperature): each value is taken when it parses and left out otherwise.
    attributes: dict[str, AttrValue] = {}
    for index, key in (
        (3, "odometer"),
        (4, "fuel_consumption_instant"),
        (5, "fuel_consumption"),
        (6, "hours"),
        (7, "obd_speed"),
        (9, "coolant_temp"),
        (11, "rpm"),
        (12, "battery"),
    ):
        value = lenient_number(fields[index])
        if value is not None:
            attributes[key] = value
    for index, key in ((8, "engine_load"), (10, "throttle")):
        level = percent(fields[index])
        if level is not None:
            attributes[key] = level
    dtcs = " ".join(code for code in fields[13:] if code)
    if dtcs:
        attributes["dtcs"] = dtcs
    return Decoded(raw=raw, device_id=imei,
                   events=(Status(imei, event_time, MappingProxyType(attributes)),))


def decode_alternative(raw: bytes, imei: str, fields: list[str]) -> Decoded:
    """The alternative format: decimal degrees, speed already in km/h, UTC time and date."""
    if len(fields) < _ALTERNATIVE_FIELDS:
        return rejected(raw, f"alternative-format report has {len(fields)} fields, "
                        f"expected at least {_ALTERNATIVE_FIELDS}", imei)
    hms, dmy = fields[5], fields[6]
    if len(hms) != 6 or len(dmy) != 6 or not digits(hms) or not digits(dmy):
        return rejected(raw, f"invalid time/date {hms!r}/{dmy!r}", imei)
    try:
        fix_time = datetime(
            2000 + int(dmy[4:6]), int(dmy[2:4]), int(dmy[0:2]),
            int(hms[0:2]), int(hms[2:4]), int(hms[4:6]), tzinfo=UTC)
    except ValueError:
        return rejected(raw, f"invalid time/date {hms!r}/{dmy!r}", imei)
    gps = fields[8]
    if not digits(gps):
        return rejected(raw, f"invalid GPS status {gps!r}", imei)
    try:
        lat = optional_float(fields[9], "latitude")
        lon = optional_float(fields[10], "longitude")
        speed = optional_float(fields[11], "speed")
        course = optional_float(fields[12], "course")
        altitude = optional_float(fields[13], "altitude")
        hdop = optional_float(fields[14], "hdop")
    except ValueError as exc:
        return rejected(raw, str(exc), imei)
    if lat is None or lon is None:
        return rejected(raw, "missing coordinates", imei)
    if not -90.0 <= lat <= 90.0:
        return rejected(raw, f"latitude out of range {fields[9]!r}", imei)
    if not -180.0 <= lon <= 180.0:
        return rejected(raw, f"longitude out of range {fields[10]!r}", imei)
    satellites = fields[15]

    attributes: dict[str, AttrValue] = {}
    for index, key in ((2, "event"), (3, "sensor_id"), (18, "error")):
        text = fields[index]
        if text.strip("-"):
            attributes[key] = text
    voltage = lenient_number(fields[4])
    if voltage is not None:
        attributes["sensor_voltage"] = float(voltage)
    rssi = fields[7]
    if digits(rssi):
        attributes["rssi"] = int(rssi)
    for index, key in ((16, "ignition"), (17, "charge")):
        if fields[index] in ("0", "1"):
            attributes[key] = fields[index] == "1"
    position = Position(
        device_id=imei,
        fix_time=fix_time,
        valid=int(gps) > 0,
        lat=lat,
        lon=lon,
        speed_kmh=speed,
        course_deg=course,
        altitude_m=altitude,
        satellites=int(satellites) if digits(satellites) else None,
        hdop=hdop,
        attributes=MappingProxyType(attributes),
    )
    return Decoded(raw=raw, device_id=imei, events=(position,))
