"""h02 conformance with the wave-2 corpus: every h02 record, one test each.

The records of one reference test method were fed in order to one decoder; they are replayed
here the same way, through one session per method (a message with an empty id belongs to the
connection's device). Each record is decoded twice: with the default options (the replies in
`server_reply`) and with `H02Options(ack=True)` (those plus `server_reply_if_ack_enabled`).
Replies carry the server's clock, pinned here to the corpus's `2026-02-03T04:05:06Z`.

Beyond the asserted values, the fix, status word, ignition and alarm the reference decoded are
compared too. Deliberate differences are listed in DEVIATIONS with the reason; nothing is
skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from protocols import (
    Alarm,
    Command,
    CommandResult,
    CommandType,
    Decoded,
    Discarded,
    get_codec,
)
from protocols.h02 import H02Framer, H02Options, encode_command_at
from protocols.h02.commands import encode_alarm_arm

from .corpus_support import positions_of, snake

CORPUS = Path(__file__).parent / "corpus" / "wave2-samples.jsonl"
CLOCK = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)
#: The time the reference's command test pins its encoder clock to.
COMMAND_TIME = datetime(2026, 2, 3, 1, 2, 3, tzinfo=UTC)
TOLERANCE_DEG = 1e-5
CODEC = get_codec("h02")

_V19 = (
    "V19 puts the SIM's phone number and ICCID between the date and the status word. The "
    "reference's pattern takes the date for a battery field and stamps the fix with the "
    "server's clock and no status; the fields are read here as the layout has them: the "
    "message's own date and the status word at the end."
)
#: line -> (why, what is checked instead): "reference_time": False (the reference used its
#: clock), "reference_status": False (it read no status word).
DEVIATIONS: dict[int, tuple[str, dict[str, Any]]] = {
    159: ("A battery field sits between course and date. The reference's pattern then takes "
          "the status word for SIM information and reads none; here the status word is read "
          "(EEE7FBDF: bit 19 clear, a power-cut alarm).", {"reference_status": False}),
    164: (_V19, {"reference_status": False}),
    172: (_V19, {"reference_status": False}),
    175: (_V19, {"reference_status": False}),
    186: (_V19, {"reference_status": False}),
    162: ("V1 without coordinates: the reference's pattern fails and it returns nothing; here "
          "the status word is kept as a Status (an SOS without a fix must not be lost). No "
          "reply either way.", {}),
    192: ("V1 with '0' as hemisphere letters (no fix): a Status with its status word, as for "
          "line 162.", {}),
}

_LOOKAHEAD = (
    "A lone binary frame: the reference guesses its length from how many bytes one read "
    "returned; the framer waits for the first bytes of the next frame to tell 32 from 45 "
    "(the same cut for any chunking), so it is checked with a text frame behind it."
)
FRAMING_DEVIATIONS: dict[int, str] = {219: _LOOKAHEAD, 222: _LOOKAHEAD, 223: _LOOKAHEAD,
                                      225: _LOOKAHEAD}
NEXT_FRAME = b"*HQ,4106011660,HTBT#"


@dataclass
class Record:
    line: int
    raw: dict[str, Any]
    default: Decoded | None = None
    with_ack: Decoded | None = None

    @property
    def expect(self) -> dict[str, Any]:
        return self.raw["expect"]  # type: ignore[no-any-return]

    @property
    def wire(self) -> bytes:
        if self.raw.get("hex"):
            return bytes.fromhex(self.raw["hex"])
        return self.raw["message"].encode("latin-1")  # type: ignore[no-any-return]


def _load() -> list[Record]:
    with CORPUS.open(encoding="utf-8") as fh:
        records = [Record(n, json.loads(line)) for n, line in enumerate(fh, start=1)]
    return [r for r in records if r.raw["protocol"] == "h02"]


ALL = _load()
DECODE = [r for r in ALL if not r.raw.get("framing") and not r.raw.get("command")]
FRAMING = [r for r in ALL if r.raw.get("framing")]
COMMANDS = [r for r in ALL if r.raw.get("command")]


def _replay() -> None:
    sessions: dict[tuple[str, bool], Any] = {}
    for record in DECODE:
        method = record.raw["context"]["test_method"]
        for ack in (False, True):
            if (method, ack) not in sessions:
                sessions[method, ack] = CODEC.new_session(H02Options(ack=ack), lambda: CLOCK)
            decoded = sessions[method, ack].decode(record.wire)
            if ack:
                record.with_ack = decoded
            else:
                record.default = decoded


_replay()


def _attribute(decoded: Decoded, key: str) -> list[Any]:
    return [e.attributes[key] for e in decoded.events
            if key in getattr(e, "attributes", {})]


def _check_kind(record: Record, decoded: Decoded) -> None:
    kind = record.expect["kind"]
    positions = positions_of(decoded)
    if kind == "position":
        assert positions, f"expected a position, got {decoded.events}"
    elif kind in ("no_position", "not_null", "attribute"):
        assert decoded.events and decoded.rejected is None, decoded.events
        if kind == "no_position":
            assert not positions
    else:
        assert kind == "null"
        assert not positions


def _check_asserted(record: Record, decoded: Decoded) -> None:
    expect = record.expect
    if "time" in expect:
        first = positions_of(decoded)[0]
        assert first.fix_time == datetime.fromisoformat(expect["time"].replace("Z", "+00:00"))
        assert first.valid is expect["valid"]
        assert first.lat == pytest.approx(expect["lat"], abs=TOLERANCE_DEG)
        assert first.lon == pytest.approx(expect["lon"], abs=TOLERANCE_DEG)
    for key, value in expect.get("attributes", {}).items():
        if key == "result":
            assert value in [e.result for e in decoded.events if isinstance(e, CommandResult)]
        else:
            assert value in _attribute(decoded, snake(key)), _attribute(decoded, snake(key))


def _check_reference(record: Record, decoded: Decoded, instead: dict[str, Any]) -> None:
    """What the reference decoded beyond the assertions: fix, status word, ignition, alarm."""
    reference = (record.raw.get("traccar_decoded") or {}).get("positions") or []
    if not reference or reference[0].get("outdated"):
        return
    ref = reference[0]
    mine = positions_of(decoded)[0]
    assert mine.lat == pytest.approx(ref["lat"], abs=TOLERANCE_DEG)
    assert mine.lon == pytest.approx(ref["lon"], abs=TOLERANCE_DEG)
    assert mine.valid is ref["valid"]
    assert mine.speed_kmh == pytest.approx(ref["speed_knots"] * 1.852, abs=0.01)
    assert (mine.course_deg or 0.0) == pytest.approx(ref["course"], abs=0.01)
    if ref.get("fixTime_is_server_clock"):
        # No date in the message (line 187) or a V19 layout (see DEVIATIONS).
        if record.line not in DEVIATIONS:
            assert mine.fix_time == CLOCK
            assert mine.attributes["time_from_server"] is True
    elif ref.get("fixTime"):
        assert mine.fix_time == datetime.fromisoformat(ref["fixTime"].replace("Z", "+00:00"))
    if instead.get("reference_status", True):
        values = ref.get("attributes", {})
        assert mine.attributes.get("status") == values.get("status")
        assert mine.attributes.get("ignition") == values.get("ignition")
        alarms = [e.alarm.value for e in decoded.events if isinstance(e, Alarm)]
        assert alarms == ([snake(values["alarm"])] if "alarm" in values else [])


@pytest.mark.parametrize("record", DECODE, ids=[f"line{r.line}" for r in DECODE])
def test_record(record: Record) -> None:
    assert record.default is not None and record.with_ack is not None
    _why, instead = DEVIATIONS.get(record.line, ("", {}))
    for decoded in (record.default, record.with_ack):
        _check_kind(record, decoded)
        _check_asserted(record, decoded)
        _check_reference(record, decoded, instead)
        for event in decoded.events:
            assert event.device_id == decoded.device_id
    expected = record.raw.get("server_reply", "")
    assert b"".join(r.data for r in record.default.replies).decode() == expected
    expected += record.raw.get("server_reply_if_ack_enabled", "")
    assert b"".join(r.data for r in record.with_ack.replies).decode() == expected
    derived = record.raw.get("derived") or {}
    if record.expect["kind"] != "null" and derived.get("device_id"):
        assert record.default.device_id == derived["device_id"]


def test_replies_wait_for_the_store_except_heartbeat_echoes() -> None:
    for record in DECODE:
        assert record.with_ack is not None
        for reply in record.with_ack.replies:
            assert reply.after_store is (b",HTBT#" not in reply.data), record.line


def test_empty_id_belongs_to_the_connection_and_gets_no_reply() -> None:
    record = next(r for r in DECODE if r.line == 161)
    assert record.default is not None
    assert record.default.device_id == "353505221264507"  # the previous message's device
    assert record.default.replies == ()


@pytest.mark.parametrize("record", FRAMING, ids=[f"line{r.line}" for r in FRAMING])
def test_framing_record(record: Record) -> None:
    data = bytes.fromhex(record.raw["hex"])
    expected = bytes.fromhex(record.expect["frame_hex"])
    stream = data
    if record.line in FRAMING_DEVIATIONS:
        assert not [f for f in H02Framer().feed(data) if isinstance(f, bytes)]
        stream = data + NEXT_FRAME
    for size in (len(stream), 1, 5):
        framer = H02Framer()
        out: list[bytes | Discarded] = []
        for i in range(0, len(stream), size):
            out += framer.feed(stream[i:i + size])
        frames = [f for f in out if isinstance(f, bytes)]
        assert frames[0] == expected
        assert not [f for f in out if isinstance(f, Discarded)]


@pytest.mark.parametrize("record", [r for r in DECODE if not r.raw.get("hex")],
                         ids=[f"line{r.line}" for r in DECODE if not r.raw.get("hex")])
def test_text_message_is_one_frame(record: Record) -> None:
    out = H02Framer().feed(record.wire + b"\r\n")
    assert out == [record.wire]


_COMMAND_TYPES = {"engineStop": CommandType.ENGINE_STOP,
                  "engineResume": CommandType.ENGINE_RESUME,
                  "positionPeriodic": CommandType.REPORT_INTERVAL}


@pytest.mark.parametrize("record", COMMANDS, ids=[f"line{r.line}" for r in COMMANDS])
def test_command_record(record: Record) -> None:
    device_id = record.raw["device_unique_id"]
    kind = record.raw["command_type"]
    if kind in ("alarmArm", "alarmDisarm"):
        encoded = encode_alarm_arm(device_id, kind == "alarmArm", COMMAND_TIME)
    else:
        interval = record.raw["command_attributes"].get("frequency")
        command = Command(_COMMAND_TYPES[kind], interval_s=interval)
        encoded = encode_command_at(device_id, command, COMMAND_TIME)
    assert encoded.decode("ascii") == record.expect["encoded"]


def test_corpus_is_complete() -> None:
    assert (len(DECODE), len(FRAMING), len(COMMANDS)) == (67, 10, 5)
    assert len(ALL) == 82
    assert set(DEVIATIONS) <= {r.line for r in DECODE}
    assert set(FRAMING_DEVIATIONS) <= {r.line for r in FRAMING}
