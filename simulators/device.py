"""The behaviour of a simulated tracker, as a state machine with no I/O of its own.

A transport (TCP, serial, later MQTT) owns the connection and calls in:

    device.connected(now)          the link is up: the device logs in
    device.receive(data, now)      bytes from the server: acks and commands
    device.tick(now)               timers: positions, heartbeats, resends, buffer replay
    device.disconnected(now)       the link is gone: what was not acknowledged goes to the buffer

and after each call writes `device.take_output()` to the link, closes the link when
`device.close_requested` is set, and calls `tick` again at `device.deadline` (monotonic seconds).
`now` is the caller's monotonic clock; fix times come from `clock` (UTC wall time).

Every frame comes from the protocol's device encoder (`protocols.<name>.device`); which replies a
frame needs is asked from the protocol's own decoder (`codec.decode(frame).replies`), so the
simulator holds no second copy of any format: a frame is acknowledged when the exact bytes the
gateway is specified to answer have arrived. Frames the protocol never acknowledges (gps103 and
tk103 positions; Queclink reports without SACK) are counted as such, not waited for.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from protocols import (
    AlarmType,
    Codec,
    Command,
    CommandType,
    DeviceEncoder,
    Discarded,
    Fix,
    Position,
    ProtocolSession,
    get_codec,
)
from protocols.framing import DEFAULT_MAX_FRAME_BYTES
from simulators.alarms import alarm_builder, check_alarm_frame, identified_session
from simulators.identity import random_imei
from simulators.routes import FixSource, Route, RouteSource


def _same(reply: bytes) -> bytes:
    return reply


def protocol_options(codec: Codec, **values: object) -> Any:
    """The protocol's options with those of `values` it has (`sack` exists only in gl300)."""
    known = {f.name for f in dataclasses.fields(codec.options)}
    return codec.options(**{k: v for k, v in values.items() if k in known})


def utc_now() -> datetime:
    return datetime.now(UTC)


class Kind(enum.StrEnum):
    LOGIN = "login"
    HEARTBEAT = "heartbeat"
    POSITION = "position"
    BUFFERED = "buffered"
    SOS = "sos"
    ALARM = "alarm"
    ANSWER = "answer"


class State(enum.StrEnum):
    OFFLINE = "offline"
    LOGIN = "login"  # connected, waiting for the login reply
    ONLINE = "online"


#: Kinds whose data must survive a lost connection (moved to the buffer, replayed later).
_KEEP = frozenset({Kind.POSITION, Kind.BUFFERED, Kind.SOS, Kind.ALARM})


@dataclass(slots=True)
class DeviceConfig:
    """How a simulated device behaves. Times in seconds."""

    #: Seconds between positions (the device's reporting interval); 0 sends none.
    position_interval_s: float = 10.0
    #: Seconds between heartbeats while online; 0 sends none.
    heartbeat_interval_s: float = 60.0
    #: How long to wait for a reply the protocol defines before sending the frame again.
    ack_timeout_s: float = 10.0
    #: Resends of one frame before the link is declared dead (closed, and reconnected).
    max_retries: int = 3
    #: gl300: the gateway answers every message with `+SACK:<count>$` ("SACK enable"); the
    #: device then keeps every report until its SACK arrives, resends and buffers it.
    sack: bool = False
    #: Frames waiting for their ack at most; beyond that new fixes wait in the buffer.
    window: int = 32
    #: Fixes kept while offline (oldest dropped beyond it), like the device's flash buffer.
    buffer_max: int = 10_000
    #: Buffered fixes per report when replaying (the encoder splits as its protocol needs).
    replay_chunk: int = 15
    #: Frames replayed per tick, and the pause between such ticks.
    replay_frames: int = 10
    replay_pause_s: float = 0.1
    #: gl300: send the +RESP:GTINF device information after power-on.
    send_info: bool = False


@dataclass(slots=True)
class DeviceStats:
    """Counters of one device or, shared, of a whole fleet."""

    frames_sent: int = 0
    #: Frames for which the protocol defines a reply, and those whose replies all arrived.
    frames_expecting_ack: int = 0
    frames_acked: int = 0
    #: Frames the protocol never acknowledges (nothing to wait for).
    frames_no_ack: int = 0
    retransmits: int = 0
    #: Frames given up on after max_retries (their data went back to the buffer).
    gave_up: int = 0
    positions_sent: int = 0
    #: Positions not generated because the simulator fell more than an interval behind.
    positions_skipped: int = 0
    fixes_buffered: int = 0
    fixes_replayed: int = 0
    buffer_dropped: int = 0
    replies: int = 0
    duplicate_replies: int = 0
    unexpected_bytes: int = 0
    commands: int = 0
    commands_answered: int = 0
    sos_sent: int = 0
    alarms_sent: int = 0
    connects: int = 0
    disconnects: int = 0
    connect_failures: int = 0
    logins_acked: int = 0
    #: Seconds from the first send of a frame to its last expected reply.
    ack_latencies: list[float] = field(default_factory=list)

    def merge(self, other: DeviceStats) -> None:
        for name in self.__dataclass_fields__:
            if name == "ack_latencies":
                self.ack_latencies.extend(other.ack_latencies)
            else:
                setattr(self, name, getattr(self, name) + getattr(other, name))


#: trace(event, detail, data): what the device did, for a human watching (`trackersim device`).
Trace = Callable[[str, str, bytes | None], None]


@dataclass(slots=True)
class Outbound:
    """A frame on the wire, waiting for the replies its protocol defines."""

    frame: bytes
    kind: Kind
    fixes: tuple[Fix, ...]
    alarm: AlarmType | None
    expected: deque[bytes]
    first_sent: float
    last_sent: float
    tries: int = 1


@dataclass(slots=True)
class Buffered:
    kind: Kind
    fix: Fix
    alarm: AlarmType | None = None


class SimDevice:
    """One simulated tracker (see the module docstring for the calling convention)."""

    def __init__(
        self,
        protocol: str | Codec,
        imei: str | None = None,
        *,
        source: FixSource | None = None,
        config: DeviceConfig | None = None,
        stats: DeviceStats | None = None,
        trace: Trace | None = None,
        clock: Callable[[], datetime] = utc_now,
        start: float = 0.0,
        phase_s: float | None = None,
    ) -> None:
        self.codec = get_codec(protocol) if isinstance(protocol, str) else protocol
        self.imei = imei or random_imei()
        self.encoder: DeviceEncoder = self.codec.device(self.imei)
        self.config = config or DeviceConfig()
        self.source: FixSource = source or RouteSource(Route.generated())
        self.stats = stats if stats is not None else DeviceStats()
        self.trace = trace
        self.clock = clock
        self._options = protocol_options(self.codec, sack=self.config.sack)
        self.state = State.OFFLINE
        self.started = start
        self.output: list[bytes] = []
        self.close_requested = False
        #: Called when something outside the transport's calls wants a tick (press_sos).
        self.wake: Callable[[], None] | None = None
        self.deadline = start
        self.last_fix: Fix | None = None
        self.buffer: deque[Buffered] = deque()
        self.in_flight: deque[Outbound] = deque()
        self._expect: deque[tuple[bytes, Outbound]] = deque()
        self._answered: deque[bytes] = deque(maxlen=16)
        self._rx = b""
        self._sessions = 0
        self._urgent: deque[Buffered] = deque()
        self._last_now = start
        self._quiet = False
        cfg = self.config
        if phase_s is None:  # the first fix a moment after power-on, when the login is through
            phase_s = min(1.0, cfg.position_interval_s)
        self.phase_s = phase_s
        self._next_position = start + phase_s if cfg.position_interval_s > 0 else float("inf")
        self._next_heartbeat = float("inf")
        self._next_replay = float("inf")
        #: The id the gateway knows the device by (tk103: the 12-character id of its frames).
        self.device_id: str = getattr(self.encoder, "device_id", self.imei)
        device_id = self.device_id
        try:
            probe = self.codec.encode_command(device_id, Command(CommandType.POSITION_SINGLE))
            self._command_end = probe[-1:]
        except Exception:  # a protocol without a position request: commands end like frames
            self._command_end = b";"
        #: The server's side of this connection, run on what the device sends: it says which
        #: replies each frame gets (sessions remember the login, as the server's does).
        self._mirror: ProtocolSession | None = None
        #: Protocols that frame what the server sends (binary ones) are read message by message.
        self._downlink = self.codec.downlink_framer() if self.codec.downlink_framer else None
        self._reply_key = self.codec.reply_key or _same

    @property
    def options(self) -> Any:
        """The protocol options the gateway uses (gl300: whether it sends SACKs)."""
        return self._options

    @options.setter
    def options(self, value: Any) -> None:
        self._options = value
        self._mirror = self.codec.new_session(value)

    def rebase(self, start: float) -> None:
        """Set the device's power-on time on the transport's clock (before the first call)."""
        self.started = start
        self._last_now = start
        self.deadline = start
        if self.config.position_interval_s > 0:
            self._next_position = start + self.phase_s

    # Inputs from the transport ---------------------------------------------------------------

    def connected(self, now: float) -> None:
        self.stats.connects += 1
        self.close_requested = False
        self._rx = b""
        self._mirror = self.codec.new_session(self.options)
        if self.codec.downlink_framer is not None:
            self._downlink = self.codec.downlink_framer()
        first = self._sessions == 0
        self._sessions += 1
        self._trace("connect", f"session {self._sessions}", None)
        # A booting device logs in; a Queclink device that only lost its link sends a heartbeat
        # (it has no login frame: `login()` is its power-on report).
        if first or self.codec.name != "gl300":
            frame = self.encoder.login()
        else:
            frame = self.encoder.heartbeat()
        login = self._send(frame, Kind.LOGIN, now)
        if first and self.config.send_info:
            info = getattr(self.encoder, "info", None)
            if info is not None:
                self._send(info(), Kind.LOGIN, now)
        if login is None or not login.expected:
            self._online(now)
        else:
            self.state = State.LOGIN
        self._update_deadline(now)

    def disconnected(self, now: float) -> None:
        if self.state is State.OFFLINE:
            return
        self.stats.disconnects += 1
        self.state = State.OFFLINE
        kept: list[Buffered] = []
        for out in self.in_flight:
            if out.kind in _KEEP:
                kept.extend(Buffered(out.kind if out.kind is not Kind.BUFFERED else Kind.POSITION,
                                     fix, out.alarm) for fix in out.fixes)
        self.in_flight.clear()
        self._expect.clear()
        self._rx = b""
        urgent = [b for b in kept if b.kind in (Kind.SOS, Kind.ALARM)]
        positions = [b for b in kept if b.kind is Kind.POSITION]
        self._urgent.extendleft(reversed(urgent))
        self.buffer.extendleft(reversed(positions))
        self.stats.fixes_buffered += len(positions)
        self._trim_buffer()
        self._next_heartbeat = float("inf")
        self._next_replay = float("inf")
        self._trace("disconnect", f"{len(self.buffer)} fixes buffered, "
                    f"{len(self._urgent)} alarms waiting", None)
        self._update_deadline(now)

    def receive(self, data: bytes, now: float) -> None:
        if self._downlink is not None:
            self._receive_messages(data, now)
            return
        rx = self._rx + data if self._rx else data
        while rx:
            used = self._match_reply(rx, now)
            if used < 0:  # a prefix of an expected reply: wait for the rest
                break
            if used:
                rx = rx[used:]
                continue
            end = rx.find(self._command_end)
            if end < 0:
                if len(rx) > 4096:
                    self.stats.unexpected_bytes += len(rx)
                    self._trace("unexpected", "4 KiB of bytes that are no reply", rx[:80])
                    rx = b""
                break
            self._command(rx[:end + 1], now)
            rx = rx[end + 1:]
        self._rx = rx
        if self.state is State.ONLINE:
            self._pump(now)
        self._update_deadline(now)

    def _receive_messages(self, data: bytes, now: float) -> None:
        """Bytes from the server of a protocol with a downlink framer: whole messages."""
        assert self._downlink is not None
        for message in self._downlink.feed(data):
            if isinstance(message, Discarded):
                self.stats.unexpected_bytes += message.size
                self._trace("unexpected", message.reason, None)
                continue
            if not self._match_message(self._reply_key(message), now):
                self._command(message, now)
        if self.state is State.ONLINE:
            self._pump(now)
        self._update_deadline(now)

    def _match_message(self, key: bytes, now: float) -> bool:
        for index, (reply, out) in enumerate(self._expect):
            if reply == key:
                del self._expect[index]
                self._reply_arrived(reply, out, now)
                return True
            if index >= 64:
                break
        if key in self._answered:  # a late duplicate (the answer to a resent frame)
            self.stats.duplicate_replies += 1
            self._trace("recv", "duplicate reply", key)
            return True
        return False

    def tick(self, now: float) -> float:
        """Fire what is due; returns the next deadline."""
        cfg = self.config
        if now >= self._next_position:
            interval = cfg.position_interval_s
            self._next_position += interval
            if self._next_position <= now:  # fell behind (suspended, overloaded): skip ahead
                self.stats.positions_skipped += int((now - self._next_position) / interval) + 1
                self._next_position = now + interval
            self._position_due(now)
        if self.state is State.ONLINE:
            if now >= self._next_heartbeat:
                self._next_heartbeat = now + cfg.heartbeat_interval_s
                self._send(self.encoder.heartbeat(), Kind.HEARTBEAT, now)
            self._pump(now)
        if self.in_flight:
            self._resend_due(now)
        self._update_deadline(now)
        return self.deadline

    def send_heartbeat(self, now: float) -> Outbound | None:
        """A heartbeat now (returns what waits for its reply, None if it needs none)."""
        return self._send(self.encoder.heartbeat(), Kind.HEARTBEAT, now)

    def send_position(self, now: float) -> Outbound | None:
        """A position now, whatever the interval (buffered when it cannot be sent)."""
        fix = self._current_fix(now)
        if fix is None:
            return None
        if not self.writable:
            self.buffer.append(Buffered(Kind.POSITION, fix))
            self.stats.fixes_buffered += 1
            return None
        self.stats.positions_sent += 1
        return self._send(self.encoder.position(fix), Kind.POSITION, now, (fix,))

    def press_sos(self, now: float | None = None) -> None:
        """The SOS button: the alarm the gateway's activation waits for."""
        self.raise_alarm(AlarmType.SOS, now)

    def raise_alarm(self, alarm: AlarmType, now: float | None = None) -> None:
        """Send an alarm now (or as soon as online; alarms go before buffered positions)."""
        fix = self._current_fix(now if now is not None else self._last_now)
        if fix is None:
            raise RuntimeError("no position yet: the device cannot send an alarm without a fix")
        alarm_builder(self.codec, self.encoder, alarm)  # raises UnsupportedAlarm early
        self._urgent.append(Buffered(Kind.SOS if alarm is AlarmType.SOS else Kind.ALARM,
                                     fix, alarm))
        self._trace("alarm", f"{alarm.value} pressed", None)
        if now is not None and self.state is State.ONLINE:
            self._pump(now)
            self._update_deadline(now)
        elif self.wake is not None:
            self.wake()

    def quiesce(self) -> None:
        """Stop generating positions and heartbeats (acks and resends still run)."""
        self._quiet = True
        self._next_position = float("inf")
        self._next_heartbeat = float("inf")

    def take_output(self) -> bytes:
        out = self.output
        if not out:
            return b""
        self.output = []
        return out[0] if len(out) == 1 else b"".join(out)

    @property
    def writable(self) -> bool:
        return self.state is State.ONLINE and len(self.in_flight) < self.config.window

    # Sending ---------------------------------------------------------------------------------

    def _send(self, frame: bytes, kind: Kind, now: float, fixes: tuple[Fix, ...] = (),
              alarm: AlarmType | None = None) -> Outbound | None:
        """Write one frame; track it when its protocol defines replies for it."""
        stats = self.stats
        stats.frames_sent += 1
        self.output.append(frame)
        if self._mirror is None:
            self._mirror = self.codec.new_session(self.options)
        replies = self._mirror.decode(frame).replies
        if self.trace is not None:
            self._trace("send", kind.value, frame)
        if not replies:
            stats.frames_no_ack += 1
            return None
        stats.frames_expecting_ack += 1
        key = self._reply_key
        out = Outbound(frame, kind, fixes, alarm, deque(key(r.data) for r in replies), now, now)
        self.in_flight.append(out)
        for reply in out.expected:
            self._expect.append((reply, out))
        return out

    def _send_frames(self, data: bytes, kind: Kind, now: float, fixes: tuple[Fix, ...] = (),
                     alarm: AlarmType | None = None) -> None:
        """Several frames from one encoder call: each tracked with the fixes it carries."""
        frames = [f for f in self.codec.framer(DEFAULT_MAX_FRAME_BYTES).feed(data)
                  if isinstance(f, bytes)]
        rest = list(fixes)
        counter = identified_session(self.codec, self.options) if len(frames) > 1 else None
        for i, frame in enumerate(frames):
            if i == len(frames) - 1 or counter is None:
                mine = tuple(rest)
            else:
                decoded = counter.decode(frame)
                count = sum(1 for e in decoded.events if isinstance(e, Position))
                mine, rest = tuple(rest[:count]), rest[count:]
            self._send(frame, kind, now, mine, alarm)

    def _position_due(self, now: float) -> None:
        if self.writable:
            self.send_position(now)
            return
        fix = self._current_fix(now)
        if fix is None:
            return
        self.buffer.append(Buffered(Kind.POSITION, fix))
        self.stats.fixes_buffered += 1
        self._trim_buffer()
        if self.state is State.ONLINE:
            self._next_replay = min(self._next_replay, now)

    def _pump(self, now: float) -> None:
        """Send what waits: alarms first, then the buffer (paced, within the window)."""
        cfg = self.config
        while self._urgent and self.writable:
            item = self._urgent.popleft()
            assert item.alarm is not None
            frame = alarm_builder(self.codec, self.encoder, item.alarm)(item.fix)
            if item.alarm is AlarmType.SOS:
                self.stats.sos_sent += 1
            else:
                check_alarm_frame(self.codec, frame, item.alarm)
                self.stats.alarms_sent += 1
            self._send(frame, item.kind, now, (item.fix,), item.alarm)
        if not self.buffer or now < self._next_replay:
            return
        frames = 0
        while self.buffer and self.writable and frames < cfg.replay_frames:
            chunk: list[Fix] = []
            while self.buffer and len(chunk) < cfg.replay_chunk:
                chunk.append(self.buffer.popleft().fix)
            self.stats.fixes_replayed += len(chunk)
            self._trace("replay", f"{len(chunk)} buffered fixes, {len(self.buffer)} left", None)
            data = self.encoder.report(chunk, buffered=True)
            before = self.stats.frames_sent
            self._send_frames(data, Kind.BUFFERED, now, tuple(chunk))
            frames += self.stats.frames_sent - before
        self._next_replay = now + cfg.replay_pause_s if self.buffer else float("inf")

    def _resend_due(self, now: float) -> None:
        cfg = self.config
        for out in list(self.in_flight):
            if now - out.last_sent < cfg.ack_timeout_s:
                continue
            if out.tries > cfg.max_retries:
                out.last_sent = now  # no second give-up while the link is being closed
                self.stats.gave_up += 1
                self._trace("give-up", f"{out.kind.value}: no reply after {out.tries} sends; "
                            "closing the link", out.frame)
                self.close_requested = True
                return
            out.tries += 1
            out.last_sent = now
            self.stats.retransmits += 1
            self.output.append(out.frame)
            self._trace("resend", f"{out.kind.value} (try {out.tries}), still waiting for "
                        f"{out.expected[0]!r}", out.frame)

    def _online(self, now: float) -> None:
        self.state = State.ONLINE
        cfg = self.config
        if cfg.heartbeat_interval_s > 0 and not self._quiet:
            self._next_heartbeat = now + cfg.heartbeat_interval_s
        self._next_replay = now
        self._pump(now)

    # Receiving -------------------------------------------------------------------------------

    def _match_reply(self, rx: bytes, now: float) -> int:
        """Bytes of `rx` used by an expected reply at its start; 0 if none; -1 if incomplete."""
        partial = False
        for index, (reply, out) in enumerate(self._expect):
            if rx.startswith(reply):
                del self._expect[index]
                self._reply_arrived(reply, out, now)
                return len(reply)
            if reply.startswith(rx):
                partial = True
            if index >= 64:
                break
        for reply in self._answered:  # a late duplicate (the answer to a resent frame)
            if rx.startswith(reply):
                self.stats.duplicate_replies += 1
                self._trace("recv", "duplicate reply", reply)
                return len(reply)
            if reply.startswith(rx):
                partial = True
        return -1 if partial else 0

    def _reply_arrived(self, reply: bytes, out: Outbound, now: float) -> None:
        stats = self.stats
        stats.replies += 1
        out.expected.remove(reply)
        self._answered.append(reply)
        done = not out.expected
        if self.trace is not None:
            note = f"ack of {out.kind.value} after {(now - out.first_sent) * 1000:.0f} ms" \
                if done else f"reply to {out.kind.value}"
            self._trace("recv", note, reply)
        if not done:
            return
        stats.frames_acked += 1
        stats.ack_latencies.append(now - out.first_sent)
        with contextlib.suppress(ValueError):
            self.in_flight.remove(out)
        if out.kind is Kind.LOGIN and self.state is State.LOGIN:
            stats.logins_acked += 1
            self._online(now)

    def _command(self, command: bytes, now: float) -> None:
        self.stats.commands += 1
        fix = self._current_fix(now)
        answer = self.encoder.command_answer(command, fix) if fix is not None else None
        if answer is None:
            self.stats.unexpected_bytes += len(command)
            self._trace("command", "not for this device or not understood; ignored", command)
            return
        self.stats.commands_answered += 1
        self._trace("command", "answering", command)
        self._send_frames(answer, Kind.ANSWER, now, ())

    # Helpers ---------------------------------------------------------------------------------

    def _current_fix(self, now: float) -> Fix | None:
        self._last_now = now
        fix = self.source.fix(self.clock(), now - self.started)
        if fix is not None:
            self.last_fix = fix
        return fix or self.last_fix

    def _trim_buffer(self) -> None:
        extra = len(self.buffer) - self.config.buffer_max
        for _ in range(max(0, extra)):
            self.buffer.popleft()
            self.stats.buffer_dropped += 1

    def _update_deadline(self, now: float) -> None:
        deadline = self._next_position
        if self.state is State.ONLINE:
            deadline = min(deadline, self._next_heartbeat)
            if self.buffer or self._urgent:
                deadline = min(deadline, max(self._next_replay, now))
        if self.in_flight:
            timeout = self.config.ack_timeout_s
            deadline = min(deadline, min(o.last_sent for o in self.in_flight) + timeout)
        self.deadline = deadline

    def _trace(self, event: str, detail: str, data: bytes | None) -> None:
        if self.trace is not None:
            self.trace(event, detail, data)
