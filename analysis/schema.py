"""Tables of the usage database (DESIGN section 3), as SQLAlchemy Core metadata.

Alembic migrations in ``analysis/migrations`` create and upgrade them; this module is the
description the queries are written against.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

accounts = Table(
    "accounts",
    metadata,
    Column("account_id", String(255), primary_key=True),
    Column("name", String(1024), nullable=False, server_default=""),
    Column("plan", String(255), nullable=False, server_default=""),
    Column("signup_date", Date, nullable=False),
    Column("churn_date", Date, nullable=True),
    Column("owner", String(64), nullable=True),
)

usage = Table(
    "usage",
    metadata,
    Column("account_id", String(255), ForeignKey("accounts.account_id"), primary_key=True),
    Column("metric", String(255), primary_key=True),
    Column("date", Date, primary_key=True),
    Column("value", Float, nullable=False),
    # Window scans read (metric, date) ranges; carrying account_id and value makes the index
    # covering, so the table itself is never touched by the level queries.
    Index("ix_usage_metric_date", "metric", "date", "account_id", "value"),
    # SQLite keeps the table clustered on its key: an account's window of a metric is one
    # range of one b-tree, values included (migration 0007)
    sqlite_with_rowid=False,
)

revenue = Table(
    "revenue",
    metadata,
    Column("account_id", String(255), ForeignKey("accounts.account_id"), primary_key=True),
    Column("month", Date, primary_key=True),
    Column("mrr", Float, nullable=False),
    Index("ix_revenue_month", "month", "account_id", "mrr"),
)

# Raw product events. Rows repeating the same key within an import are merged into one row
# counting them (``occurrences``) and summing ``value``, so re-importing an overlapping export
# replaces instead of double-counting. The key leads with (account_id, timestamp): metric
# queries read each account's window (its first weeks, a month before a price change), and
# a key leading with the event made SQLite scan every account's events per window. SQLite
# keeps the table clustered on its key (WITHOUT ROWID): one b-tree to read and to write.
events = Table(
    "events",
    metadata,
    Column("event", String(255), nullable=False),
    Column("timestamp", DateTime, nullable=False),  # UTC, stored without a zone
    Column("account_id", String(255), ForeignKey("accounts.account_id"), nullable=False),
    Column("user_id", String(255), nullable=False, server_default=""),
    Column("occurrences", Integer, nullable=False, server_default="1"),
    Column("value", Float, nullable=True),
    PrimaryKeyConstraint("account_id", "timestamp", "event", "user_id", name="events_pkey"),
    sqlite_with_rowid=False,
)

# Invoices as billed, spread over their service period into monthly MRR by the import
# (invoice_months, in their own currency, so a change of ``[revenue] rates`` needs no
# re-import). Line items of the same account,
# period and currency are summed at import; credits are negative amounts.
invoices = Table(
    "invoices",
    metadata,
    Column("account_id", String(255), ForeignKey("accounts.account_id"), primary_key=True),
    Column("period_start", Date, primary_key=True),
    Column("period_end", Date, primary_key=True),
    Column("currency", String(3), primary_key=True, server_default=""),  # "" = revenue.currency
    Column("amount", Float, nullable=False),
    Index("ix_invoices_period", "period_start", "period_end"),
)

# The imported invoices spread over the months they cover, per account, month and
# currency (upper case, "" for none), in the invoice's currency: written by every invoices
# import, read by analyses instead of spreading every invoice again (rates apply as read).
invoice_months = Table(
    "invoice_months",
    metadata,
    Column("account_id", String(255), primary_key=True),
    Column("month", Date, primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("amount", Float, nullable=False),
    sqlite_with_rowid=False,
)

# -- delivery ledger and alert state (scheduled posts: exactly once per period) ------------

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),  # digest | alert
    Column("channel", String(64), nullable=False),
    Column("period", String(255), nullable=False),  # digest: scheduled time; alert: crossing
    Column("state", String(16), nullable=False),  # sending | sent | failed | unknown
    Column("ts", String(32), nullable=True),  # Slack message ts once sent
    Column("claimed_by", String(64), nullable=False),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("error", Text, nullable=True),
    Column("summary", Text, nullable=True),  # JSON the next digest compares against
    Column("action", String(32), nullable=True),  # alerts: snoozed | done | not_a_fit
    Column("action_reason", Text, nullable=True),
    Column("action_user", String(64), nullable=True),
    Column("parts", Integer, nullable=True),  # digest: messages in its thread, headline included
    UniqueConstraint("kind", "channel", "period", name="uq_deliveries_kind_channel_period"),
)

alert_state = Table(
    "alert_state",
    metadata,
    Column("account_id", String(255), primary_key=True),
    Column("rule", String(255), primary_key=True),
    Column("armed", Boolean, nullable=False),
    Column("crossings", Integer, nullable=False),
    Column("level", Float, nullable=True),
    Column("snoozed_until", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
