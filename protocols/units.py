"""Unit conversions shared by the text protocols (NMEA-style coordinates, knots)."""

from __future__ import annotations

KMH_PER_KNOT = 1.852


def knots_to_kmh(knots: float) -> float:
    return knots * KMH_PER_KNOT


def kmh_to_knots(kmh: float) -> float:
    return kmh / KMH_PER_KNOT


def ddmm_to_degrees(value: str, hemisphere: str) -> float:
    """`ddmm.mmmm` / `dddmm.mmmm` plus N/S/E/W to signed decimal degrees.

    Leading spaces are allowed; short fields parse by the same rule (`45.78950` is 0 deg 45.7895').
    Raises ValueError for a non-numeric field or an unknown hemisphere letter.
    """
    number = float(value)
    if number < 0:
        raise ValueError("negative ddmm coordinate")
    degrees = int(number // 100)
    minutes = number - degrees * 100
    if minutes >= 60:
        raise ValueError(f"minutes out of range in {value!r}")
    result = degrees + minutes / 60.0
    if hemisphere in ("S", "W"):
        return -result
    if hemisphere in ("N", "E", ""):
        return result
    raise ValueError(f"unknown hemisphere {hemisphere!r}")


def degrees_to_ddmm(value: float, *, degree_digits: int, decimals: int = 4) -> tuple[str, str]:
    """Signed decimal degrees to (`ddmm.mmmm`, hemisphere letter); the inverse of the above.

    `degree_digits` is 2 for latitude and 3 for longitude. The hemisphere letter is N/S for
    latitude and E/W for longitude.
    """
    if degree_digits == 2:
        hemisphere = "S" if value < 0 else "N"
    else:
        hemisphere = "W" if value < 0 else "E"
    magnitude = abs(value)
    degrees = int(magnitude)
    minutes = round((magnitude - degrees) * 60, decimals)
    if minutes >= 60:
        degrees += 1
        minutes -= 60
    width = 3 + decimals  # "mm." plus the decimals
    return f"{degrees:0{degree_digits}d}{minutes:0{width}.{decimals}f}", hemisphere
