"""IMEI checks (3GPP TS 23.003): 15 digits, the last one a Luhn check digit."""

from __future__ import annotations


def luhn_digit(digits14: str) -> str:
    """The Luhn check digit for the first 14 digits of an IMEI."""
    if len(digits14) != 14 or not digits14.isascii() or not digits14.isdigit():
        raise ValueError("need exactly 14 ASCII digits")
    total = 0
    for index, char in enumerate(digits14):
        digit = ord(char) - 48
        if index % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str((10 - total % 10) % 10)


def is_valid_imei(value: str) -> bool:
    """True for 15 ASCII digits whose last digit is the Luhn check digit of the first 14."""
    return (
        len(value) == 15
        and value.isascii()
        and value.isdigit()
        and luhn_digit(value[:14]) == value[14]
    )


def complete_imei(digits14: str) -> str:
    """The 15-digit IMEI for 14 digits (TAC + serial)."""
    return digits14 + luhn_digit(digits14)


#: Type allocation code of the test devices `trackersim check` plays. The gateway removes such
#: a device's row when its connection ends (if the device never belonged to anyone), so that
#: checking a port leaves nothing behind.
CHECK_TAC = "00000000"


def is_check_device(device_id: str) -> bool:
    """True for the device id of a check device: its IMEI under CHECK_TAC, or the last 12
    digits of it (the id of protocols with 12-digit ids, such as tk103)."""
    if not (device_id.isascii() and device_id.isdigit()):
        return False
    if len(device_id) == 15:
        return device_id.startswith(CHECK_TAC) and is_valid_imei(device_id)
    if len(device_id) == 12:
        full = CHECK_TAC[:3] + device_id
        return full.startswith(CHECK_TAC) and is_valid_imei(full)
    return False
