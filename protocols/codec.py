"""The shape every protocol module offers: framer, decoder, replies, commands, device side.

A protocol module (`gps103`, `tk103`, `gl300`) exports one `CODEC` built from these types. The
gateway and the simulators only ever talk to a protocol through it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from protocols.events import Attributes, Event, Rejected, attrs
from protocols.framing import BoundedFramer


@dataclass(frozen=True, slots=True)
class Reply:
    """Bytes the server must send back for a frame.

    `after_store` is True when the reply acknowledges data (a position, an alarm): it may only be
    written to the device once that data is committed, because the device deletes what was
    acknowledged. Handshake replies (LOAD, ON, AP01HSO, +SACK:GTHBD) go out at once.
    """

    data: bytes
    after_store: bool


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """Per-device or per-listener decoder settings.

    `gl300_sack`: answer every Queclink message with the generic `+SACK:<count>$` (the device-side
    "SACK enable" flag of AT+GTSRI / AT+GTQSS). Off by default, as devices ship with it off.
    """

    gl300_sack: bool = False


DEFAULT_OPTIONS = DecodeOptions()


@dataclass(frozen=True, slots=True)
class Decoded:
    """What one frame means: its events, the replies it needs, and who sent it."""

    raw: bytes
    device_id: str | None
    events: tuple[Event, ...]
    replies: tuple[Reply, ...] = ()

    @property
    def rejected(self) -> Rejected | None:
        for event in self.events:
            if isinstance(event, Rejected):
                return event
        return None


def rejected(raw: bytes, reason: str, device_id: str | None = None) -> Decoded:
    return Decoded(raw=raw, device_id=device_id, events=(Rejected(reason, device_id),))


class CommandType(enum.Enum):
    """Server-to-device commands every supported protocol can express."""

    POSITION_SINGLE = "position_single"
    REPORT_INTERVAL = "report_interval"
    ENGINE_STOP = "engine_stop"
    ENGINE_RESUME = "engine_resume"
    REBOOT = "reboot"


@dataclass(frozen=True, slots=True)
class Command:
    type: CommandType
    #: For REPORT_INTERVAL: seconds between reports (0 stops periodic reporting).
    interval_s: int | None = None
    #: Queclink commands carry the device password (empty by default on the device).
    password: str = ""


class UnsupportedCommand(ValueError):
    """The protocol has no syntax for this command (or this argument)."""


@dataclass(frozen=True, slots=True)
class Fix:
    """Device-side input: what a simulated device knows about where it is."""

    fix_time: datetime
    lat: float
    lon: float
    speed_kmh: float = 0.0
    course_deg: float = 0.0
    altitude_m: float = 0.0
    valid: bool = True
    satellites: int | None = None
    hdop: float | None = None
    battery_percent: int | None = None
    attributes: Attributes = field(default_factory=attrs)


class DeviceEncoder(Protocol):
    """The frames a real device of this protocol sends. Used by the simulators and tests.

    Encoders are stateful where the device is (Queclink count numbers increase per message).
    """

    imei: str

    def login(self) -> bytes: ...

    def heartbeat(self) -> bytes: ...

    def position(self, fix: Fix) -> bytes: ...

    def report(self, fixes: Sequence[Fix], *, buffered: bool = False) -> bytes:
        """Several fixes: one multi-point frame where the protocol has one, else one per fix."""
        ...

    def sos(self, fix: Fix) -> bytes: ...

    def command_answer(self, command: bytes, fix: Fix) -> bytes | None:
        """What the device sends back for a server command, or None if it ignores it."""
        ...


@dataclass(frozen=True, slots=True)
class Codec:
    """A protocol, as the gateway and the simulators see it."""

    name: str
    #: The TCP port Traccar (and so installers) use for this protocol.
    default_port: int
    framer: Callable[..., BoundedFramer]
    decode: Callable[[bytes, DecodeOptions], Decoded]
    encode_command: Callable[[str, Command], bytes]
    device: Callable[[str], DeviceEncoder]
