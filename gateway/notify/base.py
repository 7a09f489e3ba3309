"""What a message is, what a notifier does, and delivery with retries."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

log = logging.getLogger("gateway.notify")

#: Why a message is sent. The codes: activation, sign_in, release and the engine commands'
#: confirmations; the notices carry none; an alarm tells an owner what their device reported.
PURPOSES = ("activation", "sign_in", "release", "engine_stop", "engine_resume",
            "claimed_notice", "released_notice", "locked_notice", "totp_on_notice",
            "totp_off_notice", "alarm")

_SUBJECTS = {
    "activation": "Your device activation code",
    "sign_in": "Your sign-in code",
    "release": "Your code to release a device",
    "engine_stop": "Your code to stop a vehicle's engine",
    "engine_resume": "Your code to let a vehicle's engine start again",
    "claimed_notice": "A device was activated",
    "released_notice": "A device was released",
    "locked_notice": "Activation of your device is paused",
    "totp_on_notice": "An authenticator app was set up for your account",
    "totp_off_notice": "The authenticator app of your account was turned off",
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
    #: What the device reported (`alarm`): the alarm type, when, and where when known.
    alarm: str | None = None
    at: datetime | None = None
    lat: float | None = None
    lon: float | None = None
    #: The page to open (`alarm`: the device's page).
    link: str | None = None

    @property
    def kind(self) -> str:
        """`sms` for phone numbers, `email` otherwise."""
        return "sms" if self.to.startswith("+") else "email"

    @property
    def subject(self) -> str:
        if self.purpose == "alarm":
            return f"Alarm from device {self.imei}: {_alarm_name(self.alarm)}"
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
        if self.purpose == "totp_on_notice":
            return ("An authenticator app was just set up for your account (it replaces any "
                    "earlier one). If this was not you, somebody is using your account: sign "
                    "in with a code sent to you and contact the gateway's administrator.")
        if self.purpose == "totp_off_notice":
            return ("The authenticator app of your account was just turned off. If this was "
                    "not you, somebody is using your account: sign in with a code sent to you "
                    "and contact the gateway's administrator.")
        if self.purpose == "released_notice":
            return f"Device {self.imei} was released: it no longer belongs to your account."
        if self.purpose == "alarm":
            return self._alarm_body()
        if self.purpose in ("engine_stop", "engine_resume"):
            action = "stop the engine" if self.purpose == "engine_stop" else "let the engine start"
            return (f"Your code to {action} of device {self.imei} is {self.code}. It works once "
                    "and expires soon. If you did not ask for it, somebody is using your "
                    "account: sign out everywhere and contact the gateway's administrator.")
        return (f"Your code{device} is {self.code}. It works once and expires soon. "
                "Nobody from the service will ever ask you for it.")

    def _alarm_body(self) -> str:
        when = self.at.strftime("%Y-%m-%d %H:%M:%S UTC") if self.at else "just now"
        where = (f" at {self.lat:.5f}, {self.lon:.5f}" if self.lat is not None
                 and self.lon is not None else "")
        text = f"Device {self.imei} reported {_alarm_name(self.alarm)} {when}{where}."
        if self.link:
            text += f" Details: {self.link}"
        return text


def _alarm_name(alarm: str | None) -> str:
    """`sos` -> `SOS`, `low_battery` -> `low battery`."""
    if not alarm:
        return "an alarm"
    return "SOS" if alarm == "sos" else alarm.replace("_", " ")


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
