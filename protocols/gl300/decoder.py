"""decode(): one @Track text frame to typed events and the server's replies.

Replies (PROTOCOLS.md §3.4 and §4):
* `+ACK:GTHBD,<ver>,<id>,<name>,<send time>,<count>$` -> `+SACK:GTHBD,<ver>,<count>$`, sent at
  once (`after_store=False`): it is a keep-alive and carries no data.
* With `Gl300Options(sack=True)` (the device's "SACK enable" setting), every text frame also
  gets `+SACK:<count>$`, echoing the count field as it is. It is sent after the data is stored
  for `+RESP:`/`+BUFF:` frames (the device drops what was acknowledged) and at once for `+ACK:`
  frames. It is sent even for a frame that is then rejected, as long as its header and count
  could be read: the device would otherwise resend a frame that will never decode.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from protocols.codec import Decoded, Reply
from protocols.events import AttrValue, Event, Rejected
from protocols.gl300.fields import (
    FieldError,
    is_count,
    is_device_id,
    is_version,
    model_of,
    parse_time,
)
from protocols.gl300.reports import Frame, decode_ack, decode_report, single_fix

_KINDS: dict[str, str] = {"+RESP:GT": "RESP", "+BUFF:GT": "BUFF", "+ACK:GT": "ACK"}
#: Header, type, protocol version and device id of a well-formed frame, in one match.
_HEAD = re.compile(r"\+(RESP|BUFF|ACK):GT([0-9A-Za-z]{3}),([0-9A-Fa-f]{6}(?:[0-9A-Fa-f]{4})?),"
                   r"([0-9]{15}|[0-9A-Fa-f]{14}),")


@dataclass(frozen=True, slots=True)
class Gl300Options:
    """Settings of the @Track decoder (`[protocols.gl300]` in the gateway's configuration)."""

    sack: bool = field(default=False, metadata={"doc": (
        "Answer every Queclink message with +SACK:<count>$ (match the device's "
        "\"SACK enable\" setting of AT+GTSRI / AT+GTQSS; devices ship with it off).")})


DEFAULT_OPTIONS = Gl300Options()


def decode(frame: bytes, options: Gl300Options = DEFAULT_OPTIONS) -> Decoded:
    """Decode one frame (with or without its `$`). Never raises: bad input gives a Rejected."""
    try:
        return _decode(frame, options)
    except Exception:  # the contract: decode() never raises, whatever the input
        # Every known bad field has its own reason; this one means a case nobody foresaw.
        return Decoded(raw=frame, device_id=None, events=(
            Rejected("@Track frame not understood (a field in an unexpected form)"),))


def _decode(raw: bytes, options: Gl300Options, fast: bool = True) -> Decoded:
    """decode() without the safety net. `fast=False` skips the single-fix hot path (tests
    compare both paths)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _reject(raw, "frame is not UTF-8 text (binary @Track is not supported)")
    if text[-1:] == "$":
        text = text[:-1]
    else:
        text = text.rstrip("\r\n\x00")
        if text.endswith("$"):
            text = text[:-1]
    if "$" in text:
        return _reject(raw, "'$' inside the frame: several frames given as one (use the framer)")
    fields = text.split(",")
    count = fields[-1]
    head = _HEAD.match(text)
    if head is not None:
        # Hot path: one regex validated header, type, version and device id.
        kind, msg_type, version, device_id = head.groups()
        replies: tuple[Reply, ...] = ()
        if options.sack and is_count(count):
            replies = (Reply(f"+SACK:{count}$".encode(), kind != "ACK"),)
        if len(fields) < 5:
            return _reject(raw, f"truncated GT{msg_type} frame: {len(fields)} fields", None,
                           replies)
    else:
        # Slow path: find out what is wrong, for a specific reason.
        kind = _KINDS.get(text[:8]) or _KINDS.get(text[:7], "")
        if not kind:
            return _reject(raw, f"not an @Track text frame (starts with {text[:8]!r})")
        header = fields[0]
        msg_type = header[len(kind) + 4:]
        if len(msg_type) != 3 or not msg_type.isascii() or not msg_type.isalnum():
            return _reject(raw, f"unknown message type header {header[:16]!r}")
        replies = ()
        if options.sack and len(fields) >= 3 and is_count(count):
            replies = (Reply(f"+SACK:{count}$".encode(), kind != "ACK"),)
        if len(fields) < 5:
            return _reject(raw, f"truncated GT{msg_type} frame: {len(fields)} fields", None,
                           replies)
        version, device_id = fields[1], fields[2]
        if not is_version(version):
            return _reject(raw, f"protocol version {version[:20]!r} is not 6 or 10 hex digits "
                           "(the older GT300-style layout is not supported)", None, replies)
        if not is_device_id(device_id):
            return _reject(raw, f"device id {device_id[:20]!r} is neither a 15-digit IMEI nor "
                           "a 14-hex MEID", None, replies)
    if not is_count(count):
        return _reject(raw, f"count number {count[:12]!r} is not hex", device_id, replies)

    common = _common(fields, kind, msg_type, version, count)
    if (fast and kind != "ACK" and len(fields) == 22
            and (msg_type == "FRI" or msg_type == "RTL")):
        try:
            single = single_fix(fields, device_id, common)
        except FieldError as exc:
            return _reject(raw, f"GT{msg_type}: {exc}", device_id, replies)
        if single is not None:
            return Decoded(raw, device_id, single, replies)
    send_time = parse_time(fields[-2])
    frame = Frame(fields, msg_type, device_id, version, kind == "BUFF", send_time, common)

    try:
        events: list[Event]
        if kind == "ACK":
            events = decode_ack(frame)
            if msg_type == "HBD":
                hbd = Reply(f"+SACK:GTHBD,{version},{count}$".encode(), after_store=False)
                replies = (hbd, *replies)
        else:
            events = decode_report(frame)
    except (FieldError, IndexError) as exc:
        reason = str(exc) if isinstance(exc, FieldError) else "too few fields"
        return _reject(raw, f"GT{msg_type}: {reason}", device_id, replies)
    return Decoded(raw, device_id, tuple(events), replies)


def _common(fields: list[str], kind: str, msg_type: str, version: str,
            count: str) -> dict[str, AttrValue]:
    """Attributes every event of the frame carries."""
    common: dict[str, AttrValue] = {"protocol_version": version, "count_number": count,
                                    "report": "GT" + msg_type}
    model = model_of(version)
    if model is not None:
        common["model"] = model
    if fields[3] and msg_type != "GSM":
        common["device_name"] = fields[3]
    if kind == "BUFF":
        common["buffered"] = True
    return common


def _reject(raw: bytes, reason: str, device_id: str | None = None,
            replies: tuple[Reply, ...] = ()) -> Decoded:
    return Decoded(raw=raw, device_id=device_id, events=(Rejected(reason, device_id),),
                   replies=replies)
