"""The frames a JT/T 808 unit sends: what the simulators use to produce traffic.

By default the simulated unit speaks the 2019 layout (version 1) with its IMEI, zero-padded, as
the 20-digit terminal phone, so that its device id is its IMEI, as the MD300 of the corpus does.
`version=2013` gives the 6-byte layout: with no `phone` the IMEI is packed into the phone as
Jimi JC-series units do (device id: the IMEI again); with `phone="013912345678"` a unit
configured with a phone number (device id: those 12 digits).

It registers (0x0100) the first time it logs in and authenticates (0x0102) with the code the
server issues on later connections; locations are 0x0200, buffered reports 0x0704 batches (split
into packets when the body exceeds `max_body`), heartbeats 0x0002. Times are sent in the unit's
clock, Beijing time (+08:00) unless `utc_offset` says otherwise.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import UTC, timedelta

from protocols.codec import Fix
from protocols.events import AlarmType
from protocols.jt808.identity import BadField, auth_code_for_phone, device_id_for_phone
from protocols.jt808.wire import COMPACT, MAX_BODY, build, parse

_BASIC = struct.Struct(">IIIIhHH")

#: Alarm flag bits the simulated unit can raise (JT/T 808 table 24; see location._ALARM_BITS).
ALARM_BITS: dict[AlarmType, int] = {
    AlarmType.SOS: 0,
    AlarmType.OVERSPEED: 1,
    AlarmType.FAULT: 4,
    AlarmType.LOW_BATTERY: 7,
    AlarmType.POWER_CUT: 8,
    AlarmType.VIBRATION: 15,
    AlarmType.TAMPERING: 16,
    AlarmType.GEOFENCE: 20,
    AlarmType.MOVEMENT: 28,
    AlarmType.ACCIDENT: 29,
}
#: Commands answered with 0x0001 (terminal general response).
_ACKNOWLEDGED = frozenset((0x8103, 0x8105, 0x8300, 0x8900))


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


class Jt808Device:
    """A simulated JT/T 808 unit. Implements protocols.codec.DeviceEncoder."""

    def __init__(self, imei: str, *, version: int = 2019, phone: str | None = None,
                 utc_offset: timedelta = timedelta(hours=8), max_body: int = MAX_BODY,
                 manufacturer: str = "TGSIM", model: str = "TRACKERSIM") -> None:
        if not (imei.isascii() and imei.isdigit() and 1 <= len(imei) <= 20):
            raise ValueError(f"jt808 device needs an IMEI of digits, got {imei!r}")
        if version not in (2013, 2019):
            raise ValueError(f"jt808 device version must be 2013 or 2019, got {version}")
        if not 64 <= max_body <= MAX_BODY:
            raise ValueError(f"max_body must be 64..{MAX_BODY}, got {max_body}")
        self.imei = imei
        self.version = version
        width = 20 if version == 2019 else 12
        if phone is not None:
            if not (phone.isascii() and phone.isdigit() and len(phone) <= width):
                raise ValueError(f"jt808 phone must be at most {width} digits, got {phone!r}")
            self.phone = bytes.fromhex(phone.zfill(width))
        elif version == 2019:
            self.phone = bytes.fromhex(imei.zfill(20))
        else:
            self.phone = int(imei[:14]).to_bytes(6, "big")
        #: The id the server knows the unit by (see protocols.jt808.identity).
        self.device_id = device_id_for_phone(self.phone)
        self._protocol_version = 1 if version == 2019 else None
        self.utc_offset = utc_offset
        self.max_body = max_body
        self.manufacturer = manufacturer
        self.model = model
        self.serial = 0
        self.registered = False

    # Framing -------------------------------------------------------------------------------

    def _next_serial(self) -> int:
        serial = self.serial
        self.serial = (serial + 1) & 0xFFFF
        return serial

    def frame(self, msg_id: int, body: bytes) -> bytes:
        """One message, split into packets (consecutive serials) when the body is too long."""
        if len(body) <= self.max_body:
            return build(msg_id, self.phone, self._next_serial(), body,
                         version=self._protocol_version)
        chunks = [body[i:i + self.max_body] for i in range(0, len(body), self.max_body)]
        return b"".join(
            build(msg_id, self.phone, self._next_serial(), chunk,
                  version=self._protocol_version, packet=(len(chunks), index))
            for index, chunk in enumerate(chunks, start=1))

    def location_body(self, fix: Fix, alarm_flags: int = 0) -> bytes:
        """The 0x0200 body of a fix: basic block, mileage, signal and satellites items."""
        status = 0
        if fix.attributes.get("ignition"):
            status |= 1
        if fix.valid:
            status |= 2
        if fix.lat < 0:
            status |= 4
        if fix.lon < 0:
            status |= 8
        local = fix.fix_time.astimezone(UTC) + self.utc_offset
        if not 2000 <= local.year <= 2099:
            raise ValueError(f"fix time {fix.fix_time} outside the years 2000-2099 JT/T 808 "
                             "can send")
        body = bytearray(_BASIC.pack(
            alarm_flags & 0xFFFFFFFF, status,
            _clamp(round(abs(fix.lat) * 1e6), 0, 90_000_000),
            _clamp(round(abs(fix.lon) * 1e6), 0, 180_000_000),
            _clamp(round(fix.altitude_m), -32768, 32767),
            _clamp(round(fix.speed_kmh * 10), 0, 0xFFFF),
            round(fix.course_deg) % 360))
        body += bytes.fromhex(local.strftime("%y%m%d%H%M%S"))
        odometer = fix.attributes.get("odometer")
        if isinstance(odometer, int | float) and not isinstance(odometer, bool):
            body += b"\x01\x04" + _clamp(round(odometer / 100), 0, 0xFFFFFFFF).to_bytes(4, "big")
        rssi = fix.attributes.get("rssi")
        if isinstance(rssi, int) and not isinstance(rssi, bool):
            body += b"\x30\x01" + bytes((_clamp(rssi, 0, 255),))
        if fix.satellites is not None:
            body += b"\x31\x01" + bytes((_clamp(fix.satellites, 0, 255),))
        return bytes(body)

    # DeviceEncoder -------------------------------------------------------------------------

    def registration(self) -> bytes:
        """0x0100: province, city, manufacturer, model, terminal id (the IMEI in 2019, its
        last 7 digits in 2013), plate colour 0, no plate."""
        maker_size, model_size, id_size = (11, 30, 30) if self.version == 2019 else (5, 20, 7)
        terminal_id = self.imei if self.version == 2019 else self.imei[-7:]
        body = (b"\x00\x00\x00\x00"
                + self.manufacturer.encode("ascii")[:maker_size].ljust(maker_size, b"\x00")
                + self.model.encode("ascii")[:model_size].ljust(model_size, b"\x00")
                + terminal_id.encode("ascii")[:id_size].ljust(id_size, b"\x00")
                + b"\x00")
        return self.frame(0x0100, body)

    def authentication(self) -> bytes:
        """0x0102 with the code the server issued (2019: with the IMEI and a version)."""
        code = auth_code_for_phone(self.phone)
        if self.version == 2019:
            body = (bytes((len(code),)) + code + self.imei.encode("ascii")[:15].ljust(15, b"\x00")
                    + b"trackersim".ljust(20, b"\x00"))
        else:
            body = code
        return self.frame(0x0102, body)

    def login(self) -> bytes:
        """Registration the first time, authentication afterwards."""
        if self.registered:
            return self.authentication()
        self.registered = True
        return self.registration()

    def heartbeat(self) -> bytes:
        """0x0002, empty body; the server answers 0x8001."""
        return self.frame(0x0002, b"")

    def position(self, fix: Fix) -> bytes:
        """One 0x0200 location report."""
        return self.frame(0x0200, self.location_body(fix))

    def report(self, fixes: Sequence[Fix], *, buffered: bool = False) -> bytes:
        """0x0704 batches: count, type (1: stored while offline), `length | body` records.
        A batch whose body exceeds `max_body` goes out in packets."""
        records = [self.location_body(fix) for fix in fixes]
        frames = []
        # 65535 records at most per batch (the count field).
        for start in range(0, len(records), 0xFFFF):
            chunk = records[start:start + 0xFFFF]
            body = (len(chunk).to_bytes(2, "big") + (b"\x01" if buffered else b"\x00")
                    + b"".join(len(r).to_bytes(2, "big") + r for r in chunk))
            frames.append(self.frame(0x0704, body))
        return b"".join(frames)

    def sos(self, fix: Fix) -> bytes:
        """0x0200 with alarm flag bit 0 (emergency)."""
        return self.alarm(AlarmType.SOS, fix)

    def alarm(self, alarm_type: AlarmType, fix: Fix) -> bytes:
        """0x0200 with the alarm flag of `alarm_type`; ValueError for an alarm the standard
        alarm flags cannot carry."""
        bit = ALARM_BITS.get(alarm_type)
        if bit is None:
            raise ValueError(f"jt808 devices cannot send a {alarm_type.value} alarm")
        return self.frame(0x0200, self.location_body(fix, 1 << bit))

    def command_answer(self, command: bytes, fix: Fix) -> bytes | None:
        """0x0201 (the fix) for a location query 0x8201; 0x0001 (success) for the settings,
        terminal control and text commands; None for what is not a command to this unit."""
        try:
            header = parse(command)
        except BadField:
            return None
        if header.phone != self.phone or header.msg_id in COMPACT:
            return None
        serial = header.serial.to_bytes(2, "big")
        if header.msg_id == 0x8201:
            return self.frame(0x0201, serial + self.location_body(fix))
        if header.msg_id in _ACKNOWLEDGED:
            return self.frame(0x0001, serial + header.msg_id.to_bytes(2, "big") + b"\x00")
        return None
