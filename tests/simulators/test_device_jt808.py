"""A simulated JT/T 808 unit against the protocol's own server session, without I/O.

What the device writes goes through the jt808 framer into a server session; the session's
replies (and server commands) go back to the device as received bytes.
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
from protocols.jt808.wire import parse
from simulators import DeviceConfig, SimDevice, State
from simulators.identity import imei_for
from simulators.routes import Route, RouteSource
from tests.simulators.conftest import SteppingClock

CODEC = get_codec("jt808")


class Server:
    """The gateway's side of one connection, sans-IO: framer and session of the protocol."""

    def __init__(self) -> None:
        self.framer = CODEC.framer()
        self.session = CODEC.new_session(clock=lambda: datetime(2026, 3, 1, tzinfo=UTC))
        self.decoded: list[Decoded] = []

    def take(self, device: SimDevice, now: float, *, answer: bool = True) -> list[Decoded]:
        """Decode what the device wrote and, unless `answer` is False, send the replies back
        until the device has nothing more to say (a login reply releases its buffer)."""
        taken: list[Decoded] = []
        while data := device.take_output():
            decoded = [self.session.decode(f) for f in self.framer.feed(data)
                       if isinstance(f, bytes)]
            taken += decoded
            replies = b"".join(r.data for d in decoded for r in d.replies)
            if not answer:
                break
            if replies:
                device.receive(replies, now)
        self.decoded += taken
        return taken

    def events(self, kind: type) -> list[object]:
        return [e for d in self.decoded for e in d.events if isinstance(e, kind)]


def make() -> SimDevice:
    config = DeviceConfig(position_interval_s=10.0, heartbeat_interval_s=25.0, ack_timeout_s=2.0)
    return SimDevice("jt808", imei_for(808), config=config, source=RouteSource(Route.generated()),
                     clock=SteppingClock(), phase_s=1.0)


def test_login_positions_heartbeat_sos_and_commands() -> None:
    device = make()
    server = Server()
    assert device.device_id == device.imei  # 2019 layout, the IMEI as terminal phone

    device.connected(0.0)
    assert device.state is State.LOGIN
    [registration] = server.take(device, 0.01)
    login = registration.events[0]
    assert isinstance(login, Login) and login.device_id == device.imei
    assert login.attributes["imei"] == device.imei
    assert parse(registration.replies[0].data).msg_id == 0x8100
    assert device.state is State.ONLINE and device.stats.logins_acked == 1

    for t in (1.0, 11.0, 21.0):
        device.tick(t)
        server.take(device, t + 0.01)
    positions = server.events(Position)
    assert len(positions) == 3
    assert device.stats.frames_acked == 4 and not device.in_flight  # login + 3 positions
    assert all(r.after_store for d in server.decoded[1:] for r in d.replies)

    device.tick(25.5)
    [beat] = server.take(device, 25.51)
    assert isinstance(beat.events[0], Heartbeat) and not beat.replies[0].after_store
    assert not device.in_flight

    device.press_sos(26.0)
    [sos] = server.take(device, 26.01)
    alarms = [e for e in sos.events if isinstance(e, Alarm)]
    assert [a.alarm for a in alarms] == [AlarmType.SOS]
    assert alarms[0].position is not None and alarms[0].device_id == device.imei
    assert sos.replies[0].after_store is True
    assert device.stats.sos_sent == 1 and not device.in_flight

    request = CODEC.encode_command(device.device_id, Command(CommandType.POSITION_SINGLE))
    device.receive(request, 27.0)
    [answer] = server.take(device, 27.01)
    result = next(e for e in answer.events if isinstance(e, CommandResult))
    assert result.command == "0x8201" and result.attributes["serial"] == parse(request).serial
    assert any(isinstance(e, Position) for e in answer.events)

    stop = CODEC.encode_command(device.device_id, Command(CommandType.ENGINE_STOP))
    device.receive(stop, 28.0)
    [ack] = server.take(device, 28.01)
    (general,) = ack.events
    assert isinstance(general, CommandResult)
    assert (general.command, general.result) == ("0x8105", "success")
    assert device.stats.commands_answered == 2 and device.stats.unexpected_bytes == 0


def test_unanswered_positions_are_buffered_and_replayed_after_authentication() -> None:
    device = make()
    server = Server()
    device.connected(0.0)
    server.take(device, 0.01)
    device.tick(1.0)
    server.take(device, 1.01, answer=False)  # stored, but the link drops before the ack
    device.disconnected(2.0)
    device.tick(11.0)  # offline: buffered
    assert len(device.buffer) == 2

    again = Server()  # a new connection
    device.connected(12.0)
    auth, *replay = again.take(device, 12.01)
    login = auth.events[0]
    assert isinstance(login, Login) and login.attributes["auth_code_ok"] is True
    assert auth.notes == ()
    assert device.state is State.ONLINE
    positions = [e for d in replay for e in d.events if isinstance(e, Position)]
    assert len(positions) == 2 and all(p.attributes["buffered"] is True for p in positions)
    assert all(r.after_store for d in replay for r in d.replies)
    assert not device.buffer and not device.in_flight


def test_a_lost_reply_is_waited_for_and_the_frame_resent() -> None:
    device = make()
    server = Server()
    device.connected(0.0)
    server.take(device, 0.01)
    device.tick(1.0)
    [first] = server.take(device, 1.01, answer=False)
    device.tick(3.5)  # ack timeout: the same frame again
    [resent] = server.take(device, 3.51)
    assert resent.raw == first.raw and device.stats.retransmits == 1
    assert not device.in_flight
