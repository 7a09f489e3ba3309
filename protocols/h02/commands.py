"""Server commands in h02 syntax: `*HQ,<id>,<command>,<HHmmss>,<parameters>#`.

`HHmmss` is the time the server encodes the command (UTC here; the reference uses its own
time zone, which devices only echo back).

| command          | text                      | source                                   |
|------------------|---------------------------|------------------------------------------|
| engine stop      | `S20,<time>,1,1`          | the reference encoder and its test vector |
| engine resume    | `S20,<time>,1,0`          | the reference encoder and its test vector |
| report interval  | `S71,<time>,22,<seconds>` | the reference encoder and its test vector |

The protocol has no single-position request and no reboot the reference knows of; those raise
UnsupportedCommand. Alarm arm / disarm (`SCF,<time>,0,0` / `SCF,<time>,1,1`) is available as
`encode_alarm_arm` (no command type of the gateway maps to it). Devices answer with a V4
message (`*HQ,<id>,V4,S20,...`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from protocols.codec import Answer, Command, CommandType, UnsupportedCommand
from protocols.events import CommandResult

COMMANDS = frozenset({CommandType.ENGINE_STOP, CommandType.ENGINE_RESUME,
                      CommandType.REPORT_INTERVAL})
#: Interval bounds accepted for S71 (seconds); 0 has no documented meaning.
MIN_INTERVAL_S = 1
MAX_INTERVAL_S = 65_535


def encode_command_at(device_id: str, command: Command, when: datetime) -> bytes:
    """The bytes of `command`, stamped with `when` (tests pin it)."""
    if not (device_id.isascii() and device_id.isdigit() and 1 <= len(device_id) <= 20):
        raise ValueError(f"invalid h02 device id {device_id!r} (the digits its messages carry)")
    kind = command.type
    if kind is CommandType.ENGINE_STOP:
        name, params = "S20", ("1", "1")
    elif kind is CommandType.ENGINE_RESUME:
        name, params = "S20", ("1", "0")
    elif kind is CommandType.REPORT_INTERVAL:
        interval = command.interval_s
        if interval is None:
            raise UnsupportedCommand("REPORT_INTERVAL needs interval_s")
        if not MIN_INTERVAL_S <= interval <= MAX_INTERVAL_S:
            raise UnsupportedCommand(
                f"h02 report interval must be {MIN_INTERVAL_S}..{MAX_INTERVAL_S} s, got "
                f"{interval}; the protocol has no documented way to stop reporting")
        name, params = "S71", ("22", str(interval))
    else:
        raise UnsupportedCommand(
            f"h02 has no {kind.value} command (supported: engine stop / resume, report "
            "interval)")
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return f"*HQ,{device_id},{name},{when:%H%M%S},{','.join(params)}#".encode("ascii")


def encode_alarm_arm(device_id: str, arm: bool, when: datetime) -> bytes:
    """`SCF,<time>,0,0` arms the device's alarm, `SCF,<time>,1,1` disarms it (the reference's
    alarm arm / disarm; the gateway has no command type for it yet)."""
    if not (device_id.isascii() and device_id.isdigit() and 1 <= len(device_id) <= 20):
        raise ValueError(f"invalid h02 device id {device_id!r} (the digits its messages carry)")
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    flags = "0,0" if arm else "1,1"
    return f"*HQ,{device_id},SCF,{when:%H%M%S},{flags}#".encode("ascii")


def encode_command(device_id: str, command: Command) -> bytes:
    """The bytes of `command`, stamped with the current UTC time."""
    return encode_command_at(device_id, command, datetime.now(UTC))


def parse_command(frame: bytes) -> tuple[str, str, str, list[str]] | None:
    """(device id, command, time, parameters) of a server command, for the simulated device."""
    try:
        text = frame.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    if not (text.startswith("*HQ,") and text.endswith("#")):
        return None
    fields = text[1:-1].split(",")
    if len(fields) < 4:
        return None
    return fields[1], fields[2], fields[3], fields[4:]


def answers(sent: bytes, result: CommandResult) -> Answer | None:
    """A V4 answer starts with the command's name, then the device's word (`OK`), then the
    time the server stamped the command with (`S20,OK,<HHmmss>`): name and time identify the
    command. The word is kept as the result; no failure word is documented, so every V4 that
    matches is taken as done."""
    parsed = parse_command(sent)
    if parsed is None:
        return None
    _device, name, stamp, _params = parsed
    parts = result.result.split(",")
    if len(parts) < 2 or parts[0] != name:
        return None
    if len(parts) >= 3 and parts[2] and parts[2] != stamp:
        return None
    return Answer.DONE
