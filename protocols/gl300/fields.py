"""Field-level parsing shared by the @Track report decoders: times, numbers, GPS points, models.

All parsers are strict about shape (so that a structural search can tell a GPS point from other
fields) and raise `FieldError` with a specific reason when a field that must be valid is not.
"""

from __future__ import annotations

import functools
import math
import re
from datetime import UTC, datetime

#: Device model from the first two characters of the protocol version (from Traccar's
#: PROTOCOL_MODELS, see PROTOCOLS.md §3.2). `F5` is not in that table: the only F5 record in the
#: corpus carries the factory-default device name "GL300M" (Queclink devices default the name to
#: the model), so F5 -> GL300M is an inference, not a vendor fact.
MODELS: dict[str, str] = {
    "02": "GL200",
    "21": "GL200",
    "1A": "GL300",
    "30": "GL300",
    "2C": "GL300W",
    "28": "GL300VC",
    "11": "GL500",
    "40": "GL500",
    "DE": "GL500M",
    "44": "GL530",
    "C3": "GL320M",
    "1F": "GV500",
    "DF": "CV100LG",
    "F5": "GL300M",
}

#: Ten-character versions use a six-character device prefix (PROTOCOLS.md §3.2).
MODELS_LONG: dict[str, str] = {
    "802004": "GV58LAU",
}

_VERSION = re.compile(r"[0-9A-Fa-f]{6}(?:[0-9A-Fa-f]{4})?")
_IMEI_OR_MEID = re.compile(r"[0-9]{15}|[0-9A-Fa-f]{14}")
_COUNT = re.compile(r"[0-9A-Fa-f]{4,10}")
#: A coordinate inside a structured point: decimal degrees with a fraction.
COORD = re.compile(r"-?[0-9]{1,3}\.[0-9]{1,8}")
#: The heuristic for report types without a known layout: "6-decimal" coordinates.
COORD6 = re.compile(r"-?[0-9]{1,3}\.[0-9]{6}")
_VIN = re.compile(r"[A-HJ-NPR-Z0-9]{17}")


class FieldError(ValueError):
    """A field that must be valid is not; the message is the Rejected reason."""


def is_version(value: str) -> bool:
    return _VERSION.fullmatch(value) is not None


def is_device_id(value: str) -> bool:
    return _IMEI_OR_MEID.fullmatch(value) is not None


def is_count(value: str) -> bool:
    return _COUNT.fullmatch(value) is not None


def is_vin(value: str) -> bool:
    return _VIN.fullmatch(value) is not None


@functools.lru_cache(maxsize=256)
def model_of(version: str) -> str | None:
    """The device model for a protocol version, when known (cached: a gateway sees few)."""
    if len(version) == 10:
        model = MODELS_LONG.get(version[:6].upper())
        if model is not None:
            return model
    return MODELS.get(version[:2].upper())


def parse_time(value: str) -> datetime | None:
    """`YYYYMMDDHHMMSS` (UTC) to an aware datetime; None when empty or not a valid time."""
    if len(value) != 14 or not value.isascii() or not value.isdigit():
        return None
    try:
        # fromisoformat (basic format, C implementation) is ~10x faster than int() slicing.
        return datetime.fromisoformat(f"{value[:8]}T{value[8:]}+00:00")
    except ValueError:
        return None


def format_time(value: datetime) -> str:
    """An aware (or naive UTC) datetime as `YYYYMMDDHHMMSS` in UTC."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return (f"{value.year:04d}{value.month:02d}{value.day:02d}"
            f"{value.hour:02d}{value.minute:02d}{value.second:02d}")


def opt_float(value: str) -> float | None:
    """A finite decimal number, or None for an empty or malformed field."""
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def opt_int(value: str, base: int = 10) -> int | None:
    """An integer (ASCII digits only), or None for an empty or malformed field."""
    if not value or not value.isascii():
        return None
    try:
        return int(value, base)
    except ValueError:
        return None


def percent(value: str) -> int | None:
    """A battery percentage 0..100, or None."""
    if not value or len(value) > 3 or not value.isascii() or not value.isdigit():
        return None
    number = int(value)
    return number if number <= 100 else None


def point_shape(f: list[str], i: int, *, strict: bool = True) -> bool | None:
    """What the 7 GPS fields at f[i:i+7] (accuracy, speed, azimuth, altitude, lon, lat, time) are.

    True: a fix; False: an empty point (the device never had a fix: all 7 fields empty, or with
    `strict=False` all but the accuracy); None: these are not GPS fields. Strictness matters for
    the structural search: `1,1,,,,,,,` must not be read as a point whose accuracy is 1.
    """
    lon, lat, time = f[i + 4], f[i + 5], f[i + 6]
    if not lon and not lat and not time:
        if f[i + 1] or f[i + 2] or f[i + 3] or (strict and f[i]):
            return None
        return False
    if (len(time) == 14 and time.isascii() and time.isdigit()
            and COORD.fullmatch(lon) is not None and COORD.fullmatch(lat) is not None):
        return True
    return None
