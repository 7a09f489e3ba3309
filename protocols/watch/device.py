"""The frames a watch-protocol device sends: what the simulators use to produce traffic."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC

from protocols.codec import Fix
from protocols.events import AlarmType
from protocols.watch.decoder import MAX_ID_LENGTH, split_header
from protocols.watch.positions import ALARM_BIT


class WatchDevice:
    """A 4G watch-protocol tracker (TK905B/TK915 4G style, SeTracker watches).

    It names itself by its IMEI unless `device_id` gives the 10-digit id some firmwares use.
    `LK` is its login and heartbeat, `UD` its position (`UD2` for buffered ones), `AL` its alarms.
    """

    def __init__(self, imei: str, *, device_id: str | None = None, maker: str = "3G",
                 index: bool = False) -> None:
        ident = device_id or imei
        if not (ident.isascii() and ident.isalnum() and 1 <= len(ident) <= MAX_ID_LENGTH):
            raise ValueError(f"watch device id must be 1 to {MAX_ID_LENGTH} letters or digits, "
                             f"got {ident!r}")
        if len(maker) != 2 or not maker.isascii() or not maker.isalnum():
            raise ValueError(f"maker must be two letters or digits, got {maker!r}")
        self.imei = imei
        #: The id the device puts in its frames and the server addresses commands to.
        self.device_id = ident
        self.maker = maker
        #: ZJ-style devices number their frames (`[ZJ*id*0001*LLLL*...]`).
        self._index: int | None = 0 if index else None
        self._battery = 100

    # DeviceEncoder -----------------------------------------------------------------------

    def login(self) -> bytes:
        """The first `LK` after power-on (the watch has no other login)."""
        return self._frame("LK")

    def heartbeat(self) -> bytes:
        """`LK,<steps>,<tumbles>,<battery %>`, the link keep every few minutes."""
        return self._frame(f"LK,0,0,{self._battery}")

    def position(self, fix: Fix) -> bytes:
        return self._frame("UD," + self._record(fix, 0))

    def report(self, fixes: Sequence[Fix], *, buffered: bool = False) -> bytes:
        """One frame per fix: `UD2` ("blind spot data supplement") for buffered fixes."""
        kind = "UD2" if buffered else "UD"
        return b"".join(self._frame(f"{kind}," + self._record(fix, 0)) for fix in fixes)

    def sos(self, fix: Fix) -> bytes:
        return self.alarm(AlarmType.SOS, fix)

    def alarm(self, alarm_type: AlarmType, fix: Fix) -> bytes:
        """An `AL` message with the alarm's status bit; ValueError for alarms a watch has not."""
        if alarm_type is AlarmType.GENERAL:
            status = 0
        elif alarm_type in ALARM_BIT:
            status = 1 << ALARM_BIT[alarm_type]
        else:
            raise ValueError(f"a watch cannot send a {alarm_type.value} alarm")
        return self._frame("AL," + self._record(fix, status))

    def command_answer(self, command: bytes, fix: Fix) -> bytes | None:
        """Commands for this device are echoed by name (`[3G*id*0002*CR]`); `CR` (position
        now) is followed by a `UD` position. Anything else, or another id: None."""
        try:
            header = split_header(command)
        except Exception:
            return None
        if header.device_id != self.device_id:
            return None
        echo = self._frame(header.type)
        if header.type == "CR":
            return echo + self.position(fix)
        return echo

    # Frames --------------------------------------------------------------------------------

    def _frame(self, content: str) -> bytes:
        if self._index is None:
            index = ""
        else:
            self._index = self._index % 0xFFFF + 1
            index = f"{self._index:04X}*"
        return f"[{self.maker}*{self.device_id}*{index}{len(content):04X}*{content}]".encode()

    def _record(self, fix: Fix, status: int) -> str:
        when = fix.fix_time
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        when = when.astimezone(UTC)
        if not 2000 <= when.year <= 2099:
            raise ValueError(f"watch dates have two-digit years (2000-2099), got {when.year}")
        if fix.battery_percent is not None:
            self._battery = max(0, min(100, fix.battery_percent))
        ns = "S" if fix.lat < 0 else "N"
        ew = "W" if fix.lon < 0 else "E"
        return (
            f"{when:%d%m%y},{when:%H%M%S},{'A' if fix.valid else 'V'},"
            f"{abs(fix.lat):.6f},{ns},{abs(fix.lon):.6f},{ew},"
            f"{max(fix.speed_kmh, 0.0):.2f},{fix.course_deg % 360.0:.1f},{fix.altitude_m:.1f},"
            f"{fix.satellites or 0},100,{self._battery},0,0,{status:08X},0,0"
        )
