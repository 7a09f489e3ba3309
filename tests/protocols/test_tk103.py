"""tk103 (parenthesised TK103 protocol): framing, decoding, replies, commands, device side."""

from __future__ import annotations

import random
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
    Discarded,
    Fix,
    Heartbeat,
    Login,
    Position,
    Rejected,
    Reply,
    Status,
    UnsupportedCommand,
    get_codec,
)
from protocols.events import attrs
from protocols.tk103 import CODEC, Tk103Device, Tk103Framer, decode, encode_command

BR00 = b"(088047365460BR00151024A2555.3531S02855.3329E004.7055148276.1701000000L00009AA3)"
BP05 = (
    b"(088046338039BP05000088046338039160727A3354.7768N03540.7258E000.0140309065.10"
    b"00000000L00BEB0D4+017.3)"
)
ZC03_TEXT = (
    b"(864555555555555,ZC03,191117,234207,$1 .Sensor sensitivity: 1\r\n"
    b"3 .Check interval is set to 240 minute(s).\r\n7 . Power: 95%$)"
)


def _types(decoded: object) -> list[type]:
    return [type(e) for e in decoded.events]  # type: ignore[attr-defined]


def _position(frame: bytes) -> Position:
    positions = [e for e in decode(frame).events if isinstance(e, Position)]
    assert len(positions) == 1, decode(frame).events
    return positions[0]


# Codec -------------------------------------------------------------------------------------


def test_codec_registered() -> None:
    assert get_codec("tk103") is CODEC
    assert CODEC.default_port == 5002


# Replies -----------------------------------------------------------------------------------


def test_bp00_heartbeat_reply() -> None:
    decoded = decode(b"(087073005534BP00HSO)")
    assert decoded.device_id == "087073005534"
    assert _types(decoded) == [Heartbeat]
    assert decoded.replies == (Reply(b"(087073005534AP01HSO)", after_store=False),)


def test_bp00_with_id_echo() -> None:
    decoded = decode(b"(027044702512BP00027044702512HSO01A4)")
    assert decoded.replies == (Reply(b"(027044702512AP01HSO)", after_store=False),)


def test_bp05_with_position_is_acknowledged_after_store() -> None:
    decoded = decode(BP05)
    assert _types(decoded) == [Login, Position]
    assert decoded.replies == (Reply(b"(088046338039AP05)", after_store=True),)
    login = decoded.events[0]
    assert isinstance(login, Login)
    assert login.attributes["imei"] == "000088046338039"


def test_bp05_with_cells_only_is_a_handshake() -> None:
    frame = (
        b"(027045009305BP05355227045009305,{413,2,30073,16724}\n{413,2,30073,16730}\n"
        b"{413,2,30073,49860}\n,01000000)"
    )
    decoded = decode(frame)
    assert _types(decoded) == [Login, Status]
    assert decoded.replies == (Reply(b"(027045009305AP05)", after_store=False),)
    assert decoded.events[0].attributes["imei"] == "355227045009305"  # type: ignore[union-attr]
    status = decoded.events[1]
    assert isinstance(status, Status)
    assert status.attributes["mcc"] == 413
    assert status.attributes["cid"] == 16724
    assert status.attributes["cell_count"] == 3


def test_comma_layout_gets_no_reply() -> None:
    decoded = decode(b"(352606090042050,BP05,240414,A,4527.3513N,00909.9758E,4.80,112825,155.49)")
    assert _types(decoded) == [Login, Position]
    assert decoded.replies == ()
    assert decoded.events[0].attributes["imei"] == "352606090042050"  # type: ignore[union-attr]


def test_position_frames_get_no_reply() -> None:
    assert decode(BR00).replies == ()


# Decoding ----------------------------------------------------------------------------------


def test_fixed_layout_position_exact_values() -> None:
    position = _position(BR00)
    assert position.device_id == "088047365460"
    assert position.fix_time == datetime(2015, 10, 24, 5, 51, 48, tzinfo=UTC)
    assert position.valid is True
    assert position.lat == pytest.approx(-25.92255, abs=1e-5)
    assert position.lon == pytest.approx(28.92222, abs=1e-5)
    assert position.speed_kmh == 4.7
    assert position.course_deg == 276.17
    assert position.attributes["charge"] is True
    assert position.attributes["ignition"] is True
    assert position.attributes["fuel"] == 0
    assert position.attributes["odometer"] == 0x9AA3


def test_comma_layout_position_exact_values() -> None:
    position = _position(
        b"(352606090042050,BP05,240414,A,4527.3513N,00909.9758E,4.80,112825,155.49)"
    )
    assert position.fix_time == datetime(2014, 4, 24, 11, 28, 25, tzinfo=UTC)
    assert position.lat == pytest.approx(45.45586, abs=1e-5)
    assert position.lon == pytest.approx(9.16626, abs=1e-5)
    assert position.speed_kmh == 4.8
    assert position.course_deg == 155.49


def test_spaces_and_short_coordinate_fields() -> None:
    position = _position(
        b"(027023361470BR00200617A4000.5775N 8415.4076W 46.0173725 87.3101000000L00000000)"
    )
    assert position.lon == pytest.approx(-84.256793, abs=1e-5)
    assert position.speed_kmh == 46.0
    assert position.course_deg == 87.31
    short = _position(
        b"(868822040452227,DW3B,150421,A,4154.51607N,45.78950E,0.050,103142,0.000,595.200,7,0)"
    )
    assert short.lon == pytest.approx(45.7895 / 60, abs=1e-6)


def test_temperature_and_fuel() -> None:
    position = _position(BP05)
    assert position.attributes["temp1"] == 17.3
    fuel = _position(
        b"(087073803649BR00170221A6142.0334N02712.2197E000.3203149000.00,00000000L00000000)"
    )
    assert fuel.attributes["fuel"] == 0


def test_lenient_date_month_zero() -> None:
    position = _position(
        b"(087072009461BR00000007V0000.0000N00000.0000E000.00014039900000000L00000000)"
    )
    assert position.fix_time == datetime(1999, 12, 7, 0, 14, 3, tzinfo=UTC)
    assert position.valid is False


def test_lenient_time_second_sixty() -> None:
    position = _position(b"(012345678901BR00130520A3439.9629S05826.3504W000.1235960323.87)")
    assert position.fix_time == datetime(2013, 5, 21, 0, 0, 0, tzinfo=UTC)


def test_bo01_sos_alarm_carries_the_position() -> None:
    decoded = decode(
        b"(013666666666BO012110925A1234.5678N01234.5678W000.0025948118.7200000000L000024DE)"
    )
    position, alarm = decoded.events
    assert isinstance(position, Position) and isinstance(alarm, Alarm)
    assert alarm.alarm is AlarmType.SOS
    assert alarm.position is position
    assert alarm.raw_code == "BO012"
    assert position.attributes["alarm"] == "sos"


def test_bq81_overspeed() -> None:
    decoded = decode(
        b"(044027395704BQ81,ALARM,1,164,151101A2238.5237N11349.4571E0.7031241010.0000,00000000)"
    )
    alarms = [e for e in decoded.events if isinstance(e, Alarm)]
    assert [a.alarm for a in alarms] == [AlarmType.OVERSPEED]


@pytest.mark.parametrize(
    ("code", "alarm"),
    [
        ("ZC11", AlarmType.MOVEMENT),
        ("ZC12", AlarmType.LOW_BATTERY),
        ("ZC13", AlarmType.POWER_CUT),
        ("ZC15", AlarmType.IGNITION_ON),
        ("ZC16", AlarmType.IGNITION_OFF),
        ("ZC17", AlarmType.REMOVING),
        ("ZC25", AlarmType.SOS),
        ("ZC26", AlarmType.TAMPERING),
        ("ZC27", AlarmType.LOW_POWER),
        ("ZC29", AlarmType.IGNITION_ON),
    ],
)
def test_zc_alarms(code: str, alarm: AlarmType) -> None:
    frame = f"(013632651491,{code},040613,A,2234.0297N,11405.9101E,000.0,040137,178.48)"
    decoded = decode(frame.encode())
    found = [e for e in decoded.events if isinstance(e, Alarm)]
    assert [a.alarm for a in found] == [alarm]


def test_device_ids_that_are_not_12_characters() -> None:
    eleven = decode(
        b"(01602009983BR00160830V1855.7022S4817.8731W000.0002729000.0010000000L00000000)"
    )
    assert eleven.device_id == "01602009983"
    fifteen = decode(b"(357593060760397BP02,G,2,170304A6015.7466N01101.8460E001.609445591.048,7)")
    assert fifteen.device_id == "357593060760397"
    position = fifteen.events[0]
    assert isinstance(position, Position)
    # Fixed layout: YYMMDD, so 2017-03-04 (where Traccar's regex reads 2004-03-17).
    assert position.fix_time == datetime(2017, 3, 4, 9, 44, 55, tzinfo=UTC)


def test_zc20_battery() -> None:
    decoded = decode(b"(013632651491,ZC20,040613,040137,6,42,112,0)")
    (status,) = decoded.events
    assert isinstance(status, Status)
    assert status.event_time == datetime(2013, 6, 4, 4, 1, 37, tzinfo=UTC)
    assert dict(status.attributes) == {"battery_level": 100, "battery": 0.42, "power": 11.2}
    absent = decode(b"(013632651491,ZC20,180716,144222,255,392,65535,255)").events[0]
    assert isinstance(absent, Status)
    assert dict(absent.attributes) == {"battery": 3.92}


def test_vin() -> None:
    (status,) = decode(b"(027023361470BV005J6RW2H53HL066029)").events
    assert isinstance(status, Status)
    assert status.attributes["vin"] == "5J6RW2H53HL066029"


def test_bz00_network_without_braces() -> None:
    (status,) = decode(b"(027046434858BZ00,460,0,51D5,E55F,0)").events
    assert isinstance(status, Status)
    assert dict(status.attributes) == {"mcc": 460, "mnc": 0, "lac": 0x51D5, "cid": 0xE55F}


def test_zc03_command_result_keeps_text_with_parentheses() -> None:
    (result,) = decode(ZC03_TEXT).events
    assert isinstance(result, CommandResult)
    assert "minute(s)" in result.result
    assert result.result.endswith("Power: 95%")
    assert result.event_time == datetime(2017, 11, 19, 23, 42, 7, tzinfo=UTC)


def test_lbs_wifi_is_status_never_an_invented_position() -> None:
    decoded = decode(b"(358511020000026,DW5B,310,6,29876,30393,0,041217,102211)")
    assert _types(decoded) == [Status]
    moved = decode(b"(013632651491,DW51,460,0,0,6,1,aa:bb:cc:dd:ee:ff*-8*0,040613,040137)")
    assert _types(moved) == [Status, Alarm]


def test_bp04_answers_single_position_request() -> None:
    decoded = decode(
        b"(088048003342BP04150917A1352.9801N10030.9050E000.0103224000.0000010000L000003F9)"
    )
    assert _types(decoded) == [Position, CommandResult]


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"(027028258309BQ86,0,05550c21b10d,161117005322,01000001)", "unknown message type BQ86"),
        (b"(012345678901BR00130520A3499.9629S05826.3504W000.1175622323.87)", "latitude minutes"),
        (b"(012345678901BR00130520A9439.9629S05826.3504W000.1175622323.87)", "latitude out of"),
        (b"(012345678901BR00130520A3439.9629S18126.3504W000.1175622323.87)", "longitude out of"),
        (b"(012345678901BR00garbage)", "malformed BR00"),
        (b"(027023361470BV00SHORT)", "VIN"),
        (b"()", "no device id"),
        (b"\xff\xfe\x00", "no device id"),
    ],
)
def test_rejections_say_why(frame: bytes, reason: str) -> None:
    rejection = decode(frame).rejected
    assert rejection is not None
    assert reason in rejection.reason


# Commands ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "wire"),
    [
        (Command(CommandType.POSITION_SINGLE), b"(123456789012345AP00)"),
        (Command(CommandType.REPORT_INTERVAL, interval_s=60), b"(123456789012345AR00003C0000)"),
        (Command(CommandType.REPORT_INTERVAL, interval_s=0), b"(123456789012345AR0000000000)"),
        (Command(CommandType.ENGINE_STOP), b"(123456789012345AV010)"),
        (Command(CommandType.ENGINE_RESUME), b"(123456789012345AV011)"),
        (Command(CommandType.REBOOT), b"(123456789012345AT00)"),
    ],
)
def test_commands(command: Command, wire: bytes) -> None:
    assert encode_command("123456789012345", command) == wire


def test_command_errors() -> None:
    with pytest.raises(UnsupportedCommand):
        encode_command("123456789012", Command(CommandType.REPORT_INTERVAL))
    with pytest.raises(UnsupportedCommand):
        encode_command("123456789012", Command(CommandType.REPORT_INTERVAL, interval_s=70000))
    with pytest.raises(ValueError):
        encode_command("12(34)", Command(CommandType.REBOOT))


# Framer ------------------------------------------------------------------------------------


def _frames(out: list[bytes | Discarded]) -> list[bytes]:
    return [item for item in out if isinstance(item, bytes)]


def test_framer_skips_garbage_and_reports_it() -> None:
    out = Tk103Framer().feed(b"junk" + BR00)
    assert out == [Discarded("bytes outside a frame", 4), BR00]


def test_framer_merged_and_split_frames() -> None:
    framer = Tk103Framer()
    assert _frames(framer.feed(BR00 + b"\r\n" + BP05)) == [BR00, BP05]
    out: list[bytes] = []
    for i in range(len(BR00)):
        out += _frames(framer.feed(BR00[i:i + 1]))
    assert out == [BR00]
    assert framer.buffered == 0


def test_framer_ignores_parenthesis_inside_dollar_text() -> None:
    framer = Tk103Framer()
    assert _frames(framer.feed(b"(123456789012ZC03,010120,000000,$a)b$)" + BR00)) == [
        b"(123456789012ZC03,010120,000000,$a)b$)",
        BR00,
    ]
    assert _frames(framer.feed(ZC03_TEXT)) == [ZC03_TEXT]


def test_framer_keeps_newlines_inside_frames() -> None:
    frame = b"(027046434858BZ00,{460,0,20949,58711}\n{460,0,20494,54003}\n,01000000)"
    assert _frames(Tk103Framer().feed(frame)) == [frame]


def test_framer_drops_over_long_frame_and_recovers() -> None:
    framer = Tk103Framer(max_frame_bytes=256)
    out = framer.feed(b"(" + b"1" * 1000)
    assert any(isinstance(item, Discarded) and "longer than" in item.reason for item in out)
    assert framer.buffered <= 256
    out = framer.feed(b")" + BR00)
    assert _frames(out)[-1] == BR00
    assert framer.buffered == 0


# Device side -------------------------------------------------------------------------------

FIX = Fix(
    fix_time=datetime(2015, 10, 24, 5, 51, 48, tzinfo=UTC),
    lat=-25.92255,
    lon=28.92222,
    speed_kmh=4.7,
    course_deg=276.17,
    attributes=attrs(ignition=True, odometer=0x9AA3),
)


def test_device_frames_are_byte_exact() -> None:
    device = Tk103Device("354188047365460")
    assert device.device_id == "188047365460"
    assert device.heartbeat() == b"(188047365460BP00188047365460HSO)"
    assert device.position(FIX) == (
        b"(188047365460BR00151024A2555.3530S02855.3332E004.7055148276.1701000000L00009AA3)"
    )
    assert device.login() == (
        b"(188047365460BP05000188047365460151024A2555.3530S02855.3332E004.7055148276.17"
        b"01000000L00009AA3)"
    )
    assert device.sos(FIX).startswith(b"(188047365460BO012151024A")
    assert device.report([FIX, FIX]) == device.position(FIX) * 2


def test_device_frames_decode_with_replies() -> None:
    device = Tk103Device("354188047365460")
    assert decode(device.heartbeat()).replies == (Reply(b"(188047365460AP01HSO)", False),)
    login = decode(device.login())  # before any fix: a no-fix record, flagged invalid
    assert login.replies == (Reply(b"(188047365460AP05)", True),)
    sos = decode(device.sos(FIX))
    assert [a.alarm for a in sos.events if isinstance(a, Alarm)] == [AlarmType.SOS]


def test_device_command_answer() -> None:
    device = Tk103Device("354188047365460")
    request = encode_command(device.device_id, Command(CommandType.POSITION_SINGLE))
    answer = device.command_answer(request, FIX)
    assert answer is not None and answer.startswith(b"(188047365460BP04")
    assert _types(decode(answer)) == [Position, CommandResult]
    reboot = encode_command(device.device_id, Command(CommandType.REBOOT))
    assert device.command_answer(reboot, FIX) is None
    assert device.command_answer(b"(999999999999AP00)", FIX) is None


def test_comma_layout_device() -> None:
    device = Tk103Device("352606090042050", comma_layout=True)
    assert device.position(FIX) == (
        b"(352606090042050,BR00,241015,A,2555.3530S,02855.3332E,004.7,055148,276.17)"
    )
    login = decode(device.login())
    assert _types(login) == [Login, Position] and login.replies == ()
    sos = decode(device.sos(FIX))
    assert [a.alarm for a in sos.events if isinstance(a, Alarm)] == [AlarmType.SOS]
    assert decode(device.heartbeat()).device_id == "352606090042050"


# Properties --------------------------------------------------------------------------------

_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31, 23, 59, 59)
).map(lambda t: t.replace(microsecond=0, tzinfo=UTC))
_fixes = st.builds(
    Fix,
    fix_time=st.one_of(
        _times,
        st.sampled_from([
            datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC),
            datetime(2024, 1, 1, 0, 0, 0, tzinfo=UTC),
            datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC),
            datetime(2024, 3, 1, 0, 0, 0, tzinfo=UTC),
        ]),
    ),
    lat=st.floats(min_value=-90, max_value=90),
    lon=st.floats(min_value=-180, max_value=180),
    speed_kmh=st.floats(min_value=0, max_value=999.9),
    course_deg=st.floats(min_value=0, max_value=359.99),
    valid=st.booleans(),
)


def _course_close(a: float | None, b: float) -> bool:
    assert a is not None
    diff = abs(a - b) % 360
    return min(diff, 360 - diff) <= 0.006


@settings(max_examples=200, deadline=None)
@given(fix=_fixes, comma=st.booleans())
def test_device_encode_decode_round_trip(fix: Fix, comma: bool) -> None:
    device = Tk103Device("352606090042050", comma_layout=comma)
    decoded = decode(device.position(fix))
    assert decoded.rejected is None
    (position,) = decoded.events
    assert isinstance(position, Position)
    assert position.device_id == device.device_id
    assert position.fix_time == fix.fix_time
    assert position.valid is fix.valid
    assert position.lat == pytest.approx(fix.lat, abs=2e-6)
    assert position.lon == pytest.approx(fix.lon, abs=2e-6)
    assert position.speed_kmh == pytest.approx(fix.speed_kmh, abs=0.051)
    assert _course_close(position.course_deg, fix.course_deg)


@settings(max_examples=200, deadline=None)
@given(fixes=st.lists(_fixes, min_size=1, max_size=5), data=st.data())
def test_any_chunking_gives_the_same_frames(fixes: list[Fix], data: st.DataObject) -> None:
    device = Tk103Device("354188047365460")
    stream = device.heartbeat() + device.report(fixes) + ZC03_TEXT
    expected = _frames(Tk103Framer().feed(stream))
    assert len(expected) == len(fixes) + 2
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    framer = Tk103Framer()
    got: list[bytes] = []
    previous = 0
    for cut in [*cuts, len(stream)]:
        got += _frames(framer.feed(stream[previous:cut]))
        previous = cut
    assert got == expected
    assert framer.buffered == 0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_raise_nor_overflow(blob: bytes) -> None:
    framer = Tk103Framer(max_frame_bytes=128)
    for item in framer.feed(blob) + framer.feed(blob):
        if isinstance(item, bytes):
            decode(item)
        assert framer.buffered <= 128
    decode(blob)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32), count=st.integers(1, 8))
def test_mutated_frames_never_raise(seed: int, count: int) -> None:
    rng = random.Random(seed)
    corpus = [BR00, BP05, ZC03_TEXT, b"(013632651491,ZC20,040613,040137,6,42,112,0)"]
    frame = bytearray(rng.choice(corpus))
    alphabet = b"0123456789ABCDEFLNSEWAV,.$(){} \n+-"
    for _ in range(count):
        position = rng.randrange(len(frame))
        action = rng.randrange(3)
        if action == 0:
            frame[position] = rng.choice(alphabet)
        elif action == 1:
            del frame[position]
        else:
            frame.insert(position, rng.choice(alphabet))
    decoded = decode(bytes(frame))
    for event in decoded.events:
        if isinstance(event, Position):
            assert -90 <= event.lat <= 90 and -180 <= event.lon <= 180
        elif isinstance(event, Rejected):
            assert event.reason


def test_lenient_calendar_rollover() -> None:
    from protocols.tk103.decoder import utc_datetime

    assert utc_datetime(2024, 12, 31, 23, 59, 60) == datetime(2025, 1, 1, tzinfo=UTC)
    assert utc_datetime(2024, 18, 1, 0, 0, 0) == datetime(2025, 6, 1, tzinfo=UTC)
    assert utc_datetime(2024, 3, 0, 0, 0, 0) == datetime(2024, 2, 29, tzinfo=UTC)
    assert utc_datetime(2000, 0, 0, 99, 99, 99) == datetime(1999, 11, 30, tzinfo=UTC) + timedelta(
        hours=99, minutes=99, seconds=99
    )
