"""What a message is, what a notifier does, and delivery with retries."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

log = logging.getLogger("gateway.notify")

#: Why a message is sent. The first three carry a one-time code, the notices do not.
PURPOSES = ("activation", "sign_in", "release", "claimed_notice", "released_notice",
            "locked_notice")

_SUBJECTS = {
    "activation": "Your device activation code",
    "sign_in": "Your sign-in code",
    "release": "Your code to release a device",
    "claimed_notice": "A device was activated",
    "released_notice": "A device was released",
    "locked_notice": "Activation of your device is paused",
}


@dataclass(frozen=True, slots=True)
class Message:
    """One message to one contact (an e-mail address or an E.164 phone number)."""

    to: str
    purpose: str
    imei: str | None
    code: str | None = None
    #: Until when a lock holds (`locked_notice`).
    until: datetime | None = None

    @property
    def kind(self) -> str:
        """`sms` for phone numbers, `email` otherwise."""
        return "sms" if self.to.startswith("+") else "email"

    @property
    def subject(self) -> str:
        return _SUBJECTS.get(self.purpose, "tracker-gateway")

    @property
    def body(self) -> str:
        device = f" for device {self.imei}" if self.imei else ""
        if self.purpose == "claimed_notice":
            return (f"Device {self.imei} was just activated by an account. If this was not "
                    "you, contact your dealer or the gateway's administrator.")
        if self.purpose == "locked_notice":
            until = self.until.strftime("%Y-%m-%d %H:%M UTC") if self.until else "later"
            return (f"Device {self.imei} got too many wrong activation codes or claim keys, so "
                    f"activating it is paused until {until}. If this was not you, somebody "
                    "may be trying to take it: keep its claim key private and contact your "
                    "dealer or the gateway's administrator.")
        if self.purpose == "released_notice":
            return f"Device {self.imei} was released: it no longer belongs to your account."
        return (f"Your code{device} is {self.code}. It works once and expires soon. "
                "Nobody from the service will ever ask you for it.")


class Notifier(Protocol):
    """Sends one message or raises (the caller retries)."""

    channel: str

    async def send(self, message: Message) -> None: ...


async def deliver(
    notifier: Notifier, message: Message, *, attempts: int, retry_delay_s: float
) -> str | None:
    """Send `message`, retrying with doubling delays; None on success, else the last error.

    Never raises (except cancellation): a failed delivery is reported, not a crash.
    """
    delay = retry_delay_s
    error = "not sent"
    for attempt in range(1, attempts + 1):
        try:
            await notifier.send(message)
            return None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The message text holds the code: log only what failed, never the message.
            error = f"{type(exc).__name__}: {exc}"
            log.warning("delivery failed", extra={
                "channel": notifier.channel, "purpose": message.purpose, "attempt": attempt,
                "error": error})
            if attempt < attempts:
                await asyncio.sleep(delay)
                delay *= 2
    return error
