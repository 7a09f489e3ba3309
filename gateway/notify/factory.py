"""The notifier the configuration asks for."""

from __future__ import annotations

from gateway.config import NotifySettings
from gateway.notify.base import Message, Notifier
from gateway.notify.email import EmailNotifier
from gateway.notify.outbox import OutboxNotifier
from gateway.notify.sms import SmsNotifier


class RoutingNotifier:
    """Real delivery: e-mail addresses over SMTP, phone numbers over SMS.

    A channel that is not configured fails at send time with a message naming the key to set,
    which ends up on the challenge (the gateway still starts).
    """

    channel = "live"

    def __init__(self, settings: NotifySettings) -> None:
        self.settings = settings
        self._email = EmailNotifier(settings) if settings.smtp_host else None
        self._sms = SmsNotifier(settings) if settings.sms_url else None

    async def send(self, message: Message) -> None:
        if message.kind == "sms":
            if self._sms is None:
                raise RuntimeError("no SMS provider: set notify.sms_url")
            await self._sms.send(message)
            return
        if self._email is None:
            raise RuntimeError("no SMTP server: set notify.smtp_host")
        await self._email.send(message)


def build_notifier(settings: NotifySettings) -> Notifier:
    """`outbox` for development, else routing by contact kind."""
    if settings.channel == "outbox":
        return OutboxNotifier(settings.outbox_path)
    return RoutingNotifier(settings)
