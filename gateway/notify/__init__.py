"""Delivery of one-time codes and notices: outbox file (development), e-mail (SMTP), SMS (HTTP).

`build_notifier(settings)` gives the notifier the configuration asks for; `deliver()` sends one
message with retries and returns an error text instead of raising.
"""

from gateway.notify.base import Message, Notifier, deliver
from gateway.notify.factory import build_notifier

__all__ = ["Message", "Notifier", "build_notifier", "deliver"]
