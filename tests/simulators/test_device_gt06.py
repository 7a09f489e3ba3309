"""A simulated gt06 device against the gt06 session as the server, sans-IO.

The device's bytes go through the protocol's framer into a server session (as the gateway's
connection does); the session's replies, and server commands, go back to the device.
"""

from __future__ import annotations

from datetime import UTC, datetime

from protocols import (
    Alarm,
    AlarmType,
    Command,
    CommandResult,
    CommandType,
    Decoded,
    Heartbeat,
    Login,
    Position,
    get_codec,
)
from simulators import DeviceConfig, SimDevice, State
from simulators.alarms import supported_alarms
from simulators.identity import imei_for
from simulators.routes import Route, RouteSource
from tests.simulators.conftest import SteppingClock

CODEC = get_codec("gt06")
SERVER_CLOCK = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


class Server:
    """The gateway's side of one connection: framer plus session, replies written at once."""

    def __init__(self) -> None:
        self.framer = CODEC.framer()
        self.session = CODEC.new_session(None, lambda: SERVER_CLOCK)
        self.decoded: list[Decoded] = []

    def exchange(self, device: SimDevice, now: float) -> list[Decoded]:
        got = [self.session.decode(f) for f in self.framer.feed(device.take_output())
               if isinstance(f, bytes)]
        self.decoded += got
        replies = b"".join(r.data for d in got for r in d.replies)
        if replies:
            device.receive(replies, now)
        return got

    def events(self, kind: type) -> list[object]:
        return [e for d in self.decoded for e in d.events if isinstance(e, kind)]


def make(**config: object) -> SimDevice:
    settings = {"position_interval_s": 10.0, "heartbeat_interval_s": 0, "ack_timeout_s": 2.0}
    settings.update(config)
    return SimDevice("gt06", imei_for(7), config=DeviceConfig(**settings),  # type: ignore[arg-type]
                     source=RouteSource(Route.generated()), clock=SteppingClock(), phase_s=1.0)


def online(device: SimDevice, server: Server) -> None:
    device.connected(0.0)
    server.exchange(device, 0.1)
    assert device.state is State.ONLINE


def test_login_is_acknowledged_and_names_the_device() -> None:
    device, server = make(), Server()
    online(device, server)
    [login] = server.events(Login)
    assert login.device_id == device.imei  # type: ignore[attr-defined]
    assert device.stats.logins_acked == 1


def test_positions_are_acknowledged_after_the_store() -> None:
    device, server = make(), Server()
    online(device, server)
    for t in (1.0, 11.0, 21.0):
        device.tick(t)
        [decoded] = server.exchange(device, t + 0.1)
        assert [r.after_store for r in decoded.replies] == [True]
    positions = server.events(Position)
    assert len(positions) == 3
    assert all(p.device_id == device.imei for p in positions)  # type: ignore[attr-defined]
    assert device.stats.frames_acked == 4 and not device.in_flight


def test_heartbeat_is_answered_at_once() -> None:
    device, server = make(), Server()
    online(device, server)
    device.send_heartbeat(1.0)
    [decoded] = server.exchange(device, 1.1)
    assert isinstance(decoded.events[0], Heartbeat)
    assert [r.after_store for r in decoded.replies] == [False]
    assert not device.in_flight


def test_sos_is_sent_and_acknowledged() -> None:
    device, server = make(), Server()
    online(device, server)
    device.tick(1.0)
    server.exchange(device, 1.1)
    device.press_sos(2.0)
    [decoded] = server.exchange(device, 2.1)
    [alarm] = server.events(Alarm)
    assert alarm.alarm is AlarmType.SOS  # type: ignore[attr-defined]
    assert alarm.position is not None  # type: ignore[attr-defined]
    assert [r.after_store for r in decoded.replies] == [True]
    assert device.stats.sos_sent == 1 and not device.in_flight


def test_other_alarms_decode_as_themselves() -> None:
    alarms = supported_alarms(CODEC)
    assert {AlarmType.SOS, AlarmType.POWER_CUT, AlarmType.VIBRATION, AlarmType.OVERSPEED,
            AlarmType.LOW_BATTERY, AlarmType.GEOFENCE_ENTER, AlarmType.GEOFENCE_EXIT,
            AlarmType.FALL_DOWN} <= set(alarms)
    device, server = make(), Server()
    online(device, server)
    device.tick(1.0)
    server.exchange(device, 1.1)
    device.raise_alarm(AlarmType.POWER_CUT, 2.0)
    server.exchange(device, 2.1)
    assert [a.alarm for a in server.events(Alarm)] == [AlarmType.POWER_CUT]  # type: ignore[attr-defined]
    assert device.stats.alarms_sent == 1 and not device.in_flight


def test_engine_stop_command_is_answered_and_the_answer_acknowledged() -> None:
    device, server = make(), Server()
    online(device, server)
    device.tick(1.0)
    server.exchange(device, 1.1)
    command = CODEC.encode_command(device.device_id, Command(CommandType.ENGINE_STOP))
    device.receive(command, 2.0)
    [decoded] = server.exchange(device, 2.1)
    [result] = server.events(CommandResult)
    assert result.result == "Cut off the fuel supply: Success!"  # type: ignore[attr-defined]
    assert device.stats.commands_answered == 1
    assert [r.after_store for r in decoded.replies] == [True] and not device.in_flight


def test_position_request_is_answered_with_a_position() -> None:
    device, server = make(), Server()
    online(device, server)
    device.tick(1.0)
    server.exchange(device, 1.1)
    device.receive(CODEC.encode_command(device.device_id, Command(CommandType.POSITION_SINGLE)),
                   2.0)
    [decoded] = server.exchange(device, 2.1)
    [position] = [e for e in decoded.events if isinstance(e, Position)]
    assert position.attributes["position_request"] is True
    assert decoded.replies == ()  # 0x21 text packets get no ack


def test_lost_connection_buffers_and_replays_with_the_reupload_flag() -> None:
    device, server = make(), Server()
    online(device, server)
    device.tick(1.0)  # sent, never acknowledged
    device.take_output()
    device.disconnected(1.5)
    device.tick(11.0)  # offline: buffered
    assert len(device.buffer) == 2
    server = Server()
    device.connected(12.0)
    server.exchange(device, 12.1)  # login, acknowledged: the buffer is replayed
    server.exchange(device, 12.2)
    replayed = server.events(Position)
    assert len(replayed) == 2
    assert all(p.attributes["archive"] is True for p in replayed)  # type: ignore[attr-defined]
    assert not device.buffer and not device.in_flight
