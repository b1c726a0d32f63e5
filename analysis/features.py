"""Per-account features by SQL pushdown (SQLAlchemy Core, SQLite and PostgreSQL alike).

Everything that touches the raw usage table aggregates in the database; pandas only ever
receives one row per account (or per account and metric). Choices made here:

* The level of a metric in a window (lo, hi] is the mean of the account's snapshots in
  it. An account with no snapshot of a metric in the window has level 0: usage exports
  commonly leave zero rows out.
* The window is never shorter than the data's own snapshot interval (detected from the
  data), so monthly snapshots get a calendar-month window instead of an empty 28 days.
* ARR at a date is 12 x the MRR of the latest revenue month not after that date (0 for an
  account without a revenue row that month, e.g. on a free plan).
* Account age ("tenure") is measured in days from signup to the as-of date.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import (
    Connection,
    Date,
    Select,
    and_,
    func,
    or_,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from analysis.schema import accounts, revenue, usage


class date_plus_days(FunctionElement[dt.date]):
    """``date + n days`` in each dialect's own spelling (n is an int, never user text)."""

    type = Date()
    inherit_cache = True

    def __init__(self, date_expr: Any, days: int) -> None:
        self.days = int(days)
        super().__init__(date_expr)


@compiles(date_plus_days)
def _date_plus_days_ansi(element: date_plus_days, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)} + INTERVAL '{element.days}' DAY)"


@compiles(date_plus_days, "sqlite")
def _date_plus_days_sqlite(element: date_plus_days, compiler: SQLCompiler, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)}, '{element.days:+d} days')"


@compiles(date_plus_days, "postgresql")
def _date_plus_days_pg(element: date_plus_days, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)} + {element.days})"


def _date(value: Any) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def metrics_in_data(conn: Connection) -> list[str]:
    """Distinct metric names, by an index skip-scan (a recursive CTE) instead of a full scan."""
    first = select(func.min(usage.c.metric).label("metric")).cte("metric_names", recursive=True)
    inner = usage.alias("u")
    step = select(
        select(func.min(inner.c.metric)).where(inner.c.metric > first.c.metric).scalar_subquery()
    ).where(first.c.metric.is_not(None))
    names = first.union_all(step)
    rows = conn.execute(select(names.c.metric).where(names.c.metric.is_not(None))).scalars()
    return [str(r) for r in rows]


def latest_usage_date(conn: Connection, metrics: Sequence[str]) -> dt.date | None:
    """Newest snapshot date over ``metrics`` (one index probe per metric)."""
    newest: dt.date | None = None
    for metric in metrics:
        value = _date(conn.execute(
            select(func.max(usage.c.date)).where(usage.c.metric == metric)).scalar())
        if value is not None and (newest is None or value > newest):
            newest = value
    return newest


def snapshot_interval_days(conn: Connection, metric: str, as_of: dt.date,
                           lookback_days: int = 120, sample: int = 2000) -> float | None:
    """Typical days between an account's snapshots of ``metric`` (median over accounts).

    Measured on a fixed sample of accounts (the first ``sample`` ids), which is plenty
    for a median and keeps this an index seek per account on large tables.
    """
    sampled = select(accounts.c.account_id).order_by(accounts.c.account_id).limit(sample)
    rows = conn.execute(
        select(func.count(), func.min(usage.c.date), func.max(usage.c.date))
        .where(usage.c.account_id.in_(sampled.scalar_subquery()),
               usage.c.metric == metric,
               usage.c.date > as_of - dt.timedelta(days=lookback_days),
               usage.c.date <= as_of)
        .group_by(usage.c.account_id)
    ).all()
    gaps = [
        ((_date(hi) - _date(lo)).days / (n - 1))  # type: ignore[operator]
        for n, lo, hi in rows if n >= 2
    ]
    if not gaps:
        return None
    return float(pd.Series(gaps).median())


def effective_window(configured_days: int, interval_days: float | None) -> int:
    """The level window: the configured one, widened to hold at least one snapshot."""
    if interval_days is None or interval_days <= configured_days:
        return configured_days
    if interval_days <= 31:
        return 31  # monthly snapshots: a calendar month always holds exactly one
    return math.ceil(interval_days)


def window_levels(conn: Connection, metrics: Sequence[str], anchors: Select[Any]) -> pd.DataFrame:
    """Mean snapshot value per anchor row and metric over each row's window (lo, hi].

    ``anchors`` selects columns ``key``, ``account_id``, ``lo`` and ``hi``. Returns a frame
    indexed by key with one column per metric; windows without snapshots give 0.
    """
    a = anchors.subquery("anchors")
    query = (
        select(a.c.key, usage.c.metric, func.avg(usage.c.value))
        .select_from(a.join(usage, and_(
            usage.c.account_id == a.c.account_id,
            usage.c.metric.in_(list(metrics)),
            usage.c.date > a.c.lo,
            usage.c.date <= a.c.hi,
        )))
        .group_by(a.c.key, usage.c.metric)
    )
    keys = pd.Index(conn.execute(select(a.c.key)).scalars().all(), name="key")
    return _wide(conn.execute(query).all(), keys, metrics)


def active_at(at: dt.date) -> Any:
    """Accounts signed up on or before ``at`` and not churned by then."""
    return and_(accounts.c.signup_date <= at,
                or_(accounts.c.churn_date.is_(None), accounts.c.churn_date > at))


def levels_at(conn: Connection, metrics: Sequence[str], at: dt.date,
              window_days: int) -> pd.DataFrame:
    """Levels of accounts active at ``at`` over (at - w, at].

    One window for everyone: a range scan of the covering (metric, date) index, grouped
    in the database, rather than a join per account.
    """
    query = (
        select(usage.c.account_id, usage.c.metric, func.avg(usage.c.value))
        .where(usage.c.metric.in_(list(metrics)),
               usage.c.date > at - dt.timedelta(days=window_days),
               usage.c.date <= at)
        .group_by(usage.c.metric, usage.c.account_id)
    )
    keys = pd.Index(conn.execute(select(accounts.c.account_id).where(active_at(at)))
                    .scalars().all(), name="key")
    return _wide(conn.execute(query).all(), keys, metrics)


def _tuples(rows: Sequence[Any]) -> list[tuple[Any, ...]]:
    # pandas probes each SQLAlchemy Row with hasattr(), which costs an exception per row
    return [tuple(r) for r in rows]


def _wide(rows: Sequence[Any], keys: pd.Index, metrics: Sequence[str]) -> pd.DataFrame:
    """(key, metric, level) rows -> one row per key, one column per metric, 0 when absent."""
    if not rows:
        return pd.DataFrame(0.0, index=keys, columns=list(metrics))
    long = pd.DataFrame(_tuples(rows), columns=["key", "metric", "level"])
    wide = long.pivot(index="key", columns="metric", values="level")
    return wide.reindex(index=keys, columns=list(metrics)).fillna(0.0).astype(float)


def early_levels(conn: Connection, metrics: Sequence[str], early_days: int,
                 signed_up_by: dt.date) -> pd.DataFrame:
    """Levels over each account's first ``early_days`` days, [signup, signup + E)."""
    anchors = select(
        accounts.c.account_id.label("key"), accounts.c.account_id,
        date_plus_days(accounts.c.signup_date, -1).label("lo"),
        date_plus_days(accounts.c.signup_date, early_days - 1).label("hi"),
    ).where(accounts.c.signup_date <= signed_up_by)
    return window_levels(conn, metrics, anchors)


def levels_before_churn(conn: Connection, metrics: Sequence[str], window_days: int,
                        churned_by: dt.date) -> pd.DataFrame:
    """Levels of churned accounts over their last window, (churn - w, churn]."""
    anchors = select(
        accounts.c.account_id.label("key"), accounts.c.account_id,
        date_plus_days(accounts.c.churn_date, -window_days).label("lo"),
        accounts.c.churn_date.label("hi"),
    ).where(accounts.c.churn_date.is_not(None), accounts.c.churn_date <= churned_by)
    return window_levels(conn, metrics, anchors)


def account_table(conn: Connection) -> pd.DataFrame:
    """One row per account: name, plan, signup_date, churn_date, owner."""
    rows = conn.execute(select(accounts)).all()
    frame = pd.DataFrame(_tuples(rows), columns=[c.name for c in accounts.columns])
    for column in ("signup_date", "churn_date"):
        # drivers return date objects (or ISO text); both parse in one vectorised pass
        frame[column] = pd.to_datetime(frame[column].astype("string").str.slice(0, 10),
                                       format="%Y-%m-%d")
    return frame.set_index("account_id")


def revenue_month(conn: Connection, at: dt.date) -> dt.date | None:
    """The latest month with revenue data not after ``at``."""
    return _date(conn.execute(select(func.max(revenue.c.month))
                              .where(revenue.c.month <= at)).scalar())


def mrr_in_month(conn: Connection, month: dt.date | None) -> pd.Series:
    """MRR per account in ``month`` (accounts without a row are absent)."""
    if month is None:
        return pd.Series(dtype=float, name="mrr")
    rows = conn.execute(select(revenue.c.account_id, revenue.c.mrr)
                        .where(revenue.c.month == month)).all()
    return pd.Series({a: float(m) for a, m in rows}, dtype=float, name="mrr")


def _with_previous_mrr() -> Any:
    previous = func.lag(revenue.c.mrr).over(partition_by=revenue.c.account_id,
                                            order_by=revenue.c.month)
    return select(revenue.c.account_id, revenue.c.month, revenue.c.mrr,
                  previous.label("previous_mrr")).subquery("with_previous")


def mrr_increases(conn: Connection) -> pd.DataFrame:
    """One row per month-over-month MRR increase: account_id, month."""
    w = _with_previous_mrr()
    rows = conn.execute(select(w.c.account_id, w.c.month).where(
        w.c.previous_mrr.is_not(None), w.c.mrr > w.c.previous_mrr)).all()
    return pd.DataFrame(_tuples(rows), columns=["account_id", "month"])


def increase_panel(conn: Connection, metrics: Sequence[str], window_days: int,
                   as_of: dt.date, months: int = 12) -> pd.DataFrame:
    """Account-months that could have paid more, known at ``as_of``: a price-increase panel.

    One row per account and revenue month in the ``months`` before ``as_of`` that has a
    previous revenue month with MRR > 0: month, increased (MRR above the previous month's)
    and each metric's level in the window before the month began. Only revenue months up to
    ``as_of`` are read, so a later increase can never leak into an answer at ``as_of``.
    """
    known = (select(revenue.c.account_id, revenue.c.month, revenue.c.mrr)
             .where(revenue.c.month <= as_of).subquery("known_revenue"))
    previous = func.lag(known.c.mrr).over(partition_by=known.c.account_id,
                                          order_by=known.c.month)
    w = select(known.c.account_id, known.c.month, known.c.mrr,
               previous.label("previous_mrr")).subquery("with_previous")
    first = as_of - dt.timedelta(days=31 * months)
    rows = select(
        func.row_number().over(order_by=(w.c.account_id, w.c.month)).label("key"),
        w.c.account_id, w.c.month,
        (w.c.mrr > w.c.previous_mrr).label("increased"),
        date_plus_days(w.c.month, -window_days - 1).label("lo"),
        date_plus_days(w.c.month, -1).label("hi"),
    ).where(w.c.previous_mrr > 0, w.c.month > first)
    panel = pd.DataFrame(_tuples(conn.execute(rows).all()),
                         columns=["key", "account_id", "month", "increased", "lo", "hi"])
    columns = ["account_id", "month", "increased", *metrics]
    if panel.empty:
        return pd.DataFrame(columns=columns)
    levels = window_levels(conn, metrics, rows)
    panel = panel.set_index("key").join(levels)
    panel[list(metrics)] = panel[list(metrics)].fillna(0.0)
    panel["increased"] = panel["increased"].astype(bool)
    panel["month"] = panel["month"].map(_date)
    return panel[columns].reset_index(drop=True)


@dataclass(frozen=True)
class Windows:
    """The dates and window lengths one analysis run uses."""

    as_of: dt.date
    window_days: int
    early_days: int
    horizon_days: int
    lookback_days: int
    snapshot_interval_days: float | None

    @property
    def past(self) -> dt.date:
        return self.as_of - dt.timedelta(days=self.lookback_days)

    @property
    def retention_signup_cutoff(self) -> dt.date:
        return self.as_of - dt.timedelta(days=self.early_days + self.horizon_days)
