"""gt06 (Concox / Jimi binary): envelope and CRC, framing, each packet family, replies, options,
commands, the simulated device, and properties over random input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import (
    Alarm,
    AlarmType,
    Command,
    CommandResult,
    CommandType,
    Decoded,
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
from protocols.gt06 import CODEC, Gt06Device, Gt06Framer, Gt06Options, crc16_x25, encode_command
from protocols.gt06.device import ALARM_CODES
from protocols.gt06.session import Gt06Session
from protocols.gt06.wire import ack, packet

IMEI = "359586015829802"
LOGIN = bytes.fromhex("78780d01086471700328358100093f040d0a")
CLOCK = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)
FIX = Fix(fix_time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), lat=52.520008, lon=-13.404954,
          speed_kmh=57.0, course_deg=271.0, satellites=11)


def session(**options: object) -> Gt06Session:
    """A server session that saw the device's login."""
    s = Gt06Session(Gt06Options(**options), lambda: CLOCK)  # type: ignore[arg-type]
    s.decode(LOGIN)
    return s


def only(decoded: Decoded, kind: type) -> object:
    found = [e for e in decoded.events if isinstance(e, kind)]
    assert len(found) == 1, decoded.events
    return found[0]


# Codec, envelope ------------------------------------------------------------------------------


def test_codec_registered_on_the_reference_port() -> None:
    assert get_codec("gt06") is CODEC
    assert CODEC.default_port == 5023 and CODEC.binary
    assert CODEC.commands == frozenset(CommandType)


def test_detection_by_start_marker() -> None:
    assert detect(LOGIN[:4]) == "gt06"
    assert detect(b"\x79\x79\x00") == "gt06"
    assert CODEC.detect(b"\x78") is None
    assert CODEC.detect(b"\x78\x12") is False
    assert CODEC.detect(b"*HQ,") is False


def test_crc16_x25_check_values() -> None:
    assert crc16_x25(bytes.fromhex("05010009")) == 0x5594
    assert crc16_x25(b"123456789") == 0x906E  # the CRC catalogue's check value
    assert ack(0x01, 9) == bytes.fromhex("78780501000955940d0a")
    assert packet(0x97, b"\x01", 0, extended=True)[:5] == bytes.fromhex("7979000697")


# Login and session ----------------------------------------------------------------------------


def test_login_names_the_device_and_is_answered_at_once() -> None:
    s = Gt06Session(Gt06Options(), lambda: CLOCK)
    decoded = s.decode(LOGIN)
    login = only(decoded, Login)
    assert login.device_id == "864717003283581"  # type: ignore[attr-defined]
    assert decoded.device_id == "864717003283581"
    assert [(r.data.hex(), r.after_store) for r in decoded.replies] == [
        ("78780501000955940d0a", False)]


def test_packets_before_a_login_decode_to_nothing_and_get_no_reply() -> None:
    s = Gt06Session(Gt06Options(), lambda: CLOCK)
    device = Gt06Device(IMEI)
    decoded = s.decode(device.position(FIX))
    assert (decoded.device_id, decoded.events, decoded.replies) == (None, (), ())


def test_login_time_zone_applies_to_later_packets_unless_turned_off() -> None:
    # Login announcing GMT+8 (0x3201), then a 0x12 packet with 2017-08-25 17:02:22 local.
    login = bytes.fromhex("787811010123456789012345100b3201000171930d0a")
    gps = bytes.fromhex("78781f12110819110216d402f250340828924055d4c801944600d300c09501429c830d0a")
    for use_zone, hour in ((True, 9), (False, 17)):
        s = Gt06Session(Gt06Options(login_time_zone=use_zone), lambda: CLOCK)
        s.decode(login)
        position = only(s.decode(gps), Position)
        assert position.fix_time == datetime(2017, 8, 25, hour, 2, 22, tzinfo=UTC)  # type: ignore[attr-defined]


def test_login_with_non_bcd_imei_is_rejected() -> None:
    frame = packet(0x01, bytes.fromhex("0a6471700328358100090000"), 1)
    decoded = Gt06Session(Gt06Options(), lambda: CLOCK).decode(frame)
    assert decoded.rejected is not None and "BCD" in decoded.rejected.reason
    assert decoded.replies == ()


# Packet families ----------------------------------------------------------------------------


def test_gps_lbs_position_exact_values_and_ack_after_store() -> None:
    device = Gt06Device(IMEI, serial=0x1234)
    decoded = session().decode(device.position(FIX))
    position = only(decoded, Position)
    assert isinstance(position, Position)
    assert position.fix_time == FIX.fix_time
    assert position.lat == pytest.approx(52.520008, abs=1e-6)
    assert position.lon == pytest.approx(-13.404954, abs=1e-6)
    assert (position.speed_kmh, position.course_deg, position.satellites) == (57.0, 271.0, 11)
    assert position.valid is True
    assert position.attributes["mcc"] == 262 and position.attributes["archive"] is False
    assert [(r.data, r.after_store) for r in decoded.replies] == [(ack(0x22, 0x1234), True)]


def test_sos_from_the_reference_example() -> None:
    frame = bytes.fromhex(
        "787826161709130f3a2dcc02c55f2a089f9af9005c210901360481fe066d9b03413e420102035f92fe0d0a")
    decoded = session().decode(frame)
    alarm = only(decoded, Alarm)
    assert alarm.alarm is AlarmType.SOS  # type: ignore[attr-defined]
    position = alarm.position  # type: ignore[attr-defined]
    assert position.lat == pytest.approx(25.82744, abs=1e-5)
    assert position.lon == pytest.approx(-80.37646, abs=1e-5)
    assert position.fix_time == datetime(2023, 9, 19, 15, 58, 45, tzinfo=UTC)
    assert [(r.data.hex(), r.after_store) for r in decoded.replies] == [
        ("78780516035f41df0d0a", True)]


def test_heartbeat_ack_goes_at_once_unless_it_carries_an_alarm() -> None:
    plain = session().decode(Gt06Device(IMEI).heartbeat())
    assert isinstance(plain.events[0], Heartbeat)
    assert plain.events[0].attributes["battery_level"] == 100
    assert [r.after_store for r in plain.replies] == [False]
    # 0x13 with terminal info 0x06 and the geofence-enter alarm byte 0x04 (a corpus packet).
    alarmed = session().decode(bytes.fromhex("78780a130604ea04000006bc8a0d0a"))
    assert only(alarmed, Alarm).alarm is AlarmType.GEOFENCE_ENTER  # type: ignore[attr-defined]
    assert [r.after_store for r in alarmed.replies] == [True]


def test_time_request_is_answered_with_the_server_clock() -> None:
    decoded = session().decode(bytes.fromhex("7878058a000688290d0a"))
    assert decoded.events == ()
    assert [(r.data.hex(), r.after_store) for r in decoded.replies] == [
        ("78780b8a1a020304050600008d2c0d0a", False)]


def test_address_request_gets_the_no_address_answer() -> None:
    frame = bytes.fromhex("78782e2a0f0c1d071139ca027ac8000c4658000014d83132353230313335333231"
                          "373730373900000000000001002a6ece0d0a")
    decoded = session().decode(frame)
    assert [r.data for r in decoded.replies] == [
        bytes.fromhex("79790015970b000000004e4126264e4126263023230000e61e0d0a")]


def test_wifi_packet_is_cells_and_access_points_without_a_fix() -> None:
    frame = bytes.fromhex("787803691604130318491475905bd30e25001e10bbf7635d14759006e6265605"
                          "01cc0028660f213228660f1f2828660ea81e286610731428660f20140d0a")
    decoded = session().decode(frame)
    status = only(decoded, Status)
    assert status.event_time == datetime(2016, 4, 13, 3, 18, 49, tzinfo=UTC)  # type: ignore[attr-defined]
    assert status.attributes["wifi_count"] == 3 and status.attributes["cell_count"] == 5  # type: ignore[attr-defined]
    assert decoded.replies[0].data.hex() == "787800691604130318490d0a"  # no CRC, length 0
    assert set(decoded.notes) == {"bad_crc", "bad_length"}


def test_string_answer_is_a_command_result() -> None:
    frame = bytes.fromhex("787829152100000000526573746f7265206675656c20737570706c793a2053756"
                          "3636573732100020140" + "77ce0d0a")
    decoded = session().decode(frame)
    result = only(decoded, CommandResult)
    assert result.result == "Restore fuel supply: Success!"  # type: ignore[attr-defined]
    assert decoded.replies[0].after_store is True


def test_zero_gps_block_is_no_position() -> None:
    frame = bytes.fromhex(
        "78782322110c070f1b0270000000000000000000040081360104cb8a00bef3000000000523030d0a")
    decoded = session().decode(frame)
    assert not [e for e in decoded.events if isinstance(e, Position)]
    assert only(decoded, Status).event_time == datetime(2017, 12, 7, 15, 27, 2, tzinfo=UTC)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("frame", "replied"), [
    (packet(0x08, b"\x01\x02", 7), True),  # unknown short packet: acked
    (packet(0x84, b"\x00", 7, extended=True), False),  # unknown extended: not acked
    (packet(0x80, b"\x01", 7), False),  # a command echo: not acked
])
def test_unknown_packets_are_noted(frame: bytes, replied: bool) -> None:
    decoded = session().decode(frame)
    assert decoded.events == () and decoded.notes == ("unsupported_type",)
    assert bool(decoded.replies) is replied


@pytest.mark.parametrize(("frame", "reason"), [
    (b"\x78\x78\x01", "not a gt06 packet"),
    (b"hello world\r\n", "not a gt06 packet"),
    (packet(0x22, b"\x1a\x01\x02", 1), "packet 0x22 is shorter than its fields"),
])
def test_rejections_say_why(frame: bytes, reason: str) -> None:
    decoded = session().decode(frame)
    assert decoded.rejected is not None and reason in decoded.rejected.reason
    assert "Error" not in decoded.rejected.reason and "Traceback" not in decoded.rejected.reason


# CRC policy ---------------------------------------------------------------------------------


def test_bad_crc_is_accepted_and_noted_by_default_rejected_when_strict() -> None:
    good = Gt06Device(IMEI).position(FIX)
    bad = good[:-4] + bytes((good[-4] ^ 0xFF,)) + good[-3:]
    lenient = session().decode(bad)
    assert lenient.notes == ("bad_crc",) and lenient.rejected is None and lenient.replies
    strict = session(strict_crc=True).decode(bad)
    assert strict.rejected is not None and "strict_crc" in strict.rejected.reason
    assert session(strict_crc=True).decode(good).notes == ()


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="model"):
        Gt06Options(model="NT 20; drop")
    with pytest.raises(ValueError, match="strict_crc"):
        Gt06Options(strict_crc="yes")  # type: ignore[arg-type]
    assert Gt06Options(model="NT20").model == "NT20"


def test_model_option_changes_the_layout() -> None:
    # 0x13 status of a SEEWORLD unit: the extension byte is the external voltage.
    frame = bytes.fromhex("78780a134506560b0102242b850d0a")
    assert session(model="SEEWORLD").decode(frame).events[0].attributes["power"] == 11.0  # type: ignore[union-attr]
    assert "power" not in session().decode(frame).events[0].attributes  # type: ignore[union-attr]


# Framing ----------------------------------------------------------------------------------


def test_framer_cuts_by_length_even_with_crlf_inside() -> None:
    serial_data = bytes.fromhex("797900109b0344373532304136320d0a000f87f00d0a")
    framer = Gt06Framer()
    assert framer.feed(serial_data[:16]) == []  # the CR LF at 14 does not end it
    assert framer.feed(serial_data[16:] + LOGIN) == [serial_data, LOGIN]


def test_framer_falls_back_to_crlf_for_a_wrong_length_byte() -> None:
    wifi = bytes.fromhex("787800691710231108500200cc080c4e2fa5640c4e2fa66e0d0a")
    assert Gt06Framer().feed(wifi + LOGIN) == [wifi, LOGIN]


def test_framer_skips_garbage_and_reports_it() -> None:
    out = Gt06Framer().feed(b"\x00\x01garbage" + LOGIN + b"\r\n")
    assert out == [Discarded("bytes outside a frame", 9), LOGIN]


def test_framer_drops_an_overlong_packet_and_recovers() -> None:
    framer = Gt06Framer(64)
    out = framer.feed(b"\x79\x79\x01\x00" + b"\x11" * 300 + b"\r\n" + LOGIN)
    assert [o for o in out if isinstance(o, bytes)] == [LOGIN]
    assert any(isinstance(o, Discarded) for o in out)


# Commands ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("command", "text"), [
    (Command(CommandType.ENGINE_STOP), b"Relay,1#"),
    (Command(CommandType.ENGINE_RESUME), b"Relay,0#"),
    (Command(CommandType.POSITION_SINGLE), b"WHERE#"),
    (Command(CommandType.REPORT_INTERVAL, interval_s=30), b"TIMER,30,30#"),
    (Command(CommandType.REBOOT), b"RESET#"),
])
def test_commands_are_0x80_text_packets(command: Command, text: bytes) -> None:
    frame = encode_command(IMEI, command)
    assert frame == packet(0x80, bytes((4 + len(text),)) + b"\0\0\0\0" + text, 0)
    assert Gt06Framer().feed(frame) == [frame]


def test_command_errors() -> None:
    with pytest.raises(UnsupportedCommand, match=r"5\.\.18000"):
        encode_command(IMEI, Command(CommandType.REPORT_INTERVAL, interval_s=2))
    with pytest.raises(UnsupportedCommand, match="interval_s"):
        encode_command(IMEI, Command(CommandType.REPORT_INTERVAL))
    with pytest.raises(ValueError, match="device id"):
        encode_command("abc", Command(CommandType.ENGINE_STOP))


def test_reply_key_hides_only_the_time_reply_clock() -> None:
    assert CODEC.reply_key is not None
    time_reply = bytes.fromhex("78780b8a1a020304050600008d2c0d0a")
    assert CODEC.reply_key(time_reply) == time_reply[:4]
    assert CODEC.reply_key(ack(0x22, 5)) == ack(0x22, 5)


# Simulated device ---------------------------------------------------------------------------


def test_device_packets_have_valid_crcs_and_increasing_serials() -> None:
    device = Gt06Device(IMEI)
    frames = [device.login(), device.heartbeat(), device.position(FIX), device.sos(FIX)]
    s = Gt06Session(Gt06Options(strict_crc=True), lambda: CLOCK)
    for serial, frame in enumerate(frames, start=1):
        decoded = s.decode(frame)
        assert decoded.rejected is None and decoded.notes == ()
        assert decoded.replies[0].data == ack(frame[3], serial)


def test_device_alarms_and_unsupported_ones() -> None:
    device = Gt06Device(IMEI)
    s = session()
    for alarm in ALARM_CODES:
        found = [e.alarm for e in s.decode(device.alarm(alarm, FIX)).events
                 if isinstance(e, Alarm)]
        assert found == [alarm]
    with pytest.raises(ValueError, match="no alarm code"):
        device.alarm(AlarmType.BONNET, FIX)


def test_device_answers_commands() -> None:
    device = Gt06Device(IMEI)
    s = session()
    answer = device.command_answer(encode_command(IMEI, Command(CommandType.ENGINE_RESUME)), FIX)
    assert answer is not None
    assert only(s.decode(answer), CommandResult).result == "Restore fuel supply: Success!"  # type: ignore[attr-defined]
    where = device.command_answer(
        encode_command(IMEI, Command(CommandType.POSITION_SINGLE)), FIX)
    assert where is not None and where[:2] == b"\x79\x79"
    position = only(s.decode(where), Position)
    assert position.lat == pytest.approx(FIX.lat, abs=1e-6)  # type: ignore[attr-defined]
    assert device.command_answer(b"\x78\x78\x05\x01\x00\x01\xd9\xdc\r\n", FIX) is None


# Properties -------------------------------------------------------------------------------

_fixes = st.builds(
    Fix,
    fix_time=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31),
                          timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0)),
    lat=st.floats(-90, 90), lon=st.floats(-180, 180),
    speed_kmh=st.floats(0, 255), course_deg=st.floats(0, 359.4),
    valid=st.booleans(), satellites=st.integers(0, 15),
    battery_percent=st.one_of(st.none(), st.integers(0, 100)),
)


@given(fix=_fixes, buffered=st.booleans())
def test_position_round_trip(fix: Fix, buffered: bool) -> None:
    device = Gt06Device(IMEI)
    decoded = session().decode(device.report([fix], buffered=buffered))
    if not fix.valid and round(abs(fix.lat) * 1_800_000) == 0 == round(abs(fix.lon) * 1_800_000):
        assert not [e for e in decoded.events if isinstance(e, Position)]  # a zeroed block
        return
    position = only(decoded, Position)
    assert isinstance(position, Position)
    assert position.fix_time == fix.fix_time
    assert position.lat == pytest.approx(fix.lat, abs=1e-6)
    assert position.lon == pytest.approx(fix.lon, abs=1e-6)
    assert position.valid is fix.valid
    assert position.speed_kmh == round(fix.speed_kmh)
    assert position.course_deg == round(fix.course_deg) % 360
    assert position.satellites == fix.satellites
    assert position.attributes["archive"] is buffered


@given(fix=_fixes, alarm=st.sampled_from(sorted(ALARM_CODES, key=lambda a: a.value)))
def test_alarm_round_trip(fix: Fix, alarm: AlarmType) -> None:
    decoded = session().decode(Gt06Device(IMEI).alarm(alarm, fix))
    assert [e.alarm for e in decoded.events if isinstance(e, Alarm)] == [alarm]
    assert [r.after_store for r in decoded.replies] == [True]


@given(data=st.binary(max_size=600), strict=st.booleans())
@settings(max_examples=300)
def test_random_bytes_never_raise_nor_grow_the_buffer(data: bytes, strict: bool) -> None:
    framer = Gt06Framer(128)
    s = session(strict_crc=strict)
    for i in range(0, len(data), 37):
        for item in framer.feed(data[i:i + 37]):
            assert framer.buffered <= 128
            if isinstance(item, bytes):
                s.decode(item)
    s.decode(data)  # whole, unframed: still no exception
    assert framer.buffered <= 128


def _stream(fixes: list[Fix]) -> bytes:
    device = Gt06Device(IMEI)
    parts = [device.login(), device.heartbeat()]
    for i, fix in enumerate(fixes):
        parts.append(device.sos(fix) if i % 3 == 2 else device.position(fix))
    parts.append(device.command_answer(encode_command(IMEI, Command(CommandType.POSITION_SINGLE)),
                                       fixes[0]) or b"")
    return b"".join(parts)


@given(fixes=st.lists(_fixes, min_size=1, max_size=6), data=st.data())
@settings(max_examples=150)
def test_mutated_streams_never_raise(fixes: list[Fix], data: st.DataObject) -> None:
    stream = bytearray(_stream(fixes))
    for _ in range(data.draw(st.integers(1, 8))):
        index = data.draw(st.integers(0, len(stream) - 1))
        stream[index] = data.draw(st.integers(0, 255))
    framer = Gt06Framer(256)
    s = Gt06Session(Gt06Options(), lambda: CLOCK)
    for item in framer.feed(bytes(stream)):
        if isinstance(item, bytes):
            s.decode(item)
        assert framer.buffered <= 256


def _events(chunks: list[bytes]) -> tuple[list[bytes], list[object]]:
    framer = Gt06Framer()
    s = Gt06Session(Gt06Options(), lambda: CLOCK)
    frames: list[bytes] = []
    for chunk in chunks:
        frames += [f for f in framer.feed(chunk) if isinstance(f, bytes)]
    return frames, [e for f in frames for e in s.decode(f).events]


@given(fixes=st.lists(_fixes, min_size=1, max_size=5), data=st.data())
def test_any_chunking_gives_the_same_frames_and_events(fixes: list[Fix],
                                                        data: st.DataObject) -> None:
    stream = _stream(fixes)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=20))))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert _events(pieces) == _events([stream])
    assert len(_events([stream])[0]) == len(fixes) + 3


def test_any_chunking_of_wrong_length_packets() -> None:
    wifi = bytes.fromhex("787800691710231108500200cc080c4e2fa5640c4e2fa66e0d0a")
    stream = LOGIN + wifi + LOGIN
    whole = _events([stream])
    for cut in range(1, len(stream)):
        assert _events([stream[:cut], stream[cut:]]) == whole


def test_benchmark_stream_times_are_consecutive() -> None:
    # The device keeps UTC: consecutive fixes decode to consecutive times.
    device = Gt06Device(IMEI)
    s = session()
    times = [only(s.decode(device.position(Fix(fix_time=FIX.fix_time + timedelta(seconds=i),
                                                   lat=1.0, lon=2.0))), Position).fix_time  # type: ignore[attr-defined]
             for i in range(3)]
    assert times == [FIX.fix_time + timedelta(seconds=i) for i in range(3)]


@given(fix=_fixes, buffered=st.booleans(), gt06n=st.booleans())
def test_fast_path_decodes_like_the_general_path(fix: Fix, buffered: bool, gt06n: bool) -> None:
    device = Gt06Device(IMEI)
    frame = device.report([fix], buffered=buffered)
    if gt06n:  # the 0x12 layout of a GT06N: the same packet without ACC, mode and re-upload
        frame = packet(0x12, frame[4:-9], 7)
    fast = Gt06Session(Gt06Options(), lambda: CLOCK)
    general = Gt06Session(Gt06Options(), lambda: CLOCK, fast=False)
    for s in (fast, general):
        s.decode(LOGIN)
    assert fast.decode(frame) == general.decode(frame)


def test_fast_path_matches_the_general_path_on_the_corpus() -> None:
    import json
    from pathlib import Path

    corpus = Path(__file__).parent / "corpus" / "wave2-samples.jsonl"
    frames = [bytes.fromhex(r["hex"]) for r in map(json.loads, corpus.open())
              if r["protocol"] == "gt06" and "hex" in r]
    fast = Gt06Session(Gt06Options(), lambda: CLOCK)
    general = Gt06Session(Gt06Options(), lambda: CLOCK, fast=False)
    for frame in frames:
        assert fast.decode(frame) == general.decode(frame)


def test_coordinates_out_of_range_are_no_position_but_are_acked() -> None:
    frame = bytearray(Gt06Device(IMEI).position(FIX))
    frame[11:15] = (200 * 1_800_000).to_bytes(4, "big")  # latitude 200 degrees
    frame = bytearray(packet(0x22, bytes(frame[4:-6]), 9))
    for s in (session(), Gt06Session(Gt06Options(), lambda: CLOCK, fast=False)):
        s.decode(LOGIN)
        decoded = s.decode(bytes(frame))
        assert not [e for e in decoded.events if isinstance(e, Position)]
        assert isinstance(decoded.events[0], Status) and decoded.notes == ("bad_coordinates",)
        assert decoded.replies[0].data == ack(0x22, 9)
