"""The eelink protocol (67 67 packages): framing, sessions, acks, UDP, commands, device."""

from __future__ import annotations

import random
import struct
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import (
    Alarm,
    AlarmType,
    Command,
    CommandResult,
    CommandType,
    Discarded,
    Fix,
    Heartbeat,
    Login,
    Position,
    Status,
    UnsupportedCommand,
    detect,
    get_codec,
)
from protocols.eelink import EelinkDevice, EelinkFramer, encode_udp_command
from protocols.eelink.commands import text_command
from protocols.eelink.session import reply_key
from protocols.eelink.udp import checksum, wrap
from protocols.framing import DEFAULT_MAX_FRAME_BYTES

CODEC = get_codec("eelink")
IMEI = "352544071750518"
LOGIN = bytes.fromhex("676701000c007b03525440717505180104")
CLOCK = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)
T0 = datetime(2026, 3, 1, 12, 30, 15, tzinfo=UTC)


def session():  # type: ignore[no-untyped-def]
    return CODEC.new_session(None, lambda: CLOCK)


def logged_in():  # type: ignore[no-untyped-def]
    s = session()
    assert s.decode(LOGIN).device_id == IMEI
    return s


def package(kind: int, serial: int, content: bytes) -> bytes:
    return b"gg" + bytes((kind,)) + (len(content) + 2).to_bytes(2, "big") \
        + serial.to_bytes(2, "big") + content


def frames_of(out: list[bytes | Discarded]) -> list[bytes]:
    return [item for item in out if isinstance(item, bytes)]


def fix(**changes: object) -> Fix:
    values: dict[str, object] = {"fix_time": T0, "lat": 47.4636578, "lon": -19.0440467,
                                 "speed_kmh": 15.0, "course_deg": 113.0, "altitude_m": 120.0,
                                 "satellites": 9}
    values.update(changes)
    return Fix(**values)  # type: ignore[arg-type]


def test_codec_registered() -> None:
    assert (CODEC.default_port, CODEC.binary) == (5064, True)
    assert CODEC.commands == {CommandType.POSITION_SINGLE, CommandType.ENGINE_STOP,
                              CommandType.ENGINE_RESUME, CommandType.REBOOT}
    assert CODEC.downlink_framer is not None and CODEC.reply_key is not None


@pytest.mark.parametrize(("head", "verdict"), [
    (b"gg\x01\x00", True), (b"g", None), (b"gx", False), (b"EL", False), (b"[3G*", False)])
def test_detect(head: bytes, verdict: bool | None) -> None:
    assert CODEC.detect(head) is verdict


def test_detection_among_all_protocols() -> None:
    assert detect(LOGIN) == "eelink"


# Sessions, events and acks -------------------------------------------------------------

def test_login_names_the_device_and_is_acked_at_once_with_the_server_time() -> None:
    decoded = session().decode(LOGIN)
    [login] = decoded.events
    assert isinstance(login, Login) and login.device_id == IMEI
    assert dict(login.attributes) == {"language": 1, "timezone": 4}
    [reply] = decoded.replies
    assert reply.data.hex() == "6767010009007b698173f2000100"
    assert reply.after_store is False
    assert reply_key(reply.data) == bytes.fromhex("6767010009007b")


def test_packages_before_the_login_give_nothing() -> None:
    decoded = session().decode(EelinkDevice(IMEI).position(fix()))
    assert (decoded.device_id, decoded.events, decoded.replies) == (None, (), ())


def test_location_package_exact_values_acked_after_store() -> None:
    device = EelinkDevice(IMEI)
    s = logged_in()
    decoded = s.decode(device.position(fix(battery_percent=50)))
    [position] = decoded.events
    assert isinstance(position, Position) and position.device_id == IMEI
    assert position.fix_time == T0 and position.valid
    assert (position.lat, position.lon) == pytest.approx((47.4636578, -19.0440467), abs=1e-6)
    assert (position.speed_kmh, position.course_deg, position.altitude_m,
            position.satellites) == (15.0, 113.0, 120.0, 9)
    assert dict(position.attributes) == {"gps": True, "status": 0x0401, "battery": 3.8}
    [reply] = decoded.replies
    assert reply.data == bytes.fromhex("67671200020001") and reply.after_store is True


def test_sos_warning_carries_the_position() -> None:
    decoded = logged_in().decode(EelinkDevice(IMEI).sos(fix()))
    position, alarm = decoded.events
    assert isinstance(alarm, Alarm) and alarm.alarm is AlarmType.SOS
    assert alarm.position == position and alarm.raw_code == "0x02"
    assert position.attributes["alarm"] == "sos"
    assert decoded.replies[0].data == bytes.fromhex("67671400020001")
    assert decoded.replies[0].after_store is True


def test_warning_without_gps_is_an_alarm_without_position() -> None:
    content = bytes.fromhex("5f74a294 02 0136 0104 5911 00a71601 22 25 0400".replace(" ", ""))
    decoded = logged_in().decode(package(0x14, 3, content))
    status, alarm = decoded.events
    assert isinstance(status, Status) and isinstance(alarm, Alarm)
    assert alarm.alarm is AlarmType.REMOVING and alarm.position is None
    assert alarm.event_time == datetime(2020, 9, 30, 15, 21, 56, tzinfo=UTC)


def test_heartbeat_is_acked_at_once() -> None:
    decoded = logged_in().decode(EelinkDevice(IMEI).heartbeat())
    [event] = decoded.events
    assert isinstance(event, Heartbeat) and event.attributes["status"] == 0x0400
    assert [(r.data.hex(), r.after_store) for r in decoded.replies] == [
        ("67670300020001", False)]


def test_old_gps_package_and_data_package_get_no_ack() -> None:
    s = logged_in()
    old = bytes.fromhex("676702001b03c5538086df0190c1790b3482df0f0157020800013beb00342401")
    decoded = s.decode(old)
    assert isinstance(decoded.events[0], Position) and decoded.replies == ()
    decoded = s.decode(package(0x81, 9, b"\x01\x02"))
    assert decoded.replies == () and isinstance(decoded.events[0], Status)


def test_unknown_package_type_is_kept_and_acked() -> None:
    decoded = logged_in().decode(package(0x1E, 7, b"\x00\x01"))
    [status] = decoded.events
    assert isinstance(status, Status)
    assert dict(status.attributes) == {"package_type": "0x1e", "undecoded": True}
    assert decoded.replies[0].data == bytes.fromhex("67671e00020007")


def test_obd_values() -> None:
    content = struct.pack(">I", 1552547304) + struct.pack(">Bi", 0x89, 73) \
        + struct.pack(">Bi", 0x8A, 44791) + struct.pack(">Bi", 0x8B, 125)
    [status] = logged_in().decode(package(0x07, 1, content)).events
    assert isinstance(status, Status)
    assert dict(status.attributes) == {"fuel_consumption": 73, "odometer": 44_791_000,
                                       "fuel": 12.5, "obd_values": 3}
    assert status.event_time == datetime(2019, 3, 14, 7, 8, 24, tzinfo=UTC)


@pytest.mark.parametrize(("frame", "reason"), [
    (package(0x12, 1, b"\x00\x00"), "at least 5 needed"),
    (package(0x12, 1, bytes.fromhex("5f74a29401") + b"\x00" * 4), "cut short"),
    (package(0x02, 1, b"\x00" * 10), "at least 25 needed"),
    (package(0x12, 1, bytes.fromhex("5f74a29401") + struct.pack(">iihHHB", 200 * 1_800_000, 0,
                                                                  0, 0, 0, 0) + b"\x00\x01"),
     "coordinates out of range"),
    (package(0x07, 1, b"\x00" * 7), "5-byte PID values"),
    (package(0x04, 1, bytes(25)), "no alarm byte"),
    (package(0x80, 1, b"\x01\x00"), "needs a type byte and a 4-byte id"),
    (b"gg\x12\x00\x09\x00\x01", "does not fit"),
    (b"xx\x12\x00\x02\x00\x01", "expected a 67 67 package"),
])
def test_rejections_say_why(frame: bytes, reason: str) -> None:
    decoded = logged_in().decode(frame)
    assert decoded.rejected is not None and reason in decoded.rejected.reason
    assert decoded.replies == ()


def test_login_rejections() -> None:
    assert "no 8-byte IMEI" in session().decode(package(0x01, 1, b"\x03\x52")).rejected.reason  # type: ignore[union-attr]
    bad = package(0x01, 1, bytes.fromhex("0a525440717505180104"))
    assert "not 8 BCD bytes" in session().decode(bad).rejected.reason  # type: ignore[union-attr]


# UDP ---------------------------------------------------------------------------------------

def test_datagram_names_its_device_and_each_ack_is_a_datagram() -> None:
    device = EelinkDevice(IMEI)
    datagram = wrap(IMEI, device.position(fix()) + device.heartbeat())
    decoded = session().decode(datagram)
    assert decoded.device_id == IMEI
    assert [type(e) for e in decoded.events] == [Position, Heartbeat]
    assert [r.data for r in decoded.replies] == [
        wrap(IMEI, bytes.fromhex("67671200020001")), wrap(IMEI, bytes.fromhex("67670300020002"))]
    assert [r.after_store for r in decoded.replies] == [True, False]


def test_datagram_checksum_and_length_are_checked() -> None:
    datagram = bytearray(wrap(IMEI, EelinkDevice(IMEI).heartbeat()))
    datagram[-1] ^= 1
    assert "checksum" in session().decode(bytes(datagram)).rejected.reason  # type: ignore[union-attr]
    short = wrap(IMEI, EelinkDevice(IMEI).heartbeat())[:-1]
    assert "length field" in session().decode(short).rejected.reason  # type: ignore[union-attr]


def test_checksum_rotates_and_adds() -> None:
    assert checksum(b"") == 0
    assert checksum(b"\x01\x02") == 0x0004
    # The reference's UDP command datagram: 454c 001e b41a <IMEI and package>.
    body = bytes.fromhex("0123456789012345676780000f0000010000000052454c41592c3123")
    assert checksum(body) == 0xB41A


# Framing -----------------------------------------------------------------------------------

def test_framer_garbage_merged_and_split_packages() -> None:
    framer = EelinkFramer()
    out = framer.feed(b"junk" + LOGIN + LOGIN[:6])
    assert out == [Discarded("bytes outside a package (no 67 67 marker)", 4), LOGIN]
    assert framer.feed(LOGIN[6:]) == [LOGIN] and framer.buffered == 0


def test_framer_keeps_a_trailing_marker_byte() -> None:
    framer = EelinkFramer()
    assert framer.feed(b"xyz" + LOGIN[:1]) == [
        Discarded("bytes outside a package (no 67 67 marker)", 3)]
    assert framer.feed(LOGIN[1:]) == [LOGIN]


def test_framer_skips_impossible_lengths() -> None:
    framer = EelinkFramer(64)
    out = framer.feed(b"gg\x12\x00\x01" + b"gg\x12\xff\xff" + LOGIN)
    assert frames_of(out) == [LOGIN]
    reasons = [item.reason for item in out if isinstance(item, Discarded)]
    assert "package length below 2 (the serial alone is 2 bytes)" in reasons
    assert "package of 65540 bytes is longer than 64" in reasons


# Commands ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("command", "text"), [
    (CommandType.POSITION_SINGLE, b"WHERE#"),
    (CommandType.ENGINE_STOP, b"RELAY,1#"),
    (CommandType.ENGINE_RESUME, b"RELAY,0#"),
    (CommandType.REBOOT, b"RESET#"),
])
def test_commands(command: CommandType, text: bytes) -> None:
    wire = CODEC.encode_command(IMEI, Command(command))
    assert wire == b"gg\x80" + (7 + len(text)).to_bytes(2, "big") + b"\x00\x00\x01" \
        + b"\x00" * 4 + text
    assert frames_of(EelinkFramer().feed(wire)) == [wire]


def test_command_errors_and_udp_form() -> None:
    with pytest.raises(UnsupportedCommand, match="text_command"):
        CODEC.encode_command(IMEI, Command(CommandType.REPORT_INTERVAL, interval_s=60))
    with pytest.raises(UnsupportedCommand, match="printable ASCII"):
        text_command("")
    with pytest.raises(ValueError, match="15 digits"):
        encode_udp_command("12345", Command(CommandType.REBOOT))
    assert text_command("TIMER,60#").endswith(b"TIMER,60#")


def test_device_answers_where_with_its_position() -> None:
    request = CODEC.encode_command(IMEI, Command(CommandType.POSITION_SINGLE))
    answer = EelinkDevice(IMEI).command_answer(request, fix())
    assert answer is not None
    decoded = logged_in().decode(answer)
    position, result = decoded.events
    assert isinstance(position, Position) and isinstance(result, CommandResult)
    assert position.fix_time == T0
    assert (position.lat, position.lon) == pytest.approx((47.4636578, -19.0440467), abs=1e-6)
    assert decoded.replies[0].data == bytes.fromhex("67678000020001")
    assert decoded.replies[0].after_store is True


def test_device_answers_other_commands_with_ok_and_ignores_the_rest() -> None:
    device = EelinkDevice(IMEI)
    answer = device.command_answer(
        CODEC.encode_command(IMEI, Command(CommandType.ENGINE_STOP)), fix())
    assert answer is not None
    [result] = logged_in().decode(answer).events
    assert isinstance(result, CommandResult) and result.result == "RELAY,1 OK"
    assert device.command_answer(bytes.fromhex("67671200020001"), fix()) is None


@pytest.mark.parametrize("alarm", [AlarmType.SOS, AlarmType.POWER_OFF, AlarmType.LOW_BATTERY,
                                   AlarmType.VIBRATION, AlarmType.REMOVING, AlarmType.OVERSPEED,
                                   AlarmType.LOW_SPEED, AlarmType.GEOFENCE_ENTER,
                                   AlarmType.GEOFENCE_EXIT, AlarmType.ACCIDENT,
                                   AlarmType.FALL_DOWN, AlarmType.FAULT])
def test_device_alarms_decode_as_themselves(alarm: AlarmType) -> None:
    decoded = logged_in().decode(EelinkDevice(IMEI).alarm(alarm, fix()))
    assert [e.alarm for e in decoded.events if isinstance(e, Alarm)] == [alarm]


def test_device_refuses_alarms_without_a_code() -> None:
    with pytest.raises(ValueError, match="no alarm code for tow"):
        EelinkDevice(IMEI).alarm(AlarmType.TOW, fix())


# Properties ------------------------------------------------------------------------------

_imeis = st.text("0123456789", min_size=15, max_size=15)
_fixes = st.builds(
    Fix,
    fix_time=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2105, 12, 31),
                          timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0)),
    lat=st.floats(-90, 90), lon=st.floats(-180, 180),
    speed_kmh=st.floats(0, 400), course_deg=st.floats(0, 359.4),
    altitude_m=st.floats(-400, 9000), valid=st.booleans(),
    satellites=st.integers(0, 40), battery_percent=st.integers(0, 100),
)


def _assert_same_fix(position: Position, sent: Fix) -> None:
    assert position.fix_time == sent.fix_time and position.valid is sent.valid
    assert position.lat == pytest.approx(sent.lat, abs=1e-6)
    assert position.lon == pytest.approx(sent.lon, abs=1e-6)
    assert position.speed_kmh == pytest.approx(sent.speed_kmh, abs=0.5)
    assert position.course_deg == pytest.approx(sent.course_deg, abs=0.5)
    assert position.altitude_m == pytest.approx(sent.altitude_m, abs=0.5)
    assert position.satellites == sent.satellites


@given(imei=_imeis, sent=_fixes, buffered=st.booleans())
def test_login_and_position_round_trip(imei: str, sent: Fix, buffered: bool) -> None:
    device = EelinkDevice(imei)
    s = session()
    assert s.decode(device.login()).device_id == imei
    decoded = s.decode(device.report([sent], buffered=buffered))
    [position] = decoded.events
    assert isinstance(position, Position) and position.device_id == imei
    _assert_same_fix(position, sent)
    assert position.attributes["battery"] == pytest.approx(
        (3400 + 8 * (sent.battery_percent or 0)) / 1000)
    assert [r.after_store for r in decoded.replies] == [True]


@given(sent=_fixes, alarm=st.sampled_from([AlarmType.SOS, AlarmType.OVERSPEED,
                                           AlarmType.GEOFENCE_EXIT, AlarmType.FALL_DOWN]))
def test_alarm_round_trip(sent: Fix, alarm: AlarmType) -> None:
    decoded = logged_in().decode(EelinkDevice(IMEI).alarm(alarm, sent))
    position, event = decoded.events
    assert isinstance(position, Position) and isinstance(event, Alarm)
    assert event.alarm is alarm
    _assert_same_fix(position, sent)


@given(imei=_imeis, beats=st.integers(1, 5))
def test_heartbeat_round_trip_over_udp(imei: str, beats: int) -> None:
    device = EelinkDevice(imei)
    decoded = session().decode(wrap(imei, b"".join(device.heartbeat() for _ in range(beats))))
    assert decoded.device_id == imei
    assert [type(e) for e in decoded.events] == [Heartbeat] * beats
    assert len(decoded.replies) == beats


@given(sent=_fixes)
def test_command_answer_round_trip(sent: Fix) -> None:
    request = CODEC.encode_command(IMEI, Command(CommandType.POSITION_SINGLE))
    answer = EelinkDevice(IMEI).command_answer(request, sent)
    assert answer is not None
    position, result = logged_in().decode(answer).events
    assert isinstance(position, Position) and isinstance(result, CommandResult)
    assert position.fix_time == sent.fix_time
    assert position.lat == pytest.approx(sent.lat, abs=1e-6)
    assert position.lon == pytest.approx(sent.lon, abs=1e-6)


@given(fixes=st.lists(_fixes, min_size=1, max_size=5), data=st.data())
def test_any_chunking_gives_the_same_frames_and_events(fixes: list[Fix],
                                                        data: st.DataObject) -> None:
    device = EelinkDevice(IMEI)
    stream = device.login() + b"".join(device.position(f) for f in fixes) + device.sos(fixes[0])
    whole = frames_of(EelinkFramer().feed(stream))
    assert len(whole) == len(fixes) + 2
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    framer = EelinkFramer()
    pieces: list[bytes] = []
    last = 0
    for cut in [*cuts, len(stream)]:
        pieces.extend(frames_of(framer.feed(stream[last:cut])))
        last = cut
    assert pieces == whole
    a, b = session(), session()
    assert [a.decode(f).events for f in pieces] == [b.decode(f).events for f in whole]


@settings(max_examples=300)
@given(st.binary(max_size=600))
def test_random_bytes_never_raise_nor_overflow(blob: bytes) -> None:
    framer = EelinkFramer(128)
    s = logged_in()
    for item in framer.feed(blob):
        assert framer.buffered <= 128
        if isinstance(item, bytes):
            s.decode(item)
    s.decode(blob)
    s.decode(b"EL" + blob)
    assert framer.buffered <= 128


@settings(max_examples=300)
@given(seed=st.integers(0, 2**32), count=st.integers(1, 8))
def test_mutated_packages_never_raise(seed: int, count: int) -> None:
    rng = random.Random(seed)
    device = EelinkDevice(IMEI)
    sample = fix(lat=rng.uniform(-90, 90), lon=rng.uniform(-180, 180))
    frame = bytearray(rng.choice([device.login(), device.position(sample), device.sos(sample),
                                  device.heartbeat(), wrap(IMEI, device.position(sample))]))
    for _ in range(count):
        op = rng.randrange(3)
        at = rng.randrange(len(frame))
        if op == 0:
            frame[at] = rng.randrange(256)
        elif op == 1:
            del frame[at]
        else:
            frame.insert(at, rng.randrange(256))
    framer = EelinkFramer(DEFAULT_MAX_FRAME_BYTES)
    s = logged_in()
    for item in framer.feed(bytes(frame)) + framer.feed(LOGIN):
        if isinstance(item, bytes):
            decoded = s.decode(item)
            assert decoded.events or decoded.replies == ()
    assert framer.buffered <= DEFAULT_MAX_FRAME_BYTES
    s.decode(bytes(frame))


# The shortcuts read what the general paths read ---------------------------------------------

def _outcome(fn, *args):  # type: ignore[no-untyped-def]
    try:
        return fn(*args)
    except Exception as exc:
        return type(exc)


@settings(max_examples=300)
@given(sent=_fixes, seed=st.integers(0, 2**32), flips=st.integers(0, 4))
def test_shortcuts_agree_with_the_general_paths(sent: Fix, seed: int, flips: int) -> None:
    from protocols.eelink.packages import PackageError, _blocks, _new
    from protocols.eelink.packages import split_packages as split
    from protocols.eelink.session import _rejected

    rng = random.Random(seed)
    device = EelinkDevice(IMEI)
    frame = bytearray(rng.choice([device.position(sent), device.sos(sent), device.heartbeat()]))
    for _ in range(flips):  # keep the header, so that the frame stays one package
        frame[rng.randrange(7, len(frame))] = rng.randrange(256)
    content = bytes(frame[7:])
    assert _outcome(_new, IMEI, 0x12, content) == _outcome(_blocks, IMEI, 0x12, content)
    shortcut, general = logged_in(), logged_in()
    try:
        expected = general._decode(bytes(frame), split(bytes(frame)), None)
    except PackageError as exc:
        expected = _rejected(bytes(frame), str(exc), IMEI)
    assert shortcut.decode(bytes(frame)) == expected
