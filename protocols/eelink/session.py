"""An eelink connection: the IMEI its login announced, the acks its packages need.

Replies (PROTOCOLS-WAVE2 §4.4): every package but 0x02 (old GPS) and 0x81 is acknowledged with
`67 67 <type> 00 02 <serial>`; the login's ack adds the server's UNIX time, protocol version 1
and action mask 0. Login and heartbeat acks go out at once; every other ack confirms data the
device then deletes, so it waits for the store (`after_store=True`). Over UDP each ack is a
datagram of its own with the device's header.

Over TCP only the login names the device: packages before it give no events and no acks (the
gateway could not attach them to anyone). A UDP datagram names its device in its header.
"""

from __future__ import annotations

from protocols.codec import Clock, Decoded, Reply
from protocols.eelink import udp
from protocols.eelink.packages import (
    HANDSHAKES,
    LOGIN,
    UNACKNOWLEDGED,
    Package,
    PackageError,
    bcd_imei,
    decode_package,
    split_packages,
)
from protocols.events import Event, Login, Rejected, attrs

#: Package types the shortcut in `decode` leaves to the general path (the login's ack differs).
_SPECIAL = frozenset({LOGIN})


def ack(package: Package, server_time: int) -> bytes:
    """The TCP acknowledgement of a package."""
    head = b"gg" + bytes((package.type,))
    serial = package.serial.to_bytes(2, "big")
    if package.type == LOGIN:
        return head + b"\x00\x09" + serial + (server_time & 0xFFFFFFFF).to_bytes(4, "big") \
            + b"\x00\x01\x00"
    return head + b"\x00\x02" + serial


def reply_key(reply: bytes) -> bytes:
    """What a device can predict of a reply: the login ack without the server's time."""
    if len(reply) == 14 and reply[2] == LOGIN:
        return reply[:7]
    return reply


class EelinkSession:
    """Decodes the packages of one connection (or the datagrams of one device)."""

    __slots__ = ("_clock", "imei")

    def __init__(self, options: object, clock: Clock) -> None:
        self._clock = clock
        #: The IMEI the last login (or UDP header) announced; None before.
        self.imei: str | None = None

    def decode(self, frame: bytes) -> Decoded:
        """One TCP package (as the framer cuts them) or one UDP datagram. Never raises."""
        try:
            if frame[:2] == udp.MAGIC:
                return self._datagram(frame)
            imei = self.imei
            if (imei is not None and len(frame) >= 7 and frame[0] == 0x67 == frame[1]
                    and (frame[3] << 8 | frame[4]) + 5 == len(frame)
                    and frame[2] not in _SPECIAL):
                # One package of a known device, the usual frame: no package list.
                package = Package(frame[2], frame[5] << 8 | frame[6], frame[7:])
                events = decode_package(imei, package)
                replies = () if package.type in UNACKNOWLEDGED else (
                    Reply(frame[:3] + b"\x00\x02" + frame[5:7],
                          package.type not in HANDSHAKES),)
                return Decoded(raw=frame, device_id=imei, events=events, replies=replies)
            return self._decode(frame, split_packages(frame), None)
        except PackageError as exc:
            return _rejected(frame, str(exc), self.imei)
        except Exception as exc:  # last line of defence: decode() must never raise
            return _rejected(frame, f"malformed eelink package ({type(exc).__name__})", self.imei)

    def _datagram(self, frame: bytes) -> Decoded:
        if len(frame) < udp.HEADER_BYTES:
            raise PackageError(f"UDP datagram of {len(frame)} bytes is shorter than its header")
        length = int.from_bytes(frame[2:4], "big")
        if length != len(frame) - 4:
            raise PackageError(f"UDP length field says {length} bytes follow, "
                               f"{len(frame) - 4} do")
        expected = int.from_bytes(frame[4:6], "big")
        actual = udp.checksum(frame[6:])
        if expected != actual:
            raise PackageError(f"UDP checksum is {expected:04x}, the bytes give {actual:04x}")
        imei = bcd_imei(frame[6:14])
        self.imei = imei
        return self._decode(frame, split_packages(frame[14:]), imei)

    def _decode(self, frame: bytes, packages: list[Package], udp_imei: str | None) -> Decoded:
        events: list[Event] = []
        replies: list[Reply] = []
        for package in packages:
            if package.type == LOGIN:
                if len(package.content) < 8:
                    raise PackageError("login package 0x01 has no 8-byte IMEI")
                imei = udp_imei or bcd_imei(package.content[:8])
                self.imei = imei
                extra = package.content[8:10]
                events.append(Login(imei, attrs(
                    language=extra[0] if extra else None,
                    timezone=extra[1] if len(extra) > 1 else None)))
            elif self.imei is None:
                continue  # before the login over TCP: nobody to attach it to
            else:
                events.extend(decode_package(self.imei, package))
            if package.type in UNACKNOWLEDGED:
                continue
            data = ack(package, int(self._clock().timestamp()) if package.type == LOGIN else 0)
            if udp_imei is not None:
                data = udp.wrap(udp_imei, data)
            replies.append(Reply(data, after_store=package.type not in HANDSHAKES))
        if self.imei is None:
            return Decoded(raw=frame, device_id=None, events=())
        return Decoded(raw=frame, device_id=self.imei, events=tuple(events),
                       replies=tuple(replies))


def _rejected(frame: bytes, reason: str, device_id: str | None) -> Decoded:
    return Decoded(raw=frame, device_id=device_id, events=(Rejected(reason, device_id),))
