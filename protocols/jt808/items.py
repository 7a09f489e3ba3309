"""Additional-information items after a location's basic block: `id (1) | length (1) | value`.

The standard defines a few ids (0x01 mileage, 0x02 fuel, 0x25 signals, 0x2A I/O, 0x2B analogue,
0x30 signal strength, 0x31 satellites); 0xE0-0xFF and most others are the vendors'. The meanings
here are those of PROTOCOLS-WAVE2.md §5.4 and the corpus: the same id means different things for
different vendors, so a few items depend on `Jt808Options.model` (`Reading.family`). Unknown ids
are skipped. Units are normalised: metres, km/h, volts, degrees Celsius, percent.

Each handler reads one item's value into a Reading; a value too short for its layout raises
(struct.error / IndexError), and the caller skips the item with the note `bad_item`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from protocols.events import AlarmType, AttrValue

_U16 = struct.Struct(">H")
_S16 = struct.Struct(">h")
_U32 = struct.Struct(">I")


class Reading:
    """What the items of one location say, besides the basic block."""

    __slots__ = ("alarms", "attrs", "family", "hdop", "satellites")

    def __init__(self, family: str) -> None:
        self.family = family
        self.attrs: dict[str, AttrValue] = {}
        #: Alarm type -> the protocol's code for it (first one wins).
        self.alarms: dict[AlarmType, str] = {}
        self.satellites: int | None = None
        self.hdop: float | None = None

    def alarm(self, kind: AlarmType, code: str) -> None:
        self.alarms.setdefault(kind, code)


Handler = Callable[[bytes, Reading], None]


def u16(value: bytes, offset: int = 0) -> int:
    return int(_U16.unpack_from(value, offset)[0])


def u32(value: bytes, offset: int = 0) -> int:
    return int(_U32.unpack_from(value, offset)[0])


def s16(value: bytes, offset: int = 0) -> int:
    return int(_S16.unpack_from(value, offset)[0])


def text(value: bytes) -> str:
    """ASCII text padded with NULs or spaces, as devices send it (other bytes kept as Latin-1)."""
    return value.decode("latin-1").strip(" \x00\r\n\t")


def _need(value: bytes, size: int) -> None:
    if len(value) < size:
        raise IndexError(size)


# Standard items ------------------------------------------------------------------------------


def _mileage(value: bytes, r: Reading) -> None:
    r.attrs["odometer"] = u32(value) * 100  # 0.1 km -> m


def _fuel(value: bytes, r: Reading) -> None:
    raw = u16(value)
    # Bit 15 set: a percentage in the low bits; otherwise 0.1 L.
    r.attrs["fuel"] = raw & 0x7FFF if raw & 0x8000 else raw / 10.0


def _input(value: bytes, r: Reading) -> None:
    r.attrs["input"] = u32(value)


def _adc(value: bytes, r: Reading) -> None:
    r.attrs["adc1"] = u16(value) / 100.0
    r.attrs["adc2"] = u16(value, 2) / 100.0


def _rssi(value: bytes, r: Reading) -> None:
    r.attrs["rssi"] = value[0]


def _satellites(value: bytes, r: Reading) -> None:
    r.satellites = value[0]


# Vendor items --------------------------------------------------------------------------------


def _battery_level(value: bytes, r: Reading) -> None:
    r.attrs["battery_level"] = value[0]


def lock_command(value: bytes, r: Reading) -> None:
    """0x0B: lock command, then a card number (4-5 bytes) or a 6-character password, and an
    unlock result when the length is even."""
    r.attrs["lock_command"] = value[0]
    length = len(value)
    if 5 <= length <= 6:
        r.attrs["lock_card"] = u32(value, 1)
    elif length >= 7:
        r.attrs["lock_password"] = text(value[1:7])
    if length % 2 == 0:
        r.attrs["unlock_result"] = value[-1]


def _video_alarm(value: bytes, r: Reading) -> None:
    r.attrs["video_alarm"] = u32(value)


def _mode_or_lock(value: bytes, r: Reading) -> None:
    """0x33: a working mode byte, or a padlock status text `*M00,<n>,<7 chars>...`."""
    if len(value) == 1:
        r.attrs["mode"] = value[0]
        return
    status = value.decode("latin-1")
    if status.startswith("*M00") and len(status) >= 15:
        r.attrs["battery"] = int(status[10:13]) / 100.0


def _temperatures(value: bytes, r: Reading) -> None:
    """0x51: one or eight sign-magnitude temperatures in 0.1 degrees; FFFF = no sensor."""
    if len(value) not in (2, 16):
        return
    for index in range(len(value) // 2):
        raw = u16(value, index * 2)
        if raw != 0xFFFF:
            magnitude = (raw & 0x7FFF) / 10.0
            r.attrs[f"temp{index + 1}"] = -magnitude if raw & 0x8000 else magnitude


def _battery_tenths(value: bytes, r: Reading) -> None:
    r.attrs["battery_level"] = value[0] * 10


def _driving_alarms(value: bytes, r: Reading) -> None:
    """0x57: driving behaviour bits, external switches, and (MiCODUS MV710G/MV810G) door."""
    flags = u16(value)
    if flags & 0x100:
        r.alarm(AlarmType.ACCELERATION, "0x57.bit8")
    if flags & 0x200:
        r.alarm(AlarmType.BRAKING, "0x57.bit9")
    if flags & 0x400:
        r.alarm(AlarmType.CORNERING, "0x57.bit10")
    more = u32(value, 4)
    if r.family == "micodus" and more & 0x10000:
        r.alarm(AlarmType.DOOR, "0x57.door")


def _event(value: bytes, r: Reading) -> None:
    """0x60: an event code; 0x61-0x66 (lock events) carry a lock id and an 8-character card."""
    event = u16(value)
    r.attrs["event"] = event
    if 0x61 <= event <= 0x66:
        _need(value, 16)
        r.attrs["driver_unique_id"] = value[8:16].decode("latin-1")


def _locks(value: bytes, r: Reading) -> None:
    """0x63: 11 bytes per lock: id (6), battery mV (2), seal ('1' sealed), state, signal."""
    for index in range(len(value) // 11):
        lock = value[index * 11:index * 11 + 11]
        n = index + 1
        r.attrs[f"lock{n}_id"] = lock[:6].hex()
        r.attrs[f"lock{n}_battery"] = u16(lock, 6) / 1000.0
        r.attrs[f"lock{n}_seal"] = lock[8] == 0x31


def _driver_assistance(kind: str) -> Handler:
    """0x64 (ADAS) / 0x65 (DMS): serial (4), status (1), alarm type; the last 16 bytes of a
    full item are the alarm's attachment label."""

    def handler(value: bytes, r: Reading) -> None:
        r.attrs[kind] = value[5]
        if len(value) >= 47:
            r.attrs["alarm_label"] = value[-16:].hex()

    return handler


def _password(value: bytes, r: Reading) -> None:
    r.attrs["password"] = text(value[:8])


def _battery_level_hundredths(value: bytes, r: Reading) -> None:
    r.attrs["battery_level"] = u16(value) / 100.0


def _battery_volts_hundredths(value: bytes, r: Reading) -> None:
    r.attrs["battery"] = u16(value) / 100.0


_BEHAVIOUR = {1: AlarmType.ACCELERATION, 2: AlarmType.BRAKING, 3: AlarmType.CORNERING,
              0x16: AlarmType.ACCIDENT}


def _behaviour(value: bytes, r: Reading) -> None:
    """0x70: serial (4), status (1), behaviour type."""
    kind = _BEHAVIOUR.get(value[5])
    if kind is not None:
        r.alarm(kind, f"0x70.{value[5]:#04x}")


def _power_tenths(value: bytes, r: Reading) -> None:
    r.attrs["power"] = u16(value) / 10.0


def _obd_block(value: bytes, r: Reading) -> None:
    """0x91: a fixed OBD record."""
    _need(value, 26)
    r.attrs["battery"] = u16(value) / 10.0
    r.attrs["rpm"] = u16(value, 2)
    r.attrs["obd_speed"] = value[4]
    r.attrs["throttle"] = value[5] * 100 // 255
    r.attrs["engine_load"] = value[6] * 100 // 255
    r.attrs["coolant_temp"] = value[7] - 40
    r.attrs["fuel_consumption"] = u16(value, 10) / 100.0
    r.attrs["fuel_used"] = u16(value, 24) / 100.0


def _vin(value: bytes, r: Reading) -> None:
    if value:
        r.attrs["vin"] = text(value)


def _odometer_metres(value: bytes, r: Reading) -> None:
    r.attrs["odometer"] = u32(value)


def _driver(value: bytes, r: Reading) -> None:
    r.attrs["driver"] = text(value)


def _driver_id(value: bytes, r: Reading) -> None:
    r.attrs["driver_unique_id"] = value.decode("latin-1")


def _user_status(value: bytes, r: Reading) -> None:
    if u32(value) & 0x8:
        r.alarm(AlarmType.VIBRATION, "0xD0.bit3")


def _battery_or_cells(value: bytes, r: Reading, item: int) -> None:
    """0xD4 / 0xE1 / 0xE9: one byte is a battery level (FF: charging); 0xE1 also carries cell
    towers (not kept) or a supply voltage; anything else is a driver id number."""
    length = len(value)
    if length == 1:
        if value[0] == 0xFF:
            r.attrs["charge"] = True
        else:
            r.attrs["battery_level"] = value[0]
    elif item == 0xE1 and length >= 12 and (length - 4) % 8 == 0:
        r.attrs["cell_count"] = (length - 4) // 8
    elif item == 0xE1 and length == 2:
        r.attrs["power"] = u16(value) / 10.0
    else:
        r.attrs["driver_unique_id"] = str(u32(value))


def _lock_list(value: bytes, r: Reading) -> None:
    """0xD5: a battery voltage, or a list of locks: id (5), card (5), battery, status."""
    if len(value) == 2:
        r.attrs["battery"] = u16(value) / 100.0
        return
    for index in range(value[0]):
        lock = value[1 + index * 13:14 + index * 13]
        _need(lock, 13)
        n = index + 1
        r.attrs[f"lock{n}_id"] = lock[:5].hex()
        r.attrs[f"lock{n}_card"] = lock[5:10].hex()
        r.attrs[f"lock{n}_battery"] = lock[10]
        r.attrs[f"lock{n}_locked"] = not u16(lock, 11) & 0x20


def _lock_device_status(value: bytes, r: Reading) -> None:
    """0xDA: [cut count (2)], then status bits: string, motion, cover."""
    status = value[2] if len(value) >= 3 else value[0]
    r.attrs["string"] = bool(status & 1)
    r.attrs["motion"] = bool(status & 4)
    r.attrs["cover"] = bool(status & 8)


def _fuel_tenths32(value: bytes, r: Reading) -> None:
    if r.family != "dt800":
        r.attrs["fuel"] = u32(value) / 10.0


def _battery_pair(value: bytes, r: Reading) -> None:
    """0xE3: reserved, level %, voltage in 0.01 V."""
    r.attrs["battery_level"] = value[1]
    r.attrs["battery"] = u16(value, 2) / 100.0


def _charge_and_level(value: bytes, r: Reading) -> None:
    """0xE4: charging state (0 = charging), battery level."""
    if value[0] == 0:
        r.attrs["charge"] = True
    r.attrs["battery_level"] = value[1]


def _motion(value: bytes, r: Reading) -> None:
    if len(value) == 1:
        r.attrs["motion"] = value[0] == 1


def _sensor_value(high: int, low: int) -> float:
    """A signed whole part and an unsigned 1/255 fraction."""
    whole = high - 256 if high > 127 else high
    sign = -1.0 if whole < 0 else 1.0
    return sign * (abs(whole) + low / 255.0)


def _sensors(value: bytes, r: Reading) -> None:
    """0xE6: an `$OBD-RT,...` text, or 11-byte records: index, MAC (6), temperature,
    humidity."""
    if value.startswith(b"$OBD-RT"):
        obd_realtime(value.decode("latin-1"), r.attrs)
        return
    if len(value) < 11 or len(value) % 11:
        return
    for offset in range(0, len(value), 11):
        index = value[offset]
        r.attrs[f"temp{index}"] = _sensor_value(value[offset + 7], value[offset + 8])
        r.attrs[f"humidity{index}"] = _sensor_value(value[offset + 9], value[offset + 10])


def _alarm_word16(value: bytes, r: Reading) -> None:
    """0xE7 (8 bytes): bit 0 vibration, bits 1-3 the SOS key."""
    if len(value) != 8:
        return
    flags = u16(value)
    if flags & 1:
        r.alarm(AlarmType.VIBRATION, "0xE7.bit0")
    if flags & 0xE:
        r.alarm(AlarmType.SOS, "0xE7.sos")


_JIMI_EVENTS: dict[int, AlarmType] = {
    0x0001: AlarmType.FAULT,
    0x0400: AlarmType.ACCELERATION, 0x0412: AlarmType.ACCELERATION,
    0x0401: AlarmType.BRAKING, 0x0413: AlarmType.BRAKING,
    0x0402: AlarmType.CORNERING, 0x0414: AlarmType.CORNERING,
    0x0403: AlarmType.OVERSPEED,
    0x0405: AlarmType.ACCIDENT, 0x0416: AlarmType.ACCIDENT, 0x0417: AlarmType.ACCIDENT,
    0x0406: AlarmType.VIBRATION,
    0x0407: AlarmType.TOW,
    0x0408: AlarmType.GEOFENCE_ENTER,
    0x0409: AlarmType.GEOFENCE_EXIT,
    0x040C: AlarmType.DOOR,
    0x0C01: AlarmType.SOS,
    0x0C02: AlarmType.LOW_POWER,
    0x0C05: AlarmType.GENERAL,
    0x0C0E: AlarmType.POWER_CUT,
    0x0C0F: AlarmType.LOW_BATTERY,
    0x0C10: AlarmType.POWER_OFF,
    0x0C12: AlarmType.TAMPERING,
}


def _jimi_or_lock(value: bytes, r: Reading) -> None:
    """0xE8: on Jimi JC-series units an extended event (type u16, then its data); on padlocks
    a 24-bit lock status."""
    if r.family != "jimi":
        _need(value, 3)
        r.attrs["lock_status"] = int.from_bytes(value[:3], "big")
        return
    kind = u16(value)
    if kind == 0x0C03:
        r.attrs["ignition"] = True
    elif kind == 0x0C04:
        r.attrs["ignition"] = False
    elif kind == 0x2002:
        r.attrs["upload_mode"] = value[3]
        r.attrs["buffered"] = value[4] == 1
    elif kind == 0x2003:
        _need(value, 10)
        r.attrs["charge"] = value[3] == 1
        if 1 <= value[4] <= 6:
            r.attrs["battery_level"] = value[4] * 100 // 6
        r.attrs["battery"] = u16(value, 5) / 100.0
        r.attrs["rssi"] = value[7]
        r.attrs["power"] = u16(value, 8) / 100.0
    elif kind == 0x2005:
        _jimi_status_list(value[3:], r)
    else:
        alarm = _JIMI_EVENTS.get(kind)
        if alarm is not None:
            r.alarm(alarm, f"0xE8.{kind:#06x}")


def _jimi_status_list(value: bytes, r: Reading) -> None:
    """Jimi 0xE8/0x2005: entries `id (2) | length (1) | value`."""
    pos = 0
    while pos + 3 <= len(value):
        kind, size = u16(value, pos), value[pos + 2]
        data = value[pos + 3:pos + 3 + size]
        pos += 3 + size
        if len(data) < size or not data:
            break
        if kind == 0x0001:
            r.attrs["battery"] = u16(data) / 100.0
        elif kind == 0x0002:
            r.attrs["data_usage"] = u32(data)
        elif kind == 0x0003:
            r.attrs["battery_level"] = data[0]
        elif kind == 0x0004:
            r.attrs["charge"] = data[0] == 0
        elif kind == 0x0005:
            r.attrs["iccid"] = data[:10].hex()[:19]
        elif kind == 0x0007:
            r.hdop = u16(data) / 10.0
        elif kind == 0x2001:
            r.attrs["power"] = u16(data) / 10.0


def _nested_alarm_bits(value: bytes, r: Reading, kind: int) -> None:
    flags = u32(value)
    if kind == 0x0089:
        # Active-low flags: a cleared bit is the alarm.
        if not flags & 1:
            r.alarm(AlarmType.POWER_CUT, "0xEB.0x0089.bit0")
        if not flags & 0x1000:
            r.alarm(AlarmType.REMOVING, "0xEB.0x0089.bit12")
    else:  # 0x00C5
        if not flags & 0x40:
            r.alarm(AlarmType.VIBRATION, "0xEB.0x00C5.bit6")
        motion = (flags >> 23) & 3
        if motion == 0:
            r.attrs["motion"] = True
        elif motion == 1:
            r.attrs["motion"] = False


def _nested(value: bytes, r: Reading) -> None:
    """0xEB: cell towers (MCC > 200 first), a printable time zone, or nested items
    `length (2, type included) | type (2) | value`."""
    length = len(value)
    if length >= 2 and u16(value) > 200 and (length - 3) % 5 == 0:
        r.attrs["cell_count"] = (length - 3) // 5
        return
    if value and all(0x20 <= b < 0x7F for b in value):
        r.attrs["timezone"] = value.decode("ascii")
        return
    pos = 0
    while pos + 4 <= length:
        size = u16(value, pos)
        end = pos + 2 + size
        if size < 2 or end > length:
            break
        kind = u16(value, pos + 2)
        data = value[pos + 4:end]
        if kind == 0x0001:
            r.attrs["fuel1"] = u16(data) / 10.0
        elif kind == 0x0023:
            r.attrs["fuel2"] = float(data[:6].decode("ascii"))
        elif kind == 0x002D:
            if size == 6:
                r.attrs["power"] = u32(data) / 1000.0
            else:
                r.attrs["battery"] = u16(data) / 1000.0
        elif kind in (0x0089, 0x00C5):
            _nested_alarm_bits(data, r, kind)
        elif kind == 0x00B2:
            r.attrs["iccid"] = data[:10].hex().rstrip("f")
        elif kind == 0x00C6:
            level = data[0]
            r.attrs["battery_alarm"] = level
            if level in (3, 4):
                r.alarm(AlarmType.LOW_BATTERY, "0xEB.0x00C6")
        elif kind == 0x00CE:
            r.attrs["power"] = u16(data) / 100.0
        elif kind in (0x00A8, 0x00E1):
            r.attrs["battery_level"] = data[0]
        pos = end


def _card(value: bytes, r: Reading) -> None:
    r.attrs["card"] = text(value)


def _signal_block(value: bytes, r: Reading) -> None:
    """0xEE (6 bytes): signal, supply mV, battery mV, satellites."""
    if len(value) == 6:
        r.attrs["rssi"] = value[0]
        r.attrs["power"] = u16(value, 1) / 1000.0
        r.attrs["battery"] = u16(value, 3) / 1000.0
        r.satellites = value[5]


def _power_millivolts32(value: bytes, r: Reading) -> None:
    r.attrs["power"] = u32(value) / 1000.0


def _firmware(value: bytes, r: Reading) -> None:
    r.attrs["version_fw"] = text(value)


_OBD_ITEMS: dict[int, tuple[str, Callable[[bytes], AttrValue]]] = {
    0x0002: ("obd_speed", lambda v: u16(v) / 10.0),
    0x0003: ("rpm", u16),
    0x0004: ("power", lambda v: u16(v) / 1000.0),
    0x0005: ("obd_odometer", lambda v: u32(v) * 100),
    0x0007: ("fuel_consumption", lambda v: u16(v) / 10.0),
    0x0008: ("engine_load", lambda v: u16(v) / 10.0),
    0x0009: ("coolant_temp", lambda v: u16(v) - 40),
    0x000B: ("intake_pressure", u16),
    0x000C: ("intake_temp", lambda v: u16(v) - 40),
    0x000D: ("intake_flow", u16),
    0x000E: ("throttle", lambda v: u16(v) * 100 // 255),
    0x0050: ("vin", lambda v: text(v[:17])),
    0x0100: ("trip_odometer", lambda v: u16(v) / 10.0),
    0x0102: ("trip_fuel", lambda v: u16(v) / 10.0),
    0x0112: ("hard_acceleration_count", u16),
    0x0113: ("hard_deceleration_count", u16),
    0x0114: ("hard_cornering_count", u16),
}


def _tags_or_obd(value: bytes, r: Reading) -> None:
    """0xF3: AOVX units list Bluetooth tags (mask, then per tag MAC, signal and the fields the
    mask names); others send OBD items `type (2) | length (1) | value`."""
    if r.family == "aovx":
        _aovx_tags(value, r)
        return
    pos = 0
    while pos + 3 <= len(value):
        kind = u16(value, pos)
        size = value[pos + 2]
        data = value[pos + 3:pos + 3 + size]
        pos += 3 + size
        if len(data) < size:
            break
        entry = _OBD_ITEMS.get(kind)
        if entry is not None and data:
            try:
                r.attrs[entry[0]] = entry[1](data)
            except (struct.error, IndexError):
                continue  # an entry shorter than its type: the others still count


_TAG_FIELDS = ((0, 10), (1, 2), (2, 2), (3, 2), (4, 2), (5, 6), (6, 2), (7, 2))


def _aovx_tags(value: bytes, r: Reading) -> None:
    mask = value[0]
    pos = 1
    index = 0
    while pos + 7 <= len(value):
        index += 1
        r.attrs[f"tag{index}_mac"] = value[pos:pos + 6].hex()
        rssi = value[pos + 6]
        r.attrs[f"tag{index}_rssi"] = rssi - 256 if rssi > 127 else rssi
        pos += 7
        for bit, size in _TAG_FIELDS:
            if not mask & (1 << bit):
                continue
            data = value[pos:pos + size]
            _need(data, size)
            if bit == 0:
                r.attrs[f"tag{index}_name"] = text(data)
            elif bit == 2:
                r.attrs[f"tag{index}_battery"] = u16(data) / 1000.0
            elif bit == 3:
                r.attrs[f"tag{index}_temp"] = s16(data) / 10.0
            elif bit == 4:
                r.attrs[f"tag{index}_humidity"] = s16(data) / 10.0
            pos += size


def _wifi(value: bytes, r: Reading) -> None:
    """0xEC / 0xF4: access points of MAC (6) and signal (1): counted, not kept."""
    r.attrs["wifi_count"] = len(value) // 7


def _cells(value: bytes, r: Reading) -> None:
    """0xF0: cell towers of MCC (2), MNC (2), cell id (4), area code (4), signal: counted."""
    r.attrs["cell_count"] = len(value) // 13


def _illuminance(value: bytes, r: Reading) -> None:
    if len(value) == 2:
        r.attrs["illuminance"] = u16(value)


def _environment(value: bytes, r: Reading) -> None:
    """0xF6: air pressure (2 bytes), an IMEI (8 bytes, one leading pad nibble), or an event
    and a mask of sensor values (AOVX units, always this form)."""
    length = len(value)
    aovx = r.family == "aovx"
    if not aovx and length == 2:
        r.attrs["air_pressure"] = u16(value)
        return
    if not aovx and length == 8:
        r.attrs["imei"] = value.hex()[1:]
        return
    event = value[0]
    r.attrs["event"] = event
    if event == 2:
        r.attrs["motion"] = True
    mask = value[1]
    pos = 2
    if mask & 1:
        r.attrs["light_sensor"] = u16(value, pos)
        pos += 2
    if mask & 2:
        r.attrs["temp1"] = s16(value, pos) / 10.0
        pos += 2
    if mask & 4:
        r.attrs["humidity"] = s16(value, pos) / 10.0
        pos += 2
    if mask & 8:
        r.attrs["g_sensor"] = (f"[{s16(value, pos)},{s16(value, pos + 2)},"
                               f"{s16(value, pos + 4)}]")
        pos += 6
    if mask & 16:
        pos += 10
    if mask & 32:
        r.attrs["air_pressure"] = u16(value, pos)


def _battery_block(value: bytes, r: Reading) -> None:
    """0xF7: humidity (2 bytes), or battery mV (4), state (2/3 charging), level %."""
    length = len(value)
    if length == 2:
        r.attrs["humidity"] = u16(value) / 10.0
        return
    r.attrs["battery"] = u32(value) / 1000.0
    if length >= 5 and value[4] in (2, 3):
        r.attrs["charge"] = True
    if length >= 6:
        r.attrs["battery_level"] = value[5]


def _f8(value: bytes, r: Reading) -> None:
    """0xF8: AOVX: mode, IMEI (8), ICCID (10 BCD); C5/C5L: steps; others: a temperature."""
    if r.family == "aovx":
        _need(value, 19)
        r.attrs["iccid"] = value[9:19].hex()
    elif r.family == "c5":
        r.attrs["steps"] = u16(value)
    else:
        r.attrs["temp2"] = u16(value) / 10.0 - 50


def _gnss_block(value: bytes, r: Reading) -> None:
    """0xF9: a mask, then GNSS age (4), ACC time (4), HDOP (2), GNSS time (6), -, intervals
    (8), external temperature (2 + 4 of thresholds)."""
    mask = u16(value)
    pos = 2
    if mask & 1:
        pos += 4
    if mask & 2:
        pos += 4
    if mask & 4:
        r.hdop = u16(value, pos) / 10.0
        pos += 2
    if mask & 8:
        pos += 6
    if mask & 32:
        pos += 8
    if mask & 64:
        r.attrs["temp3"] = s16(value, pos) / 10.0


def _container(value: bytes, r: Reading) -> None:
    r.attrs["container"] = value.decode("latin-1")


def _geofence(value: bytes, r: Reading) -> None:
    r.attrs["geofence"] = value[0]


_FE_ALARMS = ((1, AlarmType.ACCELERATION), (2, AlarmType.BRAKING), (4, AlarmType.CORNERING),
              (8, AlarmType.ACCIDENT), (16, AlarmType.TAMPERING))


def _fe(value: bytes, r: Reading) -> None:
    """0xFE: battery level (1 byte), supply voltage (2), odometer in metres (4), or a `7C`
    list of sub-items whose type 1 is a word of driving alarms."""
    length = len(value)
    if length == 1:
        r.attrs["battery_level"] = value[0]
    elif length == 2:
        r.attrs["power"] = u16(value) / 10.0
    elif length == 4:
        r.attrs["odometer"] = u32(value)
    elif value[0] == 0x7C:
        pos = 1
        while pos + 2 <= length:
            kind, size = value[pos], value[pos + 1]
            if kind == 1 and size >= 4 and pos + 6 <= length:
                flags = u32(value, pos + 2)
                for bit, alarm in _FE_ALARMS:
                    if flags & bit:
                        r.alarm(alarm, f"0xFE.{bit}")
            pos += 2 + size


ITEMS: dict[int, Handler] = {
    0x01: _mileage,
    0x02: _fuel,
    0x06: _battery_level,
    0x0B: lock_command,
    0x14: _video_alarm,
    0x25: _input,
    0x2B: _adc,
    0xA7: _adc,
    0x30: _rssi,
    0x31: _satellites,
    0x33: _mode_or_lock,
    0x51: _temperatures,
    0x56: _battery_tenths,
    0x57: _driving_alarms,
    0x60: _event,
    0x63: _locks,
    0x64: _driver_assistance("adas_alarm"),
    0x65: _driver_assistance("dms_alarm"),
    0x67: _password,
    0x68: _battery_level_hundredths,
    0x69: _battery_volts_hundredths,
    0x70: _behaviour,
    0x82: _power_tenths,
    0x91: _obd_block,
    0x94: _vin,
    0xAC: _odometer_metres,
    0xBC: _driver,
    0xBD: _driver_id,
    0xD0: _user_status,
    0xD3: _power_tenths,
    0xD4: lambda v, r: _battery_or_cells(v, r, 0xD4),
    0xE1: lambda v, r: _battery_or_cells(v, r, 0xE1),
    0xE9: lambda v, r: _battery_or_cells(v, r, 0xE9),
    0xD5: _lock_list,
    0xDA: _lock_device_status,
    0xE2: _fuel_tenths32,
    0xE3: _battery_pair,
    0xE4: _charge_and_level,
    0xE5: _motion,
    0xE6: _sensors,
    0xE7: _alarm_word16,
    0xE8: _jimi_or_lock,
    0xEB: _nested,
    0xEC: _wifi,
    0xF4: _wifi,
    0xED: _card,
    0xEE: _signal_block,
    0xF0: _cells,
    0xF1: _power_millivolts32,
    0xF2: _firmware,
    0xF3: _tags_or_obd,
    0xF5: _illuminance,
    0xF6: _environment,
    0xF7: _battery_block,
    0xF8: _f8,
    0xF9: _gnss_block,
    0xFB: _container,
    0xFC: _geofence,
    0xFE: _fe,
}


# Item 0x80: the rest of the location is OBD items with their own meanings ---------------------


def _u8_minus_40(value: bytes) -> AttrValue:
    return value[0] - 40


OBD_EXTENSION: dict[int, tuple[str, Callable[[bytes], AttrValue]]] = {
    0x01: ("odometer", lambda v: u32(v) * 100),
    0x02: ("fuel", lambda v: u16(v) / 10.0),
    0x03: ("obd_speed", lambda v: u16(v) / 10.0),
    0x56: ("battery_level", lambda v: v[1]),
    0x61: ("power", lambda v: u16(v) / 100.0),
    0x69: ("battery", lambda v: u16(v) / 100.0),
    0x80: ("obd_speed", lambda v: v[0]),
    0x81: ("rpm", u16),
    0x82: ("power", lambda v: u16(v) / 10.0),
    0x83: ("engine_load", lambda v: v[0]),
    0x84: ("coolant_temp", _u8_minus_40),
    0x85: ("fuel_consumption", u16),
    0x86: ("intake_temp", _u8_minus_40),
    0x87: ("intake_flow", u16),
    0x88: ("intake_pressure", lambda v: v[0]),
    0x89: ("throttle", lambda v: v[0]),
    0x8B: ("vin", lambda v: text(v[:17])),
    0x8C: ("obd_odometer", lambda v: u32(v) * 100),
    0x8D: ("trip_odometer", lambda v: u16(v) * 1000),
    0x8E: ("fuel", lambda v: v[0]),
    0xA0: ("dtcs", lambda v: text(v).replace(",", " ")),
    0xCC: ("iccid", lambda v: text(v[:20])),
}


def obd_realtime(data: str, into: dict[str, AttrValue]) -> None:
    """`$OBD-RT,<power>,<rpm>,<speed>,<throttle>,<load>,<coolant>,<instant fuel>,<average
    fuel>,<trip km>,<total km>,<trip fuel used>,<fuel used>,...`: empty fields are absent."""
    values = data.strip().split(",")
    names: tuple[tuple[str, Callable[[str], AttrValue]], ...] = (
        ("power", float), ("rpm", float), ("obd_speed", float), ("throttle", float),
        ("engine_load", float), ("coolant_temp", int), ("fuel_consumption", float),
        ("fuel_consumption", float), ("trip_odometer", float), ("obd_odometer", float),
        ("trip_fuel_used", float), ("fuel_used", float),
    )
    for (name, convert), field in zip(names, values[1:], strict=False):
        if field:
            try:
                into[name] = convert(field)
            except ValueError:
                continue
