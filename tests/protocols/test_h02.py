"""h02 (`*HQ,...#` text, `$` binary): framing, each message type, the status word, replies,
options, commands, the simulated device, and properties over random input."""

from __future__ import annotations

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
    Decoded,
    Discarded,
    Fix,
    Heartbeat,
    Position,
    Status,
    UnsupportedCommand,
    detect,
    get_codec,
)
from protocols.h02 import (
    CODEC,
    H02Device,
    H02Framer,
    H02Options,
    encode_command,
    encode_command_at,
)
from protocols.h02.session import H02Session
from protocols.h02.status import ALARM_BITS

IMEI = "353588020068342"
CLOCK = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)
SOS_V1 = (b"*HQ,353588020068342,V1,084436,A,3257.01525,N,00655.03865,W,57.78,40,011216,"
          b"FFFBFFFF,25c,a, 154,b04c#")
BINARY_SHORT = bytes.fromhex("2441060116601245431311165035313006004318210e000000fffffbffff0024")
BINARY_LONG = bytes.fromhex("24410600082621532131081504419390060740418306000000fffffbfdff00150"
                            "60000002c02dc0c000000001f")
FIX = Fix(fix_time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), lat=-33.868820, lon=151.209290,
          speed_kmh=37.04, course_deg=123.0)


def session(ack: bool = False) -> H02Session:
    return H02Session(H02Options(ack=ack), lambda: CLOCK)


def only(decoded: Decoded, kind: type) -> object:
    found = [e for e in decoded.events if isinstance(e, kind)]
    assert len(found) == 1, decoded.events
    return found[0]


# Codec, detection ---------------------------------------------------------------------------


def test_codec_registered_on_the_reference_port() -> None:
    assert get_codec("h02") is CODEC
    assert CODEC.default_port == 5013
    assert CODEC.commands == frozenset({CommandType.ENGINE_STOP, CommandType.ENGINE_RESUME,
                                        CommandType.REPORT_INTERVAL})


@pytest.mark.parametrize(("head", "verdict"), [
    (b"*HQ,", True), (b"*TH,2020", True), (b"*hq,", True), (b"*", None), (b"*H", None),
    (b"*1Q,", False), (b"*HQ;", False), (BINARY_SHORT[:12], True), (BINARY_SHORT[:5], None),
    (b"$GPRMC,", False), (b"$GNGGA,1", False), (b"$AB,", False), (b"$AB", None), (b"(0880", False),
])
def test_detection(head: bytes, verdict: bool | None) -> None:
    assert CODEC.detect(head) is verdict


def test_detection_among_all_protocols() -> None:
    assert detect(SOS_V1) == "h02"
    assert detect(BINARY_SHORT) == "h02"
    assert detect(b"$GPRMC,123519,A,4807.038,N") == "nmea"


# Text messages ------------------------------------------------------------------------------


def test_v1_position_exact_values_and_sos() -> None:
    decoded = session().decode(SOS_V1)
    position = only(decoded, Position)
    assert isinstance(position, Position)
    assert position.fix_time == datetime(2016, 12, 1, 8, 44, 36, tzinfo=UTC)
    assert position.lat == pytest.approx(32.9502542, abs=1e-6)
    assert position.lon == pytest.approx(-6.9173108, abs=1e-6)
    assert position.speed_kmh == pytest.approx(57.78 * 1.852)
    assert position.course_deg == 40.0 and position.valid
    assert position.attributes["io1"] == "25c" and position.attributes["io3"] == "154"
    alarm = only(decoded, Alarm)
    assert alarm.alarm is AlarmType.SOS and alarm.position == position  # type: ignore[attr-defined]
    assert [(r.data, r.after_store) for r in decoded.replies] == [
        (b"*HQ,353588020068342,V4,V1,20260203040506#", True)]


@pytest.mark.parametrize(("status", "alarm"), [
    ("FFFFFFFE", AlarmType.VIBRATION), ("FFFFFFFD", AlarmType.SOS),
    ("FFFBFFFF", AlarmType.SOS), ("FFFFFFFB", AlarmType.OVERSPEED),
    ("FFF7FFFF", AlarmType.POWER_CUT), ("FFFFFFFC", AlarmType.VIBRATION),  # first match only
    ("FFFFFFFF", None),
])
def test_status_word_alarms(status: str, alarm: AlarmType | None) -> None:
    frame = f"*HQ,{IMEI},V1,121557,A,2323.3408,S,04802.8926,W,0.1,158,241115,{status}#"
    decoded = session().decode(frame.encode())
    assert [e.alarm for e in decoded.events if isinstance(e, Alarm)] == (
        [alarm] if alarm else [])
    ignition = only(decoded, Position).attributes["ignition"]  # type: ignore[attr-defined]
    assert ignition is bool(int(status, 16) & (1 << 10))


def test_other_position_types_get_r12_only_with_ack() -> None:
    frame = b"*HQ,9180271064,V5,091233,V,2348.8912,N,09021.3302,E,000.00,000,051219,FFFFBBFF#"
    assert session().decode(frame).replies == ()
    [reply] = session(ack=True).decode(frame).replies
    assert (reply.data, reply.after_store) == (b"*HQ,9180271064,R12,040506#", True)


def test_six_value_extension() -> None:
    frame = (b"*HQ,4106012736,V1,224434,A,1827.3855,N,06705.7577,W,000.00,000,100117,"
             b"FFFFFBFF,12345,-5,12.5,230,1a2b,3c4d#")
    position = only(session().decode(frame), Position)
    assert isinstance(position, Position)
    assert position.altitude_m == 230.0
    assert {k: position.attributes[k] for k in ("odometer", "temp1", "fuel", "lac", "cid")} == {
        "odometer": 12345, "temp1": -5, "fuel": 12.5, "lac": 0x1A2B, "cid": 0x3C4D}


def test_v4_answer_is_a_command_result_and_a_position() -> None:
    frame = (b"*TH,2020916012,V4,S20,ERROR,130305,050316,A,2212.8745,N,11346.6574,E,14.28,028,"
             b"220902,FFFFFBFF#")
    decoded = session().decode(frame)
    result = only(decoded, CommandResult)
    assert (result.command, result.result) == ("S20", "S20,ERROR,130305")  # type: ignore[attr-defined]
    assert only(decoded, Position).fix_time == datetime(2002, 9, 22, 5, 3, 16, tzinfo=UTC)  # type: ignore[attr-defined]
    assert decoded.replies == ()


def test_heartbeat_is_echoed_at_once() -> None:
    decoded = session(ack=True).decode(b"*HQ,135790246811220,HTBT,100#")
    assert only(decoded, Heartbeat).attributes["battery_level"] == 100  # type: ignore[attr-defined]
    assert [(r.data, r.after_store) for r in decoded.replies] == [
        (b"*HQ,135790246811220,HTBT#", False)]
    assert session().decode(b"*XY,123456,V0#").replies[0].data == b"*XY,123456,V0#"


def test_nbr_cells_are_a_status_answered_after_store() -> None:
    frame = (b"*HQ,7401004662,NBR,160453,234,10,0,2,21580,27766,-67,21580,27766,-67,291019,"
             b"FFFFFBFF,6#")
    decoded = session().decode(frame)
    status = only(decoded, Status)
    assert status.event_time == datetime(2019, 10, 29, 16, 4, 53, tzinfo=UTC)  # type: ignore[attr-defined]
    assert status.attributes["cells"] == "234,10,21580,27766,-67;234,10,21580,27766,-67"  # type: ignore[attr-defined]
    assert [(r.data, r.after_store) for r in decoded.replies] == [
        (b"*HQ,7401004662,V4,NBR,20260203040506#", True)]


def test_link_v3_vp1_sms() -> None:
    link = only(session(ack=True).decode(b"*HQ,1700086468,LINK,180902,15,0,84,120,3,240517,"
                                         b"FFFFFBFF#"), Status)
    assert link.attributes["battery_level"] == 84 and link.attributes["steps"] == 120  # type: ignore[attr-defined]
    v3 = only(session().decode(b"*HQ,353111080001055,V3,044855,28403,01,001450,011473,158,"
                               b"-62,0292,0,X,030817,FFFFFBFF#"), Status)
    assert v3.attributes["battery"] == 0x292 and v3.attributes["cells"] == "284,3,1450,11473,"  # type: ignore[attr-defined]
    vp1 = only(session().decode(b"*hq,356327080425330,VP1,A,2702.7245,S,15251.9311,E,0.48,"
                                b"0.0000,080917#"), Position)
    assert vp1.fix_time == datetime(2017, 9, 8, tzinfo=UTC)  # type: ignore[attr-defined]
    sms = only(session().decode(b"*HQ,5226073533,SMS,IP:1.2.3.4 5013,UT:30#"), CommandResult)
    assert sms.result == "IP:1.2.3.4 5013,UT:30"  # type: ignore[attr-defined]


def test_missing_date_takes_the_server_time() -> None:
    frame = b"*HQ,353505220873067,V1,,V,4605.75732,N,01430.73863,E,0.00,0,,FFFFFFEF,125#"
    position = only(session().decode(frame), Position)
    assert position.fix_time == CLOCK  # type: ignore[attr-defined]
    assert position.attributes["time_from_server"] is True  # type: ignore[attr-defined]


def test_message_without_coordinates_keeps_its_status_word() -> None:
    frame = b"*HQ,353505510948929,V1,,V,,N,,E,0.00,0,,FFFFFFFD#"
    decoded = session().decode(frame)
    assert only(decoded, Alarm).alarm is AlarmType.SOS  # type: ignore[attr-defined]
    assert not [e for e in decoded.events if isinstance(e, Position)] and decoded.replies == ()


def test_empty_id_is_the_connection_s_device() -> None:
    s = session()
    s.decode(SOS_V1)
    decoded = s.decode(b"*HQ,,V1,173212,A,2225.78879,S,02829.19021,E,0.00,0,290418,FFFFFBFF#")
    assert decoded.device_id == IMEI and decoded.replies == ()
    assert session().decode(b"*HQ,,V1,173212,A,2225.7,S,02829.1,E,0,0,290418,FFFFFBFF#"
                            ).device_id is None


@pytest.mark.parametrize(("frame", "reason"), [
    (b"*HQ,4109198974,#", "type"),
    (b"*HQ,356327080425330,XT,1,100#", "type 'XT'"),
    (b"*HQ,12ab,V1,#", "device id"),
    (b"*HQ,1234567890,V1,121557,A,9923.3408,N,04802.8926,W,0.1,158,241115,FFFFFFFF#",
     "latitude"),
    (b"*HQ,1234567890,V1,121557,Q,2323.3408,N,04802.8926,W,0.1,158,241115,FFFFFFFF#",
     "validity"),
    (b"$1234", "shorter"),
    (b"hello", "not an h02 frame"),
])
def test_rejections_say_why(frame: bytes, reason: str) -> None:
    decoded = session().decode(frame)
    assert decoded.rejected is not None and reason in decoded.rejected.reason
    assert "Error" not in decoded.rejected.reason


# Binary -----------------------------------------------------------------------------------


def test_binary_position_exact_values() -> None:
    decoded = session().decode(BINARY_LONG)
    position = only(decoded, Position)
    assert isinstance(position, Position)
    assert position.device_id == "4106000826"
    assert position.fix_time == datetime(2015, 8, 31, 21, 53, 21, tzinfo=UTC)
    assert (position.lat, position.lon) == (pytest.approx(4.69898, abs=1e-5),
                                            pytest.approx(-74.06971, abs=1e-5))
    assert position.attributes["battery_level"] == 100
    assert only(decoded, Alarm).alarm is AlarmType.SOS  # type: ignore[attr-defined]
    assert decoded.replies == ()
    [reply] = session(ack=True).decode(BINARY_LONG).replies
    assert (reply.data, reply.after_store) == (b"*HQ,4106000826,R12,040506#", True)


# Framing ----------------------------------------------------------------------------------


def test_framer_text_frames_and_line_ends() -> None:
    framer = H02Framer()
    assert framer.feed(SOS_V1[:30]) == []
    assert framer.feed(SOS_V1[30:] + b"\r\n" + SOS_V1) == [SOS_V1, SOS_V1]


def test_framer_learns_the_binary_length_from_the_next_frame() -> None:
    framer = H02Framer()
    assert framer.feed(BINARY_LONG) == []  # 32 or 45? not known yet
    assert framer.feed(BINARY_LONG[:6]) == [BINARY_LONG]
    assert framer.binary_length == 45
    assert framer.feed(BINARY_LONG[6:]) == [BINARY_LONG]  # learned: cut at once
    short = H02Framer()
    assert short.feed(BINARY_SHORT + SOS_V1) == [BINARY_SHORT, SOS_V1]
    assert short.binary_length == 32


def test_framer_skips_garbage() -> None:
    out = H02Framer().feed(b"\x01\x02junk" + SOS_V1)
    assert out == [Discarded("bytes outside a frame", 6), SOS_V1]


# Commands ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("command", "text"), [
    (Command(CommandType.ENGINE_STOP), "*HQ,{id},S20,010203,1,1#"),
    (Command(CommandType.ENGINE_RESUME), "*HQ,{id},S20,010203,1,0#"),
    (Command(CommandType.REPORT_INTERVAL, interval_s=60), "*HQ,{id},S71,010203,22,60#"),
])
def test_commands(command: Command, text: str) -> None:
    when = datetime(2026, 5, 1, 1, 2, 3, tzinfo=UTC)
    assert encode_command_at(IMEI, command, when) == text.format(id=IMEI).encode()


def test_command_errors() -> None:
    for kind in (CommandType.POSITION_SINGLE, CommandType.REBOOT):
        with pytest.raises(UnsupportedCommand, match="h02 has no"):
            encode_command(IMEI, Command(kind))
    with pytest.raises(UnsupportedCommand, match=r"1\.\.65535"):
        encode_command(IMEI, Command(CommandType.REPORT_INTERVAL, interval_s=0))
    with pytest.raises(ValueError, match="device id"):
        encode_command("12-34", Command(CommandType.ENGINE_STOP))


def test_reply_key_drops_the_clock() -> None:
    assert CODEC.reply_key is not None
    assert CODEC.reply_key(b"*HQ,1,V4,V1,20260203040506#") == b"*HQ,1,V4,V1,"
    assert CODEC.reply_key(b"*HQ,1,R12,040506#") == b"*HQ,1,R12,"
    assert CODEC.reply_key(b"*HQ,1,HTBT#") == b"*HQ,1,HTBT#"


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="ack"):
        H02Options(ack="true")  # type: ignore[arg-type]


# Simulated device ---------------------------------------------------------------------------


def test_device_messages() -> None:
    device = H02Device(IMEI)
    assert device.login() == device.heartbeat() == f"*HQ,{IMEI},HTBT,100#".encode()
    assert device.position(FIX) == (f"*HQ,{IMEI},V1,030405,A,3352.1292,S,15112.5574,E,20.00,"
                                    f"123,020126,FFFFFFFF#").encode()
    with pytest.raises(ValueError, match="no status bit"):
        device.alarm(AlarmType.DOOR, FIX)


def test_device_answers_commands_for_itself_only() -> None:
    device = H02Device(IMEI)
    stop = encode_command(IMEI, Command(CommandType.ENGINE_STOP))
    answer = device.command_answer(stop, FIX)
    assert answer is not None and answer.startswith(f"*HQ,{IMEI},V4,S20,OK,".encode())
    assert device.command_answer(encode_command("123", Command(CommandType.ENGINE_STOP)),
                                 FIX) is None
    assert device.command_answer(b"garbage", FIX) is None


# Properties -------------------------------------------------------------------------------

_fixes = st.builds(
    Fix,
    fix_time=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31),
                          timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0)),
    lat=st.floats(-89.9999, 89.9999), lon=st.floats(-179.9999, 179.9999),
    speed_kmh=st.floats(0, 300), course_deg=st.floats(0, 359.4), valid=st.booleans(),
)


@given(fix=_fixes)
def test_position_round_trip(fix: Fix) -> None:
    position = only(session().decode(H02Device(IMEI).position(fix)), Position)
    assert isinstance(position, Position)
    assert position.fix_time == fix.fix_time
    assert position.lat == pytest.approx(fix.lat, abs=2e-6)
    assert position.lon == pytest.approx(fix.lon, abs=2e-6)
    assert position.valid is fix.valid
    assert position.speed_kmh == pytest.approx(fix.speed_kmh, abs=0.01)
    assert position.course_deg == round(fix.course_deg) % 360


@given(fix=_fixes, alarm=st.sampled_from(sorted(ALARM_BITS, key=lambda a: a.value)))
def test_alarm_round_trip(fix: Fix, alarm: AlarmType) -> None:
    decoded = session().decode(H02Device(IMEI).alarm(alarm, fix))
    assert [e.alarm for e in decoded.events if isinstance(e, Alarm)] == [alarm]


@given(data=st.binary(max_size=600), ack=st.booleans())
@settings(max_examples=300)
def test_random_bytes_never_raise_nor_grow_the_buffer(data: bytes, ack: bool) -> None:
    framer = H02Framer(128)
    s = session(ack)
    for i in range(0, len(data), 29):
        for item in framer.feed(data[i:i + 29]):
            if isinstance(item, bytes):
                s.decode(item)
        assert framer.buffered <= 128
    s.decode(data)


@given(text=st.lists(st.sampled_from(["HQ", "12345", "V1", "A", "2323.3408", "N", "W", "E",
                                      "", "-23-3.3408", "FFFFFFFF", "241115", "NBR", "LINK",
                                      "V3", "X", "0.1", "VP1", "Y", "-1", "V4", "SMS", "HTBT"]),
                     max_size=20))
def test_field_soup_never_raises(text: list[str]) -> None:
    decoded = session(True).decode(("*" + ",".join(text) + "#").encode())
    assert decoded.rejected is None or decoded.rejected.reason


def _stream(fixes: list[Fix]) -> bytes:
    device = H02Device(IMEI)
    parts = [device.login()]
    for i, fix in enumerate(fixes):
        parts.append(device.sos(fix) if i % 3 == 2 else device.position(fix))
        parts.append(BINARY_LONG if i % 2 else b"\r\n")
    parts.append(device.heartbeat())
    return b"".join(parts)


def _events(chunks: list[bytes]) -> tuple[list[bytes], list[object]]:
    framer = H02Framer()
    s = session()
    frames: list[bytes] = []
    for chunk in chunks:
        frames += [f for f in framer.feed(chunk) if isinstance(f, bytes)]
    return frames, [e for f in frames for e in s.decode(f).events]


@given(fixes=st.lists(_fixes, min_size=1, max_size=5), data=st.data())
def test_any_chunking_gives_the_same_frames_and_events(fixes: list[Fix],
                                                        data: st.DataObject) -> None:
    stream = _stream(fixes)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=25))))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert _events(pieces) == _events([stream])
    assert len(_events([stream])[0]) == len(fixes) + len(fixes) // 2 + 2


@given(fixes=st.lists(_fixes, min_size=1, max_size=5), data=st.data())
@settings(max_examples=150)
def test_mutated_streams_never_raise(fixes: list[Fix], data: st.DataObject) -> None:
    stream = bytearray(_stream(fixes))
    for _ in range(data.draw(st.integers(1, 8))):
        index = data.draw(st.integers(0, len(stream) - 1))
        stream[index] = data.draw(st.integers(0, 255))
    framer = H02Framer(256)
    s = session(True)
    for item in framer.feed(bytes(stream)):
        if isinstance(item, bytes):
            s.decode(item)
        assert framer.buffered <= 256


@given(fix=_fixes, alarm=st.sampled_from([None, *sorted(ALARM_BITS, key=lambda a: a.value)]),
       ack=st.booleans())
def test_fast_path_decodes_like_the_general_path(fix: Fix, alarm: AlarmType | None,
                                                  ack: bool) -> None:
    device = H02Device(IMEI)
    frame = device.position(fix) if alarm is None else device.alarm(alarm, fix)
    fast = H02Session(H02Options(ack=ack), lambda: CLOCK)
    general = H02Session(H02Options(ack=ack), lambda: CLOCK, fast=False)
    assert fast.decode(frame) == general.decode(frame)
    other = frame.replace(b",V1,", b",V5,")
    assert fast.decode(other) == general.decode(other)


def test_fast_path_matches_the_general_path_on_the_corpus() -> None:
    import json
    from pathlib import Path

    corpus = Path(__file__).parent / "corpus" / "wave2-samples.jsonl"
    frames = [r["message"].encode("latin-1") for r in map(json.loads, corpus.open())
              if r["protocol"] == "h02" and r.get("message")]
    fast = session(True)
    general = H02Session(H02Options(ack=True), lambda: CLOCK, fast=False)
    for frame in frames:
        assert fast.decode(frame) == general.decode(frame)


def test_v4_reply_follows_the_clock() -> None:
    now = [datetime(2026, 2, 3, 4, 5, 6, 500_000, tzinfo=UTC)]
    s = H02Session(H02Options(), lambda: now[0])
    first = s.decode(SOS_V1).replies[0].data
    now[0] = datetime(2026, 2, 3, 4, 5, 7, tzinfo=UTC)
    second = s.decode(SOS_V1).replies[0].data
    other = s.decode(SOS_V1.replace(b"353588020068342", b"353588020068343")).replies[0].data
    assert first == b"*HQ,353588020068342,V4,V1,20260203040506#"
    assert second == b"*HQ,353588020068342,V4,V1,20260203040507#"
    assert other == b"*HQ,353588020068343,V4,V1,20260203040507#"
