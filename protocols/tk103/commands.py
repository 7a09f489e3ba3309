"""Server-to-device commands in tk103 syntax: `(<id>` + code + arguments + `)`."""

from __future__ import annotations

import re

from protocols.codec import Answer, Command, CommandType, UnsupportedCommand
from protocols.events import CommandResult

_DEVICE_ID = re.compile(r"[0-9A-Za-z_-]{1,20}")
_MAX_INTERVAL_S = 0xFFFF  # four hex digits


def encode_command(device_id: str, command: Command) -> bytes:
    """The bytes to send for `command`, e.g. `(123456789012345AR00003C0000)` for 60 s reports.

    `device_id` is the ID the device sends in its own frames. Raises UnsupportedCommand for a
    command or argument the protocol cannot express, ValueError for an unusable device ID.
    """
    if not _DEVICE_ID.fullmatch(device_id):
        raise ValueError(f"invalid tk103 device id {device_id!r}")
    kind = command.type
    if kind is CommandType.POSITION_SINGLE:
        body = "AP00"
    elif kind is CommandType.REPORT_INTERVAL:
        interval = command.interval_s
        if interval is None:
            raise UnsupportedCommand("REPORT_INTERVAL needs interval_s")
        if not 0 <= interval <= _MAX_INTERVAL_S:
            raise UnsupportedCommand(
                f"tk103 report interval must be 0..{_MAX_INTERVAL_S} s, got {interval}"
            )
        # AR00 + interval in seconds as 4 hex digits + `0000`, the form servers send;
        # interval 0 (`AR0000000000`) stops periodic reporting.
        body = f"AR00{interval:04X}0000"
    elif kind is CommandType.ENGINE_STOP:
        body = "AV010"
    elif kind is CommandType.ENGINE_RESUME:
        body = "AV011"
    elif kind is CommandType.REBOOT:
        body = "AT00"
    else:  # pragma: no cover - every CommandType is handled above
        raise UnsupportedCommand(f"tk103 has no command {kind.value}")
    return f"({device_id}{body})".encode("ascii")


def answers(sent: bytes, result: CommandResult) -> Answer | None:
    """BP04, the position that answers AP00, is the only answer that names its command. ZC03
    text answers name none (they answer SMS-style commands), and the other commands are carried
    out without an answer: those stay "sent"."""
    if result.command == "AP00" and sent.endswith(b"AP00)"):
        return Answer.DONE
    return None
