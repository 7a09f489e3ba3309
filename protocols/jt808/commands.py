"""Server-to-device commands in JT/T 808.

* POSITION_SINGLE: 0x8201 location query, empty body; the unit answers 0x0201.
* REPORT_INTERVAL: 0x8103 set parameters, one parameter: 0x0029 (default time report
  interval, seconds, 4 bytes).
* ENGINE_STOP / ENGINE_RESUME: 0x8105 terminal control, command word F0 / F1 (the vendors'
  oil/circuit cut, as the reference server sends it).
* REBOOT: 0x8105 terminal control, command word 4 (terminal reset).

Units that take text commands get them in 0x8300 (`encode_text`, flag 01, GBK text), Jimi
JC-series units in 0x8900 (`encode_transparent`, type F0, ASCII text).

The unit answers 0x0001 (terminal general response) with the command's serial. Each command
gets the next serial of a per-process counter (1, 2, ... 65535, 0, 1, ...), so that answers
can be told apart; `build_command` takes an explicit serial (the reference server always sends
0000).

The terminal is addressed by the phone bytes and header layout its open connection uses (the
session records them); without an open connection in this process, by `phone_for_id`.
"""

from __future__ import annotations

import itertools
import weakref
from typing import Protocol

from protocols.codec import Answer, Command, CommandType, UnsupportedCommand
from protocols.events import CommandResult
from protocols.jt808.identity import BadField, phone_for_id
from protocols.jt808.wire import MAX_BODY, build, parse

#: Parameter 0x0029 of 0x8103: default time reporting interval, seconds (DWORD).
PARAM_REPORT_INTERVAL = 0x0029
_MAX_INTERVAL_S = 0xFFFFFFFF

COMMANDS = frozenset(CommandType)


class WireOwner(Protocol):
    """What commands need of a live session: the phone bytes and 2019 version it sends."""

    @property
    def wire(self) -> tuple[bytes, int | None] | None: ...


#: device id -> the session of its open connection (forgotten when the session is).
_LIVE: weakref.WeakValueDictionary[str, WireOwner] = weakref.WeakValueDictionary()
_serials = itertools.count(1)


def remember(device_id: str, owner: WireOwner) -> None:
    """Record the session through which `device_id` is connected."""
    _LIVE[device_id] = owner


def address(device_id: str) -> tuple[bytes, int | None]:
    """(phone bytes, 2019 version byte or None) for a device id. Raises ValueError."""
    owner = _LIVE.get(device_id)
    wire = owner.wire if owner is not None else None
    if wire is not None:
        return wire
    return phone_for_id(device_id)


def next_serial() -> int:
    return next(_serials) & 0xFFFF


def _body(command: Command) -> tuple[int, bytes]:
    kind = command.type
    if kind is CommandType.POSITION_SINGLE:
        return 0x8201, b""
    if kind is CommandType.REPORT_INTERVAL:
        interval = command.interval_s
        if interval is None:
            raise UnsupportedCommand("REPORT_INTERVAL needs interval_s")
        if interval == 0:
            raise UnsupportedCommand(
                "JT/T 808 has no interval that stops timed reports (parameter 0x0029 is the "
                "time between reports); give an interval of 1 s or more")
        if not 0 < interval <= _MAX_INTERVAL_S:
            raise UnsupportedCommand(
                f"jt808 report interval must be 1..{_MAX_INTERVAL_S} s, got {interval}")
        return 0x8103, (b"\x01" + PARAM_REPORT_INTERVAL.to_bytes(4, "big") + b"\x04"
                        + interval.to_bytes(4, "big"))
    if kind is CommandType.ENGINE_STOP:
        return 0x8105, b"\xf0"
    if kind is CommandType.ENGINE_RESUME:
        return 0x8105, b"\xf1"
    if kind is CommandType.REBOOT:
        return 0x8105, b"\x04"
    raise UnsupportedCommand(f"jt808 has no command {kind.value}")  # pragma: no cover


def build_command(device_id: str, command: Command, serial: int) -> bytes:
    """The wire frame of `command` with the given message serial."""
    msg_id, body = _body(command)
    phone, version = address(device_id)
    return build(msg_id, phone, serial, body, version=version)


def encode_command(device_id: str, command: Command) -> bytes:
    """The bytes to send for `command` to the unit `device_id` (its terminal phone digits or
    IMEI, see `protocols.jt808.identity`). Raises UnsupportedCommand for what JT/T 808 cannot
    say, ValueError for an id that is no JT/T 808 device id."""
    msg_id, body = _body(command)
    phone, version = address(device_id)
    return build(msg_id, phone, next_serial(), body, version=version)


def encode_text(device_id: str, text: str, *, serial: int | None = None) -> bytes:
    """0x8300 text message, flag 01 (emergency), GBK text: the way units with text commands
    (BSJ and others) take the commands of their SMS manual over GPRS."""
    return _text_frame(device_id, 0x8300, b"\x01" + text.encode("gbk"), serial)


def encode_transparent(device_id: str, text: str, *, serial: int | None = None) -> bytes:
    """0x8900 transparent data, type F0, ASCII text: text commands to Jimi JC-series units."""
    return _text_frame(device_id, 0x8900, b"\xf0" + text.encode("ascii"), serial)


def _text_frame(device_id: str, msg_id: int, body: bytes, serial: int | None) -> bytes:
    if len(body) > MAX_BODY:
        raise UnsupportedCommand(f"text of {len(body) - 1} bytes: at most {MAX_BODY - 1} fit")
    phone, version = address(device_id)
    return build(msg_id, phone, next_serial() if serial is None else serial, body,
                 version=version)


def answers(sent: bytes, result: CommandResult) -> Answer | None:
    """0x0001 names the serial and message id of the command it answers, with a result code
    (0 success; 1 failure, 2 message error, 3 not supported: refused); 0x0201 names the serial
    of the location query it answers. An exact match."""
    try:
        header = parse(sent)
    except BadField:
        return None
    if result.attributes.get("serial") != header.serial:
        return None
    if result.command != f"{header.msg_id:#06x}":
        return None
    if header.msg_id == 0x8201:
        return Answer.DONE
    return Answer.DONE if result.result == "success" else Answer.REFUSED
