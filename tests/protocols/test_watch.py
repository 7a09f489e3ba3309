"""The watch protocol ([3G*id*len*...]): framing, decoding, replies, commands, device frames."""

from __future__ import annotations

import random
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
from protocols.framing import DEFAULT_MAX_FRAME_BYTES
from protocols.watch import WatchDevice, commands
from protocols.watch.escape import escape, unescape
from protocols.watch.framer import WatchFramer

CODEC = get_codec("watch")
T0 = datetime(2026, 3, 1, 12, 30, 15, tzinfo=UTC)
UD = (b"[3G*4700222306*0077*UD,120316,140610,V,48.779045,N, 9.1574736,E,0.00,0.0,0.0,0,25,83,"
      b"0,0,00000000,2,255,262,1,21041,9067,121,21041,5981,116]")


def decode(frame: bytes):  # type: ignore[no-untyped-def]
    return CODEC.decode(frame)


def frames_of(out: list[bytes | Discarded]) -> list[bytes]:
    return [item for item in out if isinstance(item, bytes)]


def test_codec_registered_with_its_port() -> None:
    assert CODEC.default_port == 5093
    assert CODEC.commands == {CommandType.POSITION_SINGLE, CommandType.REPORT_INTERVAL,
                              CommandType.REBOOT}
    assert not CODEC.binary and CODEC.wire_ids("359900000000004") == ()


@pytest.mark.parametrize(("head", "verdict"), [
    (b"[3G*8800000015*0002*LK]", True),
    (b"[SG*", True),
    (b"[ZJ*", True),
    (b"[", None),
    (b"[3G", None),
    (b"[3G,", False),
    (b"[ *", False),
    (b"(", False),
    (b"+RESP:", False),
    (b"gg", False),
])
def test_detect(head: bytes, verdict: bool | None) -> None:
    assert CODEC.detect(head) is verdict


def test_detection_picks_watch_and_leaves_other_streams_alone() -> None:
    assert detect(b"[SG*8800000015*0002*LK]") == "watch"
    assert detect(b"(088047365460BR00") == "tk103"
    assert detect(b"+RESP:GTFRI,") == "gl300"


def test_link_keep_is_answered_at_once() -> None:
    decoded = decode(b"[SG*8800000015*000D*LK,50,100,100]")
    assert decoded.device_id == "8800000015"
    [event] = decoded.events
    assert isinstance(event, Heartbeat)
    assert dict(event.attributes) == {"steps": 50, "tumbles": 100, "battery_level": 100}
    [reply] = decoded.replies
    assert reply.data == b"[SG*8800000015*0002*LK]" and reply.after_store is False


def test_sequence_index_is_echoed() -> None:
    decoded = decode(b"[ZJ*014111001350304*0034*0009*LK,0,0,19]")
    assert decoded.replies[0].data == b"[ZJ*014111001350304*0034*0002*LK]"


def test_position_exact_values_and_no_reply() -> None:
    decoded = decode(UD)
    [position] = decoded.events
    assert isinstance(position, Position)
    assert position.fix_time == datetime(2016, 3, 12, 14, 6, 10, tzinfo=UTC)
    assert position.valid is False
    assert (position.lat, position.lon) == (48.779045, 9.1574736)
    assert dict(position.attributes) == {
        "rssi": 25, "battery_level": 83, "steps": 0, "status": 0, "motion": False,
        "mcc": 262, "mnc": 1, "lac": 21041, "cell_id": 9067, "cell_count": 2}
    assert decoded.replies == ()


@pytest.mark.parametrize(("lat", "ns", "lon", "ew", "expected"), [
    ("38.000000", "N", "-9.000000", "W", (38.0, -9.0)),
    ("38.000000", "S", "9.000000", "W", (-38.0, -9.0)),
    ("-33.480366", "N", "-70.7630692", "E", (-33.480366, -70.7630692)),
    ("52.745450", "N", "0.369512", "", (52.74545, 0.369512)),
])
def test_hemisphere_letters_make_values_negative_never_positive(
        lat: str, ns: str, lon: str, ew: str, expected: tuple[float, float]) -> None:
    body = f"UD,100116,153723,A,{lat},{ns},{lon},{ew},0.44,299.3,0.0,7,100,86,0,0,00000008,0,0"
    frame = f"[3G*2256002206*{len(body):04X}*{body}]".encode()
    [position] = decode(frame).events
    assert isinstance(position, Position)
    assert (position.lat, position.lon) == pytest.approx(expected)


def test_sos_alarm_carries_its_position_and_is_acked_after_store() -> None:
    frame = (b"[3G*6907919734*003e*AL_LTE,170525,214118,V,0,N,0,E,0,0,0,0,0,22,0,0,00010000,"
             b"0,0,0]")
    decoded = decode(frame)
    position, alarm = decoded.events
    assert isinstance(position, Position) and isinstance(alarm, Alarm)
    assert alarm.alarm is AlarmType.SOS and alarm.position == position
    assert alarm.raw_code == "AL_LTE,00010000"
    assert position.attributes["alarm"] == "sos"
    [reply] = decoded.replies
    assert reply.data == b"[3G*6907919734*0002*AL]" and reply.after_store is True


def test_sos_is_reported_even_when_a_state_bit_comes_first_in_the_table() -> None:
    """Bit 0 (low battery) set with bit 16 (SOS): both alarms, SOS first."""
    body = "AL,220414,134652,A,22.571707,N,113.8613968,E,0.1,0.0,100,7,60,90,1000,50,00010001,0"
    decoded = decode(f"[SG*8800000015*{len(body):04X}*{body}]".encode())
    alarms = [e.alarm for e in decoded.events if isinstance(e, Alarm)]
    assert alarms == [AlarmType.SOS, AlarmType.LOW_BATTERY]


def test_alarm_message_without_alarm_bits_is_a_general_alarm() -> None:
    body = "AL,220414,134652,A,22.571707,N,113.8613968,E,0.1,0.0,100,7,60,90,1000,50,00000000,0"
    decoded = decode(f"[SG*8800000015*{len(body):04X}*{body}]".encode())
    assert [e.alarm for e in decoded.events if isinstance(e, Alarm)] == [AlarmType.GENERAL]


def test_position_messages_never_raise_alarms() -> None:
    """UD carries the state bits too; only AL messages are alarms (the device waits for AL's
    ack and repeats it; a UD's low-battery bit would otherwise raise an alarm per position)."""
    body = "UD,220414,134652,A,22.571707,N,113.8613968,E,0.1,0.0,100,7,60,90,1000,50,00010001,0"
    decoded = decode(f"[SG*8800000015*{len(body):04X}*{body}]".encode())
    assert [type(e) for e in decoded.events] == [Position]
    assert decoded.events[0].attributes["status"] == 0x10001  # type: ignore[union-attr]


@pytest.mark.parametrize(("frame", "reply", "event"), [
    (b"[3G*8800000015*0004*INIT]", b"[3G*8800000015*0006*INIT,1]", Login),
    (b"[3G*8800000015*0003*TKQ]", b"[3G*8800000015*0003*TKQ]", Status),
    (b"[3G*8800000015*0004*TKQ2]", b"[3G*8800000015*0004*TKQ2]", Status),
])
def test_handshakes_are_answered_at_once(frame: bytes, reply: bytes, event: type) -> None:
    decoded = decode(frame)
    assert [type(e) for e in decoded.events] == [event]
    assert [(r.data, r.after_store) for r in decoded.replies] == [(reply, False)]


def test_voice_chunk_is_acked_after_store() -> None:
    frame = b"[3G*8800000015*0017*JXTK,1,voice_1,2,3,#!AMR\n" + bytes(range(20)) + b"]"
    decoded = decode(frame)
    [status] = decoded.events
    assert isinstance(status, Status)
    assert dict(status.attributes) == {"voice_chunk": 2, "voice_chunks": 3, "audio_bytes": 26}
    assert [(r.data, r.after_store) for r in decoded.replies] == [
        (b"[3G*8800000015*0007*JXTKR,1]", True)]


@pytest.mark.parametrize(("frame", "values"), [
    (b"[3G*4700609403*0013*bphrt,120,79,73,,,,]",
     {"pressure_high": 120, "pressure_low": 79, "heart_rate": 73}),
    (b"[CS*8800000015*0008*PULSE,72]", {"heart_rate": 72}),
    (b"[ZJ*5678901234*0001*0009*TEMP,36.5]", {"temp1": 36.5}),
    (b"[3G*5678901234*000d*btemp2,1,36.8]", {"temp1": 36.8}),
    (b"[3G*5678901234*000d*btemp2,0,36.8]", {}),
    (b"[3G*5678901234*000d*oxygen,1,97]", {"blood_oxygen": 97}),
])
def test_health_values(frame: bytes, values: dict[str, object]) -> None:
    decoded = decode(frame)
    [status] = decoded.events
    assert isinstance(status, Status) and dict(status.attributes) == values
    assert decoded.replies == ()


def test_command_answers_are_command_results() -> None:
    [result] = decode(b"[3G*8800000015*0002*CR]").events
    assert isinstance(result, CommandResult) and result.command == "CR"
    [result] = decode(b"[3G*8800000015*0006*UPLOAD]").events
    assert isinstance(result, CommandResult) and result.command == "UPLOAD"


def test_unknown_types_are_kept_as_status() -> None:
    [status] = decode(b"[3G*8800000015*0008*NEWTYPE,7]").events
    assert isinstance(status, Status)
    assert dict(status.attributes) == {"message_type": "NEWTYPE", "text": "7"}


@pytest.mark.parametrize(("frame", "reason"), [
    (b"[3G*8800000015*0002*LK", "starts with '[' and ends with ']'"),
    (b"[3G*8800000015]", "maker*id*length*content"),
    (b"[3G*1234567890123456*0002*LK]", "device id must be 1 to 15"),
    (b"[3G*88000 00015*0002*LK]", "device id must be 1 to 15"),
    (b"[3G*8800000015*00X2*LK]", "length field must be four hex digits"),
    (b"[3G*8800000015*0002*L K]", "message type"),
    (b"[3G*8800000015*0010*UD,1,2,3]", "UD position has 3 fields, expected at least 16"),
    (b"[3G*8800000015*0010*UD,320116,153723,A,38,N,9,E,0,0,0,7,100,86,0,0,0]",
     "not a calendar time"),
    (b"[3G*8800000015*0010*UD,100116,153723,A,x,N,9,E,0,0,0,7,100,86,0,0,0]",
     "latitude 'x' is not a number"),
    (b"[3G*8800000015*0010*UD,100116,153723,A,95,N,9,E,0,0,0,7,100,86,0,0,0]",
     "coordinates out of range"),
    (b"[3G*8800000015*0010*UD,100116,153723,X,38,N,9,E,0,0,0,7,100,86,0,0,0]",
     "validity flag must be A or V"),
    (b"[3G*8800000015*0010*UD,100116,153723,A,38,N,9,E,0,0,0,7,100,86,0,0,zz]",
     "status 'zz' is not hex"),
    (b"[3G*8800000015*0010*UD,100116,153723,A,38,N,9,E,fast,0,0,7,100,86,0,0,0]",
     "speed 'fast' is not a number"),
    (b"[3G*8800000015*0008*PULSE,x]", "are not numbers"),
])
def test_rejections_say_why(frame: bytes, reason: str) -> None:
    rejected = decode(frame).rejected
    assert rejected is not None and reason in rejected.reason, rejected


def test_rejected_frame_keeps_the_id_it_named() -> None:
    decoded = decode(b"[3G*8800000015*0010*UD,1,2]")
    assert decoded.device_id == "8800000015" and decoded.replies == ()


def test_lenient_calendar_for_devices_without_time() -> None:
    body = "UD,000100,000060,V,0,N,0,E,0,0,0,0,0,22,0,0,00000000,0,0"
    [position] = decode(f"[3G*8800000015*{len(body):04X}*{body}]".encode()).events
    assert isinstance(position, Position)
    assert position.fix_time == datetime(1999, 12, 31, 0, 1, 0, tzinfo=UTC)


def test_unreadable_network_block_keeps_the_fix_with_a_note() -> None:
    body = ("UD2,240123,162011,A,54.427621,N,6.409190,W,0.00,0,0,8,19,88,0,0,00000000,"
            "1,1,FFFF,FFFF,FFFE,3B882A2,132,,00")
    decoded = decode(f"[SG*9059011020*{len(body):04x}*{body}]".encode())
    [position] = decoded.events
    assert isinstance(position, Position) and "mcc" not in position.attributes
    assert decoded.notes == ("bad_network_block",)


# Commands --------------------------------------------------------------------------------

@pytest.mark.parametrize(("command", "wire"), [
    (Command(CommandType.POSITION_SINGLE), b"[CS*8800000015*0002*CR]"),
    (Command(CommandType.REPORT_INTERVAL, interval_s=600), b"[CS*8800000015*000a*UPLOAD,600]"),
    (Command(CommandType.REBOOT), b"[CS*8800000015*0005*RESET]"),
])
def test_commands(command: Command, wire: bytes) -> None:
    assert CODEC.encode_command("8800000015", command) == wire


def test_command_errors_say_what_to_do() -> None:
    with pytest.raises(UnsupportedCommand, match="no engine_stop command"):
        CODEC.encode_command("8800000015", Command(CommandType.ENGINE_STOP))
    with pytest.raises(UnsupportedCommand, match=r"1\.\.86400"):
        CODEC.encode_command("8800000015", Command(CommandType.REPORT_INTERVAL, interval_s=0))
    with pytest.raises(UnsupportedCommand, match="needs interval_s"):
        CODEC.encode_command("8800000015", Command(CommandType.REPORT_INTERVAL))
    with pytest.raises(ValueError, match="1 to 15 letters or digits"):
        CODEC.encode_command("88000*15", Command(CommandType.REBOOT))
    with pytest.raises(UnsupportedCommand, match="IANA name"):
        commands.set_timezone("8800000015", "Mars/Olympus")
    with pytest.raises(UnsupportedCommand, match="without brackets"):
        commands.text_command("8800000015", "PHB,]")
    with pytest.raises(UnsupportedCommand, match=r"1\.\.3"):
        commands.sos_number("8800000015", 4, "123")


def test_other_commands() -> None:
    assert commands.text_command("8800000015", "POWEROFF") == b"[CS*8800000015*0008*POWEROFF]"
    assert commands.set_timezone("8800000015", "America/Sao_Paulo") == \
        b"[CS*8800000015*0006*LZ,,-3]"
    assert commands.set_timezone("8800000015", "UTC+8", 1) == b"[CS*8800000015*0007*LZ,1,+8]"


# Escaping and framing ----------------------------------------------------------------------

@given(st.binary(max_size=200))
def test_escape_round_trip(data: bytes) -> None:
    escaped = escape(data)
    assert not set(escaped) & set(b"[],*")
    assert unescape(escaped) == data


def test_unknown_escape_is_kept_as_it_is() -> None:
    assert unescape(b"Wifi}x,}") == b"Wifi}x,}"
    assert unescape(b"}}\x01\x02") == b"}}\x02"


def test_framer_reports_garbage_and_splits_merged_frames() -> None:
    framer = WatchFramer()
    out = framer.feed(b"junk[SG*8800000015*0002*LK][SG*88000")
    assert out == [Discarded("bytes outside a frame", 4), b"[SG*8800000015*0002*LK]"]
    assert framer.feed(b"00015*0002*LK]") == [b"[SG*8800000015*0002*LK]"]
    assert framer.buffered == 0


def test_framer_skips_a_bracket_that_starts_no_frame() -> None:
    framer = WatchFramer()
    assert frames_of(framer.feed(b"[oops[SG*8800000015*0002*LK]")) == [
        b"[SG*8800000015*0002*LK]"]


def test_framer_counts_balanced_brackets_in_wifi_names() -> None:
    frame = b"[3G*8800000015*0020*UD,x,[LG_Wall-Mount A/C]e725,1]"
    assert frames_of(WatchFramer().feed(frame + b"[3G*8800000015*0002*LK]")) == [
        frame, b"[3G*8800000015*0002*LK]"]


def test_length_field_rescues_an_unbalanced_bracket() -> None:
    content = b"UD,x,[Cafe,1"
    frame = b"[3G*8800000015*%04x*%s]" % (len(content), content)
    framer = WatchFramer()
    assert frames_of(framer.feed(frame + b"[3G*8800000015*0002*LK]")) == [
        frame, b"[3G*8800000015*0002*LK]"]


def test_wrong_length_field_does_not_matter_when_brackets_balance() -> None:
    frame = b"[SG*9051007430*006C*LK,0,0,5]"
    assert frames_of(WatchFramer().feed(frame + frame)) == [frame, frame]


def test_framer_unescapes_binary_payloads() -> None:
    wire = b"[CS*1234567890*000e*TK,#!AMR}\x01}\x02}\x03}\x04}\x05\xff]"
    assert frames_of(WatchFramer().feed(wire)) == [b"[CS*1234567890*000e*TK,#!AMR}[],*\xff]"]


def test_framer_drops_over_long_frame_and_recovers() -> None:
    framer = WatchFramer(64)
    out = framer.feed(b"[3G*8800000015*0100*TK," + b"x" * 200)
    assert out and all(isinstance(item, Discarded) for item in out)
    assert framer.buffered <= 64
    assert frames_of(framer.feed(b"][3G*8800000015*0002*LK]")) == [b"[3G*8800000015*0002*LK]"]


def test_framer_stays_bounded_on_a_stream_of_frame_starts() -> None:
    framer = WatchFramer(4096)
    for _ in range(2000):
        framer.feed(b"[3G*")
        assert framer.buffered <= 4096


# Device ----------------------------------------------------------------------------------

def fix(**changes: object) -> Fix:
    values: dict[str, object] = {"fix_time": T0, "lat": -33.9249, "lon": 18.4241,
                                 "speed_kmh": 12.5, "course_deg": 270.0, "altitude_m": 15.0,
                                 "satellites": 9}
    values.update(changes)
    return Fix(**values)  # type: ignore[arg-type]


def test_device_frames_are_byte_exact() -> None:
    device = WatchDevice("359900000000004", device_id="8800000015")
    assert device.login() == b"[3G*8800000015*0002*LK]"
    assert device.heartbeat() == b"[3G*8800000015*000A*LK,0,0,100]"
    body = ("010326,123015,A,33.924900,S,18.424100,E,12.50,270.0,15.0,9,100,100,0,0,"
            "00000000,0,0")
    assert device.position(fix()) == f"[3G*8800000015*{len(body) + 3:04X}*UD,{body}]".encode()
    sos = device.sos(fix())
    assert b"*AL," in sos and b",00010000,0,0]" in sos


def test_device_with_sequence_index() -> None:
    device = WatchDevice("359900000000004", maker="ZJ", index=True)
    assert device.login() == b"[ZJ*359900000000004*0001*0002*LK]"
    decoded = CODEC.decode(device.login())
    assert decoded.replies[0].data == b"[ZJ*359900000000004*0002*0002*LK]"


def test_device_answers_commands_for_it_only() -> None:
    device = WatchDevice("359900000000004")
    request = CODEC.encode_command("359900000000004", Command(CommandType.POSITION_SINGLE))
    answer = device.command_answer(request, fix())
    assert answer is not None
    echo, position = frames_of(CODEC.framer().feed(answer))
    assert echo == b"[3G*359900000000004*0002*CR]"
    assert isinstance(CODEC.decode(position).events[0], Position)
    other = CODEC.encode_command("8800000015", Command(CommandType.POSITION_SINGLE))
    assert device.command_answer(other, fix()) is None
    assert device.command_answer(b"garbage", fix()) is None


@pytest.mark.parametrize("alarm", [AlarmType.SOS, AlarmType.LOW_BATTERY, AlarmType.REMOVING,
                                   AlarmType.FALL_DOWN, AlarmType.GEOFENCE_EXIT,
                                   AlarmType.GEOFENCE_ENTER, AlarmType.POWER_CUT,
                                   AlarmType.GENERAL])
def test_device_alarms_decode_as_themselves(alarm: AlarmType) -> None:
    frame = WatchDevice("359900000000004").alarm(alarm, fix())
    decoded = CODEC.decode(frame)
    assert [e.alarm for e in decoded.events if isinstance(e, Alarm)] == [alarm]
    assert decoded.replies[0].after_store is True


def test_device_refuses_alarms_a_watch_has_not() -> None:
    with pytest.raises(ValueError, match="cannot send a overspeed alarm"):
        WatchDevice("359900000000004").alarm(AlarmType.OVERSPEED, fix())


# Properties ------------------------------------------------------------------------------

_fixes = st.builds(
    Fix,
    fix_time=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31),
                          timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0)),
    lat=st.floats(-90, 90), lon=st.floats(-180, 180),
    speed_kmh=st.floats(0, 400), course_deg=st.floats(0, 359.9),
    altitude_m=st.floats(-400, 9000), valid=st.booleans(),
    satellites=st.integers(0, 40), battery_percent=st.integers(0, 100),
)


def _assert_same_fix(position: Position, sent: Fix) -> None:
    assert position.fix_time == sent.fix_time
    assert position.valid is sent.valid
    assert position.lat == pytest.approx(sent.lat, abs=1e-6)
    assert position.lon == pytest.approx(sent.lon, abs=1e-6)
    assert position.speed_kmh == pytest.approx(sent.speed_kmh, abs=0.006)
    assert min(abs(position.course_deg - sent.course_deg),  # type: ignore[operator]
               360 - abs(position.course_deg - sent.course_deg)) <= 0.06  # type: ignore[operator]
    assert position.altitude_m == pytest.approx(sent.altitude_m, abs=0.06)
    assert position.satellites == sent.satellites
    assert position.attributes["battery_level"] == sent.battery_percent


@given(sent=_fixes, buffered=st.booleans())
def test_position_round_trip(sent: Fix, buffered: bool) -> None:
    device = WatchDevice("359900000000004")
    frame = device.report([sent], buffered=buffered)
    decoded = CODEC.decode(frame)
    [position] = decoded.events
    assert isinstance(position, Position) and decoded.replies == ()
    _assert_same_fix(position, sent)
    assert frame.startswith(b"[3G*359900000000004*")
    assert (b"*UD2," in frame) is buffered


@given(sent=_fixes, alarm=st.sampled_from([AlarmType.SOS, AlarmType.FALL_DOWN,
                                           AlarmType.REMOVING, AlarmType.LOW_BATTERY]))
def test_alarm_round_trip(sent: Fix, alarm: AlarmType) -> None:
    decoded = CODEC.decode(WatchDevice("359900000000004").alarm(alarm, sent))
    position, event = decoded.events
    assert isinstance(position, Position) and isinstance(event, Alarm)
    assert event.alarm is alarm
    _assert_same_fix(position, sent)


@given(device_id=st.text("0123456789", min_size=10, max_size=15),
       maker=st.sampled_from(["3G", "SG", "CS", "ZJ"]), index=st.booleans())
def test_heartbeat_round_trip(device_id: str, maker: str, index: bool) -> None:
    device = WatchDevice("359900000000004", device_id=device_id, maker=maker, index=index)
    for frame in (device.login(), device.heartbeat()):
        decoded = CODEC.decode(frame)
        assert isinstance(decoded.events[0], Heartbeat) and decoded.device_id == device_id
        assert decoded.replies[0].data.startswith(f"[{maker}*{device_id}*".encode())
        assert decoded.replies[0].data.endswith(b"*0002*LK]")


@given(fixes=st.lists(_fixes, min_size=1, max_size=5), data=st.data())
def test_any_chunking_gives_the_same_frames_and_events(fixes: list[Fix],
                                                        data: st.DataObject) -> None:
    device = WatchDevice("359900000000004")
    stream = device.login() + b"".join(device.position(f) for f in fixes) + device.sos(fixes[0])
    whole = frames_of(WatchFramer().feed(stream))
    assert len(whole) == len(fixes) + 2
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    framer = WatchFramer()
    pieces: list[bytes] = []
    last = 0
    for cut in [*cuts, len(stream)]:
        pieces.extend(frames_of(framer.feed(stream[last:cut])))
        last = cut
    assert pieces == whole
    assert [CODEC.decode(f).events for f in pieces] == [CODEC.decode(f).events for f in whole]


@settings(max_examples=300)
@given(st.binary(max_size=600))
def test_random_bytes_never_raise_nor_overflow(blob: bytes) -> None:
    framer = WatchFramer(128)
    for item in framer.feed(blob):
        assert framer.buffered <= 128
        if isinstance(item, bytes):
            CODEC.decode(item)
    CODEC.decode(blob)
    assert framer.buffered <= 128


@settings(max_examples=300)
@given(seed=st.integers(0, 2**32), count=st.integers(1, 8))
def test_mutated_frames_never_raise(seed: int, count: int) -> None:
    rng = random.Random(seed)
    device = WatchDevice("359900000000004", index=rng.random() < 0.5)
    sample = fix(lat=rng.uniform(-90, 90), lon=rng.uniform(-180, 180))
    frame = bytearray(rng.choice([device.position(sample), device.sos(sample),
                                  device.heartbeat(), UD]))
    for _ in range(count):
        op = rng.randrange(3)
        at = rng.randrange(len(frame))
        if op == 0:
            frame[at] = rng.randrange(256)
        elif op == 1:
            del frame[at]
        else:
            frame.insert(at, rng.choice(b"[]*,}0A-."))
    framer = WatchFramer(DEFAULT_MAX_FRAME_BYTES)
    for item in framer.feed(bytes(frame)) + framer.feed(b"[3G*1*0002*LK]"):
        if isinstance(item, bytes):
            decoded = CODEC.decode(item)
            assert decoded.events or decoded.replies == ()
    assert framer.buffered <= DEFAULT_MAX_FRAME_BYTES
    CODEC.decode(bytes(frame))


# The shortcuts read what the general paths read ---------------------------------------------

_numbers = st.sampled_from(["", "0", "00", "12", " 9.1574736", "-9.000000", "22.0", "1e2",
                            "nan", "inf", "-1", "360", "360.1", "95", "x", "0x1", "1_0"])


@given(maker=st.sampled_from(["3G", "SG", "ZJ", "cs"]), ident=st.text("0123456789AZaz",
       min_size=1, max_size=16), length=st.text("0123456789abcdefX", min_size=4, max_size=4),
       kind=st.sampled_from(["UD", "UD_LTE", "AL", "LK", "TEMP", "9X", "A-B", "0001"]),
       rest=st.text("0123456789,*]AV.", max_size=20))
def test_header_shortcut_agrees_with_the_general_parse(maker: str, ident: str, length: str,
                                                      kind: str, rest: str) -> None:
    from protocols.watch.decoder import _COMMON_HEADER, parse_header, split_header

    frame = f"[{maker}*{ident}*{length}*{kind},{rest}]".encode()
    if _COMMON_HEADER.match(frame) is None:
        return
    assert split_header(frame) == parse_header(frame)


@given(fields=st.lists(_numbers, min_size=16, max_size=20),
       date=st.sampled_from(["010326", "320126", "000000", "01032", ""]),
       time=st.sampled_from(["123015", "246060", "000060", "12301", "abcdef"]),
       flag=st.sampled_from(["A", "V", "X", ""]), ns=st.sampled_from(["N", "S", "", "Q"]),
       ew=st.sampled_from(["E", "W", "", "Q"]),
       status=st.sampled_from(["00010000", "0", "zz", "", "FFFFFFFF"]))
def test_position_shortcut_agrees_with_the_checked_parse(
        fields: list[str], date: str, time: str, flag: str, ns: str, ew: str,
        status: str) -> None:
    from protocols.watch.positions import _checked, _fast

    fields[0:3] = [date, time, flag]
    fields[4], fields[6], fields[15] = ns, ew, status
    try:
        fast = _fast("8800000015", list(fields))
    except (ValueError, OverflowError):
        return
    assert _checked("8800000015", "UD", list(fields)) == fast


def test_position_shortcut_takes_the_usual_record() -> None:
    from protocols.watch.positions import _checked, _fast

    fields = UD.decode()[23:-1].split(",")
    assert _fast("4700222306", fields) == _checked("4700222306", "UD", fields)


@given(sent=_fixes, command=st.sampled_from([
    Command(CommandType.POSITION_SINGLE), Command(CommandType.REBOOT),
    Command(CommandType.REPORT_INTERVAL, interval_s=60)]),
    device_id=st.text("0123456789", min_size=10, max_size=15))
def test_command_answer_round_trip(sent: Fix, command: Command, device_id: str) -> None:
    device = WatchDevice("359900000000004", device_id=device_id)
    request = CODEC.encode_command(device_id, command)
    answer = device.command_answer(request, sent)
    assert answer is not None
    decoded = [CODEC.decode(f) for f in frames_of(CODEC.framer().feed(answer))]
    result = decoded[0].events[0]
    assert isinstance(result, CommandResult) and result.device_id == device_id
    assert result.command == request.split(b"*")[3].split(b",")[0].rstrip(b"]").decode()
    if command.type is CommandType.POSITION_SINGLE:
        [position] = decoded[1].events
        assert isinstance(position, Position)
        _assert_same_fix(position, sent)
    else:
        assert len(decoded) == 1


@settings(max_examples=300)
@given(parts=st.lists(st.sampled_from([
    b"[3G*8800000015*0002*LK]", b"[ZJ*014111001350304*0034*0009*LK,0,0,19]", UD, b"junk",
    b"[", b"]", b"[3G", b"[3G*1*0005*A[B]C]", b"[3G*1*0004*A[BC]", b"}\x03", b" \r\n", b"*",
    b"[SG*8800000015*0100*TK," + bytes(range(0x20, 0x60)), b"\x00"]), max_size=14),
    data=st.data())
def test_inline_loop_cuts_what_the_general_loop_cuts(parts: list[bytes],
                                                     data: st.DataObject) -> None:
    """WatchFramer.feed shortcuts BoundedFramer.feed; both give the same outputs."""
    from protocols.framing import BoundedFramer

    stream = b"".join(parts)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    fast, general = WatchFramer(96), WatchFramer(96)
    got: list[bytes | Discarded] = []
    want: list[bytes | Discarded] = []
    last = 0
    for cut in [*cuts, len(stream)]:
        got += fast.feed(stream[last:cut])
        want += BoundedFramer.feed(general, stream[last:cut])
        last = cut
    assert got == want
    assert fast.buffered == general.buffered <= 96
