"""The gt06 session: one connection's login, time zone and the decoding of its packets.

Only the login packet (0x01) names the device; every later packet is the device's because it
arrives on the same connection. A packet before any login therefore decodes to nothing
(`device_id=None`, no reply), as the reference server does.

Replies (byte-exact with the reference):
* login, heartbeats, the GPS / LBS / status / alarm packets, 0x15 text answers and unknown short
  packets: `78 78 05 <protocol> <serial> <CRC> 0D 0A`. Acks of data are `after_store=True`;
  those of the login, of heartbeats without an alarm, and of time / address requests go at once.
* 0x8A time request: the server's UTC time (from the session clock).
* 0x17 / 0x69 Wi-Fi packets: `78 78 00 <protocol> <the packet's 6 BCD time bytes> 0D 0A`.
* extended AZ735 packets 0x32 / 0x33: the same ack in the `79 79` form; 0x70: the serial read
  after the modules; 0x2A address request: `79 79 ... 97 ... NA&&NA&&0##`.
* extended packets other than those, and 0x80-0x82 command echoes: no reply.

CRC policy: devices in the field send packets with a wrong CRC (27 of the reference test
frames), and the reference server never checks it. By default such a packet is decoded and
answered like any other and `Decoded.notes` says "bad_crc" (the gateway counts and logs notes);
with `strict_crc` it is rejected instead. A length byte that disagrees with the packet's real
size is noted "bad_length" (the framer already cut the packet at its real end). A GPS block
whose values are beyond 90 / 180 degrees is no position: the packet is a Status, acked, and
noted "bad_coordinates".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC

from protocols.codec import Clock, Decoded, Reply, rejected
from protocols.events import Alarm, Event, Login, attrs
from protocols.gt06 import blocks as b
from protocols.gt06 import extras, positions
from protocols.gt06.fast import fast_position
from protocols.gt06.reader import Reader, Truncated
from protocols.gt06.report import Report
from protocols.gt06.variants import Model, Variant, variant_of
from protocols.gt06.wire import LONG_START, SHORT_START, STOP, ack, crc16_x25, packet

_MODEL = re.compile(r"[A-Za-z0-9_-]{0,32}")

#: The server's reply to an address request (0x2A): "no address" in the device's format.
_NO_ADDRESS = b"NA&&NA&&0##"
_COMMAND_ECHOES = (b.COMMAND_0, b.COMMAND_1, b.COMMAND_2)
#: Short packets of the GPS / LBS / status family that no other rule of `_decode` claims.
_PLAIN_FAMILY = frozenset({
    b.GPS, b.GPS_LBS_6, b.GPS_LBS_1, b.GPS_LBS_STATUS_1, b.GPS_PHONE, b.GPS_LBS_EXTEND,
    b.GPS_LBS_2, b.GPS_LBS_DRIVER, b.GPS_LBS_STATUS_2, b.GPS_LBS_STATUS_3, b.GPS_LBS_4,
    b.GPS_LBS_5, b.GPS_LBS_3, b.GPS_LBS_7, b.FENCE_MULTI,
})


@dataclass(frozen=True, slots=True)
class Gt06Options:
    """Settings of the gt06 decoder (`[protocols.gt06]` in the gateway's configuration)."""

    strict_crc: bool = field(default=False, metadata={"doc": (
        "Reject packets whose CRC-16/X-25 does not match. Off by default: many devices send "
        "wrong CRCs and the reference server accepts them; such packets are then decoded, "
        "answered and counted with the note \"bad_crc\".")})
    login_time_zone: bool = field(default=True, metadata={"doc": (
        "Read packet times in the time zone the device's login announces (the reference "
        "server's behaviour for devices that send local time). Turn off for devices that "
        "announce a zone but send UTC.")})
    model: str = field(default="", metadata={"doc": (
        "Device model when every gt06 device on this gateway is the same model; a few models "
        "reuse protocol numbers with their own layout or alarm codes: NT11/NT20/NT26/NT40/NT46/"
        "VL100/XT40, LW* (e.g. LW4G-4B), SEEWORLD, R11, VL103/LL303/VL512/G18, QH302R. Empty: "
        "the standard layouts (told apart by protocol number and length byte).")})

    def __post_init__(self) -> None:
        for name in ("strict_crc", "login_time_zone"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false")
        if not isinstance(self.model, str) or not _MODEL.fullmatch(self.model):
            raise ValueError(
                f"model {self.model!r}: use up to 32 letters, digits, '-' or '_' (e.g. \"NT20\")")


class Gt06Session:
    """Decodes one connection's packets; `decode()` never raises."""

    __slots__ = ("_clock", "_fast", "_login_zone", "_model", "_offset_s", "_strict",
                 "device_id")

    def __init__(self, options: Gt06Options, clock: Clock, *, fast: bool = True) -> None:
        """`fast=False` decodes every packet the general way (tests compare both paths)."""
        self._fast = fast
        self._strict = options.strict_crc
        self._login_zone = options.login_time_zone
        self._model = Model(options.model)
        self._clock = clock
        #: The IMEI the last login announced (None before a login).
        self.device_id: str | None = None
        #: The time zone the login announced, in seconds east of UTC.
        self._offset_s = 0

    def decode(self, frame: bytes) -> Decoded:
        """One complete packet (as the framer cuts it) to events and replies."""
        n = len(frame)
        start = frame[:2]
        if n < 6 or (start != SHORT_START and start != LONG_START):
            return rejected(frame, "not a gt06 packet: it must start with 78 78 or 79 79 and "
                            f"hold at least 6 bytes (got {n} bytes starting {frame[:2].hex()})",
                            self.device_id)
        extended = start == LONG_START
        if extended:
            length = (frame[2] << 8) | frame[3]
            kind = frame[4]
            body = 5
        else:
            length = frame[2]
            kind = frame[3]
            body = 4
        notes: tuple[str, ...] = ()
        if crc16_x25(frame[2:n - 4]) != int.from_bytes(frame[n - 4:n - 2], "big"):
            if self._strict:
                return rejected(frame, f"CRC of packet 0x{kind:02X} does not match its content "
                                "(strict_crc is on)", self.device_id)
            notes = ("bad_crc",)
        if length + (6 if extended else 5) != n:
            notes = (*notes, "bad_length")
        serial = int.from_bytes(frame[n - 6:n - 4], "big")
        device_id = self.device_id
        if self._fast and device_id is not None and not extended and not self._model.name:
            try:
                position = fast_position(frame, device_id, self._offset_s)
            except Exception:  # never raises on a standard-length packet; belt and braces
                position = None
            if position is not None:
                return Decoded(frame, device_id, (position,),
                               (Reply(ack(kind, serial), after_store=True),), notes=notes)
        try:
            decoded = self._decode(frame, kind, extended, length, serial, Reader(frame, body))
        except Truncated:
            return rejected(frame, f"packet 0x{kind:02X} is shorter than its fields "
                            f"({n} bytes)", self.device_id)
        except Exception:  # the contract: decode() never raises, whatever the input
            return rejected(frame, f"packet 0x{kind:02X} could not be decoded (malformed "
                            "content)", self.device_id)
        if notes:
            return Decoded(decoded.raw, decoded.device_id, decoded.events, decoded.replies,
                           decoded.close, notes + decoded.notes)
        return decoded

    # Dispatch ------------------------------------------------------------------------------

    def _decode(self, frame: bytes, kind: int, extended: bool, length: int, serial: int,
                r: Reader) -> Decoded:
        if kind == b.LOGIN:
            return self._login(frame, length, serial, r)
        device_id = self.device_id
        if device_id is None:
            # Nothing on this connection said who the device is: nothing to decode it for.
            return Decoded(frame, None, ())
        offset = self._offset_s
        model = self._model
        variant = variant_of(frame)
        report = Report()
        reply: bytes | None = ack(kind, serial)

        if kind in _PLAIN_FAMILY and not extended:
            # The GPS / LBS / status packets most devices send: none of the special cases
            # below applies to them, so they skip the search.
            positions.decode_family(report, r, kind, length, variant, model, offset)
        elif kind == b.HEARTBEAT:
            extras.decode_heartbeat_23(report, r)
        elif kind == b.ADDRESS_REQUEST:
            content = bytes((len(_NO_ADDRESS),)) + b"\0\0\0\0" + _NO_ADDRESS
            return self._handshake(frame, packet(b.ADDRESS_RESPONSE, content, 0, extended=True))
        elif kind == b.TIME_REQUEST:
            now = self._clock().astimezone(UTC)
            content = bytes((now.year - 2000, now.month, now.day, now.hour, now.minute,
                             now.second))
            return self._handshake(frame, packet(b.TIME_REQUEST, content, 0))
        elif kind == b.X1_GPS and variant is not Variant.SL4X:
            positions.decode_x1_gps(report, r, offset)
            reply = None
        elif kind == b.PHOTO_INFO or (kind == b.STATUS_2 and extended):
            # Photos are not stored: the server does not ask for the picture's data.
            return Decoded(frame, device_id, (), notes=("unsupported_type",))
        elif kind == b.MULTIMEDIA:
            # Acked (in the 79 79 form, as by the reference) so that the device moves on, but
            # not stored: media files are out of scope.
            return Decoded(frame, device_id, (),
                           (Reply(ack(kind, serial, extended=True), after_store=True),),
                           notes=("unsupported_type",))
        elif (kind == b.WIFI and variant is not Variant.RFID) or kind in (b.WIFI_2, b.WIFI_4):
            stamp = extras.decode_wifi(report, r, kind, frame)
            reply = None if stamp is None else SHORT_START + bytes((0, kind)) + stamp + STOP
        elif kind == b.INFO and not extended:
            report.attrs["power"] = r.s16() / 100.0
            reply = None
        elif kind == b.LBS_MULTIPLE_3 and variant is Variant.SR411_MINI:
            positions.decode_sr411_mini(report, r, offset, variant)
            reply = None
        elif extras.is_cell_list(kind, extended, variant):
            extras.decode_cell_list(report, r, kind, variant, model, offset)
        elif kind == b.BLUETOOTH_CLOCK:
            extras.decode_bluetooth_clock(report, r, offset)
        elif kind == b.STRING:
            extras.decode_string(report, r)
        elif kind == b.BMS:
            extras.decode_bms(report, r)
        elif kind == b.STATUS and r.readable() == 22:
            extras.decode_status_22(report, r)
        elif kind == b.IBUTTON:
            positions.decode_ibutton(report, r, offset, variant)
        elif kind == b.STATUS_2 and variant is Variant.TRX16I:
            positions.decode_location_rfid(report, r, offset, variant)
        elif (positions.is_position_family(kind, model, variant)
              and not (extended and kind in (b.GPS_LBS_STATUS_4, b.STATUS_2))):
            if kind == b.LBS_STATUS and variant is Variant.SPACE10X:
                # A multi-cell layout nobody has documented: ignored, as by the reference.
                return Decoded(frame, device_id, (), notes=("unsupported_type",))
            positions.decode_family(report, r, kind, length, variant, model, offset)
            report.heartbeat = kind == b.STATUS
        elif kind == b.ALARM:
            positions.decode_alarm(report, r, length, variant, offset)
        elif kind == b.STRING_INFO:
            extras.decode_string_info(report, r)
            reply = None
        elif kind == b.INFO:
            if not extras.decode_info(report, r, length, offset):
                return Decoded(frame, device_id, (), notes=("unsupported_type",))
            reply = None
        elif kind in (b.GPS_LBS_STATUS_4, b.WIFI_5):  # extended: AZ735
            positions.decode_az735(report, r, kind, offset, variant)
            reply = ack(kind, serial, extended=True)
        elif kind == b.OBD:
            extras.decode_obd(report, r, offset)
            reply = None
        elif kind == b.GPS_MODULAR:
            reply = ack(kind, extras.decode_modular(report, r))
        elif kind == b.SERIAL:
            extras.decode_serial(report, r)
            reply = None
        elif kind in (b.PERIPHERAL, b.DEVICE_STATUS):
            extras.decode_device_status(report, r, kind)
        elif kind == b.GPS_LBS_8:
            positions.decode_gps_lbs_8(report, r, offset, variant)
            reply = None
        else:
            # Unknown: the reference acks short packets (not command echoes) and decodes none.
            replies: tuple[Reply, ...] = ()
            if not extended and kind not in _COMMAND_ECHOES:
                replies = (Reply(ack(kind, serial), after_store=True),)
            return Decoded(frame, device_id, (), replies, notes=("unsupported_type",))

        events = report.events(device_id)
        notes = () if report.coordinates_in_range() else ("bad_coordinates",)
        if reply is None:
            return Decoded(frame, device_id, events, notes=notes)
        # A heartbeat's ack confirms no data (unless the heartbeat carries an alarm).
        after_store = not (report.heartbeat and not any(isinstance(e, Alarm) for e in events))
        return Decoded(frame, device_id, events, (Reply(reply, after_store),), notes=notes)

    def _handshake(self, frame: bytes, reply: bytes) -> Decoded:
        return Decoded(frame, self.device_id, (), (Reply(reply, after_store=False),))

    def _login(self, frame: bytes, length: int, serial: int, r: Reader) -> Decoded:
        """0x01: the IMEI as 8 BCD bytes (first digit dropped), a type code, maybe a time zone."""
        digits = r.take(8).hex()[1:]
        if not digits.isdigit():
            return rejected(frame, f"login IMEI {digits!r} is not BCD digits", self.device_id)
        values: dict[str, int | str] = {}
        if r.readable() >= 2 + 6:
            values["type_code"] = f"{r.u16():04x}"
        offset = 0
        if length - 5 > 10 and r.readable() >= 2 + 6:
            word = r.u16()
            hours, minutes = divmod(word >> 4, 100)
            offset = (hours * 60 + minutes) * 60
            if word & 0x08:  # bit 3: west of Greenwich
                offset = -offset
            values["time_zone_offset_min"] = offset // 60
        self.device_id = digits
        self._offset_s = offset if self._login_zone else 0
        event: Event = Login(digits, attrs(**values))
        return Decoded(frame, digits, (event,), (Reply(ack(b.LOGIN, serial), after_store=False),))
