"""Usage database: accounts, usage snapshots, monthly revenue.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("account_id", sa.String(255), primary_key=True),
        sa.Column("name", sa.String(1024), nullable=False, server_default=""),
        sa.Column("plan", sa.String(255), nullable=False, server_default=""),
        sa.Column("signup_date", sa.Date, nullable=False),
        sa.Column("churn_date", sa.Date, nullable=True),
        sa.Column("owner", sa.String(64), nullable=True),
    )
    op.create_table(
        "usage",
        sa.Column("account_id", sa.String(255), sa.ForeignKey("accounts.account_id"),
                  primary_key=True),
        sa.Column("metric", sa.String(255), primary_key=True),
        sa.Column("date", sa.Date, primary_key=True),
        sa.Column("value", sa.Float, nullable=False),
    )
    op.create_index("ix_usage_metric_date", "usage", ["metric", "date", "account_id", "value"])
    op.create_table(
        "revenue",
        sa.Column("account_id", sa.String(255), sa.ForeignKey("accounts.account_id"),
                  primary_key=True),
        sa.Column("month", sa.Date, primary_key=True),
        sa.Column("mrr", sa.Float, nullable=False),
    )
    op.create_index("ix_revenue_month", "revenue", ["month", "account_id", "mrr"])


def downgrade() -> None:
    op.drop_table("revenue")
    op.drop_table("usage")
    op.drop_table("accounts")
