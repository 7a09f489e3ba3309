"""The messages an h02 device sends (a Sinotrack ST-901-class unit), for the simulators.

h02 has no login: a unit identifies itself by the id in every message. The simulated unit
uses its IMEI as that id, opens with an `HTBT` heartbeat (which the server echoes), and sends
one text `V1` per fix (answered with `V4,V1,<time>`). Alarms are `V1` messages with one status
bit cleared (active-low); SOS clears bit 1. Commands (`S20`, `S71`) are answered with a `V4`
message carrying the answer and the current fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from protocols.codec import Fix
from protocols.events import AlarmType
from protocols.h02.commands import parse_command
from protocols.h02.status import ALARM_BITS, IDLE, IGNITION
from protocols.units import degrees_to_ddmm, kmh_to_knots


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    if not 2000 <= when.year <= 2099:
        raise ValueError(f"h02 dates have two-digit years (2000-2099), got {when.year}")
    return when


class H02Device:
    """A simulated h02 unit. Implements protocols.codec.DeviceEncoder."""

    def __init__(self, imei: str, *, battery_percent: int = 100) -> None:
        if not (10 <= len(imei) <= 15 and imei.isascii() and imei.isdigit()):
            raise ValueError(f"h02 device needs an id of 10-15 digits, got {imei!r}")
        self.imei = imei
        self.device_id = imei
        self.battery_percent = battery_percent
        self.ignition = True

    # DeviceEncoder -----------------------------------------------------------------------

    def login(self) -> bytes:
        """h02 has no login; the first message is a heartbeat with the battery level."""
        return self.heartbeat()

    def heartbeat(self) -> bytes:
        """`*HQ,<id>,HTBT,<battery %>#`; the server echoes `*HQ,<id>,HTBT#`."""
        return f"*HQ,{self.device_id},HTBT,{self.battery_percent}#".encode("ascii")

    def position(self, fix: Fix) -> bytes:
        """One V1 position."""
        return self._v1(fix, self._status())

    def report(self, fixes: Sequence[Fix], *, buffered: bool = False) -> bytes:
        """One V1 per fix (the text protocol has no multi-fix or buffered marker)."""
        return b"".join(self.position(fix) for fix in fixes)

    def sos(self, fix: Fix) -> bytes:
        """V1 with status bit 1 clear."""
        return self.alarm(AlarmType.SOS, fix)

    def alarm(self, alarm_type: AlarmType, fix: Fix) -> bytes:
        """V1 with the status bit of `alarm_type` clear; ValueError for other alarms."""
        bit = ALARM_BITS.get(alarm_type)
        if bit is None:
            raise ValueError(f"h02 devices have no status bit for {alarm_type.value}")
        return self._v1(fix, self._status() & ~(1 << bit))

    def command_answer(self, command: bytes, fix: Fix) -> bytes | None:
        """`*HQ,<id>,V4,<command>,OK,<command time>,<fix>#` for S20 / S71 / SCF / D1."""
        parsed = parse_command(command)
        if parsed is None:
            return None
        device_id, name, stamp, _params = parsed
        if device_id != self.device_id or name not in ("S20", "S71", "SCF", "D1"):
            return None
        if name == "S20" and _params[-1:] in (["0"], ["1"]):
            self.ignition = _params[-1] == "0"
        return self._message("V4", f"{name},OK,{stamp},", fix, self._status())

    # Messages --------------------------------------------------------------------------------

    def _status(self) -> int:
        return IDLE | (IGNITION if self.ignition else 0)

    def _v1(self, fix: Fix, status: int) -> bytes:
        return self._message("V1", "", fix, status)

    def _message(self, kind: str, prefix: str, fix: Fix, status: int) -> bytes:
        when = _utc(fix.fix_time)
        lat, ns = degrees_to_ddmm(fix.lat, degree_digits=2)
        lon, ew = degrees_to_ddmm(fix.lon, degree_digits=3)
        knots = kmh_to_knots(max(fix.speed_kmh, 0.0))
        course = round(fix.course_deg) % 360
        text = (f"*HQ,{self.device_id},{kind},{prefix}{when:%H%M%S},{'A' if fix.valid else 'V'},"
                f"{lat},{ns},{lon},{ew},{knots:.2f},{course:03d},{when:%d%m%y},{status:08X}#")
        return text.encode("ascii")
