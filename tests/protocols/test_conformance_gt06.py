"""gt06 conformance with the wave-2 corpus: every gt06 record, one test each.

`corpus/wave2-samples.jsonl` holds the messages of the reference server's gt06 tests with what
it decoded and answered. Fields used here: `hex` (the decoder input), `expect` (kind and the
values the reference test asserts), `server_reply_hex`, `traccar_decoded` (everything the
reference decoded), `derived` (an independent reading of the header: IMEI, `crc_ok`),
`context` (`test_method`, `session_before`, `model_override`), and for framing and command
records `expect.frame_hex` / `expect.encoded_hex`.

The records of one test method were fed in order to one decoder, so they are replayed here in
file order through one session: a packet before any login decodes to nothing, later ones
belong to the device the login named (`context.session_before`). Records
with `context.model_override` are decoded with `Gt06Options(model=...)`, after the session's
last login. Replies that carry the server's clock are compared with the clock pinned to the
corpus's `2026-02-03T04:05:06Z`.

Where this project decodes a record differently on purpose, the record is listed in
DEVIATIONS with the reason and what is checked instead; nothing is skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from protocols import (
    Alarm,
    AlarmType,
    Command,
    CommandResult,
    CommandType,
    Decoded,
    Discarded,
    get_codec,
)
from protocols.gt06 import Gt06Framer, Gt06Options, encode_command
from protocols.gt06.wire import packet

from .corpus_support import positions_of, snake

CORPUS = Path(__file__).parent / "corpus" / "wave2-samples.jsonl"
CLOCK = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)
TOLERANCE_DEG = 1e-5
CODEC = get_codec("gt06")

#: Reference alarm names whose AlarmType is not their snake_case form.
ALARM_NAMES = {
    "hardBraking": AlarmType.BRAKING,
    "hardAcceleration": AlarmType.ACCELERATION,
    "hardCornering": AlarmType.CORNERING,
}

_ZERO_FIX = (
    "The GPS block is all zeros (no fix since power-on): the reference makes a position at "
    "0, 0 flagged invalid; the gateway never stores invented coordinates, so the packet is a "
    "Status with its attributes."
)
_GMT8 = (
    "The login at line 117 announced GMT+8 (time-zone word 0x3201), so packet times are read "
    "as GMT+8, as a reference server does with a real connection. The reference test harness "
    "kept no session state between packets and read them as UTC; the times here are 8 h "
    "earlier."
)

# line -> (why, what is checked instead): "position": False (no position expected),
# "reply_hex": the reply expected instead, "hours": shift of the reference's fix time.
DEVIATIONS: dict[int, tuple[str, dict[str, Any]]] = {
    53: (_ZERO_FIX, {"position": False}),
    67: (_ZERO_FIX, {"position": False}),
    71: (_ZERO_FIX, {"position": False}),
    90: ("0x35 photo information: the reference asks for the picture's data (a 0x36 request); "
         "the gateway does not store media, so it asks for nothing.", {"reply_hex": ""}),
    **{line: (_GMT8, {"hours": -8}) for line in (
        118, 119, 125, 126, 127, 128, 131, 132, 133, 134, 135, 137, 138, 139, 140)},
}

#: Framing records cut differently on purpose, with the bytes that make the cut happen.
FRAMING_DEVIATIONS: dict[int, tuple[str, bytes]] = {
    142: ("15 bytes whose length byte announces 18: the reference, short of bytes, cuts at the "
          "first CR LF of what one read returned, which depends on how TCP split the stream. "
          "The framer waits for the announced 18 bytes (so that a CR LF inside a packet's "
          "content never cuts it), then falls back to the first CR LF: with the next packet "
          "behind it, it cuts the same 15 bytes.",
          packet(0x13, bytes((0x40, 6, 4, 0, 2)), 0x00FF)),
}


@dataclass
class Record:
    line: int
    raw: dict[str, Any]
    decoded: Decoded | None = None
    login_imei: str | None = None
    why: str = ""
    instead: dict[str, Any] = field(default_factory=dict)

    @property
    def expect(self) -> dict[str, Any]:
        return self.raw["expect"]  # type: ignore[no-any-return]


def _load() -> list[Record]:
    with CORPUS.open(encoding="utf-8") as fh:
        records = [Record(n, json.loads(line)) for n, line in enumerate(fh, start=1)]
    return [r for r in records if r.raw["protocol"] == "gt06"]


ALL = _load()
DECODE = [r for r in ALL if not r.raw.get("framing") and not r.raw.get("command")]
FRAMING = [r for r in ALL if r.raw.get("framing")]
COMMANDS = [r for r in ALL if r.raw.get("command")]


def _replay(records: list[Record]) -> None:
    """Decode the records in file order, one session per test method, as the corpus was made."""
    sessions: dict[str, Any] = {}
    models: dict[str, str] = {}
    logins: dict[str, bytes] = {}
    for record in records:
        context = record.raw["context"]
        method = context["test_method"]
        model = context.get("model_override") or ""
        if method not in sessions or models[method] != model:
            # The reference test sets the model on its decoder mid-method: a new session with
            # that model, told about the device by the login it last saw.
            sessions[method] = CODEC.new_session(Gt06Options(model=model), lambda: CLOCK)
            models[method] = model
            if method in logins:
                sessions[method].decode(logins[method])
        session = sessions[method]
        if not context["session_before"]:
            assert session.device_id is None, f"line {record.line}: a login came first"
        frame = bytes.fromhex(record.raw["hex"])
        record.login_imei = session.device_id
        record.decoded = session.decode(frame)
        if frame[3] == 0x01 and record.decoded.device_id is not None:
            logins[method] = frame
        record.why, record.instead = DEVIATIONS.get(record.line, ("", {}))


_replay(DECODE)


def _attribute(decoded: Decoded, key: str) -> list[Any]:
    found = []
    for event in decoded.events:
        attributes = getattr(event, "attributes", {})
        if key in attributes:
            found.append(attributes[key])
    return found


def _check_kind(record: Record, decoded: Decoded) -> None:
    kind = record.expect["kind"]
    positions = positions_of(decoded)
    expect_position = record.instead.get("position", kind == "position")
    assert decoded.rejected is None or kind == "null", decoded.rejected
    if expect_position:
        assert positions, f"expected a position, got {decoded.events}"
    if kind in ("null", "no_position") or not record.instead.get("position", True):
        assert not positions, f"expected no position, got {positions}"
    if kind in ("no_position", "not_null", "attribute"):
        assert decoded.events, "expected the packet to decode to something"


def _check_asserted(record: Record, decoded: Decoded) -> None:
    for key, value in record.expect.get("attributes", {}).items():
        if key == "alarm":
            alarms = [e.alarm for e in decoded.events if isinstance(e, Alarm)]
            expected = ALARM_NAMES[value] if value in ALARM_NAMES else AlarmType(snake(value))
            assert expected in alarms, alarms
        elif key == "altitude":
            assert [p.altitude_m for p in positions_of(decoded)] == [value]
        elif key == "result":
            results = [e.result for e in decoded.events if isinstance(e, CommandResult)]
            assert value in results + _attribute(decoded, "result")
        elif value is None:
            assert not _attribute(decoded, snake(key)), f"{key} should be absent"
        else:
            assert value in _attribute(decoded, snake(key)), (
                f"{key}={value!r} not in {_attribute(decoded, snake(key))}")


def _check_reply(record: Record, decoded: Decoded) -> None:
    expected = record.instead.get("reply_hex", record.raw.get("server_reply_hex", ""))
    assert b"".join(r.data for r in decoded.replies).hex() == expected


def _check_reference_fix(record: Record, decoded: Decoded) -> None:
    """What the reference decoded beyond the test's assertions: the fix, when it had one."""
    reference = (record.raw.get("traccar_decoded") or {}).get("positions") or []
    positions = positions_of(decoded)
    if not reference or not positions or reference[0].get("outdated"):
        return
    ref, mine = reference[0], positions[0]
    assert mine.lat == pytest.approx(ref["lat"], abs=TOLERANCE_DEG)
    assert mine.lon == pytest.approx(ref["lon"], abs=TOLERANCE_DEG)
    assert mine.valid is ref["valid"]
    # Packets without a speed field (0x95 of JC100 cameras) have none; the reference says 0.
    assert (mine.speed_kmh or 0.0) == pytest.approx(ref["speed_knots"] * 1.852, abs=0.01)
    assert mine.course_deg == pytest.approx(ref["course"], abs=0.01)
    if ref.get("fixTime"):
        when = datetime.fromisoformat(ref["fixTime"].replace("Z", "+00:00"))
        assert mine.fix_time == when + timedelta(hours=record.instead.get("hours", 0))


@pytest.mark.parametrize("record", DECODE, ids=[f"line{r.line}" for r in DECODE])
def test_record(record: Record) -> None:
    decoded = record.decoded
    assert decoded is not None
    _check_kind(record, decoded)
    _check_asserted(record, decoded)
    _check_reply(record, decoded)
    _check_reference_fix(record, decoded)
    crc_ok = (record.raw.get("derived") or {}).get("crc_ok")
    if crc_ok is not None:
        assert ("bad_crc" in decoded.notes) is (not crc_ok)
    login = (record.raw.get("derived") or {}).get("imei")
    if login is not None:  # a login names the device, also a second one on the connection
        assert decoded.device_id == login
    elif record.raw["context"]["session_before"]:
        assert decoded.device_id == record.login_imei is not None
    else:  # before any login: nothing to attribute the packet to
        assert (decoded.device_id, decoded.events, decoded.replies) == (None, (), ())
    for event in decoded.events:
        assert event.device_id == decoded.device_id


def test_logins_name_the_device_and_are_answered_at_once() -> None:
    logins = [r for r in DECODE if (r.raw.get("derived") or {}).get("imei")]
    assert len(logins) == 5
    for record in logins:
        assert record.decoded is not None
        assert record.decoded.device_id == record.raw["derived"]["imei"]
        assert [r.after_store for r in record.decoded.replies] == [False]
    zones = {r.line: _attribute(r.decoded, "time_zone_offset_min") for r in logins
             if r.decoded is not None}
    assert zones[116] == [-240]  # 0x190A: 4:00, bit 3 set: west
    assert zones[117] == [480]  # 0x3201: 8:00 east


def test_strict_crc_rejects_exactly_the_bad_crc_records() -> None:
    bad = [r for r in DECODE if (r.raw.get("derived") or {}).get("crc_ok") is False]
    assert len(bad) == 19
    session = CODEC.new_session(Gt06Options(strict_crc=True), lambda: CLOCK)
    session.decode(bytes.fromhex("78780d01086471700328358100093f040d0a"))
    for record in DECODE:
        if (record.raw.get("derived") or {}).get("crc_ok") is not True:
            continue
        decoded = session.decode(bytes.fromhex(record.raw["hex"]))
        if record.raw["hex"][6:8] != "01":
            assert decoded.rejected is None or record.expect["kind"] == "null", record.line
    for record in bad:
        decoded = session.decode(bytes.fromhex(record.raw["hex"]))
        assert decoded.rejected is not None
        assert "CRC" in decoded.rejected.reason and "strict_crc" in decoded.rejected.reason
        assert decoded.replies == ()


@pytest.mark.parametrize("record", FRAMING, ids=[f"line{r.line}" for r in FRAMING])
def test_framing_record(record: Record) -> None:
    data = bytes.fromhex(record.raw["hex"])
    expected = bytes.fromhex(record.expect["frame_hex"])
    follow = b""
    if record.line in FRAMING_DEVIATIONS:
        _why, follow = FRAMING_DEVIATIONS[record.line]
        assert not [f for f in Gt06Framer().feed(data) if isinstance(f, bytes)]
    for size in (len(data) + len(follow), 1, 7):
        framer = Gt06Framer()
        stream = data + follow
        out: list[bytes | Discarded] = []
        for i in range(0, len(stream), size):
            out += framer.feed(stream[i:i + size])
        frames = [f for f in out if isinstance(f, bytes)]
        assert frames[0] == expected
        assert not [f for f in out if isinstance(f, Discarded)]


@pytest.mark.parametrize("record", DECODE, ids=[f"line{r.line}" for r in DECODE])
def test_decoder_input_is_one_frame_for_any_chunking(record: Record) -> None:
    data = bytes.fromhex(record.raw["hex"])
    if record.line == 54:
        # The test input lacks its final 0A (a truncated frame): no framer can end it.
        assert not Gt06Framer().feed(data)
        return
    for size in (len(data), 1, 3):
        framer = Gt06Framer()
        out: list[bytes | Discarded] = []
        for i in range(0, len(data), size):
            out += framer.feed(data[i:i + size])
        assert out == [data]
        assert framer.buffered == 0


_COMMAND_TYPES = {"engineStop": CommandType.ENGINE_STOP, "engineResume": CommandType.ENGINE_RESUME}


@pytest.mark.parametrize("record", COMMANDS, ids=[f"line{r.line}" for r in COMMANDS])
def test_command_record(record: Record) -> None:
    command = Command(_COMMAND_TYPES[record.raw["command_type"]])
    encoded = encode_command(record.raw["device_unique_id"], command)
    assert encoded.hex() == record.expect["encoded_hex"]


def test_corpus_is_complete() -> None:
    assert (len(DECODE), len(FRAMING), len(COMMANDS)) == (140, 9, 1)
    assert len(ALL) == 150
    assert set(DEVIATIONS) <= {r.line for r in DECODE}
    assert set(FRAMING_DEVIATIONS) <= {r.line for r in FRAMING}
