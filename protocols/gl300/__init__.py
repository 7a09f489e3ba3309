"""Queclink @Track text protocol (GL200 / GL300 / GL500 families; Traccar's `gl200`, port 5004).

Frames are `+RESP:GTxxx,...$`, `+BUFF:GTxxx,...$` (buffered while offline) and `+ACK:GTxxx,...$`
(heartbeat and command acknowledgements). Modules: `framer` (byte stream to frames), `fields`
(field parsers, models), `reports` (per-type layouts), `decoder` (decode() and replies),
`commands` (AT+GTxxx commands), `device` (a simulated GL300).
"""

from __future__ import annotations

from protocols.codec import Codec
from protocols.gl300.commands import encode_command
from protocols.gl300.decoder import decode
from protocols.gl300.device import Gl300Device
from protocols.gl300.framer import Gl300Framer

CODEC = Codec(
    name="gl300",
    default_port=5004,
    framer=Gl300Framer,
    decode=decode,
    encode_command=encode_command,
    device=Gl300Device,
)

__all__ = ["CODEC", "Gl300Device", "Gl300Framer", "decode", "encode_command"]
