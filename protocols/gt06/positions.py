"""Packets built around a GPS fix: the GPS / LBS / status family and its device-specific kin.

Each function reads one packet's content (after the protocol number) into a Report. The
layouts follow the reference decoder's reading of the vendor formats, variant by variant.
"""

from __future__ import annotations

from protocols.events import AlarmType
from protocols.gt06 import blocks as b
from protocols.gt06.reader import Reader
from protocols.gt06.report import Report
from protocols.gt06.variants import Model, Variant

_GPS_TYPES = frozenset({
    b.GPS, b.GPS_LBS_1, b.GPS_LBS_2, b.GPS_LBS_DRIVER, b.GPS_LBS_3, b.GPS_LBS_4, b.GPS_LBS_5,
    b.GPS_LBS_6, b.GPS_LBS_STATUS_1, b.GPS_LBS_STATUS_2, b.GPS_LBS_STATUS_3,
    b.GPS_LBS_STATUS_4, b.WIFI_3, b.GPS_PHONE, b.GPS_LBS_EXTEND, b.GPS_LBS_7, b.WIFI,
    b.FENCE_MULTI, b.ALARM_MODULE,
})
_LBS_TYPES = frozenset({
    b.LBS_STATUS, b.GPS_LBS_1, b.GPS_LBS_2, b.GPS_LBS_DRIVER, b.GPS_LBS_3, b.GPS_LBS_4,
    b.GPS_LBS_5, b.GPS_LBS_6, b.GPS_LBS_STATUS_1, b.GPS_LBS_STATUS_2, b.GPS_LBS_STATUS_3,
    b.GPS_LBS_STATUS_4, b.WIFI_3, b.GPS_LBS_7, b.WIFI, b.FENCE_MULTI, b.ALARM_MODULE,
    b.LBS_ALARM, b.LBS_ADDRESS,
})
_STATUS_TYPES = frozenset({
    b.STATUS, b.STATUS_2, b.LBS_STATUS, b.GPS_LBS_STATUS_1, b.GPS_LBS_STATUS_2,
    b.GPS_LBS_STATUS_3, b.GPS_LBS_STATUS_4, b.WIFI_3, b.FENCE_MULTI, b.ALARM_MODULE,
    b.LBS_ALARM,
})
_NT_TYPES = (b.GPS_LBS_2, b.GPS_LBS_DRIVER)


def has_gps(kind: int, variant: Variant) -> bool:
    if kind == b.FENCE_SINGLE:
        return variant is not Variant.SEEWORLD
    return kind in _GPS_TYPES


def has_lbs(kind: int, variant: Variant) -> bool:
    if kind == b.FENCE_SINGLE:
        return variant is not Variant.SEEWORLD
    return kind in _LBS_TYPES


def has_status(kind: int, model: Model, variant: Variant) -> bool:
    if kind == b.FENCE_SINGLE:
        return variant is Variant.SEEWORLD
    if kind in _NT_TYPES:
        return model.nt
    return kind in _STATUS_TYPES


def is_position_family(kind: int, model: Model, variant: Variant) -> bool:
    return has_gps(kind, variant) or has_lbs(kind, variant) or has_status(kind, model, variant)


def _hex(data: bytes) -> str:
    return data.hex()


def decode_family(report: Report, r: Reader, kind: int, length: int, variant: Variant,
                  model: Model, offset_s: int) -> None:
    """The GPS / LBS / status family (0x10-0x12, 0x16, 0x19, 0x22, 0x26, 0x27, 0xA0, 0xA4...)."""
    values = report.attrs
    values["packet_type"] = kind
    nt = model.nt and kind in _NT_TYPES
    if kind == b.GPS_LBS_1 and model.name == "QH302R":
        r.skip(8)  # IMEI
    if nt:
        r.u8()  # location source
        r.skip(8)  # IMEI
        report.device_time = b.read_date(r, offset_s)
    if has_gps(kind, variant):
        b.read_gps(report, r, offset_s)
    status = has_status(kind, model, variant)
    if has_lbs(kind, variant) and r.readable() > 6:
        has_length = (status and kind not in (b.LBS_STATUS, b.LBS_ALARM, b.ALARM_MODULE, b.WIFI_3)
                      and not (kind == b.GPS_LBS_STATUS_1 and variant is Variant.VXT01))
        b.read_lbs(report, r, kind, variant, has_length=has_length)
    if status:
        _status_block(report, r, kind, length, variant, model, nt)
    if kind in (b.STATUS_2, b.WIFI_3, b.GPS_LBS_STATUS_3, b.FENCE_MULTI, b.ALARM_MODULE) or nt:
        r.u8()  # language
    if kind == b.GPS_LBS_STATUS_1 and variant is Variant.TRX16I:
        r.u8()  # language
        _driver_rfid(report, r.take(8))
    if kind in (b.STATUS_2, b.ALARM_MODULE):
        while r.readable() > 6:
            module = r.u16()
            size = r.u8()
            if module == 0x0018:
                values["battery"] = r.u16() / 100.0
            elif module == 0x0032:
                values["startup_status"] = r.u8()
            elif module == 0x006A:
                values["battery_level"] = r.u8()
            else:
                r.skip(size)
    if kind == b.WIFI_3:  # GPS_LBS_STATUS_5 (LW4G)
        values["odometer"] = r.u32()
        values["hours"] = r.u32() * 1000
        r.skip(8)  # terminal id
        values["input"] = r.u16()
    if kind == b.GPS_LBS_1:
        _gps_lbs_1_tail(report, r, variant, model)
    if kind == b.GPS_LBS_2 and variant is Variant.SEEWORLD:
        values["ignition"] = r.u8() > 0
        r.u8()  # reporting mode
        r.u8()  # supplementary transmission
        values["odometer"] = r.u32()
        r.u32()  # travel time
        temperature = r.u16()
        if temperature & 0x8000:
            temperature = -(temperature & 0x7FFF)
        values["temp1"] = temperature / 100.0
        values["humidity"] = r.u16() / 100.0
    if kind == b.GPS_LBS_STATUS_4 and variant is Variant.SL4X:
        report.altitude = float(r.s16())
    if (kind in (b.GPS_LBS_2, b.GPS_LBS_3, b.GPS_LBS_4, b.GPS_LBS_5) and r.readable() >= 9
            and not model.nt):
        values["ignition"] = r.u8() > 0
        values["event"] = r.u8()  # why the device reported
        values["archive"] = r.u8() > 0
        if variant is Variant.SL4X:
            if r.readable() > 8:
                values["odometer"] = r.u32()
            report.altitude = float(r.s16())
    if kind == b.GPS_LBS_3:
        module = r.u16()
        size = r.u8()
        if module == 0x0027:
            values["power"] = r.u16() / 100.0
        elif module == 0x002E:
            values["odometer"] = r.u32()
        elif module == 0x003B:
            values["accuracy"] = r.u16() / 100.0
        else:
            r.skip(size)
    if kind == b.WIFI:  # GPS_LBS_RFID
        values["driver_unique_id"] = _hex(r.take(8))
        r.u8()  # validity
    if nt:
        values["odometer"] = r.u24()
        values["hours"] = r.u24() * 60_000
        if kind == b.GPS_LBS_DRIVER:
            size = r.u8()
            if size > 0:
                r.u8()  # driver identifier type
                values["driver_unique_id"] = _hex(r.take(size - 1))
    left = r.readable()
    if left in (9, 13):
        values["ignition"] = r.u8() > 0
        r.u8()  # upload mode
        if r.u8() > 0:
            values["archive"] = True
        left = r.readable()
    if left == 10:
        values["odometer"] = r.u32()
    if kind in (b.GPS_LBS_STATUS_3, b.FENCE_MULTI):
        values["geofence"] = r.u8()


def _status_block(report: Report, r: Reader, kind: int, length: int, variant: Variant,
                  model: Model, nt: bool) -> None:
    values = report.attrs
    if kind == b.WIFI_3:  # GPS_LBS_STATUS_5
        r.u8()  # network indicator
    b.read_status(report, r, variant)
    if variant is Variant.OBD6:
        signal = r.u16()
        report.satellites = ((signal >> 10) & 0x1F) + ((signal >> 5) & 0x1F)
        values["rssi"] = signal & 0x1F
        b.add_alarm_code(report, r.u8(), model, variant)
        r.u8()  # language
        values["battery_level"] = r.u8()
        mode = r.u8()
        values["power"] = r.u16() / 100.0
        r.u8()  # reserved
        r.u16()  # working time
        if mode == 4:
            values["temp1"] = r.s16() / 10.0
        return
    if variant is Variant.SEEWORLD and length == 0x18:
        r.u16()  # extension bits
        r.u8()  # voltage level
        values["rssi"] = r.u8()
        values["power"] = float(r.u8())
        r.u8()  # language
        r.u8()  # sound switch
        r.u8()  # light switch
        values["steps"] = r.u32()
        values["battery_level"] = r.u8()
        values["charge"] = r.u8() == 1
        values["motion"] = r.u8() == 1
        return
    if kind == b.WIFI_3 or nt:
        values["power"] = r.u16() / 100.0
    if kind == b.STATUS and model.name == "R11":
        values["power"] = r.u16() / 100.0
    else:
        battery = r.u8()
        if nt:
            values["battery"] = battery / 10.0
        elif battery <= 6:
            values["battery_level"] = battery * 100 // 6
        elif battery <= 100:
            values["battery_level"] = battery
    values["rssi"] = r.u8()
    if kind == b.STATUS and model.lw:
        values["power"] = (r.u16() & 0x0FFF) / 10.0
        return
    extension = r.u8()
    if kind in (b.GPS_LBS_STATUS_3, b.FENCE_MULTI, b.ALARM_MODULE):
        extension += (r.peek_u8() >> 4) << 8
    if kind == b.STATUS and model.sw:
        values["power"] = float(extension)
    elif variant is not Variant.VXT01:
        b.add_alarm_code(report, extension, model, variant)
        if variant is Variant.TRX16I:
            values["event"] = extension


def _gps_lbs_1_tail(report: Report, r: Reader, variant: Variant, model: Model) -> None:
    values = report.attrs
    if variant is Variant.GT06E_CARD:
        values["odometer"] = r.u32()
        data = r.take(r.u8()).decode("ascii", "replace")
        r.u8()  # alarm
        r.u8()  # swiped
        values["card"] = data.strip()
    elif variant is Variant.BENWAY:
        mask = r.u16()
        values["ignition"] = bool(mask & 0x8000)
        values["in2"] = bool(mask & 0x4000)
        if mask & 0x1000:
            value = mask & 0x1FF
            values["temp1"] = -value if mask & 0x200 else value
        else:
            value = mask & 0x3FF
            values["adc1"] = value if mask & 0x2000 else value / 10.0
    elif variant is Variant.VXT01:
        b.read_status(report, r, variant)
        values["power"] = r.u16() / 100.0
        values["rssi"] = r.u8()
        r.u8()  # alarm extension
    elif variant is Variant.S5:
        b.read_status(report, r, variant)
        values["power"] = r.u16() / 100.0
        values["rssi"] = r.u8()
        b.add_alarm_code(report, r.u8(), model, variant)
        values["oil"] = r.u16()
        temperature = r.u8()
        if temperature & 0x80:
            temperature = -(temperature & 0x7F)
        values["temp1"] = temperature
        values["odometer"] = r.u32() * 10
    elif variant is Variant.WETRUST:
        values["odometer"] = r.u32()
        values["card"] = r.take(r.u8()).decode("ascii", "replace")
        if r.u8() > 0:
            report.alarm(AlarmType.GENERAL, "card")
        values["card_status"] = r.u8()
        values["driving_time"] = r.u16()


def _driver_rfid(report: Report, rfid: bytes) -> None:
    if rfid.strip(b"\x00"):
        report.attrs["driver_unique_id"] = rfid.hex()


def decode_x1_gps(report: Report, r: Reader, offset_s: int) -> None:
    """0x34 (X1): GPS, odometer, one cell, driver id, battery, power, inputs, analog inputs."""
    values = report.attrs
    r.u32()  # data and alarm
    b.read_gps(report, r, offset_s)
    r.u16()  # terminal information
    values["odometer"] = r.u32()
    values["mcc"] = r.u16()
    values["mnc"] = r.u8()
    values["lac"] = r.u16()
    values["cid"] = r.u32()
    driver = r.u32()
    if driver > 0:
        values["driver_unique_id"] = str(driver)
    values["battery"] = r.u16() / 100.0
    values["power"] = r.u16() / 100.0
    ports = r.u32()
    values["input"] = r.u8()
    values["output"] = r.u8()
    for index in range(1, ((ports >> 20) & 0x0F) + 1):
        values[f"adc{index}"] = r.u16() / 100.0


def decode_sr411_mini(report: Report, r: Reader, offset_s: int, variant: Variant) -> None:
    """0x24 with length 0x2E (SR411 mini): GPS, one cell, ignition, power, battery."""
    b.read_gps(report, r, offset_s)
    b.read_lbs(report, r, b.LBS_MULTIPLE_3, variant, has_length=False)
    values = report.attrs
    values["ignition"] = r.u8() > 0
    values["power"] = r.u16() / 100.0
    values["battery"] = r.u16() / 100.0


def decode_ibutton(report: Report, r: Reader, offset_s: int, variant: Variant) -> None:
    """0x61: IMEI, GPS, one cell, iButton driver id."""
    r.skip(8)  # IMEI
    b.read_gps(report, r, offset_s)
    b.read_lbs(report, r, b.IBUTTON, variant, has_length=False)
    high = r.u32()
    report.attrs["driver_unique_id"] = str((high << 16) | r.u16())


def decode_location_rfid(report: Report, r: Reader, offset_s: int, variant: Variant) -> None:
    """0x36 in the TRX16i variant: GPS, one cell, ignition, power, battery, hours, RFID."""
    b.read_gps(report, r, offset_s)
    b.read_lbs(report, r, b.STATUS_2, variant, has_length=False)
    values = report.attrs
    values["ignition"] = r.u8() > 0
    values["upload_mode"] = r.u8()
    values["archive"] = r.u8() > 0
    values["odometer"] = r.u32()
    values["power"] = r.u16() / 100.0
    values["battery"] = r.u8() / 10.0
    values["hours"] = r.u24() * 60_000
    _driver_rfid(report, r.take(8))


def decode_gps_lbs_8(report: Report, r: Reader, offset_s: int, variant: Variant) -> None:
    """0x38: GPS, upload mode, re-upload flag, one typed cell."""
    b.read_gps(report, r, offset_s)
    r.u8()  # data upload mode
    report.attrs["archive"] = r.u8() > 0
    b.read_lbs(report, r, b.GPS_LBS_8, variant, has_length=False)


def decode_az735(report: Report, r: Reader, kind: int, offset_s: int,
                 variant: Variant) -> None:
    """Extended 0x32 / 0x33 (AZ735): optional GPS, optional cell, status (0x33: alarm)."""
    values = report.attrs
    b.read_gps(report, r, offset_s, has_length=True)
    if b.read_lbs(report, r, kind, variant, has_length=True):
        values["rssi"] = r.u8()
    r.skip(r.u8())  # additional cell towers
    r.skip(r.u8())  # Wi-Fi access points
    status = r.u8()
    values["status"] = status
    if kind == b.WIFI_5:
        if status == 0xA0:
            values["armed"] = True
        elif status == 0xA1:
            values["armed"] = False
        elif status in (0xA2, 0xA3):
            report.alarm(AlarmType.LOW_BATTERY, f"0x{status:02X}")
        elif status == 0xA4:
            report.alarm(AlarmType.GENERAL, f"0x{status:02X}")
        elif status == 0xA5:
            report.alarm(AlarmType.DOOR, f"0x{status:02X}")
    r.skip(r.u8())  # reserved extension


_EVENT_ALARMS = {
    0x0E: AlarmType.LOW_POWER,
    0x76: AlarmType.TEMPERATURE,
    0x80: AlarmType.VIBRATION,
    0x87: AlarmType.OVERSPEED,
    0x88: AlarmType.POWER_CUT,
    0x90: AlarmType.ACCELERATION,
    0x91: AlarmType.BRAKING,
    0x92: AlarmType.CORNERING,
    0x93: AlarmType.ACCIDENT,
}


def decode_alarm(report: Report, r: Reader, length: int, variant: Variant,
                 offset_s: int) -> None:
    """0x95 (JC100 / JC400 cameras): GPS or time, event code, event data, video file names."""
    jc400 = variant is Variant.JC400
    with_gps = length - 5 > 7
    if with_gps:
        if jc400:
            r.u16()  # marker
            r.u8()  # version
        b.read_gps(report, r, offset_s, has_satellites=jc400, has_speed=jc400,
                   long_speed=jc400, flags_first=jc400)
    else:
        report.device_time = b.read_date(r, offset_s)
    values = report.attrs
    if jc400:
        values["power"] = r.u16() / 10.0
    event = r.u8()
    values["event"] = event
    values["event_data"] = r.u16()
    if event == 0x01:
        report.alarm(AlarmType.SOS if with_gps else AlarmType.GENERAL, "0x01")
    else:
        report.alarm(_EVENT_ALARMS.get(event), f"0x{event:02X}")
    files = r.readable() - 6
    if files > 0:
        values["event_files"] = r.take(files).decode("ascii", "replace")
