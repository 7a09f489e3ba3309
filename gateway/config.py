"""All settings of the gateway, in one place.

Precedence, lowest first: the defaults in this module (documented, with the same values, in
`config/gateway.toml`), the TOML file given with `--config` (or `GATEWAY_CONFIG`), then environment
variables `GATEWAY_<SECTION>__<KEY>` (for example `GATEWAY_PROTOCOLS__<NAME>__PORT=15004`).
A wrong value stops start-up with a message that names the key and what is allowed.

Each protocol of the registry (`protocols.registry`) has a table `[protocols.<name>]` with its
`port` (default: the protocol's own) and the fields of its options dataclass; nothing here names
a protocol. The keys of the previous release, `tcp.<name>_port` and `tcp.<name>_<option>`, still
work with a warning naming the new key (`Settings.deprecations`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import socket
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from protocols.registry import codecs

Port = int


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Section):
    #: `sqlite+aiosqlite:///path.db` (created on first run) or `postgresql+asyncpg://user@host/db`.
    url: str = "sqlite+aiosqlite:///data/gateway.db"
    #: Most positions written in one transaction (group commit across connections).
    batch_max: int = Field(1000, ge=1, le=100_000)
    #: How long an item may wait, from its arrival, for others to join its batch (items that
    #: came while the batch before was written go at once). Under a paced load of 10,000
    #: positions/s, 20 ms instead of 5 made batches of ~300 instead of ~110 and took ~10 us
    #: less CPU per position on SQLite; ack p50 ~30 ms instead of ~15 (`bench/cpu.py`).
    batch_delay_ms: float = Field(20.0, ge=0, le=1000)
    #: Items received but not yet committed; beyond this, reading from devices pauses.
    queue_max: int = Field(50_000, ge=1)
    #: Batches written at the same time on PostgreSQL, each on its own connection (a slow
    #: commit then holds up only its own items). SQLite has a single writer: always 1 there.
    batch_concurrency: int = Field(2, ge=1, le=16)
    #: Raw frames kept per device for installer diagnostics.
    frames_per_device: int = Field(20, ge=0, le=1000)
    #: On SIGTERM, how long to keep trying to store what was received (the database may be
    #: away). What is still not stored after that was never acknowledged: devices resend it.
    shutdown_timeout_s: float = Field(30.0, ge=0)

    @field_validator("url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "use sqlite+aiosqlite:///FILE or postgresql+asyncpg://USER@HOST:PORT/DB"
            )
        return value


class TcpSettings(_Section):
    #: Address the device listeners bind to. 0.0.0.0 exposes them on every interface.
    host: str = "127.0.0.1"
    #: A port that tells the protocol from the first bytes; 0 disables it. (The port of each
    #: protocol is `protocols.<name>.port`.)
    auto_port: Port = Field(0, ge=0, le=65535)
    #: A connection with no bytes for this long is closed (devices send heartbeats).
    idle_timeout_s: float = Field(600.0, gt=0)
    #: A frame must be complete this many seconds after its first byte (a peer trickling
    #: bytes to hold a connection open is closed).
    frame_timeout_s: float = Field(20.0, gt=0)
    #: A connection that has not identified a device with a valid frame this many seconds after
    #: it opened is closed.
    identify_timeout_s: float = Field(60.0, gt=0)
    #: PROXY protocol header expected from the addresses in `trusted_proxies` (a TCP load
    #: balancer such as HAProxy in front of the gateway): "v1", "v2" or "off". The device's
    #: real address from the header is then used for limits, logs and the frames view.
    proxy_protocol: Literal["off", "v1", "v2"] = "off"
    #: Addresses or networks (CIDR) whose connections carry a PROXY header; connections from
    #: anywhere else are devices connecting directly.
    trusted_proxies: tuple[str, ...] = ()
    #: Longest frame accepted; longer ones are dropped and counted.
    max_frame_bytes: int = Field(4096, ge=64, le=1_048_576)
    #: Connections from one client address that have not yet identified a device with a valid
    #: frame. Identified devices never count (a mobile operator's NAT hides many devices behind
    #: one address); a new connection over the limit closes the oldest unidentified one.
    max_connections_per_addr: int = Field(1000, ge=1)
    #: Frames per second allowed on one connection (a burst of twice this is tolerated).
    max_frames_per_s: float = Field(200.0, gt=0)
    #: Frames a connection may have waiting for their commit before reading pauses.
    max_pending_per_connection: int = Field(1000, ge=1)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an address or network (CIDR)") from None
        return value

    @model_validator(mode="after")
    def _proxy_needs_trusted(self) -> TcpSettings:
        if self.proxy_protocol != "off" and not self.trusted_proxies:
            raise ValueError("tcp.proxy_protocol is on but tcp.trusted_proxies is empty: list "
                             "the load balancer's addresses (e.g. [\"10.0.0.5\"])")
        return self


@dataclasses.dataclass(frozen=True, slots=True)
class ProtocolSettings:
    """One protocol's table: its listener port (0: no listener) and its decoder options."""

    port: int
    #: An instance of the protocol's own options dataclass (`Codec.options`).
    options: Any


def protocol_tables() -> str:
    """The `[protocols.<name>]` tables of every registered protocol, with their defaults and
    documentation, as config/gateway.toml shows them (`gateway config protocols` prints it)."""
    out: list[str] = []
    for codec in codecs():
        lines = [f"[protocols.{codec.name}]", f"# {codec.title}.", f"port = {codec.default_port}"]
        for field in dataclasses.fields(codec.options):
            doc = str(field.metadata.get("doc", "")).strip()
            lines.extend(textwrap.wrap(doc, 98, initial_indent="# ", subsequent_indent="# "))
            lines.append(f"{field.name} = {_toml_value(field.default)}")
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


#: Where the legacy keys found during validation travel to the settings object.
_MOVED = "\0moved"


def _env(key: str) -> str:
    return "GATEWAY_" + key.upper().replace(".", "__")


def _protocol_settings(
    raw: Mapping[str, Any], legacy: Mapping[str, str] | None = None
) -> dict[str, ProtocolSettings]:
    """Validate `[protocols.<name>]` tables against the registry; every protocol gets one.

    `legacy` maps a new key (`protocols.<name>.port`) to the old one it was given as, so that an
    error names what the user actually wrote.
    """
    known = {codec.name: codec for codec in codecs()}
    problems: list[str] = []

    def where(key: str) -> str:
        old = (legacy or {}).get(key)
        given = f"; given as {old}, environment {_env(old)}" if old else ""
        return f"[environment {_env(key)}{given}]"

    for name in raw:
        if name not in known:
            problems.append(f"protocols.{name}: no such protocol (known: {', '.join(known)}) "
                            f"[environment {_env('protocols.' + str(name))}]")
    out: dict[str, ProtocolSettings] = {}
    for name, codec in known.items():
        table = raw.get(name) or {}
        if not isinstance(table, Mapping):
            problems.append(f"protocols.{name}: expected a table of keys (port, options)")
            continue
        values = dict(table)
        port = values.pop("port", codec.default_port)
        try:
            port = TypeAdapter(int).validate_python(port)
            if not 0 <= port <= 65535:
                raise ValueError("a port from 1 to 65535, or 0 for no listener")
        except (ValidationError, ValueError) as exc:
            problems.append(f"protocols.{name}.port: {_first_error(exc)} (got {port!r}) "
                            + where(f"protocols.{name}.port"))
            continue
        fields = {f.name for f in dataclasses.fields(codec.options)}
        for key in values:
            if key not in fields:
                allowed = ", ".join(["port", *sorted(fields)])
                problems.append(f"protocols.{name}.{key}: no such key (allowed: {allowed}) "
                                + where(f"protocols.{name}.{key}"))
        if any(key not in fields for key in values):
            continue
        try:
            options = TypeAdapter(codec.options).validate_python(values)
        except ValidationError as exc:
            for error in exc.errors():
                key = ".".join(["protocols", name, *(str(p) for p in error["loc"])])
                given = error.get("input")
                shown = "" if isinstance(given, dict) else f" (got {given!r})"
                problems.append(f"{key}: {_clean(error['msg'])}{shown} {where(key)}")
            continue
        out[name] = ProtocolSettings(port=port, options=options)
    if problems:
        raise ValueError("\n  ".join(problems))
    return out


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return _clean(exc.errors()[0]["msg"])
    return str(exc)


def _clean(message: str) -> str:
    return message.removeprefix("Value error, ")


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    port: Port = Field(8000, ge=0, le=65535)
    #: The address owners reach the web app at (printed in QR codes of claim labels; decides
    #: whether cookies are `Secure`: always, except for plain http on a loopback address).
    public_url: str = "http://127.0.0.1:8000"
    #: Peers whose `X-Forwarded-For` is believed (addresses or networks, e.g. "10.0.0.0/8").
    #: Empty: the client address is always the TCP peer's.
    trusted_proxies: list[str] = Field(default_factory=list)
    #: Largest request body accepted (JSON and forms); larger ones get 413 before being read.
    max_body_bytes: int = Field(65536, ge=1024)
    #: Largest CSV upload accepted by `POST /api/v1/admin/devices/import`.
    max_upload_bytes: int = Field(5 * 1024 * 1024, ge=1024)

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("use http(s)://HOST[:PORT], the address owners open in a browser")
        return value.rstrip("/")

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network "
                                 "(like 127.0.0.1 or 10.0.0.0/8)") from None
        return value



#: OpenStreetMap's standard tiles: fine for trying the gateway out; their usage policy
#: (https://operations.osmfoundation.org/policies/tiles/) asks heavy users to run their own.
OSM_TILE_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
OSM_ATTRIBUTION = ('&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> '
                   "contributors")
_TILE_HOST = re.compile(r"(\{s\}\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:[0-9]{1,5})?")
_TILE_PATH = re.compile(r"[A-Za-z0-9_.~/{}@%+?=&-]*")


class WebSettings(_Section):
    """The owner pages' map and live updates."""

    #: Map tiles of the device page: `{z}`, `{x}`, `{y}` (and optionally `{s}` as the host's
    #: first label, for the subdomains a, b, c, and `{r}` for "@2x" on high-density screens).
    #: Empty: no tiles (the track, points and scale still draw on a plain background). The
    #: page's Content-Security-Policy allows images from this host only.
    tile_url: str = OSM_TILE_URL
    #: Shown in the map's corner (HTML: the tile provider's licence asks for a link).
    tile_attribution: str = OSM_ATTRIBUTION
    #: Highest zoom level the tile server has.
    tile_max_zoom: int = Field(19, ge=1, le=22)
    #: Seconds between keep-alive comments on an idle live stream (proxies close silent
    #: connections); the owner's session and the device's binding are checked again each time.
    live_heartbeat_s: float = Field(15.0, gt=0, le=300)
    #: Events waiting for one slow browser; past this its stream gets a `reload` event and is
    #: closed (the page fetches what it missed and reconnects).
    live_queue_max: int = Field(256, ge=1, le=100_000)
    #: Live streams open on this instance at once; more get 503.
    live_max_streams: int = Field(1000, ge=1)
    #: Live streams of one owner open on this instance at once; more get 429.
    live_max_streams_per_owner: int = Field(10, ge=1)

    @field_validator("tile_url")
    @classmethod
    def _tile_url(cls, value: str) -> str:
        if not value:
            return value
        scheme, sep, rest = value.partition("://")
        host, _, path = rest.partition("/")
        if (scheme not in ("http", "https") or not sep or not _TILE_HOST.fullmatch(host)
                or not _TILE_PATH.fullmatch(path)
                or not all(f"{{{part}}}" in path for part in "zxy")):
            raise ValueError(
                "use http(s)://HOST/PATH with {z}, {x} and {y} in the path (and {s} only as the "
                "first label of the host), like https://tile.openstreetmap.org/{z}/{x}/{y}.png; "
                "or an empty string for no tiles")
        return value

    @property
    def tile_source(self) -> str | None:
        """The tile server as a Content-Security-Policy source (`{s}` becomes `*`), or None
        without tiles."""
        if not self.tile_url:
            return None
        scheme, _, rest = self.tile_url.partition("://")
        host = rest.partition("/")[0].replace("{s}", "*")
        return f"{scheme}://{host}".lower()


#: Shortest admin or metrics token accepted: a guessable token opens every device.
MIN_TOKEN_CHARS = 32


def _strong_token(value: str) -> str:
    if value and len(value) < MIN_TOKEN_CHARS:
        raise ValueError(f"a token needs at least {MIN_TOKEN_CHARS} characters (got "
                         f"{len(value)}): generate one with `python -c 'import secrets; "
                         "print(secrets.token_urlsafe(32))'`")
    return value


class AdminSettings(_Section):
    #: Bearer token for `/api/v1/admin/...` (at least 32 characters). Empty disables the
    #: admin API.
    token: str = ""
    #: Failed admin authentications per client address per minute before 429.
    max_failures_per_minute: int = Field(10, ge=1)

    @field_validator("token")
    @classmethod
    def _token(cls, value: str) -> str:
        return _strong_token(value)


class MetricsSettings(_Section):
    #: Bearer token for `/metrics` (at least 32 characters). Empty: `/metrics` is open.
    token: str = ""

    @field_validator("token")
    @classmethod
    def _token(cls, value: str) -> str:
        return _strong_token(value)


class MqttSettings(_Section):
    #: Take device frames from an MQTT broker too (`<topic_prefix>/<imei>/up`).
    enabled: bool = False
    #: `mqtt://HOST:PORT` or `mqtts://HOST:PORT` (TLS; port 8883 when omitted).
    url: str = "mqtt://127.0.0.1:1883"
    topic_prefix: str = "trackers"
    #: Non-empty: MQTT 5 shared subscription `$share/<group>/...`, so that several gateway
    #: instances split the device traffic, each message handled by one of them.
    shared_group: str = ""
    #: Client id at the broker. Empty: `tracker-gateway-<instance name>`, the same after a
    #: restart, so the instance finds its broker session (and the messages queued in it) again.
    #: Two instances must not share one.
    client_id: str = ""
    username: str = ""
    password: str = ""
    #: TLS (with mqtts://): CA bundle (empty: the system's), client certificate and key (empty:
    #: none), and whether to skip the server name check (never in production).
    tls_ca_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_insecure: bool = False
    #: QoS of the device-topic subscription. With 1 (or 2) a message is acknowledged to the
    #: broker only once its frames are committed; 0 lets the broker forget it at once.
    qos: Literal[0, 1, 2] = 1
    #: Seconds the broker keeps the gateway's session (its subscription, and the messages queued
    #: for it) while it is away: long enough to outlive a restart or an outage of the instance.
    session_expiry_s: int = Field(86400, ge=0)
    #: Messages the broker may have in flight to the gateway, waiting for their commit.
    receive_maximum: int = Field(1000, ge=1, le=65535)
    keepalive_s: int = Field(30, ge=5, le=3600)
    #: Reconnection back-off: first delay, doubled after each failure up to the maximum, each
    #: wait drawn at random between half and all of it (instances do not reconnect in step).
    #: Kept short: while the gateway is away, messages only wait if the broker kept its session.
    reconnect_initial_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(5.0, gt=0)
    #: Largest message accepted on a device topic (it may hold several frames).
    max_payload_bytes: int = Field(65536, ge=64)
    #: Publish bound devices' positions and alarms, and activation events, as JSON on
    #: `<events_prefix>/<imei>/events` (for integrators).
    publish_events: bool = False
    events_prefix: str = "gateway/devices"
    events_qos: Literal[0, 1] = 1

    @field_validator("url")
    @classmethod
    def _mqtt_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        try:
            parts.port  # noqa: B018 (validates the port)
        except ValueError as exc:
            raise ValueError(f"bad port in the MQTT URL ({exc})") from None
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("use mqtt://HOST:PORT or mqtts://HOST:PORT")
        return value

    @field_validator("topic_prefix", "events_prefix")
    @classmethod
    def _topic_prefix(cls, value: str) -> str:
        if (not value or value.startswith(("/", "$")) or value.endswith("/")
                or any(c in value for c in "+#\0")):
            raise ValueError("a topic without wildcards (+ #), not starting with / or $, "
                             "not ending with /")
        return value

    @field_validator("shared_group")
    @classmethod
    def _share_name(cls, value: str) -> str:
        if any(c in value for c in "/+#"):
            raise ValueError("a share name without / + #")
        return value


class NotifySettings(_Section):
    #: `outbox`: every message goes to the JSON-lines file `outbox_path` (development only: codes
    #: are written in clear). `email` or `sms`: real delivery, routed by the contact's kind
    #: (e-mail addresses over SMTP, phone numbers over the SMS provider).
    channel: Literal["outbox", "email", "sms"] = "outbox"
    outbox_path: str = "data/outbox.jsonl"
    #: Sender shown in e-mails and SMS.
    sender: str = "tracker-gateway <noreply@localhost>"
    #: Tries per message before the failure is recorded on the challenge.
    attempts: int = Field(3, ge=1, le=10)
    #: Seconds before the second try; doubled for each further try.
    retry_delay_s: float = Field(1.0, ge=0, le=60)
    #: SMTP server for e-mail delivery (empty host: e-mail cannot be delivered).
    smtp_host: str = ""
    smtp_port: Port = Field(587, ge=1, le=65535)
    smtp_username: str = ""
    smtp_password: str = ""
    #: `starttls`, `tls` (implicit, port 465) or `none` (local relays and tests only).
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_timeout_s: float = Field(10.0, gt=0)
    #: SMS provider endpoint (Twilio-shaped form POST: To, From, Body). Empty: no SMS delivery.
    sms_url: str = ""
    sms_username: str = ""
    sms_password: str = ""
    sms_timeout_s: float = Field(10.0, gt=0)


class ActivationSettings(_Section):
    #: Devices that nobody claimed, was bound to, locked or provisioned, not seen for this many
    #: days, are deleted with their frames and alarms (0: kept for ever). A device coming back
    #: later is a new unclaimed device again.
    forget_unclaimed_after_days: float = Field(30.0, ge=0)
    #: Proof of possession: `auto` (contact of record if any, else the claim key, else the
    #: device signal when `allow_device_signal`), or one forced: `contact_of_record`,
    #: `claim_key`, `device_signal`; or the lab-only `contact_only` (no proof at all).
    proof: Literal["auto", "contact_of_record", "claim_key", "device_signal",
                   "contact_only"] = "auto"
    #: Accept the device's own SOS frame as proof (weakest: see docs/activation.md). When
    #: false, no claim ever waits for a device signal.
    allow_device_signal: bool = False
    #: How long the claimant has to press the device's SOS button.
    signal_window_s: float = Field(300.0, gt=0, le=3600)
    #: The SOS counts only on the device's established connection: opened, and having sent a
    #: valid frame, before the claim started, and the only connection naming the device from
    #: this many seconds before the claim until the SOS (any other voids it).
    signal_exclusive_s: float = Field(600.0, ge=0, le=86400)
    #: Count an SOS that came through MQTT. Only where the broker authenticates each device
    #: so that a client can publish on its own topic only (an anonymous broker lets anyone
    #: publish any device's frames).
    signal_over_mqtt: bool = False
    #: How long a sent code stays valid.
    code_ttl_s: float = Field(600.0, gt=0, le=86400)
    #: 6 or 8.
    code_digits: int = 6
    #: Wrong codes that end a challenge.
    max_attempts: int = Field(5, ge=1, le=20)
    #: Sends (first one included) allowed per challenge within `resend_window_s`.
    max_sends: int = Field(5, ge=1, le=20)
    resend_window_s: float = Field(600.0, gt=0)
    #: Seconds between two sends of one challenge.
    resend_interval_s: float = Field(60.0, ge=0)
    #: Codes sent to one contact across all challenges, per 15 minutes and per day; beyond,
    #: nothing is sent (silently: the answer is the same), audited and counted.
    max_codes_per_destination_15min: int = Field(5, ge=1)
    max_codes_per_destination_day: int = Field(20, ge=1)
    #: Consecutive failed checks or wrong claim keys on one device that lock its claiming.
    device_lock_failures: int = Field(100, ge=1)
    #: Consecutive wrong authenticator-app codes on one account after which the app is refused
    #: until the owner proves their contact again (a code sent to it, for a sign-in).
    totp_lock_failures: int = Field(100, ge=1)
    #: How long the 1st, 2nd, ... lock of a device lasts; the last value repeats.
    lock_durations_s: list[float] = Field(default_factory=lambda: [3600.0, 14400.0, 86400.0],
                                          min_length=1)
    #: Failed checks per account (contact) and per client address within `failure_window_s`.
    max_failures_per_account: int = Field(20, ge=1)
    max_failures_per_client: int = Field(50, ge=1)
    failure_window_s: float = Field(3600.0, gt=0)
    #: Claims and sign-ins started per client address per minute (then 429).
    starts_per_minute_per_client: int = Field(20, ge=1)
    #: Key of HMAC(key, challenge id + code) and of claim keys, and the root of the key that
    #: encrypts TOTP secrets. Empty: read from `server_key_file`, which is created with a
    #: random key on first start. Several gateway instances must share one key.
    server_key: str = ""
    server_key_file: str = "data/server.key"
    #: Lifetime of a signed-in owner's web session.
    session_ttl_s: float = Field(30 * 86400.0, gt=0)

    @field_validator("code_digits", mode="before")
    @classmethod
    def _digits(cls, value: object) -> object:
        # Environment values arrive as text ("8"); the TOML file gives an integer.
        if isinstance(value, str) and value.strip() in ("6", "8"):
            return int(value.strip())
        if value not in (6, 8) or isinstance(value, bool):
            raise ValueError("Input should be 6 or 8")
        return value

    @field_validator("lock_durations_s")
    @classmethod
    def _durations(cls, value: list[float]) -> list[float]:
        if any(d <= 0 for d in value):
            raise ValueError("every lock duration must be more than 0 seconds")
        return value

    @model_validator(mode="after")
    def _signal_allowed(self) -> ActivationSettings:
        if self.proof == "device_signal" and not self.allow_device_signal:
            raise ValueError("proof = \"device_signal\" needs allow_device_signal = true "
                             "(activation.allow_device_signal, "
                             "GATEWAY_ACTIVATION__ALLOW_DEVICE_SIGNAL)")
        return self


class CommandSettings(_Section):
    #: Seconds a command waits for its device (offline, or connected to no instance) before
    #: it expires unsent.
    ttl_s: float = Field(86400.0, gt=0, le=30 * 86400)
    #: Seconds after a command was sent during which an answer of the device is taken as its
    #: answer; a command unanswered by then stays "sent".
    answer_window_s: float = Field(300.0, gt=0, le=86400)
    #: Seconds between two looks, by each instance, for commands queued elsewhere (another
    #: instance, `gateway command`) for the devices connected to it.
    poll_s: float = Field(2.0, ge=0.1, le=60)
    #: Commands an owner may ask of one device per minute (then 429 with Retry-After).
    max_per_minute: int = Field(20, ge=1, le=1000)


class AlarmSettings(_Section):
    #: Tell a bound device's owner of its alarms (SOS and every other alarm type), through
    #: the notify channel (purpose "alarm").
    notify: bool = True
    #: Per device and alarm type, at most one message per this many seconds; alarms in between
    #: are stored and shown, not sent.
    min_interval_s: float = Field(300.0, ge=0, le=86400)
    #: Per device, at most this many messages an hour over every alarm type but SOS (0: no
    #: cap): a device, or anybody sending frames in its name, cannot flood its owner with one
    #: message per type. SOS messages are never capped by it.
    max_per_device_hour: int = Field(6, ge=0, le=1000)
    #: Alarm types stored and shown but never sent: routine events many trackers report as
    #: alarms. SOS cannot be one of them.
    quiet_types: list[str] = Field(
        default_factory=lambda: ["power_on", "ignition_on", "ignition_off"])

    @field_validator("quiet_types")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        from protocols import AlarmType

        known = {kind.value for kind in AlarmType}
        unknown = [kind for kind in value if kind not in known]
        if unknown:
            raise ValueError(f"unknown alarm types {unknown}: use some of {sorted(known)}")
        if "sos" in value:
            raise ValueError("an SOS is always told: remove 'sos' from alarms.quiet_types")
        return value


class InstanceSettings(_Section):
    #: This gateway's name in logs, metrics and published events, and in its default MQTT
    #: client id. Empty: `<host name>-<http port>`, stable across restarts and distinct for
    #: instances on one host. (`gateway run --instance-name NAME` sets it too.)
    name: str = Field("", max_length=64)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if value and not all(c.isascii() and (c.isalnum() or c in "-_.") for c in value):
            raise ValueError("letters, digits, '-', '_' and '.' only")
        return value


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: `json` for one JSON object per line, `text` for humans.
    format: Literal["json", "text"] = "text"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    database: DatabaseSettings = DatabaseSettings()
    tcp: TcpSettings = TcpSettings()
    http: HttpSettings = HttpSettings()
    admin: AdminSettings = AdminSettings()
    metrics: MetricsSettings = MetricsSettings()
    mqtt: MqttSettings = MqttSettings()
    notify: NotifySettings = NotifySettings()
    activation: ActivationSettings = ActivationSettings()
    commands: CommandSettings = CommandSettings()
    alarms: AlarmSettings = AlarmSettings()
    instance: InstanceSettings = InstanceSettings()
    log: LogSettings = LogSettings()
    web: WebSettings = WebSettings()
    #: `[protocols.<name>]`: port and options of each registered protocol.
    protocols: dict[str, Any] = Field(default_factory=dict, validate_default=True)

    # Set by load_settings() for the duration of one construction.
    _toml_file: ClassVar[Path | None] = None
    #: Keys of the previous release that were used, each with the key that replaces it.
    _deprecations: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _move_legacy_keys(cls, data: Any) -> Any:
        """`tcp.<protocol>_<key>` of the previous release becomes `protocols.<protocol>.<key>`
        (the new key wins when both are given)."""
        if not isinstance(data, dict) or not isinstance(data.get("tcp"), Mapping):
            return data
        tcp = dict(data["tcp"])
        protocols = {name: dict(table) if isinstance(table, Mapping) else table
                     for name, table in (data.get("protocols") or {}).items()}
        moved: list[tuple[str, str]] = []
        for key in list(tcp):
            for codec in codecs():
                prefix = codec.name + "_"
                if not key.startswith(prefix):
                    continue
                option = key[len(prefix):]
                table = protocols.setdefault(codec.name, {})
                if isinstance(table, dict):
                    table.setdefault(option, tcp[key])
                moved.append((f"tcp.{key}", f"protocols.{codec.name}.{option}"))
                del tcp[key]
                break
        if not moved:
            return data
        protocols[_MOVED] = moved
        return {**data, "tcp": tcp, "protocols": protocols}

    @field_validator("protocols", mode="after")
    @classmethod
    def _protocols(cls, value: dict[str, Any]) -> dict[str, Any]:
        moved = value.pop(_MOVED, None)
        legacy = {new: old for old, new in moved or ()}
        out: dict[str, Any] = dict(_protocol_settings(value, legacy))
        if moved:
            out[_MOVED] = moved
        return out

    @model_validator(mode="after")
    def _keep_deprecations(self) -> Settings:
        for old, new in self.protocols.pop(_MOVED, None) or ():
            self._deprecations.append(
                f"{old} ({_env(old)}) is deprecated and will be removed in the next release: "
                f"use {new} ({_env(new)})")
        return self

    def instance_name(self, http_port: int | None = None) -> str:
        """`instance.name`, or `<host name>-<http port>` when it is empty (`http_port`: the
        port actually bound, when http.port is 0)."""
        if self.instance.name:
            return self.instance.name
        host = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "-"
                       for c in socket.gethostname()) or "gateway"
        return f"{host}-{http_port or self.http.port}"

    @property
    def deprecations(self) -> list[str]:
        """Warnings about keys of the previous release that were used (logged at start)."""
        return list(self._deprecations)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls._toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls._toml_file))
        return tuple(sources)


class ConfigError(Exception):
    """The configuration is wrong; the message says which key and what is allowed."""


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Read the settings: defaults, then the TOML file, then `GATEWAY_*` environment variables.

    `path` defaults to `$GATEWAY_CONFIG` when set. `overrides` (section -> dict) win over all
    (used by tests and the CLI).
    """
    if path is None and os.environ.get("GATEWAY_CONFIG"):
        path = os.environ["GATEWAY_CONFIG"]
    toml_file = Path(path) if path is not None else None
    if toml_file is not None and not toml_file.is_file():
        raise ConfigError(f"configuration file {toml_file} does not exist")
    Settings._toml_file = toml_file
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    except ValueError as exc:  # malformed TOML or an environment value that is not JSON-like
        raise ConfigError(f"cannot read the configuration: {exc}") from None
    finally:
        Settings._toml_file = None


def _describe(exc: ValidationError) -> str:
    lines = ["invalid configuration:"]
    for error in exc.errors():
        if tuple(error["loc"]) == ("protocols",):  # already names each key and variable
            lines.append("  " + _clean(error["msg"]))
            continue
        key = ".".join(str(part) for part in error["loc"])
        env = "GATEWAY_" + "__".join(str(part).upper() for part in error["loc"])
        given = error.get("input")
        shown = "" if isinstance(given, dict) else f" (got {given!r})"
        lines.append(f"  {key}: {error['msg']}{shown} [file key {key}, environment {env}]")
    return "\n".join(lines)
