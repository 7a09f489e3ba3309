"""The packets a gt06 device sends (a GT06N / JM-VL0x-class unit), for the simulators.

* login: 0x01 with the IMEI in BCD, a type code and the time-zone word (GMT+0, English);
* heartbeat: 0x13 status (terminal information, voltage level, GSM signal);
* position: 0x22 GPS+LBS with ACC, upload mode and the re-upload flag (set for buffered fixes);
* sos / alarm: 0x16 GPS+LBS+status with the alarm byte (SOS also in the terminal information);
* command answers: 0x15 text for `Relay`, `TIMER`, `RESET`; 0x21 "Current position!" for
  `WHERE#`.

Every packet carries the next serial number (1, 2, ... wrapping at 0xFFFF). Times are sent in
UTC (the login announces GMT+0).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from protocols.codec import Fix
from protocols.events import AlarmType
from protocols.gt06 import blocks as b
from protocols.gt06.commands import decode_text
from protocols.gt06.variants import Model, Variant
from protocols.gt06.wire import packet

#: The type code a JM-VL01 sends in its login (any value is accepted by servers).
TYPE_CODE = 0x3610
#: Cell the simulated device reports (MCC 262 Germany, MNC 1).
_CELL = (262, 1, 0x2F1A, 0x0C4E2F)
_STANDARD = Model("")

#: Alarms the simulated device can send, with the alarm-byte code it uses.
ALARM_CODES: dict[AlarmType, int] = {
    kind: code for kind, code in b.ALARM_BYTE_FOR.items()
    if b.alarm_code(code, _STANDARD, Variant.STANDARD) is kind
}


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    if not 2000 <= when.year <= 2255:
        raise ValueError(f"gt06 dates have one-byte years from 2000, got {when.year}")
    return when


def gps_block(fix: Fix, *, ignition: bool | None = None) -> bytes:
    """Date, satellites, latitude, longitude, speed (km/h), course/status word."""
    when = _utc(fix.fix_time)
    if not (-90.0 <= fix.lat <= 90.0 and -180.0 <= fix.lon <= 180.0):
        raise ValueError(f"coordinates out of range: {fix.lat}, {fix.lon}")
    satellites = min(max(fix.satellites if fix.satellites is not None else 9, 0), 15)
    flags = round(fix.course_deg) % 360
    if fix.lat >= 0:
        flags |= 0x400
    if fix.lon < 0:
        flags |= 0x800
    if fix.valid:
        flags |= 0x1000
    if ignition is not None:
        flags |= 0x4000 | (0x8000 if ignition else 0)
    return (bytes((when.year - 2000, when.month, when.day, when.hour, when.minute, when.second,
                   0xC0 | satellites))
            + round(abs(fix.lat) * 1_800_000).to_bytes(4, "big")
            + round(abs(fix.lon) * 1_800_000).to_bytes(4, "big")
            + bytes((min(max(round(fix.speed_kmh), 0), 255),))
            + flags.to_bytes(2, "big"))


def _cell() -> bytes:
    mcc, mnc, lac, cid = _CELL
    return mcc.to_bytes(2, "big") + bytes((mnc,)) + lac.to_bytes(2, "big") + cid.to_bytes(3, "big")


def _voltage_level(fix: Fix) -> int:
    """The 0-6 voltage level of the status block from a battery percentage."""
    if fix.battery_percent is None:
        return 6
    return min(max(round(fix.battery_percent * 6 / 100), 0), 6)


class Gt06Device:
    """A simulated gt06 unit. Implements protocols.codec.DeviceEncoder."""

    def __init__(self, imei: str, *, serial: int = 1) -> None:
        if not (len(imei) == 15 and imei.isascii() and imei.isdigit()):
            raise ValueError(f"gt06 device needs a 15-digit IMEI, got {imei!r}")
        self.imei = imei
        self.device_id = imei
        self.serial = serial & 0xFFFF
        self.ignition = True

    def _next(self) -> int:
        serial = self.serial
        self.serial = (serial + 1) & 0xFFFF
        return serial

    # DeviceEncoder -----------------------------------------------------------------------

    def login(self) -> bytes:
        """0x01: IMEI (BCD, a leading 0), type code, time zone GMT+0 with English (0x0002)."""
        content = bytes.fromhex("0" + self.imei) + TYPE_CODE.to_bytes(2, "big") + b"\x00\x02"
        return packet(b.LOGIN, content, self._next())

    def heartbeat(self) -> bytes:
        """0x13: terminal information (GPS on, ACC), voltage level, GSM signal, language."""
        info = 0x40 | (0x02 if self.ignition else 0)
        return packet(b.STATUS, bytes((info, 6, 4, 0x00, 0x02)), self._next())

    def position(self, fix: Fix) -> bytes:
        """0x22 GPS+LBS: one fix, live."""
        return self._gps_lbs(fix, archive=False)

    def report(self, fixes: Sequence[Fix], *, buffered: bool = False) -> bytes:
        """One 0x22 packet per fix; buffered fixes carry the re-upload flag."""
        return b"".join(self._gps_lbs(fix, archive=buffered) for fix in fixes)

    def sos(self, fix: Fix) -> bytes:
        """0x16 with alarm byte 0x01 and the SOS code in the terminal information."""
        return self._alarm_packet(fix, 0x01, sos=True)

    def alarm(self, alarm_type: AlarmType, fix: Fix) -> bytes:
        """0x16 with the alarm byte of `alarm_type`; ValueError for alarms it has no code for."""
        if alarm_type is AlarmType.SOS:
            return self.sos(fix)
        code = ALARM_CODES.get(alarm_type)
        if code is None:
            raise ValueError(f"gt06 devices have no alarm code for {alarm_type.value}")
        return self._alarm_packet(fix, code, sos=False)

    def command_answer(self, command: bytes, fix: Fix) -> bytes | None:
        """The answer to a 0x80 command: 0x21 position text for WHERE#, else 0x15 text."""
        text = decode_text(command)
        if text is None:
            return None
        upper = text.upper()
        if upper == "WHERE#":
            return self._where(fix)
        if upper == "RELAY,1#":
            answer = "Cut off the fuel supply: Success!"
        elif upper == "RELAY,0#":
            answer = "Restore fuel supply: Success!"
        elif upper.startswith("TIMER,"):
            answer = "TIMER OK!"
        elif upper == "RESET#":
            answer = "Reset OK!"
        else:
            return None
        data = answer.encode("ascii")
        content = bytes((4 + len(data),)) + b"\0\0\0\0" + data + b"\x00\x02"
        return packet(b.STRING, content, self._next())

    # Packets ---------------------------------------------------------------------------------

    def _gps_lbs(self, fix: Fix, *, archive: bool) -> bytes:
        content = (gps_block(fix) + _cell()
                   + bytes((1 if self.ignition else 0, 0x00, 1 if archive else 0)))
        return packet(b.GPS_LBS_2, content, self._next())

    def _alarm_packet(self, fix: Fix, code: int, *, sos: bool) -> bytes:
        info = 0x40 | (0x02 if self.ignition else 0) | ((4 << 3) if sos else 0)
        content = (gps_block(fix) + b"\x09" + _cell()
                   + bytes((info, _voltage_level(fix), 4, code, 0x02)))
        return packet(b.GPS_LBS_STATUS_1, content, self._next())

    def _where(self, fix: Fix) -> bytes:
        when = _utc(fix.fix_time)
        text = (f"Current position!Lat:{'N' if fix.lat >= 0 else 'S'}{abs(fix.lat):.6f},"
                f"Lon:{'E' if fix.lon >= 0 else 'W'}{abs(fix.lon):.6f},"
                f"Course:{fix.course_deg % 360:.2f},Speed:{max(fix.speed_kmh, 0.0):.4f},"
                f"DateTime:{when:%Y-%m-%d %H:%M:%S}")
        content = b"\0\0\0\0\x01" + text.encode("ascii")
        return packet(b.STRING_INFO, content, self._next(), extended=True)
