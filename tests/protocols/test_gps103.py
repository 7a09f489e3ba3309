"""gps103 (TK103-B / Coban `imei:` text protocol): framing, decoding, replies, commands, device."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import get_codec
from protocols.codec import Command, CommandType, Decoded, Fix, Reply, UnsupportedCommand
from protocols.events import (
    Alarm,
    AlarmType,
    Heartbeat,
    Login,
    Position,
    Rejected,
    Status,
    attrs,
)
from protocols.framing import Discarded
from protocols.gps103 import CODEC, Gps103Device, Gps103Framer, decode, encode_command

IMEI = "359586015829802"
SETTINGS = settings(max_examples=200, deadline=None)


def _positions(decoded: Decoded) -> list[Position]:
    return [e for e in decoded.events if isinstance(e, Position)]


def _only(decoded: Decoded, kind: type) -> object:
    assert len(decoded.events) == 1, decoded.events
    event = decoded.events[0]
    assert isinstance(event, kind), event
    return event


def _frames(out: list[bytes | Discarded]) -> list[bytes]:
    return [item for item in out if isinstance(item, bytes)]


# Codec -------------------------------------------------------------------------------------


def test_codec_registration() -> None:
    codec = get_codec("gps103")
    assert codec is CODEC
    assert codec.name == "gps103"
    assert codec.default_port == 5001
    assert isinstance(codec.framer(), Gps103Framer)
    assert codec.device(IMEI).imei == IMEI


# Handshake and replies ---------------------------------------------------------------------


@pytest.mark.parametrize("frame", [b"##,imei:359586015829802,A;", b"##,imei:359586015829802,A"])
def test_login_gets_load(frame: bytes) -> None:
    decoded = decode(frame)
    assert decoded.device_id == IMEI
    assert decoded.events == (Login(IMEI),)
    assert decoded.replies == (Reply(b"LOAD", after_store=False),)


def test_short_imei_frame_is_a_login_without_position() -> None:
    decoded = decode(b"imei:123451234512345,L,*")
    assert decoded.events == (Login("123451234512345"),)
    assert decoded.replies == (Reply(b"LOAD", after_store=False),)


@pytest.mark.parametrize("frame", [b"359586015829802;", b"359586015829802", b"359586015829802\r\n"])
def test_bare_imei_heartbeat_gets_on(frame: bytes) -> None:
    decoded = decode(frame)
    assert decoded.events == (Heartbeat(IMEI),)
    assert decoded.device_id == IMEI
    assert decoded.replies == (Reply(b"ON", after_store=False),)


def test_heartbeat_run_into_a_report_gets_on_then_the_report() -> None:
    decoded = decode(
        b"359769031878322imei:359769031878322,tracker,1602160718,2,F,221811.000,A,"
        b"1655.2193,S,14546.6722,E,0.00,,;"
    )
    assert decoded.replies == (Reply(b"ON", after_store=False),)
    (position,) = _positions(decoded)
    assert position.device_id == "359769031878322"
    assert position.lat == pytest.approx(-16.920321666, abs=1e-8)
    assert position.lon == pytest.approx(145.77787, abs=1e-8)


def test_sos_with_fix_gives_position_alarm_and_after_store_ack() -> None:
    decoded = decode(
        b"imei:359586015829802,help me,0809231429,13554900601,F,062947.294,A,"
        b"2234.4026,N,11354.3277,E,0.00,;"
    )
    position, alarm = decoded.events
    assert isinstance(position, Position) and isinstance(alarm, Alarm)
    assert alarm.alarm is AlarmType.SOS
    assert alarm.raw_code == "help me"
    assert alarm.position is position
    assert alarm.event_time == position.fix_time
    assert position.attributes["alarm"] == "sos"
    # 14:29 local vs 06:29 UTC: UTC+8, seconds and milliseconds from the UTC field.
    assert position.fix_time == datetime(2008, 9, 23, 6, 29, 47, 294000, tzinfo=UTC)
    assert decoded.replies == (Reply(b"**,imei:359586015829802,E;", after_store=True),)


def test_sos_without_fix_still_raises_the_alarm_and_is_acked() -> None:
    decoded = decode(b"imei:359710049075097,help me,,,L,,,113b,,558f,,,,,0,0,,,;")
    alarm = _only(decoded, Alarm)
    assert isinstance(alarm, Alarm)
    assert alarm.alarm is AlarmType.SOS and alarm.position is None
    assert alarm.attributes["lac"] == 0x113B and alarm.attributes["cid"] == 0x558F
    assert decoded.replies == (Reply(b"**,imei:359710049075097,E;", after_store=True),)


def test_plain_reports_need_no_reply() -> None:
    decoded = decode(
        b"imei:359710045559474,tracker,151030080103,,F,000101.000,A,5443.3834,N,"
        b"02512.9071,E,0.00,0;"
    )
    assert decoded.replies == ()


# Decoding: exact values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "utc", "expected"),
    [
        ("151030080103", "000101.000", datetime(2015, 10, 30, 0, 1, 1, tzinfo=UTC)),
        # Local 02:59 on the 27th is 23:59 UTC on the 26th (UTC+3 across midnight).
        ("151027025958", "235957.000", datetime(2015, 10, 26, 23, 59, 57, tzinfo=UTC)),
        ("151027041419", "011531.000", datetime(2015, 10, 27, 1, 15, 31, tzinfo=UTC)),
        # West of Greenwich across midnight and the year: 31 Dec 19:00 local is 1 Jan 00:00 UTC.
        ("1912311900", "000012.5", datetime(2020, 1, 1, 0, 0, 12, 500000, tzinfo=UTC)),
        ("13/02/27 23:40", "125952.000", datetime(2013, 2, 27, 12, 59, 52, tzinfo=UTC)),
        # No usable UTC field (firmware puts another number there): the local time is used.
        ("150401165832", "31.0", datetime(2015, 4, 1, 16, 58, 32, tzinfo=UTC)),
    ],
)
def test_time_rule(local: str, utc: str, expected: datetime) -> None:
    frame = f"imei:{IMEI},tracker,{local},,F,{utc},A,2234.4026,N,11354.3277,E,0.00,;"
    (position,) = _positions(decode(frame.encode()))
    assert position.fix_time == expected


def test_full_standard_report() -> None:
    decoded = decode(
        b"imei:353451044508750,001,0809231929,13554900601,F,055403.000,A,2233.1870,N,"
        b"11354.3067,E,10.00,30.1,65.43,1,0,10.5%,0.0%,28;"
    )
    (position,) = decoded.events
    assert isinstance(position, Position)
    # Local 19:29 vs UTC 05:54 is -10:25 once wrapped to +-12 h: the next day in UTC.
    assert position.fix_time == datetime(2008, 9, 24, 5, 54, 3, tzinfo=UTC)
    assert position.valid is True
    assert position.lat == pytest.approx(22 + 33.1870 / 60)
    assert position.lon == pytest.approx(113 + 54.3067 / 60)
    assert position.speed_kmh == pytest.approx(18.52)  # 10 knots
    assert position.course_deg == 30.1
    assert position.altitude_m == 65.43
    assert dict(position.attributes) == {
        "ignition": True, "door": False, "fuel1": 10.5, "fuel2": 0.0, "temp1": 28, "event": "001",
    }


def test_hemisphere_letters_before_the_numbers() -> None:
    (position,) = _positions(decode(
        b"imei:353552045403597,tracker,150420050648,53.0,F,0.0,A,N,5306.64155,E,00700.77848,"
        b"0.0,,1.0,;"
    ))
    assert position.lat == pytest.approx(53 + 6.64155 / 60)
    assert position.lon == pytest.approx(7 + 0.77848 / 60)
    assert position.speed_kmh == 0.0 and position.course_deg is None
    assert position.altitude_m == 1.0


def test_missing_east_west_letter_is_tolerated() -> None:
    (position,) = _positions(decode(
        b"imei:012497000208821,tracker,1301072224,,F,142411.077,A,2227.0739,S,06855.2912,,0,0,;"
    ))
    assert position.lat == pytest.approx(-(22 + 27.0739 / 60))
    assert position.lon == pytest.approx(68 + 55.2912 / 60)  # no letter: taken as east
    assert position.speed_kmh == 0.0 and position.course_deg == 0.0


def test_invalid_fix_flag_v() -> None:
    (position,) = _positions(decode(
        f"imei:{IMEI},tracker,0809231429,,F,062947.294,V,2234.4026,N,11354.3277,E,0.00,;".encode()
    ))
    assert position.valid is False


@pytest.mark.parametrize(
    ("keyword", "alarm"),
    [
        ("low battery", AlarmType.LOW_BATTERY),
        ("stockade", AlarmType.GEOFENCE),
        ("move", AlarmType.MOVEMENT),
        ("speed", AlarmType.OVERSPEED),
        ("door alarm", AlarmType.DOOR),
        ("ac alarm", AlarmType.POWER_CUT),
        ("accident alarm", AlarmType.ACCIDENT),
        ("sensor alarm", AlarmType.VIBRATION),
        ("bonnet alarm", AlarmType.BONNET),
        ("footbrake alarm", AlarmType.FOOT_BRAKE),
        ("DTC", AlarmType.FAULT),
        ("oil1", AlarmType.FUEL_LEAK),
        ("T:+28.0", AlarmType.TEMPERATURE),
    ],
)
def test_alarm_keywords(keyword: str, alarm: AlarmType) -> None:
    decoded = decode(
        f"imei:{IMEI},{keyword},0809231429,,F,062947.294,A,2234.4026,N,11354.3277,E,0.00,;"
        .encode()
    )
    position, event = decoded.events
    assert isinstance(event, Alarm) and event.alarm is alarm and event.position is position
    assert isinstance(position, Position) and position.attributes["alarm"] == alarm.value
    assert decoded.replies == ()  # only the SOS is acknowledged


def test_keyword_attributes() -> None:
    def attributes_of(keyword: str, phone: str = "", tail: str = "") -> dict[str, object]:
        frame = (f"imei:{IMEI},{keyword},0809231429,{phone},F,062947.294,A,2234.4026,N,"
                 f"11354.3277,E,0.00,{tail};")
        return dict(_positions(decode(frame.encode()))[0].attributes)

    assert attributes_of("acc on") == {"ignition": True}
    # The keyword is the event being reported: it wins over the ignition slot of the tail.
    assert attributes_of("acc off", tail=",,1,1,0.0,0.0,23.0,") == {
        "ignition": False, "door": True, "fuel1": 0.0, "fuel2": 0.0, "temp1": 23.0}
    assert attributes_of("rfid", phone="49121185") == {
        "event": "rfid", "driver_unique_id": "49121185"}
    assert attributes_of("T:+28.0") == {"temp1": 28.0, "alarm": "temperature"}
    assert attributes_of("oil 51.67") == {"fuel": 51.67, "alarm": "fuel_leak"}
    assert attributes_of("vt14") == {"event": "vt14"}
    assert attributes_of("tracker") == {}
    assert attributes_of("DTC", tail="30.1,,1,0,10.5%,P0021,") == {
        "ignition": True, "door": False, "fuel1": 10.5, "dtcs": "P0021", "alarm": "fault"}
    # `oil1` firmwares put other data in the door/fuel slots: left undecoded, not misread.
    assert attributes_of("oil1", tail=",,,51.6,41.7,") == {"alarm": "fuel_leak"}


def test_cell_only_frames_give_status_not_position() -> None:
    status = _only(decode(b"imei:863070016871385,tracker,0000000119,,L,,,0FB6,,CB5D,,,;"), Status)
    assert isinstance(status, Status)
    assert dict(status.attributes) == {"lac": 0x0FB6, "cid": 0xCB5D}
    assert status.event_time is None
    alarm = _only(decode(b"imei:865456055519122,sensor alarm,2208011920,,L,;"), Alarm)
    assert isinstance(alarm, Alarm) and alarm.alarm is AlarmType.VIBRATION
    assert alarm.position is None
    empty = _only(decode(b"imei:359586015829802,tracker,000000000,13554900601,L,;"), Status)
    assert isinstance(empty, Status) and dict(empty.attributes) == {}


def test_obd_report() -> None:
    decoded = decode(
        b"imei:862106025092216,OBD,170605095949,195874,,370.8,808,066,30.0%,+87,13.0%,02444,"
        b"14.3,P0137,P0430,,;"
    )
    status = _only(decoded, Status)
    assert isinstance(status, Status)
    assert status.event_time == datetime(2017, 6, 5, 9, 59, 49, tzinfo=UTC)
    assert dict(status.attributes) == {
        "odometer": 195874, "fuel_consumption": 370.8, "hours": 808, "obd_speed": 66,
        "engine_load": 30.0, "coolant_temp": 87, "throttle": 13.0, "rpm": 2444,
        "battery": 14.3, "dtcs": "P0137 P0430",
    }


def test_alternative_format() -> None:
    decoded = decode(
        b"imei:861359038609986,Equipo 1,---,------,----,214734,241018,26,1,-33.42317,-70.61930,"
        b"067,229,0674,1.00,08,0,1,---,*"
    )
    (position,) = decoded.events
    assert isinstance(position, Position)
    assert position.fix_time == datetime(2018, 10, 24, 21, 47, 34, tzinfo=UTC)
    assert position.valid is True
    assert (position.lat, position.lon) == (-33.42317, -70.6193)
    assert position.speed_kmh == 67.0  # already km/h in this format
    assert (position.course_deg, position.altitude_m) == (229.0, 674.0)
    assert (position.satellites, position.hdop) == (8, 1.0)
    assert dict(position.attributes) == {"rssi": 26, "ignition": False, "charge": True}


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", "empty frame"),
        (b";", "empty frame"),
        (b"hello;", "unknown message start 'hello'"),
        (b"##,A;", "login frame without an IMEI: '##,A'"),
        (b"12ab;", "heartbeat is not an IMEI: '12ab'"),
        (b"imei:12x4567890123456,tracker,0809231429,,F,062947.294,A,2234.4026,N,11354.3277,E;",
         "invalid IMEI '12x4567890123456'"),
        (b"imei:359586015829802,tracker,0809231429,,X,062947.294,A,;",
         "unknown fix flag 'X' (expected F or L)"),
        (b"imei:359586015829802,tracker,0813231429,,F,062947.294,A,2234.4026,N,11354.3277,E,;",
         "invalid local date/time '0813231429'"),
        (b"imei:359586015829802,tracker,0809231429,,F,062947.294,Q,2234.4026,N,11354.3277,E,;",
         "unknown validity flag 'Q' (expected A or V)"),
        (b"imei:359586015829802,tracker,0809231429,,F,062947.294,A,9134.4026,N,11354.3277,E,;",
         "latitude out of range '9134.4026'"),
        (b"imei:359586015829802,tracker,0809231429,,F,062947.294,A,2234.4026,N,18154.3277,E,;",
         "longitude out of range '18154.3277'"),
        (b"imei:359586015829802,tracker,0809231429,,F,062947.294,A,2274.4026,N,11354.3277,E,;",
         "minutes out of range in latitude '2274.4026'"),
        (b"imei:359586015829802,tracker,0809231429,,F,062947.294,A,nan,N,11354.3277,E,;",
         "invalid latitude 'nan'"),
        (b"imei:359586015829802,tracker,0809231429,,F,062947.294,A,2234.4026,N,11354.3277,E,"
         b"fast,;", "invalid speed 'fast'"),
        (b"imei:359586015829802,tracker,0809231429,,F,062947.294,A,2234.4026,N,11354.3277,E,"
         b"1,400;", "course out of range '400'"),
        (b"imei:359586015829802,OBD,170605095949,1;",
         "OBD report has 4 fields, expected at least 13"),
        (b"imei:359586015829802,OBD,171305095949,,,,0,0,0.39%,70,9.41%,494,0.00;",
         "invalid OBD date/time '171305095949'"),
        (b"imei:861359038609986,Equipo 1,---,------,----,214734,241018,26,1,-93.42317,-70.61930,"
         b"067,229,0674,1.00,08,0,1,---,*", "latitude out of range '-93.42317'"),
        (b"imei:359586015829802,vr,0001abcd;", "photo data chunks (vr) are not supported"),
    ],
)
def test_rejections_are_specific(frame: bytes, reason: str) -> None:
    decoded = decode(frame)
    assert decoded.rejected is not None
    assert decoded.rejected.reason == reason
    assert decoded.replies == ()


# Commands --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (Command(CommandType.POSITION_SINGLE), b"**,imei:359586015829802,B;"),
        (Command(CommandType.REPORT_INTERVAL, interval_s=30), b"**,imei:359586015829802,C,30s;"),
        (Command(CommandType.REPORT_INTERVAL, interval_s=5), b"**,imei:359586015829802,C,05s;"),
        (Command(CommandType.REPORT_INTERVAL, interval_s=60), b"**,imei:359586015829802,C,60s;"),
        (Command(CommandType.REPORT_INTERVAL, interval_s=300), b"**,imei:359586015829802,C,05m;"),
        (Command(CommandType.REPORT_INTERVAL, interval_s=5400),
         b"**,imei:359586015829802,C,90m;"),
        (Command(CommandType.REPORT_INTERVAL, interval_s=3600),
         b"**,imei:359586015829802,C,01h;"),
        (Command(CommandType.REPORT_INTERVAL, interval_s=0), b"**,imei:359586015829802,D;"),
        (Command(CommandType.ENGINE_STOP), b"**,imei:359586015829802,J;"),
        (Command(CommandType.ENGINE_RESUME), b"**,imei:359586015829802,K;"),
    ],
)
def test_commands(command: Command, expected: bytes) -> None:
    assert encode_command(IMEI, command) == expected


@pytest.mark.parametrize(
    "command",
    [
        Command(CommandType.REBOOT),
        Command(CommandType.REPORT_INTERVAL),
        Command(CommandType.REPORT_INTERVAL, interval_s=-1),
        Command(CommandType.REPORT_INTERVAL, interval_s=150),  # 2.5 min: no exact unit
        Command(CommandType.REPORT_INTERVAL, interval_s=6000),  # 100 min
        Command(CommandType.REPORT_INTERVAL, interval_s=100 * 3600),
    ],
)
def test_unsupported_commands(command: Command) -> None:
    with pytest.raises(UnsupportedCommand):
        encode_command(IMEI, command)


@pytest.mark.parametrize("device_id", ["", "35958601582980;", "abc", "1" * 21])
def test_commands_refuse_ids_that_could_inject(device_id: str) -> None:
    with pytest.raises(ValueError, match="ASCII digits"):
        encode_command(device_id, Command(CommandType.POSITION_SINGLE))


# Device side -----------------------------------------------------------------------------

FIX = Fix(
    fix_time=datetime(2024, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
    lat=-33.5, lon=-70.25, speed_kmh=55.5, course_deg=123.4, altitude_m=560.0,
)


def test_device_frames() -> None:
    device = Gps103Device(IMEI)
    assert device.login() == b"##,imei:359586015829802,A;"
    assert device.heartbeat() == b"359586015829802;"
    assert device.position(FIX) == (
        b"imei:359586015829802,tracker,241231235959,,F,235959.999,A,3330.0000,S,07015.0000,W,"
        b"29.97,123.40,560.0,,,,,;"
    )
    assert device.sos(FIX).startswith(b"imei:359586015829802,help me,241231235959,,F,")
    assert device.report([FIX, FIX]) == device.position(FIX) * 2
    with_sensors = Fix(FIX.fix_time, 1.0, 2.0, attributes=attrs(ignition=True, fuel1=42.5,
                                                                  temp1=-3))
    assert device.position(with_sensors).endswith(b",1,,42.50%,,-3.0;")


def test_device_frames_decode_with_their_replies() -> None:
    device = Gps103Device(IMEI)
    assert decode(device.login()).replies == (Reply(b"LOAD", False),)
    assert decode(device.heartbeat()).replies == (Reply(b"ON", False),)
    sos = decode(device.sos(FIX))
    assert [type(e) for e in sos.events] == [Position, Alarm]
    assert sos.replies == (Reply(b"**,imei:359586015829802,E;", True),)
    with_sensors = Fix(FIX.fix_time, 1.0, 2.0, attributes=attrs(ignition=True, fuel1=42.5,
                                                                  temp1=-3))
    (position,) = _positions(decode(device.position(with_sensors)))
    assert dict(position.attributes) == {"ignition": True, "fuel1": 42.5, "temp1": -3.0}


def test_device_answers_position_requests_only() -> None:
    device = Gps103Device(IMEI)
    request = encode_command(IMEI, Command(CommandType.POSITION_SINGLE))
    assert device.command_answer(request, FIX) == device.position(FIX)
    assert device.command_answer(b"**,imei:359586015829802,B", FIX) == device.position(FIX)
    assert device.command_answer(b"**,imei:111111111111111,B;", FIX) is None
    engine_stop = encode_command(IMEI, Command(CommandType.ENGINE_STOP))
    assert device.command_answer(engine_stop, FIX) is None


# Framer ----------------------------------------------------------------------------------

LOGIN = b"##,imei:359586015829802,A;"
HEARTBEAT = b"359586015829802;"
REPORT = (b"imei:359586015829802,tracker,0809231429,13554900601,F,062947.294,A,2234.4026,N,"
          b"11354.3277,E,0.00,;")
ALTERNATIVE = (b"imei:861359038609986,Equipo 1,---,------,----,214734,241018,26,1,-33.42317,"
               b"-70.61930,067,229,0674,1.00,08,0,1,---,*")


def test_framer_splits_merged_frames_and_keeps_terminators() -> None:
    framer = Gps103Framer()
    out = framer.feed(LOGIN + HEARTBEAT + REPORT + ALTERNATIVE + b"imei:1,x,y\r\n")
    assert out == [LOGIN, HEARTBEAT, REPORT, ALTERNATIVE, b"imei:1,x,y\r\n"]
    assert framer.buffered == 0


def test_framer_skips_garbage_and_ignores_line_breaks_between_frames() -> None:
    framer = Gps103Framer()
    out = framer.feed(b"GET / HTTP/1.0\r\n" + LOGIN + b"\r\n" + b"\x00 \r\n" + HEARTBEAT)
    frames = _frames(out)
    # `1` of `HTTP/1.0` is a digit: it starts a (rejected) frame that ends at the line break.
    assert frames[-2:] == [LOGIN, HEARTBEAT]
    assert any(isinstance(item, Discarded) for item in out)
    assert Gps103Framer().feed(b"\r\n\r\n" + LOGIN + b"\r\n") == [LOGIN]


def test_framer_keeps_a_start_cut_at_the_end_of_a_chunk() -> None:
    for cut in range(1, 6):
        framer = Gps103Framer()
        out = framer.feed(b"xx" + REPORT[:cut])
        assert framer.buffered == cut, cut
        assert _frames(out + framer.feed(REPORT[cut:])) == [REPORT]
    framer = Gps103Framer()
    assert _frames(framer.feed(b"#")) == []
    assert _frames(framer.feed(b"#,imei:359586015829802,A;")) == [LOGIN]


def test_framer_byte_by_byte() -> None:
    framer = Gps103Framer()
    frames: list[bytes] = []
    for byte in LOGIN + REPORT + HEARTBEAT:
        frames += _frames(framer.feed(bytes([byte])))
    assert frames == [LOGIN, REPORT, HEARTBEAT]


def test_framer_drops_over_long_frames_and_stays_bounded() -> None:
    framer = Gps103Framer(max_frame_bytes=64)
    out = framer.feed(b"imei:" + b"9" * 200)
    assert [type(item) for item in out] == [Discarded]
    assert isinstance(out[0], Discarded) and "longer than 64 bytes" in out[0].reason
    assert framer.buffered <= 64
    assert _frames(framer.feed(b";" + HEARTBEAT)) == [HEARTBEAT]
    complete = Gps103Framer(max_frame_bytes=64).feed(b"imei:" + b"9" * 100 + b";")
    assert [type(item) for item in complete] == [Discarded]


# Properties --------------------------------------------------------------------------------

_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31, 23, 59, 59),
    timezones=st.just(UTC),
)
_edge_times = st.sampled_from([
    datetime(2023, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
    datetime(2024, 1, 1, 0, 0, 0, tzinfo=UTC),
    datetime(2024, 2, 29, 23, 59, 30, tzinfo=UTC),
    datetime(2024, 3, 1, 0, 0, 1, tzinfo=UTC),
])
_fixes = st.builds(
    Fix,
    fix_time=st.one_of(_times, _edge_times),
    lat=st.floats(min_value=-90, max_value=90),
    lon=st.floats(min_value=-180, max_value=180),
    speed_kmh=st.floats(min_value=0, max_value=400),
    course_deg=st.floats(min_value=0, max_value=359.99),
    altitude_m=st.floats(min_value=-500, max_value=9000),
    valid=st.booleans(),
)


def _check_roundtrip(fix: Fix, position: Position) -> None:
    assert position.device_id == IMEI
    assert position.fix_time == fix.fix_time.replace(
        microsecond=fix.fix_time.microsecond // 1000 * 1000)
    assert position.valid is fix.valid
    assert position.lat == pytest.approx(fix.lat, abs=1e-5)
    assert position.lon == pytest.approx(fix.lon, abs=1e-5)
    assert position.speed_kmh == pytest.approx(fix.speed_kmh, abs=0.01)
    assert position.course_deg == pytest.approx(fix.course_deg, abs=0.005)
    assert position.altitude_m == pytest.approx(fix.altitude_m, abs=0.05)


@SETTINGS
@given(fix=_fixes)
def test_device_position_roundtrip(fix: Fix) -> None:
    device = Gps103Device(IMEI)
    framer = Gps103Framer()
    (frame,) = framer.feed(device.position(fix))
    assert isinstance(frame, bytes)
    (position,) = decode(frame).events
    assert isinstance(position, Position)
    _check_roundtrip(fix, position)
    sos = decode(device.sos(fix))
    assert isinstance(sos.events[0], Position)
    _check_roundtrip(fix, sos.events[0])


@SETTINGS
@given(
    when=st.datetimes(min_value=datetime(2001, 1, 2), max_value=datetime(2098, 12, 30),
                      timezones=st.just(UTC)),
    offset_minutes=st.integers(min_value=-719, max_value=720),
    with_seconds=st.booleans(),
)
def test_time_zone_offsets_are_removed(when: datetime, offset_minutes: int,
                                       with_seconds: bool) -> None:
    """A device in any zone within +-12 h: local date/hh:mm plus UTC time give the UTC instant."""
    when = when.replace(microsecond=when.microsecond // 1000 * 1000)
    local = when + timedelta(minutes=offset_minutes)
    local_text = f"{local:%y%m%d%H%M%S}" if with_seconds else f"{local:%y%m%d%H%M}"
    frame = (f"imei:{IMEI},tracker,{local_text},,F,{when:%H%M%S}.{when.microsecond // 1000:03d},"
             f"A,2234.4026,N,11354.3277,E,0.00,;")
    (position,) = _positions(decode(frame.encode()))
    assert position.fix_time == when


_STREAM = LOGIN + HEARTBEAT + REPORT + b"\r\n" + ALTERNATIVE + REPORT + HEARTBEAT


@SETTINGS
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(_STREAM)), max_size=30))
def test_any_chunking_gives_the_same_frames(cuts: list[int]) -> None:
    framer = Gps103Framer()
    frames: list[bytes] = []
    bounds = [0, *sorted(cuts), len(_STREAM)]
    for start, end in itertools.pairwise(bounds):
        frames += _frames(framer.feed(_STREAM[start:end]))
    assert frames == [LOGIN, HEARTBEAT, REPORT, ALTERNATIVE, REPORT, HEARTBEAT]
    assert framer.buffered == 0


@SETTINGS
@given(chunks=st.lists(st.binary(max_size=300), max_size=20))
def test_random_bytes_never_raise_and_stay_bounded(chunks: list[bytes]) -> None:
    framer = Gps103Framer(max_frame_bytes=128)
    for chunk in chunks:
        for item in framer.feed(chunk):
            if isinstance(item, bytes):
                assert len(item) <= 128
                decoded = decode(item)
                assert decoded.events
        assert framer.buffered <= 128
    for chunk in chunks:
        assert decode(chunk).events


_FIELD_TEXT = st.sampled_from(
    ["", "A", "V", "N", "S", "E", "W", "F", "L", "nan", "inf", "-1", "99999", "1e308", "2234.4026",
     "+", "%", "0.0%", "x" * 40, "\u00b2", "\xff", "imei:", "12/13/99 99:99", "235960.000"])


@SETTINGS
@given(data=st.data())
def test_mutated_frames_never_raise(data: st.DataObject) -> None:
    base = data.draw(st.sampled_from([REPORT, ALTERNATIVE, LOGIN, HEARTBEAT, (
        b"imei:862106025092216,OBD,170605095949,195874,,370.8,808,066,30.0%,+87,13.0%,02444,"
        b"14.3,P0137,P0430,,;")]))
    fields = base.decode("latin-1").split(",")
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        index = data.draw(st.integers(min_value=0, max_value=len(fields) - 1))
        fields[index] = data.draw(_FIELD_TEXT)
    frame = ",".join(fields).encode("utf-8")
    cut = data.draw(st.integers(min_value=0, max_value=len(frame)))
    for candidate in (frame, frame[:cut]):
        decoded = decode(candidate)
        assert decoded.events
        for event in decoded.events:
            if isinstance(event, Rejected):
                assert event.reason
            elif isinstance(event, Position):
                assert -90 <= event.lat <= 90 and -180 <= event.lon <= 180
                assert event.fix_time.tzinfo is not None
