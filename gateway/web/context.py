"""What the web app needs from the gateway, as one small typed object built in
`gateway/server.py` (the web layer never sees the `Gateway` itself)."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from gateway.activation import ActivationService
from gateway.config import AdminSettings, HttpSettings, MetricsSettings, WebSettings
from gateway.metrics import Metrics
from gateway.outbound.commands import CommandService
from gateway.outbound.live import LiveHub
from gateway.store.database import Database

#: (healthy, body) for `/healthz` and `/readyz`.
Health = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]

_LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True)
class WebContext:
    activation: ActivationService
    db: Database
    http: HttpSettings
    admin: AdminSettings
    metrics_settings: MetricsSettings
    metrics: Metrics
    #: The gateway's health, for `/healthz`.
    health: Health
    #: Whether this instance should get devices now, for `/readyz`.
    ready: Health
    #: Device ids with an open connection now ("online" on the owner's pages).
    online_devices: Callable[[], Collection[str]]
    #: The map and live update settings.
    web: WebSettings
    #: Subscribers of live updates on this instance.
    live: LiveHub
    #: Called before `/metrics` is rendered (gauges read on demand).
    refresh_metrics: Callable[[], None] = lambda: None
    #: Commands to devices (None: not offered, e.g. a web app built without a gateway).
    commands: CommandService | None = None
    _proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        init=False, default=())

    def __post_init__(self) -> None:
        networks = tuple(ipaddress.ip_network(p, strict=False) for p in self.http.trusted_proxies)
        object.__setattr__(self, "_proxies", networks)

    def is_trusted_proxy(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._proxies)

    @property
    def public_origin(self) -> str:
        parts = urlsplit(self.http.public_url)
        return f"{parts.scheme}://{parts.netloc}".lower()

    @property
    def secure_cookies(self) -> bool:
        """Cookies are `Secure`, except when the app is served over plain http on loopback
        (development): a browser would not send a Secure cookie back over http."""
        parts = urlsplit(self.http.public_url)
        if parts.scheme == "https":
            return True
        host = parts.hostname or ""
        if host in _LOOPBACK_NAMES:
            return False
        try:
            return not ipaddress.ip_address(host).is_loopback
        except ValueError:
            return True
