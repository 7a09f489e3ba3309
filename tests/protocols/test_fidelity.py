"""Real frames the first corpus does not hold: a broken tk103 bracket, fields that are not
numbers, tk103 battery-management records."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from protocols import Discarded, Status, get_codec

CORPUS = Path(__file__).parent / "corpus" / "traccar-samples.jsonl"

BR00 = b"(088047365460BR00151024A2555.3531S02855.3329E004.7055148276.1701000000L00009AA3)"
NEXT = b"(088047365460BR00151024A2555.3600S02855.3329E004.7055149276.1701000000L00009AA3)"


def test_a_frame_with_a_full_width_bracket_is_discarded_and_the_next_one_kept() -> None:
    broken = BR00[:-1] + "）".encode()  # the device sent U+FF09 instead of `)`
    framer = get_codec("tk103").framer()
    out = framer.feed(broken + NEXT)
    assert out == [Discarded("frame cut short by the start of the next one", len(broken)), NEXT]
    assert framer.buffered == 0


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_a_broken_frame_is_discarded_whatever_the_chunking(chunk: int) -> None:
    stream = BR00[:40] + NEXT + BR00
    framer = get_codec("tk103").framer()
    out = []
    for i in range(0, len(stream), chunk):
        out.extend(framer.feed(stream[i:i + chunk]))
    assert out == [Discarded("frame cut short by the start of the next one", 40), NEXT, BR00]


def test_brackets_inside_dollar_text_do_not_cut_a_command_result() -> None:
    frame = (b"(864555555555555,ZC03,191117,234207,$3 .Check interval (x) is set to 240 "
             b"minute(s).$)")
    assert get_codec("tk103").framer().feed(frame + BR00) == [frame, BR00]


#: What a rejection must never show: Python's own exception texts.
PYTHON_TEXT = re.compile(r"\b[A-Z][A-Za-z]*Error\b|invalid literal|could not convert|"
                         r"has no attribute|NoneType|not enough values to unpack|"
                         r"not understood")


def _frames(protocol: str) -> list[bytes]:
    name = {"gl300": "gl200"}.get(protocol, protocol)
    records = [json.loads(line) for line in CORPUS.read_text().splitlines() if line]
    return [r["message"].encode("latin-1") for r in records if r["protocol"] == name]


@pytest.mark.parametrize("protocol", ["gps103", "tk103", "gl300"])
def test_mutated_real_frames_are_refused_with_a_reason_naming_the_field(protocol: str) -> None:
    """20,000 real frames with 1-4 bytes changed, inserted or removed (digits, separators and
    any byte value): every refusal says what was wrong in the project's words."""
    codec = get_codec(protocol)
    frames = _frames(protocol)
    rng = random.Random(20261126)
    alphabet = b"0123456789ABCDEFabcdef,.$()*#-+ \r\n;:" * 4 + bytes(range(256))
    refused = 0
    for _ in range(20_000):
        frame = bytearray(rng.choice(frames))
        for _ in range(rng.randint(1, 4)):
            op, index = rng.randint(0, 2), rng.randrange(len(frame) + 1)
            if op == 0 and index < len(frame):
                frame[index] = rng.choice(alphabet)
            elif op == 1:
                frame.insert(index, rng.choice(alphabet))
            elif index < len(frame):
                del frame[index]
        rejected = codec.decode(bytes(frame)).rejected
        if rejected is not None:
            refused += 1
            assert not PYTHON_TEXT.search(rejected.reason), (bytes(frame), rejected.reason)
    assert refused > 1000  # the mutations do reach the refusal paths


@pytest.mark.parametrize(("frame", "reason"), [
    (b"(013632651491,ZC20,180716,144222,a,92,65535,255)", "ZC20 battery level 'a' is not a number"),
    (b"(027046434858BZ00,{460,0,20949,b58711}\n{460,0,20494,54003}\n,01000000)",
     "BZ00 cell 1 is not {mcc,mnc,lac,cid} in decimal digits"),
    (b"(358511020000026,DW5B,310,6,29876,30393,d,041217,102211)",
     "DW5B WiFi count 'd' is not a number"),
    (b"(358511020000026,DW5B,310,6,29876,30393,0,0\xb21217,102211)", "bad DW5B date or time"),
    (b"(087073104337BZ00,740,000,3bx7,0425)", "BZ00 LAC '3bx7' is not a hexadecimal number"),
])
def test_tk103_fields_that_are_not_numbers_are_named(frame: bytes, reason: str) -> None:
    rejected = get_codec("tk103").decode(frame).rejected
    assert rejected is not None and rejected.reason == reason


def test_tk103_bs50_battery_record_decodes_as_status() -> None:
    frame = (b"(352602014867BS500064FF0EF10FF10FF00FF20FF30FF20FF20FF40FF20FF40FF40FF20FF30FF"
             b"20F0000000000000000000000000000000000000000000000001663000000010004000000000000"
             b"000002444444420000000000A00FA000000000000000200000000315E2000000)")
    decoded = get_codec("tk103").decode(frame)
    assert decoded.rejected is None and decoded.device_id == "352602014867"
    [status] = decoded.events
    assert isinstance(status, Status)
    values = status.attributes
    assert values["cell_count"] == 14
    assert [values[f"battery{i}"] for i in (1, 3, 14)] == [4.081, 4.08, 4.082]
    assert "battery15" not in values
    assert values["battery"] == 56.32 and values["battery_level"] == 99
    assert values["battery_temp2"] == 26 and "battery_temp3" not in values
    assert values["cycles"] == 4 and values["charging"] is True


def test_tk103_bs51_battery_blocks_decode_as_status() -> None:
    frame = (b"(007030201454BS5190:02150000753001DC,91:0EE8060EDC0A01DC,92:42014201DC0A01DC,"
             b"93:00010127000037C8,94:0E01000002000000,95:020EE10EE20EE800030EE40EE00EE70004"
             b"0EDD0EE40EE400050EDC0EDF0EE400,96:0142000000000000,97:0000000000000000,"
             b"98:0000000000000000)")
    decoded = get_codec("tk103").decode(frame)
    [status] = decoded.events
    assert isinstance(status, Status)
    values = status.attributes
    assert (values["cumulative_voltage"], values["current"], values["soc"]) == (53.3, 0.0, 47.6)
    assert (values["max_cell_voltage"], values["max_cell_voltage_cell"]) == (3.816, 6)
    assert (values["min_cell_voltage"], values["min_cell_voltage_cell"]) == (3.804, 10)
    assert (values["max_temp"], values["min_temp"], values["cell_temp1"]) == (26, 26, 26)
    assert values["bms_93"] == "00010127000037c8"


def test_tk103_bs50_too_short_is_refused_with_its_length() -> None:
    rejected = get_codec("tk103").decode(b"(352602014867BS500064FF0E)").rejected
    assert rejected is not None
    assert rejected.reason == "BS50 battery record has 4 bytes, expected at least 88"
