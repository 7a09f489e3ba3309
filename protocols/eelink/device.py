"""The packages an eelink device (TK419 and the other EElink 0x6767 units) sends."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import UTC, datetime

from protocols.codec import Fix
from protocols.eelink.packages import (
    ALARM_CODES,
    COORDINATE_UNIT,
    DOWNLINK,
    HEARTBEAT,
    LOCATION,
    LOGIN,
    WARNING,
)
from protocols.eelink.udp import imei_bcd
from protocols.events import AlarmType

_GPS = struct.Struct(">IBiihHHB")  # time mask lat lon altitude speed course satellites
#: Status word of a simulated device: GPS fixed (bit 0, per fix) and GPS on (bit 10).
_GPS_ON = 0x0400


class EelinkDevice:
    """An eelink tracker over TCP: the login (0x01) first, then 0x12 locations, 0x14 warnings
    (SOS: alarm 0x02) and 0x03 heartbeats, each with its own serial number."""

    def __init__(self, imei: str) -> None:
        self._imei_bcd = imei_bcd(imei)
        self.imei = imei
        self._serial = 0
        self._battery_mv = 4100

    # DeviceEncoder -----------------------------------------------------------------------

    def login(self) -> bytes:
        """IMEI, language 0x01 (English) and time zone 0x00 (UTC)."""
        return self._package(LOGIN, self._imei_bcd + b"\x01\x00")

    def heartbeat(self) -> bytes:
        return self._package(HEARTBEAT, _GPS_ON.to_bytes(2, "big"))

    def position(self, fix: Fix) -> bytes:
        return self._package(LOCATION, self._gps(fix) + self._status(fix)
                             + self._battery(fix))

    def report(self, fixes: Sequence[Fix], *, buffered: bool = False) -> bytes:
        """One 0x12 package per fix (the protocol marks no package as buffered)."""
        return b"".join(self.position(fix) for fix in fixes)

    def sos(self, fix: Fix) -> bytes:
        return self.alarm(AlarmType.SOS, fix)

    def alarm(self, alarm_type: AlarmType, fix: Fix) -> bytes:
        """A 0x14 warning with the alarm's code; ValueError for alarms the protocol has not."""
        code = ALARM_CODES.get(alarm_type)
        if code is None:
            raise ValueError(f"eelink has no alarm code for {alarm_type.value}")
        return self._package(WARNING, self._gps(fix) + bytes((code,)) + self._status(fix))

    def command_answer(self, command: bytes, fix: Fix) -> bytes | None:
        """A 0x80 command package is answered with a 0x80 package: `WHERE#` with the fix as
        text, other commands with `OK`. Anything else: None."""
        if len(command) < 12 or command[:3] != b"gg\x80" or command[7] != 0x01:
            return None
        text = command[12:].decode("ascii", "replace")
        if text == "WHERE#":
            when = _utc(fix.fix_time)
            answer = (f"Lat:{'S' if fix.lat < 0 else 'N'}{abs(fix.lat):.6f}\n"
                      f"Lon:{'W' if fix.lon < 0 else 'E'}{abs(fix.lon):.6f}\n"
                      f"Course:{fix.course_deg % 360.0:.2f}\n"
                      f"Speed:{max(fix.speed_kmh, 0.0):.2f}KM/H\n"
                      f"Date Time:{when:%Y-%m-%d %H:%M:%S}")
        else:
            answer = f"{text.rstrip('#')} OK"
        return self._package(DOWNLINK, b"\x01" + command[8:12] + answer.encode("ascii"))

    # Packages ------------------------------------------------------------------------------

    def _package(self, kind: int, content: bytes) -> bytes:
        self._serial = self._serial % 0xFFFF + 1
        return (b"gg" + bytes((kind,)) + (len(content) + 2).to_bytes(2, "big")
                + self._serial.to_bytes(2, "big") + content)

    def _gps(self, fix: Fix) -> bytes:
        when = _utc(fix.fix_time)
        return _GPS.pack(
            int(when.timestamp()), 0x01,
            round(fix.lat * COORDINATE_UNIT), round(fix.lon * COORDINATE_UNIT),
            max(-32768, min(32767, round(fix.altitude_m))),
            max(0, min(0xFFFF, round(fix.speed_kmh))),
            round(fix.course_deg % 360.0) % 360,
            max(0, min(255, fix.satellites or 0)),
        )

    def _status(self, fix: Fix) -> bytes:
        return (_GPS_ON | (1 if fix.valid else 0)).to_bytes(2, "big")

    def _battery(self, fix: Fix) -> bytes:
        if fix.battery_percent is not None:
            # 3.4 V empty .. 4.2 V full, a typical Li-ion range.
            self._battery_mv = 3400 + 8 * max(0, min(100, fix.battery_percent))
        return self._battery_mv.to_bytes(2, "big")


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    if not 1970 <= when.year <= 2105:
        raise ValueError(f"eelink times are 32-bit UNIX seconds, got {when.year}")
    return when
