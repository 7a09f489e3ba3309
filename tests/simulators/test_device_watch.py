"""A simulated watch-protocol device against the watch protocol's own session as the server.

Sans-IO: what the device writes is cut by the protocol's framer and decoded by a server
session; the replies that session defines go back to the device.
"""

from __future__ import annotations

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

CODEC = get_codec("watch")


def make(**config: object) -> SimDevice:
    settings: dict[str, object] = {"position_interval_s": 10.0, "heartbeat_interval_s": 0,
                                   "ack_timeout_s": 2.0}
    settings.update(config)
    return SimDevice("watch", imei_for(42), config=DeviceConfig(**settings),  # type: ignore[arg-type]
                     source=RouteSource(Route.generated()), clock=SteppingClock(), phase_s=1.0)


def serve(device: SimDevice, server: ProtocolSession, now: float) -> list[Decoded]:
    """Deliver the device's output to the server and the server's replies to the device."""
    framer = CODEC.framer()
    decoded = [server.decode(f) for f in framer.feed(device.take_output())
               if isinstance(f, bytes)]
    assert framer.buffered == 0
    replies = b"".join(r.data for d in decoded for r in d.replies)
    if replies:
        device.receive(replies, now)
    return decoded


def online() -> tuple[SimDevice, ProtocolSession]:
    device = make()
    server = CODEC.new_session()
    device.connected(0.0)
    [login] = serve(device, server, 0.0)
    assert login.device_id == device.imei
    return device, server


def test_login_is_acknowledged() -> None:
    device, _server = online()
    assert device.state is State.ONLINE
    assert device.stats.logins_acked == 1 and not device.in_flight


def test_positions_are_sent_without_waiting_for_an_ack() -> None:
    device, server = online()
    for t in (1.0, 11.0, 21.0):
        device.tick(t)
    decoded = serve(device, server, 21.0)
    positions = [e for d in decoded for e in d.events if isinstance(e, Position)]
    assert len(positions) == 3 and all(d.replies == () for d in decoded)
    assert device.stats.frames_no_ack == 3 and not device.in_flight


def test_sos_is_sent_and_acknowledged() -> None:
    device, server = online()
    device.tick(1.0)
    serve(device, server, 1.0)
    device.press_sos(2.0)
    assert len(device.in_flight) == 1
    [decoded] = serve(device, server, 2.1)
    [alarm] = [e for e in decoded.events if isinstance(e, Alarm)]
    assert alarm.alarm is AlarmType.SOS and alarm.position is not None
    assert [r.after_store for r in decoded.replies] == [True]
    assert device.stats.sos_sent == 1 and not device.in_flight
    assert device.stats.frames_acked == 2  # the login and the SOS


def test_unacknowledged_sos_is_resent() -> None:
    device, server = online()
    device.tick(1.0)
    serve(device, server, 1.0)
    device.press_sos(2.0)
    first = device.take_output()
    device.tick(4.5)  # no AL reply within the ack timeout
    assert device.take_output() == first and device.stats.retransmits == 1


def test_position_request_is_answered() -> None:
    device, server = online()
    device.tick(1.0)
    serve(device, server, 1.0)
    device.receive(CODEC.encode_command(device.device_id, Command(CommandType.POSITION_SINGLE)),
                   3.0)
    decoded = serve(device, server, 3.0)
    events = [e for d in decoded for e in d.events]
    assert [type(e) for e in events] == [CommandResult, Position]
    assert isinstance(events[0], CommandResult) and events[0].command == "CR"
    assert device.stats.commands_answered == 1


def test_fixes_taken_offline_are_replayed_as_buffered_reports() -> None:
    device, server = online()
    device.disconnected(0.5)
    for t in (1.0, 11.0, 21.0):
        device.tick(t)
    assert len(device.buffer) == 3
    device.connected(22.0)
    decoded = serve(device, server, 22.0)
    assert device.state is State.ONLINE
    decoded += serve(device, server, 22.1)
    replayed = [d for d in decoded if b"*UD2," in d.raw]
    assert len(replayed) == 3 and not device.buffer
    assert all(isinstance(d.events[0], Position) for d in replayed)


def test_every_supported_alarm_is_sent_and_acknowledged() -> None:
    from simulators.alarms import supported_alarms

    alarms = supported_alarms(CODEC)
    assert {AlarmType.SOS, AlarmType.FALL_DOWN, AlarmType.REMOVING} <= set(alarms)
    device, server = online()
    device.tick(1.0)
    serve(device, server, 1.0)
    for alarm in alarms:
        device.raise_alarm(alarm, 2.0)
        [decoded] = serve(device, server, 2.0)
        assert [e.alarm for e in decoded.events if isinstance(e, Alarm)] == [alarm]
    assert not device.in_flight
