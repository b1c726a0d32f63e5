"""Delivery ledger (one post per kind, channel and period) and alert state.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("period", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("ts", sa.String(32), nullable=True),
        sa.Column("claimed_by", sa.String(64), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("summary", sa.Text, nullable=True),
        sa.Column("action", sa.String(32), nullable=True),
        sa.Column("action_reason", sa.Text, nullable=True),
        sa.Column("action_user", sa.String(64), nullable=True),
        sa.UniqueConstraint("kind", "channel", "period", name="uq_deliveries_kind_channel_period"),
    )
    op.create_table(
        "alert_state",
        sa.Column("account_id", sa.String(255), primary_key=True),
        sa.Column("rule", sa.String(255), primary_key=True),
        sa.Column("armed", sa.Boolean, nullable=False),
        sa.Column("crossings", sa.Integer, nullable=False),
        sa.Column("level", sa.Float, nullable=True),
        sa.Column("snoozed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("alert_state")
    op.drop_table("deliveries")
