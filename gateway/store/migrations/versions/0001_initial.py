"""Initial schema: devices, owners, bindings, positions, alarms, device_frames.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.store.models import BigId, JsonDict, UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DEVICE_BINDING_FK = "fk_devices_current_binding_id_bindings"


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    # devices.current_binding_id and bindings.device_id refer to each other. PostgreSQL needs
    # the target table to exist, so that key is added once both tables are there; SQLite
    # cannot add a constraint later, but accepts a key to a table it has not seen yet.
    device_binding_fk = (
        [sa.ForeignKeyConstraint(["current_binding_id"], ["bindings.id"], name=_DEVICE_BINDING_FK)]
        if sqlite
        else []
    )
    op.create_table(
        "devices",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("imei", sa.String(15), nullable=False),
        sa.Column("protocol", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("first_seen", UTCDateTime(), nullable=False),
        sa.Column("last_seen", UTCDateTime(), nullable=False),
        sa.Column("remote_addr", sa.String(64), nullable=True),
        sa.Column("last_fix_time", UTCDateTime(), nullable=True),
        sa.Column("last_lat", sa.Double(), nullable=True),
        sa.Column("last_lon", sa.Double(), nullable=True),
        sa.Column("last_speed_kmh", sa.Double(), nullable=True),
        sa.Column("last_course_deg", sa.Double(), nullable=True),
        sa.Column("last_valid", sa.Boolean(), nullable=True),
        sa.Column("contact_of_record", sa.String(255), nullable=True),
        sa.Column("current_binding_id", BigId, nullable=True),
        sa.Column("frame_seq", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_devices"),
        sa.UniqueConstraint("imei", name="uq_devices_imei"),
        sa.CheckConstraint("length(imei) BETWEEN 1 AND 15", name=op.f("ck_devices_imei_length")),
        sa.CheckConstraint(
            "state IN ('unclaimed', 'claimed', 'locked')", name=op.f("ck_devices_state")
        ),
        *device_binding_fk,
    )
    op.create_table(
        "owners",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("contact", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_owners"),
        sa.UniqueConstraint("contact", name="uq_owners_contact"),
    )
    op.create_table(
        "bindings",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("device_id", BigId, nullable=False),
        sa.Column("owner_id", BigId, nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_bindings"),
        sa.UniqueConstraint("id", "device_id", name="uq_bindings_id_device_id"),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name="fk_bindings_device_id_devices"
        ),
        sa.ForeignKeyConstraint(["owner_id"], ["owners.id"], name="fk_bindings_owner_id_owners"),
    )
    op.create_index("ix_bindings_device_id", "bindings", ["device_id"])
    op.create_index("ix_bindings_owner_id", "bindings", ["owner_id"])
    op.create_index(
        "uq_bindings_open_device",
        "bindings",
        ["device_id"],
        unique=True,
        postgresql_where=sa.text("ended_at IS NULL"),
        sqlite_where=sa.text("ended_at IS NULL"),
    )
    if not sqlite:
        op.create_foreign_key(
            _DEVICE_BINDING_FK, "devices", "bindings", ["current_binding_id"], ["id"]
        )
    op.create_table(
        "positions",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("device_id", BigId, nullable=False),
        sa.Column("binding_id", BigId, nullable=False),
        sa.Column("fix_time", UTCDateTime(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("lat", sa.Double(), nullable=False),
        sa.Column("lon", sa.Double(), nullable=False),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("speed_kmh", sa.Double(), nullable=True),
        sa.Column("course_deg", sa.Double(), nullable=True),
        sa.Column("altitude_m", sa.Double(), nullable=True),
        sa.Column("satellites", sa.Integer(), nullable=True),
        sa.Column("hdop", sa.Double(), nullable=True),
        sa.Column("attributes", JsonDict, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_positions"),
        # One key for both: a position names a binding of its own device, one check per row.
        sa.ForeignKeyConstraint(
            ["binding_id", "device_id"],
            ["bindings.id", "bindings.device_id"],
            name="fk_positions_binding_id_bindings",
        ),
        sa.UniqueConstraint("device_id", "fix_time", name="uq_positions_device_id_fix_time"),
        sa.CheckConstraint("lat BETWEEN -90 AND 90", name=op.f("ck_positions_lat_range")),
        sa.CheckConstraint("lon BETWEEN -180 AND 180", name=op.f("ck_positions_lon_range")),
    )
    op.create_index(
        "ix_positions_binding_id_fix_time", "positions", ["binding_id", "fix_time"]
    )
    op.create_table(
        "alarms",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("device_id", BigId, nullable=False),
        sa.Column("binding_id", BigId, nullable=True),
        sa.Column("alarm_type", sa.String(32), nullable=False),
        sa.Column("raw_code", sa.Text(), nullable=False),
        sa.Column("event_time", UTCDateTime(), nullable=False),
        sa.Column("lat", sa.Double(), nullable=True),
        sa.Column("lon", sa.Double(), nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alarms"),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name="fk_alarms_device_id_devices"),
        sa.ForeignKeyConstraint(
            ["binding_id"], ["bindings.id"], name="fk_alarms_binding_id_bindings"
        ),
        sa.UniqueConstraint(
            "device_id",
            "alarm_type",
            "event_time",
            name="uq_alarms_device_id_alarm_type_event_time",
        ),
    )
    op.create_index("ix_alarms_binding_id_event_time", "alarms", ["binding_id", "event_time"])
    op.create_table(
        "device_frames",
        sa.Column("device_id", BigId, nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("remote_addr", sa.String(64), nullable=True),
        sa.Column("result", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "slot", name="pk_device_frames"),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name="fk_device_frames_device_id_devices"
        ),
    )


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.drop_table("device_frames")
    op.drop_table("alarms")
    op.drop_table("positions")
    if not sqlite:
        op.drop_constraint(_DEVICE_BINDING_FK, "devices", type_="foreignkey")
    op.drop_table("bindings")
    op.drop_table("owners")
    op.drop_table("devices")
