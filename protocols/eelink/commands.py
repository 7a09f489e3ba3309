"""Server-to-device commands: a downlink package 0x80 with serial 0 and the content
`01` (a command) + `00 00 00 00` (the server's id for it) + ASCII text ending in `#`.
"""

from __future__ import annotations

from protocols.codec import Answer, Command, CommandType, UnsupportedCommand, answers_any
from protocols.eelink import udp
from protocols.events import CommandResult

_TEXT = {
    CommandType.POSITION_SINGLE: "WHERE#",
    CommandType.ENGINE_STOP: "RELAY,1#",
    CommandType.ENGINE_RESUME: "RELAY,0#",
    CommandType.REBOOT: "RESET#",
}
#: The command types `encode_command` can express.
COMMANDS = frozenset(_TEXT)


def text_command(text: str) -> bytes:
    """The TCP package carrying any command text of the device's manual (`WHERE#`, ...)."""
    if not text or not text.isascii() or not text.isprintable():
        raise UnsupportedCommand(f"eelink command text must be printable ASCII, got {text!r}")
    content = b"\x01\x00\x00\x00\x00" + text.encode("ascii")
    length = 2 + len(content)
    if length > 0xFFFF:
        raise UnsupportedCommand(f"eelink command text of {len(text)} characters is too long")
    return b"gg\x80" + length.to_bytes(2, "big") + b"\x00\x00" + content


def encode_command(device_id: str, command: Command) -> bytes:
    """The TCP form (the device is known by its connection; `device_id` is not on the wire).

    Position now `WHERE#`, engine stop `RELAY,1#`, resume `RELAY,0#`, reboot `RESET#`. The
    protocol documents no reporting-interval command.
    """
    text = _TEXT.get(command.type)
    if text is None:
        raise UnsupportedCommand(
            f"eelink has no documented {command.type.value} command; send the device manual's "
            "text with protocols.eelink.commands.text_command")
    return text_command(text)


def encode_udp_command(imei: str, command: Command) -> bytes:
    """The same package in a UDP datagram addressed by the device's IMEI."""
    return udp.wrap(imei, encode_command(imei, command))


def answers(sent: bytes, result: CommandResult) -> Answer | None:
    """The 0x80 answer echoes the server's 4-byte id of the command, which the encoder always
    sends as 0 (the decoder keeps only the text): any answer is taken for the oldest command
    still waiting."""
    return answers_any(sent, result)
