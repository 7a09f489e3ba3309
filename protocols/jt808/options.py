"""Settings of the JT/T 808 decoder (`[protocols.jt808]` in the gateway's configuration)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta

#: Models whose vendor extensions are decoded differently from the standard (the frames do
#: not say which model sent them). Canonical spelling -> family.
MODELS: dict[str, str] = {
    "MV710G": "micodus", "MV810G": "micodus",
    "JC371": "jimi", "JC181": "jimi", "JC182": "jimi", "JC450": "jimi", "JC451": "jimi",
    "C5": "c5", "C5L": "c5",
    "AL300": "aovx", "GL100": "aovx",
    "G-360P": "padlock", "G-508P": "padlock",
    "VL300": "vl300",
    "DT800": "dt800",
    "G1C PRO": "g1c",
}

_OFFSET = re.compile(r"([+-])(\d{1,2})(?::?(\d{2}))?")


def parse_utc_offset(text: str) -> timedelta:
    """`+08:00`, `-05:30`, `+8`, `UTC` -> the offset of the device clock from UTC."""
    value = text.strip().upper()
    for prefix in ("UTC", "GMT"):
        if value.startswith(prefix):
            value = value[len(prefix):]
    if value in ("", "Z"):
        return timedelta(0)
    match = _OFFSET.fullmatch(value)
    if match is None:
        raise ValueError(f"jt808 timezone {text!r}: write the device clock's offset from UTC "
                         "as +HH:MM or -HH:MM (JT/T 808 devices default to +08:00), or UTC")
    sign, hours, minutes = match.groups()
    offset = timedelta(hours=int(hours), minutes=int(minutes or 0))
    if offset > timedelta(hours=14) or int(minutes or 0) >= 60:
        raise ValueError(f"jt808 timezone {text!r}: offsets range from -14:00 to +14:00")
    return -offset if sign == "-" else offset


@dataclass(frozen=True, slots=True)
class Jt808Options:
    """Settings of the JT/T 808 decoder (`[protocols.jt808]` in the gateway's configuration)."""

    timezone: str = field(default="+08:00", metadata={"doc": (
        "Offset from UTC of the clock in the devices' location reports. JT/T 808 units report "
        "Beijing time (+08:00) unless configured otherwise; set UTC for units set to UTC.")})
    check_auth_code: bool = field(default=False, metadata={"doc": (
        "Refuse an authentication (0x0102) whose code is not the one this gateway issues at "
        "registration (the terminal's phone digits): the unit gets result 1 and registers "
        "again. Off: any code is accepted and counted as auth_code_mismatch, as the reference "
        "server does (units registered on another platform keep working).")})
    model: str = field(default="", metadata={"doc": (
        "Device model whose vendor extensions to decode, for a port where all units are that "
        "model (frames do not say which model sent them). Empty: the standard and the "
        "unambiguous vendor items only. One of: " + ", ".join(sorted(MODELS)) + ".")})

    def __post_init__(self) -> None:
        parse_utc_offset(self.timezone)
        if self.model and self.model.strip().upper() not in MODELS:
            raise ValueError(
                f"jt808 model {self.model!r} has no model-specific decoding; leave it empty "
                f"for standard JT/T 808, or use one of: {', '.join(sorted(MODELS))}")

    @property
    def utc_offset(self) -> timedelta:
        return parse_utc_offset(self.timezone)

    @property
    def family(self) -> str:
        """The vendor family of `model` ("" for none)."""
        return MODELS.get(self.model.strip().upper(), "")
