"""Data checks run before any analysis: what in the data would make an answer wrong.

Each check is one aggregate query pushed down to wherever the data lives (imported tables
or ``[source]`` SQL) and only looks at facts dated on or before the as-of date, except the
future-date check, which looks for exactly those. A finding is a *problem* when it would
make the answer wrong (``valuemetric check`` exits 1), otherwise a *warning*.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, true

from analysis import features, schema
from analysis.sources import (
    DataSources,
    Source,
    SourceError,
    SourceOpener,
    check_query,
    side_by_side,
    to_date,
)
from analysis.sqldates import as_date

PROBLEM = "problem"
WARNING = "warning"
EXAMPLES = 5


@dataclass(frozen=True)
class Finding:
    check: str  # revenue_missing, no_usage, series_gap, outside_life, unknown_accounts, ...
    severity: str  # problem | warning
    message: str
    count: int = 0
    examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class DataCheck:
    as_of: dt.date | None
    source: str
    active_accounts: int
    findings: tuple[Finding, ...]

    @property
    def problems(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == PROBLEM)

    @property
    def warnings(self) -> tuple[str, ...]:
        """One line per finding, problems first: what a digest or answer leads with."""
        ordered = sorted(self.findings, key=lambda f: f.severity != PROBLEM)
        return tuple(f.message for f in ordered)

    @property
    def summary(self) -> str:
        if not self.findings:
            return f"data checks passed ({self.source}, as of {self.as_of})"
        return (f"{len(self.problems)} problems, {len(self.findings) - len(self.problems)} "
                f"warnings ({self.source}, as of {self.as_of})")


def run_checks(sources: DataSources, metrics: Sequence[str], window_days: int,
               as_of: dt.date | None = None, today: dt.date | None = None) -> DataCheck:
    """Every check over the data ``sources`` reaches; ``as_of`` defaults as the analysis does."""
    today = today or dt.date.today()
    with sources.engine.connect() as conn:
        broken = []
        for key, sql in sources.queries().items():
            try:
                check_query(conn, sql, key)
            except SourceError as exc:
                broken.append(Finding("source_query", PROBLEM, str(exc)))
        if broken:
            shown = sources.engine.url.render_as_string(hide_password=True)
            return DataCheck(as_of, f"[source] on {shown}", 0, tuple(broken))
        with contextlib.ExitStack() as stack:
            try:
                source = stack.enter_context(sources.on(conn))
            except SourceError as exc:
                return DataCheck(as_of, "imported tables", 0,
                                 (Finding("source", PROBLEM, str(exc)),))
            return _findings(source, metrics, window_days, as_of, today, sources.side)


def _findings(source: Source, metrics: Sequence[str], window_days: int,
              as_of: dt.date | None, today: dt.date, side: SourceOpener | None) -> DataCheck:
    as_of = as_of or features.default_as_of(source, metrics, today)
    if as_of is None:
        return DataCheck(None, source.description, 0, (Finding(
            "no_usage", PROBLEM, "no usage or events for the configured metrics: import "
            "them or fix [[metrics]] / [source] usage and events"),))
    active = source.conn.execute(select(func.count()).select_from(source.accounts)
                                 .where(features.active_at(source, as_of))).scalar() or 0
    at = as_of
    # (place in the report, check); the two scans of every usage row and event (outside a
    # life, unknown account) go first, so that with a second connection they overlap
    checks: list[tuple[int, Callable[[Source], list[Finding]]]] = [
        (3, lambda s: _outside_life(s, at)),
        (4, lambda s: _unknown_accounts(s, at)),
        (0, lambda s: _revenue(s, at, active)),
        (1, lambda s: _without_usage(s, metrics, at, window_days, active)),
        (2, lambda s: _series_gaps(s, metrics, at)),
        (5, lambda s: [*_both_revenue_shapes(s), *_currencies(s), *_future(s, today)]),
        (-1, _repeated_accounts),
    ]
    found = side_by_side(source, side, [check for _, check in checks])
    by_place = dict(zip((place for place, _ in checks), found, strict=True))
    return DataCheck(as_of, source.description, int(active),
                     tuple(f for place in sorted(by_place) for f in by_place[place]))


def _ids(rows: Sequence[object]) -> tuple[str, ...]:
    return tuple(str(r) for r in rows[:EXAMPLES])


def _revenue(source: Source, as_of: dt.date, active: int) -> list[Finding]:
    acc, r = source.accounts, source.revenue
    month = as_of.replace(day=1)
    invoiced = select(r.c.account_id).where(r.c.month == month)
    missing = source.conn.execute(
        select(acc.c.account_id).where(features.active_at(source, as_of),
                                       acc.c.account_id.not_in(invoiced))
        .order_by(acc.c.account_id)).scalars().all()
    if not missing:
        return []
    carried = features.mrr_at(source, as_of)
    kept = [a for a in missing if str(a) in carried.index]
    none = [a for a in missing if str(a) not in carried.index]
    findings = []
    if kept:
        findings.append(Finding(
            "revenue_carried_forward", WARNING,
            f"{len(kept)} of {active} active accounts have no revenue for {month:%B %Y} yet; "
            f"their last MRR is carried forward (up to {source.carry_forward_months} months, "
            f"{carried.reindex([str(a) for a in kept]).sum():,.0f} MRR in all)",
            len(kept), _ids(kept)))
    if none:
        most = len(none) > active / 2
        findings.append(Finding(
            "revenue_missing", PROBLEM if most else WARNING,
            f"{len(none)} of {active} active accounts have no revenue at {as_of} (none in the "
            f"last {source.carry_forward_months + 1} months) and count as ARR 0"
            + ("; import the latest revenue or invoices, or set --as-of to a month they cover"
               if most else " (free plans are fine; otherwise import their invoices)"),
            len(none), _ids(none)))
    return findings


def _without_usage(source: Source, metrics: Sequence[str], as_of: dt.date, window_days: int,
                   active: int) -> list[Finding]:
    acc, u, ev = source.accounts, source.usage, source.events
    snapshots = [m for m in metrics if not source.metric(m).from_events]
    lo = as_of - dt.timedelta(days=window_days)
    # NOT EXISTS, an anti-join probe per account: PostgreSQL runs NOT IN over a subquery too
    # big for work_mem as a scan of it per account (8 s at 50,000 accounts)
    used = [exists().where(u.c.account_id == acc.c.account_id, u.c.metric.in_(snapshots),
                           u.c.date > lo, u.c.date <= as_of)]
    if len(snapshots) < len(metrics):
        used.append(exists().where(ev.c.account_id == acc.c.account_id,
                                   ev.c.timestamp >= lo + dt.timedelta(days=1),
                                   ev.c.timestamp < as_of + dt.timedelta(days=1)))
    idle = source.conn.execute(
        select(acc.c.account_id).where(features.active_at(source, as_of), *[~q for q in used])
        .order_by(acc.c.account_id)).scalars().all()
    if not idle:
        return []
    return [Finding("no_usage", WARNING,
                    f"{len(idle)} of {active} active accounts have no usage or events in the "
                    f"{window_days} days to {as_of} (read as zero usage: a state metric still "
                    "holds its last snapshot)", len(idle), _ids(idle))]


def _series_gaps(source: Source, metrics: Sequence[str], as_of: dt.date,
                 lookback_days: int = 182) -> list[Finding]:
    """Dates missing for every account at once: an export that skipped a period."""
    findings = []
    since = as_of - dt.timedelta(days=lookback_days)
    u, ev = source.usage, source.events
    for name in metrics:
        metric = source.metric(name)
        if metric.from_events:
            day = as_date(ev.c.timestamp)
            query = select(day).distinct().where(
                ev.c.timestamp >= since, ev.c.timestamp < as_of + dt.timedelta(days=1),
                ev.c.event.in_(list(metric.events)) if metric.events else true())
        elif metric.semantics == "count":
            query = select(u.c.date).distinct().where(u.c.metric == name, u.c.date > since,
                                                      u.c.date <= as_of)
        else:
            continue  # a state is written when it changes: silence is not a gap
        dates = sorted(d for d in (to_date(v) for v in
                                   source.conn.execute(query).scalars()) if d is not None)
        if len(dates) < 3:
            continue
        steps = sorted((b - a).days for a, b in itertools.pairwise(dates))
        typical = steps[len(steps) // 2]
        holes = [(a, b) for a, b in itertools.pairwise(dates)
                 if (b - a).days > 2 * max(typical, 1)]
        if holes:
            a, b = holes[-1]
            findings.append(Finding(
                "series_gap", WARNING,
                f"{name}: no data at all between {a} and {b} (usually every {typical} days); "
                f"{len(holes)} such gaps since {since}: an export may have skipped them, and a "
                "count metric reads them as zero", len(holes),
                tuple(f"{x}..{y}" for x, y in holes[:EXAMPLES])))
    return findings


def _by_account(source: Source, table: Any, *conditions: Any, joined: bool = False,
                having: Any = None) -> list[tuple[str, int]]:
    """(account_id, rows) of ``table`` meeting ``conditions``, optionally joined to accounts,
    of the accounts meeting ``having``."""
    acc = source.accounts
    query = select(table.c.account_id, func.count()).where(*conditions)
    if joined:
        query = query.select_from(table.join(acc, acc.c.account_id == table.c.account_id))
    query = query.group_by(table.c.account_id)
    if having is not None:
        query = query.having(having)
    return [(str(a), int(n)) for a, n in source.conn.execute(
        query.order_by(table.c.account_id)).all()]


def _per_account(check: str, rows: list[tuple[str, int]], what: str) -> list[Finding]:
    """One warning for rows of several accounts, ``what`` saying what is wrong with them."""
    if not rows:
        return []
    return [Finding(check, WARNING, f"{sum(n for _, n in rows):,} {what}".format(
        accounts=len(rows)), len(rows), _ids([a for a, _ in rows]))]


def _dated(source: Source, as_of: dt.date) -> list[tuple[str, Any, Any]]:
    """(label, table, date column, condition up to as_of) of each dated shape."""
    u, ev, r = source.usage, source.events, source.revenue
    return [("usage rows", u, u.c.date <= as_of),
            ("events", ev, ev.c.timestamp < as_of + dt.timedelta(days=1)),
            ("revenue months", r, r.c.month <= as_of)]


def _outside_life(source: Source, as_of: dt.date) -> list[Finding]:
    acc, u, ev = source.accounts, source.usage, source.events
    findings = []
    for (label, table, until), when in zip(_dated(source, as_of)[:2],
                                           (u.c.date, ev.c.timestamp), strict=True):
        outside = or_(when < acc.c.signup_date,
                      and_(acc.c.churn_date.is_not(None), as_date(when) > acc.c.churn_date))
        conditions = [outside, until]
        if table is schema.usage or table is schema.events:
            conditions.append(table.c.account_id.in_(_outside_life_suspects(source, table, until)))
        findings += _per_account("outside_life", _by_account(
            source, table, *conditions, joined=True),
            f"{label} of {{accounts}} accounts are dated before the account's signup or after "
            "its churn (ignored; check signup_date and churn_date)")
    return findings


def _outside_life_suspects(source: Source, table: Any, until: Any) -> Any:
    """Accounts with a row of an imported table dated before signup or after the churn day
    begins (a superset: an event later on the churn day is inside its life).

    Found by a seek on the table's key per account (and metric), where joining every row
    to its account read them all: 2.6 s -> 0.4 s over 5 M usage rows on SQLite.
    """
    acc = source.accounts
    when = table.c.date if table is schema.usage else table.c.timestamp
    same = [table.c.account_id == acc.c.account_id, until]
    if table is schema.usage:  # the key is (account_id, metric, date): a seek per metric
        same.append(table.c.metric.in_(features.metrics_in_data(source)))
    return select(acc.c.account_id).where(or_(
        exists().where(*same, when < acc.c.signup_date).correlate(acc),
        and_(acc.c.churn_date.is_not(None),
             exists().where(*same, when > acc.c.churn_date).correlate(acc))))


def _unknown_accounts(source: Source, as_of: dt.date) -> list[Finding]:
    known = select(source.accounts.c.account_id)
    findings = []
    for label, table, until in _dated(source, as_of):
        # tested once per account, not per row: SQLite probed the accounts for every row
        # (1.3 s -> 0.55 s over 5 M usage rows in the sqlite3 shell; PostgreSQL 0.5 s both)
        findings += _per_account("unknown_accounts", _by_account(
            source, table, until, having=table.c.account_id.not_in(known)),
            f"{label} come from {{accounts}} account ids that are not in accounts (ignored; "
            "map them in the accounts data or the [source] SQL)")
    return findings


def _repeated_accounts(source: Source) -> list[Finding]:
    """Account ids in more than one row of a [source] accounts query: every analysis stops."""
    acc = source.accounts
    repeated = [str(a) for a in source.conn.execute(
        select(acc.c.account_id).group_by(acc.c.account_id).having(func.count() > 1)
        .order_by(acc.c.account_id)).scalars()]
    if not repeated:
        return []
    return [Finding("repeated_accounts", PROBLEM, features.repeated_accounts_message(repeated),
                    len(repeated), _ids(repeated))]


def _both_revenue_shapes(source: Source) -> list[Finding]:
    """Imported invoices replace the imported monthly revenue: say so when both exist."""
    if source.invoices is not schema.invoices:
        return []
    months = source.conn.execute(select(func.count()).select_from(schema.revenue)).scalar()
    if not months:
        return []
    return [Finding("both_revenue_shapes", WARNING,
                    f"both invoices and {months:,} monthly revenue rows are imported: revenue "
                    "comes from the invoices only; import one shape per company", int(months))]


def _currencies(source: Source) -> list[Finding]:
    if source.invoices is None:
        return []
    codes = sorted({str(c or "") for c in source.conn.execute(
        select(source.invoices.c.currency).distinct()).scalars()})
    if len(codes) < 2:
        return []
    shown = ", ".join(c or "(blank = revenue.currency)" for c in codes)
    return [Finding("mixed_currencies", WARNING,
                    f"invoices are in {len(codes)} currencies ({shown}); they are converted "
                    "with [revenue] rates, so check those rates", len(codes))]


def _future(source: Source, today: dt.date) -> list[Finding]:
    limit = today + dt.timedelta(days=1)
    findings = []
    for label, table, when in (("usage", source.usage, source.usage.c.date),
                               ("events", source.events, source.events.c.timestamp),
                               ("accounts", source.accounts, source.accounts.c.signup_date)):
        n, newest = source.conn.execute(
            select(func.count(), func.max(when)).select_from(table)
            .where(when >= limit + dt.timedelta(days=1) if label == "events" else when > limit)
        ).one()
        if n:
            findings.append(Finding(
                "future_dates", WARNING,
                f"{label}: {n:,} rows are dated after {limit} (up to {to_date(newest)}); "
                "they are ignored when choosing the as-of date: fix their dates", int(n)))
    return findings
