"""The building blocks most gt06 packets share: date, GPS, LBS (cell), status, alarm codes."""

from __future__ import annotations

import struct
from datetime import datetime

from protocols.events import AlarmType
from protocols.gt06.reader import Reader, Truncated
from protocols.gt06.report import Report, lenient_datetime
from protocols.gt06.variants import Model, Variant

#: 1 / 1 800 000 degree: the unit of gt06 coordinates (minutes x 30 000).
COORDINATE_UNIT = 1.0 / 1_800_000.0

# Protocol numbers (the names the packet families go by in vendor documents).
LOGIN = 0x01
GPS = 0x10
GPS_LBS_6 = 0x11
GPS_LBS_1 = 0x12
STATUS = 0x13
STRING = 0x15
GPS_LBS_STATUS_1 = 0x16
WIFI = 0x17  # also GPS_LBS_RFID in the RFID variant
LBS_EXTEND = 0x18
LBS_STATUS = 0x19
GPS_PHONE = 0x1A
GPS_LBS_EXTEND = 0x1E
STRING_INFO = 0x21
GPS_LBS_2 = 0x22
HEARTBEAT = 0x23
LBS_MULTIPLE_3 = 0x24
GPS_LBS_DRIVER = 0x25
GPS_LBS_STATUS_2 = 0x26
GPS_LBS_STATUS_3 = 0x27
LBS_MULTIPLE_1 = 0x28
ADDRESS_REQUEST = 0x2A
LBS_WIFI = 0x2C
GPS_LBS_4 = 0x2D
LBS_MULTIPLE_2 = 0x2E
GPS_LBS_5 = 0x31
GPS_LBS_STATUS_4 = 0x32  # AZ735 GPS when extended
WIFI_5 = 0x33  # AZ735 alarm when extended
X1_GPS = 0x34  # LBS_3 in the SL4X variant
PHOTO_INFO = 0x35
STATUS_2 = 0x36  # photo data when extended, LOCATION_RFID in the TRX16i variant
GPS_LBS_3 = 0x37
GPS_LBS_8 = 0x38
ALARM_MODULE = 0x39
BMS = 0x40
MULTIMEDIA = 0x41
IBUTTON = 0x61
PID = 0x66
WIFI_2 = 0x69
GPS_MODULAR = 0x70
COMMAND_0 = 0x80
COMMAND_1 = 0x81
COMMAND_2 = 0x82
TIME_REQUEST = 0x8A
OBD = 0x8C
INFO = 0x94
ALARM = 0x95
ADDRESS_RESPONSE = 0x97
SERIAL = 0x9B
GPS_LBS_7 = 0xA0
LBS_2 = 0xA1
WIFI_3 = 0xA2  # GPS_LBS_STATUS_5 in the LW4G variant
FENCE_SINGLE = 0xA3  # STATUS_3 in the SEEWORLD variant
FENCE_MULTI = 0xA4
LBS_ALARM = 0xA5
LBS_ADDRESS = 0xA7
WIFI_ALARM = 0xA9
BLUETOOTH_CLOCK = 0xB2
DEVICE_STATUS = 0xF1
PERIPHERAL = 0xF2
WIFI_4 = 0xF3


def read_date(r: Reader, offset_s: int) -> datetime:
    """Six binary bytes YY MM DD hh mm ss in the device's time zone (`offset_s` east of UTC)."""
    b = r.take(6)
    return lenient_datetime(2000 + b[0], b[1], b[2], b[3], b[4], b[5], offset_s)


_STANDARD_GPS = struct.Struct(">6BBIIBH")


def read_gps(report: Report, r: Reader, offset_s: int, *, has_length: bool = False,
             has_satellites: bool = True, has_speed: bool = True, long_speed: bool = False,
             flags_first: bool = False) -> bool:
    """The GPS block: time, satellites, latitude, longitude, speed, course/status word.

    Returns False (and records no fix) when `has_length` and the block's length byte is 0.
    """
    if has_satellites and has_speed and not (has_length or long_speed or flags_first):
        # The common layout in one unpack: it is on the path of nearly every position.
        pos = r.pos
        if pos + 18 > r.end:
            raise Truncated
        year, month, day, hour, minute, second, info, lat_raw, lon_raw, speed, flags = (
            _STANDARD_GPS.unpack_from(r.data, pos))
        r.pos = pos + 18
        when = lenient_datetime(2000 + year, month, day, hour, minute, second, offset_s)
        report.satellites = info & 0x0F
        report.speed_kmh = float(speed)
    else:
        b = r.take(6)
        when = lenient_datetime(2000 + b[0], b[1], b[2], b[3], b[4], b[5], offset_s)
        if has_length and r.u8() == 0:
            report.device_time = when
            return False
        if has_satellites:
            report.satellites = r.u8() & 0x0F
        lat_raw = r.u32()
        lon_raw = r.u32()
        flags = r.u16() if flags_first else 0
        if has_speed:
            report.speed_kmh = float(r.u16() if long_speed else r.u8())
        if not flags_first:
            flags = r.u16()
    lat = lat_raw * COORDINATE_UNIT
    lon = lon_raw * COORDINATE_UNIT
    report.course = float(flags & 0x3FF)
    if not flags & 0x400:  # bit 10 set means north
        lat = -lat
    if flags & 0x800:  # bit 11 set means west
        lon = -lon
    report.set_fix(when, bool(flags & 0x1000), lat, lon)
    if flags & 0x4000:  # bit 15 holds ACC only when bit 14 says so
        report.attrs["ignition"] = bool(flags & 0x8000)
    return True


def read_lbs(report: Report, r: Reader, kind: int, variant: Variant, *,
             has_length: bool) -> bool:
    """One serving cell: MCC, MNC, LAC, cell id (field sizes depend on type and variant)."""
    length = 0
    if has_length:
        length = r.u8()
        if length == 0:
            # An empty cell block; some devices then zero-fill the space a block would take.
            pos = r.pos
            tail = r.data[pos + 9:min(pos + 45, r.end)]
            if not tail.strip(b"\x00"):
                r.skip(min(r.readable(), 45))
            return False
    cell_type = r.u8() if kind in (GPS_LBS_8, ALARM_MODULE) else 0
    mcc = r.u16()
    wide = cell_type >= 3 or kind in (LBS_ALARM, GPS_LBS_7, WIFI_3)
    mnc = r.u16() if mcc & 0x8000 or kind == GPS_LBS_6 or variant is Variant.SL4X else r.u8()
    lac = r.s32() if wide else r.u16()
    if wide or variant is Variant.SL4X:
        cid = r.s64()
    elif (kind in (GPS_LBS_6, IBUTTON, GPS_LBS_DRIVER) or variant is Variant.SEEWORLD
          or (variant is Variant.TRX16I and kind == STATUS_2)):
        cid = r.u32()
    else:
        cid = r.u24()
    if cell_type >= 3:
        r.u16()  # signal strength
    elif kind in (GPS_LBS_8, ALARM_MODULE):
        r.u8()  # signal strength
    values = report.attrs
    values["mcc"] = mcc & 0x7FFF
    values["mnc"] = mnc
    values["lac"] = lac
    values["cid"] = cid
    if length > 9:
        r.skip(length - 9)
    return True


_STATUS_ALARMS: dict[int, AlarmType] = {
    1: AlarmType.VIBRATION,
    2: AlarmType.POWER_CUT,
    3: AlarmType.LOW_BATTERY,
    4: AlarmType.SOS,
    6: AlarmType.GEOFENCE,
}


def read_status(report: Report, r: Reader, variant: Variant) -> None:
    """The terminal-information byte: ACC, charging, oil/electricity cut, alarm in bits 3-5."""
    status = r.u8()
    values = report.attrs
    values["status"] = status
    values["ignition"] = bool(status & 0x02)
    values["charge"] = bool(status & 0x04)
    values["blocked"] = bool(status & 0x80)
    code = (status >> 3) & 0x07
    if code == 7:
        kind = AlarmType.OVERSPEED if variant is Variant.VXT01 else AlarmType.REMOVING
    else:
        kind = _STATUS_ALARMS.get(code)  # type: ignore[assignment]
    report.alarm(kind, f"terminal_info:{code}")


# Alarm-byte codes that mean the same on every device.
_ALARM_CODES: dict[int, AlarmType] = {
    0x01: AlarmType.SOS,
    0x02: AlarmType.POWER_CUT,
    0x03: AlarmType.VIBRATION,
    0x04: AlarmType.GEOFENCE_ENTER,
    0x05: AlarmType.GEOFENCE_EXIT,
    0x06: AlarmType.OVERSPEED,
    0x0C: AlarmType.TAMPERING,
    0x0F: AlarmType.LOW_BATTERY,
    0x11: AlarmType.POWER_OFF,
    0x13: AlarmType.TAMPERING,
    0x14: AlarmType.DOOR,
    0x1A: AlarmType.BRAKING,
    0x1B: AlarmType.CORNERING,
    0x23: AlarmType.FALL_DOWN,
    0x25: AlarmType.TAMPERING,
    0x26: AlarmType.ACCELERATION,
    0x27: AlarmType.BRAKING,
    0x2A: AlarmType.CORNERING,
    0x2B: AlarmType.CORNERING,
    0x2C: AlarmType.ACCIDENT,
    0x2E: AlarmType.CORNERING,
    0x32: AlarmType.TAMPERING,
    0x53: AlarmType.FUEL_LEAK,
    0x5B: AlarmType.TEMPERATURE,
    0x5C: AlarmType.TEMPERATURE,
    0xC9: AlarmType.IDLE,
    0xF0: AlarmType.ACCELERATION,
    0xF1: AlarmType.BRAKING,
    0xF2: AlarmType.ACCIDENT,
    0x0107: AlarmType.JAMMING,
    0x010B: AlarmType.JAMMING,
}

#: Codes of the alarm byte a simulated device sends for each alarm (the first listed above).
ALARM_BYTE_FOR: dict[AlarmType, int] = {}
for _code, _kind in _ALARM_CODES.items():
    if _code <= 0xFF:
        ALARM_BYTE_FOR.setdefault(_kind, _code)
ALARM_BYTE_FOR[AlarmType.LOW_BATTERY] = 0x0F


def alarm_code(value: int, model: Model, variant: Variant) -> AlarmType | None:
    """What an alarm-byte code means; some codes depend on the device model or variant."""
    if value == 0x09:
        if variant is Variant.TRX16I:
            return AlarmType.GEOFENCE
        return AlarmType.TOW if model.vl else AlarmType.VIBRATION
    if value == 0x0E:
        return AlarmType.LOW_POWER if variant is Variant.TRX16I else AlarmType.LOW_BATTERY
    if value == 0x18:
        return AlarmType.ACCIDENT if model.lw else AlarmType.REMOVING
    if value == 0x19:
        return AlarmType.ACCELERATION if model.lw else AlarmType.LOW_BATTERY
    if value == 0x28:
        if model.sw:
            return AlarmType.CORNERING
        return AlarmType.POWER_OFF if model.vl else AlarmType.BRAKING
    if value == 0x29:
        return AlarmType.ACCIDENT if model.sw else AlarmType.ACCELERATION
    if value == 0x30:
        return AlarmType.BRAKING if model.vl else AlarmType.JAMMING
    return _ALARM_CODES.get(value)


def add_alarm_code(report: Report, value: int, model: Model, variant: Variant) -> None:
    """Record the alarm of an alarm-byte code; lock / unlock (0x33 / 0x34) are states."""
    if value == 0x33:
        report.attrs["locked"] = True
    elif value == 0x34:
        report.attrs["locked"] = False
    else:
        report.alarm(alarm_code(value, model, variant), f"0x{value:02X}")
