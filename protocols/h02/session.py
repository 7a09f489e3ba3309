"""The h02 session: decodes text and binary frames, and the replies the server owes.

Every message names its device, so a session remembers only the last id (a message with an
empty id field, `*HQ,,V1,...#`, is the connection's device, as the reference server treats it).

Replies (the reference's, byte-exact; `<UTC>` is the session clock):
* V1 with a position: `*HQ,<id>,V4,V1,<yyyyMMddHHmmss UTC>#`, after the data is stored;
* NBR: `*HQ,<id>,V4,NBR,<yyyyMMddHHmmss UTC>#`, after the data is stored;
* HTBT / V0: the message up to its type, then `#` (`*HQ,<id>,HTBT#`), at once;
* other position messages and binary `$` frames: `*HQ,<id>,R12,<HHmmss UTC>#` only with the
  `ack` option (the device's R12 acknowledgement setting), after the data is stored.
LINK, V3, VP1 and SMS messages get no reply, as from the reference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC
from types import MappingProxyType

from protocols.codec import Clock, Decoded, Reply, rejected
from protocols.events import (
    Alarm,
    AttrValue,
    CommandResult,
    Event,
    Heartbeat,
    Position,
    Status,
    attrs,
)
from protocols.h02 import text as t
from protocols.h02.binary import BadBinary, decode_binary, lenient_utc
from protocols.h02.status import IGNITION, alarm_of
from protocols.units import KMH_PER_KNOT

#: Longest device id accepted (15-digit IMEIs; 10-digit ids are the most common).
_MAX_ID = 20


@dataclass(frozen=True, slots=True)
class H02Options:
    """Settings of the h02 decoder (`[protocols.h02]` in the gateway's configuration)."""

    ack: bool = field(default=False, metadata={"doc": (
        "Answer every position message and binary frame with *HQ,<id>,R12,<HHmmss>#, for "
        "devices set to wait for that acknowledgement (e.g. Sinotrack ST-901L binary packets). "
        "V1 and NBR are always answered with V4.")})

    def __post_init__(self) -> None:
        if not isinstance(self.ack, bool):
            raise ValueError("ack must be true or false")


# The common V1 layout, read in one match (see `_fast_v1`); anything else takes the general
# path of `text.position_message`, which gives the same result for these frames.
_FAST_V1 = re.compile(
    rb"\*[A-Za-z]{2},(\d{1,20}),(V\d{1,2}),(\d{6}),([AVB]),(\d\d)(\d\d\.\d{1,8}),([NS]),"
    rb"(\d\d\d)(\d\d\.\d{1,8}),([EW]),(\d{1,5}(?:\.\d{1,5})?),(\d{1,3}(?:\.\d{1,5})?),"
    rb"(\d{6}),([0-9A-Fa-f]{8})#")

class H02Session:
    """Decodes one connection's frames; `decode()` never raises."""

    __slots__ = ("_ack", "_clock", "_fast", "_stamp", "device_id")

    def __init__(self, options: H02Options, clock: Clock, *, fast: bool = True) -> None:
        """`fast=False` decodes every message the general way (tests compare both paths)."""
        self._ack = options.ack
        self._clock = clock
        self._fast = fast
        #: The last V4 reply made, by (second, device id, type).
        self._stamp: tuple[tuple[int, str, str], Reply | None] = ((-1, "", ""), None)
        #: The id of the last message that named one.
        self.device_id: str | None = None

    def decode(self, frame: bytes) -> Decoded:
        """One frame (text with or without its `#`, or binary) to events and replies."""
        try:
            marker = frame[:1]
            if marker == b"*":
                if self._fast:
                    match = _FAST_V1.fullmatch(frame)
                    if match is not None and match.group(2) != b"V4":
                        decoded = self._fast_v1(frame, match)
                        if decoded is not None:
                            return decoded
                return self._text(frame)
            if marker == b"$":
                return self._binary(frame)
            if marker == b"X":
                return rejected(frame, "binary 'X' frames (an undocumented alternative layout) "
                                "are not decoded", self.device_id)
            return rejected(frame, f"not an h02 frame: starts with {frame[:8]!r}, expected "
                            "'*' or '$'", self.device_id)
        except Exception:  # the contract: decode() never raises, whatever the input
            return rejected(frame, "h02 frame could not be decoded (malformed content)",
                            self.device_id)

    # Binary ----------------------------------------------------------------------------------

    def _binary(self, frame: bytes) -> Decoded:
        try:
            fix = decode_binary(frame)
        except BadBinary as exc:
            return rejected(frame, str(exc) or "binary frame is not BCD", self.device_id)
        device_id = fix.device_id
        self.device_id = device_id
        values = attrs(**fix.attrs, alarm=fix.alarm.value if fix.alarm else None)
        position = Position(device_id, fix.fix_time, fix.valid, fix.lat, fix.lon,
                            speed_kmh=fix.speed_kmh, course_deg=fix.course, attributes=values)
        events: tuple[Event, ...] = (position,)
        if fix.alarm is not None:
            events = (position, Alarm(device_id, fix.alarm, f"status:{values['status']:08X}",
                                      position, fix.fix_time, values))
        replies: tuple[Reply, ...] = ()
        if self._ack:
            replies = (self._r12(device_id),)
        return Decoded(frame, device_id, events, replies)

    def _r12(self, device_id: str) -> Reply:
        now = self._clock().astimezone(UTC)
        return Reply(f"*HQ,{device_id},R12,{now:%H%M%S}#".encode("ascii"), True)

    # Text ------------------------------------------------------------------------------------

    def _text(self, frame: bytes) -> Decoded:
        text = frame.decode("latin-1").strip()
        body = text[1:-1] if text.endswith("#") else text[1:]
        fields = body.split(",")
        if len(fields) < 3 or len(fields[0]) != 2:
            return rejected(frame, "h02 text frame needs '*<maker>,<id>,<type>'", self.device_id)
        wire_id = fields[1]
        if len(wire_id) > _MAX_ID or not (wire_id.isascii() and (wire_id.isdigit() or not wire_id)):
            return rejected(frame, f"h02 device id {wire_id[:24]!r} is not digits",
                            self.device_id)
        device_id = wire_id or self.device_id
        if wire_id:
            self.device_id = wire_id
        kind = fields[2]
        try:
            if kind in ("HTBT", "V0"):
                echo = text[:text.index(",", text.index(",") + 1) + len(kind) + 1] + "#"
                parsed = t.heartbeat_message(fields)
                reply: Reply | None = Reply(echo.encode("latin-1"), after_store=False)
            elif kind == "NBR":
                parsed = t.nbr_message(fields)
                reply = self._v4(wire_id, "NBR")
            elif kind == "LINK":
                parsed = t.link_message(fields)
                reply = None
            elif kind == "V3":
                parsed = t.v3_message(fields)
                reply = None
            elif kind == "VP1":
                parsed = t.vp1_message(fields)
                reply = None
            elif kind == "SMS":
                parsed = t.Parsed()
                parsed.result = body.split(",", 3)[3] if len(fields) > 3 else ""
                reply = None
            elif kind.startswith("V"):
                parsed = t.position_message(fields, kind)
                if not parsed.has_fix:
                    reply = None  # the reference answers only messages with a position
                elif kind == "V1":
                    reply = self._v4(wire_id, "V1")
                else:
                    reply = self._r12(wire_id) if self._ack and wire_id else None
            else:
                return rejected(frame, f"h02 message type {kind[:12]!r} is not decoded",
                                device_id)
        except t.Bad as exc:
            return rejected(frame, f"{kind[:12]}: {exc}", device_id)
        if device_id is None:
            return Decoded(frame, None, ())
        events = self._events(device_id, parsed)
        return Decoded(frame, device_id, events, (reply,) if reply is not None else ())

    def _v4(self, wire_id: str, kind: str) -> Reply | None:
        if not wire_id:
            return None
        now = self._clock()
        key = (int(now.timestamp()), wire_id, kind)
        last, reply = self._stamp
        if key != last:
            # One reply text per second and device: frames of the same second share it.
            text = f"*HQ,{wire_id},V4,{kind},{now.astimezone(UTC):%Y%m%d%H%M%S}#"
            reply = Reply(text.encode("ascii"), after_store=True)
            self._stamp = (key, reply)
        return reply

    def _fast_v1(self, frame: bytes, match: re.Match[bytes]) -> Decoded | None:
        """A V-type position in the common layout (no battery field, no extras)."""
        (wire, kind, time_text, validity, lat_deg, lat_min, ns, lon_deg, lon_min, ew, speed,
         course, date_text, status_text) = match.groups()
        lat = int(lat_deg) + float(lat_min) / 60.0
        lon = int(lon_deg) + float(lon_min) / 60.0
        if lat > 90.0 or lon > 180.0:
            return None  # the general path says which field is wrong
        if ns == b"S":
            lat = -lat
        if ew == b"W":
            lon = -lon
        device_id = wire.decode("ascii")
        self.device_id = device_id
        status = int(status_text, 16)
        alarm = alarm_of(status)
        values: dict[str, AttrValue] = {"status": status, "ignition": bool(status & IGNITION)}
        if alarm is not None:
            values["alarm"] = alarm.value
        attributes = MappingProxyType(values)
        hour, rest = divmod(int(time_text), 10_000)
        minute, second = divmod(rest, 100)
        day, rest = divmod(int(date_text), 10_000)
        month, year = divmod(rest, 100)
        fix_time = lenient_utc(2000 + year, month, day, hour, minute, second)
        position = Position(device_id, fix_time, validity != b"V", lat, lon,
                            speed_kmh=float(speed) * KMH_PER_KNOT, course_deg=float(course),
                            attributes=attributes)
        events: tuple[Event, ...] = (position,)
        if alarm is not None:
            events = (position, Alarm(device_id, alarm, f"status:{status:08X}", position,
                                      fix_time, attributes))
        if kind == b"V1":
            reply = self._v4(device_id, "V1")
        elif self._ack:
            reply = self._r12(device_id)
        else:
            reply = None
        return Decoded(frame, device_id, events, (reply,) if reply is not None else ())

    def _events(self, device_id: str, parsed: t.Parsed) -> tuple[Event, ...]:
        values = parsed.attrs
        if parsed.cells:
            values["cell_count"] = len(parsed.cells)
            values["cells"] = ";".join(parsed.cells[:16])
        if parsed.alarm is not None:
            values["alarm"] = parsed.alarm.value
        if parsed.time_missing:
            values["time_from_server"] = True
        altitude = values.pop("altitude", None)
        attributes = attrs(**values)
        main: Event
        position: Position | None = None
        when = parsed.event_time
        if parsed.has_fix:
            fix_time = parsed.fix_time or self._clock()
            position = Position(device_id, fix_time, parsed.valid, parsed.lat, parsed.lon,
                                speed_kmh=parsed.speed_kmh, course_deg=parsed.course,
                                altitude_m=float(altitude) if isinstance(altitude, int) else None,
                                attributes=attributes)
            main = position
            when = fix_time
        elif parsed.heartbeat:
            main = Heartbeat(device_id, attributes)
        elif parsed.result is not None:
            main = CommandResult(device_id, "", parsed.result, when, attributes)
        else:
            main = Status(device_id, when, attributes)
        events: list[Event] = [main]
        if position is not None and parsed.result is not None:
            events.append(CommandResult(device_id, parsed.result.split(",", 1)[0],
                                        parsed.result, when, attributes))
        if parsed.alarm is not None:
            status = values.get("status")
            code = f"status:{status:08X}" if isinstance(status, int) else "status"
            events.append(Alarm(device_id, parsed.alarm, code, position, when, attributes))
        return tuple(events)

