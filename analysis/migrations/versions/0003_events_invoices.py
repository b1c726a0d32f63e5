"""Raw product events and invoices.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("event", sa.String(255), primary_key=True),
        sa.Column("timestamp", sa.DateTime, primary_key=True),
        sa.Column("account_id", sa.String(255), sa.ForeignKey("accounts.account_id"),
                  primary_key=True),
        sa.Column("user_id", sa.String(255), primary_key=True, server_default=""),
        sa.Column("occurrences", sa.Integer, nullable=False, server_default="1"),
        sa.Column("value", sa.Float, nullable=True),
    )
    op.create_table(
        "invoices",
        sa.Column("account_id", sa.String(255), sa.ForeignKey("accounts.account_id"),
                  primary_key=True),
        sa.Column("period_start", sa.Date, primary_key=True),
        sa.Column("period_end", sa.Date, primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True, server_default=""),
        sa.Column("amount", sa.Float, nullable=False),
    )
    op.create_index("ix_invoices_period", "invoices", ["period_start", "period_end"])


def downgrade() -> None:
    op.drop_table("invoices")
    op.drop_table("events")
