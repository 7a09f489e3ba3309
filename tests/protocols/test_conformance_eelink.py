"""Conformance of the eelink protocol with the wave-2 corpus (`corpus/wave2-samples.jsonl`).

Every `eelink` record is checked. Decoder records are replayed in file order in one session
with the server clock pinned at the corpus's `server_reply_clock` (the login ack carries the
time): TCP packages through the framer, UDP datagrams as they arrive (a datagram is a frame).
Each decodes to the expected kind with every asserted value and with the reference decoder's
full reading (`traccar_decoded`), and every ack is byte-exact. Command records are encoded
byte-exact. Differences on purpose are listed in DEVIATIONS with the reason; nothing is
skipped.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from protocols import Alarm, Decoded, Discarded, Position, Rejected, Status, get_codec
from protocols.codec import Command, CommandType
from protocols.eelink import encode_udp_command
from protocols.events import Heartbeat

from .corpus_support import snake

CORPUS = Path(__file__).parent / "corpus" / "wave2-samples.jsonl"
CODEC = get_codec("eelink")
KMH_PER_KNOT = 1.852
CLOCK = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)


def _load() -> list[dict[str, Any]]:
    with CORPUS.open(encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh]
    return [r for r in records if r["protocol"] == "eelink"]


RECORDS = _load()
DECODER = [r for r in RECORDS if not r.get("command")]
COMMANDS = [r for r in RECORDS if r.get("command")]

#: Reference attribute names -> ours, for those that differ beyond camelCase -> snake_case.
_NAMES = {"batteryLevel": "battery_level"}
#: Reference attributes this project does not keep, and why.
_NOT_KEPT = {
    "index": "the package serial is protocol bookkeeping (it is in the ack), not device data",
}
# seq -> (why we read the record differently from the reference decoder, what we expect
# instead for each of its positions: attribute -> value, or None for "not given").
DEVIATIONS: dict[int, tuple[str, dict[str, Any]]] = {}


def _snake(name: str) -> str:
    return snake(_NAMES.get(name, name))


def _decode_in_order() -> list[tuple[dict[str, Any], Decoded]]:
    session = CODEC.new_session(None, lambda: CLOCK)
    out = []
    for record in DECODER:
        raw = bytes.fromhex(record["hex"])
        if record["context"].get("transport") == "udp":
            frame = raw
        else:
            framer = CODEC.framer()
            items = framer.feed(raw)
            assert not [i for i in items if isinstance(i, Discarded)], items
            assert items == [raw] and framer.buffered == 0
            frame = items[0]
        out.append((record, session.decode(frame)))
    return out


DECODED = _decode_in_order()


def _check_kind(record: dict[str, Any], decoded: Decoded) -> None:
    kind = record["expect"]["kind"]
    positions = [e for e in decoded.events if isinstance(e, Position)]
    assert decoded.rejected is None, decoded.rejected
    if kind == "position":
        assert positions
        if record["expect"].get("multi"):
            assert len(positions) > 1
    elif kind in ("no_position", "attribute"):
        assert decoded.events
        if kind == "no_position":
            assert not positions
    elif kind == "null":
        assert not positions
    else:  # pragma: no cover - corpus format guard
        raise AssertionError(f"unknown kind {kind}")


def _check_asserted(record: dict[str, Any], decoded: Decoded) -> None:
    for key, value in record["expect"].get("attributes", {}).items():
        if key == "alarm":
            alarms = [e.alarm.value for e in decoded.events if isinstance(e, Alarm)]
            assert _snake(value) in alarms, alarms
        else:
            found = [e.attributes[_snake(key)] for e in decoded.events
                     if not isinstance(e, Rejected) and _snake(key) in e.attributes]
            assert value in found, (key, decoded.events)


def _check_reference_reading(record: dict[str, Any], decoded: Decoded) -> None:
    reading = record["traccar_decoded"]
    if reading["result"] == "null":
        assert not [e for e in decoded.events if isinstance(e, (Position, Status, Alarm))]
        return
    # One data event per reference position: a Position, or without a fix a Status (a
    # Heartbeat for 0x03); alarms ride along as Alarm events.
    data = [e for e in decoded.events if isinstance(e, (Position, Status, Heartbeat))]
    assert len(data) == len(reading["positions"])
    changes = DEVIATIONS.get(record["context"]["seq"], ("", {}))[1]
    for event, expected in zip(data, reading["positions"], strict=True):
        if expected.get("outdated"):
            assert not isinstance(event, Position), event
        else:
            assert isinstance(event, Position), event
            assert event.fix_time == datetime.fromisoformat(
                expected["fixTime"].replace("Z", "+00:00"))
            assert event.valid is expected["valid"]
            assert event.lat == pytest.approx(expected["lat"], abs=1e-6)
            assert event.lon == pytest.approx(expected["lon"], abs=1e-6)
            assert event.speed_kmh == pytest.approx(expected["speed_knots"] * KMH_PER_KNOT,
                                                    abs=1e-3)
            assert event.course_deg == pytest.approx(expected["course"])
            assert (event.altitude_m or 0.0) == pytest.approx(expected["altitude"])
        if expected.get("deviceTime") and isinstance(event, Status):
            assert event.event_time == datetime.fromisoformat(
                expected["deviceTime"].replace("Z", "+00:00"))
        attributes = dict(event.attributes)
        if isinstance(event, Position) and event.satellites is not None:
            attributes["sat"] = event.satellites
        wanted = {(k if k == "sat" else _snake(k)): v
                  for k, v in expected["attributes"].items() if k not in _NOT_KEPT}
        wanted.update(changes)
        alarm = wanted.pop("alarm", None)
        if alarm is not None:
            alarms = [e.alarm.value for e in decoded.events if isinstance(e, Alarm)]
            assert _snake(alarm) in alarms
        for key, value in wanted.items():
            if value is None:
                assert key not in attributes, key
            elif isinstance(value, bool | str):
                assert attributes.get(key) == value and type(attributes[key]) is type(value), \
                    (key, attributes)
            else:
                assert not isinstance(attributes.get(key), bool), (key, attributes)
                assert attributes.get(key) == pytest.approx(value), (key, attributes)


@pytest.mark.parametrize(
    ("record", "decoded"), DECODED, ids=[f"seq{r['context']['seq']}" for r, _ in DECODED])
def test_decoder_record(record: dict[str, Any], decoded: Decoded) -> None:
    _check_kind(record, decoded)
    _check_asserted(record, decoded)
    _check_reference_reading(record, decoded)
    replies = [r.data.hex() for r in decoded.replies]
    if "server_reply_frames" in record:
        assert replies == record["server_reply_frames"]
    else:
        assert "".join(replies) == record.get("server_reply_hex", "")
    derived = record["derived"]
    if "imei" in derived:
        assert decoded.device_id == derived["imei"]
    for event in decoded.events:
        assert event.device_id == decoded.device_id
    types = [int(p["type"], 16) for p in derived["packages"]]
    # Login (0x01) and heartbeat (0x03) acks go at once; acks of data wait for the store.
    acked = [t for t in types if t not in (0x02, 0x81)]
    assert [r.after_store for r in decoded.replies] == [t not in (0x01, 0x03) for t in acked]


def test_tcp_packages_need_the_login_first() -> None:
    """The corpus's TCP records follow an identified device: without one they give nothing."""
    session = CODEC.new_session(None, lambda: CLOCK)
    record = next(r for r, _ in DECODED if r["hex"].startswith("676714002b0051"))
    decoded = session.decode(bytes.fromhex(record["hex"]))
    assert decoded.device_id is None and decoded.events == () and decoded.replies == ()


@pytest.mark.parametrize("record", COMMANDS, ids=lambda r: r["command_attributes"]["transport"])
def test_command_records(record: dict[str, Any]) -> None:
    assert record["command_type"] == "engineStop"
    imei = record["device_unique_id"]
    command = Command(CommandType.ENGINE_STOP)
    if record["command_attributes"]["transport"] == "udp":
        wire = encode_udp_command(imei, command)
    else:
        wire = CODEC.encode_command(imei, command)
    assert wire.hex() == record["expect"]["encoded_hex"]


def test_every_record_is_checked() -> None:
    assert len(RECORDS) == 29
    assert (len(DECODER), len(COMMANDS)) == (27, 2)
    assert DECODER[0]["context"]["session_before"] is False
    assert all(r["context"]["session_before"] for r in DECODER[1:])
    assert set(DEVIATIONS) <= {r["context"]["seq"] for r in DECODER}
