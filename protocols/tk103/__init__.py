"""tk103: the parenthesised TK103 protocol (`(<id>BR00...)`, `(<imei>,BP05,...)`), port 5002."""

from __future__ import annotations

from protocols.codec import Codec, CommandType, StatelessSession, prefix_detector
from protocols.tk103.commands import answers, encode_command
from protocols.tk103.decoder import decode
from protocols.tk103.device import Tk103Device, device_id_for_imei
from protocols.tk103.framer import Tk103Framer


def wire_ids(imei: str) -> tuple[str, ...]:
    """A fixed-layout unit names itself by the last 12 digits of its IMEI."""
    return (device_id_for_imei(imei),) if len(imei) == 15 else ()


CODEC = Codec(
    name="tk103",
    title="original TK103 (Xexun style \"(...BP05...)\": 12-character-id and comma layouts)",
    default_port=5002,
    detect=prefix_detector(b"("),
    framer=Tk103Framer,
    session=lambda options, clock: StatelessSession(decode, options),
    encode_command=encode_command,
    answers=answers,
    commands=frozenset(CommandType),
    device=Tk103Device,
    wire_ids=wire_ids,
    sos="BO01 alarm with code 2, or ZC25 / DW3E / DW5E (the SOS button)",
)

__all__ = [
    "CODEC",
    "Tk103Device",
    "Tk103Framer",
    "decode",
    "device_id_for_imei",
    "encode_command",
]
