"""Packets without the common GPS block: cells and Wi-Fi, text, information, modules, OBD."""

from __future__ import annotations

import re

from protocols.events import AlarmType, AttrValue
from protocols.gt06 import blocks as b
from protocols.gt06.reader import Reader, Truncated
from protocols.gt06.report import Report, lenient_datetime, unix_time
from protocols.gt06.variants import Model, Variant

#: Cells / access points kept per packet in the `cells` / `wifi` attributes.
_MAX_LISTED = 16


def _bcd(value: int) -> int:
    return (value >> 4) * 10 + (value & 0x0F)


def _mac(data: bytes) -> str:
    return ":".join(f"{x:02x}" for x in data)


def _listing(items: list[str]) -> str | None:
    return ";".join(items[:_MAX_LISTED]) or None


def decode_heartbeat_23(report: Report, r: Reader) -> None:
    """0x23 (GK310 heartbeat): status bits, battery voltage, signal."""
    report.heartbeat = True
    values = report.attrs
    status = r.u8()
    values["armed"] = bool(status & 0x01)
    values["ignition"] = bool(status & 0x02)
    values["charge"] = bool(status & 0x04)
    if r.readable() >= 2 + 6:
        values["battery"] = r.u16() / 100.0
    if r.readable() >= 1 + 6:
        values["rssi"] = r.u8()


def decode_status_22(report: Report, r: Reader) -> None:
    """0x13 with a 22-byte body: battery level and a temperature sensor."""
    report.heartbeat = True
    r.u8()  # information content
    r.u16()  # satellites
    r.u8()  # alarm
    r.u8()  # language
    report.attrs["battery_level"] = r.u8()
    r.u8()  # working mode
    r.u16()  # working voltage
    r.u8()  # reserved
    r.u16()  # working times
    r.u16()  # working time
    value = r.u16()
    temperature = (value & 0x7FFF) / 10.0
    report.attrs["temp1"] = temperature if value & 0x8000 else -temperature


def decode_wifi(report: Report, r: Reader, kind: int, frame: bytes) -> bytes | None:
    """0x17 / 0x69 / 0xF3: Wi-Fi access points and cells, no fix.

    Returns the BCD time the server echoes back (0x17 / 0x69), None for 0xF3."""
    stamp = r.take(6)
    report.device_time = lenient_datetime(2000 + _bcd(stamp[0]), _bcd(stamp[1]), _bcd(stamp[2]),
                                          _bcd(stamp[3]), _bcd(stamp[4]), _bcd(stamp[5]))
    # The access-point count of 0x17 / 0x69 is the packet's length byte.
    count = r.u8() if kind == b.WIFI_4 else frame[2]
    wifi = []
    for _ in range(count):
        if kind == b.WIFI_4:
            r.skip(2)
        mac = _mac(r.take(6))
        wifi.append(mac if kind == b.WIFI_4 else f"{mac},{-r.u8()}")
    values = report.attrs
    values["wifi_count"] = len(wifi)
    values["wifi"] = _listing(wifi)
    if kind == b.WIFI_4:
        return None
    cell_count = r.u8()
    mcc = r.u16()
    mnc = r.u8()
    cells = [f"{mcc},{mnc},{r.u16()},{r.u16()},{-r.u8()}" for _ in range(cell_count)]
    values["cell_count"] = len(cells)
    values["cells"] = _listing(cells)
    return stamp


_LBS_ONLY = frozenset({b.LBS_MULTIPLE_1, b.LBS_MULTIPLE_2, b.LBS_MULTIPLE_3, b.LBS_2, b.X1_GPS})


def is_cell_list(kind: int, extended: bool, variant: Variant) -> bool:
    """Packets that list nearby cells (and maybe Wi-Fi) without a fix."""
    return (kind in (b.LBS_MULTIPLE_1, b.LBS_MULTIPLE_2, b.LBS_MULTIPLE_3, b.LBS_EXTEND,
                     b.LBS_WIFI, b.LBS_2, b.X1_GPS, b.WIFI_ALARM)
            or (kind == b.WIFI_3 and variant is not Variant.LW4G)
            or (kind == b.WIFI_5 and not extended))


def decode_cell_list(report: Report, r: Reader, kind: int, variant: Variant, model: Model,
                     offset_s: int) -> None:
    """0x18 / 0x24 / 0x28 / 0x2C / 0x2E / 0xA1 / 0xA2 / 0xA9...: up to 7 cells, Wi-Fi."""
    report.device_time = b.read_date(r, offset_s)
    trailing_ta = variant not in (Variant.WANWAY_S20, Variant.SL4X)
    if not trailing_ta:
        r.u8()  # timing advance
    mcc = r.u16()
    mnc = r.u16() if mcc & 0x8000 or variant is Variant.SL4X else r.u8()
    cell_4g = kind == b.WIFI_ALARM and r.u8() > 0
    if variant is Variant.WANWAY_S20 or kind == b.WIFI_ALARM:
        count = r.u8()
    else:
        count = 6 if kind == b.WIFI_5 else 7
    cells = []
    for _ in range(count):
        if kind in (b.LBS_2, b.WIFI_3) or cell_4g:
            lac = r.s32()
            cid = r.s64()
        elif kind in (b.WIFI_5, b.X1_GPS):
            lac = r.u16()
            cid = r.u32()
        else:
            lac = r.u16()
            cid = r.u24()
        rssi = -r.u8()
        if lac > 0:
            cells.append(f"{mcc & 0x7FFF},{mnc},{lac},{cid},{rssi}")
    if trailing_ta:
        r.u8()  # timing advance
    values = report.attrs
    values["cell_count"] = len(cells)
    values["cells"] = _listing(cells)
    if kind not in _LBS_ONLY:
        wifi = [f"{_mac(r.take(6))},{-r.u8()}" for _ in range(r.u8())]
        values["wifi_count"] = len(wifi)
        values["wifi"] = _listing(wifi)
    if kind == b.WIFI_ALARM:
        alarm = r.u8()
        language = r.u8()
        b.add_alarm_code(report, (language >> 4) << 8 | alarm, model, variant)


def decode_bluetooth_clock(report: Report, r: Reader, offset_s: int) -> None:
    """0xB2: a Bluetooth tag clocking in (attendance)."""
    report.device_time = b.read_date(r, offset_s)
    values = report.attrs
    rssi = r.u8()
    values["rssi"] = rssi - 256 if rssi > 127 else rssi
    values["tag_mac"] = r.take(6).hex()
    values["tag_uuid"] = r.take(16).hex()
    values["tag_major"] = r.u16()
    values["tag_minor"] = r.u16()
    values["tag_battery"] = r.u16() / 100.0
    values["clock"] = (r.u8() >> 2) & 0x0F


def decode_string(report: Report, r: Reader) -> None:
    """0x15: the device's text answer to a 0x80 command (or its ICCID)."""
    size = r.u8()
    if size <= 0:
        report.result = ""
        return
    r.u32()  # server flag
    text = r.take(size - 4).decode("ascii", "replace")
    if text.startswith("<ICCID:"):
        report.attrs["iccid"] = text[7:27]
    else:
        report.result = text


_LOCATION = re.compile(
    r"Current position!Lat:([NS])(\d+\.\d+),Lon:([EW])(\d+\.\d+),Course:(\d+\.\d+),"
    r"Speed:(\d+\.\d+),DateTime:(\d{4})-(\d\d)-(\d\d) +(\d\d):(\d\d):(\d\d)", re.A)


def decode_string_info(report: Report, r: Reader) -> None:
    """0x21: text from the device; the answer to a position request (`WHERE#`) is a fix."""
    r.u32()  # server flag
    ascii_text = r.u8() == 1
    data = r.take(r.readable() - 6)
    text = data.decode("ascii", "replace") if ascii_text else data.decode("utf-16-be", "replace")
    match = _LOCATION.fullmatch(text)
    if match is None:
        report.result = text
        return
    ns, lat, ew, lon, course, speed, *when = match.groups()
    year, month, day, hour, minute, second = (int(x) for x in when)
    latitude = float(lat) if ns == "N" else -float(lat)
    longitude = float(lon) if ew == "E" else -float(lon)
    if abs(latitude) > 90 or abs(longitude) > 180:
        report.result = text
        return
    report.set_fix(lenient_datetime(year, month, day, hour, minute, second), True,
                   latitude, longitude)
    report.course = float(course)
    report.speed_kmh = float(speed)
    report.attrs["position_request"] = True


def decode_serial(report: Report, r: Reader) -> None:
    """0x9B: data from a device on the tracker's serial port (text when printable)."""
    r.u8()  # external device type
    data = r.take(r.readable() - 6)
    if data and all(32 <= x < 127 or x in (9, 10, 13) for x in data):
        report.attrs["result"] = data.decode("ascii").strip()
    else:
        report.attrs["result"] = data.hex()


_FUEL = re.compile(r"!AIOIL,\d+,\d+\.\d+,(\d+\.\d+),[^,]+,\d\d\d\d,(\d+\.\d+),[01],\d+,"
                   r"[0-9A-Fa-f]{2}", re.A)
_INFO_ALARMS = {"ALM1": "alarm1_status", "ALM2": "alarm2_status", "ALM3": "alarm3_status",
                "ALM4": "alarm4_status", "STA1": "other_status", "DYD": "engine_status"}


def decode_info(report: Report, r: Reader, length: int, offset_s: int) -> bool:
    """Extended 0x94: information by sub-type. False for a sub-type with nothing decoded."""
    sub = r.u8()
    values = report.attrs
    if sub == 0x00:
        values["adc1"] = r.u16() / 100.0
    elif sub == 0x04:
        text = r.take(r.readable() - 6).decode("ascii", "replace")
        for pair in text.split(";"):
            key, _, value = pair.partition("=")
            name = _INFO_ALARMS.get(key)
            if name is not None:
                try:
                    values[name] = int(value, 16)
                except ValueError:
                    continue
    elif sub == 0x05:
        if r.readable() >= 6 + 1 + 6:
            report.device_time = b.read_date(r, offset_s)
        flags = r.u8()
        values["door"] = bool(flags & 0x01)
        values["io1"] = bool(flags & 0x04)
    elif sub == 0x0A:
        r.skip(8)  # IMEI
        r.skip(8)  # IMSI
        values["iccid"] = r.take(10).hex().rstrip("f")
    elif sub == 0x0B:
        content = length - 6
        if content == 1:
            values["network_technology"] = "4G" if 0 < r.u8() < 128 else "2G"
        elif content == 2:
            values["power"] = r.u16() / 100.0
    elif sub == 0x0D:
        if r.peek_u8() != 0x21:  # "!"
            r.skip(6)
        text = r.data[r.pos:r.end - 6].decode("ascii", "replace")
        match = _FUEL.fullmatch(text)
        if match is None:
            return False
        values["temp1"] = float(match.group(1))
        values["fuel"] = float(match.group(2))
    elif sub == 0x1B:
        if chr(r.peek_u8()).isalpha():
            values["serial"] = r.take(r.readable() - 6).decode("ascii", "replace").strip()
        else:
            r.u8()  # header
            r.u8()  # type
            values["driver_unique_id"] = r.take(4).hex()
            r.u8()  # checksum
            r.u8()  # footer
    elif sub == 0x1E:
        values["temp1"] = r.s32() / 10.0
        values["humidity"] = r.s32() / 10.0
    else:
        return False
    return True


#: OBD keys (first two hex digits of a `key=value` pair) -> (attribute, divisor; 0: text).
_OBD = {0x28: ("odometer", 100.0), 0x2B: ("fuel", 100.0), 0x2D: ("coolant_temp", 100.0),
        0x35: ("obd_speed", 100.0), 0x36: ("rpm", 100.0), 0x47: ("fuel_used", 100.0),
        0x49: ("hours", 100.0), 0x4A: ("vin", 0.0)}


def decode_obd(report: Report, r: Reader, offset_s: int) -> None:
    """0x8C: OBD values as `key=hex value` text pairs."""
    report.device_time = b.read_date(r, offset_s)
    values = report.attrs
    values["ignition"] = r.u8() > 0
    text = r.take(r.readable() - 18).decode("ascii", "replace")
    for pair in text.split(","):
        parts = pair.split("=")
        if len(parts) < 2:
            continue
        try:
            key = int(parts[0][:2], 16)
        except ValueError:
            continue
        target = _OBD.get(key)
        if target is None:
            continue
        name, divisor = target
        if not divisor:
            values[name] = parts[1]
            continue
        try:
            values[name] = int(parts[1], 16) / divisor
        except ValueError:
            continue


_MODULE_EVENTS = {
    0x10: AlarmType.DOOR, 0x12: AlarmType.REMOVING, 0x14: AlarmType.GEOFENCE_ENTER,
    0x15: AlarmType.GEOFENCE_EXIT, 0x16: AlarmType.TEMPERATURE, 0x1A: AlarmType.LOW_BATTERY,
    0x1B: AlarmType.OVERSPEED, 0x1C: AlarmType.POWER_ON, 0x1D: AlarmType.POWER_OFF,
    0x20: AlarmType.VIBRATION, 0x21: AlarmType.POWER_CUT, 0x23: AlarmType.TAMPERING,
}


def decode_modular(report: Report, r: Reader) -> int:
    """0x70: a list of (module type, length, content). Returns the serial the ack echoes,
    which for this packet is read right after the modules."""
    while r.readable() > 6:
        module = r.u16()
        size = r.u16()
        body = Reader(r.data, r.pos, r.pos + size)
        r.skip(size)
        try:
            _module(report, body, module)
        except Truncated:
            continue  # a module shorter than its layout: keep the others
    return r.u16()


def _module(report: Report, body: Reader, module: int) -> None:
    values = report.attrs
    if module == 0x03:
        values["iccid"] = body.take(10).hex()
    elif module == 0x09:
        report.satellites = body.u8()
    elif module == 0x0A:
        values["satellites_visible"] = body.u8()
    elif module == 0x11:
        mcc, mnc, lac, cid = body.u16(), body.u16(), body.u16(), body.u24()
        body.u8()  # signal
        if cid > 0:
            values.update(mcc=mcc, mnc=mnc, lac=lac, cid=cid)
    elif module == 0x18:
        values["battery"] = body.u16() / 100.0
    elif module == 0x28:
        report.hdop = body.u8() / 10.0
    elif module == 0x29:
        values["index"] = body.u32()
    elif module == 0x2A:
        value = body.u8()
        values["door"] = (value & 0x0F) > 0
        values["tamper"] = (value >> 4) > 0
    elif module == 0x2B:
        values["boot_reason"] = body.u8()
    elif module == 0x2E:
        values["odometer"] = body.u32le()
    elif module == 0x33:
        _modular_fix(report, body)
    elif module == 0x34:
        event = body.u8()
        report.alarm(_MODULE_EVENTS.get(event), f"0x{event:02X}")
        values["event"] = event
    elif module == 0x7F:
        values["tag1_id"] = body.take(6).hex()
        values["tag1_battery"] = body.u16() / 1000.0
        values["tag1_battery_level"] = body.u8()
        values["tag1_temp"] = body.s16() / 10.0
        values["tag1_humidity"] = body.s16()
        values["tag1_status"] = body.u8()


def _modular_fix(report: Report, body: Reader) -> None:
    when = unix_time(body.u32())
    report.satellites = body.u8()
    report.altitude = float(body.s16())
    lat = body.u32() * b.COORDINATE_UNIT
    lon = body.u32() * b.COORDINATE_UNIT
    report.speed_kmh = float(body.u8())
    flags = body.u16()
    report.course = float(flags & 0x3FF)
    if not flags & 0x400:
        lat = -lat
    if flags & 0x800:
        lon = -lon
    report.set_fix(when, bool(flags & 0x1000), lat, lon)


def decode_device_status(report: Report, r: Reader, kind: int) -> None:
    """0xF1 (device status) / 0xF2 (peripherals): UNIX time, then (id, length, value) items."""
    report.device_time = unix_time(r.u32())
    values = report.attrs
    while r.readable() > 6:
        item = r.u16()
        if kind == b.PERIPHERAL:
            _peripheral(values, r, item)
            continue
        size = r.u8()
        body = Reader(r.data, r.pos, r.pos + size)
        r.skip(size)
        if item == 0x0001:
            values["motion"] = body.u8() in (0x02, 0x04)
        elif item == 0x0002:
            values["armed"] = body.u8() > 0
        elif item == 0x0004:
            values["ignition"] = body.u8() > 0
        elif item == 0x0005:
            values["power"] = body.u16() / 100.0
        elif item == 0x0007:
            values["charge"] = body.u8() > 0
        elif item == 0x000A:
            values["charge_voltage"] = body.u16()
        elif item == 0x000B:
            values["battery_temp"] = body.u16() / 10.0


def _peripheral(values: dict[str, AttrValue], r: Reader, item: int) -> None:
    if item == 0x000A:
        size = r.u16()
        r.u8()  # MAC address type
        values["mac"] = r.take(6).hex()
        event = r.u8()
        values["event"] = event
        data = r.u8()
        if event > 0:
            values["event_data"] = data
        values["data_type"] = r.u8()
        values["data_details"] = r.take(size - 10).hex()
    elif item == 0x000C:
        r.u8()  # length
        values["external_battery_level"] = r.u8()
        if r.u8() > 0:
            values["external_battery_charge"] = True
        values["external_battery_cycles"] = r.u16()
        r.skip(6)
    else:
        size = r.u8()
        r.skip(size if size else r.u8())


def decode_bms(report: Report, r: Reader) -> None:
    """0x40 (WD-209 e-bike): battery management data."""
    r.skip(8)  # serial number
    report.device_time = unix_time(r.u32())
    values = report.attrs
    values["relative_capacity"] = r.u8()
    values["remaining_capacity"] = r.u16()
    values["absolute_capacity"] = r.u8()
    values["full_capacity"] = r.u16()
    values["battery_health"] = r.u8()
    values["battery_temp"] = round(r.u16() / 10.0 - 273.1, 1)
    values["current"] = r.u16()
    values["battery"] = r.u16() / 1000.0
    values["cycle_index"] = r.u16()
    for index in range(1, 15):
        values[f"battery_cell{index}"] = r.u16() / 1000.0
    values["current_charge_interval"] = r.u16()
    values["max_charge_interval"] = r.u16()
    values["barcode"] = r.take(16).decode("ascii", "replace").strip()
    values["battery_version"] = r.u16()
    values["manufacturer"] = r.take(16).decode("ascii", "replace").strip()
    values["battery_status"] = r.u32()
    values["controller_status"] = r.u32()
    values["controller_fault"] = r.u32()
