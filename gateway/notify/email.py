"""E-mail delivery over SMTP (aiosmtplib)."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib

from gateway.config import NotifySettings
from gateway.notify.base import Message


class EmailNotifier:
    """Sends plain-text e-mails through the configured SMTP server."""

    channel = "email"

    def __init__(self, settings: NotifySettings) -> None:
        if not settings.smtp_host:
            raise ValueError("e-mail delivery needs notify.smtp_host (GATEWAY_NOTIFY__SMTP_HOST)")
        self.settings = settings

    async def send(self, message: Message) -> None:
        s = self.settings
        email = EmailMessage()
        email["From"] = s.sender
        email["To"] = message.to
        email["Subject"] = message.subject
        email.set_content(message.body)
        await aiosmtplib.send(
            email,
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username or None,
            password=s.smtp_password or None,
            use_tls=s.smtp_security == "tls",
            start_tls=s.smtp_security == "starttls",
            timeout=s.smtp_timeout_s,
        )
