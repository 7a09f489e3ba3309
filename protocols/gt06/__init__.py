"""gt06: the Concox / Jimi binary protocol (`78 78` / `79 79` packets, CRC-16/X-25), port 5023.

Spoken by the Concox GT06 / GT06N and their many clones, Jimi IoT units (JM-VL01/VL03, VL103,
LL303...) and MiCODUS MV720-class trackers. Modules: `wire` (envelope, CRC, acks), `framer`,
`session` (login state, dispatch, replies, options), `blocks` / `positions` / `extras` (the
packet families), `variants` (layouts told apart by length byte and model), `commands` (0x80
text commands), `device` (a simulated unit).
"""

from __future__ import annotations

from protocols.codec import Codec, prefix_detector
from protocols.gt06.commands import COMMANDS, answers, encode_command
from protocols.gt06.device import Gt06Device
from protocols.gt06.framer import Gt06Framer
from protocols.gt06.session import Gt06Options, Gt06Session
from protocols.gt06.wire import crc16_x25

DEFAULT_PORT = 5023


def reply_key(reply: bytes) -> bytes:
    """What a device can predict of a server message: all of it, except the clock of a 0x8A
    time reply."""
    if len(reply) >= 4 and reply[:2] == b"\x78\x78" and reply[3] == 0x8A:
        return reply[:4]
    return reply


CODEC = Codec(
    name="gt06",
    title="Concox GT06 / Jimi IoT / MiCODUS MV720 class (binary 78 78 / 79 79, CRC-16/X-25)",
    default_port=DEFAULT_PORT,
    detect=prefix_detector(b"\x78\x78", b"\x79\x79"),
    framer=Gt06Framer,
    session=Gt06Session,
    options=Gt06Options,
    encode_command=encode_command,
    answers=answers,
    commands=COMMANDS,
    device=Gt06Device,
    sos="alarm byte 0x01 (or terminal-information code 4) in a 0x16/0x26/0x27/0xA4 GPS+status "
        "packet, after the 0x01 login on the same connection",
    binary=True,
    downlink_framer=Gt06Framer,
    reply_key=reply_key,
)

__all__ = [
    "CODEC",
    "DEFAULT_PORT",
    "Gt06Device",
    "Gt06Framer",
    "Gt06Options",
    "Gt06Session",
    "crc16_x25",
    "encode_command",
]
