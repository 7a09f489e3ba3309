from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.codec import Fix
from protocols.framing import Discarded
from protocols.nmea import NmeaFramer, NmeaReader, encode_gga, encode_rmc

RMC = b"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A\r\n"
GGA = b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n"


def test_reader_merges_gga_into_rmc() -> None:
    reader = NmeaReader()
    assert reader.feed_sentence(GGA) is None
    fix = reader.feed_sentence(RMC)
    assert fix is not None
    assert fix.fix_time == datetime(1994, 3, 23, 12, 35, 19, tzinfo=UTC)
    assert fix.lat == pytest.approx(48.1173)
    assert fix.lon == pytest.approx(11.516666, abs=1e-6)
    assert fix.speed_kmh == pytest.approx(22.4 * 1.852)
    assert fix.course_deg == pytest.approx(84.4)
    assert fix.altitude_m == pytest.approx(545.4)
    assert fix.satellites == 8
    assert fix.hdop == pytest.approx(0.9)
    assert fix.valid


def test_reader_counts_bad_checksum_and_garbage() -> None:
    reader = NmeaReader()
    assert reader.feed_sentence(RMC.replace(b"*6A", b"*00")) is None
    assert reader.feed_sentence(b"\xff\xfe garbage") is None
    assert reader.feed_sentence(b"$GPRMC,,V,,,,,,,,,,N*53") is None
    assert reader.errors == 2


def test_framer_splits_sentences_and_skips_noise() -> None:
    framer = NmeaFramer()
    out = framer.feed(b"\x00\x01noise" + RMC + GGA[:20])
    assert out[0] == Discarded("bytes outside a frame", 7)
    assert out[1:] == [RMC]
    assert framer.feed(GGA[20:]) == [GGA]
    assert framer.buffered == 0


def test_framer_drops_over_long_sentence() -> None:
    framer = NmeaFramer()
    out = framer.feed(b"$" + b"A" * 1000)
    assert any(isinstance(item, Discarded) for item in out)
    assert framer.buffered <= 256
    assert framer.feed(b"\r\n" + RMC)[-1] == RMC


fixes = st.builds(
    Fix,
    fix_time=st.datetimes(
        # Two-digit NMEA years pivot at 69.
        min_value=datetime(2000, 1, 1), max_value=datetime(2068, 12, 31),
        timezones=st.just(UTC),
    ).map(lambda d: d.replace(microsecond=0)),
    lat=st.floats(min_value=-89.99, max_value=89.99),
    lon=st.floats(min_value=-179.99, max_value=179.99),
    speed_kmh=st.floats(min_value=0, max_value=400).map(lambda v: round(v, 1)),
    course_deg=st.floats(min_value=0, max_value=359.99).map(lambda v: round(v, 2)),
    altitude_m=st.floats(min_value=-400, max_value=9000).map(lambda v: round(v, 1)),
    satellites=st.integers(min_value=0, max_value=24),
    hdop=st.floats(min_value=0.5, max_value=50).map(lambda v: round(v, 1)),
)


@settings(max_examples=200)
@given(fixes)
def test_encode_then_read_round_trip(fix: Fix) -> None:
    reader = NmeaReader()
    assert reader.feed_sentence(encode_gga(fix)) is None
    got = reader.feed_sentence(encode_rmc(fix))
    assert got is not None
    assert got.fix_time == fix.fix_time
    assert got.lat == pytest.approx(fix.lat, abs=1e-6)
    assert got.lon == pytest.approx(fix.lon, abs=1e-6)
    assert got.speed_kmh == pytest.approx(fix.speed_kmh, abs=0.01)
    assert got.course_deg == pytest.approx(fix.course_deg, abs=0.01)
    assert got.altitude_m == pytest.approx(fix.altitude_m, abs=0.05)
    assert got.satellites == fix.satellites
    assert got.hdop == pytest.approx(fix.hdop)
