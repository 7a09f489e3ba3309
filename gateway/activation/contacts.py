"""What a claimant may type: a 15-digit IMEI and a contact (e-mail or phone number)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from protocols.imei import is_valid_imei


class InvalidInput(ValueError):
    """The request is malformed; the message says what to fix (answered with 422).

    `errors` has every field found wrong, field -> message (a form shows them all at once);
    `field` and `message` are the first of them.
    """

    def __init__(self, field: str, message: str,
                 errors: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.errors: dict[str, str] = dict(errors) if errors else {field: message}


class FieldChecks:
    """Runs the checks of several fields and raises one InvalidInput naming all that failed:

        checks = FieldChecks()
        imei = checks.run(check_imei, typed_imei)
        contact = checks.run(normalize_contact, typed_contact)
        checks.raise_any()
    """

    def __init__(self) -> None:
        self.errors: dict[str, str] = {}

    def run(self, check: Callable[[str], str], value: str) -> str:
        """`check(value)`; on InvalidInput, its message is kept and "" returned."""
        try:
            return check(value)
        except InvalidInput as exc:
            self.errors.update(exc.errors)
            return ""

    def raise_any(self) -> None:
        if self.errors:
            field, message = next(iter(self.errors.items()))
            raise InvalidInput(field, message, self.errors)


def check_imei(value: str) -> str:
    """The IMEI if it is 15 ASCII digits with a valid Luhn check digit, else InvalidInput."""
    value = value.strip()
    if not (len(value) == 15 and value.isascii() and value.isdigit()):
        raise InvalidInput("imei", "the IMEI must be exactly 15 digits (0-9); it is printed on "
                           "the tracker's label and box, or shown by dialing *#06#")
    if not is_valid_imei(value):
        raise InvalidInput("imei", "this IMEI's last digit does not match its check digit: "
                           "please check for a typo")
    return value


def normalize_contact(value: str) -> str:
    """A lower-case e-mail address, or a phone number in E.164 (`+4915112345678`)."""
    value = value.strip()
    if not value or len(value) > 254:
        raise InvalidInput("contact", "enter your e-mail address or your mobile number "
                           "with its country code, like +44 7911 123456")
    if "@" in value:
        try:
            checked = validate_email(value, check_deliverability=False)
        except EmailNotValidError as exc:
            raise InvalidInput("contact", f"this e-mail address is not valid: {exc}") from None
        return checked.normalized.lower()
    if not value.startswith("+"):
        raise InvalidInput("contact", "enter the phone number with its country code, "
                           "starting with + (like +44 7911 123456), or an e-mail address")
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise InvalidInput("contact", "this phone number is not valid: check the country "
                           "code and the number of digits")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_contact(contact: str) -> str:
    """`j***@e***.com` for e-mails, `+44*******123` for phones: enough to recognise, not to use."""
    if "@" in contact:
        local, _, domain = contact.partition("@")
        name, dot, tld = domain.rpartition(".")
        if not dot:
            name, tld = domain, ""
        return f"{local[:1]}***@{name[:1]}***{dot}{tld}"
    return contact[:3] + "*" * max(len(contact) - 6, 1) + contact[-3:]
