"""jt808: JT/T 808, the Chinese national standard for vehicle terminals (port 5015).

MiCODUS MV710G/MV810G, Jimi JC-series and most Chinese 4G vehicle trackers speak it. Frames are
`7E ... 7E`, byte-stuffed, with an XOR check code; every header names the terminal by its phone
number (`identity` turns it into the device id). Modules: `wire` (stuffing, check code, header,
frame building), `identity` (phone <-> device id, authentication code), `framer`, `items`
(additional-information items), `location` (0x0200 and batches), `messages` (the other bodies),
`session` (decode() and replies), `commands`, `device` (a simulated unit), `options`.
"""

from __future__ import annotations

from protocols.codec import Clock, Codec
from protocols.jt808.commands import (
    COMMANDS,
    answers,
    build_command,
    encode_command,
    encode_text,
    encode_transparent,
)
from protocols.jt808.device import Jt808Device
from protocols.jt808.framer import Jt808Framer
from protocols.jt808.identity import auth_code_for_phone, device_id_for_phone, phone_for_id
from protocols.jt808.options import Jt808Options
from protocols.jt808.session import Jt808Session
from protocols.jt808.wire import escape, unescape


def detect(head: bytes) -> bool | None:
    """A JT/T 808 stream starts with 0x7E (no other supported protocol does)."""
    return head[:1] == b"\x7e"


def _session(options: Jt808Options, clock: Clock) -> Jt808Session:
    return Jt808Session(options, clock)


def _downlink_framer() -> Jt808Framer:
    return Jt808Framer()


CODEC = Codec(
    name="jt808",
    title="JT/T 808 (MiCODUS MV710G/MV810G, Jimi JC-series, most Chinese 4G vehicle trackers)",
    default_port=5015,
    detect=detect,
    framer=Jt808Framer,
    session=_session,
    options=Jt808Options,
    encode_command=encode_command,
    answers=answers,
    commands=COMMANDS,
    device=Jt808Device,
    sos="0x0200 location report with alarm flag bit 0 (emergency), acknowledged by 0x8001",
    binary=True,
    downlink_framer=_downlink_framer,
)

__all__ = [
    "CODEC",
    "Jt808Device",
    "Jt808Framer",
    "Jt808Options",
    "Jt808Session",
    "auth_code_for_phone",
    "build_command",
    "detect",
    "device_id_for_phone",
    "encode_command",
    "encode_text",
    "encode_transparent",
    "escape",
    "phone_for_id",
    "unescape",
]
