"""The terminal phone number in every JT/T 808 header, and the device id the gateway derives.

The gateway stores a device under at most 15 characters. The rules, from the phone bytes:

* 6 bytes of BCD digits (2011/2013): the 12 digits as they are, leading zeros kept
  (`013912345678`).
* 10 bytes of BCD digits (2019): the 20 digits without leading zeros, but never fewer than 12
  digits, so that a terminal keeps its id when it moves between the two layouts
  (`00000000013912345678` -> `013912345678`). A zero-padded IMEI (14 or 15 significant
  digits, the last 15 with a valid Luhn digit) is the IMEI, its own leading zero kept
  (`00000866496077582164` -> `866496077582164`). More than 15 significant digits cannot be
  stored: the frame is refused.
* 6 bytes that are not BCD (nibbles A-F, Jimi JC-series units): the 6 bytes are the first 14
  digits of the IMEI as a 48-bit number; the id is those 14 digits (zero-padded) plus their
  Luhn check digit, i.e. the IMEI (`4F07788EF87D` -> `868935060010210`). A number of 15 digits
  or more is no IMEI: refused.
* 10 bytes that are not BCD: refused.

`phone_for_id` is the inverse, used for commands when no connection of the device is open in
this process (with one open, commands reuse the exact phone bytes and layout it sends).
"""

from __future__ import annotations

from protocols.imei import is_valid_imei, luhn_digit

#: Longest device id the gateway stores.
MAX_DEVICE_ID = 15
_MIN_DIGITS = 12


class BadField(Exception):
    """A field that cannot be decoded; the message names the field and what is wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def device_id_for_phone(phone: bytes) -> str:
    """The device id for the header's phone bytes (see the module docstring). Raises BadField."""
    text = phone.hex()
    if text.isdigit():
        if len(phone) == 6:
            return text
        significant = text.lstrip("0")
        if len(significant) <= _MIN_DIGITS:
            return text[-_MIN_DIGITS:]
        imei = text[-MAX_DEVICE_ID:]
        if len(significant) >= 14 and is_valid_imei(imei):
            # A zero-padded IMEI, its own leading zero kept (reporting body 01; no IMEI
            # starts with 00).
            return imei
        if len(significant) <= MAX_DEVICE_ID:
            return significant
        raise BadField(f"terminal phone {text}: {len(significant)} significant digits, the "
                       f"gateway stores device ids of at most {MAX_DEVICE_ID}")
    if len(phone) == 6:
        number = int.from_bytes(phone, "big")
        if number < 10**14:
            digits = f"{number:014d}"
            return digits + luhn_digit(digits)
        raise BadField(f"terminal phone {text.upper()}: neither BCD digits nor an IMEI packed "
                       "as a 48-bit number")
    raise BadField(f"terminal phone {text.upper()}: a 10-byte (2019) phone must be BCD digits")


def auth_code_for_phone(phone: bytes) -> bytes:
    """The authentication code the server issues in 0x8100: the terminal id as ASCII, all
    digits of a BCD phone (leading zeros included) or the IMEI of a packed one, as the
    reference server does."""
    text = phone.hex()
    if text.isdigit():
        return text.encode("ascii")
    return device_id_for_phone(phone).encode("ascii")


def phone_for_id(device_id: str) -> tuple[bytes, int | None]:
    """(phone bytes, 2019 version byte or None) to address a device by its id.

    Up to 12 digits: a 6-byte BCD phone (2013), zero-padded. 15 digits: the first 14 packed
    into 6 bytes (2013, as Jimi units and the reference server do; a 2019 unit with a 15-digit
    phone is reached through its open connection instead). 13 or 14 digits: a 10-byte BCD
    phone (2019, version 1). Raises ValueError otherwise.
    """
    if not (device_id.isascii() and device_id.isdigit()) or not 1 <= len(device_id) <= 15:
        raise ValueError(f"jt808 device id must be 1 to 15 digits, got {device_id!r}")
    if len(device_id) <= _MIN_DIGITS:
        return bytes.fromhex(device_id.zfill(_MIN_DIGITS)), None
    if len(device_id) == MAX_DEVICE_ID:
        return int(device_id[:14]).to_bytes(6, "big"), None
    return bytes.fromhex(device_id.zfill(20)), 1
