"""Field parsers shared by the gps103 decoders.

Each raises ValueError with a message naming the field, so that the decoders can turn it into a
specific rejection reason.
"""

from __future__ import annotations

import math

#: Longest device identifier accepted after `imei:` (an IMEI has 15 digits; some firmwares pad).
MAX_ID_DIGITS = 20


def is_device_id(value: str) -> bool:
    """True for 1 to MAX_ID_DIGITS ASCII digits (str.isdigit alone accepts other scripts)."""
    return 0 < len(value) <= MAX_ID_DIGITS and value.isascii() and value.isdigit()


def optional_float(value: str, name: str) -> float | None:
    """A finite decimal number, or None for an empty field."""
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"invalid {name} {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"invalid {name} {value!r}")
    return number


def lenient_number(value: str) -> float | int | None:
    """A plain number (`+87`, `14.3`, `02444`) or None when the field holds anything else.

    Used for auxiliary fields whose layout varies between firmwares: a value that does not parse
    is left out instead of rejecting the whole frame.
    """
    text = value[1:] if value[:1] in ("+", "-") else value
    if not text or not text.isascii():
        return None
    if text.isdigit():
        return int(value)
    whole, dot, fraction = text.partition(".")
    if dot and whole.isdigit() and (not fraction or fraction.isdigit()):
        return float(value)
    return None


def percent(value: str) -> float | None:
    """A `dd.dd%` level; some firmwares leave out the `%`. Plain integers are not levels."""
    text = value[:-1] if value.endswith("%") else value
    number = lenient_number(text)
    if number is None or text[:1] in ("+", "-"):
        return None
    if isinstance(number, int) and not value.endswith("%"):
        return None
    return float(number)


def digits(value: str) -> bool:
    """True when the field is made of ASCII digits only (and is not empty)."""
    return value.isascii() and value.isdigit()
