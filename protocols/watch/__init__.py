"""watch: the "3G"/SeTracker protocol of kids' watches and 4G trackers (TK905B/TK915 4G),
`[3G*<id>*<len>*<TYPE>,...]`, port 5093.

Modules: `escape` (the `}` escaping of binary payloads), `framer` (`[`...`]` to frames),
`positions` (the UD/AL position record), `decoder` (decode() and replies), `commands` (server
commands), `device` (a simulated watch).
"""

from __future__ import annotations

from protocols.codec import Codec, CommandType, StatelessSession
from protocols.watch.commands import answers, encode_command
from protocols.watch.decoder import decode
from protocols.watch.device import WatchDevice
from protocols.watch.framer import WatchFramer

_MAKER_BYTES = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def detect(head: bytes) -> bool | None:
    """`[` + a two-character maker + `*` (`[3G*`, `[SG*`, `[CS*`, `[ZJ*`)."""
    if head[:1] != b"[":
        return False
    maker = head[1:3]
    if not all(b in _MAKER_BYTES for b in maker):
        return False
    if len(head) < 4:
        return None
    return head[3] == 0x2A


CODEC = Codec(
    name="watch",
    title="\"3G\"/SeTracker watch protocol ([3G*id*len*...]): TK905B/TK915 4G, kids' watches",
    default_port=5093,
    detect=detect,
    framer=WatchFramer,
    session=lambda options, clock: StatelessSession(decode, options),
    encode_command=encode_command,
    answers=answers,
    commands=frozenset({
        CommandType.POSITION_SINGLE, CommandType.REPORT_INTERVAL, CommandType.REBOOT}),
    device=WatchDevice,
    sos="AL message with status bit 16 (the SOS key); answered [MF*id*0002*AL] once stored",
)

__all__ = ["CODEC", "WatchDevice", "WatchFramer", "decode", "detect", "encode_command"]
