"""Typed events that every protocol decoder produces.

Units are normalised here once, so that nothing downstream needs to know which protocol a value
came from: decimal degrees (negative south / west), km/h, degrees from true north, metres, and
timezone-aware UTC datetimes.

Events are built once by a decoder and never changed afterwards: treat them as immutable. They
are plain slotted records rather than frozen dataclasses because a frozen dataclass pays one
`object.__setattr__` call per field on every construction, and every frame builds several
(a Position was measured at 3.2 us frozen against 0.6 us plain on the reference machine).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

#: Attribute values kept in the typed mapping of an event.
AttrValue = str | int | float | bool | None
Attributes = Mapping[str, AttrValue]

_EMPTY: Attributes = MappingProxyType({})


class AlarmType(enum.Enum):
    """What a device reported as an alarm. The protocol's own code is kept in `Alarm.raw_code`."""

    SOS = "sos"
    LOW_BATTERY = "low_battery"
    LOW_POWER = "low_power"
    POWER_CUT = "power_cut"
    POWER_RESTORED = "power_restored"
    POWER_ON = "power_on"
    POWER_OFF = "power_off"
    OVERSPEED = "overspeed"
    LOW_SPEED = "low_speed"
    GEOFENCE = "geofence"
    GEOFENCE_ENTER = "geofence_enter"
    GEOFENCE_EXIT = "geofence_exit"
    MOVEMENT = "movement"
    VIBRATION = "vibration"
    ACCIDENT = "accident"
    #: A wearer fell (fall detection of watches and personal trackers; gt06 alarm 0x23).
    FALL_DOWN = "fall_down"
    DOOR = "door"
    BONNET = "bonnet"
    FOOT_BRAKE = "foot_brake"
    FUEL_LEAK = "fuel_leak"
    FAULT = "fault"
    TEMPERATURE = "temperature"
    TAMPERING = "tampering"
    REMOVING = "removing"
    IDLE = "idle"
    TOW = "tow"
    JAMMING = "jamming"
    ACCELERATION = "acceleration"
    BRAKING = "braking"
    CORNERING = "cornering"
    IGNITION_ON = "ignition_on"
    IGNITION_OFF = "ignition_off"
    GENERAL = "general"


@dataclass(slots=True)
class Position:
    """One GPS fix. `valid` is the device's own fix flag (A/V); coordinates are always present."""

    device_id: str
    fix_time: datetime
    valid: bool
    lat: float
    lon: float
    speed_kmh: float | None = None
    course_deg: float | None = None
    altitude_m: float | None = None
    satellites: int | None = None
    hdop: float | None = None
    attributes: Attributes = field(default_factory=lambda: _EMPTY)


@dataclass(slots=True)
class Login:
    """The device identified itself (gps103 `##,imei:...`, tk103 BP05 registration)."""

    device_id: str
    attributes: Attributes = field(default_factory=lambda: _EMPTY)


@dataclass(slots=True)
class Heartbeat:
    """Keep-alive with no position (gps103 bare IMEI, tk103 BP00, Queclink GTHBD)."""

    device_id: str
    attributes: Attributes = field(default_factory=lambda: _EMPTY)


@dataclass(slots=True)
class Alarm:
    """An alarm; `position` is the fix the alarm frame carried, when it carried one."""

    device_id: str
    alarm: AlarmType
    raw_code: str
    position: Position | None = None
    event_time: datetime | None = None
    attributes: Attributes = field(default_factory=lambda: _EMPTY)


@dataclass(slots=True)
class CommandResult:
    """The device's answer to a command the server sent (tk103 ZC03 text, Queclink `+ACK:GTxxx`)."""

    device_id: str
    command: str
    result: str
    event_time: datetime | None = None
    attributes: Attributes = field(default_factory=lambda: _EMPTY)


@dataclass(slots=True)
class Status:
    """Device information without a fix: battery, VIN, OBD data, cell towers, firmware version."""

    device_id: str
    event_time: datetime | None = None
    attributes: Attributes = field(default_factory=lambda: _EMPTY)


@dataclass(slots=True)
class Rejected:
    """A frame that could not be decoded, and why. Decoders return this instead of raising."""

    reason: str
    device_id: str | None = None


Event = Position | Login | Heartbeat | Alarm | CommandResult | Status | Rejected


def attrs(**values: AttrValue) -> Attributes:
    """An immutable attribute mapping without the keys whose value is None."""
    return MappingProxyType({k: v for k, v in values.items() if v is not None})
