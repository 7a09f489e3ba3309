"""Tables of the gateway store, as typed declarative models.

The write path (`ingest.py`) uses these tables through SQLAlchemy Core for speed; the models are
the single definition of the schema, which the Alembic migrations mirror.

Every timestamp is a timezone-aware UTC datetime on the way in and on the way out, on both
dialects (`UTCDateTime`).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Double,
    Enum,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every dialect.

    PostgreSQL stores `timestamptz`. SQLite has no datetime type: values are stored as naive UTC
    text in one fixed format (so text order is time order, which the upsert comparisons and the
    UNIQUE(device, fix_time) key rely on) and come back with tzinfo=UTC. Naive datetimes are
    refused rather than guessed: a local time taken for UTC would silently shift history.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the store only takes aware datetimes")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


#: Row ids: 64-bit on PostgreSQL; INTEGER on SQLite, where only `INTEGER PRIMARY KEY` is the
#: auto-incrementing rowid (and SQLite integers are 64-bit anyway).
BigId = BigInteger().with_variant(Integer(), "sqlite")

#: Attributes of a position: JSONB on PostgreSQL (compact, indexable later), JSON text elsewhere.
JsonDict = JSON().with_variant(JSONB(), "postgresql")

#: Stable constraint names, so that later migrations can refer to them on both dialects.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base: naming convention and the datetime / JSON column types."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 (SQLAlchemy reads this class attribute)
        datetime: UTCDateTime(),
        dict[str, Any]: JsonDict,
        float: Double(),
    }


class DeviceState(enum.StrEnum):
    """Where a device is in its life: nobody's, somebody's, or held back (activation feature)."""

    UNCLAIMED = "unclaimed"
    CLAIMED = "claimed"
    LOCKED = "locked"


class Device(Base):
    """A tracker the gateway has heard from, registered unclaimed on its first frame."""

    __tablename__ = "devices"
    __table_args__ = (
        CheckConstraint("length(imei) BETWEEN 1 AND 15", name="imei_length"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: The device id string of the protocol (IMEI, or the 12-character TK103 id).
    imei: Mapped[str] = mapped_column(String(15), unique=True)
    protocol: Mapped[str] = mapped_column(String(16))
    state: Mapped[DeviceState] = mapped_column(
        Enum(
            DeviceState,
            native_enum=False,
            create_constraint=True,
            length=16,
            name="state",
            values_callable=lambda states: [state.value for state in states],
            validate_strings=True,
        ),
        default=DeviceState.UNCLAIMED,
    )
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    last_fix_time: Mapped[datetime | None]
    last_lat: Mapped[float | None]
    last_lon: Mapped[float | None]
    last_speed_kmh: Mapped[float | None]
    last_course_deg: Mapped[float | None]
    last_valid: Mapped[bool | None]
    #: The contact proven to hold the device (activation feature); nullable until then.
    contact_of_record: Mapped[str | None] = mapped_column(String(255))
    #: The open binding, if any (denormalised from `bindings` so the write path needs no join).
    current_binding_id: Mapped[int | None] = mapped_column(
        ForeignKey("bindings.id", use_alter=True)
    )
    #: Frames received so far: the next raw frame goes to ring slot `frame_seq % N`.
    frame_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    #: The IMEI the device's own login reported, when it names itself otherwise on the wire
    #: (a JT/T 808 terminal phone): a claim by that IMEI finds the device.
    reported_imei: Mapped[str | None] = mapped_column(String(15), index=True)


class Owner(Base):
    """Somebody who can hold devices, identified by a contact (e-mail or phone number)."""

    __tablename__ = "owners"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: Normalised: a lower-case e-mail address or an E.164 phone number (`+4915...`).
    contact: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime]
    #: Secret of the owner's authenticator app once enrolled and confirmed, encrypted with a key
    #: derived from the server key (`gateway.activation.sealed`), never in clear.
    totp_secret: Mapped[str | None] = mapped_column(String(255))
    #: Secret shown as a QR code, waiting for its first code to confirm the enrolment
    #: (encrypted the same way).
    totp_pending_secret: Mapped[str | None] = mapped_column(String(255))
    #: The last TOTP time step accepted for this owner: that step and earlier ones are refused
    #: (a code is used once, RFC 6238 5.2).
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)


class Binding(Base):
    """A period during which a device belongs to an owner. `ended_at` is NULL while open."""

    __tablename__ = "bindings"
    __table_args__ = (
        # Target of the positions' (binding_id, device_id) key.
        UniqueConstraint("id", "device_id"),
        # At most one open binding per device, enforced by the database itself.
        Index(
            "uq_bindings_open_device",
            "device_id",
            unique=True,
            postgresql_where=text("ended_at IS NULL"),
            sqlite_where=text("ended_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), index=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id"), index=True)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class StoredPosition(Base):
    """A fix of a bound device, attached to the binding it was received under."""

    __tablename__ = "positions"
    __table_args__ = (
        # A device resending after a lost ack is stored once (ON CONFLICT DO NOTHING).
        UniqueConstraint("device_id", "fix_time"),
        # One key for both ids: a position can only name a binding of its own device, and
        # PostgreSQL runs one foreign-key check per inserted row instead of two.
        ForeignKeyConstraint(["binding_id", "device_id"], ["bindings.id", "bindings.device_id"]),
        CheckConstraint("lat BETWEEN -90 AND 90", name="lat_range"),
        CheckConstraint("lon BETWEEN -180 AND 180", name="lon_range"),
        # No index of its own on binding_id: a binding's positions are read through the
        # (device_id, fix_time) key (migration 0006 says why).
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    device_id: Mapped[int] = mapped_column(BigId)
    binding_id: Mapped[int] = mapped_column(BigId)
    fix_time: Mapped[datetime]
    received_at: Mapped[datetime]
    lat: Mapped[float]
    lon: Mapped[float]
    valid: Mapped[bool]
    speed_kmh: Mapped[float | None]
    course_deg: Mapped[float | None]
    altitude_m: Mapped[float | None]
    satellites: Mapped[int | None]
    hdop: Mapped[float | None]
    attributes: Mapped[dict[str, Any] | None]


class StoredAlarm(Base):
    """An alarm a device reported; `binding_id` is NULL when the device was not bound."""

    __tablename__ = "alarms"
    __table_args__ = (
        # Resent alarms (lost ack) are stored once; event_time falls back to the fix time or
        # the receive time, so it is never NULL.
        UniqueConstraint("device_id", "alarm_type", "event_time"),
        Index("ix_alarms_binding_id_event_time", "binding_id", "event_time"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    binding_id: Mapped[int | None] = mapped_column(ForeignKey("bindings.id"))
    alarm_type: Mapped[str] = mapped_column(String(32))
    raw_code: Mapped[str] = mapped_column(Text)
    event_time: Mapped[datetime]
    lat: Mapped[float | None]
    lon: Mapped[float | None]
    received_at: Mapped[datetime]


class DeviceFrame(Base):
    """One slot of a device's ring of recent raw frames (installer diagnostics).

    The ring has N slots per device; frame number `seq` goes to slot `seq % N`, overwriting the
    oldest. So the table never holds more than N rows per device and trimming costs nothing: no
    DELETE, no scan, just an upsert on the primary key.
    """

    __tablename__ = "device_frames"

    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: The device's frame number (1, 2, ...): newest first is `ORDER BY seq DESC`.
    seq: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[datetime]
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    #: "ok" or "rejected: <reason>".
    result: Mapped[str] = mapped_column(Text)


class ProvisionedDevice(Base):
    """A contact of record registered by a dealer or installer for a 15-digit IMEI.

    Kept apart from `devices` because a device is usually provisioned before it ever connects
    (and a fixed-layout TK103 unit never sends its full IMEI): the claim looks the contact up by
    the IMEI the owner types.
    """

    __tablename__ = "provisioned_devices"

    imei: Mapped[str] = mapped_column(String(15), primary_key=True)
    #: The buyer's contact (codes go there, the device is bound to its account); or NULL.
    contact: Mapped[str | None] = mapped_column(String(255))
    provisioned_at: Mapped[datetime]
    #: HMAC(server key, IMEI + claim key) of the key printed on the device's label, or NULL.
    claim_key_hmac: Mapped[str | None] = mapped_column(String(64))
    #: The id the device names itself by on the wire when it is not the IMEI and the device
    #: does not report its IMEI (a JT/T 808 terminal phone): recorded by the installer.
    wire_id: Mapped[str | None] = mapped_column(String(15), index=True)


class DeviceLink(Base):
    """A connection (or MQTT stream) that named a device: when it opened, when it first and
    last named it (the last time to within a minute), from where and through which instance.

    The device-signal proof (rule 23) counts an SOS only on the device's established
    connection: the one link that named the device from 10 minutes before a claim until the
    signal. Rows older than a day are removed by the activation upkeep.
    """

    __tablename__ = "device_links"
    __table_args__ = (Index("ix_device_links_device_id_last_frame_at", "device_id",
                            "last_frame_at"),)

    #: `<instance>:<random>`: unique across instances.
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    transport: Mapped[str] = mapped_column(String(8))
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    opened_at: Mapped[datetime]
    first_frame_at: Mapped[datetime]
    last_frame_at: Mapped[datetime]


class ServerSecret(Base):
    """Secrets every instance must share (the server key), created once by `gateway db
    upgrade` on PostgreSQL so that several instances read the same one."""

    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]


class DeviceLock(Base):
    """Self-service claiming of an IMEI held back after too many failures (rules 7, 31).

    A lock lapses by itself at `locked_until`; each new lock of the same IMEI lasts longer
    (`activation.lock_durations_s`). `locks` counts them until a successful claim.
    """

    __tablename__ = "device_locks"

    imei: Mapped[str] = mapped_column(String(15), primary_key=True)
    locks: Mapped[int] = mapped_column(Integer)
    locked_at: Mapped[datetime]
    locked_until: Mapped[datetime]


class Challenge(Base):
    """One one-time-code flow: a claim (`activation`), a sign-in or a release.

    The code itself is never stored: only HMAC(server key, id + code) in `code_hmac`, and the
    client's secret token only as its SHA-256.
    """

    __tablename__ = "challenges"
    __table_args__ = (Index("ix_challenges_status_imei", "status", "imei"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16))
    #: The IMEI typed by the claimant (activation, release), else NULL.
    imei: Mapped[str | None] = mapped_column(String(15))
    #: Where codes of this challenge go (contact of record, claimant, or owner).
    deliver_to: Mapped[str] = mapped_column(String(255))
    #: The claimant's own contact: the account the device is bound to (activation).
    claimant: Mapped[str] = mapped_column(String(255))
    #: How possession is proven: contact_of_record, claim_key, device_signal, contact_only,
    #: none (nothing can prove it: never succeeds), owner, totp.
    proof: Mapped[str] = mapped_column(String(24))
    #: The claimant typed a claim key (the hint they see depends only on what they typed).
    with_key: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    #: True when the flow can never succeed (owned or locked device, unknown account): it
    #: answers like the others but sends nothing.
    decoy: Mapped[bool]
    token_hash: Mapped[str] = mapped_column(String(64))
    code_hmac: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer)
    max_attempts: Mapped[int] = mapped_column(Integer)
    sends: Mapped[int] = mapped_column(Integer)
    sends_window_start: Mapped[datetime | None]
    last_sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    #: End of the device-signal window, then of the current code's validity.
    expires_at: Mapped[datetime]
    client_addr: Mapped[str | None] = mapped_column(String(64))
    #: Delivery of the last code: sending, sent, failed (with `delivery_error`) or capped
    #: (not sent: the destination had too many codes).
    delivery: Mapped[str | None] = mapped_column(String(16))
    delivery_error: Mapped[str | None] = mapped_column(Text)


class WebSession(Base):
    """A signed-in owner; the cookie holds a random token, the table only its SHA-256."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class AuditEntry(Base):
    """Who started, sent, checked, claimed, released or unlocked what; never a code."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    action: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(32))
    imei: Mapped[str | None] = mapped_column(String(15))
    owner_id: Mapped[int | None] = mapped_column(BigId)
    challenge_id: Mapped[str | None] = mapped_column(String(32))
    client_addr: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None]


class FailureCounter(Base):
    """Failed checks (and started flows) per scope and key, for locks, caps and rate limits.

    Scopes: `device` (consecutive failures, never windowed), `account`, `client` (failures in a
    window), `start` (flows started by a client address in a minute), `dest_15min`,
    `dest_day` (codes sent to one contact), `owner_15min`, `owner_day` (codes a signed-in owner
    asked for, to their own contact), `totp` (consecutive wrong authenticator-app codes of an
    account, never windowed), `admin` (failed admin authentications).
    """

    __tablename__ = "failure_counters"

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[datetime]


class DeviceCommand(Base):
    """A command for a device, from its request to the device's answer.

    `status`: queued (waiting for the device, until `expires_at`), sent (written to the device's
    open stream or published on its MQTT down topic; `payload` holds the bytes), acknowledged
    or failed (the device's answer, in `result`; or why it could not be sent), expired (never
    sent in time). `binding_id` is the binding it was asked under: only that owner sees it, and
    it is not sent once the device has changed hands.
    """

    __tablename__ = "device_commands"
    __table_args__ = (
        Index("ix_device_commands_device_id_id", "device_id", "id"),
        # What every instance polls for: the few commands still waiting.
        Index("ix_device_commands_queued", "id",
              postgresql_where=text("status = 'queued'"),
              sqlite_where=text("status = 'queued'")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    binding_id: Mapped[int | None] = mapped_column(ForeignKey("bindings.id"))
    #: A `protocols.CommandType` value.
    type: Mapped[str] = mapped_column(String(24))
    interval_s: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    #: `owner`, `admin` (API) or `cli`.
    requested_by: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    #: The instance that sent it.
    sent_by: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[bytes | None] = mapped_column(LargeBinary)
    answered_at: Mapped[datetime | None]
    #: The device's answer (text), or why the command failed.
    result: Mapped[str | None] = mapped_column(Text)
