"""Server-to-watch commands: `[CS*<id>*<LLLL>*<content>]`.

The maker is `CS`, the one the vendor's server documents use; the reference server echoes the
connection's maker instead, which a codec without the connection cannot know (devices accept
`CS`). The length is the content's, in four lower-case hex digits; for voice the content is
counted after escaping, as the reference server counts it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from protocols.codec import Answer, Command, CommandType, UnsupportedCommand
from protocols.events import CommandResult
from protocols.watch.decoder import MAX_ID_LENGTH
from protocols.watch.escape import escape

MAKER = "CS"
_DEVICE_ID = re.compile(rf"[0-9A-Za-z]{{1,{MAX_ID_LENGTH}}}")
_PHONE = re.compile(r"\+?[0-9]{0,20}")
_GMT = re.compile(r"(?:GMT|UTC)([+-])(\d{1,2})(?::?(\d{2}))?")
#: Reporting intervals a watch is told (`UPLOAD,<seconds>`): up to a day.
MAX_INTERVAL_S = 86_400


def frame(device_id: str, content: bytes) -> bytes:
    """One command frame around `content` (already escaped where it is binary)."""
    if not _DEVICE_ID.fullmatch(device_id):
        raise ValueError(f"watch device id must be 1 to {MAX_ID_LENGTH} letters or digits, "
                         f"got {device_id!r}")
    if len(content) > 0xFFFF:
        raise UnsupportedCommand(f"watch command content is {len(content)} bytes, at most 65535")
    return b"[%s*%s*%04x*%s]" % (MAKER.encode(), device_id.encode(), len(content), content)


def encode_command(device_id: str, command: Command) -> bytes:
    """`CR` (position now), `UPLOAD,<s>` (interval), `RESET` (reboot); the watch protocol has
    no engine commands."""
    kind = command.type
    if kind is CommandType.POSITION_SINGLE:
        return frame(device_id, b"CR")
    if kind is CommandType.REPORT_INTERVAL:
        interval = command.interval_s
        if interval is None:
            raise UnsupportedCommand("REPORT_INTERVAL needs interval_s")
        if not 1 <= interval <= MAX_INTERVAL_S:
            raise UnsupportedCommand(
                f"watch report interval must be 1..{MAX_INTERVAL_S} s (the protocol has no "
                f"'stop reporting' value), got {interval}")
        return frame(device_id, b"UPLOAD,%d" % interval)
    if kind is CommandType.REBOOT:
        return frame(device_id, b"RESET")
    raise UnsupportedCommand(
        f"the watch protocol has no {kind.value} command (watches have no engine relay)")


def text_command(device_id: str, text: str) -> bytes:
    """Any command the watch's manual lists, as text (`POWEROFF`, `SOSSMS,1`, `LOWBAT,1`,
    `REMOVE,1`, `SILENCETIME,...`, `REMIND,...`, `PHB,...`, `FLOWER,...`, `WORK,...`)."""
    if not text or not text.isascii() or any(c in text for c in "[]") or not text.isprintable():
        raise UnsupportedCommand(
            f"watch text command must be printable ASCII without brackets, got {text!r}")
    return frame(device_id, text.encode("ascii"))


def sos_number(device_id: str, index: int, phone: str) -> bytes:
    """`SOS<n>,<phone>`: the number the SOS button calls (n = 1..3)."""
    if not 1 <= index <= 3:
        raise UnsupportedCommand(f"watch SOS number index must be 1..3, got {index}")
    if not _PHONE.fullmatch(phone):
        raise UnsupportedCommand(f"phone number must be digits (optionally +), got {phone!r}")
    return frame(device_id, f"SOS{index},{phone}".encode("ascii"))


def text_message(device_id: str, message: str) -> bytes:
    """`MESSAGE,<UTF-16BE hex>`: a text shown on the watch."""
    return frame(device_id, b"MESSAGE," + message.encode("utf-16-be").hex().encode("ascii"))


def voice_message(device_id: str, amr: bytes) -> bytes:
    """`TK,<AMR bytes, escaped>`: a voice message played on the watch."""
    return frame(device_id, b"TK," + escape(amr))


def set_timezone(device_id: str, timezone: str, language: int | None = None) -> bytes:
    """`LZ,<language>,<hours>`: the watch's time zone as its standard offset from UTC
    (`Europe/Amsterdam` -> `+1`, `GMT+05:45` -> `+5.75`), and optionally its language code."""
    hours = _standard_offset_hours(timezone)
    language_text = "" if language is None else str(language)
    if language is not None and not 0 <= language <= 99:
        raise UnsupportedCommand(f"watch language code must be 0..99, got {language}")
    return frame(device_id, f"LZ,{language_text},{hours:+g}".encode("ascii"))


def _standard_offset_hours(timezone: str) -> float:
    match = _GMT.fullmatch(timezone)
    if match is not None:
        sign, hours, minutes = match.groups()
        value = int(hours) + int(minutes or 0) / 60
        if value > 14:
            raise UnsupportedCommand(f"time zone offset {timezone!r} is beyond 14 hours")
        return -value if sign == "-" else value
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise UnsupportedCommand(
            f"unknown time zone {timezone!r}: use an IANA name (Europe/Berlin) or GMT+hh:mm"
        ) from None
    # The standard (winter) offset: what the watch adds to UTC; it does not apply summer time.
    probe = datetime(2026, 1, 15, 12, tzinfo=UTC).astimezone(zone)
    offset = probe.utcoffset()
    dst = probe.dst()
    if offset is None:  # pragma: no cover - a ZoneInfo always has an offset
        raise UnsupportedCommand(f"time zone {timezone!r} has no UTC offset")
    standard = offset - (dst or timedelta(0))
    return standard.total_seconds() / 3600


def answers(sent: bytes, result: CommandResult) -> Answer | None:
    """A watch echoes the name of the command it carried out (`[3G*<id>*0002*CR]`); two
    waiting commands of the same name are told apart only by their order."""
    if not (sent.startswith(b"[") and sent.endswith(b"]")):
        return None
    parts = sent[1:-1].split(b"*", 3)
    if len(parts) != 4:
        return None
    name = parts[3].split(b",", 1)[0].decode("ascii", "replace")
    return Answer.DONE if result.command == name else None
