"""All settings of the gateway, in one place.

Precedence, lowest first: the defaults in this module (documented, with the same values, in
`config/gateway.toml`), the TOML file given with `--config` (or `GATEWAY_CONFIG`), then environment
variables `GATEWAY_<SECTION>__<KEY>` (for example `GATEWAY_TCP__GL300_PORT=15004`).
A wrong value stops start-up with a message that names the key and what is allowed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

Port = int


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Section):
    #: `sqlite+aiosqlite:///path.db` (created on first run) or `postgresql+asyncpg://user@host/db`.
    url: str = "sqlite+aiosqlite:///data/gateway.db"
    #: Most positions written in one transaction (group commit across connections).
    batch_max: int = Field(1000, ge=1, le=100_000)
    #: How long the first item of a batch waits for others before the batch is written.
    batch_delay_ms: float = Field(5.0, ge=0, le=1000)
    #: Items received but not yet committed; beyond this, reading from devices pauses.
    queue_max: int = Field(50_000, ge=1)
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
    #: Port per protocol; 0 disables that listener.
    gps103_port: Port = Field(5001, ge=0, le=65535)
    tk103_port: Port = Field(5002, ge=0, le=65535)
    gl300_port: Port = Field(5004, ge=0, le=65535)
    #: A port that tells the protocol from the first bytes; 0 disables it.
    auto_port: Port = Field(0, ge=0, le=65535)
    #: A connection with no bytes for this long is closed (devices send heartbeats).
    idle_timeout_s: float = Field(600.0, gt=0)
    #: Longest frame accepted; longer ones are dropped and counted.
    max_frame_bytes: int = Field(4096, ge=64, le=1_048_576)
    #: Concurrent connections from one client address (a GPRS NAT can hide many devices).
    max_connections_per_addr: int = Field(1000, ge=1)
    #: Frames per second allowed on one connection (a burst of twice this is tolerated).
    max_frames_per_s: float = Field(200.0, gt=0)
    #: Frames a connection may have waiting for their commit before reading pauses.
    max_pending_per_connection: int = Field(1000, ge=1)
    #: Answer every Queclink message with `+SACK:<count>$` (device-side "SACK enable").
    gl300_sack: bool = False


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    port: Port = Field(8000, ge=0, le=65535)


class AdminSettings(_Section):
    #: Bearer token for `/api/v1/admin/...`. Empty disables the admin API.
    token: str = ""


class MqttSettings(_Section):
    enabled: bool = False
    url: str = "mqtt://127.0.0.1:1883"
    topic_prefix: str = "trackers"
    shared_group: str = ""


class NotifySettings(_Section):
    channel: Literal["outbox", "email", "sms"] = "outbox"
    outbox_path: str = "data/outbox.jsonl"


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
    mqtt: MqttSettings = MqttSettings()
    notify: NotifySettings = NotifySettings()
    log: LogSettings = LogSettings()

    # Set by load_settings() for the duration of one construction.
    _toml_file: ClassVar[Path | None] = None

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
        key = ".".join(str(part) for part in error["loc"])
        env = "GATEWAY_" + "__".join(str(part).upper() for part in error["loc"])
        given = error.get("input")
        shown = "" if isinstance(given, dict) else f" (got {given!r})"
        lines.append(f"  {key}: {error['msg']}{shown} [file key {key}, environment {env}]")
    return "\n".join(lines)
