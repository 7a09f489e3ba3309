"""A simulated h02 device against the h02 session as the server, sans-IO.

The device's bytes go through the protocol's framer into a server session (as the gateway's
connection does); the session's replies (which carry the server's clock) and server commands
go back to the device.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from protocols import (
    Alarm,
    AlarmType,
    Command,
    CommandResult,
    CommandType,
    Decoded,
    Heartbeat,
    Position,
    get_codec,
)
from protocols.h02 import H02Options
from simulators import DeviceConfig, SimDevice, State
from simulators.alarms import supported_alarms
from simulators.identity import imei_for
from simulators.routes import Route, RouteSource
from tests.simulators.conftest import SteppingClock

CODEC = get_codec("h02")
SERVER_CLOCK = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


class Server:
    """The gateway's side of one connection: framer plus session, replies written at once."""

    def __init__(self, ack: bool = False) -> None:
        self.framer = CODEC.framer()
        self.session = CODEC.new_session(H02Options(ack=ack), lambda: SERVER_CLOCK)
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
    return SimDevice("h02", imei_for(9), config=DeviceConfig(**settings),  # type: ignore[arg-type]
                     source=RouteSource(Route.generated()), clock=SteppingClock(), phase_s=1.0)


def online(device: SimDevice, server: Server) -> None:
    device.connected(0.0)
    [decoded] = server.exchange(device, 0.1)
    assert isinstance(decoded.events[0], Heartbeat)
    assert decoded.replies[0].data == f"*HQ,{device.imei},HTBT#".encode()
    assert device.state is State.ONLINE


def test_first_heartbeat_is_echoed_and_the_device_goes_online() -> None:
    device, server = make(), Server()
    online(device, server)
    assert device.stats.logins_acked == 1


def test_positions_are_acknowledged_with_the_server_time_after_the_store() -> None:
    device, server = make(), Server()
    online(device, server)
    for t in (1.0, 11.0):
        device.tick(t)
        [decoded] = server.exchange(device, t + 0.1)
        [reply] = decoded.replies
        assert reply.after_store
        assert reply.data == f"*HQ,{device.imei},V4,V1,20260301120000#".encode()
    assert len(server.events(Position)) == 2
    assert device.stats.frames_acked == 3 and not device.in_flight


def test_sos_is_sent_and_acknowledged() -> None:
    device, server = make(), Server()
    online(device, server)
    device.tick(1.0)
    server.exchange(device, 1.1)
    device.press_sos(2.0)
    server.exchange(device, 2.1)
    [alarm] = server.events(Alarm)
    assert alarm.alarm is AlarmType.SOS  # type: ignore[attr-defined]
    assert alarm.position is not None  # type: ignore[attr-defined]
    assert device.stats.sos_sent == 1 and not device.in_flight


@pytest.mark.parametrize("alarm", [AlarmType.VIBRATION, AlarmType.OVERSPEED,
                                   AlarmType.POWER_CUT])
def test_status_bit_alarms(alarm: AlarmType) -> None:
    assert alarm in supported_alarms(CODEC)
    device, server = make(), Server()
    online(device, server)
    device.tick(1.0)
    server.exchange(device, 1.1)
    device.raise_alarm(alarm, 2.0)
    server.exchange(device, 2.1)
    assert [a.alarm for a in server.events(Alarm)] == [alarm]  # type: ignore[attr-defined]


def test_engine_stop_command_is_answered() -> None:
    device, server = make(), Server(ack=True)
    online(device, server)
    device.tick(1.0)
    server.exchange(device, 1.1)
    device.receive(CODEC.encode_command(device.device_id, Command(CommandType.ENGINE_STOP)), 2.0)
    [decoded] = server.exchange(device, 2.1)
    [result] = server.events(CommandResult)
    assert result.command == "S20"  # type: ignore[attr-defined]
    assert result.result.startswith("S20,OK,")  # type: ignore[attr-defined]
    assert any(isinstance(e, Position) for e in decoded.events)
    assert [r.data[:len(device.imei) + 9] for r in decoded.replies] == [
        f"*HQ,{device.imei},R12,".encode()]
    assert device.stats.commands_answered == 1 and not device.in_flight
