"""eelink: the EElink binary protocol (`67 67` packages; TK419 and other EElink units), port
5064.

Modules: `framer` (TCP stream to packages), `packages` (package content to events), `udp` (the
`EL` datagram header and checksum), `session` (identity and acks), `commands` (0x80 downlink
commands), `device` (a simulated device).
"""

from __future__ import annotations

from protocols.codec import Codec, prefix_detector
from protocols.eelink.commands import COMMANDS, answers, encode_command, encode_udp_command
from protocols.eelink.device import EelinkDevice
from protocols.eelink.framer import EelinkFramer
from protocols.eelink.session import EelinkSession, reply_key

CODEC = Codec(
    name="eelink",
    title="EElink binary protocol (67 67 packages): TK419 and other EElink trackers",
    default_port=5064,
    detect=prefix_detector(b"gg"),
    framer=EelinkFramer,
    session=EelinkSession,
    encode_command=encode_command,
    answers=answers,
    commands=COMMANDS,
    device=EelinkDevice,
    sos="warning package 0x14 (old protocol: 0x04) with alarm code 0x02; acknowledged once "
        "stored",
    binary=True,
    downlink_framer=EelinkFramer,
    reply_key=reply_key,
)

__all__ = [
    "CODEC",
    "EelinkDevice",
    "EelinkFramer",
    "EelinkSession",
    "encode_command",
    "encode_udp_command",
]
