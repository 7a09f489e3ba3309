"""A simulated eelink device against the eelink protocol's own session as the server.

Sans-IO: what the device writes is cut by the protocol's framer and decoded by a server
session; the acks that session defines go back to the device (the login ack with the server's
own clock, which the device cannot predict and matches by the rest of the ack).
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
    Position,
    ProtocolSession,
    get_codec,
)
from simulators import DeviceConfig, SimDevice, State
from simulators.identity import imei_for
from simulators.routes import Route, RouteSource
from tests.simulators.conftest import SteppingClock

CODEC = get_codec("eelink")
SERVER_CLOCK = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)


def make(**config: object) -> SimDevice:
    settings: dict[str, object] = {"position_interval_s": 10.0, "heartbeat_interval_s": 0,
                                   "ack_timeout_s": 2.0}
    settings.update(config)
    return SimDevice("eelink", imei_for(42), config=DeviceConfig(**settings),  # type: ignore[arg-type]
                     source=RouteSource(Route.generated()), clock=SteppingClock(), phase_s=1.0)


def deliver(device: SimDevice, server: ProtocolSession) -> list[Decoded]:
    """The device's output, decoded by the server (acks not sent back yet)."""
    framer = CODEC.framer()
    decoded = [server.decode(f) for f in framer.feed(device.take_output())
               if isinstance(f, bytes)]
    assert framer.buffered == 0
    return decoded


def acks(decoded: list[Decoded]) -> bytes:
    return b"".join(r.data for d in decoded for r in d.replies)


def serve(device: SimDevice, server: ProtocolSession, now: float) -> list[Decoded]:
    decoded = deliver(device, server)
    if acks(decoded):
        device.receive(acks(decoded), now)
    return decoded


def online(**config: object) -> tuple[SimDevice, ProtocolSession]:
    device = make(**config)
    server = CODEC.new_session(None, lambda: SERVER_CLOCK)
    device.connected(0.0)
    [login] = serve(device, server, 0.0)
    assert login.device_id == device.imei
    assert login.replies[0].data[7:11] == int(SERVER_CLOCK.timestamp()).to_bytes(4, "big")
    return device, server


def test_login_is_acknowledged() -> None:
    device, _server = online()
    assert device.state is State.ONLINE
    assert device.stats.logins_acked == 1 and not device.in_flight


def test_positions_are_acknowledged() -> None:
    device, server = online(ack_timeout_s=30.0)
    for t in (1.0, 11.0):
        device.tick(t)
    assert len(device.in_flight) == 2
    decoded = serve(device, server, 11.1)
    assert [type(e) for d in decoded for e in d.events] == [Position, Position]
    assert all(r.after_store for d in decoded for r in d.replies)
    assert not device.in_flight and device.stats.frames_acked == 3


def test_sos_is_sent_and_acknowledged() -> None:
    device, server = online()
    device.tick(1.0)
    serve(device, server, 1.0)
    device.press_sos(2.0)
    [decoded] = serve(device, server, 2.1)
    [alarm] = [e for e in decoded.events if isinstance(e, Alarm)]
    assert alarm.alarm is AlarmType.SOS and alarm.position is not None
    assert device.stats.sos_sent == 1 and not device.in_flight


def test_engine_stop_and_position_request_are_answered() -> None:
    device, server = online()
    device.tick(1.0)
    serve(device, server, 1.0)
    for command in (CommandType.ENGINE_STOP, CommandType.POSITION_SINGLE):
        device.receive(CODEC.encode_command(device.imei, Command(command)), 3.0)
    decoded = serve(device, server, 3.1)
    events = [e for d in decoded for e in d.events]
    assert [type(e) for e in events] == [CommandResult, Position, CommandResult]
    assert isinstance(events[0], CommandResult) and events[0].result == "RELAY,1 OK"
    assert device.stats.commands_answered == 2 and not device.in_flight


def test_unacknowledged_fixes_survive_a_lost_connection_exactly_once() -> None:
    device, server = online()
    device.disconnected(0.5)
    for t in (1.0, 11.0, 21.0):
        device.tick(t)
    assert len(device.buffer) == 3
    device.connected(22.0)
    serve(device, server, 22.0)  # login acked: the buffer is replayed, one package per fix
    replayed = deliver(device, server)
    assert len(replayed) == 3 and not device.buffer
    # Only the first two replayed packages are acknowledged before the link drops.
    first_two = b"".join(r.data for d in replayed[:2] for r in d.replies)
    device.receive(first_two, 22.1)
    device.disconnected(22.2)
    assert len(device.buffer) == 1
    [lost] = [e for e in replayed[2].events if isinstance(e, Position)]
    assert device.buffer[0].fix.fix_time == lost.fix_time


def test_every_supported_alarm_is_sent_and_acknowledged() -> None:
    from simulators.alarms import supported_alarms

    alarms = supported_alarms(CODEC)
    assert AlarmType.SOS in alarms and AlarmType.OVERSPEED in alarms and len(alarms) >= 10
    device, server = online()
    device.tick(1.0)
    serve(device, server, 1.0)
    for alarm in alarms:
        device.raise_alarm(alarm, 2.0)
        [decoded] = serve(device, server, 2.0)
        assert [e.alarm for e in decoded.events if isinstance(e, Alarm)] == [alarm]
    assert not device.in_flight
    assert device.stats.alarms_sent == len(alarms) - 1 and device.stats.sos_sent == 1
