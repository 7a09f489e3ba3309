"""Device side: the frames a Queclink GL300 (protocol version `1A0401`) sends.

@Track has no login frame. A GL300 that powers up sends `+RESP:GTPNA` (power on), then its
reports, `+RESP:GTINF` device information and `+ACK:GTHBD` heartbeats. `login()` therefore
returns the GTPNA frame (the server sees a POWER_ON alarm for the simulated boot); `info()` gives
a GTINF frame for simulators that want the device-information report as well.

Every message carries a count number that increases by one per message and wraps after FFFF.
The send time comes from `clock` (UTC now by default; tests pass a fixed clock).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from protocols.codec import Fix
from protocols.gl300.commands import RTO_SUBCOMMANDS
from protocols.gl300.fields import format_time

DEFAULT_VERSION = "1A0401"
MAX_POINTS = 15


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _int_attr(fix: Fix, key: str) -> int | None:
    value = fix.attributes.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class Gl300Device:
    """A simulated GL300. Implements protocols.codec.DeviceEncoder."""

    def __init__(self, imei: str, *, protocol_version: str = DEFAULT_VERSION,
                 device_name: str = "", password: str | None = None,
                 clock: Callable[[], datetime] = _utc_now, count: int = 0) -> None:
        """`password`: when set, commands with another password are ignored (as a real device
        does); None accepts any. `count`: the first count number to send."""
        self.imei = imei
        self.protocol_version = protocol_version
        self.device_name = device_name
        self.password = password
        self.clock = clock
        self.count = count & 0xFFFF

    # Framing helpers ------------------------------------------------------------------------

    def _tail(self) -> str:
        """`<send time>,<count>$`, consuming one count number."""
        count = self.count
        self.count = (count + 1) & 0xFFFF
        return f"{format_time(self.clock())},{count:04X}$"

    def _head(self, header: str) -> str:
        return f"{header},{self.protocol_version},{self.imei},{self.device_name},"

    @staticmethod
    def _point(fix: Fix) -> str:
        """accuracy, speed, azimuth, altitude, lon, lat, GPS time, MCC, MNC, LAC, cell, reserved."""
        if not fix.valid:
            accuracy = 0  # "last known position"
        elif fix.hdop is not None:
            accuracy = min(50, max(1, round(fix.hdop)))
        else:
            accuracy = 1
        mcc, mnc = _int_attr(fix, "mcc"), _int_attr(fix, "mnc")
        lac, cell = _int_attr(fix, "lac"), _int_attr(fix, "cell_id")
        cells = (f"{mcc:04d},{mnc:04d},{lac:04X},{cell:04X}"
                 if mcc is not None and mnc is not None and lac is not None and cell is not None
                 else ",,,")
        return (f"{accuracy},{fix.speed_kmh:.1f},{round(fix.course_deg) % 360},"
                f"{fix.altitude_m:.1f},{fix.lon:.6f},{fix.lat:.6f},{format_time(fix.fix_time)},"
                f"{cells},")

    def _numbered(self, header: str, fixes: Sequence[Fix]) -> str:
        battery = fixes[-1].battery_percent
        points = ",".join(self._point(fix) for fix in fixes)
        level = "" if battery is None else str(max(0, min(100, battery)))
        return f"{self._head(header)}0,0,{len(fixes)},{points},{level},{self._tail()}"

    # DeviceEncoder ---------------------------------------------------------------------------

    def login(self) -> bytes:
        """`+RESP:GTPNA`: the power-on report, the first thing a booting GL300 sends."""
        return f"{self._head('+RESP:GTPNA')}{self._tail()}".encode()

    def info(self, *, battery_percent: int = 100, iccid: str = "89860000000000000000") -> bytes:
        """`+RESP:GTINF`: device information (state 41 = no ignition sensing, at rest)."""
        body = (f"41,{iccid},20,0,0,0.0,,4.10,0,1,1,0,0,{format_time(self.clock())},"
                f"{battery_percent},1,25,,,")
        return f"{self._head('+RESP:GTINF')}{body}{self._tail()}".encode()

    def heartbeat(self) -> bytes:
        """`+ACK:GTHBD,...$`; the server answers `+SACK:GTHBD,<ver>,<count>$`."""
        return f"{self._head('+ACK:GTHBD')}{self._tail()}".encode()

    def position(self, fix: Fix) -> bytes:
        """One GTFRI with one point."""
        return self.report([fix])

    def report(self, fixes: Sequence[Fix], *, buffered: bool = False) -> bytes:
        """GTFRI frames of up to 15 points each; `+BUFF:` when the fixes were stored offline."""
        header = "+BUFF:GTFRI" if buffered else "+RESP:GTFRI"
        frames = [self._numbered(header, fixes[i:i + MAX_POINTS])
                  for i in range(0, len(fixes), MAX_POINTS)]
        return "".join(frames).encode()

    def sos(self, fix: Fix) -> bytes:
        """GTSOS (same layout as GTFRI, one point)."""
        return self._numbered("+RESP:GTSOS", [fix]).encode()

    def command_answer(self, command: bytes, fix: Fix) -> bytes | None:
        """`+ACK:GTxxx` for an `AT+GTxxx=...$` command; for AT+GTRTO sub-command 1 (RTL) also the
        GTRTL position report, and for 8 (VER) the GTVER report, concatenated after the ACK."""
        try:
            text = command.decode("ascii").strip()
        except UnicodeDecodeError:
            return None
        if not text.startswith("AT+GT") or not text.endswith("$") or "=" not in text:
            return None
        name, _, params_text = text[5:-1].partition("=")
        params = params_text.split(",")
        if len(name) != 3 or not name.isalnum() or len(params) < 2:
            return None
        if self.password is not None and params[0] != self.password:
            return None
        serial = params[-1]
        if name == "RTO":
            sub = RTO_SUBCOMMANDS.get(params[1].upper())
            if sub is None:
                return None
            out = f"{self._head('+ACK:GTRTO')}{sub},{serial},{self._tail()}"
            if sub == "RTL":
                out += self._numbered("+RESP:GTRTL", [fix])
            elif sub == "VER":
                out += f"{self._head('+RESP:GTVER')}GL300,0A03,0103,{self._tail()}"
            return out.encode()
        return f"{self._head('+ACK:GT' + name)}{serial},{self._tail()}".encode()
