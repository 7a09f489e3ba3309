"""gps103: the TK103-B / Coban `imei:` text protocol (Traccar port 5001).

    device: ##,imei:<id>,A;                          server: LOAD
    device: <id>;                                    server: ON
    device: imei:<id>,tracker,<local time>,,F,<utc time>,A,<ddmm.mmmm>,N,<dddmm.mmmm>,E,<knots>,...;
    device: imei:<id>,help me,...;                   server: **,imei:<id>,E;   (after storing)
    server: **,imei:<id>,B;  C,<nn>s|m|h;  D;  J;  K;

Speeds on the wire are knots (GPRMC) except in the `*`-terminated alternative format (km/h).
"""

from __future__ import annotations

from protocols.codec import Codec, CommandType, StatelessSession
from protocols.gps103.commands import answers, encode_command
from protocols.gps103.decoder import LOAD, ON, decode
from protocols.gps103.device import Gps103Device
from protocols.gps103.framer import Gps103Framer

#: Traccar's gps103 port, which installers configure on these devices.
DEFAULT_PORT = 5001

_PREFIXES = (b"imei:", b"##,")


def detect(head: bytes) -> bool | None:
    """`imei:` frames, the `##,imei:` login, or the digits of a bare-IMEI heartbeat."""
    if head[:1].isdigit() or head.startswith(_PREFIXES):
        return True
    return None if any(prefix.startswith(head) for prefix in _PREFIXES) else False


CODEC = Codec(
    name="gps103",
    title="TK103-B, TK103-2B, Coban GPS10x/30x (\"imei:...\" text)",
    default_port=DEFAULT_PORT,
    detect=detect,
    framer=Gps103Framer,
    session=lambda options, clock: StatelessSession(decode, options),
    encode_command=encode_command,
    answers=answers,
    commands=frozenset({CommandType.POSITION_SINGLE, CommandType.REPORT_INTERVAL,
                        CommandType.ENGINE_STOP, CommandType.ENGINE_RESUME}),
    device=Gps103Device,
    sos="imei:<IMEI>,help me,... (the SOS button)",
)

__all__ = ["CODEC", "DEFAULT_PORT", "LOAD", "ON", "Gps103Device", "Gps103Framer",
           "decode", "encode_command"]
