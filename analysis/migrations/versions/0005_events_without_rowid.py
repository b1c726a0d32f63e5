"""Events on SQLite: a WITHOUT ROWID table, clustered on its key.

The key leads with (event, timestamp), the order in which metric queries read events;
clustered, a query reads one b-tree instead of the key's index and then each row by rowid,
and an import writes one b-tree instead of two. PostgreSQL is unchanged.

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


def _rebuild(*, with_rowid: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.rename_table("events", "events_before_0005")
    op.create_table(
        "events",
        sa.Column("event", sa.String(255), primary_key=True),
        sa.Column("timestamp", sa.DateTime, primary_key=True),
        sa.Column("account_id", sa.String(255), sa.ForeignKey("accounts.account_id"),
                  primary_key=True),
        sa.Column("user_id", sa.String(255), primary_key=True, server_default=""),
        sa.Column("occurrences", sa.Integer, nullable=False, server_default="1"),
        sa.Column("value", sa.Float, nullable=True),
        sqlite_with_rowid=with_rowid,
    )
    op.execute(f"INSERT INTO events ({COLUMNS}) SELECT {COLUMNS} FROM events_before_0005")
    op.drop_table("events_before_0005")


def upgrade() -> None:
    _rebuild(with_rowid=False)


def downgrade() -> None:
    _rebuild(with_rowid=True)
