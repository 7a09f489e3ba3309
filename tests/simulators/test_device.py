"""The device state machine without I/O: acks, resends, buffer, replay, commands, alarms."""

from __future__ import annotations

import pytest

from protocols import Alarm, AlarmType, Position, get_codec
from protocols.gl300 import Gl300Options
from protocols.imei import is_valid_imei
from simulators import DeviceConfig, SimDevice, State
from simulators.alarms import UnsupportedAlarm, supported_alarms
from simulators.identity import check_imei, imei_for, random_imei
from simulators.routes import Route, RouteSource
from tests.simulators.conftest import SteppingClock


def make(protocol: str, **config: object) -> SimDevice:
    settings = {"position_interval_s": 10.0, "heartbeat_interval_s": 0, "ack_timeout_s": 2.0}
    settings.update(config)
    return SimDevice(protocol, imei_for(42), config=DeviceConfig(**settings),  # type: ignore[arg-type]
                     source=RouteSource(Route.generated()), clock=SteppingClock(), phase_s=1.0)


def frames(device: SimDevice) -> list[bytes]:
    data = device.take_output()
    return [f for f in device.codec.framer().feed(data) if isinstance(f, bytes)]


def replies(device: SimDevice, frame: bytes, sack: bool = False) -> bytes:
    """What the gateway answers, as the protocol defines it."""
    decoded = device.codec.decode(frame, Gl300Options(sack=sack))
    return b"".join(r.data for r in decoded.replies)


def test_identities_have_valid_luhn_digits() -> None:
    assert all(is_valid_imei(imei_for(n)) for n in range(50))
    assert imei_for(7) == imei_for(7) != imei_for(8)
    assert is_valid_imei(random_imei())
    assert check_imei(imei_for(3)[:14]) == imei_for(3)
    with pytest.raises(ValueError, match="Luhn"):
        check_imei(imei_for(3)[:14] + str((int(imei_for(3)[14]) + 1) % 10))


@pytest.mark.parametrize("protocol", ["gps103", "tk103"])
def test_login_waits_for_its_reply_and_is_resent(protocol: str) -> None:
    device = make(protocol)
    device.connected(0.0)
    [login] = frames(device)
    assert device.state is State.LOGIN
    device.tick(1.0)  # a fix is due, but the device is not logged in: it is buffered
    assert frames(device) == [] and len(device.buffer) == 1
    device.tick(2.0)  # ack timeout: the login again
    assert frames(device) == [login] and device.stats.retransmits == 1
    device.receive(replies(device, login), 2.1)
    assert device.state is State.ONLINE
    replayed = frames(device)  # the buffered fix goes out once online
    assert len(replayed) == 1 and device.stats.fixes_replayed == 1


def test_gps103_positions_have_no_ack_and_are_not_waited_for() -> None:
    device = make("gps103")
    device.connected(0.0)
    device.receive(replies(device, frames(device)[0]), 0.0)
    for t in (1.0, 11.0, 21.0):
        device.tick(t)
    assert len(frames(device)) == 3
    assert device.stats.frames_no_ack == 3 and not device.in_flight


def test_gl300_sack_resend_then_give_up_and_buffer_as_buff() -> None:
    device = make("gl300", sack=True, max_retries=1)
    device.connected(0.0)
    [pna] = frames(device)
    device.receive(replies(device, pna, sack=True), 0.01)
    assert device.state is State.ONLINE
    device.tick(1.0)
    [position] = frames(device)
    assert position.startswith(b"+RESP:GTFRI")
    device.tick(3.0)  # no SACK within the timeout: the same frame again
    assert frames(device) == [position] and device.stats.retransmits == 1
    device.tick(5.0)  # still nothing: the link is declared dead
    assert device.close_requested
    device.disconnected(5.0)
    assert len(device.buffer) >= 1 and not device.in_flight
    buffered = len(device.buffer)
    device.tick(11.0)  # offline: the next fix is buffered too
    assert len(device.buffer) == buffered + 1
    device.connected(12.0)  # a reconnecting GL300 sends a heartbeat, then its buffer
    [hbd] = frames(device)
    assert hbd.startswith(b"+ACK:GTHBD")
    device.receive(replies(device, hbd, sack=True), 12.01)
    replay = frames(device)
    assert replay and all(f.startswith(b"+BUFF:GTFRI") for f in replay)
    decoded = [get_codec("gl300").decode(f) for f in replay]
    positions = [e for d in decoded for e in d.events if isinstance(e, Position)]
    assert len(positions) == buffered + 1
    device.receive(b"".join(replies(device, f, sack=True) for f in replay), 12.1)
    assert not device.in_flight and not device.buffer


def test_late_duplicate_ack_is_recognised() -> None:
    device = make("gl300", sack=True)
    device.connected(0.0)
    [pna] = frames(device)
    device.tick(2.0)  # resent
    assert frames(device) == [pna]
    ack = replies(device, pna, sack=True)
    device.receive(ack + ack, 2.1)
    assert device.state is State.ONLINE
    assert device.stats.duplicate_replies == 1 and device.stats.unexpected_bytes == 0


def test_replies_split_across_reads_are_reassembled() -> None:
    device = make("gps103")
    device.connected(0.0)
    [login] = frames(device)
    reply = replies(device, login)
    device.receive(reply[:2], 0.1)
    assert device.state is State.LOGIN
    device.receive(reply[2:], 0.2)
    assert device.state is State.ONLINE


@pytest.mark.parametrize(("protocol", "command"), [
    ("gps103", b"**,imei:{imei},B;"),
    ("tk103", b"({id}AP00)"),
    ("gl300", b"AT+GTRTO=,1,,,,,,FFFF$"),
])
def test_position_request_is_answered_with_a_position(protocol: str, command: bytes) -> None:
    device = make(protocol)
    device.connected(0.0)
    device.receive(replies(device, frames(device)[0]), 0.0)
    device_id = getattr(device.encoder, "device_id", device.imei)
    device.receive(command.replace(b"{imei}", device.imei.encode())
                   .replace(b"{id}", device_id.encode()), 0.5)
    answer = frames(device)
    events = [e for f in answer for e in device.codec.decode(f).events]
    assert any(isinstance(e, Position) for e in events)
    assert device.stats.commands_answered == 1


def test_sos_while_offline_goes_first_after_login() -> None:
    device = make("gps103")
    device.tick(1.0)
    device.press_sos(1.5)
    device.connected(2.0)
    [login] = frames(device)
    device.receive(replies(device, login), 2.1)
    sent = frames(device)
    assert b"help me" in sent[0]
    assert replies(device, sent[0]).startswith(b"**,imei:")


@pytest.mark.parametrize("protocol", ["gps103", "tk103", "gl300"])
def test_alarms_decode_as_the_alarm_raised(protocol: str) -> None:
    codec = get_codec(protocol)
    alarms = supported_alarms(codec)
    assert AlarmType.SOS in alarms and len(alarms) > 1
    device = make(protocol)
    device.connected(0.0)
    device.receive(replies(device, frames(device)[0]), 0.0)
    for alarm in alarms:
        device.raise_alarm(alarm, 1.0)
        [frame] = frames(device)
        events = codec.decode(frame).events
        assert any(isinstance(e, Alarm) and e.alarm is alarm for e in events), (alarm, frame)
    with pytest.raises(UnsupportedAlarm):
        device.raise_alarm(AlarmType.CORNERING, 1.0)


def test_route_playback_positions_follow_the_route() -> None:
    route = Route.from_nmea("config/routes/johannesburg-loop.nmea")
    device = SimDevice("gl300", imei_for(1), source=RouteSource(route), clock=SteppingClock(),
                       config=DeviceConfig(position_interval_s=10.0, heartbeat_interval_s=0),
                       phase_s=10.0)
    device.connected(0.0)
    frames(device)
    codec = get_codec("gl300")
    for step in range(1, 6):
        device.tick(step * 10.0)
        [frame] = frames(device)
        [position] = [e for e in codec.decode(frame).events
                      if isinstance(e, Position)]
        expected = route.fix_at(step * 10.0, position.fix_time)
        assert position.lat == pytest.approx(expected.lat, abs=1e-5)
        assert position.lon == pytest.approx(expected.lon, abs=1e-5)
