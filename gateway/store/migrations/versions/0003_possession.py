"""Proof of possession (issue 12): claim keys, lapsing device locks, TOTP replay guard, room for
encrypted TOTP secrets.

* `provisioned_devices.claim_key_hmac`; `contact` becomes optional (a device may be provisioned
  with a claim key only).
* `device_locks`: one row per IMEI whose self-service claiming is held back, until when, and how
  many times it was locked (each lock lasts longer).
* `owners.totp_last_step`; the TOTP secret columns grow to hold the sealed (encrypted) form.
  Secrets still in clear are sealed by the gateway at its next start (the migration has no key).
* `challenges.with_key`: whether the claimant typed a claim key.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.store.models import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch_alter_table: SQLite cannot change a column's type or nullability in place (the
    # table is copied); PostgreSQL gets plain ALTERs.
    with op.batch_alter_table("provisioned_devices") as batch:
        batch.alter_column("contact", existing_type=sa.String(255), nullable=True)
        batch.add_column(sa.Column("claim_key_hmac", sa.String(64), nullable=True))
    with op.batch_alter_table("owners") as batch:
        batch.alter_column("totp_secret", existing_type=sa.String(64), type_=sa.String(255),
                           existing_nullable=True)
        batch.alter_column("totp_pending_secret", existing_type=sa.String(64),
                           type_=sa.String(255), existing_nullable=True)
        batch.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
    op.add_column("challenges", sa.Column("with_key", sa.Boolean(), nullable=False,
                                          server_default=sa.text("false")))
    op.create_table(
        "device_locks",
        sa.Column("imei", sa.String(15), nullable=False),
        sa.Column("locks", sa.Integer(), nullable=False),
        sa.Column("locked_at", UTCDateTime(), nullable=False),
        sa.Column("locked_until", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("imei", name="pk_device_locks"),
    )


def downgrade() -> None:
    op.drop_table("device_locks")
    with op.batch_alter_table("challenges") as batch:
        batch.drop_column("with_key")
    # An older gateway cannot open sealed secrets (nor would they fit): those owners enrol
    # their authenticator app again.
    for column in ("totp_secret", "totp_pending_secret"):
        op.execute(f"UPDATE owners SET {column} = NULL WHERE length({column}) > 64")
    with op.batch_alter_table("owners") as batch:
        batch.drop_column("totp_last_step")
        batch.alter_column("totp_pending_secret", existing_type=sa.String(255),
                           type_=sa.String(64), existing_nullable=True)
        batch.alter_column("totp_secret", existing_type=sa.String(255), type_=sa.String(64),
                           existing_nullable=True)
    op.execute("DELETE FROM provisioned_devices WHERE contact IS NULL")
    with op.batch_alter_table("provisioned_devices") as batch:
        batch.drop_column("claim_key_hmac")
        batch.alter_column("contact", existing_type=sa.String(255), nullable=False)
