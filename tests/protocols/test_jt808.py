"""jt808 (JT/T 808): stuffing, identity, framing, decoding, replies, commands, device side."""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta
from operator import xor as xor2

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
    Rejected,
    Reply,
    Status,
    UnsupportedCommand,
    detect,
    get_codec,
)
from protocols.events import attrs
from protocols.imei import complete_imei
from protocols.jt808 import (
    CODEC,
    Jt808Device,
    Jt808Framer,
    Jt808Options,
    Jt808Session,
    auth_code_for_phone,
    build_command,
    device_id_for_phone,
    encode_command,
    encode_text,
    encode_transparent,
    escape,
    phone_for_id,
    unescape,
)
from protocols.jt808.identity import BadField
from protocols.jt808.session import MAX_PACKETS
from protocols.jt808.wire import build, parse, xor

IMEI = complete_imei("86649607758216")  # 866496077582164, the MD300 of the corpus
CLOCK = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)
# The header and basic block of the worked example of PROTOCOLS-WAVE2.md §5.4 (an SOS location
# report), with items mileage, signals, signal strength and satellites.
SOS_FRAME = bytes.fromhex(
    "7e0200002e094027587492000a000000010000000a03083db7001329f30000001400001304121649520104"
    "000000002504000000003001143101069e7e"
)
SOS_REPLY = bytes.fromhex("7e800100050940275874920000000a0200005c7e")
# Registration of the 2019 corpus unit (its phone is its IMEI, zero-padded).
REGISTRATION_2019 = bytes.fromhex(
    "7e0100405c010000086649607758216452180000000000000000000000000000004d44333030000000000000"
    "0000000000000000000000000000000000000038363634393630373735383231363400000000000000000000"
    "000000000004000000000000000000000000000000007a7e"
)
# A 2013 registration with a GBK plate (粤B88888).
REGISTRATION_2013 = bytes.fromhex(
    "7e0100002d0141305678720024002c012f373031313142534a2d41362d42440000000000000000000000303536"
    "3738373201d4c14238383838386d7e"
)
FIX = Fix(
    fix_time=datetime(2026, 5, 1, 10, 20, 30, tzinfo=UTC), lat=-33.918861, lon=18.4233,
    speed_kmh=42.5, course_deg=271.0, altitude_m=17.0, satellites=9,
    attributes=attrs(ignition=True, odometer=123_400, rssi=25),
)


def session(**options: object) -> Jt808Session:
    return Jt808Session(Jt808Options(**options), lambda: CLOCK)  # type: ignore[arg-type]


def frames_of(data: bytes, framer: Jt808Framer | None = None) -> list[bytes]:
    return [f for f in (framer or Jt808Framer()).feed(data) if isinstance(f, bytes)]


def one(decoded: Decoded, kind: type) -> object:
    found = [e for e in decoded.events if isinstance(e, kind)]
    assert len(found) == 1, decoded.events
    return found[0]


# Codec and detection -----------------------------------------------------------------------


def test_codec_registered_on_port_5015() -> None:
    assert get_codec("jt808") is CODEC
    assert CODEC.default_port == 5015
    assert CODEC.binary is True
    assert CODEC.commands == frozenset(CommandType)
    assert CODEC.wire_ids(IMEI) == ()


def test_detection_takes_7e_and_leaves_other_protocols_alone() -> None:
    assert detect(SOS_FRAME[:3]) == "jt808"
    assert detect(b"\x7e") == "jt808"
    assert detect(b"(027044702512BP00HSO)") == "tk103"
    assert detect(b"+RESP:GTFRI,") == "gl300"
    assert CODEC.detect(b"$$\x7e") is False


# Stuffing and check code -------------------------------------------------------------------


def test_stuffing_vectors() -> None:
    assert escape(bytes.fromhex("307e087d55")) == bytes.fromhex("307d02087d0155")
    assert unescape(bytes.fromhex("307d02087d0155")) == bytes.fromhex("307e087d55")
    assert escape(b"\x7d\x02") == b"\x7d\x01\x02"  # not mistaken for an escaped 7E
    assert unescape(b"\x7d\x01\x02") == b"\x7d\x02"


@pytest.mark.parametrize("wire", [b"\x7d", b"ab\x7d\x03", b"\x7d\x7d\x01"])
def test_bad_stuffing_is_refused_with_its_offset(wire: bytes) -> None:
    with pytest.raises(BadField, match="0x7D at offset"):
        unescape(wire)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_stuffing_round_trip_of_any_bytes(data: bytes) -> None:
    wire = escape(data)
    assert b"\x7e" not in wire
    assert unescape(wire) == data
    assert xor(data) == functools.reduce(xor2, data, 0)


def test_every_byte_value_crosses_the_wire() -> None:
    """A body holding all 256 byte values, from a phone holding 7D and 7E, arrives intact."""
    phone = bytes.fromhex("4f07788e7e7d")
    body = b"\x99" + bytes(range(256))  # 0x0900 of an unknown type: kept as hex
    wire = build(0x0900, phone, 0x7D7E, body)
    assert wire.count(b"\x7e") == 2
    (frame,) = frames_of(wire)
    decoded = session().decode(frame)
    status = one(decoded, Status)
    assert isinstance(status, Status)
    assert status.attributes["data"] == bytes(range(256)).hex()
    assert decoded.notes == ()
    (reply,) = decoded.replies
    assert parse(reply.data).body == b"\x7d\x7e\x09\x00\x00"


# Identity ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "device_id"),
    [
        ("013912345678", "013912345678"),  # 2013: the 12 digits, leading zero kept
        ("000000000000", "000000000000"),
        ("00000000013912345678", "013912345678"),  # 2019: the same unit keeps its id
        ("00000866496077582164", "866496077582164"),  # 2019: a padded IMEI is the IMEI
        ("00000123456789012345", "123456789012345"),
        ("00000012345678901237", "012345678901237"),  # an IMEI keeps its leading zero
        ("00000012345678901234", "12345678901234"),  # no IMEI (bad Luhn digit): significant

        ("00000001234567890123", "1234567890123"),
        ("4f07788ef87d", "868935060010210"),  # Jimi: IMEI packed in 48 bits
        ("0000000000ab", "000000000001719"),  # small packed numbers are zero-padded
    ],
)
def test_device_id_for_phone(phone: str, device_id: str) -> None:
    assert device_id_for_phone(bytes.fromhex(phone)) == device_id


@pytest.mark.parametrize(
    ("phone", "reason"),
    [
        ("00001234567890123456", "16 significant digits"),
        ("12345678901234567890", "20 significant digits"),
        ("ffffffffffff", "neither BCD digits nor an IMEI"),
        ("0000000000000000abcd", "must be BCD digits"),
    ],
)
def test_phones_that_give_no_device_id(phone: str, reason: str) -> None:
    with pytest.raises(BadField, match=reason):
        device_id_for_phone(bytes.fromhex(phone))
    frame = build(0x0002, bytes.fromhex(phone), 1, b"",
                  version=1 if len(phone) == 20 else None)
    decoded = session().decode(frame)
    assert decoded.device_id is None
    assert decoded.rejected is not None and reason in decoded.rejected.reason
    assert decoded.replies == ()


def test_auth_code_is_the_terminal_id_in_ascii() -> None:
    assert auth_code_for_phone(bytes.fromhex("013912345678")) == b"013912345678"
    assert auth_code_for_phone(bytes.fromhex("00000866496077582164")) == b"00000866496077582164"
    assert auth_code_for_phone(bytes.fromhex("4f07788ef87d")) == b"868935060010210"


_phones = st.one_of(
    st.from_regex(r"[0-9]{12}", fullmatch=True).map(bytes.fromhex),
    st.from_regex(r"[1-9][0-9]{0,14}", fullmatch=True).map(lambda d: bytes.fromhex(d.zfill(20))),
    st.integers(0, 10**14 - 1).map(lambda n: n.to_bytes(6, "big")),
)


@settings(max_examples=300, deadline=None)
@given(_phones)
def test_phone_for_id_addresses_the_same_device(phone: bytes) -> None:
    """Commands without an open connection reach a phone that gives the same device id."""
    try:
        device_id = device_id_for_phone(phone)
    except BadField:
        return
    again, version = phone_for_id(device_id)
    assert len(again) == (10 if version is not None else 6)
    if len(device_id) == 15 and len(phone) == 10:
        # 15 digits are packed as the reference does: a 2019 unit with a 15-digit phone is
        # addressed through its open connection (test_commands_follow_the_layout_...).
        assert version is None and again == int(device_id[:14]).to_bytes(6, "big")
    elif len(device_id) == 15 and again.hex().isdigit():
        # A packed IMEI whose 12 hex digits happen to be decimal reads as a BCD phone
        # (documented: such a unit has that 12-digit id).
        assert device_id_for_phone(again) == again.hex()
    else:
        assert device_id_for_phone(again) == device_id


@pytest.mark.parametrize("bad", ["", "12ab", "1234567890123456", "١٢٣"])
def test_phone_for_id_refuses_non_ids(bad: str) -> None:
    with pytest.raises(ValueError, match="1 to 15 digits"):
        phone_for_id(bad)


# Framer ------------------------------------------------------------------------------------


def test_framer_keeps_wire_bytes_and_reports_leading_junk() -> None:
    out = Jt808Framer().feed(b"$$" + SOS_FRAME)
    assert out == [Discarded("bytes outside a frame", 2), SOS_FRAME]


def test_framer_resynchronises_on_two_delimiters() -> None:
    tail_of_lost_frame = bytes.fromhex("00010203107e")
    out = Jt808Framer().feed(tail_of_lost_frame + SOS_FRAME + SOS_FRAME)
    assert [f for f in out if isinstance(f, bytes)] == [SOS_FRAME, SOS_FRAME]
    assert out[0] == Discarded("bytes outside a frame", 5)


def test_framer_text_results_between_binary_frames() -> None:
    text = b"(740190311185,1,001,ELOCK,3,529439)"
    assert frames_of(SOS_FRAME + text + SOS_FRAME) == [SOS_FRAME, text, SOS_FRAME]
    # A text that lost its ")" is cut at the next frame, which survives.
    broken = frames_of(b"(7401903,1,0" + SOS_FRAME)
    assert broken == [b"(7401903,1,0", SOS_FRAME]
    decoded = session().decode(broken[0])
    assert decoded.rejected is not None and "no closing ')'" in decoded.rejected.reason


def test_framer_fed_byte_by_byte() -> None:
    framer = Jt808Framer()
    got: list[bytes] = []
    for i in range(len(SOS_FRAME) * 2):
        got += frames_of((SOS_FRAME * 2)[i:i + 1], framer)
    assert got == [SOS_FRAME, SOS_FRAME]
    assert framer.buffered == 0


def test_framer_drops_an_over_long_frame_and_recovers() -> None:
    framer = Jt808Framer(max_frame_bytes=128)
    out = framer.feed(b"\x7e" + b"\x01" * 1000)
    assert any(isinstance(i, Discarded) and "longer than 128" in i.reason for i in out)
    assert framer.buffered <= 128
    out = framer.feed(b"\x7e" + SOS_FRAME)
    assert out[-1] == SOS_FRAME
    assert framer.buffered == 0


# Decoding and replies ----------------------------------------------------------------------


def test_sos_location_report() -> None:
    decoded = session().decode(SOS_FRAME)
    assert decoded.device_id == "094027587492"
    position = one(decoded, Position)
    alarm = one(decoded, Alarm)
    assert isinstance(position, Position) and isinstance(alarm, Alarm)
    assert position.fix_time == datetime(2013, 4, 12, 8, 49, 52, tzinfo=UTC)  # sent at GMT+8
    assert position.valid is True
    assert position.lat == pytest.approx(50.871735)
    assert position.lon == pytest.approx(-1.255923)
    assert position.speed_kmh == 2.0
    assert position.satellites == 6
    assert position.attributes["rssi"] == 20
    assert position.attributes["alarm"] == "sos"
    assert alarm.alarm is AlarmType.SOS and alarm.position is position
    assert decoded.replies == (Reply(SOS_REPLY, after_store=True),)


def test_timezone_option() -> None:
    utc = session(timezone="UTC").decode(SOS_FRAME)
    position = one(utc, Position)
    assert isinstance(position, Position)
    assert position.fix_time == datetime(2013, 4, 12, 16, 49, 52, tzinfo=UTC)
    west = one(session(timezone="-05:30").decode(SOS_FRAME), Position)
    assert isinstance(west, Position)
    assert west.fix_time == datetime(2013, 4, 12, 22, 19, 52, tzinfo=UTC)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timezone": "Beijing"}, "as +HH:MM or -HH:MM"),
        ({"timezone": "+15:00"}, "-14:00 to +14:00"),
        ({"model": "MV720"}, "no model-specific decoding"),
    ],
)
def test_options_refuse_wrong_values(options: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Jt808Options(**options)  # type: ignore[arg-type]


def test_options_are_documented() -> None:
    import dataclasses

    for option in dataclasses.fields(Jt808Options):
        assert option.metadata["doc"]
    assert Jt808Options(model="mv710g").family == "micodus"


def test_registration_2019_announces_the_imei() -> None:
    decoded = session().decode(REGISTRATION_2019)
    login = one(decoded, Login)
    assert isinstance(login, Login)
    assert login.device_id == IMEI
    assert dict(login.attributes) == {
        "layout": "2019", "province": 0, "city": 0, "model": "MD300", "terminal_id": IMEI,
        "plate_color": 4, "imei": IMEI}
    assert decoded.replies == (Reply(bytes.fromhex(
        "7e81004017010000086649607758216400005218003030303030383636343936303737353832313634bf"
        "7e"), after_store=False),)


def test_registration_2013_and_authentication() -> None:
    conn = session()
    decoded = conn.decode(REGISTRATION_2013)
    login = one(decoded, Login)
    assert isinstance(login, Login)
    assert login.attributes["manufacturer"] == "70111"
    assert login.attributes["model"] == "BSJ-A6-BD"
    assert login.attributes["terminal_id"] == "0567872"
    assert login.attributes["plate"] == "粤B88888"
    assert "imei" not in login.attributes
    (reply,) = decoded.replies
    code = parse(reply.data).body[3:]
    assert code == b"014130567872"

    phone = bytes.fromhex("014130567872")
    good = conn.decode(build(0x0102, phone, 0x25, code))
    auth = one(good, Login)
    assert isinstance(auth, Login) and auth.attributes["auth_code_ok"] is True
    assert good.notes == ()
    assert good.replies == (Reply(conn._prefix.general(0x25, 0x0102, 0), False),)  # type: ignore[union-attr]

    wrong = conn.decode(build(0x0102, phone, 0x26, b"2011110811332196"))
    other = one(wrong, Login)
    assert isinstance(other, Login) and other.attributes["auth_code_ok"] is False
    assert wrong.notes == ("auth_code_mismatch",)
    assert parse(wrong.replies[0].data).body[-1] == 0  # accepted, as the reference does


def test_strict_authentication_refuses_a_foreign_code() -> None:
    phone = bytes.fromhex("094027849470")
    decoded = session(check_auth_code=True).decode(build(0x0102, phone, 7, b"123456"))
    assert decoded.rejected is not None
    assert "must register again" in decoded.rejected.reason
    assert parse(decoded.replies[0].data).body == bytes.fromhex("0007010201")  # result 1
    ok = session(check_auth_code=True).decode(build(0x0102, phone, 8, b"094027849470"))
    assert ok.rejected is None and isinstance(ok.events[0], Login)


def test_heartbeat_is_answered_at_once() -> None:
    phone = bytes.fromhex("043048325465")
    decoded = session().decode(build(0x0002, phone, 0xB7, b""))
    assert isinstance(decoded.events[0], Heartbeat)
    assert decoded.replies == (Reply(bytes.fromhex("7e80010005043048325465000000b70002004e7e"),
                                     after_store=False),)
    battery = session().decode(build(0x0002, phone, 1, bytes((80, 25, 1))))
    beat = one(battery, Heartbeat)
    assert isinstance(beat, Heartbeat)
    assert dict(beat.attributes) == {"battery_level": 80, "rssi": 25, "status": 1}


def test_2019_replies_carry_the_version() -> None:
    device = Jt808Device(IMEI)
    decoded = session().decode(device.heartbeat())
    header = parse(decoded.replies[0].data)
    assert header.version == 1 and header.phone == device.phone


def test_time_request_gets_the_server_clock() -> None:
    phone = bytes.fromhex("013912345678")
    decoded = session().decode(build(0x0109, phone, 3, b""))
    (reply,) = decoded.replies
    header = parse(reply.data)
    assert header.msg_id == 0x8109
    assert header.body == bytes.fromhex("07ea020304050600")  # 2026-02-03 04:05:06, result 0
    assert reply.after_store is False


def test_unknown_message_is_refused_as_not_supported() -> None:
    decoded = session().decode(build(0x0801, bytes.fromhex("013912345678"), 9, b"\x01\x02"))
    assert decoded.rejected is not None
    assert decoded.rejected.reason == "message 0x0801 is not supported"
    assert parse(decoded.replies[0].data).body == bytes.fromhex("0009080103")


def test_unreadable_body_is_answered_message_error() -> None:
    decoded = session().decode(build(0x0200, bytes.fromhex("013912345678"), 4, b"\x00" * 10))
    assert decoded.rejected is not None
    assert "basic block needs 28" in decoded.rejected.reason
    assert decoded.device_id == "013912345678"
    assert parse(decoded.replies[0].data).body == bytes.fromhex("0004020002")


def test_encrypted_body_is_not_supported() -> None:
    frame = build(0x0200, bytes.fromhex("013912345678"), 4, b"\x00" * 28, attribute_bits=0x0400)
    decoded = session().decode(frame)
    assert decoded.rejected is not None and "encrypted body" in decoded.rejected.reason
    assert parse(decoded.replies[0].data).body[-1] == 3


def test_out_of_range_coordinates_are_refused() -> None:
    device = Jt808Device(IMEI)
    body = bytearray(device.location_body(FIX))
    body[8:12] = (95_000_000).to_bytes(4, "big")
    decoded = session().decode(build(0x0200, device.phone, 1, bytes(body), version=1))
    assert decoded.rejected is not None and "latitude 95.0 out of range" in \
        decoded.rejected.reason


def test_bad_check_code_is_accepted_and_noted() -> None:
    broken = SOS_FRAME[:-2] + b"\x11\x7e"
    decoded = session().decode(broken)
    assert decoded.notes == ("bad_checksum",)
    assert isinstance(decoded.events[0], Position)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"\x7e\x7e", "must start and end with 0x7E"),
        (b"\x7e\x02\x00\x00\x7e", "at least 12 needed"),
        (b"\x7e\x02\x00\x7d\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x7e", "0x7D at offset"),
        (SOS_FRAME + SOS_FRAME, "two frames given as one"),
    ],
)
def test_malformed_frames_say_why(frame: bytes, reason: str) -> None:
    decoded = session().decode(frame)
    assert decoded.rejected is not None and reason in decoded.rejected.reason
    assert decoded.replies == ()


def test_model_option_decodes_the_micodus_door() -> None:
    device = Jt808Device(IMEI)
    body = bytearray(device.location_body(FIX))
    body[4:8] = (int.from_bytes(body[4:8], "big") | 0x10000).to_bytes(4, "big")
    frame = build(0x0200, device.phone, 1, bytes(body), version=1)
    plain = one(session().decode(frame), Position)
    door = one(session(model="MV710G").decode(frame), Position)
    assert isinstance(plain, Position) and isinstance(door, Position)
    assert "door" not in plain.attributes and door.attributes["door"] is True


def test_answers_to_commands() -> None:
    conn = session()
    phone = bytes.fromhex("013912345678")
    general = conn.decode(build(0x0001, phone, 5, bytes.fromhex("002a810500")))
    result = one(general, CommandResult)
    assert isinstance(result, CommandResult)
    assert (result.command, result.result, result.attributes["serial"]) == \
        ("0x8105", "success", 42)
    assert general.replies == ()
    device = Jt808Device("000000000000000", version=2013, phone="013912345678")
    answer = device.command_answer(build(0x8201, phone, 77, b""), FIX)
    assert answer is not None
    decoded = conn.decode(answer)
    assert [type(e) for e in decoded.events] == [Position, CommandResult]
    assert decoded.events[1].attributes["serial"] == 77  # type: ignore[union-attr]
    assert decoded.replies == ()


def test_text_results() -> None:
    conn = session()
    phone = bytes.fromhex("045450091546")
    text = conn.decode(build(0x1300, phone, 1, b"\x01\x09" + "\x00Set OK!\r".encode(
        "utf-16-be")))
    assert one(text, CommandResult).result == "Set OK!"  # type: ignore[attr-defined]
    jimi = conn.decode(b"(740190311185,1,001,ELOCK,3,529439)")
    assert jimi.device_id == "045450091546"  # the connection's terminal
    assert one(jimi, CommandResult).result == "(740190311185,1,001,ELOCK,3,529439)"  # type: ignore[attr-defined]
    assert session().decode(b"(1,2)").events == ()  # before any identified frame: nothing
    base = session().decode(b"(794104004140,1,001,BASE,2,TIME)")
    assert base.replies == (Reply(b"(794104004140,1,001,BASE,2,20260203040506)", False),)


# Sub-packaged messages ---------------------------------------------------------------------


def _fixes(count: int) -> list[Fix]:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    return [Fix(fix_time=start + timedelta(seconds=30 * i), lat=22.5 + i / 1000, lon=114.0,
                speed_kmh=i % 90, course_deg=i % 360, satellites=i % 20) for i in range(count)]


def test_sub_packaged_batch_is_put_together_and_every_packet_answered() -> None:
    device = Jt808Device(IMEI, max_body=64)
    frames = frames_of(device.report(_fixes(6), buffered=True))
    assert len(frames) > 2
    headers = [parse(f) for f in frames]
    assert [(h.packet_count, h.packet_index) for h in headers] == \
        [(len(frames), i) for i in range(1, len(frames) + 1)]
    conn = session()
    results = [conn.decode(f) for f in frames]
    for partial in results[:-1]:
        assert partial.events == () and partial.replies == () and partial.rejected is None
    last = results[-1]
    positions = [e for e in last.events if isinstance(e, Position)]
    assert [p.fix_time for p in positions] == [f.fix_time for f in _fixes(6)]
    assert all(p.attributes["buffered"] is True for p in positions)
    assert [parse(r.data).body[:2] for r in last.replies] == \
        [h.serial.to_bytes(2, "big") for h in headers]
    assert all(r.after_store for r in last.replies)


def test_packets_out_of_order_and_a_dropped_message() -> None:
    device = Jt808Device(IMEI, max_body=64)
    first = frames_of(device.report(_fixes(4)))
    second = frames_of(device.report(_fixes(4)))
    assert len(second) == len(first) > 2  # same message id and count: told apart by serials
    conn = session()
    assert conn.decode(first[0]).events == ()  # the rest of the first message never comes
    results = [conn.decode(f) for f in reversed(second)]
    assert results[0].notes == ("packets_dropped",)
    positions = [e for e in results[-1].events if isinstance(e, Position)]
    assert len(positions) == 4
    assert [parse(r.data).body[:2] for r in results[-1].replies] == \
        [parse(f).serial.to_bytes(2, "big") for f in second]


def test_packet_limits() -> None:
    phone = bytes.fromhex("013912345678")
    too_many = session().decode(build(0x0704, phone, 1, b"\x00", packet=(MAX_PACKETS + 1, 1)))
    assert too_many.rejected is not None and "in 65 packets" in too_many.rejected.reason
    assert parse(too_many.replies[0].data).body[-1] == 3  # not supported
    bad_index = session().decode(build(0x0704, phone, 1, b"\x00", packet=(3, 4)))
    assert bad_index.rejected is not None and "packet index 4 of 3" in bad_index.rejected.reason
    zero = session().decode(build(0x0704, phone, 1, b"\x00", packet=(0, 0)))
    assert zero.rejected is not None and "packet count of 0" in zero.rejected.reason


# Commands ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "msg_id", "body"),
    [
        (Command(CommandType.POSITION_SINGLE), 0x8201, ""),
        # one parameter: id 0x00000029, 4 bytes, 60 s
        (Command(CommandType.REPORT_INTERVAL, interval_s=60), 0x8103, "0100000029040000003c"),
        (Command(CommandType.ENGINE_STOP), 0x8105, "f0"),
        (Command(CommandType.ENGINE_RESUME), 0x8105, "f1"),
        (Command(CommandType.REBOOT), 0x8105, "04"),
    ],
)
def test_commands(command: Command, msg_id: int, body: str) -> None:
    frame = build_command("013912345678", command, serial=0x1234)
    header = parse(frame)
    assert (header.msg_id, header.serial, header.phone.hex()) == (msg_id, 0x1234, "013912345678")
    assert header.body.hex() == body
    assert header.version is None and header.checksum_ok and header.length_ok


def test_command_serials_count_up() -> None:
    first = parse(encode_command("013912345678", Command(CommandType.REBOOT))).serial
    second = parse(encode_command("013912345678", Command(CommandType.REBOOT))).serial
    assert second == (first + 1) & 0xFFFF


def test_command_errors() -> None:
    with pytest.raises(UnsupportedCommand, match="needs interval_s"):
        encode_command("013912345678", Command(CommandType.REPORT_INTERVAL))
    with pytest.raises(UnsupportedCommand, match="no interval that stops"):
        encode_command("013912345678", Command(CommandType.REPORT_INTERVAL, interval_s=0))
    with pytest.raises(ValueError, match="1 to 15 digits"):
        encode_command("tracker-1", Command(CommandType.REBOOT))
    with pytest.raises(UnsupportedCommand, match="at most"):
        encode_text("013912345678", "x" * 2000)


def test_commands_follow_the_layout_of_the_open_connection() -> None:
    device = Jt808Device(IMEI)  # 2019, phone = padded IMEI
    offline = parse(encode_command(IMEI, Command(CommandType.POSITION_SINGLE)))
    assert offline.version is None and offline.phone == int(IMEI[:14]).to_bytes(6, "big")
    conn = session()
    conn.decode(device.heartbeat())
    online = parse(encode_command(IMEI, Command(CommandType.POSITION_SINGLE)))
    assert online.version == 1 and online.phone == device.phone
    assert device.command_answer(encode_command(IMEI, Command(CommandType.POSITION_SINGLE)),
                                 FIX) is not None
    del conn


def test_text_commands() -> None:
    text = parse(encode_text("013912345678", "RELAY,1#", serial=5))
    assert (text.msg_id, text.body) == (0x8300, b"\x01RELAY,1#")
    jimi = parse(encode_transparent("013912345678", "TEST", serial=5))
    assert (jimi.msg_id, jimi.body) == (0x8900, b"\xf0TEST")


# Device side -------------------------------------------------------------------------------


def test_device_frames_are_byte_exact() -> None:
    device = Jt808Device(IMEI)
    assert device.device_id == IMEI
    # 2019 layout: attributes 0x4000, version 01, the IMEI as the 20-digit phone, serial 0000.
    assert device.heartbeat() == bytes.fromhex("7e00024000010000086649607758216400006e7e")
    # Status 07 (ignition, fix, south), 33.918861 S 18.4233 E, 17 m, 42.5 km/h, 271 deg,
    # 18:20:30 Beijing time; mileage 1234 x 0.1 km, signal 25, 9 satellites.
    assert device.position(FIX) == bytes.fromhex(
        "7e0200402801000008664960775821640001000000000000000702058f8d01191e04001101a9010f26"
        "05011820300104000004d2300119310109187e")


def test_device_identity_variants() -> None:
    jimi = Jt808Device(IMEI, version=2013)
    assert jimi.device_id == IMEI and len(jimi.phone) == 6
    phone = Jt808Device(IMEI, version=2013, phone="13912345678")
    assert phone.device_id == "013912345678"
    with pytest.raises(ValueError, match="at most 12 digits"):
        Jt808Device(IMEI, version=2013, phone="1234567890123")


def test_device_logs_in_by_registering_then_authenticating() -> None:
    device = Jt808Device(IMEI)
    conn = session()
    first = conn.decode(device.login())
    assert parse(first.replies[0].data).msg_id == 0x8100
    assert one(first, Login).attributes["imei"] == IMEI  # type: ignore[attr-defined]
    again = session().decode(device.login())  # a later connection
    login = one(again, Login)
    assert isinstance(login, Login)
    assert login.attributes["auth_code_ok"] is True and login.attributes["imei"] == IMEI
    assert again.replies[0].after_store is False


@pytest.mark.parametrize("alarm", [
    AlarmType.SOS, AlarmType.OVERSPEED, AlarmType.FAULT, AlarmType.LOW_BATTERY,
    AlarmType.POWER_CUT, AlarmType.VIBRATION, AlarmType.TAMPERING, AlarmType.GEOFENCE,
    AlarmType.MOVEMENT, AlarmType.ACCIDENT,
])
def test_device_alarms_decode_as_sent(alarm: AlarmType) -> None:
    decoded = session().decode(Jt808Device(IMEI).alarm(alarm, FIX))
    assert [a.alarm for a in decoded.events if isinstance(a, Alarm)] == [alarm]
    assert decoded.replies[0].after_store is True


def test_device_refuses_alarms_the_flags_cannot_carry() -> None:
    with pytest.raises(ValueError, match="cannot send a door alarm"):
        Jt808Device(IMEI).alarm(AlarmType.DOOR, FIX)


def test_device_ignores_what_is_not_its_command() -> None:
    device = Jt808Device(IMEI)
    other = build_command("013912345678", Command(CommandType.REBOOT), 1)
    assert device.command_answer(other, FIX) is None
    assert device.command_answer(b"garbage", FIX) is None
    reply = session().decode(device.heartbeat()).replies[0].data
    assert device.command_answer(reply, FIX) is None


# Properties --------------------------------------------------------------------------------

_times = st.datetimes(
    min_value=datetime(2000, 1, 1, 8), max_value=datetime(2099, 12, 31, 15, 59, 59)
).map(lambda t: t.replace(microsecond=0, tzinfo=UTC))
_fix_strategy = st.builds(
    Fix,
    fix_time=_times,
    lat=st.floats(min_value=-90, max_value=90),
    lon=st.floats(min_value=-180, max_value=180),
    speed_kmh=st.floats(min_value=0, max_value=6553.5),
    course_deg=st.floats(min_value=0, max_value=359.4),
    altitude_m=st.floats(min_value=-32768, max_value=32767),
    valid=st.booleans(),
    satellites=st.one_of(st.none(), st.integers(0, 255)),
    attributes=st.builds(lambda ign, odo: attrs(ignition=ign, odometer=odo), st.booleans(),
                         st.one_of(st.none(), st.integers(0, 400_000_000).map(
                             lambda m: m * 100))),
)
_imeis = st.integers(10**13, 10**14 - 1).map(lambda n: complete_imei(str(n)))
_devices = st.builds(
    lambda imei, version: Jt808Device(imei, version=version), _imeis,
    st.sampled_from([2013, 2019]))


def _same_fix(position: Position, fix: Fix) -> None:
    assert position.fix_time == fix.fix_time
    assert position.valid is fix.valid
    assert position.lat == pytest.approx(fix.lat, abs=6e-7)
    assert position.lon == pytest.approx(fix.lon, abs=6e-7)
    assert position.speed_kmh == pytest.approx(fix.speed_kmh, abs=0.051)
    assert position.course_deg == round(fix.course_deg) % 360
    assert position.altitude_m == round(fix.altitude_m)
    assert position.satellites == fix.satellites
    assert position.attributes["ignition"] is bool(fix.attributes.get("ignition"))
    assert position.attributes.get("odometer") == fix.attributes.get("odometer")


@settings(max_examples=200, deadline=None)
@given(device=_devices, fix=_fix_strategy)
def test_location_round_trip(device: Jt808Device, fix: Fix) -> None:
    (frame,) = frames_of(device.position(fix))
    decoded = session().decode(frame)
    assert decoded.notes == () and decoded.device_id == device.device_id
    position = one(decoded, Position)
    assert isinstance(position, Position)
    _same_fix(position, fix)
    assert decoded.replies == (Reply(session().decode(frame).replies[0].data, True),)


@settings(max_examples=100, deadline=None)
@given(device=_devices, fixes=st.lists(_fix_strategy, min_size=1, max_size=40),
       buffered=st.booleans(), max_body=st.integers(64, 1023))
def test_batch_round_trip_with_packets(device: Jt808Device, fixes: list[Fix], buffered: bool,
                                       max_body: int) -> None:
    device.max_body = max_body
    frames = frames_of(device.report(fixes, buffered=buffered))
    conn = session()
    results = [conn.decode(f) for f in frames]
    positions = [e for r in results for e in r.events if isinstance(e, Position)]
    assert len(positions) == len(fixes)
    for position, fix in zip(positions, fixes, strict=True):
        _same_fix(position, fix)
        assert position.attributes.get("buffered", False) is buffered
    replies = [r for d in results for r in d.replies]
    assert len(replies) == len(frames) and all(r.after_store for r in replies)
    assert all(d.notes == () for d in results)


@settings(max_examples=100, deadline=None)
@given(device=_devices, fix=_fix_strategy,
       alarm=st.sampled_from([AlarmType.SOS, AlarmType.OVERSPEED, AlarmType.POWER_CUT,
                              AlarmType.MOVEMENT]))
def test_alarm_round_trip(device: Jt808Device, fix: Fix, alarm: AlarmType) -> None:
    decoded = session().decode(device.alarm(alarm, fix))
    (raised,) = [e for e in decoded.events if isinstance(e, Alarm)]
    assert raised.alarm is alarm and raised.position is not None
    _same_fix(raised.position, fix)


@settings(max_examples=100, deadline=None)
@given(device=_devices)
def test_login_and_heartbeat_round_trip(device: Jt808Device) -> None:
    conn = session()
    registration = conn.decode(device.login())
    login = one(registration, Login)
    assert isinstance(login, Login) and login.device_id == device.device_id
    code = parse(registration.replies[0].data).body[3:]
    assert code == auth_code_for_phone(device.phone)
    auth = conn.decode(device.login())
    assert one(auth, Login).attributes["auth_code_ok"] is True  # type: ignore[attr-defined]
    beat = conn.decode(device.heartbeat())
    assert isinstance(beat.events[0], Heartbeat) and beat.replies[0].after_store is False


@settings(max_examples=100, deadline=None)
@given(device=_devices, fix=_fix_strategy,
       command=st.sampled_from([Command(CommandType.POSITION_SINGLE),
                                Command(CommandType.REPORT_INTERVAL, interval_s=30),
                                Command(CommandType.ENGINE_STOP), Command(CommandType.REBOOT)]))
def test_command_answer_round_trip(device: Jt808Device, fix: Fix, command: Command) -> None:
    conn = session()
    conn.decode(device.heartbeat())
    request = encode_command(device.device_id, command)
    answer = device.command_answer(request, fix)
    assert answer is not None
    decoded = conn.decode(answer)
    result = one(decoded, CommandResult)
    assert isinstance(result, CommandResult)
    assert result.attributes["serial"] == parse(request).serial
    del conn


def _stream() -> bytes:
    device = Jt808Device(IMEI, max_body=80)
    return (device.login() + device.heartbeat() + device.position(FIX)
            + device.report(_fixes(4), buffered=True) + b"(" + IMEI.encode() + b",1,OK)"
            + device.sos(FIX) + SOS_FRAME)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_chunking_gives_the_same_frames_and_events(data: st.DataObject) -> None:
    stream = _stream()
    expected = frames_of(stream)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=30)))
    framer = Jt808Framer()
    got: list[bytes] = []
    previous = 0
    for cut in [*cuts, len(stream)]:
        got += frames_of(stream[previous:cut], framer)
        previous = cut
    assert got == expected and framer.buffered == 0
    first, second = session(), session()
    for a, b in zip(expected, got, strict=True):
        assert first.decode(a).events == second.decode(b).events


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=700))
def test_random_bytes_never_raise_nor_overflow(blob: bytes) -> None:
    framer = Jt808Framer(max_frame_bytes=128)
    conn = session()
    for item in framer.feed(blob) + framer.feed(b"\x7e" + blob):
        if isinstance(item, bytes):
            conn.decode(item)
        assert framer.buffered <= 128
    conn.decode(blob)
    conn.decode(b"\x7e" + blob + b"\x7e")


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutated_frames_never_raise_nor_overflow(data: st.DataObject) -> None:
    stream = bytearray(_stream())
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(stream) - 1))
        action = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        value = data.draw(st.sampled_from([0x7E, 0x7D, 0x01, 0x02, 0x00, 0xFF, 0x28, 0x29]))
        if action == "flip":
            stream[at] = value
        elif action == "insert":
            stream.insert(at, value)
        else:
            del stream[at]
    framer = Jt808Framer(max_frame_bytes=256)
    conn = session()
    for item in framer.feed(bytes(stream)):
        assert framer.buffered <= 256
        if isinstance(item, bytes):
            decoded = conn.decode(item)
            for event in decoded.events:
                if isinstance(event, Rejected):
                    assert "internal decoder error" not in event.reason


@settings(max_examples=300, deadline=None)
@given(device=_devices, fix=_fix_strategy, data=st.data())
def test_location_hot_path_agrees_with_the_general_path(device: Jt808Device, fix: Fix,
                                                        data: st.DataObject) -> None:
    """Locations of the connection's terminal take a shortcut; it must give what the general
    decoder gives, for good frames and damaged ones alike."""
    fast, general = session(), session()
    login = device.heartbeat()
    fast.decode(login)
    general._decode(login)
    frame = bytearray(device.position(fix) if data.draw(st.booleans()) else device.sos(fix))
    for _ in range(data.draw(st.integers(0, 3))):
        at = data.draw(st.integers(1, len(frame) - 2))
        frame[at] = data.draw(st.sampled_from([0x00, 0x7D, 0x7E, 0x01, 0x02, 0xFF, 0x40]))
    assert fast.decode(bytes(frame)) == general._decode(bytes(frame))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.sampled_from([b"", b"\x40\x00\x01"]))
def test_random_location_frames_never_fail_inside(blob: bytes, layout: bytes) -> None:
    """Frames that look like locations of an identified terminal, whatever follows."""
    conn = session()
    conn.decode(Jt808Device(IMEI, version=2013).heartbeat())
    for frame in (b"\x7e\x02\x00" + blob + b"\x7e", b"\x7e\x02\x00" + layout + blob + b"\x7e",
                  b"\x7e\x02\x00\x7e"):
        decoded = conn.decode(frame)
        for event in decoded.events:
            if isinstance(event, Rejected):
                assert "internal decoder error" not in event.reason


def test_bodies_cut_inside_a_field_are_refused_with_the_message_named() -> None:
    phone = bytes.fromhex("4e5de66fba22")
    # Vehicle data (0x0900/F0, OBD subtype) that stops in the middle of its items.
    body = bytes.fromhex("f02204280610090002010d052b0150052c04")
    decoded = session().decode(build(0x0900, phone, 0xC4, body))
    assert decoded.rejected is not None
    assert decoded.rejected.reason == "message 0x0900: the body (18 bytes) ends inside a field"
    assert parse(decoded.replies[0].data).body == bytes.fromhex("00c4090002")
    assert decoded.replies[0].after_store is False


_tokens = st.sampled_from([b"\x7e", b"(", b")", b"\x7d", b"\x01", b"\x02", b"ab", b"\x7e\x7e",
                           SOS_FRAME, b"(12,OK)"])


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(_tokens, max_size=60), data=st.data())
def test_any_chunking_of_any_stream_gives_the_same_frames(parts: list[bytes],
                                                          data: st.DataObject) -> None:
    stream = b"".join(parts)
    expected = frames_of(stream)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    framer = Jt808Framer()
    got: list[bytes] = []
    previous = 0
    for cut in [*cuts, len(stream)]:
        got += frames_of(stream[previous:cut], framer)
        previous = cut
    assert got == expected


def test_times_without_a_date_carry_over_and_non_bcd_times_are_refused() -> None:
    device = Jt808Device("000000000000000", version=2013, phone="013912345678")
    body = bytearray(device.location_body(FIX))
    body[22:28] = bytes(6)  # 000000000000: a unit without a fix yet
    decoded = session().decode(build(0x0200, device.phone, 1, bytes(body)))
    position = one(decoded, Position)
    assert isinstance(position, Position)
    # Month 00 of 2000 is December 1999, day 00 the last day of November; Beijing time.
    assert position.fix_time == datetime(1999, 11, 29, 16, 0, 0, tzinfo=UTC)
    body[22:28] = bytes.fromhex("2605011820ff")
    refused = session().decode(build(0x0200, device.phone, 2, bytes(body)))
    assert refused.rejected is not None
    assert refused.rejected.reason == "time: 2605011820FF is not BCD"
    assert parse(refused.replies[0].data).body[-1] == 2


def test_eighteen_bytes_that_are_no_items_are_the_fixed_extension() -> None:
    device = Jt808Device("000000000000000", version=2013, phone="013912345678")
    basic = device.location_body(Fix(fix_time=FIX.fix_time, lat=1.0, lon=2.0))[:28]
    fixed = bytes.fromhex("5a000100" "000004d2" "0029" "00000001" "17" "000000")
    decoded = session().decode(build(0x0200, device.phone, 1, basic + fixed))
    position = one(decoded, Position)
    assert isinstance(position, Position)
    assert (position.attributes["odometer"], position.attributes["battery"],
            position.attributes["rssi"]) == (1_234_000, 4.1, 23)
    assert decoded.notes == ()
    # 18 bytes that are items stay items.
    items = bytes.fromhex("010400000064" "250400000000" "300114" "310106")
    position = one(session().decode(build(0x0200, device.phone, 2, basic + items)), Position)
    assert isinstance(position, Position)
    assert position.attributes["odometer"] == 10_000 and position.satellites == 6
