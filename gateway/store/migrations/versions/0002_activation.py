"""Activation: owners' authenticator secrets, provisioned contacts, challenges, web sessions,
audit log and failure counters.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.store.models import BigId, JsonDict, UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns: a plain ADD COLUMN on both dialects, no table rebuild on SQLite.
    op.add_column("owners", sa.Column("totp_secret", sa.String(64), nullable=True))
    op.add_column("owners", sa.Column("totp_pending_secret", sa.String(64), nullable=True))
    op.create_table(
        "provisioned_devices",
        sa.Column("imei", sa.String(15), nullable=False),
        sa.Column("contact", sa.String(255), nullable=False),
        sa.Column("provisioned_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("imei", name="pk_provisioned_devices"),
    )
    op.create_table(
        "challenges",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("imei", sa.String(15), nullable=True),
        sa.Column("deliver_to", sa.String(255), nullable=False),
        sa.Column("claimant", sa.String(255), nullable=False),
        sa.Column("proof", sa.String(24), nullable=False),
        sa.Column("decoy", sa.Boolean(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("code_hmac", sa.String(64), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("sends", sa.Integer(), nullable=False),
        sa.Column("sends_window_start", UTCDateTime(), nullable=True),
        sa.Column("last_sent_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("client_addr", sa.String(64), nullable=True),
        sa.Column("delivery", sa.String(16), nullable=True),
        sa.Column("delivery_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_challenges"),
    )
    op.create_index("ix_challenges_status_imei", "challenges", ["status", "imei"])
    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("owner_id", BigId, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name="pk_web_sessions"),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["owners.id"], name="fk_web_sessions_owner_id_owners"),
    )
    op.create_index("ix_web_sessions_owner_id", "web_sessions", ["owner_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("imei", sa.String(15), nullable=True),
        sa.Column("owner_id", BigId, nullable=True),
        sa.Column("challenge_id", sa.String(32), nullable=True),
        sa.Column("client_addr", sa.String(64), nullable=True),
        sa.Column("detail", JsonDict, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_table(
        "failure_counters",
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("window_start", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name="pk_failure_counters"),
    )


def downgrade() -> None:
    op.drop_table("failure_counters")
    op.drop_index("ix_audit_log_at", "audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_web_sessions_owner_id", "web_sessions")
    op.drop_table("web_sessions")
    op.drop_index("ix_challenges_status_imei", "challenges")
    op.drop_table("challenges")
    op.drop_table("provisioned_devices")
    with op.batch_alter_table("owners") as batch:
        batch.drop_column("totp_pending_secret")
        batch.drop_column("totp_secret")
