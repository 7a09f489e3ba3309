"""Conformance with real device messages: every record of the corpus, one test each.

The corpus (`corpus/traccar-samples.jsonl`, see `corpus/README.md`) holds messages sent by real
TK103, TK103-B/Coban and Queclink trackers, with what a reference server decodes from them and
answers. Every record must decode to the expected kind, every asserted value must match and every
reply must be byte-exact. Where this project decodes a record differently on purpose, the record
is listed in DEVIATIONS with the reason, and the test checks our behaviour instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from protocols import (
    Alarm,
    Decoded,
    Discarded,
    Rejected,
    get_codec,
)
from protocols.gl300 import Gl300Options

from .corpus_support import attribute_values, positions_of, snake

CORPUS = Path(__file__).parent / "corpus" / "traccar-samples.jsonl"
CORPUS_TAG_TO_CODEC = {"gps103": "gps103", "tk103": "tk103", "gl200": "gl300"}
TOLERANCE_DEG = 1e-5


@dataclass(frozen=True)
class Record:
    line: int
    protocol: str
    message: str
    wire: str
    expect: dict[str, Any]
    derived: dict[str, Any]
    replies: list[str]
    replies_with_sack: list[str]


def _apply_deviation(record: Record) -> Record:
    if record.line not in DEVIATIONS:
        return record
    _why, changes = DEVIATIONS[record.line]
    derived = {**record.derived, **changes.get("derived", {})}
    expect = {**record.expect, **{k: v for k, v in changes.items() if k != "derived"}}
    return Record(record.line, record.protocol, record.message, record.wire, expect, derived,
                  record.replies, record.replies_with_sack)


def _load() -> list[Record]:
    records = []
    with CORPUS.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            raw = json.loads(line)
            replies = [raw[k] for k in ("server_reply", "server_reply_if_known_device") if k in raw]
            with_sack = replies + (
                [raw["server_reply_if_ack_enabled"]] if "server_reply_if_ack_enabled" in raw else []
            )
            records.append(
                Record(
                    line=number,
                    protocol=raw["protocol"],
                    message=raw["message"],
                    wire=raw.get("tcp_wire", raw["message"]),
                    expect=raw["expect"],
                    derived=raw.get("derived", {}),
                    replies=replies,
                    replies_with_sack=with_sack,
                )
            )
    return records


RECORDS = _load()

# line -> (why we decode it differently from the reference, what we expect instead). The second
# item replaces keys of the record's `expect` (and `derived`, under the key "derived"), so the
# test still checks our behaviour on that record; nothing is skipped.
DEVIATIONS: dict[int, tuple[str, dict[str, Any]]] = {
    11: (
        "DW5B carries only cell and WiFi ids. Turning them into coordinates needs an external "
        "geolocation service, and the gateway never invents coordinates: it decodes to a Status.",
        {"kind": "no_position"},
    ),
    16: (
        "An ID glued to the type code is the fixed-width layout, whose dates are YYMMDD: 170304 "
        "is 2017-03-04 (the reference reads it as DDMMYY and gets 2004-03-17, an outlier among "
        "its 2017 samples). The ID is the IMEI, without the type code the reference pulls in.",
        {"derived": {"time": "2017-03-04T09:44:55Z", "device_id": "357593060760397"}},
    ),
    22: (
        "An 11-character ID: the reference's pattern pulls the '(' into the ID; the ID is the "
        "characters between '(' and the type code.",
        {"derived": {"device_id": "01602009983"}},
    ),
    34: (
        "An 11-character ID, as for line 22.",
        {"derived": {"device_id": "01029131573"}},
    ),
}


def _decode_frame(record: Record, options: object) -> Decoded:
    codec = get_codec(CORPUS_TAG_TO_CODEC[record.protocol])
    framer = codec.framer()
    out = framer.feed(record.wire.encode("latin-1"))
    frames = [item for item in out if isinstance(item, bytes)]
    discarded = [item for item in out if isinstance(item, Discarded)]
    assert len(frames) == 1, f"framer gave {len(frames)} frames, discarded {discarded}"
    assert not discarded, f"framer discarded {discarded}"
    assert framer.buffered == 0
    return codec.decode(frames[0], options)


def _check_kind(record: Record, decoded: Decoded) -> None:
    kind = record.expect["kind"]
    positions = positions_of(decoded)
    if kind == "position":
        assert positions, f"expected a position, got {decoded.events}"
        for position in positions:
            assert -90 <= position.lat <= 90 and -180 <= position.lon <= 180
            assert position.fix_time.tzinfo is not None
    elif kind in ("no_position", "attribute", "not_null"):
        assert decoded.events, "expected the frame to decode to something"
        assert decoded.rejected is None, f"rejected: {decoded.rejected}"
    elif kind == "null":
        assert not positions, f"expected no position, got {positions}"
    else:  # pragma: no cover - corpus format guard
        raise AssertionError(f"unknown kind {kind}")


def _check_asserted_values(record: Record, decoded: Decoded) -> None:
    expect = record.expect
    if "lat" in expect or "time" in expect:
        first = positions_of(decoded)[0]
        if "time" in expect:
            assert first.fix_time == datetime.fromisoformat(expect["time"].replace("Z", "+00:00"))
        if "valid" in expect:
            assert first.valid is expect["valid"]
        if "lat" in expect:
            assert first.lat == pytest.approx(expect["lat"], abs=TOLERANCE_DEG)
            assert first.lon == pytest.approx(expect["lon"], abs=TOLERANCE_DEG)
    for key, value in expect.get("attributes", {}).items():
        if key == "alarm":
            alarms = [e.alarm.value for e in decoded.events if isinstance(e, Alarm)]
            assert snake(value) in alarms, f"alarm {value!r} not in {alarms}"
        elif key == "course":
            courses = [p.course_deg for p in positions_of(decoded)]
            assert value in courses, f"course {value} not in {courses}"
        else:
            found = attribute_values(decoded, snake(key))
            if value is None:
                assert not found, f"{key} should be absent, found {found}"
            else:
                assert value in found, f"{key}={value!r} not in {found}"


def _check_derived(record: Record, decoded: Decoded) -> None:
    derived = record.derived
    if record.expect["kind"] != "position" or "lat" not in derived:
        return
    first = positions_of(decoded)[0]
    assert first.lat == pytest.approx(derived["lat"], abs=TOLERANCE_DEG)
    assert first.lon == pytest.approx(derived["lon"], abs=TOLERANCE_DEG)
    if "time" in derived:
        assert first.fix_time == datetime.fromisoformat(derived["time"].replace("Z", "+00:00"))
    if "valid" in derived:
        assert first.valid is derived["valid"]
    if "speed_kmh" in derived:
        assert first.speed_kmh == pytest.approx(derived["speed_kmh"], abs=1e-3)


@pytest.mark.parametrize(
    "record", RECORDS, ids=[f"{r.protocol}-line{r.line}" for r in RECORDS]
)
def test_record(record: Record) -> None:
    record = _apply_deviation(record)
    default = _decode_frame(record, None)
    with_sack = _decode_frame(record, Gl300Options(sack=True))

    # The message field (sometimes without its terminator) decodes the same as the framed wire.
    direct = get_codec(CORPUS_TAG_TO_CODEC[record.protocol]).decode(
        record.message.encode("latin-1"), None
    )
    assert [type(e) for e in direct.events] == [type(e) for e in default.events]

    _check_kind(record, default)
    _check_asserted_values(record, default)
    _check_derived(record, default)
    assert [r.data.decode("latin-1") for r in default.replies] == record.replies
    assert [r.data.decode("latin-1") for r in with_sack.replies] == record.replies_with_sack
    for decoded in (default, with_sack):
        for event in decoded.events:
            if not isinstance(event, Rejected):
                assert event.device_id == decoded.device_id
    if "device_id" in record.derived and record.expect["kind"] != "null":
        assert default.device_id == record.derived["device_id"]


def test_corpus_is_complete() -> None:
    counts: dict[str, int] = {}
    for record in RECORDS:
        counts[record.protocol] = counts.get(record.protocol, 0) + 1
    assert counts == {"tk103": 61, "gps103": 55, "gl200": 65}
