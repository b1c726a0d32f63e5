"""invoice_months: the imported invoices spread over the months they cover.

Every analysis read revenue from invoices by spreading every invoice over its months again,
once per query (seconds each at 400,000 invoices, a dozen times a digest). Each invoices
import now writes the spread here, per account, month and currency, and analyses read it.
Invoices imported before this revision are spread as they are read, as before, until the
next invoices import fills the table.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invoice_months",
        sa.Column("account_id", sa.String(255), nullable=False),
        sa.Column("month", sa.Date, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "month", "currency"),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("invoice_months")
