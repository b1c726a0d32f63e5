"""Levels of every active account on many dates, from one read of each metric.

The alert replay asks for every active account's level on 52 weekly dates. Asked window by
window (:func:`analysis.features.window_levels`), SQLite probes the key once per account,
date and metric, about 5 us each, and reads every snapshot again for each of the four or
five windows it falls in: 13 s of CPU for one metric at 50,000 accounts. Here a snapshot
metric's rows over all the windows are read once, a range of the ``(metric, date)`` index
(with, for a state metric, the last snapshot before them that may still hold), and numpy
works out every window from them. The definitions are window_levels' (see
:mod:`analysis.features`): a window (d - w, d] of an account active at d starts at its
signup if that is later; a state metric's level is the mean of its snapshots there, else the
last snapshot before the window if no older than ``max_age_days``; a count metric's is the
total per snapshot interval of exposure. Levels are rounded to the same digits.

Only snapshots of the imported table on SQLite or PostgreSQL qualify: its key makes a date
unique per account and metric, and the rows come straight from the driver. Event metrics,
``[source]`` queries and other engines keep the statements of :mod:`analysis.features`.
Windows that do not overlap (the price-increase panel's months) gain nothing from a sweep:
each snapshot is read once either way, and a probe per window costs what a row through
Python does.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sqlalchemy import String, and_, func, select, type_coerce

from analysis import schema
from analysis.catalog import Metric
from analysis.features import (
    LEVEL_DIGITS,
    account_table,
    levels_at,
    levels_in_one_pass,
    snapshot_interval_days,
)
from analysis.sources import Source, SourceOpener, side_by_side

Days = NDArray[np.int64]
NO_CHURN = np.iinfo(np.int64).max // 4  # a day number after any date
FETCH_ROWS = 100_000  # rows taken from the driver at a time


def levels_on_dates(source: Source, metrics: Sequence[str], dates: Sequence[dt.date],
                    window_days: int, side: SourceOpener | None = None
                    ) -> dict[dt.date, pd.DataFrame]:
    """:func:`analysis.features.levels_at` for each of ``dates`` (e.g. a year of weekly
    levels): a frame per date, indexed by the accounts active then, a column per metric.

    Imported snapshot metrics are swept (this module). The rest are asked date by date on
    SQLite, which answers each date fastest on its own (an index seek per account), and
    for every date in one pass elsewhere: PostgreSQL's hash joins, and the parallel workers
    each of its statements starts, then pay off once instead of once per date (52 weeks:
    2x). With ``side``, two jobs at a time. A swept count metric's snapshot interval is
    measured at the last date, as PostgreSQL's one pass measures it, so every date reads
    it alike; one asked date by date on SQLite measures it at each date, as before.
    """
    if not dates:
        return {}
    interval_at = max(dates)
    swept = [m for m in metrics if sweepable(source, source.metric(m))]
    asked = [m for m in metrics if m not in swept]
    jobs: list[Callable[[Source], dict[dt.date, pd.DataFrame]]] = []
    if swept:
        jobs.append(functools.partial(swept_levels, metrics=swept, dates=dates,
                                      window_days=window_days, interval_at=interval_at))
    if asked or not swept:
        if source.conn.dialect.name == "sqlite":
            jobs += [functools.partial(_levels_on, metrics=asked, day=day,
                                       window_days=window_days) for day in dates]
        else:
            half = len(dates) // 2 if side else 0
            jobs += [functools.partial(levels_in_one_pass, metrics=asked, dates=part,
                                       window_days=window_days, interval_at=interval_at)
                     for part in (dates[:half], dates[half:]) if part]
    frames: dict[dt.date, list[pd.DataFrame]] = {day: [] for day in dates}
    for levels in side_by_side(source, side, jobs):
        for day, frame in levels.items():
            frames[day].append(frame)
    return {day: pd.concat(parts, axis=1)[list(metrics)] for day, parts in frames.items()}


def _levels_on(source: Source, metrics: Sequence[str], day: dt.date, window_days: int
               ) -> dict[dt.date, pd.DataFrame]:
    return {day: levels_at(source, metrics, day, window_days)}


def sweepable(source: Source, metric: Metric) -> bool:
    """Whether :func:`swept_levels` can compute ``metric`` on ``source``."""
    return (source.conn.dialect.name in ("sqlite", "postgresql")
            and source.usage is schema.usage and not metric.from_events)


def swept_levels(source: Source, metrics: Sequence[str], dates: Sequence[dt.date],
                 window_days: int, interval_at: dt.date) -> dict[dt.date, pd.DataFrame]:
    """Levels of the accounts active on each of ``dates`` over (date - window_days, date],
    each of ``metrics`` (imported snapshot metrics) read once; see the module docstring."""
    accounts = account_table(source)
    ids = accounts.index.to_numpy()
    signup = _days(accounts["signup_date"].to_numpy())
    churn = _days(accounts["churn_date"].to_numpy())
    start = min(dates) - dt.timedelta(days=window_days - 1)  # the earliest window's first day
    # each date's active accounts (ascending) and their windows [first, stop), for all metrics
    windows = {}
    for day in dates:
        end = _day(day)
        active = np.flatnonzero((signup <= end) & (churn > end))
        windows[day] = (active, np.maximum(end - window_days + 1, signup[active]),
                        np.minimum(end + 1, churn[active]))
    columns: dict[dt.date, dict[str, pd.Series]] = {day: {} for day in dates}
    for name in metrics:
        metric = source.metric(name)
        series = _Series.read(source, metric, pd.Index(ids), start, max(dates))
        interval = None if metric.semantics == "state" else (
            snapshot_interval_days(source, name, interval_at) or 1.0)
        for day, (active, first, stop) in windows.items():
            level = series.levels(active, first, stop, interval, metric.max_age_days)
            columns[day][name] = pd.Series(_rounded(level), index=ids[active])
    return {day: pd.DataFrame(cols, columns=list(metrics)).rename_axis("key").fillna(0.0)
            for day, cols in columns.items()}


class _Series:
    """One metric's snapshots by account and day, sorted; ``key`` = account * span + day - origin
    orders them and turns "this account's snapshots from day a to day b" into a range."""

    def __init__(self, account: Days, day: Days, value: NDArray[np.float64]) -> None:
        self.origin = int(day.min()) if len(day) else 0
        self.span = (int(day.max()) if len(day) else 0) - self.origin + 2
        order = np.lexsort((day, account))
        self.account, self.day, self.value = account[order], day[order], value[order]
        self.key = self.account * self.span + (self.day - self.origin)

    @classmethod
    def read(cls, source: Source, metric: Metric, ids: pd.Index, start: dt.date,
             end: dt.date) -> _Series:
        """Snapshots of accounts ``ids`` dated ``start`` to ``end``; for a state metric also
        each account's last one before ``start`` that can still hold in a window from it."""
        u = source.usage
        columns = (u.c.account_id, type_coerce(u.c.date, String), u.c.value)
        statements = [select(*columns).where(u.c.metric == metric.name, u.c.date >= start,
                                             u.c.date <= end)]
        if metric.semantics == "state":  # each account's latest snapshot before start
            earliest = start - dt.timedelta(days=metric.max_age_days)
            latest = select(u.c.account_id, func.max(u.c.date).label("date")).where(
                u.c.metric == metric.name, u.c.date < start, u.c.date > earliest,
            ).group_by(u.c.account_id).subquery("latest")
            statements.append(select(*columns).join(latest, and_(
                latest.c.account_id == u.c.account_id, latest.c.date == u.c.date)
            ).where(u.c.metric == metric.name))
        parts = [_columns(chunk, ids) for statement in statements
                 for chunk in _fetched(source, statement)]
        account, day, value = (np.concatenate(c) for c in zip(*parts, strict=True)) if parts \
            else (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
        known = account >= 0  # rows of unknown accounts are left out, as every query does
        return cls(account[known], day[known], value[known])

    def levels(self, account: Days, first: Days, stop: Days, interval: float | None,
               max_age_days: int) -> NDArray[np.float64]:
        """Each window's level (NaN without one): ``account`` ascending, its snapshots in
        [first, stop); ``interval`` None for a state metric, else the snapshot interval."""
        if not len(self.key) or not len(account):
            return np.full(len(account), np.nan)
        base = account * self.span
        lo = np.searchsorted(self.key, base + np.clip(first - self.origin, 0, self.span - 1))
        hi = np.maximum(lo, np.searchsorted(
            self.key, base + np.clip(stop - self.origin, 0, self.span - 1)))
        counted = hi - lo
        # one reduceat sums every window: [lo, hi) at even positions (an empty range gives a
        # stray value, dropped), what lies between two windows at odd ones (dropped)
        bounds = np.empty(2 * len(lo), np.int64)
        bounds[0::2], bounds[1::2] = lo, hi
        total = np.add.reduceat(np.append(self.value, 0.0), bounds)[0::2]
        with np.errstate(invalid="ignore", divide="ignore"):
            if interval is not None:
                exposure = (stop - first).astype(float)
                return np.where((counted > 0) & (exposure > 0),
                                total * interval / exposure, np.nan)
            level = np.where(counted > 0, total / counted, np.nan)
        # no snapshot inside: the one before the window, if the account's and recent enough
        before = np.maximum(lo - 1, 0)
        holds = ((counted == 0) & (lo > 0) & (self.account[before] == account)
                 & (self.day[before] > first - max_age_days))
        return np.where(holds, self.value[before], level)


def _fetched(source: Source, statement: Any) -> Iterator[Sequence[Any]]:
    """The rows of ``statement`` straight from the driver, FETCH_ROWS at a time: SQLAlchemy's
    rows cost a microsecond each, as much as SQLite's reading of them, and a million rows
    as Python tuples take hundreds of MB, where their arrays take tens."""
    compiled = statement.compile(dialect=source.conn.dialect)
    params = compiled.construct_params()
    driver: Any = source.conn.connection.dbapi_connection
    # psycopg's plain cursor holds the whole result in memory: a named one streams it
    cursor = (driver.cursor(name="valuemetric_sweep") if source.conn.dialect.name ==
              "postgresql" else driver.cursor())
    try:
        if compiled.positiontup is None:  # named parameters (psycopg): as they are
            cursor.execute(str(compiled), params)
        else:  # SQLite's: in order, dates as the ISO text they are stored as
            cursor.execute(str(compiled), [_bound(params[name])
                                           for name in compiled.positiontup])
        while rows := cursor.fetchmany(FETCH_ROWS):
            yield rows
    finally:
        cursor.close()


def _columns(rows: Sequence[Any], ids: pd.Index) -> tuple[Days, Days, NDArray[np.float64]]:
    """(account position in ``ids``, -1 if none; day number; value) of (account_id, ISO
    date, value) rows: a column at a time (zip(*rows) takes ten times as long), each
    distinct account looked up once."""
    seen, names = pd.factorize(np.array([row[0] for row in rows], object))
    account = ids.get_indexer(pd.Index(names))[seen].astype(np.int64)
    return (account, _days(np.array([row[1] for row in rows], "datetime64[D]")),
            np.array([row[2] for row in rows], float))


def _rounded(levels: NDArray[np.float64]) -> NDArray[np.float64]:
    """Python's round, as window_levels rounds (numpy's differs on the last digit's halves
    and on large values): a level on a learned threshold must fall on the same side of it
    whichever way it came. Each distinct level once: most repeat (means of whole numbers)."""
    distinct, where = np.unique(levels, return_inverse=True)
    rounded = np.fromiter((round(level, LEVEL_DIGITS) for level in distinct.tolist()), float,
                          len(distinct))
    return rounded[where.ravel()]


def _bound(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


def _day(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days


def _days(values: NDArray[Any]) -> Days:
    """Day numbers of datetime64 values; NaT (no churn) -> after any date."""
    days = values.astype("datetime64[D]")
    return np.where(np.isnat(days), NO_CHURN, days.astype(np.int64))
