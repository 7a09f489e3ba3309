"""Server commands: the 0x80 "online command" packet carrying a text command.

    78 78 | L | 80 | 4+N | 00 00 00 00 (server flag) | N ASCII bytes | 00 00 (serial) | CRC | 0D 0A

The texts are those of the vendor manuals (Concox GT06N / JM-VL0x command lists):

* engine stop `Relay,1#`, engine resume `Relay,0#`: the reference encoder and its test vector;
* position request `WHERE#`: vendor manuals; devices answer with a 0x21 "Current position!"
  text (one of the reference decoder's test frames), decoded as a position;
* report interval `TIMER,<T1>,<T2>#` (T1 with ACC on, T2 with ACC off, 5-18000 s; both are set
  to the interval): vendor manuals, not verified on a device;
* reboot `RESET#`: vendor manuals, not verified on a device.
"""

from __future__ import annotations

from protocols.codec import Answer, Command, CommandType, UnsupportedCommand
from protocols.events import CommandResult
from protocols.gt06.blocks import COMMAND_0
from protocols.gt06.wire import packet

#: The position request; its answer (a 0x21 fix) is decoded as a CommandResult naming it.
POSITION_REQUEST = "WHERE#"

#: Upload interval bounds of the TIMER command in the vendor manuals, seconds.
MIN_INTERVAL_S = 5
MAX_INTERVAL_S = 18_000

COMMANDS = frozenset(CommandType)


def command_text(command: Command) -> str:
    """The text of a command, e.g. `Relay,1#`."""
    kind = command.type
    if kind is CommandType.ENGINE_STOP:
        return "Relay,1#"
    if kind is CommandType.ENGINE_RESUME:
        return "Relay,0#"
    if kind is CommandType.POSITION_SINGLE:
        return POSITION_REQUEST
    if kind is CommandType.REBOOT:
        return "RESET#"
    if kind is CommandType.REPORT_INTERVAL:
        interval = command.interval_s
        if interval is None:
            raise UnsupportedCommand("REPORT_INTERVAL needs interval_s")
        if not MIN_INTERVAL_S <= interval <= MAX_INTERVAL_S:
            raise UnsupportedCommand(
                f"gt06 report interval must be {MIN_INTERVAL_S}..{MAX_INTERVAL_S} s (TIMER "
                f"command), got {interval}; the protocol has no command to stop reporting")
        return f"TIMER,{interval},{interval}#"
    raise UnsupportedCommand(f"gt06 has no command {kind.value}")  # pragma: no cover


def encode_text(text: str, serial: int = 0) -> bytes:
    """A 0x80 packet carrying any ASCII command text (at most 200 characters)."""
    data = text.encode("ascii")
    if not 0 < len(data) <= 200:
        raise ValueError("a gt06 command text must be 1..200 ASCII characters")
    return packet(COMMAND_0, bytes((4 + len(data),)) + b"\0\0\0\0" + data, serial)


def encode_command(device_id: str, command: Command) -> bytes:
    """The bytes of `command` for a gt06 device. The packet names no device (it goes to the
    connection the device logged in on), so `device_id` is only checked to be an IMEI."""
    if not (device_id.isascii() and device_id.isdigit() and 1 <= len(device_id) <= 16):
        raise ValueError(f"invalid gt06 device id {device_id!r} (the IMEI of its login)")
    return encode_text(command_text(command))


def decode_text(frame: bytes) -> str | None:
    """The command text of a 0x80 packet (for the simulated device), None for anything else."""
    if len(frame) < 12 or frame[:2] != b"\x78\x78" or frame[3] != COMMAND_0:
        return None
    size = frame[4] - 4
    if size <= 0 or 9 + size > len(frame) - 6:
        return None
    return frame[9:9 + size].decode("ascii", "replace")


def answers(sent: bytes, result: CommandResult) -> Answer | None:
    """The fix answering WHERE# names it; a 0x15 text answer names no command (its server flag
    is the 0 every command carries), so it is taken for the oldest command still waiting."""
    text = decode_text(sent)
    if text is None:
        return None
    if result.command == POSITION_REQUEST:
        return Answer.DONE if text.upper() == POSITION_REQUEST else None
    if result.command:
        return None
    return Answer.DONE
