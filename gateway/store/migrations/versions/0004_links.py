"""Several instances and device identities.

* `device_links`: which connection (or MQTT stream) named a device, and when (rule 23: the
  device signal counts only on the device's established connection).
* `server_secrets`: the server key, created once in the database so that every instance of a
  PostgreSQL deployment uses the same one.
* `devices.reported_imei` (the IMEI a device's login reported while it names itself otherwise
  on the wire) and `provisioned_devices.wire_id` (that id, recorded by an installer for a device
  that does not report its IMEI): a claim by IMEI finds such devices.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.store.models import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "device_links",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("device_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  nullable=False),
        sa.Column("transport", sa.String(8), nullable=False),
        sa.Column("remote_addr", sa.String(64), nullable=True),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("first_frame_at", UTCDateTime(), nullable=False),
        sa.Column("last_frame_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"],
                                name="fk_device_links_device_id_devices"),
        sa.PrimaryKeyConstraint("id", name="pk_device_links"),
    )
    op.create_index("ix_device_links_device_id_last_frame_at", "device_links",
                    ["device_id", "last_frame_at"])
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_server_secrets"),
    )
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("reported_imei", sa.String(15), nullable=True))
        batch.create_index("ix_devices_reported_imei", ["reported_imei"])
    with op.batch_alter_table("provisioned_devices") as batch:
        batch.add_column(sa.Column("wire_id", sa.String(15), nullable=True))
        batch.create_index("ix_provisioned_devices_wire_id", ["wire_id"])


def downgrade() -> None:
    with op.batch_alter_table("provisioned_devices") as batch:
        batch.drop_index("ix_provisioned_devices_wire_id")
        batch.drop_column("wire_id")
    with op.batch_alter_table("devices") as batch:
        batch.drop_index("ix_devices_reported_imei")
        batch.drop_column("reported_imei")
    op.drop_table("server_secrets")
    op.drop_index("ix_device_links_device_id_last_frame_at", table_name="device_links")
    op.drop_table("device_links")
