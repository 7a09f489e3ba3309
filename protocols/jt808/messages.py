"""Bodies of the JT/T 808 messages other than locations: registration (0x0100), authentication
(0x0102), terminal attributes (0x0107), parameters (0x0104), driver identity (0x0702),
transparent data (0x0900) and the text results (0x0701, 0x1300, 0x6006).

Each function reads one body; a body too short for its layout raises BadField naming the field.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import datetime, timedelta
from types import MappingProxyType

from protocols.events import Alarm, AlarmType, AttrValue, Position, Status
from protocols.imei import is_valid_imei
from protocols.jt808.identity import BadField
from protocols.jt808.items import obd_realtime, text, u16, u32
from protocols.jt808.location import coordinates, local_time, status_attributes

#: What Java's String.trim() removes, which the devices' padded strings rely on.
_CONTROL = "".join(chr(c) for c in range(33))


def _field(body: bytes, start: int, size: int) -> bytes:
    return body[start:start + size]


def _label(value: bytes) -> str | None:
    """A fixed-width text field (NUL or space padded): text if printable, else hex."""
    stripped = value.strip(b"\x00 ")
    if not stripped:
        return None
    if all(0x20 <= b < 0x7F for b in stripped):
        return stripped.decode("ascii")
    return stripped.hex()


# Registration and authentication --------------------------------------------------------------

#: (layout, manufacturer, model, terminal id) field sizes after province and city.
_REGISTRATION_LAYOUTS = {"2011": (5, 8, 7), "2013": (5, 20, 7), "2019": (11, 30, 30)}


def registration(body: bytes, version: int | None) -> dict[str, AttrValue]:
    """0x0100: province (2), city (2), manufacturer, model, terminal id, plate colour (1),
    plate (GBK). The 2019 layout has wider fields; 2011 units send an 8-byte model (bodies
    shorter than the 2013 fixed part, 37 bytes). What the body holds is returned, whatever
    its length: the registration is answered even when the body is short."""
    if version is not None:
        layout = "2019"
    elif len(body) >= 37:
        layout = "2013"
    else:
        layout = "2011"
    maker_size, model_size, id_size = _REGISTRATION_LAYOUTS[layout]
    attrs: dict[str, AttrValue] = {"layout": layout}
    if len(body) >= 4:
        attrs["province"] = u16(body)
        attrs["city"] = u16(body, 2)
    pos = 4
    for name, size in (("manufacturer", maker_size), ("model", model_size),
                       ("terminal_id", id_size)):
        value = _label(_field(body, pos, size))
        if value is not None:
            attrs[name] = value
        pos += size
    if len(body) > pos:
        attrs["plate_color"] = body[pos]
        plate = body[pos + 1:].strip(b"\x00 ").decode("gbk", "replace")
        if plate:
            attrs["plate"] = plate
    terminal_id = attrs.get("terminal_id")
    if isinstance(terminal_id, str) and is_valid_imei(terminal_id):
        attrs["imei"] = terminal_id
    return attrs


def authentication(body: bytes, version: int | None) -> tuple[bytes, dict[str, AttrValue]]:
    """0x0102: the authentication code (the whole body before 2019); 2019: code length (1),
    code, IMEI (15), software version (20)."""
    attrs: dict[str, AttrValue] = {}
    if version is None:
        return body.rstrip(b"\x00 "), attrs
    if not body:
        raise BadField("authentication: empty body, the 2019 layout starts with the code length")
    size = body[0]
    code = body[1:1 + size]
    if len(code) < size:
        raise BadField(f"authentication: code of {size} bytes announced, {len(code)} present")
    imei = _label(_field(body, 1 + size, 15))
    if imei is not None:
        if is_valid_imei(imei):
            attrs["imei"] = imei
        else:
            attrs["terminal_id"] = imei
    software = _label(_field(body, 16 + size, 20))
    if software is not None:
        attrs["version_fw"] = software
    return code.rstrip(b"\x00 "), attrs


# Terminal information ---------------------------------------------------------------------------


def terminal_attributes(body: bytes, version: int | None) -> dict[str, AttrValue]:
    """0x0107: terminal type (2), manufacturer (5), model (20; 30 in 2019), terminal id (7; 30
    in 2019), ICCID (10 BCD), hardware version, firmware version (each length-prefixed),
    GNSS and network capability bytes."""
    model_size, id_size = (30, 30) if version is not None else (20, 7)
    iccid_at = 2 + 5 + model_size + id_size
    if len(body) < iccid_at + 10:
        raise BadField(f"terminal attributes: {len(body)} bytes, the ICCID ends at byte "
                       f"{iccid_at + 10}")
    attrs: dict[str, AttrValue] = {"terminal_type": u16(body)}
    for name, start, size in (("manufacturer", 2, 5), ("model", 7, model_size),
                              ("terminal_id", 7 + model_size, id_size)):
        value = _label(body[start:start + size])
        if value is not None:
            attrs[name] = value
    attrs["iccid"] = body[iccid_at:iccid_at + 10].hex()
    pos = iccid_at + 10
    for name in ("version_hw", "version_fw"):
        if pos >= len(body):
            break
        size = body[pos]
        value = text(body[pos + 1:pos + 1 + size])
        if value:
            attrs[name] = value
        pos += 1 + size
    return attrs


_PARAMETERS: dict[int, str] = {
    0x0001: "heartbeat_interval", 0x0010: "apn", 0x0013: "server", 0x0018: "port",
    0x0027: "sleep_report_interval", 0x0028: "emergency_report_interval",
    0x0029: "report_interval", 0x0055: "overspeed_threshold", 0x0056: "speed_limit_duration",
    0x0080: "odometer", 0x0083: "plate",
}
_TEXT_PARAMETERS = frozenset((0x0010, 0x0013, 0x0083))


def parameters(body: bytes) -> dict[str, AttrValue]:
    """0x0104: answered serial (2), count (1), then `id (4) | length (1) | value`."""
    attrs: dict[str, AttrValue] = {}
    pos = 3
    while pos + 5 <= len(body):
        ident = u32(body, pos)
        size = body[pos + 4]
        value = body[pos + 5:pos + 5 + size]
        pos += 5 + size
        if len(value) < size:
            break
        name = _PARAMETERS.get(ident)
        if name is None or not value:
            continue
        if ident in _TEXT_PARAMETERS:
            attrs[name] = value.decode("gbk", "replace").strip(_CONTROL)
        elif size == 4:
            attrs[name] = u32(value) * 100 if ident == 0x0080 else u32(value)
    return attrs


def driver_identity(body: bytes, offset: timedelta) -> tuple[datetime, dict[str, AttrValue]]:
    """0x0702: card status (1: inserted, 2: removed), time (6 BCD), and for an inserted card
    the read result, driver name, certificate code (20), issuing agency and validity (4 BCD)."""
    if len(body) < 7:
        raise BadField(f"driver identity: {len(body)} bytes, status and time need 7")
    when = local_time(body[1:7], offset)
    attrs: dict[str, AttrValue] = {"card_status": body[0]}
    if body[0] == 1 and len(body) > 8:
        attrs["card_result"] = body[7]
        size = body[8]
        pos = 9 + size
        attrs["driver"] = text(body[9:pos])
        attrs["card_code"] = text(body[pos:pos + 20])
        pos += 20
        if pos < len(body):
            size = body[pos]
            attrs["card_agency"] = text(body[pos + 1:pos + 1 + size])
            pos += 1 + size
            validity = body[pos:pos + 4]
            if len(validity) == 4:
                attrs["card_validity"] = validity.hex()
    return when, attrs


def text_response(body: bytes) -> str:
    """0x1300: answered serial (2), then UTF-16BE text."""
    data = body[2:]
    if len(data) % 2:
        data = data[:-1]
    return data.decode("utf-16-be", "replace").strip(_CONTROL)


def text_report(body: bytes) -> str:
    """0x6006: encoding (1), then GBK text."""
    return body[1:].decode("gbk", "replace").strip(_CONTROL)


def command_response(body: bytes) -> str:
    """0x0701: length (4), then ASCII text."""
    if len(body) < 4:
        raise BadField(f"command response: {len(body)} bytes, the length field needs 4")
    size = u32(body)
    return body[4:4 + size].decode("latin-1").strip(_CONTROL)


def acceleration(body: bytes) -> str:
    """0x2070: samples of time (6) and three signed sign-magnitude axes, as `[[x,y,z],...]`."""
    samples = []
    pos = 0
    while pos + 12 <= len(body):
        axes = []
        for offset in (6, 8, 10):
            raw = u16(body, pos + offset)
            axes.append(-(raw & 0x7FFF) if raw & 0x8000 else raw)
        samples.append("[" + ",".join(str(a) for a in axes) + "]")
        pos += 12
    return "[" + ",".join(samples) + "]"


# Transparent data 0x0900 ------------------------------------------------------------------------

def _scaled(divisor: float) -> Callable[[int], AttrValue]:
    return lambda raw: raw / divisor


def _minus_40(raw: int) -> AttrValue:
    return raw - 40


def _hundred_metres(raw: int) -> AttrValue:
    return raw * 100


def _same(raw: int) -> AttrValue:
    return raw


#: 0x0900/0xF0/0x01 data ids: (name, size, conversion of the big-endian number).
_OBD_IDS: dict[int, tuple[str, int, Callable[[int], AttrValue]]] = {
    0x0102: ("odometer", 4, _hundred_metres), 0x0528: ("odometer", 4, _hundred_metres),
    0x0546: ("odometer", 4, _hundred_metres),
    0x0103: ("fuel", 4, _scaled(100)),
    0x0111: ("fuel_temp", 1, _minus_40),
    0x012E: ("oil_level", 2, _scaled(10)),
    0x052A: ("fuel", 2, _scaled(100)),
    0x0105: ("fuel_used", 4, _scaled(100)), 0x052C: ("fuel_used", 4, _scaled(100)),
    0x014A: ("fuel_consumption", 2, _scaled(100)), 0x0537: ("fuel_consumption", 2, _scaled(100)),
    0x0538: ("fuel_consumption", 2, _scaled(100)), 0x0539: ("fuel_consumption", 2, _scaled(100)),
    0x052B: ("fuel", 1, _same),
    0x052D: ("coolant_temp", 1, _minus_40),
    0x052E: ("air_temp", 1, _minus_40),
    0x0530: ("power", 2, _scaled(1000)),
    0x0535: ("obd_speed", 2, _scaled(10)),
    0x0536: ("rpm", 2, _same),
    0x053D: ("intake_pressure", 2, _scaled(10)),
    0x0544: ("liquid_level", 1, _same),
    0x0547: ("throttle", 1, _same), 0x0548: ("throttle", 1, _same),
}


class Transparent:
    """What a 0x0900 body holds: a Position (with coordinates) and its alarms, or a Status, or
    nothing."""

    __slots__ = ("alarms", "position", "status")

    def __init__(self, position: Position | None = None, status: Status | None = None,
                 alarms: tuple[Alarm, ...] = ()) -> None:
        self.position = position
        self.status = status
        self.alarms = alarms


def transparent(body: bytes, device_id: str, family: str, offset: timedelta) -> Transparent:
    """0x0900: a type byte, then 0x40 text (a `GTSL|...` driver card), 0x41 `$OBD-RT` text,
    0xF0 vehicle data with a time and (for OBD data, fault codes and alarms) coordinates,
    0xFF a fix, 0xF3 collision data, 0x53/0x54 a fix with Bluetooth tags or sensor samples.
    Other types are kept as hex data."""
    if not body:
        raise BadField("transparent data: empty body, the type byte is missing")
    kind = body[0]
    data = body[1:]
    attrs: dict[str, AttrValue] = {}
    if kind == 0x40:
        content = data.decode("latin-1").strip(_CONTROL)
        if content.startswith("GTSL"):
            values = content.split("|")
            if len(values) > 4:
                attrs["driver_unique_id"] = values[4]
        elif content:
            attrs["data"] = content
        return _status(device_id, None, attrs)
    if kind == 0x41:
        obd_realtime(data.decode("latin-1").strip(_CONTROL), attrs)
        return _status(device_id, None, attrs)
    if kind == 0xF0:
        return _vehicle_data(data, device_id, family, offset)
    if kind == 0xFF:
        if len(data) < 20:
            raise BadField(f"transparent fix: {len(data)} bytes, 20 needed")
        fixed = local_time(data[:6], offset)
        lat, lon, altitude, speed, course = struct.unpack_from(">iihHH", data, 6)
        return Transparent(position=Position(
            device_id, fixed, True, lat / 1e6, lon / 1e6, speed_kmh=speed / 10.0,
            course_deg=float(course), altitude_m=float(altitude)))
    if kind == 0xF3:
        when: datetime | None = None  # the collision time, when the data has one
        pos = 0
        while pos + 4 <= len(data):
            item, size = u16(data, pos), u16(data, pos + 2)
            value = data[pos + 4:pos + 4 + size]
            pos += 4 + size
            if item == 0x0002 and len(value) >= 2:
                attrs["collision"] = u16(value) / 256.0 / 100.0
            elif item == 0x0006 and len(value) >= 6:
                when = local_time(value[:6], offset)
        return _status(device_id, when, attrs)
    if kind in (0x53, 0x54):
        return _tagged_fix(kind, data, device_id, family, offset)
    attrs["transparent_type"] = kind
    attrs["data"] = data.hex()
    return _status(device_id, None, attrs)


def _status(device_id: str, when: datetime | None, attrs: dict[str, AttrValue]) -> Transparent:
    if not attrs:
        return Transparent()
    return Transparent(status=Status(device_id, event_time=when,
                                     attributes=MappingProxyType(attrs)))


def _fix(data: bytes, pos: int, device_id: str, family: str, when: datetime,
         attrs: dict[str, AttrValue]) -> Position:
    """Status (4), latitude (4), longitude (4) at `pos`: a fix without speed or course."""
    if len(data) < pos + 12:
        raise BadField(f"vehicle data: the coordinates end at byte {pos + 12}, the body has "
                       f"{len(data)}")
    status, lat_raw, lon_raw = struct.unpack_from(">III", data, pos)
    status_attributes(status, family, attrs)
    lat, lon = coordinates(status, lat_raw, lon_raw)
    return Position(device_id, when, bool(status & 2), lat, lon,
                    attributes=MappingProxyType(attrs))


_F0_ALARMS: dict[int, AlarmType] = {
    0x01: AlarmType.POWER_RESTORED, 0x02: AlarmType.POWER_CUT, 0x0E: AlarmType.IDLE,
    0x1A: AlarmType.ACCELERATION, 0x1B: AlarmType.BRAKING, 0x1C: AlarmType.CORNERING,
    0x25: AlarmType.OVERSPEED, 0x26: AlarmType.ACCIDENT, 0x27: AlarmType.ACCIDENT,
    0x28: AlarmType.ACCIDENT, 0x31: AlarmType.DOOR, 0x32: AlarmType.DOOR,
}


def _vehicle_data(data: bytes, device_id: str, family: str, offset: timedelta) -> Transparent:
    """0x0900/0xF0: time (6 BCD), archive flag, vehicle type, subtype, then subtype data."""
    if len(data) < 9:
        raise BadField(f"vehicle data: {len(data)} bytes, time and subtype need 9")
    when = local_time(data[:6], offset)
    attrs: dict[str, AttrValue] = {}
    if data[6]:
        attrs["buffered"] = True
    subtype = data[8]
    pos = 9
    if subtype == 0x01:
        count = data[pos]
        pos += 1
        for _ in range(count):
            ident, size = u16(data, pos), data[pos + 2]
            value = data[pos + 3:pos + 3 + size]
            pos += 3 + size
            _obd_value(ident, value, attrs)
        return Transparent(position=_fix(data, pos, device_id, family, when, attrs))
    if subtype == 0x02:
        codes: list[str] = []
        systems = u16(data, pos)
        pos += 2
        for _ in range(systems):
            count = u16(data, pos + 4)
            pos += 6
            for _ in range(count):
                size = u16(data, pos + 8)
                codes.append(text(data[pos + 10:pos + 10 + size]))
                pos += 10 + size
        attrs["dtcs"] = " ".join(codes)
        return Transparent(position=_fix(data, pos, device_id, family, when, attrs))
    if subtype == 0x03:
        count = data[pos]
        pos += 1
        raised: dict[AlarmType, str] = {}
        for _ in range(count):
            ident, size = data[pos], data[pos + 1]
            pos += 2 + size
            kind = _F0_ALARMS.get(ident)
            if kind is not None:
                raised.setdefault(kind, f"0x0900.F0.{ident:#04x}")
        if raised:
            attrs["alarm"] = ",".join(kind.value for kind in raised)
        position = _fix(data, pos, device_id, family, when, attrs)
        return Transparent(position=position, alarms=tuple(
            Alarm(device_id, kind, code, position=position, event_time=when)
            for kind, code in raised.items()))
    if subtype == 0x0B and len(data) > 10 and data[9]:
        attrs["vin"] = text(data[10:27])
    elif subtype == 0x15 and len(data) >= 13:
        attrs["event"] = struct.unpack_from(">i", data, 9)[0]
    elif subtype == 0x04 and len(data) >= 14:
        attrs["trip_number"] = u32(data, 10)
    return _status(device_id, when, attrs)


def _obd_value(ident: int, value: bytes, attrs: dict[str, AttrValue]) -> None:
    entry = _OBD_IDS.get(ident)
    if entry is not None and len(value) >= entry[1]:
        name, size, convert = entry
        attrs[name] = convert(int.from_bytes(value[:size], "big"))
    elif ident == 0xFEEC:
        attrs["vin"] = text(value)
    elif len(value) in (1, 2, 4):
        attrs[f"io{ident}"] = int.from_bytes(value, "big")


def _tagged_fix(kind: int, data: bytes, device_id: str, family: str,
                offset: timedelta) -> Transparent:
    """0x53 / 0x54: status, latitude, longitude, altitude, speed, course, time, then
    Bluetooth tags (0x53: total, then index, MAC, signal, data) or sensor samples (0x54)."""
    if len(data) < 24:
        raise BadField(f"tagged fix: {len(data)} bytes, the fix needs 24")
    status, lat_raw, lon_raw, altitude, speed, course = struct.unpack_from(">IIIhHH", data)
    attrs: dict[str, AttrValue] = {}
    status_attributes(status, family, attrs)
    lat, lon = coordinates(status, lat_raw, lon_raw)
    when = local_time(data[18:24], offset)
    pos = 24
    if kind == 0x53:
        pos += 1  # node count over all packets
        while pos + 9 <= len(data):
            index = data[pos] + 1
            attrs[f"tag{index}_mac"] = data[pos + 1:pos + 7].hex()
            rssi = data[pos + 7]
            attrs[f"tag{index}_rssi"] = rssi - 256 if rssi > 127 else rssi
            size = data[pos + 8]
            attrs[f"tag{index}_data"] = data[pos + 9:pos + 9 + size].hex()
            pos += 9 + size
    else:
        while pos + 8 <= len(data):
            mask = u16(data, pos)
            pos += 8
            for bit, name, size in ((1, "light_sensor", 2), (2, "device_temp", 4),
                                    (4, "temp3", 2), (8, "", 6), (16, "air_pressure", 2)):
                if not mask & bit:
                    continue
                if name == "device_temp":
                    attrs["device_temp"] = struct.unpack_from(">h", data, pos)[0] / 10.0
                    attrs["humidity"] = struct.unpack_from(">h", data, pos + 2)[0] / 10.0
                elif name == "temp3":
                    attrs["temp3"] = struct.unpack_from(">h", data, pos)[0] / 10.0
                elif name:
                    attrs[name] = u16(data, pos)
                pos += size
    return Transparent(position=Position(
        device_id, when, bool(status & 2), lat, lon, speed_kmh=speed / 10.0,
        course_deg=float(course), altitude_m=float(altitude),
        attributes=MappingProxyType(attrs)))


__all__ = [
    "Transparent",
    "acceleration",
    "authentication",
    "command_response",
    "driver_identity",
    "parameters",
    "registration",
    "terminal_attributes",
    "text_report",
    "text_response",
    "transparent",
]
