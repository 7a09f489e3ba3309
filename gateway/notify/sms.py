"""SMS delivery: a Twilio-shaped form POST (`To`, `From`, `Body`) to the configured provider."""

from __future__ import annotations

import httpx

from gateway.config import NotifySettings
from gateway.notify.base import Message


class SmsNotifier:
    """POSTs each message to `notify.sms_url`; any answer but 2xx is a failure."""

    channel = "sms"

    def __init__(self, settings: NotifySettings) -> None:
        if not settings.sms_url:
            raise ValueError("SMS delivery needs notify.sms_url (GATEWAY_NOTIFY__SMS_URL)")
        self.settings = settings

    async def send(self, message: Message) -> None:
        s = self.settings
        auth = (s.sms_username, s.sms_password) if s.sms_username else None
        async with httpx.AsyncClient(timeout=s.sms_timeout_s) as client:
            response = await client.post(
                s.sms_url, data={"To": message.to, "From": s.sender, "Body": message.body},
                auth=auth)
        if not response.is_success:
            # The provider's answer may echo the body (and so the code): show only the status.
            raise RuntimeError(f"SMS provider answered HTTP {response.status_code}")
