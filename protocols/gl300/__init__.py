"""Queclink @Track text protocol (GL200 / GL300 / GL500 families; Traccar's `gl200`, port 5004).

Frames are `+RESP:GTxxx,...$`, `+BUFF:GTxxx,...$` (buffered while offline) and `+ACK:GTxxx,...$`
(heartbeat and command acknowledgements). Modules: `framer` (byte stream to frames), `fields`
(field parsers, models), `reports` (per-type layouts), `decoder` (decode() and replies),
`commands` (AT+GTxxx commands), `device` (a simulated GL300).
"""

from __future__ import annotations

from protocols.codec import Codec, CommandType, StatelessSession, prefix_detector
from protocols.gl300.commands import answers, encode_command
from protocols.gl300.decoder import Gl300Options, decode
from protocols.gl300.device import Gl300Device
from protocols.gl300.framer import Gl300Framer

CODEC = Codec(
    name="gl300",
    title="Queclink GL200/GL300/GL500 family (@Track text: +RESP:, +BUFF:, +ACK:)",
    default_port=5004,
    detect=prefix_detector(b"+RESP:", b"+BUFF:", b"+ACK:"),
    framer=Gl300Framer,
    session=lambda options, clock: StatelessSession(decode, options),
    options=Gl300Options,
    encode_command=encode_command,
    answers=answers,
    commands=frozenset(CommandType),
    device=Gl300Device,
    sos="+RESP:GTSOS (the SOS key held for 3 s)",
)

__all__ = ["CODEC", "Gl300Device", "Gl300Framer", "Gl300Options", "decode", "encode_command"]
