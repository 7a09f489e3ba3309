"""decode(): one watch frame (`[MF*id*len*TYPE,...]`, un-escaped) to events and replies.

Replies (PROTOCOLS-WAVE2 §3.5), `[MF*id*[index*]LLLL*content]` with the maker, id and index of
the request and the content length in four lower-case hex digits:

* `LK` (link keep, the heartbeat) -> `LK`, at once: a watch that gets no answer to its LK stops
  sending anything else and reboots.
* `AL*` (alarms, SOS) -> `AL`, after the alarm is stored: the watch repeats the alarm until then.
* `INIT` -> `INIT,1` and `TKQ`/`TKQ2` -> the type echoed, at once (handshakes).
* `JXTK` (a chunk of a voice message) -> `JXTKR,1`, after the chunk's frame is stored.
* Positions (`UD*`, `WT`), health values, pictures and voice get no reply.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from protocols.codec import Decoded, Reply
from protocols.events import (
    Alarm,
    AlarmType,
    Attributes,
    AttrValue,
    CommandResult,
    Event,
    Heartbeat,
    Login,
    Rejected,
    Status,
    attrs,
)
from protocols.watch.positions import PositionError, alarms_of, parse_position, with_alarm

#: The gateway keeps device ids of at most 15 characters (an IMEI).
MAX_ID_LENGTH = 15
_ID_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_HEX = frozenset("0123456789abcdefABCDEF")
_TYPE_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-")
#: The usual header, `[MF*id*LLLL*TYPE,` without a sequence index, in one match: a subset of
#: what the general parse below accepts, read the same way.
_COMMON_HEADER = re.compile(
    rb"\[([0-9A-Za-z]{2})\*([0-9A-Za-z]{1,15})\*[0-9A-Fa-f]{4}\*([A-Za-z][0-9A-Za-z_]{0,23}),")
#: Server commands a watch answers by echoing their name (`[3G*id*0002*CR]`).
COMMAND_ANSWERS = frozenset({
    "CR", "UPLOAD", "RESET", "POWEROFF", "SOS", "SOS1", "SOS2", "SOS3", "SOSSMS", "LOWBAT",
    "REMOVE", "SILENCETIME", "REMIND", "PHB", "PHB2", "MESSAGE", "LZ", "FLOWER", "WORK",
    "CENTER", "SLAVE", "PW", "MONITOR", "CALL", "FIND", "PEDO", "WALKTIME", "SLEEPTIME",
    "FACTORY", "LGZONE", "rcapture", "TK",
})
_HEALTH = frozenset({"pulse", "heart", "blood", "bphrt", "temp", "btemp2", "oxygen"})
#: Characters of free text kept from an unrecognised message.
_MAX_TEXT = 200


class Header(NamedTuple):
    maker: str
    device_id: str
    #: The ZJ devices' sequence index, echoed in replies; None when the frame has none.
    sequence: str | None
    type: str
    #: What follows `TYPE,` (empty when the content is the type alone); may be binary.
    body: bytes


class _Bad(Exception):
    """A frame that cannot be decoded; carries the reason for the Rejected event."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def decode(frame: bytes, options: object = None) -> Decoded:
    """Decode one frame (as the framer returns it: `[` ... `]`, un-escaped). Never raises."""
    device_id: str | None = None
    try:
        header = split_header(frame)
        device_id = header.device_id
        return _decode(frame, header)
    except _Bad as exc:
        return Decoded(raw=frame, device_id=device_id, events=(Rejected(exc.reason, device_id),))
    except Exception as exc:  # last line of defence: decode() must never raise
        reason = f"malformed watch frame ({type(exc).__name__})"
        return Decoded(raw=frame, device_id=device_id, events=(Rejected(reason, device_id),))


def split_header(frame: bytes) -> Header:
    """Maker, id, index and type of a frame; raises _Bad naming what is wrong."""
    fast = _COMMON_HEADER.match(frame)
    if fast is not None and frame[-1] == 0x5D:
        maker, device_id, kind = fast.groups()
        return Header(maker.decode(), device_id.decode(), None, kind.decode(),
                      frame[fast.end():-1])
    return parse_header(frame)


def parse_header(frame: bytes) -> Header:
    """`split_header` without its shortcut for the usual header (tests compare the two)."""
    if len(frame) < 8 or frame[0] != 0x5B or frame[-1] != 0x5D:
        raise _Bad("a watch frame starts with '[' and ends with ']'")
    inner = frame[1:-1]
    parts = inner.split(b"*", 3)
    if len(parts) < 4:
        raise _Bad("watch frame needs maker*id*length*content")
    maker_raw, id_raw, first, rest = parts
    maker = maker_raw.decode("latin-1")
    if len(maker) != 2 or not _ID_CHARS.issuperset(maker):
        raise _Bad(f"maker must be two letters or digits, got {maker[:8]!r}")
    device_id = id_raw.decode("latin-1")
    if not device_id or len(device_id) > MAX_ID_LENGTH or not _ID_CHARS.issuperset(device_id):
        raise _Bad(f"device id must be 1 to {MAX_ID_LENGTH} letters or digits, "
                   f"got {device_id[:24]!r}")
    index: str | None = None
    if len(rest) >= 5 and rest[4] == 0x2A and _HEX.issuperset(rest[:4].decode("latin-1")):
        # `<index>*<length>*content` (ZJ devices).
        index = first.decode("latin-1")
        if not index or len(index) > 8 or not _ID_CHARS.issuperset(index):
            raise _Bad(f"sequence index must be up to 8 letters or digits, got {index[:12]!r}")
        length = rest[:4]
        content = rest[5:]
    else:
        length = first
        content = rest
    if len(length) != 4 or not _HEX.issuperset(length.decode("latin-1")):
        raise _Bad(f"length field must be four hex digits, got {length[:8]!r}")
    comma = content.find(b",")
    raw_type = content if comma < 0 else content[:comma]
    kind = raw_type.decode("latin-1")
    if not kind or len(kind) > 24 or not _TYPE_CHARS.issuperset(kind):
        raise _Bad(f"message type must be letters, digits or '_', got {kind[:24]!r}")
    body = b"" if comma < 0 else content[comma + 1:]
    return Header(maker, device_id, index, kind, body)


def reply(header: Header, content: str) -> bytes:
    """`[MF*id*[index*]LLLL*content]`, echoing the request's maker, id and index."""
    index = f"{header.sequence}*" if header.sequence is not None else ""
    return f"[{header.maker}*{header.device_id}*{index}{len(content):04x}*{content}]".encode()


def _decode(frame: bytes, header: Header) -> Decoded:
    kind = header.type
    device_id = header.device_id
    prefix = kind[:2]
    if prefix in ("UD", "AL", "WT"):
        return _position(frame, header)
    if kind == "LK":
        event: Event = Heartbeat(device_id, _link_values(header.body))
        return _answer(frame, header, (event,), "LK", after_store=False)
    if kind == "INIT":
        return _answer(frame, header, (Login(device_id),), "INIT,1", after_store=False)
    if kind in ("TKQ", "TKQ2"):
        status = Status(device_id, attributes=attrs(query=kind))
        return _answer(frame, header, (status,), kind, after_store=False)
    if kind == "JXTK":
        return _answer(frame, header, (_voice_chunk(header),), "JXTKR,1", after_store=True)
    lowered = kind.lower()
    if lowered in _HEALTH:
        return _done(frame, header, (_health(header, lowered),))
    if kind in ("TK", "TK2") and len(header.body) > 1:
        status = Status(device_id, attributes=attrs(audio_bytes=len(header.body)))
        return _done(frame, header, (status,))
    if kind == "img":
        status = Status(device_id, attributes=attrs(image_bytes=len(header.body)))
        return _done(frame, header, (status,))
    text = header.body[:_MAX_TEXT].decode("latin-1")
    if kind in COMMAND_ANSWERS:
        return _done(frame, header, (CommandResult(device_id, kind, text),))
    status = Status(device_id, attributes=attrs(message_type=kind, text=text or None))
    return _done(frame, header, (status,))


def _done(frame: bytes, header: Header, events: tuple[Event, ...],
          notes: tuple[str, ...] = ()) -> Decoded:
    return Decoded(raw=frame, device_id=header.device_id, events=events, notes=notes)


def _answer(frame: bytes, header: Header, events: tuple[Event, ...], content: str, *,
            after_store: bool, notes: tuple[str, ...] = ()) -> Decoded:
    return Decoded(raw=frame, device_id=header.device_id, events=events,
                   replies=(Reply(reply(header, content), after_store),), notes=notes)


def _position(frame: bytes, header: Header) -> Decoded:
    kind = header.type
    try:
        position, status, network_ok = parse_position(
            header.device_id, kind, header.body.decode("latin-1"))
    except PositionError as exc:
        raise _Bad(str(exc)) from None
    notes = () if network_ok else ("bad_network_block",)
    if kind[:2] != "AL":
        return _done(frame, header, (position,), notes)
    alarms = alarms_of(status) or [AlarmType.GENERAL]
    position = with_alarm(position, alarms[0])
    events: list[Event] = [position]
    raw_code = f"{kind},{status:08X}"
    for alarm in alarms:
        events.append(Alarm(header.device_id, alarm, raw_code, position=position,
                            event_time=position.fix_time))
    return _answer(frame, header, tuple(events), "AL", after_store=True, notes=notes)


def _numbers(body: bytes) -> list[int | None]:
    out: list[int | None] = []
    for value in body.decode("latin-1").split(","):
        value = value.strip()
        out.append(int(value) if value.lstrip("-").isdigit() and len(value) < 10 else None)
    return out


def _link_values(body: bytes) -> Attributes:
    """`LK,steps,tumbles,battery`: the three values are optional."""
    values = _numbers(body) if body else []
    if len(values) < 3:
        return attrs()
    return attrs(steps=values[0], tumbles=values[1], battery_level=values[2])


def _voice_chunk(header: Header) -> Status:
    """`JXTK,<n>,<name>,<chunk>,<chunks>,<AMR bytes>`: one chunk of a voice message."""
    parts = header.body.split(b",", 4)
    if len(parts) < 5 or not parts[2].isdigit() or not parts[3].isdigit():
        raise _Bad("JXTK needs count,name,chunk,chunks,data")
    return Status(header.device_id, attributes=attrs(
        voice_chunk=int(parts[2]), voice_chunks=int(parts[3]), audio_bytes=len(parts[4])))


def _health(header: Header, kind: str) -> Status:
    """Heart rate, blood pressure, body temperature and blood oxygen values."""
    text = header.body.decode("latin-1")
    values = text.split(",")
    found: dict[str, AttrValue] = {}
    try:
        if kind == "temp":
            found["temp1"] = float(values[0])
        elif kind == "btemp2":
            if int(values[0]) > 0:
                found["temp1"] = float(values[1])
        elif kind == "oxygen":
            found["blood_oxygen"] = int(values[1])
        else:
            rest = values
            if kind in ("blood", "bphrt"):
                found["pressure_high"] = int(values[0])
                found["pressure_low"] = int(values[1])
                rest = values[2:]
            if rest and rest[0]:
                found["heart_rate"] = int(rest[0])
    except (ValueError, IndexError):
        raise _Bad(f"{header.type} values {text[:40]!r} are not numbers") from None
    temperature = found.get("temp1")
    if isinstance(temperature, float) and not -50.0 <= temperature <= 100.0:
        raise _Bad(f"{header.type} temperature {temperature} is out of range")
    return Status(header.device_id, attributes=attrs(**found))
