"""The frames a tk103 device sends: what the simulators use to produce traffic."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from protocols.codec import Fix
from protocols.units import degrees_to_ddmm

_UTC = UTC


def device_id_for_imei(imei: str) -> str:
    """The 12-character ID a fixed-layout tk103 unit sends: the last 12 digits of its IMEI."""
    return imei[-12:]


class Tk103Device:
    """A tk103 unit.

    Default: the fixed-width layout real TK103 units use, with a 12-character ID (the last 12
    digits of the IMEI), e.g. `(088047365460BR00151024A2555.3531S...)`. With `comma_layout=True`
    it sends the comma layout with the full IMEI, e.g. `(352606090042050,BP05,240414,A,...)`.
    """

    def __init__(self, imei: str, *, comma_layout: bool = False) -> None:
        if not (12 <= len(imei) <= 20 and imei.isascii() and imei.isdigit()):
            raise ValueError(f"tk103 device needs an IMEI of digits, got {imei!r}")
        self.imei = imei
        self.comma_layout = comma_layout
        #: The ID the device puts in its frames and the server addresses commands to.
        self.device_id = imei if comma_layout else device_id_for_imei(imei)
        self._last_fix: Fix | None = None

    # DeviceEncoder -----------------------------------------------------------------------

    def login(self) -> bytes:
        """BP05 registration carrying the last known fix (or a no-fix record before the first)."""
        fix = self._last_fix or Fix(
            fix_time=datetime.now(_UTC).replace(microsecond=0), lat=0.0, lon=0.0, valid=False
        )
        if self.comma_layout:
            return self._comma("BP05", fix)
        return self._fixed("BP05", "000" + self.device_id, fix)

    def heartbeat(self) -> bytes:
        """BP00 handshake; the server answers `(<id>AP01HSO)`."""
        if self.comma_layout:
            return f"({self.device_id},BP00,HSO)".encode("ascii")
        return f"({self.device_id}BP00{self.device_id}HSO)".encode("ascii")

    def position(self, fix: Fix) -> bytes:
        """One BR00 position report."""
        self._last_fix = fix
        if self.comma_layout:
            return self._comma("BR00", fix)
        return self._fixed("BR00", "", fix)

    def report(self, fixes: Sequence[Fix], *, buffered: bool = False) -> bytes:
        """One BR00 frame per fix, back to back (the protocol has no multi-point record and no
        separate marker for buffered points, so `buffered` changes nothing)."""
        return b"".join(self.position(fix) for fix in fixes)

    def sos(self, fix: Fix) -> bytes:
        """SOS alarm: BO01 with alarm digit 2 (comma layout: ZC25)."""
        self._last_fix = fix
        if self.comma_layout:
            return self._comma("ZC25", fix)
        return self._fixed("BO01", "2", fix)

    def command_answer(self, command: bytes, fix: Fix) -> bytes | None:
        """A single-position request `(<id>AP00)` is answered with a BP04 position frame.

        Other commands (report interval, engine stop/resume, reboot) are carried out without a
        frame of their own, and commands for another ID are ignored: both give None.
        """
        text = command.decode("latin-1").strip()
        prefix = f"({self.device_id}"
        if not (text.startswith(prefix) and text.endswith(")")):
            return None
        if text[len(prefix):-1] != "AP00":
            return None
        self._last_fix = fix
        if self.comma_layout:
            return self._comma("BP04", fix)
        return self._fixed("BP04", "", fix)

    # Frame bodies --------------------------------------------------------------------------

    def _fixed(self, kind: str, prefix: str, fix: Fix) -> bytes:
        when = _utc(fix.fix_time)
        lat, ns = degrees_to_ddmm(fix.lat, degree_digits=2)
        lon, ew = degrees_to_ddmm(fix.lon, degree_digits=3)
        attributes = fix.attributes
        charge = "1" if attributes.get("charge") is False else "0"  # 0 means charging
        ignition = "1" if attributes.get("ignition") else "0"
        fuel = _int_attr(attributes.get("fuel"), 0xFFF)
        odometer = _int_attr(attributes.get("odometer"), 0xFFFFFFFF)
        text = (
            f"({self.device_id}{kind}{prefix}"
            f"{when:%y%m%d}{'A' if fix.valid else 'V'}{lat}{ns}{lon}{ew}"
            f"{_speed(fix.speed_kmh)}{when:%H%M%S}{_course(fix.course_deg)}"
            f"{charge}{ignition}000{fuel:03X}L{odometer:08X}"
            f"{_temperature(attributes.get('temp1'))})"
        )
        return text.encode("ascii")

    def _comma(self, kind: str, fix: Fix) -> bytes:
        when = _utc(fix.fix_time)
        lat, ns = degrees_to_ddmm(fix.lat, degree_digits=2)
        lon, ew = degrees_to_ddmm(fix.lon, degree_digits=3)
        text = (
            f"({self.device_id},{kind},{when:%d%m%y},{'A' if fix.valid else 'V'},"
            f"{lat}{ns},{lon}{ew},{_speed(fix.speed_kmh)},{when:%H%M%S},"
            f"{_course(fix.course_deg)})"
        )
        return text.encode("ascii")


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        when = when.replace(tzinfo=_UTC)
    when = when.astimezone(_UTC)
    if not 2000 <= when.year <= 2099:
        raise ValueError(f"tk103 dates have two-digit years (2000-2099), got {when.year}")
    return when


def _speed(kmh: float) -> str:
    """Five characters, km/h with one decimal (`004.7`)."""
    return f"{min(max(kmh, 0.0), 999.9):05.1f}"


def _course(degrees: float) -> str:
    """Six characters, degrees with two decimals (`276.17`)."""
    value = round(degrees % 360.0, 2)
    if value >= 360.0:
        value = 0.0
    return f"{value:06.2f}"


def _temperature(value: object) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return ""
    return f"{min(max(float(value), -999.9), 999.9):+06.1f}"


def _int_attr(value: object, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    return min(max(int(value), 0), limit)
