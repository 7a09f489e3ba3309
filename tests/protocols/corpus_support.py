"""What the conformance tests of every protocol read from decoded corpus records."""

from __future__ import annotations

import re
from typing import Any

from protocols import Decoded, Position


def snake(name: str) -> str:
    """A corpus kind (`PositionReport`) as the event kind it names (`position_report`)."""
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def positions_of(decoded: Decoded) -> list[Position]:
    return [e for e in decoded.events if isinstance(e, Position)]


def attribute_values(decoded: Decoded, key: str) -> list[Any]:
    """The values of attribute `key` over the decoded events that carry attributes."""
    values = []
    for event in decoded.events:
        attributes = getattr(event, "attributes", None)
        if attributes is not None and key in attributes:
            values.append(attributes[key])
    return values
