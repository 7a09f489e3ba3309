"""Where a simulated device is: a route played back in real time, or a live GPS receiver.

A `Route` is a list of timed waypoints, loaded from an NMEA log (parsed with pynmea2 through
`protocols.nmea`), a GPX file (gpxpy) or generated along a street grid. `fix_at(elapsed)`
interpolates along it, with the speed and course of the segment, and wraps around at the end, so
a device can drive it forever. Many devices share one Route with different start offsets.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from protocols import Fix
from protocols.nmea import NmeaFramer, NmeaReader

EARTH_RADIUS_M = 6_371_008.8
#: Speed assumed for GPX files without timestamps.
DEFAULT_SPEED_KMH = 40.0
#: Folder of the sample routes shipped with the project.
SAMPLE_ROUTES = Path(__file__).resolve().parent.parent / "config" / "routes"


class RouteError(ValueError):
    """A route file that cannot be used (unreadable, empty, no valid fix)."""


@dataclass(frozen=True, slots=True)
class Waypoint:
    t: float  # seconds from the start of the route
    lat: float
    lon: float
    altitude_m: float = 0.0


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial course from the first point to the second, degrees from true north."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360.0


def offset_point(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """The point `north_m` / `east_m` metres away (flat-earth; fine for a city)."""
    dlat = math.degrees(north_m / EARTH_RADIUS_M)
    dlon = math.degrees(east_m / (EARTH_RADIUS_M * math.cos(math.radians(lat))))
    return lat + dlat, lon + dlon


class Route:
    """Timed waypoints; `fix_at(elapsed)` is where a device is `elapsed` seconds in."""

    __slots__ = ("_course", "_speed", "_times", "duration_s", "length_m", "name", "points")

    def __init__(self, points: Sequence[Waypoint], name: str = "route") -> None:
        cleaned: list[Waypoint] = []
        for point in points:
            if cleaned and point.t <= cleaned[-1].t:
                continue  # out of order or repeated time: keep the first
            cleaned.append(point)
        if not cleaned:
            raise RouteError(f"{name}: the route has no usable point")
        if len(cleaned) == 1:  # a parked device
            only = cleaned[0]
            cleaned.append(Waypoint(only.t + 1.0, only.lat, only.lon, only.altitude_m))
        self.name = name
        self.points = tuple(cleaned)
        self._times = [p.t - cleaned[0].t for p in cleaned]
        self.duration_s = self._times[-1]
        self._speed: list[float] = []
        self._course: list[float] = []
        length = 0.0
        last_course = 0.0
        for a, b in itertools.pairwise(cleaned):
            d = distance_m(a.lat, a.lon, b.lat, b.lon)
            length += d
            self._speed.append(d / (b.t - a.t) * 3.6)
            if d > 0.5:
                last_course = bearing_deg(a.lat, a.lon, b.lat, b.lon)
            self._course.append(last_course)
        self.length_m = length

    def __repr__(self) -> str:
        return (f"Route({self.name!r}, {len(self.points)} points, {self.length_m:.0f} m, "
                f"{self.duration_s:.0f} s)")

    def fix_at(self, elapsed: float, when: datetime) -> Fix:
        """The fix `elapsed` seconds into the route (wrapping around), timestamped `when`."""
        t = elapsed % self.duration_s if self.duration_s > 0 else 0.0
        times = self._times
        i = min(bisect.bisect_right(times, t) - 1, len(times) - 2)
        a, b = self.points[i], self.points[i + 1]
        span = times[i + 1] - times[i]
        k = (t - times[i]) / span if span > 0 else 0.0
        return Fix(
            fix_time=when,
            lat=a.lat + (b.lat - a.lat) * k,
            lon=a.lon + (b.lon - a.lon) * k,
            speed_kmh=round(self._speed[i], 1),
            course_deg=round(self._course[i], 1),
            altitude_m=a.altitude_m + (b.altitude_m - a.altitude_m) * k,
            satellites=9,
            hdop=0.9,
        )

    # Sources ---------------------------------------------------------------------------------

    @classmethod
    def from_nmea(cls, path: str | Path) -> Route:
        """An NMEA log (RMC, with GGA for altitude): one waypoint per valid RMC, at its time."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise RouteError(f"cannot read {path}: {exc}") from exc
        return cls.from_nmea_bytes(data, name=path.name)

    @classmethod
    def from_nmea_bytes(cls, data: bytes, name: str = "nmea") -> Route:
        framer = NmeaFramer()
        reader = NmeaReader()
        fixes: list[Fix] = []
        for frame in framer.feed(data if data.endswith(b"\n") else data + b"\n"):
            if isinstance(frame, bytes):
                fix = reader.feed_sentence(frame)
                if fix is not None and fix.valid:
                    fixes.append(fix)
        if not fixes:
            raise RouteError(f"{name}: no valid RMC fix in the NMEA log "
                             f"({reader.errors} bad sentences)")
        return cls.from_fixes(fixes, name=name)

    @classmethod
    def from_fixes(cls, fixes: Iterable[Fix], name: str = "fixes") -> Route:
        fixes = list(fixes)
        start = fixes[0].fix_time
        return cls([Waypoint((f.fix_time - start).total_seconds(), f.lat, f.lon, f.altitude_m)
                    for f in fixes], name=name)

    @classmethod
    def from_gpx(cls, path: str | Path, speed_kmh: float = DEFAULT_SPEED_KMH) -> Route:
        """A GPX track (or route, or waypoints). Without timestamps, driven at `speed_kmh`."""
        import gpxpy
        import gpxpy.gpx

        path = Path(path)
        try:
            with path.open(encoding="utf-8") as handle:
                gpx = gpxpy.parse(handle)
        except (OSError, gpxpy.gpx.GPXException) as exc:
            raise RouteError(f"cannot read GPX {path}: {exc}") from exc
        points = [p for track in gpx.tracks for seg in track.segments for p in seg.points]
        if not points:
            points = [p for route in gpx.routes for p in route.points]
        if not points:
            points = list(gpx.waypoints)
        if not points:
            raise RouteError(f"{path.name}: no track, route or waypoint in the GPX file")
        coords = [(p.latitude, p.longitude, p.elevation or 0.0) for p in points]
        times = [p.time for p in points]
        if all(t is not None for t in times):
            start = times[0]
            assert start is not None
            return cls([Waypoint((t - start).total_seconds(), lat, lon, alt)  # type: ignore[operator]
                        for t, (lat, lon, alt) in zip(times, coords, strict=True)],
                       name=path.name)
        return cls.from_coordinates(coords, speed_kmh=speed_kmh, name=path.name)

    @classmethod
    def from_coordinates(cls, coords: Sequence[tuple[float, float, float]], *,
                         speed_kmh: float = DEFAULT_SPEED_KMH, name: str = "path") -> Route:
        """Untimed points driven at a constant speed."""
        mps = speed_kmh / 3.6
        t = 0.0
        waypoints: list[Waypoint] = []
        for i, (lat, lon, alt) in enumerate(coords):
            if i:
                prev = coords[i - 1]
                t += max(distance_m(prev[0], prev[1], lat, lon) / mps, 0.001)
            waypoints.append(Waypoint(t, lat, lon, alt))
        return cls(waypoints, name=name)

    @classmethod
    def generated(cls, lat: float = 52.52, lon: float = 13.405, *, blocks: int = 6,
                  block_m: float = 150.0, legs: int = 40, speed_kmh: float = 36.0,
                  seed: int = 1) -> Route:
        """A closed drive along a square street grid around (lat, lon): a random walk of `legs`
        blocks that then drives back to the start, so looping it never jumps."""
        rng = random.Random(seed)
        x = y = 0
        grid = [(0, 0)]
        for _ in range(legs):
            dx, dy = rng.choice(((1, 0), (-1, 0), (0, 1), (0, -1)))
            if abs(x + dx) > blocks // 2 or abs(y + dy) > blocks // 2:
                dx, dy = -dx, -dy
            x, y = x + dx, y + dy
            grid.append((x, y))
        while (x, y) != (0, 0):  # drive home: first east-west, then north-south
            if x:
                x -= 1 if x > 0 else -1
            else:
                y -= 1 if y > 0 else -1
            grid.append((x, y))
        coords = [(*offset_point(lat, lon, gy * block_m, gx * block_m), 35.0) for gx, gy in grid]
        return cls.from_coordinates(coords, speed_kmh=speed_kmh, name=f"grid@{lat:.4f},{lon:.4f}")


def load_route(path: str | Path) -> Route:
    """A route file by its extension: `.gpx`, else NMEA (`.nmea`, `.log`, `.txt`, ...)."""
    path = Path(path)
    if not path.exists() and not path.is_absolute() and (SAMPLE_ROUTES / path).exists():
        path = SAMPLE_ROUTES / path  # `--route berlin-grid.gpx` finds the sample
    if path.suffix.lower() == ".gpx":
        return Route.from_gpx(path)
    return Route.from_nmea(path)


class FixSource(Protocol):
    """Where a device takes its position from."""

    def fix(self, when: datetime, elapsed: float) -> Fix | None: ...


class RouteSource:
    """A device driving a route, `offset_s` seconds into it at its start (fleets spread out)."""

    __slots__ = ("offset_s", "route")

    def __init__(self, route: Route, offset_s: float = 0.0) -> None:
        self.route = route
        self.offset_s = offset_s

    def fix(self, when: datetime, elapsed: float) -> Fix:
        return self.route.fix_at(self.offset_s + elapsed, when)


class LiveSource:
    """The newest fix of a live receiver (see simulators.serial_link.NmeaInput).

    `fix()` gives None until the receiver delivered a fix. The fix keeps the receiver's time.
    """

    def __init__(self) -> None:
        self.latest: Fix | None = None
        self.received = 0
        self.listeners: list[Callable[[Fix], None]] = []

    def push(self, fix: Fix) -> None:
        self.latest = fix
        self.received += 1
        for listener in self.listeners:
            listener(fix)

    def fix(self, when: datetime, elapsed: float) -> Fix | None:
        return self.latest


def utc_now() -> datetime:
    return datetime.now(UTC)
