"""Where the device ID ends and the 4-character message type begins, in both tk103 layouts.

* Fixed layout: `(088047365460BR00151024A...)`: the ID runs straight into the type code. It is
  usually 12 characters, but real devices also send 11 (`(01602009983BR00...`) or 15
  (`(357593060760397BP02,...`), so when position 12 holds no type code the type is searched for.
* Comma layout: `(352606090042050,BP05,240414,A,...)`: ID, then type, as comma-separated fields.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# Type codes are two capital letters and two digits/letters: BP05, BR00, BQ81, ZC03, DW3B, DW5E.
_TYPE = re.compile(r"[A-Z]{2}[0-9][0-9A-Z]")
# The common case in one regex call: 12-character ID, then the type code.
_FIXED12 = re.compile(r"[0-9A-Za-z]{12}[A-Z]{2}[0-9][0-9A-Z]")
_ID = re.compile(r"[0-9A-Za-z_-]{1,20}")
# Shortest alphanumeric ID followed by a type code (fixed layout with an ID that is not 12 long).
_ID_THEN_TYPE = re.compile(r"([0-9A-Za-z]{1,20}?)([A-Z]{2}[0-9][0-9A-Z])")


class Header(NamedTuple):
    device_id: str
    type: str
    #: What follows the type code (for the comma layout, after the comma behind the type).
    body: str
    #: True for the comma layout (`(<imei>,BP05,...)`), which uses DDMMYY dates and gets no replies.
    comma_layout: bool


def split_header(inner: str) -> Header | None:
    """ID, type and body of a frame's text without its parentheses; None if there is no type."""
    if _FIXED12.match(inner) is not None:
        return Header(inner[:12], inner[12:16], inner[16:], False)
    comma = inner.find(",")
    if comma > 0:
        after = inner.find(",", comma + 1)
        end = after if after >= 0 else len(inner)
        if (
            end - comma == 5
            and _TYPE.fullmatch(inner, comma + 1, end)
            and _ID.fullmatch(inner, 0, comma)
        ):
            body = inner[after + 1:] if after >= 0 else ""
            return Header(inner[:comma], inner[comma + 1:end], body, True)
    head_end = comma if comma >= 0 else len(inner)
    match = _ID_THEN_TYPE.match(inner, 0, head_end)
    if match is None:
        return None
    return Header(match.group(1), match.group(2), inner[match.end():], False)
