"""Per-account features by SQL pushdown (SQLAlchemy Core; SQLite, PostgreSQL and DuckDB alike).

Every query reads the shapes of a :class:`analysis.sources.Source` (the imported tables or
``[source]`` SQL over the user's database) and aggregates there; pandas only ever receives
one row per account (or per account and metric). Choices made here:

* A window is (lo, hi]; the part of it an account existed (signup day up to the day before
  churn) is its *exposure*. Levels are measured over the exposure, so an account that signed
  up a few days before the as-of date, or churned mid-window, is not diluted by days it did
  not exist.
* ``kind = "state"`` (snapshots such as seats): the level is the mean of the snapshots in
  the window; a window without one takes the last snapshot before it, which holds until the
  next one up to ``max_age_days`` (snapshots written only when the value changes). Regular
  snapshots give the plain mean of those in the window.
* ``kind = "count"`` (snapshots of counts, or events): a period without a row is zero; the
  level is the total over the exposure per period (the snapshot interval, or the metric's
  ``period``). ``distinct_users`` counts each user once per period, periods ending at hi.
* The window is never shorter than a count metric's snapshot interval (detected from the
  data) or period, so monthly counts get a calendar-month window instead of an empty 28
  days. States need no widening: the last snapshot holds.
* MRR at a date is the account's latest monthly revenue not after that date, carried
  forward up to ``revenue.carry_forward_months`` months while the account is active (a month
  not invoiced yet is not MRR 0); 0 without any (e.g. a free plan).
* Account age ("tenure") is measured in days from signup to the as-of date.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import (
    ColumnElement,
    Date,
    Select,
    String,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    true,
    union_all,
)

from analysis import schema
from analysis.catalog import PERIOD_DAYS, Metric
from analysis.sources import Source, SourceError, SourceOpener, side_by_side, to_date
from analysis.sqldates import as_date, date_plus_days, days_between, whole_periods

__all__ = ["date_plus_days"]  # re-exported: callers build windows with it

# Levels are rounded so sums a database adds up in its own order give the same ranks everywhere.
LEVEL_DIGITS = 9


def metrics_in_data(source: Source) -> list[str]:
    """Distinct snapshot metric names (an index skip-scan on the imported table)."""
    usage = source.usage
    if usage is not schema.usage:
        return [str(r) for r in source.conn.execute(
            select(usage.c.metric).distinct().order_by(usage.c.metric)).scalars()]
    first = select(func.min(usage.c.metric).label("metric")).cte("metric_names", recursive=True)
    inner = usage.alias("u")
    step = select(
        select(func.min(inner.c.metric)).where(inner.c.metric > first.c.metric).scalar_subquery()
    ).where(first.c.metric.is_not(None))
    names = first.union_all(step)
    rows = source.conn.execute(select(names.c.metric).where(names.c.metric.is_not(None))
                               ).scalars()
    return [str(r) for r in rows]


def _split(source: Source, metrics: Sequence[str]) -> tuple[list[Metric], list[Metric]]:
    """(snapshot metrics, event metrics) of ``metrics``."""
    catalog = [source.metric(m) for m in metrics]
    return ([m for m in catalog if not m.from_events], [m for m in catalog if m.from_events])


def _event_filter(source: Source, metric: Metric) -> ColumnElement[bool]:
    ev = source.events
    return ev.c.event.in_(list(metric.events or ())) if metric.events else true()


def latest_usage_date(source: Source, metrics: Sequence[str],
                      until: dt.date | None = None) -> dt.date | None:
    """Newest snapshot or event date over ``metrics``, ignoring rows after ``until``."""
    snapshots, from_events = _split(source, metrics)
    u, ev = source.usage, source.events
    newest: list[dt.date | None] = []
    for metric in snapshots:  # one index probe per metric
        query = select(func.max(u.c.date)).where(u.c.metric == metric.name)
        if until is not None:
            query = query.where(u.c.date <= until)
        newest.append(to_date(source.conn.execute(query).scalar()))
    if from_events:
        query = select(func.max(ev.c.timestamp)).where(
            or_(*[_event_filter(source, m) for m in from_events]))
        if until is not None:
            query = query.where(ev.c.timestamp < until + dt.timedelta(days=1))
        newest.append(to_date(source.conn.execute(query).scalar()))
    return max((d for d in newest if d is not None), default=None)


def snapshot_interval_days(source: Source, metric: str, as_of: dt.date,
                           lookback_days: int = 120, sample: int = 2000) -> float | None:
    """Typical days between an account's snapshots of ``metric`` (median over accounts).

    Measured on a fixed sample of accounts (the first ``sample`` ids), which is plenty
    for a median and keeps this an index seek per account on large tables. An event metric
    has no snapshots: its period stands in, so the window holds at least one whole period.
    A state metric has none (its snapshots, often written only on change, hold anyway).
    """
    defined = source.metric(metric)
    if defined.from_events:
        return float(PERIOD_DAYS[defined.period])
    if defined.semantics == "state":
        return None  # a state holds between snapshots: no window needs widening for it
    accounts, usage = source.accounts, source.usage
    sampled = select(accounts.c.account_id).order_by(accounts.c.account_id).limit(sample)
    # the median gap between an account's consecutive snapshots: a week left out of a
    # weekly export is one 14-day gap among many 7-day ones, not a longer typical interval
    gaps = select(days_between(
        func.lag(usage.c.date).over(partition_by=usage.c.account_id, order_by=usage.c.date),
        usage.c.date).label("gap")).where(
        usage.c.account_id.in_(sampled.scalar_subquery()),
        usage.c.metric == metric,
        usage.c.date > as_of - dt.timedelta(days=lookback_days),
        usage.c.date <= as_of).subquery("gaps")
    counts = source.conn.execute(select(gaps.c.gap, func.count()).where(
        gaps.c.gap.is_not(None), gaps.c.gap > 0).group_by(gaps.c.gap).order_by(gaps.c.gap)
                                 ).all()
    total = sum(n for _, n in counts)
    if not total:
        return None
    seen = 0
    for gap, n in counts:
        seen += n
        if 2 * seen >= total:
            return float(gap)
    return None  # pragma: no cover - the loop always reaches half of the total


def effective_window(configured_days: int, interval_days: float | None) -> int:
    """The level window: the configured one, widened to hold at least one snapshot."""
    if interval_days is None or interval_days <= configured_days:
        return configured_days
    if interval_days <= 31:
        return 31  # monthly snapshots: a calendar month always holds exactly one
    return math.ceil(interval_days)


def _later(a: Any, b: Any) -> Any:
    return case((a > b, a), else_=b)


def _earlier(a: Any, b: Any) -> Any:
    return case((a < b, a), else_=b)


def window_levels(source: Source, metrics: Sequence[str], anchors: Select[Any],
                  interval_at: dt.date | None = None) -> pd.DataFrame:
    """Level per anchor row and metric over each row's window (lo, hi].

    ``anchors`` selects columns ``key``, ``account_id``, ``lo`` and ``hi``. Returns a frame
    indexed by key with one column per metric; windows without data give 0.
    ``interval_at``: where a count metric's snapshot interval is measured (default: the
    latest ``hi``), so that anchors split into several calls read as one call would.
    """
    a = anchors.subquery("anchors")
    acc = source.accounts
    first_day = _later(date_plus_days(a.c.lo, 1), acc.c.signup_date)
    after_hi = date_plus_days(a.c.hi, 1)
    stop = _earlier(after_hi, func.coalesce(acc.c.churn_date, after_hi))
    life = select(a.c.key, a.c.account_id, a.c.hi, first_day.label("first_day"),
                  stop.label("stop"), days_between(first_day, stop).label("exposure"),
                  ).select_from(a.join(acc, acc.c.account_id == a.c.account_id)
                                ).cte("life")
    if source.conn.dialect.name == "sqlite":
        # computed once, not per joined usage or event row: SQLite otherwise flattens the
        # subquery and evaluates the date arithmetic for every row (2.5 s -> 0.8 s a query
        # over 785,000 events at 50,000 accounts); PostgreSQL plans better without the fence
        life = life.prefix_with("MATERIALIZED")
    snapshots, from_events = _split(source, metrics)
    parts: list[pd.DataFrame | pd.Series] = []
    states = [m for m in snapshots if m.semantics == "state"]
    for max_age in sorted({m.max_age_days for m in states}):
        parts.append(_state_levels(
            source, [m.name for m in states if m.max_age_days == max_age], max_age, life))
    counts = [m for m in snapshots if m.semantics != "state"]
    # where their snapshot interval is measured: one query for them all
    at = interval_at or (_max_hi(source, a) if counts else dt.date.max)
    for metric in counts:
        interval = snapshot_interval_days(source, metric.name, at) or 1.0
        parts.append(_per_exposure(_count_totals(source, metric, life), metric.name, interval))
    for metric in from_events:
        parts.append(_per_exposure(_event_totals(source, metric, life), metric.name,
                                   PERIOD_DAYS[metric.period]))
    if states:  # a row for every window, level or not: no query for the keys
        keys = parts[0].index
    else:
        keys = pd.Index(source.conn.execute(select(a.c.key)).scalars().all(), name="key")
    wide = pd.concat([part.reindex(keys) for part in parts], axis=1) if parts else None
    return pd.DataFrame(wide, index=keys, columns=list(metrics)).fillna(0.0).astype(float)


def _max_hi(source: Source, anchors: Any) -> dt.date:
    return to_date(source.conn.execute(select(func.max(anchors.c.hi))).scalar()) or dt.date.max


def _per_exposure(rows: Sequence[Any], metric: str, period_days: float) -> pd.Series:
    """(key, total, exposure days) -> the total per period of exposure, by key."""
    return pd.Series({key: round(float(total) * period_days / exposure, LEVEL_DIGITS)
                      for key, total, exposure in rows
                      if total is not None and exposure and exposure > 0},
                     dtype=float, name=metric).rename_axis("key")


def _state_levels(source: Source, metrics: list[str], max_age_days: int, life: Any
                  ) -> pd.DataFrame:
    """Mean of the snapshots in each window; the last one before it when there are none.

    All ``metrics`` (sharing ``max_age_days``) in one statement, a row per window (NaN
    without a level) and a column per metric: per window and metric, one index range for
    the mean and, only for a window without a snapshot, one more probe for the snapshot
    that still holds (COALESCE evaluates it lazily). Joins that first found the quiet
    windows and then their last dates read every window three times (2.5x slower on
    SQLite at 50,000 accounts), and a row per window and metric cost Python as much again.
    """
    u = source.usage

    def level(metric: str) -> Any:
        same_series = (u.c.account_id == life.c.account_id, u.c.metric == metric)
        mean_inside = select(func.avg(u.c.value)).where(
            *same_series, u.c.date >= life.c.first_day, u.c.date < life.c.stop
        ).scalar_subquery()
        # max(value) on the latest date: a [source] may repeat a date
        held = select(u.c.value).where(
            *same_series, u.c.date < life.c.first_day,
            u.c.date > date_plus_days(life.c.first_day, -max_age_days),
        ).order_by(u.c.date.desc(), u.c.value.desc().nulls_last()).limit(1).scalar_subquery()
        return func.coalesce(mean_inside, held)

    rows = source.conn.execute(select(
        life.c.key, *[level(m).label(f"level_{i}") for i, m in enumerate(metrics)])).all()
    keys = pd.Index([row[0] for row in rows], name="key")
    nan = float("nan")
    return pd.DataFrame({metric: [nan if row[i] is None else round(float(row[i]), LEVEL_DIGITS)
                                  for row in rows]
                         for i, metric in enumerate(metrics, start=1)}, index=keys)


def _count_totals(source: Source, metric: Metric, life: Any) -> Sequence[Any]:
    u = source.usage
    return source.conn.execute(
        select(life.c.key, func.sum(u.c.value), func.max(life.c.exposure))
        .select_from(life.join(u, and_(u.c.account_id == life.c.account_id,
                                       u.c.metric == metric.name,
                                       u.c.date >= life.c.first_day,
                                       u.c.date < life.c.stop)))
        .group_by(life.c.key)).all()


def _event_totals(source: Source, metric: Metric, life: Any) -> Sequence[Any]:
    ev = source.events
    joined = life.join(ev, and_(ev.c.account_id == life.c.account_id,
                                ev.c.timestamp >= life.c.first_day,
                                ev.c.timestamp < life.c.stop,
                                _event_filter(source, metric)))
    if metric.aggregate != "distinct_users":
        amount = ev.c.occurrences if metric.aggregate == "count" else ev.c.value
        return source.conn.execute(
            select(life.c.key, func.sum(amount), func.max(life.c.exposure))
            .select_from(joined).group_by(life.c.key)).all()
    period = whole_periods(days_between(as_date(ev.c.timestamp), life.c.hi),
                           PERIOD_DAYS[metric.period])
    per_period = select(life.c.key, life.c.exposure,
                        func.count(ev.c.user_id.distinct()).label("users")
                        ).select_from(joined).group_by(life.c.key, life.c.exposure, period
                                                       ).subquery("per_period")
    return source.conn.execute(
        select(per_period.c.key, func.sum(per_period.c.users), func.max(per_period.c.exposure))
        .group_by(per_period.c.key)).all()


def active_at(source: Source, at: dt.date) -> Any:
    """Accounts signed up on or before ``at`` and not churned by then."""
    accounts = source.accounts
    return and_(accounts.c.signup_date <= at,
                or_(accounts.c.churn_date.is_(None), accounts.c.churn_date > at))


def levels_at(source: Source, metrics: Sequence[str], at: dt.date,
              window_days: int) -> pd.DataFrame:
    """Levels of accounts active at ``at`` over (at - w, at]."""
    accounts = source.accounts
    anchors = select(
        accounts.c.account_id.label("key"), accounts.c.account_id,
        literal(at - dt.timedelta(days=window_days), Date).label("lo"),
        literal(at, Date).label("hi"),
    ).where(active_at(source, at))
    return window_levels(source, metrics, anchors)


def levels_in_one_pass(source: Source, metrics: Sequence[str], dates: Sequence[dt.date],
                       window_days: int, interval_at: dt.date | None = None
                       ) -> dict[dt.date, pd.DataFrame]:
    """:func:`levels_at` for every one of ``dates`` from one :func:`window_levels` call
    (``interval_at``: see there)."""
    accounts = source.accounts
    anchors = union_all(*[
        _dated_window(accounts.c.account_id, day, day - dt.timedelta(days=window_days), day)
        .where(active_at(source, day)) for day in dates])
    levels = window_levels(source, metrics, select(anchors.subquery("by_date")), interval_at)
    none = pd.DataFrame(0.0, index=pd.Index([], name="key"), columns=list(metrics))
    if levels.empty:  # no account yet on any of the dates
        return {day: none for day in dates}
    parts = levels.index.str.rpartition("|")  # (account_id, "|", date): see _dated_window
    levels.index = pd.MultiIndex.from_arrays(
        [parts.get_level_values(2), parts.get_level_values(0)], names=["day", "key"])
    by_day = {str(day): frame.droplevel("day") for day, frame in levels.groupby(level="day")}
    return {day: by_day.get(day.isoformat(), none) for day in dates}


def _dated_window(account_id: Any, day: dt.date, lo: dt.date, hi: dt.date) -> Select[Any]:
    """Anchor columns of an account's window (lo, hi], keyed ``account_id|day``, for
    windows of several days in one call."""
    return select((account_id + literal(f"|{day.isoformat()}", String)).label("key"),
                  account_id, literal(lo, Date).label("lo"), literal(hi, Date).label("hi"))


def _tuples(rows: Sequence[Any]) -> list[tuple[Any, ...]]:
    # pandas probes each SQLAlchemy Row with hasattr(), which costs an exception per row
    return [tuple(r) for r in rows]


def early_levels(source: Source, metrics: Sequence[str], early_days: int,
                 signed_up_by: dt.date) -> pd.DataFrame:
    """Levels over each account's first ``early_days`` days, [signup, signup + E)."""
    accounts = source.accounts
    anchors = select(
        accounts.c.account_id.label("key"), accounts.c.account_id,
        date_plus_days(accounts.c.signup_date, -1).label("lo"),
        date_plus_days(accounts.c.signup_date, early_days - 1).label("hi"),
    ).where(accounts.c.signup_date <= signed_up_by)
    return window_levels(source, metrics, anchors)


def levels_before_churn(source: Source, metrics: Sequence[str], window_days: int,
                        churned_by: dt.date) -> pd.DataFrame:
    """Levels of churned accounts over their last window, (churn - w, churn]."""
    accounts = source.accounts
    anchors = select(
        accounts.c.account_id.label("key"), accounts.c.account_id,
        date_plus_days(accounts.c.churn_date, -window_days).label("lo"),
        accounts.c.churn_date.label("hi"),
    ).where(accounts.c.churn_date.is_not(None), accounts.c.churn_date <= churned_by)
    return window_levels(source, metrics, anchors)


def account_table(source: Source) -> pd.DataFrame:
    """One row per account: name, plan, signup_date, churn_date, owner."""
    columns = ["account_id", "name", "plan", "signup_date", "churn_date", "owner"]
    rows = source.conn.execute(select(*[source.accounts.c[c] for c in columns])).all()
    frame = pd.DataFrame(_tuples(rows), columns=columns)
    for column in ("signup_date", "churn_date"):
        # drivers return date objects (or ISO text); both parse in one vectorised pass
        frame[column] = pd.to_datetime(frame[column].astype("string").str.slice(0, 10),
                                       format="%Y-%m-%d")
    frame["account_id"] = frame["account_id"].astype(str)
    repeated = sorted(set(frame.loc[frame["account_id"].duplicated(), "account_id"]))
    if repeated:  # only a [source] query can repeat one: the imported table is keyed by it
        raise SourceError(repeated_accounts_message(repeated))
    return frame.set_index("account_id")


def repeated_accounts_message(repeated: Sequence[str]) -> str:
    """What to say of account ids a [source] accounts query returns more than once."""
    return (f"source.accounts: {len(repeated):,} account ids come in more than one row (e.g. "
            f"{', '.join(repeated[:3])}); make the query return one row per account, e.g. "
            "the latest row of each")


def _month_of(day: dt.date, months_back: int = 0) -> dt.date:
    index = day.year * 12 + day.month - 1 - months_back
    return dt.date(index // 12, index % 12 + 1, 1)


def mrr_at(source: Source, at: dt.date) -> pd.Series:
    """MRR per account at ``at``: its latest revenue month up to ``carry_forward_months`` back.

    A month older than the date's own is carried forward only while the account is active
    at ``at``; accounts without any revenue in that span are absent.
    """
    r, acc = source.revenue, source.accounts
    latest = select(
        r.c.account_id, r.c.mrr,
        func.row_number().over(partition_by=r.c.account_id, order_by=r.c.month.desc()
                               ).label("newest"),
    ).select_from(r.join(acc, acc.c.account_id == r.c.account_id)).where(
        r.c.month <= at,
        r.c.month >= _month_of(at, source.carry_forward_months),
        or_(r.c.month >= _month_of(at), active_at(source, at)),
    ).subquery("latest")
    rows = source.conn.execute(select(latest.c.account_id, latest.c.mrr)
                               .where(latest.c.newest == 1)).all()
    # rounded to a millionth of a currency unit: invoices spread in different databases add
    # their shares in different orders, and equal MRRs must stay ties
    return pd.Series({str(a): round(float(m), 6) for a, m in rows}, dtype=float, name="mrr")


def revenue_complete_month(source: Source, at: dt.date, share: float = 0.5,
                           lookback_months: int = 12) -> dt.date | None:
    """The newest month, not after ``at``, whose revenue is in for most accounts.

    A month counts as in when it has revenue rows for at least ``share`` of the accounts
    that had some the month before (an export taken before this month's invoices ran has
    few); None when there is no such month in the lookback.
    """
    r = source.revenue
    months = [_month_of(at, k) for k in range(lookback_months + 1)]
    counts: dict[dt.date | None, int] = {to_date(m): n for m, n in source.conn.execute(
        select(r.c.month, func.count()).where(r.c.month >= months[-1], r.c.month <= at)
        .group_by(r.c.month)).all()}
    for month, before in itertools.pairwise(months):
        if counts.get(month, 0) and counts.get(month, 0) >= share * counts.get(before, 0):
            return month
    return None


def default_as_of(source: Source, metrics: Sequence[str],
                  today: dt.date | None = None) -> dt.date | None:
    """The latest date at which usage and revenue are both complete.

    Usage is complete up to its newest row (rows dated after tomorrow are ignored as
    future dates). Revenue is complete through the newest month most accounts are billed
    for and, as MRR carries forward, ``carry_forward_months`` months beyond it.
    """
    today = today or dt.date.today()
    usage_until = latest_usage_date(source, metrics, until=today + dt.timedelta(days=1))
    if usage_until is None:
        return None
    billed = revenue_complete_month(source, usage_until)
    if billed is None:
        return usage_until
    revenue_until = _month_of(billed, -1 - source.carry_forward_months) - dt.timedelta(days=1)
    return min(usage_until, revenue_until)


def _with_previous_mrr(source: Source, as_of: dt.date | None) -> Any:
    r = source.revenue
    previous = func.lag(r.c.mrr).over(partition_by=r.c.account_id, order_by=r.c.month)
    query = select(r.c.account_id, r.c.month, r.c.mrr, previous.label("previous_mrr"))
    if as_of is not None:
        query = query.where(r.c.month <= as_of)
    return query.subquery("with_previous")


def mrr_increases(source: Source, as_of: dt.date | None = None) -> pd.DataFrame:
    """One row per month-over-month MRR increase (up to ``as_of``): account_id, month."""
    w = _with_previous_mrr(source, as_of)
    rows = source.conn.execute(select(w.c.account_id, w.c.month).where(
        w.c.previous_mrr.is_not(None), w.c.mrr > w.c.previous_mrr)).all()
    frame = pd.DataFrame(_tuples(rows), columns=["account_id", "month"])
    frame["month"] = [to_date(m) for m in frame["month"]]
    return frame


def increase_panel(source: Source, metrics: Sequence[str], window_days: int,
                   as_of: dt.date, months: int = 12, side: SourceOpener | None = None
                   ) -> pd.DataFrame:
    """Account-months that could have paid more, known at ``as_of``: a price-increase panel.

    One row per account and revenue month in the ``months`` before ``as_of`` that has a
    previous revenue month with MRR > 0 and a window wholly after signup: month, increased
    (MRR above the previous month's) and each metric's level in the window before the month
    began. Only revenue months up to
    ``as_of`` are read, so a later increase can never leak into an answer at ``as_of``.
    With ``side``, two months' levels at a time.
    """
    revenue, accounts = source.revenue, source.accounts
    known = (select(revenue.c.account_id, revenue.c.month, revenue.c.mrr)
             .where(revenue.c.month <= as_of).subquery("known_revenue"))
    previous = func.lag(known.c.mrr).over(partition_by=known.c.account_id,
                                          order_by=known.c.month)
    w = select(known.c.account_id, known.c.month, known.c.mrr,
               previous.label("previous_mrr")).subquery("with_previous")
    first = as_of - dt.timedelta(days=31 * months)
    rows = select(w.c.account_id, w.c.month, (w.c.mrr > w.c.previous_mrr).label("increased"),
                  ).select_from(w.join(accounts, accounts.c.account_id == w.c.account_id)).where(
        w.c.previous_mrr > 0, w.c.month > first,
        # the whole window inside the account's life: a level over a part-window is not
        # comparable (no snapshot yet reads as zero usage)
        accounts.c.signup_date <= date_plus_days(w.c.month, -window_days - 1))
    panel = pd.DataFrame(_tuples(source.conn.execute(rows).all()),
                         columns=["account_id", "month", "increased"])
    columns = ["account_id", "month", "increased", *metrics]
    if panel.empty:
        return pd.DataFrame(columns=columns)
    panel["month"] = panel["month"].map(to_date)
    panel["account_id"] = panel["account_id"].astype(str)
    # Every account's window in a month is the same dates, (month - w - 1, month - 1]: the
    # windows are anchored on the few months, selected by an index range each, instead of
    # on the rows above, whose window function every levels statement would run again.
    months_in = sorted(set(panel["month"]))
    # a count metric's interval measured where one call for every month would measure it
    interval_at = months_in[-1] - dt.timedelta(days=1)

    def month_levels(on: Source, month: dt.date) -> pd.DataFrame:
        lo, hi = month - dt.timedelta(days=window_days + 1), month - dt.timedelta(days=1)
        r, acc = on.revenue, on.accounts
        return window_levels(on, metrics, _dated_window(r.c.account_id, month, lo, hi)
                             .select_from(r.join(acc, acc.c.account_id == r.c.account_id))
                             .where(r.c.month == month, acc.c.signup_date <= lo), interval_at)

    levels = pd.concat(side_by_side(source, side, [
        functools.partial(month_levels, month=month) for month in months_in]))
    keys = panel["account_id"] + "|" + panel["month"].map(dt.date.isoformat)
    panel[list(metrics)] = levels.reindex(keys.to_numpy()).fillna(0.0).to_numpy()
    panel["increased"] = panel["increased"].astype(bool)
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
