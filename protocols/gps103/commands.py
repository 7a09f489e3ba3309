"""Server-to-device commands: `**,imei:<id>,<letter>[,<argument>];`.

Traccar sends these without a terminator; vendor command lists and field-tested servers write
them with the trailing `;` that ends every other gps103 frame (including Traccar's own SOS answer
`**,imei:<id>,E;`), and devices that read up to the `;` need it. So the `;` is sent.
"""

from __future__ import annotations

from protocols.codec import Answer, Command, CommandType, UnsupportedCommand
from protocols.events import CommandResult
from protocols.gps103.values import is_device_id

_LETTERS: dict[CommandType, str] = {
    CommandType.POSITION_SINGLE: "B",  # one position report now
    CommandType.ENGINE_STOP: "J",  # cut fuel / power through the relay
    CommandType.ENGINE_RESUME: "K",  # restore it
}
_UNITS = ((3600, "h"), (60, "m"))
_MAX_COUNT = 99  # the interval is two digits and a unit letter


def encode_command(device_id: str, command: Command) -> bytes:
    """The bytes that make a gps103 device carry out `command`.

    REPORT_INTERVAL is `C,<nn><s|m|h>` (`D` stops periodic reports for interval 0); REBOOT has no
    GPRS syntax in this protocol and raises UnsupportedCommand.
    """
    if not is_device_id(device_id):
        raise ValueError(f"gps103 device ids are ASCII digits, got {device_id!r}")
    letter = _LETTERS.get(command.type)
    if letter is not None:
        body = letter
    elif command.type is CommandType.REPORT_INTERVAL:
        body = _interval(command.interval_s)
    elif command.type is CommandType.REBOOT:
        raise UnsupportedCommand("gps103 has no reboot command over GPRS (only the SMS 'reset')")
    else:  # pragma: no cover - every CommandType is handled above
        raise UnsupportedCommand(f"gps103 has no command {command.type.value}")
    return f"**,imei:{device_id},{body};".encode("ascii")


def format_interval(seconds: int) -> str:
    """`30s`, `05m`, `01h`: seconds while they fit in two digits, else the largest exact unit.

    Seconds are preferred up to 99 s because some firmwares are reported to ignore the unit
    letter; above that the value must be an exact number (<= 99) of minutes or hours.
    """
    if 0 < seconds <= _MAX_COUNT:
        return f"{seconds:02d}s"
    for size, unit in _UNITS:
        count, remainder = divmod(seconds, size)
        if remainder == 0 and 0 < count <= _MAX_COUNT:
            return f"{count:02d}{unit}"
    raise UnsupportedCommand(
        f"gps103 cannot express a {seconds} s interval (1-99 s, 1-99 min or 1-99 h exactly)")


def _interval(seconds: int | None) -> str:
    if seconds is None:
        raise UnsupportedCommand("REPORT_INTERVAL needs interval_s")
    if seconds < 0:
        raise UnsupportedCommand(f"negative report interval {seconds}")
    if seconds == 0:
        return "D"
    return "C," + format_interval(seconds)


def answers(sent: bytes, result: CommandResult) -> Answer | None:
    """gps103 devices answer no command with a message of their own: a position request is
    answered by an ordinary report that does not say it answers anything. Nothing is matched,
    so a command stays "sent"."""
    return None
