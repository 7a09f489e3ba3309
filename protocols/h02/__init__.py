"""h02: the `*HQ,...#` text and `$` binary protocol (port 5013).

Spoken by Sinotrack ST-901 / ST-906, Cantrack / LK-series ("LKGPS") units and the 2G builds of
TK905 / TK915 (4G builds speak the watch protocol). Modules: `framer` (text and fixed-length
binary frames), `text` / `binary` (message layouts), `status` (the active-low status word),
`session` (decoding, replies, options), `commands`, `device` (a simulated unit).
"""

from __future__ import annotations

from protocols.codec import Codec
from protocols.h02.commands import COMMANDS, answers, encode_command, encode_command_at
from protocols.h02.device import H02Device
from protocols.h02.framer import H02Framer
from protocols.h02.session import H02Options, H02Session

DEFAULT_PORT = 5013

_NMEA = (b"$GP", b"$GN")
#: Binary frames start with `$` and 11 BCD bytes (device id, time, date).
_BCD_HEAD = 12


def _is_bcd(byte: int) -> bool:
    return (byte >> 4) <= 9 and (byte & 0x0F) <= 9


def detect(head: bytes) -> bool | None:
    """`*` + a two-letter maker code + `,` (text), or `$` + BCD id, time and date (binary)."""
    if head[:1] == b"*":
        if len(head) < 4:
            return None if head[1:].isalpha() or len(head) == 1 else False
        return head[1:3].isalpha() and head[3:4] == b","
    if head[:1] == b"$":
        if head.startswith(_NMEA):
            return False
        body = head[1:_BCD_HEAD]
        if not all(_is_bcd(byte) for byte in body):
            return False
        return True if len(head) >= _BCD_HEAD else None
    return False


def reply_key(reply: bytes) -> bytes:
    """What a device can predict of a server reply: V4 and R12 replies without their clock."""
    if b",V4," in reply or b",R12," in reply:
        return reply[:reply.rfind(b",") + 1]
    return reply


CODEC = Codec(
    name="h02",
    title="H02 family: Sinotrack ST-901, LK-series, TK905/TK915 2G (*HQ,...# text, $ binary)",
    default_port=DEFAULT_PORT,
    detect=detect,
    framer=H02Framer,
    session=H02Session,
    options=H02Options,
    encode_command=encode_command,
    answers=answers,
    commands=COMMANDS,
    device=H02Device,
    sos="status word bit 1 (or 18) cleared in a V1 text or $ binary position (active-low)",
    downlink_framer=H02Framer,
    reply_key=reply_key,
)

__all__ = [
    "CODEC",
    "DEFAULT_PORT",
    "H02Device",
    "H02Framer",
    "H02Options",
    "H02Session",
    "detect",
    "encode_command",
    "encode_command_at",
]
