"""gps103: the TK103-B / Coban `imei:` text protocol (Traccar port 5001).

    device: ##,imei:<id>,A;                          server: LOAD
    device: <id>;                                    server: ON
    device: imei:<id>,tracker,<local time>,,F,<utc time>,A,<ddmm.mmmm>,N,<dddmm.mmmm>,E,<knots>,...;
    device: imei:<id>,help me,...;                   server: **,imei:<id>,E;   (after storing)
    server: **,imei:<id>,B;  C,<nn>s|m|h;  D;  J;  K;

Speeds on the wire are knots (GPRMC) except in the `*`-terminated alternative format (km/h).
"""

from __future__ import annotations

from protocols.codec import Codec
from protocols.gps103.commands import encode_command
from protocols.gps103.decoder import LOAD, ON, decode
from protocols.gps103.device import Gps103Device
from protocols.gps103.framer import Gps103Framer

#: Traccar's gps103 port, which installers configure on these devices.
DEFAULT_PORT = 5001

CODEC = Codec(
    name="gps103",
    default_port=DEFAULT_PORT,
    framer=Gps103Framer,
    decode=decode,
    encode_command=encode_command,
    device=Gps103Device,
)

__all__ = ["CODEC", "DEFAULT_PORT", "LOAD", "ON", "Gps103Device", "Gps103Framer",
           "decode", "encode_command"]
