"""Server-to-device commands (`AT+GTxxx=<password>,...,<serial>$`).

The serial number field is echoed by the device in its `+ACK:GTxxx` answer; FFFF is used as in
Traccar's encoder. An empty field in a Queclink command keeps the device's current setting.
"""

from __future__ import annotations

from protocols.codec import Answer, Command, CommandType, UnsupportedCommand
from protocols.events import CommandResult

SERIAL = "FFFF"

#: AT+GTRTO sub-command codes and the names the ACK echoes (GL300 manual §3.2.11).
RTO_SUBCOMMANDS: dict[str, str] = {
    "0": "GPS", "1": "RTL", "2": "READ", "3": "REBOOT", "4": "RESET", "5": "PWROFF",
    "6": "CID", "7": "CSQ", "8": "VER", "9": "BAT", "A": "TMZ", "B": "INF", "E": "GSV",
    "F": "GSM",
}

#: AT+GTFRI check/send interval range on the GL300 (seconds).
MIN_INTERVAL_S = 5
MAX_INTERVAL_S = 86400


def encode_command(device_id: str, command: Command) -> bytes:
    """The AT command for `command`. `device_id` is not part of @Track commands (the connection
    identifies the device); it is accepted for the common codec signature.

    REPORT_INTERVAL uses AT+GTFRI (GL300 manual): `<pwd>,<mode>,<discard no fix>,<reserved>,
    <reserved>,<begin time>,<end time>,<check interval>,<send interval>,...,<serial>$` with
    mode 1 (scheduled timing report) and check = send interval, so that each report carries one
    point; interval 0 sends mode 0 (fixed report off). Other fields stay empty (unchanged).
    """
    pwd = command.password
    if "," in pwd or "$" in pwd:
        raise UnsupportedCommand("a Queclink password cannot contain ',' or '$'")
    kind = command.type
    if kind is CommandType.POSITION_SINGLE:
        text = f"AT+GTRTO={pwd},1,,,,,,{SERIAL}$"
    elif kind is CommandType.REBOOT:
        text = f"AT+GTRTO={pwd},3,,,,,,{SERIAL}$"
    elif kind is CommandType.ENGINE_STOP:
        text = f"AT+GTOUT={pwd},1,,,0,0,0,0,0,0,0,,,,,,,{SERIAL}$"
    elif kind is CommandType.ENGINE_RESUME:
        text = f"AT+GTOUT={pwd},0,,,0,0,0,0,0,0,0,,,,,,,{SERIAL}$"
    elif kind is CommandType.REPORT_INTERVAL:
        text = _fri(pwd, command.interval_s)
    else:  # pragma: no cover - every CommandType is handled above
        raise UnsupportedCommand(f"gl300 has no command for {kind.value}")
    return text.encode("ascii")


def _fri(pwd: str, interval_s: int | None) -> str:
    if interval_s is None:
        raise UnsupportedCommand("REPORT_INTERVAL needs interval_s")
    if interval_s == 0:
        return f"AT+GTFRI={pwd},0,,,,,,,,,,,,,,,,,,,{SERIAL}$"
    if not MIN_INTERVAL_S <= interval_s <= MAX_INTERVAL_S:
        raise UnsupportedCommand(
            f"GL300 report interval must be 0 or {MIN_INTERVAL_S}..{MAX_INTERVAL_S} s, "
            f"got {interval_s}")
    n = interval_s
    return f"AT+GTFRI={pwd},1,,,,,,{n},{n},,,,,,,,,,,,{SERIAL}$"


def answers(sent: bytes, result: CommandResult) -> Answer | None:
    """`+ACK:GTxxx` names the command it acknowledges (and, for AT+GTRTO, the sub-command).
    The serial number it echoes is the FFFF every command carries, so two waiting commands of
    the same kind are told apart only by their order."""
    try:
        text = sent.decode("ascii")
    except UnicodeDecodeError:
        return None
    if not text.startswith("AT+GT") or "=" not in text:
        return None
    name, _, params = text[5:].partition("=")
    if result.command != name:
        return None
    if name == "RTO":
        fields = params.split(",")
        wanted = RTO_SUBCOMMANDS.get(fields[1].upper()) if len(fields) > 1 else None
        echoed = result.attributes.get("sub_command")
        if wanted is not None and echoed is not None and str(echoed).upper() != wanted:
            return None
    return Answer.DONE
