"""gl300 (Queclink @Track text): framing, decoding, replies, commands, device side."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import example, given, settings
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
    Position,
    Rejected,
    Reply,
    Status,
    UnsupportedCommand,
    get_codec,
)
from protocols.framing import BoundedFramer
from protocols.gl300 import CODEC, Gl300Device, Gl300Framer, Gl300Options, decode, encode_command
from protocols.gl300.decoder import _decode

CORPUS = Path(__file__).parent / "corpus" / "traccar-samples.jsonl"
SACK = Gl300Options(sack=True)
IMEI = "860599000508846"

FRI = (b"+RESP:GTFRI,1A0401,860599000508846,,0,0,1,1,134.8,154,278.7,-76.671089,39.778885,"
       b"20150623154301,0310,0260,043F,7761,,99,20150623154314,0F24$")
FRI_4 = (b"+RESP:GTFRI,1A0900,860599000306845,G3-313,0,0,4,1,2.1,0,426.7,8.611466,47.681639,"
         b"20181214134603,0228,0001,077F,4812,25.2,1,5.7,34,437.3,8.611600,47.681846,"
         b"20181214134619,0228,0001,077F,4812,25.2,1,4.4,62,438.2,8.611893,47.681983,"
         b"20181214134633,0228,0001,077F,4812,25.2,1,4.8,78,436.6,8.612236,47.682040,"
         b"20181214134648,0228,0001,077F,4812,25.2,83,20181214134702,0654$")
FRI_NO_FIX = (b"+RESP:GTFRI,210102,354524044925825,,1,1,1,,,,,,,,310,410,51bc,ca1dae6,10800,1,"
              b"20170318214333,0002$")
HBD = b"+ACK:GTHBD,1A0401,135790246811220,,20100214093254,11F0$"
RTO_ACK = b"+ACK:GTRTO,1A0800,860599000773978,GL300,VER,FFFF,20161006053520,0C19$"
GT300_INF = (b"+RESP:GTINF,359464030073766,8938003990320469804f,18,99,100,1,0,+2.00,0,"
             b"20131018084015,00EE,0103090402$")


def _clock() -> datetime:
    return datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def _device(**kwargs: object) -> Gl300Device:
    return Gl300Device(IMEI, clock=_clock, **kwargs)  # type: ignore[arg-type]


def _fix(**kwargs: object) -> Fix:
    values: dict[str, object] = {"fix_time": datetime(2024, 1, 2, 3, 4, 0, tzinfo=UTC),
                                 "lat": -33.5, "lon": 151.25, "speed_kmh": 42.5,
                                 "course_deg": 270.0, "altitude_m": 12.0}
    values.update(kwargs)
    return Fix(**values)  # type: ignore[arg-type]


def _positions(frame: bytes) -> list[Position]:
    return [e for e in decode(frame).events if isinstance(e, Position)]


def _frames(out: list[bytes | Discarded]) -> list[bytes]:
    return [o for o in out if isinstance(o, bytes)]


def _corpus_frames() -> list[bytes]:
    frames = []
    with CORPUS.open(encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            if record["protocol"] == "gl200":
                frames.append((record.get("tcp_wire") or record["message"]).encode())
    return frames


# Codec -------------------------------------------------------------------------------------------

def test_registry() -> None:
    codec = get_codec("gl300")
    assert codec is CODEC
    assert codec.name == "gl300"
    assert codec.default_port == 5004
    assert isinstance(codec.framer(), Gl300Framer)
    assert isinstance(codec.device(IMEI), Gl300Device)


# Framer ------------------------------------------------------------------------------------------

def test_framer_single_frame() -> None:
    assert Gl300Framer().feed(FRI) == [FRI]


def test_framer_garbage_before_frame() -> None:
    out = Gl300Framer().feed(b"junk!" + FRI)
    assert out == [Discarded("bytes outside a frame", 5), FRI]


def test_framer_binary_header_is_discarded_with_reason() -> None:
    out = Gl300Framer().feed(b"+RSP\x00\x01\x02\x03" + HBD)
    assert isinstance(out[0], Discarded)
    assert "binary" in out[0].reason and "+RSP" in out[0].reason
    assert out[1:] == [HBD]


def test_framer_sack_from_the_other_direction_is_not_a_frame() -> None:
    out = Gl300Framer().feed(b"+SACK:11F0$" + HBD)
    assert _frames(out) == [HBD]


def test_framer_merged_frames_and_crlf_filler() -> None:
    out = Gl300Framer().feed(FRI + b"\r\n" + HBD + FRI_4)
    assert out == [FRI, HBD, FRI_4]


def test_framer_split_byte_by_byte() -> None:
    framer = Gl300Framer()
    out: list[bytes | Discarded] = []
    for byte in FRI + HBD:
        out.extend(framer.feed(bytes([byte])))
    assert out == [FRI, HBD]
    assert framer.buffered == 0


class _GeneralFramer(Gl300Framer):
    """The @Track framer without its one-whole-frame shortcut."""

    __slots__ = ()

    def feed(self, data: bytes) -> list[bytes | Discarded]:
        return BoundedFramer.feed(self, data)


_PIECES = st.one_of(
    st.sampled_from([FRI, HBD, FRI_4, FRI[:-1], FRI + b"\x00", b"+ACK:", b"+RESP:", b"$",
                     b"\x00", b"+", b"\r\n", FRI[:40], FRI[40:]]),
    st.binary(max_size=40),
    st.text(alphabet="+$\x00RESPBUF:GTFRI,0123456789.", max_size=40).map(str.encode),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(_PIECES, min_size=1, max_size=4).map(b"".join), max_size=8),
       st.sampled_from([32, 64, 4096]))
@example([FRI, HBD, FRI + b"x$"], 4096)
@example([FRI], 64)
def test_framer_shortcut_gives_what_the_general_search_gives(
        chunks: list[bytes], bound: int) -> None:
    fast, general = Gl300Framer(bound), _GeneralFramer(bound)
    for chunk in chunks:
        assert fast.feed(chunk) == general.feed(chunk), chunk
        assert fast.buffered == general.buffered


def test_framer_keeps_partial_header_at_end() -> None:
    framer = Gl300Framer()
    assert framer.feed(b"xx+RE") == [Discarded("bytes outside a frame", 2)]
    assert framer.buffered == 3
    assert framer.feed(FRI[3:]) == [FRI]


def test_framer_nul_terminated_frame() -> None:
    body = HBD[:-1]
    assert Gl300Framer().feed(body + b"\x00" + FRI) == [body, FRI]


def test_framer_cuts_frame_that_lost_its_terminator() -> None:
    truncated = FRI[:60]
    out = Gl300Framer().feed(truncated + HBD)
    assert out == [truncated, HBD]
    assert isinstance(decode(truncated).rejected, Rejected)


def test_framer_overlong_frame_is_dropped_and_buffer_bounded() -> None:
    framer = Gl300Framer(max_frame_bytes=256)
    out = framer.feed(b"+RESP:GTFRI," + b"1" * 1000)
    assert any(isinstance(o, Discarded) and "longer than 256" in o.reason for o in out)
    assert framer.buffered <= 256
    out = framer.feed(b"$" + HBD)
    assert _frames(out) == [HBD]


# Decoding ----------------------------------------------------------------------------------------

def test_decode_fri_exact_values() -> None:
    decoded = decode(FRI)
    assert decoded.device_id == IMEI
    assert decoded.replies == ()
    (pos,) = decoded.events
    assert isinstance(pos, Position)
    assert pos.fix_time == datetime(2015, 6, 23, 15, 43, 1, tzinfo=UTC)
    assert (pos.lat, pos.lon) == (39.778885, -76.671089)
    assert (pos.speed_kmh, pos.course_deg, pos.altitude_m, pos.hdop) == (134.8, 154.0, 278.7, 1.0)
    assert pos.valid
    assert dict(pos.attributes) == {
        "protocol_version": "1A0401", "count_number": "0F24", "report": "GTFRI",
        "model": "GL300", "mcc": 310, "mnc": 260, "lac": 0x043F, "cell_id": 0x7761,
        "battery_level": 99, "report_type": "0",
    }


def test_decode_without_terminator_is_the_same() -> None:
    assert decode(FRI[:-1]).events == decode(FRI).events


def test_decode_multi_point_battery_on_last_point() -> None:
    positions = _positions(FRI_4)
    assert [p.fix_time.second for p in positions] == [3, 19, 33, 48]
    assert positions[-1].lat == 47.682040
    assert positions[-1].attributes["battery_level"] == 83
    assert all("battery_level" not in p.attributes for p in positions[:-1])
    assert positions[0].attributes["odometer"] == 25200.0
    assert positions[0].attributes["device_name"] == "G3-313"


def test_decode_point_without_fix_gives_status_not_position() -> None:
    (status,) = decode(FRI_NO_FIX).events
    assert isinstance(status, Status)
    assert status.attributes["mcc"] == 310
    assert status.attributes["mnc"] == 410
    assert status.attributes["cell_id"] == 0xCA1DAE6
    assert status.event_time == datetime(2017, 3, 18, 21, 43, 33, tzinfo=UTC)


def test_decode_accuracy_zero_is_last_known_position() -> None:
    frame = FRI.replace(b",1,1,134.8,", b",1,0,134.8,")
    (pos,) = _positions(frame)
    assert not pos.valid
    assert pos.hdop is None


def test_decode_buff_is_marked_buffered() -> None:
    (pos,) = _positions(b"+BUFF" + FRI[5:])
    assert pos.attributes["buffered"] is True
    assert pos.attributes["report"] == "GTFRI"


def test_decode_sos_gives_position_and_alarm_with_it() -> None:
    frame = (b"+RESP:GTSOS,020102,135790246811220,,0,0,1,1,4.3,92,70.0,121.354335,31.222073,"
             b"20090214013254,0460,0000,18d8,6141,00,,20090214093254,11F0$")
    pos, alarm = decode(frame).events
    assert isinstance(pos, Position) and isinstance(alarm, Alarm)
    assert alarm.alarm is AlarmType.SOS
    assert alarm.raw_code == "GTSOS"
    assert alarm.position is pos
    assert pos.attributes["alarm"] == "sos"


def test_decode_power_on_and_off_alarms() -> None:
    (on,) = decode(b"+RESP:GTPNA,F50201,866425030235982,GL300M,20190208124909,0BD5$").events
    (off,) = decode(b"+RESP:GTPFA,F50201,866425030235982,GL300M,20190208124849,0BD4$").events
    assert isinstance(on, Alarm) and on.alarm is AlarmType.POWER_ON and on.position is None
    assert isinstance(off, Alarm) and off.alarm is AlarmType.POWER_OFF
    assert off.event_time == datetime(2019, 2, 8, 12, 48, 49, tzinfo=UTC)
    assert off.attributes["model"] == "GL300M"


def test_decode_gl500_family_layout() -> None:
    frame = (b"+RESP:GTCTN,440200,866427030007379,NOKIA3,0,0,2,,9,1,0.1,174,48.7,-1.061812,"
             b"51.435270,20190717080549,0234,0015,0025,145A,,,0000,20190717081008,1D3B$")
    (pos,) = _positions(frame)
    assert (pos.lat, pos.lon, pos.course_deg) == (51.435270, -1.061812, 174.0)
    assert pos.attributes["battery_level"] == 9
    assert pos.attributes["model"] == "GL530"


def test_decode_gl500m_battery_in_tail() -> None:
    frame = (b"+RESP:GTERI,DE0115,865284042104863,gl500m,00000100,0,0,1,2,0.0,0,36.9,-1.844589,"
             b"52.177779,20201006125701,0234,0015,0135,34A1,19,0,,79,1,,0,20201006125723,184D$")
    (pos,) = _positions(frame)
    assert pos.attributes["battery_level"] == 79


def test_decode_gv_frame_with_vin() -> None:
    frame = (b"+RESP:GTFRI,1F0101,135790246811220,1G1JC5444R7252367,,,00,2,1,4.3,92,70.0,"
             b"121.354335,31.222073,20090214013254,0460,0000,18d8,6141,00,0,4.3,92,70.0,"
             b"121.354335,31.222073,20090101000000,0460,0000,18d8,6141,00,2000.0,12345:12:34,,,"
             b"80,210100,,,50,20090214093254,11F0$")
    first, last = _positions(frame)
    assert last.attributes["vin"] == "1G1JC5444R7252367"
    assert last.attributes["battery_level"] == 80
    assert last.attributes["odometer"] == 2_000_000.0
    assert first.valid and not last.valid


def test_decode_heuristic_types() -> None:
    frame = (b"+RESP:GTTEM,1A0102,860599000000448,,3,33,0,5.8,0,33.4,117.201191,31.832502,"
             b"20130109061410,0460,0000,5678,2079,,20130109061517,0091$")
    pos, alarm = decode(frame).events
    assert isinstance(pos, Position) and isinstance(alarm, Alarm)
    assert (pos.lat, pos.lon, pos.speed_kmh, pos.altitude_m) == (31.832502, 117.201191, 5.8, 33.4)
    assert alarm.alarm is AlarmType.TEMPERATURE
    assert pos.attributes["temp1"] == 33.0


def test_decode_unknown_type_uses_heuristic() -> None:
    frame = (b"+RESP:GTXYZ,1A0401,860599000508846,,7,1,5.0,10,20.0,2.000000,1.000000,"
             b"20240101000000,,,,,,20240101000001,0001$")
    (pos,) = _positions(frame)
    assert (pos.lat, pos.lon, pos.speed_kmh) == (1.0, 2.0, 5.0)
    assert pos.attributes["report"] == "GTXYZ"


def test_decode_inf_status() -> None:
    frame = (b"+RESP:GTINF,1A0800,860599000773978,GL300,41,89701016426133851978,17,0,1,26.6,,"
             b"3.90,1,1,0,0,0,20161003184043,69,1,44,,,20161004040811,022C$")
    (status,) = decode(frame).events
    assert isinstance(status, Status)
    a = status.attributes
    assert (a["iccid"], a["rssi"], a["battery_voltage"]) == ("89701016426133851978", 17, 3.9)
    assert (a["battery_level"], a["charging"], a["external_power"]) == (69, True, True)
    assert a["motion"] is False and a["temp1"] == 44.0


def test_decode_ver_gsm_wif_status() -> None:
    ver = decode(b"+RESP:GTVER,1A0800,860599000773978,GL300,GL300,0A03,0103,20161007041531,"
                 b"10F8$").events[0]
    assert isinstance(ver, Status) and ver.attributes["firmware_version"] == "0A03"
    gsm = decode(b"+RESP:GTGSM,400201,862365030025161,STR,0234,0015,003a,62a2,16,,,,,,,,"
                 b"20170219200048,0033$").events[0]
    assert isinstance(gsm, Status) and gsm.attributes["cells"] == "0234-0015-003a-62a2-16"
    wif = decode(b"+RESP:GTWIF,210102,354524044608058,,1,c413e200ff14,-39,,,,100,"
                 b"20170201020055,0001$").events[0]
    assert isinstance(wif, Status) and wif.attributes["wifi"] == "c413e200ff14:-39"


# Replies -----------------------------------------------------------------------------------------

def test_heartbeat_reply() -> None:
    decoded = decode(HBD)
    assert [type(e) for e in decoded.events] == [Heartbeat]
    assert decoded.replies == (Reply(b"+SACK:GTHBD,1A0401,11F0$", after_store=False),)


def test_heartbeat_reply_with_generic_sack() -> None:
    assert decode(HBD, SACK).replies == (
        Reply(b"+SACK:GTHBD,1A0401,11F0$", after_store=False),
        Reply(b"+SACK:11F0$", after_store=False),
    )


def test_generic_sack_after_store_for_data() -> None:
    assert decode(FRI).replies == ()
    assert decode(FRI, SACK).replies == (Reply(b"+SACK:0F24$", after_store=True),)


def test_generic_sack_for_command_ack_is_immediate() -> None:
    assert decode(RTO_ACK, SACK).replies == (Reply(b"+SACK:0C19$", after_store=False),)


def test_old_gt300_layout_rejected_but_acknowledged() -> None:
    decoded = decode(GT300_INF, SACK)
    assert isinstance(decoded.rejected, Rejected)
    assert "protocol version" in decoded.rejected.reason
    assert decoded.replies == (Reply(b"+SACK:0103090402$", after_store=True),)


def test_command_ack_decodes_to_command_result() -> None:
    (result,) = decode(RTO_ACK).events
    assert isinstance(result, CommandResult)
    assert (result.command, result.result) == ("RTO", "VER")
    assert result.attributes["serial_number"] == "FFFF"
    assert result.event_time == datetime(2016, 10, 6, 5, 35, 20, tzinfo=UTC)


# Rejections --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("frame", "reason"), [
    (b"\xff\xfe+RESP", "not UTF-8"),
    (b"hello$", "not an @Track text frame"),
    (b"+RESP:GTFRIX,1A0401,860599000508846,,20240101000000,0001$", "unknown message type"),
    (b"+RESP:GTFRI,1A04,860599000508846,,20240101000000,0001$", "protocol version"),
    (b"+RESP:GTFRI,1A0401,8605990005088X,,20240101000000,0001$", "device id"),
    (b"+RESP:GTFRI,1A0401,860599000508846,,20240101000000,00G1$", "count number"),
    (b"+RESP:GTFRI,1A0401,860599000508846$", "truncated"),
    (FRI.replace(b"39.778885", b"99.778885"), "latitude out of range"),
    (FRI.replace(b"-76.671089", b"-196.671089"), "longitude out of range"),
    (FRI.replace(b"20150623154301", b"20150631154301"), "invalid GPS time"),
    (FRI[:-1] + b"$" + HBD, "several frames"),
])
def test_rejections_have_specific_reasons(frame: bytes, reason: str) -> None:
    decoded = decode(frame)
    assert decoded.rejected is not None, decoded.events
    assert reason in decoded.rejected.reason
    assert [type(e) for e in decoded.events] == [Rejected]


def test_fast_path_matches_general_path() -> None:
    device = _device()
    frames = [*_corpus_frames(), device.position(_fix()), device.position(_fix(valid=False))]
    frames.append(FRI.replace(b"39.778885", b"99.778885"))
    for frame in frames:
        for options in (Gl300Options(), SACK):
            assert _decode(frame, options) == _decode(frame, options, fast=False), frame


# Commands ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("command", "wire"), [
    (Command(CommandType.POSITION_SINGLE), b"AT+GTRTO=,1,,,,,,FFFF$"),
    (Command(CommandType.REBOOT, password="gl300"), b"AT+GTRTO=gl300,3,,,,,,FFFF$"),
    (Command(CommandType.ENGINE_STOP), b"AT+GTOUT=,1,,,0,0,0,0,0,0,0,,,,,,,FFFF$"),
    (Command(CommandType.ENGINE_RESUME, password="gl300"),
     b"AT+GTOUT=gl300,0,,,0,0,0,0,0,0,0,,,,,,,FFFF$"),
    (Command(CommandType.REPORT_INTERVAL, interval_s=300, password="gl300"),
     b"AT+GTFRI=gl300,1,,,,,,300,300,,,,,,,,,,,,FFFF$"),
    (Command(CommandType.REPORT_INTERVAL, interval_s=0), b"AT+GTFRI=,0,,,,,,,,,,,,,,,,,,,FFFF$"),
])
def test_encode_command(command: Command, wire: bytes) -> None:
    assert encode_command(IMEI, command) == wire


@pytest.mark.parametrize("command", [
    Command(CommandType.REPORT_INTERVAL),
    Command(CommandType.REPORT_INTERVAL, interval_s=4),
    Command(CommandType.REPORT_INTERVAL, interval_s=86401),
    Command(CommandType.REBOOT, password="a,b"),
])
def test_encode_command_unsupported(command: Command) -> None:
    with pytest.raises(UnsupportedCommand):
        encode_command(IMEI, command)


# Device side -------------------------------------------------------------------------------------

def test_device_login_and_heartbeat_bytes() -> None:
    device = _device()
    assert device.login() == b"+RESP:GTPNA,1A0401,860599000508846,,20240102030405,0000$"
    assert device.heartbeat() == b"+ACK:GTHBD,1A0401,860599000508846,,20240102030405,0001$"
    (alarm,) = decode(device.login()).events
    assert isinstance(alarm, Alarm) and alarm.alarm is AlarmType.POWER_ON


def test_device_position_bytes() -> None:
    frame = _device().position(_fix(battery_percent=77))
    assert frame == (b"+RESP:GTFRI,1A0401,860599000508846,,0,0,1,1,42.5,270,12.0,151.250000,"
                     b"-33.500000,20240102030400,,,,,,77,20240102030405,0000$")


def test_device_count_wraps() -> None:
    device = _device(count=0xFFFF)
    assert device.heartbeat().endswith(b",FFFF$")
    assert device.heartbeat().endswith(b",0000$")


def test_device_report_splits_at_15_points_and_buffers() -> None:
    fixes = [_fix(fix_time=datetime(2024, 1, 2, 3, 4, 0, tzinfo=UTC) + timedelta(seconds=i))
             for i in range(20)]
    data = _device().report(fixes, buffered=True)
    frames = _frames(Gl300Framer().feed(data))
    assert len(frames) == 2
    assert all(f.startswith(b"+BUFF:GTFRI,") for f in frames)
    positions = [p for f in frames for p in _positions(f)]
    assert [p.fix_time for p in positions] == [f.fix_time for f in fixes]
    assert all(p.attributes["buffered"] is True for p in positions)
    assert _device().report([]) == b""


def test_device_info_decodes() -> None:
    (status,) = decode(_device().info(battery_percent=55)).events
    assert isinstance(status, Status) and status.attributes["battery_level"] == 55


def test_device_answers_single_position_with_ack_and_rtl() -> None:
    command = encode_command(IMEI, Command(CommandType.POSITION_SINGLE))
    data = _device().command_answer(command, _fix())
    assert data is not None
    ack, rtl = _frames(Gl300Framer().feed(data))
    assert ack == b"+ACK:GTRTO,1A0401,860599000508846,,RTL,FFFF,20240102030405,0000$"
    (result,) = decode(ack).events
    assert isinstance(result, CommandResult) and result.command == "RTO"
    (pos,) = _positions(rtl)
    assert pos.attributes["report"] == "GTRTL" and pos.lat == -33.5


@pytest.mark.parametrize(("kind", "ack"), [
    (CommandType.REBOOT, b"+ACK:GTRTO,1A0401,860599000508846,,REBOOT,FFFF,20240102030405,0000$"),
    (CommandType.ENGINE_STOP, b"+ACK:GTOUT,1A0401,860599000508846,,FFFF,20240102030405,0000$"),
    (CommandType.ENGINE_RESUME, b"+ACK:GTOUT,1A0401,860599000508846,,FFFF,20240102030405,0000$"),
])
def test_device_acknowledges_commands(kind: CommandType, ack: bytes) -> None:
    assert _device().command_answer(encode_command(IMEI, Command(kind)), _fix()) == ack


def test_device_acknowledges_report_interval() -> None:
    command = encode_command(IMEI, Command(CommandType.REPORT_INTERVAL, interval_s=60))
    answer = _device().command_answer(command, _fix())
    assert answer is not None
    (result,) = decode(answer).events
    assert isinstance(result, CommandResult) and result.command == "FRI"


def test_device_ignores_wrong_password_and_garbage() -> None:
    device = _device(password="gl300")
    assert device.command_answer(b"AT+GTRTO=xx,1,,,,,,FFFF$", _fix()) is None
    assert device.command_answer(b"AT+GTRTO=gl300,1,,,,,,FFFF$", _fix()) is not None
    assert device.command_answer(b"\xff\xfe", _fix()) is None
    assert device.command_answer(b"hello", _fix()) is None


# Properties --------------------------------------------------------------------------------------

_TIMES = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31, 23, 59, 59),
                      timezones=st.just(UTC)).map(lambda t: t.replace(microsecond=0))


@st.composite
def fixes(draw: st.DrawFn) -> Fix:
    return Fix(
        fix_time=draw(_TIMES),
        lat=draw(st.floats(-90.0, 90.0)),
        lon=draw(st.floats(-180.0, 180.0)),
        speed_kmh=draw(st.floats(0.0, 999.9)),
        course_deg=draw(st.floats(0.0, 359.4)),
        altitude_m=draw(st.floats(-500.0, 9000.0)),
        valid=draw(st.booleans()),
        hdop=draw(st.none() | st.integers(1, 50).map(float)),
        battery_percent=draw(st.none() | st.integers(0, 100)),
    )


def _check_roundtrip(fix: Fix, pos: Position) -> None:
    assert pos.device_id == IMEI
    assert pos.fix_time == fix.fix_time
    assert abs(pos.lat - fix.lat) <= 5e-7 and abs(pos.lon - fix.lon) <= 5e-7
    assert pos.speed_kmh is not None and abs(pos.speed_kmh - fix.speed_kmh) <= 0.05 + 1e-9
    assert pos.course_deg == round(fix.course_deg) % 360
    assert pos.altitude_m is not None and abs(pos.altitude_m - fix.altitude_m) <= 0.05 + 1e-9
    assert pos.valid == fix.valid
    if fix.valid:
        assert pos.hdop == (fix.hdop if fix.hdop is not None else 1.0)


_BOUNDARIES = [datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC),
               datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)]


@settings(max_examples=200, deadline=None)
@given(fixes())
@example(Fix(_BOUNDARIES[0], -90.0, -180.0, 0.0, 359.4, -500.0))
@example(Fix(_BOUNDARIES[1], 90.0, 180.0, 999.9, 0.0, 9000.0, valid=False))
@example(Fix(_BOUNDARIES[2], -0.0000001, 0.0000001, 0.05, 180.5, 0.0))
@example(Fix(_BOUNDARIES[3], 45.5, -122.25, 60.0, 90.0, 100.0, battery_percent=0))
def test_position_roundtrip(fix: Fix) -> None:
    for frame in (_device().position(fix), _device().sos(fix)):
        positions = _positions(frame)
        assert len(positions) == 1
        _check_roundtrip(fix, positions[0])
        level = positions[0].attributes.get("battery_level")
        assert level == fix.battery_percent


@settings(max_examples=50, deadline=None)
@given(st.lists(fixes(), min_size=1, max_size=40), st.booleans())
def test_report_roundtrip(batch: list[Fix], buffered: bool) -> None:
    frames = _frames(Gl300Framer().feed(_device().report(batch, buffered=buffered)))
    assert len(frames) == (len(batch) + 14) // 15
    positions = [p for f in frames for p in _positions(f)]
    assert len(positions) == len(batch)
    for fix, pos in zip(batch, positions, strict=True):
        _check_roundtrip(fix, pos)
        assert pos.attributes.get("buffered", False) is buffered


_STREAM = b"noise" + FRI + b"\r\n" + HBD + b"+RSP\x00\x07" + FRI_4 + RTO_ACK + FRI_NO_FIX


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, len(_STREAM)), max_size=30))
def test_any_chunking_gives_same_frames(cuts: list[int]) -> None:
    expected = Gl300Framer().feed(_STREAM)
    points = sorted(set(cuts))
    chunks = [_STREAM[a:b] for a, b in zip([0, *points], [*points, len(_STREAM)], strict=True)]
    framer = Gl300Framer()
    got: list[bytes | Discarded] = []
    for chunk in chunks:
        got.extend(framer.feed(chunk))
    assert _frames(got) == _frames(expected) == [FRI, HBD, FRI_4, RTO_ACK, FRI_NO_FIX]
    assert framer.buffered == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300) | st.sampled_from([b"+RESP:", b"+ACK:", b"$", b"+BU",
                                                           b"\x00", b",", FRI]), max_size=30))
def test_random_bytes_never_raise_and_buffer_stays_bounded(chunks: list[bytes]) -> None:
    framer = Gl300Framer(max_frame_bytes=512)
    for chunk in chunks:
        for item in framer.feed(chunk):
            if isinstance(item, bytes):
                decode(item)
                decode(item, SACK)
        assert framer.buffered <= 512
    decode(b"".join(chunks))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([FRI, FRI_4, FRI_NO_FIX, HBD, RTO_ACK, GT300_INF]),
       st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255), st.integers(0, 2)),
                min_size=1, max_size=5))
def test_mutated_frames_never_raise(frame: bytes, edits: list[tuple[int, int, int]]) -> None:
    data = bytearray(frame)
    for position, value, op in edits:
        index = position % (len(data) + 1)
        if op == 0 and index < len(data):
            data[index] = value
        elif op == 1:
            data.insert(index, value)
        elif index < len(data):
            del data[index]
    for options in (Gl300Options(), SACK):
        decoded = decode(bytes(data), options)
        assert decoded.events
        for event in decoded.events:
            if isinstance(event, Position):
                assert -90.0 <= event.lat <= 90.0 and -180.0 <= event.lon <= 180.0
