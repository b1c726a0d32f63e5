"""Events keyed by (account_id, timestamp, event, user_id); on SQLite clustered on that key.

Metric queries read each account's window (its first weeks, the month before a price
change). With the key leading with (event, timestamp) SQLite scanned every account's events
of the period for each window: minutes at 50,000 accounts. On SQLite the table becomes
WITHOUT ROWID, so a query reads one b-tree, not the key's index and then each row, and an
import writes one b-tree instead of two.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = "event, timestamp, account_id, user_id, occurrences, value"
BY_ACCOUNT = ["account_id", "timestamp", "event", "user_id"]
BY_EVENT = ["event", "timestamp", "account_id", "user_id"]


def _rekey(key: list[str], *, with_rowid: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("events_pkey", "events", type_="primary")
        op.create_primary_key("events_pkey", "events", key)
        return
    op.rename_table("events", "events_before_0005")
    op.create_table(
        "events",
        sa.Column("event", sa.String(255), nullable=False),
        sa.Column("timestamp", sa.DateTime, nullable=False),
        sa.Column("account_id", sa.String(255), sa.ForeignKey("accounts.account_id"),
                  nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False, server_default=""),
        sa.Column("occurrences", sa.Integer, nullable=False, server_default="1"),
        sa.Column("value", sa.Float, nullable=True),
        sa.PrimaryKeyConstraint(*key, name="events_pkey"),
        sqlite_with_rowid=with_rowid,
    )
    op.execute(f"INSERT INTO events ({COLUMNS}) SELECT {COLUMNS} FROM events_before_0005")
    op.drop_table("events_before_0005")


def upgrade() -> None:
    _rekey(BY_ACCOUNT, with_rowid=False)


def downgrade() -> None:
    _rekey(BY_EVENT, with_rowid=True)
