"""Routes: NMEA logs, GPX files, generated drives; durations and rates."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from protocols.nmea import encode_rmc
from simulators.routes import SAMPLE_ROUTES, Route, RouteError, distance_m, load_route
from simulators.units import parse_duration, parse_rate

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def test_durations_and_rates() -> None:
    assert parse_duration("30s") == 30 and parse_duration("5m") == 300
    assert parse_duration("250ms") == 0.25 and parse_duration("2") == 2
    assert parse_rate("1/s") == 1 and parse_rate("1/10s") == 0.1 and parse_rate("6/m") == 0.1
    with pytest.raises(ValueError):
        parse_duration("soon")
    with pytest.raises(ValueError):
        parse_rate("0/s")


def test_sample_routes_load() -> None:
    gpx = load_route("berlin-grid.gpx")
    nmea = load_route(SAMPLE_ROUTES / "johannesburg-loop.nmea")
    for route in (gpx, nmea):
        assert route.duration_s > 60 and route.length_m > 500
        start, end = route.points[0], route.points[-1]
        assert distance_m(start.lat, start.lon, end.lat, end.lon) < 50  # closed loops


def test_playback_interpolates_and_wraps() -> None:
    route = load_route("johannesburg-loop.nmea")
    a = route.fix_at(10.0, WHEN)
    b = route.fix_at(10.0 + route.duration_s, WHEN)
    assert (a.lat, a.lon) == pytest.approx((b.lat, b.lon))
    first, second = route.points[0], route.points[1]
    mid = route.fix_at((first.t + second.t) / 2 - route.points[0].t, WHEN)
    assert mid.lat == pytest.approx((first.lat + second.lat) / 2, abs=1e-7)
    assert 20 < a.speed_kmh < 30  # the log was recorded at 25 km/h


def test_nmea_log_with_bad_sentences(tmp_path: Path) -> None:
    fixes = [route_fix(i) for i in range(5)]
    data = b"garbage\r\n$GPRMC,broken*00\r\n" + b"".join(encode_rmc(f) for f in fixes)
    route = Route.from_nmea_bytes(data)
    assert len(route.points) == 5
    with pytest.raises(RouteError):
        Route.from_nmea_bytes(b"$GPRMC,broken*00\r\n")


def route_fix(i: int):  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from protocols import Fix

    return Fix(fix_time=WHEN + timedelta(seconds=i), lat=-26.2 + i * 1e-4, lon=28.04)


def test_gpx_without_times_is_driven_at_a_constant_speed(tmp_path: Path) -> None:
    path = tmp_path / "r.gpx"
    path.write_text(
        '<?xml version="1.0"?><gpx version="1.1" creator="t" '
        'xmlns="http://www.topografix.com/GPX/1/1"><rte>'
        '<rtept lat="52.5" lon="13.4"/><rtept lat="52.501" lon="13.4"/></rte></gpx>')
    route = Route.from_gpx(path, speed_kmh=36.0)
    assert route.duration_s == pytest.approx(route.length_m / 10.0)
    assert route.fix_at(1.0, WHEN).speed_kmh == pytest.approx(36.0, abs=0.1)


def test_generated_route_is_a_closed_street_grid() -> None:
    route = Route.generated(48.85, 2.35, seed=5)
    start, end = route.points[0], route.points[-1]
    assert (start.lat, start.lon) == pytest.approx((end.lat, end.lon))
    courses = {round(route.fix_at(t, WHEN).course_deg) % 90 for t in range(0, 300, 7)}
    assert courses <= {0, 89, 1}  # only along the grid's streets
