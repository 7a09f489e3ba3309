"""One JT/T 808 connection: frames to events and the replies the server owes (sans-IO).

Replies (PROTOCOLS-WAVE2.md §5.5, §8):

* 0x0100 registration -> 0x8100 with the authentication code, at once. The code is the
  terminal id as ASCII (the reference server's choice; it is a function of the phone, so any
  server of this project issues the same code to a unit).
* 0x0102 authentication -> 0x8001, at once. A code other than the issued one is accepted and
  noted `auth_code_mismatch` (the reference accepts any code), or answered with result 1
  (failure) with `Jt808Options.check_auth_code`.
* 0x0002 heartbeat, 0x0003 logout, 0x0506, 0x1007, 0x8888 -> 0x8001 at once.
* 0x0200 location, 0x0704 / 0x0210 batches, 0x0900 transparent data, 0x0107 terminal
  attributes, 0x6006 text -> 0x8001 after the data is stored (`after_store`): the unit deletes
  what was acknowledged. 0x5501/0x5502 -> 0x4401 when the unit asks for it (attribute bit 15).
* 0x0109 time request -> 0x8109 with the server's UTC time; a Jimi `(...,BASE,2,TIME)` text
  is echoed with TIME replaced by the server's UTC time.
* Answers to the server's own requests (0x0001, 0x0201, 0x0104, 0x0701, 0x0702, 0x1300) and
  0x2070 get no reply.
* A message the server does not know -> 0x8001 result 3 (not supported); a known message whose
  body cannot be read -> 0x8001 result 2 (message error). Both at once, with a Rejected event.

0x8001 replies carry the answered serial and message id; the server's own serial is 0000, as
the reference server sends.

Sub-packaged messages (attribute bit 13) are put back together; the complete message is then
decoded and every packet of it is answered with its own 0x8001, all after the data is stored
(JT/T 808 §7.12 lets the receiver answer the packets together). A unit resends packets whose
answer does not come, so nothing acknowledged is ever lost. At most `MAX_PACKETS` packets
(64 KiB) are held, one message at a time; packets of another message drop an incomplete one.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import timedelta

from protocols.codec import Clock, Decoded, Reply, rejected
from protocols.events import (
    CommandResult,
    Event,
    Heartbeat,
    Login,
    Rejected,
    Status,
    attrs,
)
from protocols.jt808 import messages
from protocols.jt808.commands import remember
from protocols.jt808.identity import BadField, auth_code_for_phone, device_id_for_phone
from protocols.jt808.location import decode_batch, decode_compact, decode_location, local_time
from protocols.jt808.options import Jt808Options
from protocols.jt808.wire import Header, ReplyPrefix, build, parse, unescape, xor

#: Sub-packaged messages: most packets held for one message (at most 64 x 1023 bytes).
MAX_PACKETS = 64

RESULT_SUCCESS = 0
RESULT_FAILURE = 1
RESULT_MESSAGE_ERROR = 2
RESULT_NOT_SUPPORTED = 3
_RESULTS = {0: "success", 1: "failure", 2: "message error", 3: "not supported"}

#: Messages that answer the server's requests: never acknowledged.
_UNANSWERED = frozenset((0x0001, 0x0104, 0x0201, 0x0701, 0x0702, 0x1300, 0x2070))
_HANDSHAKES = frozenset((0x0003, 0x0506, 0x1007, 0x8888))
#: Delimiters, 2013 header (12), basic block (28) and check code: the hot path's minimum.
_SHORTEST_LOCATION = 2 + 12 + 28 + 1


class _Frame:
    """One message being decoded: its header, id, notes and the serials to answer."""

    __slots__ = ("device_id", "header", "notes", "raw", "serials")

    def __init__(self, raw: bytes, header: Header, device_id: str, notes: list[str],
                 serials: tuple[int, ...]) -> None:
        self.raw = raw
        self.header = header
        self.device_id = device_id
        self.notes = notes
        self.serials = serials


class Jt808Session:
    """The state of one connection: the terminal's identity, the authentication code issued,
    the packets of a sub-packaged message. `decode` never raises."""

    __slots__ = (
        "__weakref__", "_auth_code", "_clock", "_family", "_offset", "_packet_key",
        "_packets", "_phone", "_prefix", "_version", "device_id", "options",
    )

    def __init__(self, options: Jt808Options, clock: Clock) -> None:
        self.options = options
        self._clock = clock
        self._offset: timedelta = options.utc_offset
        self._family = options.family
        #: The device id of the last identified frame (text results carry none).
        self.device_id: str | None = None
        self._phone: bytes | None = None
        self._version: int | None = None
        self._prefix: ReplyPrefix | None = None
        self._auth_code: bytes | None = None
        self._packets: dict[int, tuple[int, bytes]] = {}
        #: (message id, packet count, serial of packet 1) of the message being put together.
        self._packet_key: tuple[int, int, int] | None = None

    @property
    def wire(self) -> tuple[bytes, int | None] | None:
        """The phone bytes and 2019 version the terminal sends (for commands)."""
        return None if self._phone is None else (self._phone, self._version)

    # Entry point ---------------------------------------------------------------------------

    def decode(self, frame: bytes) -> Decoded:
        """One frame as the framer cut it (still byte-stuffed) to events and replies."""
        try:
            if frame[1:3] == b"\x02\x00" and self._phone is not None:
                fast = self._fast_location(frame)
                if fast is not None:
                    return fast
            return self._decode(frame)
        except Exception:  # the contract: decode() never raises, whatever the input
            return rejected(frame, "jt808: internal decoder error on this frame (a bug: "
                                   "please report the frame)", self.device_id)

    def _fast_location(self, frame: bytes) -> Decoded | None:
        """The commonest frame, a 0x0200 location of the connection's terminal (not in
        packets, not encrypted), decoded without the general machinery. None: not such a frame
        (or one to refuse), for `_decode` to handle. Gives what `_decode` gives (tested)."""
        raw = frame
        n = len(frame)
        if n < _SHORTEST_LOCATION or frame[0] != 0x7E or frame[n - 1] != 0x7E \
                or frame.find(b"\x7e", 1, n - 1) >= 0:
            return None
        if b"\x7d" in frame:
            try:
                frame = b"\x7e" + unescape(frame[1:n - 1]) + b"\x7e"
            except BadField:
                return None
            n = len(frame)
            if n < _SHORTEST_LOCATION:
                return None
        attributes = (frame[3] << 8) | frame[4]
        layout = attributes & 0xFC00
        if layout == 0 and self._version is None:
            if frame[5:11] != self._phone:
                return None
            start = 13
        elif layout == 0x4000 and self._version == frame[5]:
            if frame[6:16] != self._phone:
                return None
            start = 18
        else:
            return None
        body = frame[start:n - 2]
        notes: list[str] = []
        if xor(frame[1:n - 2]) != frame[n - 2]:
            notes.append("bad_checksum")
        if attributes & 0x3FF != len(body):
            notes.append("body_length_mismatch")
        device_id = self.device_id
        assert device_id is not None and self._prefix is not None
        try:
            position, alarms = decode_location(body, device_id, self._family, self._offset,
                                               notes)
        except BadField:
            return None
        serial = (frame[start - 2] << 8) | frame[start - 1]
        reply = Reply(self._prefix.general(serial, 0x0200, RESULT_SUCCESS), True)
        return Decoded(raw=raw, device_id=device_id,
                       events=(position, *alarms) if alarms else (position,),
                       replies=(reply,), notes=tuple(notes))

    def _decode(self, frame: bytes) -> Decoded:
        """Any frame (decode() without the hot path and the safety net)."""
        if frame[:1] == b"(":
            return self._jimi_text(frame)
        try:
            header = parse(frame)
        except BadField as exc:
            return rejected(frame, exc.reason)
        try:
            device_id = self._identify(header)
        except BadField as exc:
            return rejected(frame, exc.reason)
        notes: list[str] = []
        if not header.checksum_ok:
            notes.append("bad_checksum")
        if not header.length_ok:
            notes.append("body_length_mismatch")
        if header.encryption:
            reason = (f"message {header.msg_id:#06x}: encrypted body (attribute bits 10-12 = "
                      f"{header.encryption}) is not supported")
            return self._refuse(_Frame(frame, header, device_id, notes, (header.serial,)),
                                reason, RESULT_NOT_SUPPORTED)
        if header.packet_count:
            return self._packet(frame, header, device_id, notes)
        return self._message(_Frame(frame, header, device_id, notes, (header.serial,)))

    def _identify(self, header: Header) -> str:
        phone, version = header.phone, header.version
        if phone == self._phone and version == self._version and self.device_id is not None:
            return self.device_id
        device_id = device_id_for_phone(phone)
        self._phone = phone
        self._version = version
        self._prefix = ReplyPrefix(phone, version)
        self.device_id = device_id
        remember(device_id, self)
        return device_id

    def _message(self, frame: _Frame) -> Decoded:
        handler = _HANDLERS.get(frame.header.msg_id)
        msg_id = frame.header.msg_id
        if handler is None:
            if msg_id in _HANDSHAKES:
                return self._answer(frame, (), after_store=False)
            return self._refuse(frame, f"message {msg_id:#06x} is not supported",
                                RESULT_NOT_SUPPORTED)
        try:
            return handler(self, frame)
        except BadField as exc:
            return self._refuse(frame, exc.reason, RESULT_MESSAGE_ERROR)
        except (struct.error, IndexError):
            return self._refuse(frame, f"message {msg_id:#06x}: the body ({len(frame.header.body)}"
                                       " bytes) ends inside a field", RESULT_MESSAGE_ERROR)
        except (ValueError, UnicodeDecodeError):
            return self._refuse(frame, f"message {msg_id:#06x}: a field holds no valid value",
                                RESULT_MESSAGE_ERROR)

    # Replies -------------------------------------------------------------------------------

    def _general(self, frame: _Frame, result: int, after_store: bool) -> tuple[Reply, ...]:
        prefix = self._prefix
        assert prefix is not None
        msg_id = frame.header.msg_id
        return tuple(Reply(prefix.general(serial, msg_id, result), after_store)
                     for serial in frame.serials)

    def _answer(self, frame: _Frame, events: tuple[Event, ...], *, after_store: bool,
                result: int = RESULT_SUCCESS) -> Decoded:
        return Decoded(raw=frame.raw, device_id=frame.device_id, events=events,
                       replies=self._general(frame, result, after_store),
                       notes=tuple(frame.notes))

    def _quiet(self, frame: _Frame, events: tuple[Event, ...]) -> Decoded:
        return Decoded(raw=frame.raw, device_id=frame.device_id, events=events,
                       notes=tuple(frame.notes))

    def _refuse(self, frame: _Frame, reason: str, result: int) -> Decoded:
        events = (Rejected(reason, frame.device_id),)
        if frame.header.msg_id in _UNANSWERED:
            return self._quiet(frame, events)
        return self._answer(frame, events, after_store=False, result=result)

    # Sub-packaged messages -----------------------------------------------------------------

    def _packet(self, raw: bytes, header: Header, device_id: str, notes: list[str]) -> Decoded:
        count, index = header.packet_count, header.packet_index
        single = _Frame(raw, header, device_id, notes, (header.serial,))
        if not 1 <= index <= count:
            return self._refuse(single, f"packet index {index} of {count}: must be 1 to "
                                        f"{count}", RESULT_MESSAGE_ERROR)
        if count > MAX_PACKETS:
            return self._refuse(single, f"message {header.msg_id:#06x} in {count} packets: at "
                                        f"most {MAX_PACKETS} are put together",
                                RESULT_NOT_SUPPORTED)
        # The packets of one message have consecutive serials (JT/T 808 §7.12).
        key = (header.msg_id, count, (header.serial - index + 1) & 0xFFFF)
        if key != self._packet_key:
            if self._packets:
                notes.append("packets_dropped")
            self._packets = {}
            self._packet_key = key
        self._packets[index] = (header.serial, header.body)
        if len(self._packets) < count:
            return self._quiet(single, ())
        parts = [self._packets[i] for i in range(1, count + 1)]
        self._packets = {}
        self._packet_key = None
        header.body = b"".join(body for _serial, body in parts)
        header.serial = parts[0][0]
        return self._message(_Frame(raw, header, device_id, notes,
                                    tuple(serial for serial, _body in parts)))

    # Handshakes ----------------------------------------------------------------------------

    def _registration(self, frame: _Frame) -> Decoded:
        header = frame.header
        code = auth_code_for_phone(header.phone)
        self._auth_code = code
        login = Login(frame.device_id, attrs(**messages.registration(header.body,
                                                                     header.version)))
        body = frame.serials[0].to_bytes(2, "big") + bytes((RESULT_SUCCESS,)) + code
        reply = Reply(build(0x8100, header.phone, 0, body, version=header.version), False)
        return Decoded(raw=frame.raw, device_id=frame.device_id, events=(login,),
                       replies=(reply,), notes=tuple(frame.notes))

    def _authentication(self, frame: _Frame) -> Decoded:
        header = frame.header
        code, values = messages.authentication(header.body, header.version)
        expected = self._auth_code or auth_code_for_phone(header.phone)
        matches = code == expected
        if not matches:
            frame.notes.append("auth_code_mismatch")
            if self.options.check_auth_code:
                reason = (f"authentication code {code!r} is not the code issued to terminal "
                          f"{frame.device_id}; the unit must register again (0x0100)")
                return self._answer(frame, (Rejected(reason, frame.device_id),),
                                    after_store=False, result=RESULT_FAILURE)
        login = Login(frame.device_id, attrs(**values, auth_code_ok=matches))
        return self._answer(frame, (login,), after_store=False)

    def _heartbeat(self, frame: _Frame) -> Decoded:
        body = frame.header.body
        values = (attrs(battery_level=body[0], rssi=body[1], status=body[2])
                  if len(body) >= 3 else attrs())
        return self._answer(frame, (Heartbeat(frame.device_id, values),), after_store=False)

    def _time_request(self, frame: _Frame) -> Decoded:
        now = self._clock()
        body = (now.year.to_bytes(2, "big")
                + bytes((now.month, now.day, now.hour, now.minute, now.second, 0)))
        header = frame.header
        reply = Reply(build(0x8109, header.phone, 0, body, version=header.version), False)
        return Decoded(raw=frame.raw, device_id=frame.device_id, events=(), replies=(reply,),
                       notes=tuple(frame.notes))

    # Data ----------------------------------------------------------------------------------

    def _location(self, frame: _Frame) -> Decoded:
        position, alarms = decode_location(frame.header.body, frame.device_id, self._family,
                                           self._offset, frame.notes)
        return self._answer(frame, (position, *alarms), after_store=True)

    def _batch(self, frame: _Frame) -> Decoded:
        header = frame.header
        if header.msg_id == 0x0210 and len(header.body) == 7:
            # A battery report: level and time.
            status = Status(frame.device_id, event_time=local_time(header.body[1:7],
                                                                   self._offset),
                            attributes=attrs(battery_level=header.body[0]))
            return self._answer(frame, (status,), after_store=True)
        positions, alarms = decode_batch(header.body, frame.device_id, self._family,
                                         self._offset, frame.notes,
                                         short_lengths=header.msg_id == 0x0210)
        return self._answer(frame, (*positions, *alarms), after_store=True)

    def _compact(self, frame: _Frame) -> Decoded:
        header = frame.header
        position, alarms = decode_compact(header.msg_id, header.body, frame.device_id,
                                          frame.notes)
        events: tuple[Event, ...] = (position, *alarms)
        if not header.reply_flag:
            return self._quiet(frame, events)
        body = header.msg_id.to_bytes(2, "big") + bytes((RESULT_SUCCESS,))
        reply = Reply(build(0x4401, header.phone, 1, body, short_serial=True), True)
        return Decoded(raw=frame.raw, device_id=frame.device_id, events=events,
                       replies=(reply,), notes=tuple(frame.notes))

    def _transparent(self, frame: _Frame) -> Decoded:
        content = messages.transparent(frame.header.body, frame.device_id, self._family,
                                       self._offset)
        events: tuple[Event, ...] = ()
        if content.position is not None:
            events = (content.position, *content.alarms)
        elif content.status is not None:
            events = (content.status,)
        return self._answer(frame, events, after_store=True)

    def _location_answer(self, frame: _Frame) -> Decoded:
        body = frame.header.body
        if len(body) < 2:
            raise BadField("location answer: the answered serial is missing")
        position, alarms = decode_location(body[2:], frame.device_id, self._family,
                                           self._offset, frame.notes)
        answer = CommandResult(frame.device_id, "0x8201", "position",
                               event_time=position.fix_time,
                               attributes=attrs(serial=int.from_bytes(body[:2], "big")))
        return self._quiet(frame, (position, *alarms, answer))

    def _terminal_attributes(self, frame: _Frame) -> Decoded:
        values = messages.terminal_attributes(frame.header.body, frame.header.version)
        return self._answer(frame, (Status(frame.device_id, attributes=attrs(**values)),),
                            after_store=True)

    def _parameters(self, frame: _Frame) -> Decoded:
        values = messages.parameters(frame.header.body)
        return self._quiet(frame, (Status(frame.device_id, attributes=attrs(**values)),))

    def _driver_identity(self, frame: _Frame) -> Decoded:
        when, values = messages.driver_identity(frame.header.body, self._offset)
        return self._quiet(frame, (Status(frame.device_id, event_time=when,
                                          attributes=attrs(**values)),))

    def _acceleration(self, frame: _Frame) -> Decoded:
        values = attrs(g_sensor=messages.acceleration(frame.header.body))
        return self._quiet(frame, (Status(frame.device_id, attributes=values),))

    # Answers to commands -------------------------------------------------------------------

    def _general_response(self, frame: _Frame) -> Decoded:
        body = frame.header.body
        if len(body) < 5:
            raise BadField(f"general response: {len(body)} bytes, 5 needed")
        serial = int.from_bytes(body[0:2], "big")
        answered = int.from_bytes(body[2:4], "big")
        result = CommandResult(frame.device_id, f"{answered:#06x}",
                               _RESULTS.get(body[4], f"result {body[4]}"),
                               attributes=attrs(serial=serial))
        return self._quiet(frame, (result,))

    def _text_result(self, frame: _Frame) -> Decoded:
        msg_id = frame.header.msg_id
        body = frame.header.body
        if msg_id == 0x1300:
            text, command = messages.text_response(body), "0x8300"
        elif msg_id == 0x0701:
            text, command = messages.command_response(body), ""
        else:
            text, command = messages.text_report(body), ""
        result = CommandResult(frame.device_id, command, text)
        if msg_id == 0x6006:
            return self._answer(frame, (result,), after_store=True)
        return self._quiet(frame, (result,))

    # Jimi text results ---------------------------------------------------------------------

    def _jimi_text(self, frame: bytes) -> Decoded:
        """`(<id>,...)` text a Jimi unit sends between binary frames. It names no terminal the
        server can check: the connection's identity is used."""
        text = frame.decode("latin-1")
        if not text.endswith(")"):
            return rejected(frame, "text result: no closing ')' before the next 0x7E frame",
                            self.device_id)
        if "BASE,2" in text:
            now = self._clock().strftime("%Y%m%d%H%M%S")
            reply = Reply(text.replace("TIME", now).encode("latin-1"), False)
            return Decoded(raw=frame, device_id=self.device_id, events=(), replies=(reply,))
        if self.device_id is None:
            return Decoded(raw=frame, device_id=None, events=())
        return Decoded(raw=frame, device_id=self.device_id,
                       events=(CommandResult(self.device_id, "", text),))


_HANDLERS: dict[int, Callable[[Jt808Session, _Frame], Decoded]] = {
    0x0200: Jt808Session._location,
    0x0704: Jt808Session._batch,
    0x0210: Jt808Session._batch,
    0x0002: Jt808Session._heartbeat,
    0x0100: Jt808Session._registration,
    0x0102: Jt808Session._authentication,
    0x5501: Jt808Session._compact,
    0x5502: Jt808Session._compact,
    0x0900: Jt808Session._transparent,
    0x0201: Jt808Session._location_answer,
    0x0001: Jt808Session._general_response,
    0x0107: Jt808Session._terminal_attributes,
    0x0104: Jt808Session._parameters,
    0x0702: Jt808Session._driver_identity,
    0x0701: Jt808Session._text_result,
    0x1300: Jt808Session._text_result,
    0x6006: Jt808Session._text_result,
    0x2070: Jt808Session._acceleration,
    0x0109: Jt808Session._time_request,
}
