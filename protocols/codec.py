"""The shape every protocol package offers: framer, session (decoder), replies, commands,
device side.

A protocol package (`protocols/<name>/`) exports one `CODEC` built from these types; the
registry (`protocols.registry`) finds it. The gateway and the simulators only ever talk to a
protocol through it.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from protocols.events import Attributes, CommandResult, Event, Rejected, attrs
from protocols.framing import BoundedFramer


@dataclass(slots=True)
class Reply:
    """Bytes the server must send back for a frame.

    `after_store` is True when the reply acknowledges data (a position, an alarm): it may only be
    written to the device once that data is committed, because the device deletes what was
    acknowledged. Handshake replies (LOAD, ON, AP01HSO, +SACK:GTHBD) go out at once.

    Built once and never changed (not frozen for speed: see `protocols.events`).
    """

    data: bytes
    after_store: bool


@dataclass(slots=True)
class Decoded:
    """What one frame means: its events, the replies it needs, and who sent it."""

    raw: bytes
    device_id: str | None
    events: tuple[Event, ...]
    replies: tuple[Reply, ...] = ()
    #: The protocol asks for the connection to end once the replies are sent (a refused
    #: registration, for instance).
    close: bool = False
    #: Short labels of what was wrong with a frame that was still accepted by the protocol's
    #: policy (for example "bad_crc"): the gateway counts and logs them. A bounded set per
    #: protocol: they become metric labels.
    notes: tuple[str, ...] = ()

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


class Answer(enum.Enum):
    """What a device's `CommandResult` says about a command it answers."""

    #: The device took the command (carried it out, or said it would).
    DONE = "done"
    #: The device answered that it did not (an error code, "unsupported").
    REFUSED = "refused"


def answers_any(sent: bytes, result: CommandResult) -> Answer | None:
    """For protocols whose answers do not name the command they answer: any answer is taken
    as the device's answer to the oldest command still waiting for one."""
    return Answer.DONE


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


class ProtocolSession(Protocol):
    """What a protocol remembers about one connection (or one MQTT device), sans-IO.

    The transport's pipeline makes one per connection with `Codec.session(options)` and hands
    it every complete frame. Stateless text protocols wrap their `decode` function; binary
    protocols keep what later frames need: the identity a login announced (gt06 frames after
    the login carry none), a time zone, an authentication code, a learned frame length.
    """

    def decode(self, frame: bytes) -> Decoded:
        """One complete frame to events and replies. Never raises."""
        ...


class StatelessSession:
    """The session of a protocol whose frames each stand alone: `decode(frame, options)`."""

    __slots__ = ("decode",)

    def __init__(self, decode: Callable[..., Decoded], options: object) -> None:
        #: Bound once: the pipeline calls it per frame.
        self.decode: Callable[[bytes], Decoded] = functools.partial(decode, options=options)


Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class NoOptions:
    """A protocol without settings."""


def prefix_detector(*prefixes: bytes) -> Callable[[bytes], bool | None]:
    """A `Codec.detect` for protocols told apart by how their frames start."""

    def detect(head: bytes) -> bool | None:
        if head.startswith(prefixes):
            return True
        if any(prefix.startswith(head) for prefix in prefixes):
            return None
        return False

    return detect


def no_wire_ids(imei: str) -> tuple[str, ...]:
    """Devices of most protocols name themselves by their IMEI and nothing else."""
    return ()


@dataclass(frozen=True, slots=True)
class Codec:
    """A protocol, as the registry, the gateway and the simulators see it.

    Everything the server needs to serve a protocol is declared here, so that adding one is a
    new package under `protocols/` and nothing else: the gateway builds its listeners, config
    sections (`[protocols.<name>]`), metric labels and MQTT topic rules from these records.
    """

    name: str
    #: One line for people: what speaks it.
    title: str
    #: The TCP port Traccar (and so installers) use for this protocol.
    default_port: int
    #: `detect(first_bytes)`: True when a stream starting with these bytes is this protocol,
    #: False when it cannot be, None when more bytes are needed to tell.
    detect: Callable[[bytes], bool | None]
    #: `framer(max_frame_bytes)`: a new bounded framer for one stream.
    framer: Callable[..., BoundedFramer]
    #: `session(options, clock)`: the per-connection state that decodes frames.
    session: Callable[[Any, Clock], ProtocolSession]
    #: `encode_command(device_id, command)`: the bytes of a server command.
    encode_command: Callable[[str, Command], bytes]
    #: A simulated device of this protocol for an IMEI.
    device: Callable[[str], DeviceEncoder]
    #: The options type: a frozen dataclass whose fields all have defaults (documented in
    #: their `metadata["doc"]`); its `__post_init__` raises ValueError for a wrong value.
    options: type[Any] = NoOptions
    #: Command types `encode_command` can express.
    commands: frozenset[CommandType] = frozenset()
    #: `wire_ids(imei)`: other ids a device with this IMEI may name itself by on the wire
    #: (tk103's fixed layout: the last 12 digits).
    wire_ids: Callable[[str], tuple[str, ...]] = no_wire_ids
    #: How the device's SOS / panic button reaches the server (docs, activation's device signal).
    sos: str = ""
    #: Frames are binary (shown as hex in diagnostics).
    binary: bool = False
    #: `downlink_framer()`: cuts what the server sends into messages, for the simulated device.
    #: None: the simulator splits commands on the last byte of an encoded command.
    downlink_framer: Callable[[], BoundedFramer] | None = None
    #: `answers(sent, result)`: whether the device's `result` answers the command that was sent
    #: as the bytes `sent` (None: it does not; else what it says). The gateway offers each
    #: answer to the device's commands oldest first and takes the first that matches.
    answers: Callable[[bytes, CommandResult], Answer | None] = answers_any
    #: `reply_key(reply)`: the part of a reply a device can predict (without the server's clock),
    #: for the simulated device to match replies. None: replies are compared whole.
    reply_key: Callable[[bytes], bytes] | None = None

    def new_session(self, options: Any = None, clock: Clock = utc_now) -> ProtocolSession:
        """A session with `options` (default: the protocol's defaults)."""
        return self.session(self.options() if options is None else options, clock)

    def decode(self, frame: bytes, options: Any = None) -> Decoded:
        """Decode one frame in a fresh session (tests, tools; the gateway keeps sessions)."""
        return self.new_session(options).decode(frame)

    def matches_imei(self, wire_id: str, imei: str) -> bool:
        """Whether frames naming `wire_id` may come from the device with this IMEI."""
        return wire_id == imei or wire_id in self.wire_ids(imei)
