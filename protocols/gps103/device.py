"""What a TK103-B / Coban device sends: the frames the simulators use."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from protocols.codec import Fix
from protocols.events import AttrValue
from protocols.gps103.report import SOS_KEYWORD
from protocols.gps103.values import is_device_id
from protocols.units import degrees_to_ddmm, kmh_to_knots


class Gps103Device:
    """Frames of one gps103 device (implements protocols.codec.DeviceEncoder).

    The device clock is set to UTC, so the local date/time field equals the UTC one, as on a
    device configured with `time zone<password> 0`.
    """

    def __init__(self, imei: str) -> None:
        if not is_device_id(imei):
            raise ValueError(f"gps103 device ids are ASCII digits, got {imei!r}")
        self.imei = imei
        self._command_prefix = f"**,imei:{imei},".encode("ascii")

    def login(self) -> bytes:
        """`##,imei:<id>,A;`, sent once after connecting; the server answers `LOAD`."""
        return f"##,imei:{self.imei},A;".encode("ascii")

    def heartbeat(self) -> bytes:
        """The bare IMEI, `<id>;`; the server answers `ON`."""
        return f"{self.imei};".encode("ascii")

    def position(self, fix: Fix) -> bytes:
        """A `tracker` report."""
        return self._report("tracker", fix)

    def report(self, fixes: Sequence[Fix], *, buffered: bool = False) -> bytes:
        """One frame per fix: the protocol has no multi-point or buffered-report form."""
        return b"".join(self._report("tracker", fix) for fix in fixes)

    def sos(self, fix: Fix) -> bytes:
        """A `help me` report; the server answers `**,imei:<id>,E;`."""
        return self._report(SOS_KEYWORD, fix)

    def command_answer(self, command: bytes, fix: Fix) -> bytes | None:
        """A position request (`**,imei:<id>,B`) gets a report; other commands get no answer."""
        if not command.startswith(self._command_prefix):
            return None
        body = command[len(self._command_prefix):].rstrip(b";\r\n")
        if body == b"B":
            return self._report("tracker", fix)
        return None

    def _report(self, keyword: str, fix: Fix) -> bytes:
        when = fix.fix_time.astimezone(UTC) if fix.fix_time.tzinfo else fix.fix_time
        lat, lat_hemisphere = degrees_to_ddmm(fix.lat, degree_digits=2)
        lon, lon_hemisphere = degrees_to_ddmm(fix.lon, degree_digits=3)
        # The auxiliary tail (ignition, door, fuel1, fuel2, temperature) carries what the fix
        # knows and stays empty otherwise, as on devices without those sensors.
        tail = ",".join((
            _flag(fix.attributes.get("ignition")),
            _flag(fix.attributes.get("door")),
            _number(fix.attributes.get("fuel1"), "{:.2f}%"),
            "",
            _number(fix.attributes.get("temp1"), "{:+.1f}"),
        ))
        return (
            f"imei:{self.imei},{keyword},{_local(when)},,F,"
            f"{when:%H%M%S}.{when.microsecond // 1000:03d},{'A' if fix.valid else 'V'},"
            f"{lat},{lat_hemisphere},{lon},{lon_hemisphere},"
            f"{kmh_to_knots(fix.speed_kmh):.2f},{fix.course_deg:.2f},{fix.altitude_m:.1f},"
            f"{tail};"
        ).encode("ascii")


def _local(when: datetime) -> str:
    return f"{when.year % 100:02d}{when:%m%d%H%M%S}"


def _flag(value: AttrValue) -> str:
    return "" if value is None else str(int(bool(value)))


def _number(value: AttrValue, template: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ""
    return template.format(value)
