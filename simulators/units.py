"""Durations and rates as an installer types them: `30s`, `5m`, `250ms`, `1/s`, `1/10s`."""

from __future__ import annotations

import re

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*\Z", re.IGNORECASE)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds for `30s`, `1.5m`, `2h`, `250ms` or a bare number of seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (examples: 30s, 5m, 1h, 250ms)")
    value = float(match.group(1)) * _UNIT_SECONDS[(match.group(2) or "s").lower()]
    return value


def parse_rate(text: str) -> float:
    """Events per second for `1/s`, `2/s`, `1/10s`, `6/m` or a bare number per second."""
    text = text.strip()
    if "/" not in text:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"not a rate: {text!r} (examples: 1/s, 1/10s, 6/m)") from None
    else:
        count, _, per = text.partition("/")
        try:
            per_s = parse_duration(per if per[:1].isdigit() else "1" + per)
            value = float(count) / per_s
        except ValueError:
            raise ValueError(f"not a rate: {text!r} (examples: 1/s, 1/10s, 6/m)") from None
    if value <= 0:
        raise ValueError(f"a rate must be above zero, got {text!r}")
    return value


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"
