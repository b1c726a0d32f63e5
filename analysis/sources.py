"""Where the analysed data comes from: the imported tables, or SQL over the user's database.

Every shape (DESIGN section 3) becomes one selectable with fixed column names, so the
queries in :mod:`analysis.features` are written once and run wherever the data lives:

* ``accounts``: account_id, name, plan, signup_date, churn_date, owner
* ``usage``: account_id, metric, date, value (snapshots)
* ``events``: account_id, user_id, event, timestamp, occurrences, value
* ``revenue``: account_id, month, mrr (monthly; invoices are spread into it)

A ``[source]`` query is wrapped as a subquery (``text(sql).columns(...)``) and normalised
(dates cast to dates, missing optional columns filled), so every aggregation still runs in
the user's database.

Invoices are spread over their service period by days: a month holds the invoice's share of
``days covered in the month / days in the month``, so an annual invoice gives 1/12 a month,
a quarterly one 1/3, and a partial month its pro-rata part. ``period_end`` is inclusive
(2025-01-01..2025-01-31 is one month), except when it falls on the same day of the month as
``period_start`` (2025-01-15..2025-02-15, as Stripe exports it): then it is the next
period's first day and excluded.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Date,
    Double,
    Engine,
    Float,
    FromClause,
    Integer,
    MetaData,
    Select,
    String,
    Subquery,
    Table,
    and_,
    case,
    cast,
    column,
    exists,
    extract,
    false,
    func,
    inspect,
    literal,
    null,
    select,
    text,
    union_all,
)
from sqlalchemy.exc import SQLAlchemyError

from analysis import schema
from analysis.catalog import Metric
from analysis.db import make_engine
from analysis.params import setting
from analysis.sqldates import as_date, date_plus_days, days_between, month_start

log = logging.getLogger(__name__)


class SourceError(Exception):
    """A ``[source]`` query or the revenue data cannot be used; the message says the fix."""


@dataclass(frozen=True)
class SourceSettings:
    url: str = setting("", help="SQLAlchemy URL of your own database, read only (empty: "
                       "database.url); e.g. postgresql+psycopg://readonly@db/prod or "
                       "duckdb:///warehouse.duckdb")
    accounts: str = setting("", help="SQL giving account_id, signup_date and optional name, "
                            "plan, churn_date, owner (empty: the imported accounts)")
    usage: str = setting("", help="SQL giving snapshots account_id, date, metric, value "
                         "(empty: the imported usage)")
    revenue: str = setting("", help="SQL giving account_id, month, mrr or invoices "
                           "account_id, period_start, period_end, amount[, currency] "
                           "(empty: the imported revenue or invoices)")
    events: str = setting("", help="SQL giving account_id, event, timestamp and optional "
                          "user_id, value (empty: the imported events)")


@dataclass(frozen=True)
class RevenueSettings:
    currency: str = setting("USD", help="currency revenue is reported in (ISO code)")
    rates: dict[str, float] = setting(help="value of one unit of another currency in "
                                      "`currency`, e.g. { EUR = 1.08 }", factory=dict)
    carry_forward_months: int = setting(2, help="an active account's last MRR holds this many "
                                        "months when a month is not invoiced yet")


@dataclass(frozen=True)
class Shape:
    """One data shape: its required and optional columns (optional ones default)."""

    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()


ACCOUNTS = Shape("accounts", ("account_id", "signup_date"), ("name", "plan", "churn_date", "owner"))
USAGE = Shape("usage", ("account_id", "date", "metric", "value"))
EVENTS = Shape("events", ("account_id", "event", "timestamp"), ("user_id", "value"))
MONTHLY_REVENUE = Shape("revenue", ("account_id", "month", "mrr"))
INVOICES = Shape("revenue", ("account_id", "period_start", "period_end", "amount"),
                 ("currency",))

_DATE_COLUMNS = {"signup_date", "churn_date", "date", "month", "period_start", "period_end"}
_NUMBER_COLUMNS = {"value", "mrr", "amount"}


@dataclass(frozen=True)
class Source:
    """The four shapes as selectables on one connection, plus the metric catalog."""

    conn: Connection
    accounts: FromClause
    usage: FromClause
    events: FromClause
    monthly_revenue: FromClause  # MRR by account and month, as a query (see revenue)
    catalog: Mapping[str, Metric] = field(default_factory=dict)
    carry_forward_months: int = 2
    description: str = "imported tables"
    invoices: FromClause | None = None  # as billed, when revenue comes from invoices
    # monthly_revenue spreads the invoices each time it is read (not spread at import)
    spreads_invoices: bool = False
    # then keep the spread in a temporary table of ``conn`` once read (see DataSources.on,
    # which drops it)
    keeps_spread: bool = False
    kept: dict[str, FromClause] = field(default_factory=dict, compare=False, repr=False)

    @property
    def revenue(self) -> FromClause:
        """MRR by account and month: account_id, month, mrr.

        Spreading invoices over months is the costliest query there is (7 s for 393,000
        invoices on SQLite) and an analysis reads revenue a dozen times, once per month of
        a panel. Imports spread them once (``invoice_months``); invoices read through a
        ``[source]`` query are spread once per source, on first use, with ``keeps_spread``.
        """
        if not (self.spreads_invoices and self.keeps_spread):
            return self.monthly_revenue
        if "revenue" not in self.kept:
            self.kept["revenue"] = _kept_spread(self.conn, self.monthly_revenue)
        return self.kept["revenue"]

    def metric(self, name: str) -> Metric:
        """The catalog entry of ``name``; a metric found only in the data is a snapshot."""
        return self.catalog.get(name) or Metric(name=name)


def _kept_spread(conn: Connection, spread: FromClause) -> FromClause:
    """``spread`` (:func:`spread_invoices`) copied into a temporary table; the query itself
    where temporary tables cannot be made (e.g. a read-only replica). No index: one costs
    more to build than it saves the few queries reading the table (a scan of 556,000
    rows is a tenth of a second)."""
    kept = Table(f"vm_revenue_{uuid.uuid4().hex[:8]}", MetaData(),
                 Column("account_id", spread.c.account_id.type),
                 Column("month", Date),
                 Column("mrr", Double),
                 prefixes=["TEMPORARY"])
    # a failed statement spoils PostgreSQL's transaction: there, the attempt is a savepoint
    # (DuckDB has none)
    attempt = conn.begin_nested() if conn.dialect.name == "postgresql" else nullcontext()
    try:
        with attempt:
            kept.create(conn)
            conn.execute(kept.insert().from_select(
                ["account_id", "month", "mrr"],
                select(spread.c.account_id, spread.c.month, spread.c.mrr)))
    except SQLAlchemyError as exc:
        log.warning("revenue from invoices is spread again for every query: no temporary "
                    "table could be made (%s)", _first_line(exc))
        return spread
    return kept


def _pick(columns: Sequence[str], shape: Shape, query: str) -> None:
    missing = [c for c in shape.required if c not in columns]
    if missing:
        close = difflib.get_close_matches(missing[0], list(columns), n=1)
        hint = f" (is '{close[0]}' it? alias it: {close[0]} AS {missing[0]})" if close else ""
        raise SourceError(
            f"source.{query}: column '{missing[0]}' is missing{hint}; the query returns "
            f"{', '.join(columns) or 'no columns'} and must return "
            f"{', '.join(shape.required)}"
            + (f" (optional: {', '.join(shape.optional)})" if shape.optional else ""))


def query_columns(conn: Connection, sql: str, key: str) -> list[str]:
    """The columns ``sql`` returns, by running it with LIMIT 0 (nothing is read)."""
    try:
        result = conn.execute(select(text("*")).select_from(
            text(sql).columns().subquery(key)).limit(0))
        return [str(c).lower() for c in result.keys()]  # noqa: SIM118 - a Result, not a dict
    except SQLAlchemyError as exc:
        conn.rollback()
        raise SourceError(f"source.{key}: the query fails: {_first_line(exc)}") from exc


def _first_line(exc: SQLAlchemyError) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]


def _user_query(sql: str, columns: Sequence[str], key: str) -> FromClause:
    return text(sql).columns(*[column(c) for c in columns]).subquery(f"source_{key}")


def _typed(name: str, expr: Any) -> Any:
    if name in _DATE_COLUMNS:
        return as_date(expr).label(name)
    if name in _NUMBER_COLUMNS:
        return cast(expr, Double).label(name)
    return cast(expr, String).label(name)


def _normalised(conn: Connection, sql: str, shape: Shape, key: str) -> FromClause:
    columns = query_columns(conn, sql, key)
    _pick(columns, shape, key)
    q = _user_query(sql, columns, key)
    selected = [_typed(c, q.c[c]) for c in shape.required if c != "timestamp"]
    if shape is EVENTS:
        selected += [q.c.timestamp.label("timestamp"),
                     literal(1, Integer).label("occurrences")]
    for name in shape.optional:
        if name in columns:
            selected.append(_typed(name, q.c[name]))
        else:
            default: Any = {"name": literal("", String), "plan": literal("", String),
                            "user_id": literal("", String), "currency": literal("", String)
                            }.get(name, null())
            if name in _DATE_COLUMNS:
                default = cast(null(), Date)
            elif name in _NUMBER_COLUMNS:
                default = cast(null(), Double)
            selected.append(default.label(name))
    return select(*selected).subquery(key)


def check_query(conn: Connection, sql: str, key: str) -> None:
    """Run the normalised query with LIMIT 0 and a few rows; name a column of the wrong type."""
    shape = _shape_of(conn, sql, key)
    normalised = _normalised(conn, sql, shape, key)
    for col in normalised.c:
        try:
            conn.execute(select(col).limit(5)).all()
        except (SQLAlchemyError, ValueError, TypeError) as exc:
            if conn.in_transaction():
                conn.rollback()
            expected = ("a date" if col.name in _DATE_COLUMNS else
                        "a number" if col.name in _NUMBER_COLUMNS else
                        "a timestamp" if col.name == "timestamp" else "text")
            detail = _first_line(exc) if isinstance(exc, SQLAlchemyError) else str(exc)
            raise SourceError(f"source.{key}: column '{col.name}' must be {expected}: "
                              f"{detail}") from exc
    # SQLite reads a date it cannot parse as NULL instead of failing: look for one
    columns = query_columns(conn, sql, key)
    raw = _user_query(sql, columns, key)
    for name in (c for c in columns if c in _DATE_COLUMNS):
        try:
            bad = conn.execute(select(raw.c[name]).where(
                raw.c[name].is_not(None), as_date(raw.c[name]).is_(None)).limit(1)).first()
        except SQLAlchemyError as exc:  # PostgreSQL and DuckDB fail on the first bad value
            conn.rollback()
            raise SourceError(f"source.{key}: column '{name}' must be a date: "
                              f"{_first_line(exc)}") from exc
        if bad is not None:
            raise SourceError(f"source.{key}: column '{name}' must be a date: {bad[0]!r} is "
                              "not one (use YYYY-MM-DD or a DATE/TIMESTAMP column)")


def _shape_of(conn: Connection, sql: str, key: str) -> Shape:
    if key != "revenue":
        return {"accounts": ACCOUNTS, "usage": USAGE, "events": EVENTS}[key]
    columns = query_columns(conn, sql, key)
    if "mrr" in columns or "month" in columns:
        return MONTHLY_REVENUE
    return INVOICES


def _empty(shape_table: FromClause, key: str) -> FromClause:
    """No rows, in the shape of ``shape_table`` (which need not exist in that database)."""
    return select(*[cast(null(), c.type).label(c.name) for c in shape_table.c]
                  ).where(false()).subquery(key)


def invoice_rates(conn: Connection, invoices: FromClause, revenue: RevenueSettings
                  ) -> dict[str, float]:
    """Value of one unit of each invoice currency in ``revenue.currency``, by upper-case
    code ("" for none); a clear error for a currency without a rate."""
    currencies = [str(c or "") for c in conn.execute(
        select(invoices.c.currency).distinct()).scalars()]
    rates = {"": 1.0, revenue.currency.upper(): 1.0,
             **{k.upper(): v for k, v in revenue.rates.items()}}
    unknown = sorted({c for c in currencies if c.upper() not in rates})
    if unknown:
        raise SourceError(
            f"revenue: currency '{unknown[0]}' has no rate: add it to [revenue] rates, e.g. "
            f"rates = {{ {unknown[0]} = 1.0 }} (value of one {unknown[0]} in "
            f"{revenue.currency})")
    return rates


def _converted(amount: Any, currency: Any, rates: Mapping[str, float]) -> Any:
    """``amount`` in ``currency`` (an upper-case code) -> the reporting currency."""
    return amount * case(*[(currency == code, rate) for code, rate in rates.items() if code],
                         else_=1.0)


def spread_invoices(conn: Connection, invoices: FromClause, rates: Mapping[str, float]
                    ) -> FromClause:
    """Invoices (account_id, period_start, period_end, currency, amount) -> monthly MRR
    (``rates``: :func:`invoice_rates`)."""
    totals = invoice_month_totals(conn, invoices)
    if totals is None:
        return _empty(schema.revenue, "revenue")
    return _monthly_mrr(totals.subquery("invoice_months"), rates)


def invoice_month_totals(conn: Connection, invoices: FromClause) -> Select[Any] | None:
    """Invoices spread over months, per account, month and currency, unconverted: the
    rows of ``invoice_months`` (None without invoices)."""
    pieces = _invoice_pieces(conn, invoices)
    if pieces is None:
        return None
    return select(pieces.c.account_id, pieces.c.month, pieces.c.currency,
                  func.sum(pieces.c.part).label("amount")
                  ).group_by(pieces.c.account_id, pieces.c.month, pieces.c.currency)


def invoice_months_revenue(rates: Mapping[str, float]) -> FromClause:
    """Monthly MRR from ``invoice_months`` (the imported invoices, spread at import)."""
    return _monthly_mrr(schema.invoice_months, rates)


def _monthly_mrr(months: FromClause, rates: Mapping[str, float]) -> FromClause:
    """(account_id, month, currency, amount) rows -> MRR per account and month, converted."""
    return select(months.c.account_id, months.c.month,
                  func.sum(_converted(months.c.amount, months.c.currency, rates)).label("mrr")
                  ).group_by(months.c.account_id, months.c.month).subquery("revenue")


def _invoice_pieces(conn: Connection, invoices: FromClause) -> Subquery | None:
    """Each invoice's share of each month it covers (account_id, month, currency, part),
    in proportion to the share of the month's days it covers; None without invoices."""
    lo, hi = conn.execute(select(func.min(invoices.c.period_start),
                                 func.max(invoices.c.period_end))).one()
    months = _months(to_date(lo), to_date(hi))
    if not months:
        return None
    # literal rows (not VALUES, whose column aliases SQLite cannot name)
    calendar = union_all(*[select(literal(first, Date).label("month"),
                                  literal(following, Date).label("next_month"),
                                  literal(days, Integer).label("month_days"),
                                  literal(_month_number(first), Integer).label("number"))
                           for first, following, days in months]).subquery("calendar")
    same_day = and_(extract("day", invoices.c.period_end)
                    == extract("day", invoices.c.period_start),
                    invoices.c.period_end > invoices.c.period_start)
    last_day = case((same_day, date_plus_days(invoices.c.period_end, -1)),
                    else_=invoices.c.period_end)
    inv = select(
        invoices.c.account_id, invoices.c.period_start, last_day.label("last_day"),
        _month_number(invoices.c.period_start).label("first_month"),
        _month_number(last_day).label("last_month"),
        func.upper(func.coalesce(invoices.c.currency, "")).label("currency"),
        invoices.c.amount,
        # each row its own invoice: two line items of one period are two amounts to spread
        func.row_number().over().label("invoice"),
    ).cte("invoice")
    # each invoice once per month it covers, counted up from its first month: a join on
    # the calendar's months between the first and the last compared every invoice with
    # every month (393,000 invoices over 35 months on SQLite: 13.0 s -> 7.4 s)
    covered = select(*inv.c, inv.c.first_month.label("number")).cte("covered", recursive=True)
    covered = covered.union_all(
        select(*[covered.c[c.name] for c in inv.c], covered.c.number + 1)
        .where(covered.c.number < covered.c.last_month))
    after_last = date_plus_days(covered.c.last_day, 1)
    start = case((covered.c.period_start > calendar.c.month, covered.c.period_start),
                 else_=calendar.c.month)
    stop = case((after_last < calendar.c.next_month, after_last), else_=calendar.c.next_month)
    share = days_between(start, stop) * 1.0 / calendar.c.month_days
    return select(
        covered.c.account_id, calendar.c.month, covered.c.currency,
        (covered.c.amount * share / func.sum(share).over(partition_by=covered.c.invoice)
         ).label("part"),
    ).select_from(covered.join(calendar, calendar.c.number == covered.c.number)
                  ).subquery("pieces")


def to_date(value: Any) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _month_number(day: Any) -> Any:
    """Months since year 0 of a date, or of a date column (the same number in SQL)."""
    if isinstance(day, dt.date):
        return day.year * 12 + day.month - 1
    return extract("year", day) * 12 + extract("month", day) - 1


def _months(lo: dt.date | None, hi: dt.date | None) -> list[tuple[dt.date, dt.date, int]]:
    """(first day, next month's first day, days) for each month from ``lo`` to ``hi``."""
    if lo is None or hi is None:
        return []
    month = lo.replace(day=1)
    out = []
    while month <= hi:
        following = (month + dt.timedelta(days=32)).replace(day=1)
        out.append((month, following, (following - month).days))
        month = following
    return out


def _monthly(conn: Connection, sql: str) -> FromClause:
    q = _normalised(conn, sql, MONTHLY_REVENUE, "revenue")
    return select(q.c.account_id, month_start(q.c.month).label("month"),
                  func.sum(q.c.mrr).label("mrr")
                  ).group_by(q.c.account_id, month_start(q.c.month)).subquery("revenue")


def _has_invoices(conn: Connection) -> bool:
    """Whether invoices were imported (then they, not the monthly table, give revenue)."""
    return _has_rows(conn, schema.invoices)


def _has_rows(conn: Connection, table: Table) -> bool:
    return bool(conn.execute(select(exists().select_from(table))).scalar())


@functools.lru_cache(maxsize=4)
def _engine(url: str) -> Engine:
    # one pool per source URL for the life of the process, not one per question
    return make_engine(url)


class DataSources:
    """How to reach the data: ``[source]`` SQL on its own URL, or valuemetric's own tables."""

    def __init__(self, own: Engine, settings: SourceSettings | None = None, *,
                 revenue: RevenueSettings | None = None,
                 catalog: Sequence[Metric] = ()) -> None:
        self.own = own
        self.settings = settings or SourceSettings()
        self.revenue = revenue or RevenueSettings()
        self.catalog = {m.name: m for m in catalog}

    @property
    def engine(self) -> Engine:
        return _engine(self.settings.url) if self.settings.url else self.own

    def queries(self) -> dict[str, str]:
        """The configured ``[source]`` SQL by shape (only those set)."""
        s = self.settings
        # a trailing semicolon would end the statement inside the wrapping subquery
        return {k: v.strip().rstrip(";") for k, v in (
            ("accounts", s.accounts), ("usage", s.usage), ("revenue", s.revenue),
            ("events", s.events)) if v.strip()}

    def build(self, conn: Connection, copies: Mapping[str, FromClause] | None = None
              ) -> Source:
        """The selectables on ``conn`` (a connection of :attr:`engine`).

        With a separate ``source.url``, a shape without a query reads ``copies`` (the
        imported table copied onto ``conn`` by :meth:`on`); none there means no rows.
        """
        queries = self.queries()
        separate = bool(self.settings.url)
        copies = copies or {}
        available = {*queries, *copies, *(["revenue"] if "invoices" in copies else [])}
        for key in ("accounts", "revenue"):
            if separate and key not in available:
                raise SourceError(
                    f"source.{key}: nothing to read: source.url is set, there is no "
                    f"source.{key} query and nothing was imported into database.url; add "
                    f"the SQL or import {key}")

        def shape(key: str, shape: Shape, imported: FromClause) -> FromClause:
            if key in queries:
                return _normalised(conn, queries[key], shape, key)
            if separate:
                return copies[key] if key in copies else _empty(imported, key)
            return imported

        invoices: FromClause | None = None
        if "revenue" in queries:
            sql = queries["revenue"]
            if _shape_of(conn, sql, "revenue") is MONTHLY_REVENUE:
                revenue = _monthly(conn, sql)
            else:
                invoices = _normalised(conn, sql, INVOICES, "invoices")
        elif separate and "invoices" in copies:
            invoices = copies["invoices"]
        elif separate:
            revenue = copies["revenue"]
        elif _has_invoices(conn):
            invoices = schema.invoices
        else:
            revenue = schema.revenue
        spreads = False
        if invoices is not None:
            rates = invoice_rates(conn, invoices, self.revenue)
            if invoices is schema.invoices and _has_rows(conn, schema.invoice_months):
                revenue = invoice_months_revenue(rates)  # spread by the import
            else:  # e.g. a [source] query, or invoices from before invoice_months existed
                revenue = spread_invoices(conn, invoices, rates)
                spreads = True
        shown = conn.engine.url.render_as_string(hide_password=True)
        return Source(conn, shape("accounts", ACCOUNTS, schema.accounts),
                      shape("usage", USAGE, schema.usage),
                      shape("events", EVENTS, schema.events), revenue, self.catalog,
                      self.revenue.carry_forward_months,
                      f"[source] on {shown}" if queries else "imported tables", invoices,
                      spreads_invoices=spreads)

    @contextmanager
    def on(self, conn: Connection) -> Iterator[Source]:
        """The source on ``conn``, a connection of :attr:`engine`.

        With a separate ``source.url``, each imported table a shape falls back to (no query
        for it) is copied into a temporary table of ``conn`` first, so that every query
        still runs in one database; the copies are dropped afterwards. Temporary tables
        need no write access. This suits accounts, revenue and invoices; a large usage or
        events table is better read where it lives, through its own query. Revenue spread
        from invoices is kept in a temporary table once read (:attr:`Source.revenue`),
        dropped afterwards too.
        """
        copies = (_copy_imported(self.own, conn, set(self.queries())) if self.settings.url
                  else {})
        source = None
        try:
            source = replace(self.build(conn, copies), keeps_spread=True)
            yield source
        finally:
            # after a failed statement PostgreSQL refuses anything until rollback, which
            # drops temporary tables anyway: the error that got here is the one to report
            with suppress(SQLAlchemyError):
                kept = [t for t in (source.kept.values() if source else ())
                        if isinstance(t, Table)]
                for table in [*kept, *copies.values()]:
                    table.drop(conn, checkfirst=True)

    @contextmanager
    def connect(self) -> Iterator[Source]:
        with self.engine.connect() as conn, self.on(conn) as source:
            yield source

    @property
    def side(self) -> SourceOpener | None:
        """:meth:`connect`, when a second connection sees the same data cheaply: SQLite
        files and PostgreSQL, not an in-memory SQLite database (a database per connection)
        nor other engines (untested), nor shapes falling back to copies of imported tables
        (made again for every connection)."""
        url = self.engine.url
        if url.get_backend_name() not in ("sqlite", "postgresql") or (
                url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")):
            return None
        if self.settings.url and set(self.queries()) != {"accounts", "usage", "revenue",
                                                          "events"}:
            return None
        return self.connect


SourceOpener = Callable[[], AbstractContextManager[Source]]


def side_by_side(source: Source, side: SourceOpener | None,
                 jobs: Sequence[Callable[[Source], Any]]) -> list[Any]:
    """Each of ``jobs`` (queries through a Source) run once, results in order.

    With ``side`` (another connection onto the same data, e.g. :attr:`DataSources.side`)
    two run at a time: this thread through ``source``, a helper through its own. SQLite
    and the PostgreSQL driver let go of the GIL while a statement runs, so on two cores
    the per-account window statements, which dominate an analysis, overlap (a dataset at
    50,000 accounts: 4.2 s -> 3.8 s on SQLite, whose rows still pass the GIL one by one;
    7.9 s -> 5.3 s on PostgreSQL). Put the slowest jobs first: each side takes the next
    job when it is done.
    """
    if side is None or len(jobs) < 2:
        return [job(source) for job in jobs]
    results: list[Any] = [None] * len(jobs)
    taken = 0  # jobs handed out
    lock = threading.Lock()
    failed = threading.Event()  # one side failed: the other takes no more jobs

    def work(through: Source) -> None:
        nonlocal taken
        try:
            while True:
                with lock:
                    if failed.is_set() or taken == len(jobs):
                        return
                    index, taken = taken, taken + 1
                results[index] = jobs[index](through)
        except BaseException:
            failed.set()
            raise

    def helper() -> None:
        with lock:
            if taken == len(jobs):  # this side already did them all
                return
        with ExitStack() as stack:
            try:
                other = stack.enter_context(side())
            except Exception as exc:  # a connection limit, a full pool: one side does all
                log.warning("queries run one at a time: no second connection (%s)", exc)
                return
            work(other)

    with ThreadPoolExecutor(1, thread_name_prefix="side-by-side") as pool:
        helped = pool.submit(helper)
        try:
            work(source)
        except BaseException:
            with suppress(BaseException):  # the error here is the one to report
                helped.result()
            raise
        helped.result()
    return results


_FALLBACKS = {"accounts": ("accounts",), "usage": ("usage",), "events": ("events",),
              "revenue": ("invoices", "revenue")}  # invoices, when imported, give revenue
COPY_BATCH_ROWS = 50_000


def _copy_imported(own: Engine, conn: Connection, queried: set[str]) -> dict[str, Table]:
    """Temporary copies on ``conn`` of the non-empty imported tables that shapes without a
    query fall back to, by shape name ("invoices" for invoices)."""
    copies: dict[str, Table] = {}
    with own.connect() as mine:
        present = set(inspect(mine).get_table_names())
        for key, names in _FALLBACKS.items():
            if key in queried:
                continue
            for name in names:
                table = schema.metadata.tables[name]
                if name not in present or mine.execute(
                        select(exists().select_from(table))).scalar() is not True:
                    continue
                # Float is single precision on some engines (DuckDB's FLOAT): copy doubles
                copy = Table(f"vm_imported_{name}_{uuid.uuid4().hex[:8]}", MetaData(),
                             *[Column(c.name, Double() if isinstance(c.type, Float) else c.type)
                               for c in table.columns], prefixes=["TEMPORARY"])
                copy.create(conn)
                rows = mine.execution_options(yield_per=COPY_BATCH_ROWS).execute(
                    select(table))
                for batch in rows.partitions():
                    conn.execute(copy.insert(), [row._asdict() for row in batch])
                copies["invoices" if name == "invoices" else key] = copy
                break
    return copies


def imported(conn: Connection, catalog: Sequence[Metric] = (),
             revenue: RevenueSettings | None = None) -> Source:
    """The imported tables on ``conn`` (valuemetric's own database)."""
    return DataSources(conn.engine, revenue=revenue, catalog=catalog).build(conn)


__all__ = ["DataSources", "RevenueSettings", "Source", "SourceError", "SourceOpener",
           "SourceSettings", "check_query", "imported", "invoice_month_totals",
           "invoice_rates", "query_columns", "side_by_side", "spread_invoices", "to_date"]
