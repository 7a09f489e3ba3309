"""What one packet says, collected field by field, then turned into typed events.

The packet decoders fill a `Report` (a fix if the packet has one, the device's time otherwise,
attributes, alarms); `Report.events()` makes the events: a Position when there is a fix, else a
Status (or a Heartbeat for keep-alive packets), plus one Alarm per alarm, carrying the position.
A GPS block of all zeros (no fix since power-on) is not a position: the gateway never stores
invented coordinates.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from protocols.events import (
    Alarm,
    AlarmType,
    AttrValue,
    CommandResult,
    Event,
    Heartbeat,
    Position,
    Status,
    attrs,
)

_UTC = UTC
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def lenient_datetime(year: int, month: int, day: int, hour: int, minute: int, second: int,
                     offset_s: int = 0) -> datetime:
    """A UTC datetime from device-local fields; out-of-range fields carry over (month 0 is
    December of the year before, second 60 the next minute), as a lenient calendar does."""
    try:
        when = datetime(year, month, day, hour, minute, second, tzinfo=_UTC)
    except ValueError:
        base = datetime(year + (month - 1) // 12, (month - 1) % 12 + 1, 1, tzinfo=_UTC)
        when = base + timedelta(days=day - 1, hours=hour, minutes=minute, seconds=second)
    return when - timedelta(seconds=offset_s) if offset_s else when


def unix_time(seconds: int) -> datetime:
    return _EPOCH + timedelta(seconds=seconds)


class Report:
    """One packet's content, before it becomes events."""

    __slots__ = (
        "alarms",
        "altitude",
        "attrs",
        "course",
        "device_time",
        "fix_time",
        "hdop",
        "heartbeat",
        "lat",
        "lon",
        "result",
        "satellites",
        "speed_kmh",
        "valid",
    )

    def __init__(self) -> None:
        self.fix_time: datetime | None = None
        self.valid = False
        self.lat = 0.0
        self.lon = 0.0
        self.speed_kmh: float | None = None
        self.course: float | None = None
        self.altitude: float | None = None
        self.satellites: int | None = None
        self.hdop: float | None = None
        self.device_time: datetime | None = None
        self.attrs: dict[str, AttrValue] = {}
        self.alarms: list[tuple[AlarmType, str]] = []
        self.heartbeat = False
        #: Text the device sent back for a command (0x15 / 0x21): a CommandResult.
        self.result: str | None = None

    def alarm(self, kind: AlarmType | None, raw_code: str) -> None:
        if kind is not None and all(kind is not a for a, _ in self.alarms):
            self.alarms.append((kind, raw_code))

    def set_fix(self, when: datetime, valid: bool, lat: float, lon: float) -> None:
        self.fix_time = when
        self.valid = valid
        self.lat = lat
        self.lon = lon

    def has_position(self) -> bool:
        if self.fix_time is None or not self.coordinates_in_range():
            return False
        # A zeroed GPS block (no fix since power-on, 1970 or 2000 dates) carries no position.
        return self.valid or self.lat != 0.0 or self.lon != 0.0

    def coordinates_in_range(self) -> bool:
        """False for a GPS block whose raw values are no coordinates (beyond 90 / 180 degrees):
        the packet is kept as a Status and noted, never stored as a position."""
        return -90.0 <= self.lat <= 90.0 and -180.0 <= self.lon <= 180.0

    def _plausible_fix_time(self) -> datetime | None:
        # A zeroed GPS block's date (1970, 2000) is not a time worth keeping.
        fix_time = self.fix_time
        return fix_time if fix_time is not None and fix_time.year > 2000 else None

    def events(self, device_id: str) -> tuple[Event, ...]:
        values = self.attrs
        if self.alarms:
            values["alarm"] = ",".join(kind.value for kind, _ in self.alarms)
        if self.satellites is not None and not self.has_position():
            values["satellites"] = self.satellites
        attributes = attrs(**values)
        position: Position | None = None
        main: Event
        if self.has_position():
            assert self.fix_time is not None
            position = Position(
                device_id=device_id,
                fix_time=self.fix_time,
                valid=self.valid,
                lat=self.lat,
                lon=self.lon,
                speed_kmh=self.speed_kmh,
                course_deg=self.course,
                altitude_m=self.altitude,
                satellites=self.satellites,
                hdop=self.hdop,
                attributes=attributes,
            )
            main = position
        elif self.result is not None:
            main = CommandResult(device_id, "", self.result, self.device_time, attributes)
        elif self.heartbeat:
            main = Heartbeat(device_id, attributes)
        else:
            main = Status(device_id, self.device_time or self._plausible_fix_time(), attributes)
        answer: tuple[Event, ...] = ()
        if position is not None and values.get("position_request"):
            # The fix of a 0x21 "Current position!" text is the answer to the WHERE# command
            # (`commands.POSITION_REQUEST`), which the gateway matches to the request.
            answer = (CommandResult(device_id, "WHERE#", "position", self.fix_time),)
        if not self.alarms:
            return (main, *answer)
        when = self.fix_time if position is not None else (
            self.device_time or self._plausible_fix_time())
        alarms = tuple(Alarm(device_id, kind, raw, position, when, attributes)
                       for kind, raw in self.alarms)
        return (main, *alarms, *answer)
