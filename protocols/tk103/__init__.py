"""tk103: the parenthesised TK103 protocol (`(<id>BR00...)`, `(<imei>,BP05,...)`), port 5002."""

from __future__ import annotations

from protocols.codec import Codec
from protocols.tk103.commands import encode_command
from protocols.tk103.decoder import decode
from protocols.tk103.device import Tk103Device, device_id_for_imei
from protocols.tk103.framer import Tk103Framer

CODEC = Codec(
    name="tk103",
    default_port=5002,
    framer=Tk103Framer,
    decode=decode,
    encode_command=encode_command,
    device=Tk103Device,
)

__all__ = [
    "CODEC",
    "Tk103Device",
    "Tk103Framer",
    "decode",
    "device_id_for_imei",
    "encode_command",
]
