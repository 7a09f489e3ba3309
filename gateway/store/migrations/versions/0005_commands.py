"""Commands to devices (issue 14): `device_commands`, one row per command from its request to
the device's answer, with a partial index on the queued ones that every instance polls.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.store.models import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "device_commands",
        sa.Column("id", _ID, nullable=False),
        sa.Column("device_id", _ID, nullable=False),
        sa.Column("binding_id", _ID, nullable=True),
        sa.Column("type", sa.String(24), nullable=False),
        sa.Column("interval_s", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(16), nullable=False),
        sa.Column("owner_id", _ID, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("sent_by", sa.String(64), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        sa.Column("answered_at", UTCDateTime(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"],
                                name="fk_device_commands_device_id_devices"),
        sa.ForeignKeyConstraint(["binding_id"], ["bindings.id"],
                                name="fk_device_commands_binding_id_bindings"),
        sa.PrimaryKeyConstraint("id", name="pk_device_commands"),
    )
    op.create_index("ix_device_commands_device_id_id", "device_commands", ["device_id", "id"])
    op.create_index("ix_device_commands_queued", "device_commands", ["id"],
                    postgresql_where=sa.text("status = 'queued'"),
                    sqlite_where=sa.text("status = 'queued'"))


def downgrade() -> None:
    op.drop_index("ix_device_commands_queued", table_name="device_commands")
    op.drop_index("ix_device_commands_device_id_id", table_name="device_commands")
    op.drop_table("device_commands")
