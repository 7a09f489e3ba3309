"""One-unpack decoding of the two packets most units send most often: 0x12 (GT06N GPS+LBS)
and 0x22 (JM-VL0x GPS+LBS with ACC and re-upload flag), in their standard length.

The result is the same as the general path's (`positions.decode_family`), which tests check;
anything unusual (another length, a two-byte MNC, a configured model, a zeroed GPS block,
coordinates out of range) returns None and goes the general way.
"""

from __future__ import annotations

import struct
from types import MappingProxyType

from protocols.events import AttrValue, Position
from protocols.gt06.blocks import COORDINATE_UNIT, GPS_LBS_1, GPS_LBS_2
from protocols.gt06.report import lenient_datetime

# Date (6), GPS info, latitude, longitude, speed, course/status, MCC, MNC, LAC, cell id (3).
_GPS_LBS_1 = struct.Struct(">6BBIIBHHBHBH")
# The same, then ACC, data upload mode, re-upload flag.
_GPS_LBS_2 = struct.Struct(">6BBIIBHHBHBHBBB")


def fast_position(frame: bytes, device_id: str, offset_s: int) -> Position | None:
    """The position of a standard 0x12 / 0x22 packet, or None for any other packet."""
    n = len(frame)
    kind = frame[3]
    if kind == GPS_LBS_2 and n == 39 and frame[2] == 0x22:
        (year, month, day, hour, minute, second, info, lat_raw, lon_raw, speed, flags, mcc, mnc,
         lac, cid_high, cid_low, acc, mode, archive) = _GPS_LBS_2.unpack_from(frame, 4)
    elif kind == GPS_LBS_1 and n == 36 and frame[2] == 0x1F:
        (year, month, day, hour, minute, second, info, lat_raw, lon_raw, speed, flags, mcc, mnc,
         lac, cid_high, cid_low) = _GPS_LBS_1.unpack_from(frame, 4)
        acc = -1
        mode = archive = 0
    else:
        return None
    valid = bool(flags & 0x1000)
    if mcc & 0x8000 or not (valid or lat_raw or lon_raw):
        return None
    lat = lat_raw * COORDINATE_UNIT
    lon = lon_raw * COORDINATE_UNIT
    if lat > 90.0 or lon > 180.0:
        return None
    if not flags & 0x400:
        lat = -lat
    if flags & 0x800:
        lon = -lon
    values: dict[str, AttrValue] = {"packet_type": kind}
    if flags & 0x4000:
        values["ignition"] = bool(flags & 0x8000)
    values["mcc"] = mcc
    values["mnc"] = mnc
    values["lac"] = lac
    values["cid"] = (cid_high << 16) | cid_low
    if acc >= 0:
        values["ignition"] = acc > 0
        values["event"] = mode
        values["archive"] = archive > 0
    return Position(
        device_id=device_id,
        fix_time=lenient_datetime(2000 + year, month, day, hour, minute, second, offset_s),
        valid=valid,
        lat=lat,
        lon=lon,
        speed_kmh=float(speed),
        course_deg=float(flags & 0x3FF),
        satellites=info & 0x0F,
        attributes=MappingProxyType(values),
    )
