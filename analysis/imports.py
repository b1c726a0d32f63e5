"""CSV import of accounts, usage and revenue: streamed, validated, one transaction per file.

The file is parsed and type-checked row by row in Python, written in batches into a
temporary staging table, and checked there in SQL (duplicate keys, unknown accounts).
Only a clean file is upserted into the real table, in the same transaction; a bad row
rejects the whole file and nothing is written. Re-importing a file changes nothing (the
upsert skips rows whose values are equal); a corrected value replaces the old one.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import math
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Date,
    Engine,
    Integer,
    MetaData,
    Table,
    and_,
    case,
    exists,
    func,
    or_,
    select,
    true,
)

from analysis.db import dialect_insert
from analysis.schema import accounts, revenue, usage

MAX_PROBLEMS = 20
BATCH_ROWS = 20_000


@dataclass(frozen=True, order=True)
class Problem:
    line: int
    column: str
    message: str


class ImportRejected(Exception):
    """The file has problems; nothing was written."""

    def __init__(self, path: str, problems: list[Problem], total: int) -> None:
        self.path = path
        self.problems = problems
        self.total = total
        super().__init__(self.describe())

    def describe(self) -> str:
        lines = [f"{self.path}:{p.line}: {p.column}: {p.message}" for p in self.problems]
        if self.total > len(self.problems):
            lines.append(f"... and {self.total - len(self.problems)} more problems")
        lines.append(f"{self.path}: rejected, nothing was written; fix the rows above and re-run")
        return "\n".join(lines)


@dataclass(frozen=True)
class ImportReport:
    kind: str
    path: str
    rows: int
    inserted: int
    updated: int
    unchanged: int
    seconds: float
    warnings: tuple[str, ...] = field(default=())

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float(self.rows)


class _FieldError(Exception):
    def __init__(self, column: str, message: str) -> None:
        self.column = column
        self.message = message


@functools.lru_cache(maxsize=65_536)
def _parse_date(text: str) -> dt.date:
    # fromisoformat also takes 20240131 and week dates; the contract says YYYY-MM-DD only.
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        raise ValueError(text)
    return dt.date.fromisoformat(text)


def _date(row: dict[str, str], column: str, *, required: bool = True) -> dt.date | None:
    text = (row.get(column) or "").strip()
    if not text:
        if required:
            raise _FieldError(column, "missing date (expected YYYY-MM-DD)")
        return None
    try:
        return _parse_date(text)
    except ValueError:
        raise _FieldError(column, f"bad date {text!r} (expected YYYY-MM-DD)") from None


def _number(row: dict[str, str], column: str, *, minimum: float | None = None) -> float:
    text = (row.get(column) or "").strip()
    try:
        value = float(text)
    except ValueError:
        raise _FieldError(column, f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise _FieldError(column, f"not a finite number: {text!r}")
    if minimum is not None and value < minimum:
        raise _FieldError(column, f"must be >= {minimum:g}, got {text}")
    return value


def _text(row: dict[str, str], column: str, *, required: bool = True) -> str:
    text = (row.get(column) or "").strip()
    if required and not text:
        raise _FieldError(column, "missing value")
    return text


def _account_row(row: dict[str, str]) -> dict[str, Any]:
    signup = _date(row, "signup_date")
    churn = _date(row, "churn_date", required=False)
    if churn is not None and signup is not None and churn < signup:
        raise _FieldError("churn_date", f"{churn} is before signup_date {signup}")
    return {
        "account_id": _text(row, "account_id"),
        "name": _text(row, "name", required=False),
        "plan": _text(row, "plan", required=False),
        "signup_date": signup,
        "churn_date": churn,
        "owner": _text(row, "owner", required=False) or None,
    }


def _usage_row(row: dict[str, str]) -> dict[str, Any]:
    return {
        "account_id": _text(row, "account_id"),
        "metric": _text(row, "metric"),
        "date": _date(row, "date"),
        "value": _number(row, "value"),
    }


def _next_month(month: dt.date) -> dt.date:
    return dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _revenue_row(row: dict[str, str]) -> dict[str, Any]:
    month = _date(row, "month")
    assert month is not None
    if month.day != 1:
        raise _FieldError("month",
                          f"{month} is not the first day of a month (use {month:%Y-%m}-01)")
    return {
        "account_id": _text(row, "account_id"),
        "month": month,
        "mrr": _number(row, "mrr", minimum=0),
        "next_month": _next_month(month),
    }


@dataclass(frozen=True)
class _Kind:
    table: Table
    required: tuple[str, ...]
    optional: tuple[str, ...]
    parse: Callable[[dict[str, str]], dict[str, Any]]
    extra_stage_columns: tuple[Column[Any], ...] = ()

    @property
    def keys(self) -> list[str]:
        return [c.name for c in self.table.primary_key.columns]

    @property
    def values(self) -> list[str]:
        return [c.name for c in self.table.columns if not c.primary_key]


KINDS: dict[str, _Kind] = {
    "accounts": _Kind(accounts, ("account_id", "name", "plan", "signup_date", "churn_date"),
                      ("owner",), _account_row),
    "usage": _Kind(usage, ("account_id", "date", "metric", "value"), (), _usage_row),
    "revenue": _Kind(revenue, ("account_id", "month", "mrr"), (), _revenue_row,
                     (Column("next_month", Date),)),
}


def _stage_table(kind: _Kind) -> Table:
    columns: list[Column[Any]] = [
        Column(c.name, c.type, nullable=True) for c in kind.table.columns
    ]
    columns += [Column(c.name, c.type) for c in kind.extra_stage_columns]
    columns.append(Column("line", Integer, nullable=False))
    return Table(f"vm_stage_{uuid.uuid4().hex[:12]}", MetaData(), *columns,
                 prefixes=["TEMPORARY"])


def _rows(path: Path, kind: _Kind, problems: list[Problem]) -> Iterator[dict[str, Any]]:
    """Parsed rows with their line numbers; problems are collected, not raised."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            problems.append(Problem(1, "header", "empty file; expected a header row: "
                                    + ",".join(kind.required)))
            return
        allowed = set(kind.required) | set(kind.optional)
        for name in header:
            if name not in allowed:
                problems.append(Problem(1, name or "(blank)", "unknown column (expected "
                                        + ",".join(kind.required) + ")"))
        for name in kind.required:
            if name not in header:
                problems.append(Problem(1, name, "missing column"))
        if len(set(header)) != len(header):
            problems.append(Problem(1, "header", "a column name appears twice"))
        if problems:
            return
        width = len(header)
        line = reader.line_num
        try:
            for fields in reader:
                line = reader.line_num
                if not fields:
                    continue
                if len(fields) != width:
                    problems.append(Problem(line, "row", f"expected {width} fields, got "
                                            f"{len(fields)}"))
                    continue
                try:
                    parsed = kind.parse(dict(zip(header, fields, strict=True)))
                except _FieldError as exc:
                    problems.append(Problem(line, exc.column, exc.message))
                    continue
                parsed["line"] = line
                yield parsed
        except UnicodeDecodeError as exc:
            problems.append(Problem(line + 1, "row", f"not UTF-8 text ({exc.reason})"))
        except csv.Error as exc:
            problems.append(Problem(reader.line_num, "row", f"malformed CSV: {exc}"))


def _stage(conn: Connection, stage: Table, rows: Iterator[dict[str, Any]],
           progress: Callable[[int], None] | None) -> int:
    # The driver's executemany straight away: SQLAlchemy's per-row parameter processing
    # would cost more than the database's work here.
    names = [c.name for c in stage.columns]
    sql = str(stage.insert().compile(dialect=conn.dialect))
    positional = conn.dialect.positional
    sqlite_dates = conn.dialect.name == "sqlite"  # stored as ISO text, as SQLAlchemy's Date does

    def encode(row: dict[str, Any]) -> Any:
        if sqlite_dates:
            row = {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in row.items()}
        return tuple(row[n] for n in names) if positional else row

    count = 0
    batch: list[Any] = []
    for row in rows:
        batch.append(encode(row))
        if len(batch) >= BATCH_ROWS:
            conn.exec_driver_sql(sql, batch)
            count += len(batch)
            batch = []
            if progress:
                progress(count)
    if batch:
        conn.exec_driver_sql(sql, batch)
        count += len(batch)
    return count


def _check_staged(conn: Connection, kind: _Kind, stage: Table) -> list[Problem]:
    """Problems only visible across rows: duplicate keys, references to unknown accounts."""
    problems: list[Problem] = []
    keys = [stage.c[k] for k in kind.keys]
    dupes = conn.execute(
        select(func.min(stage.c.line), func.max(stage.c.line), func.count())
        .group_by(*keys).having(func.count() > 1)
        .order_by(func.max(stage.c.line)).limit(MAX_PROBLEMS)
    ).all()
    for first, last, n in dupes:
        more = f" and {n - 2} other lines" if n > 2 else ""
        problems.append(Problem(last, ",".join(kind.keys),
                                f"duplicate key (also on line {first}{more})"))
    if kind.table is not accounts:
        unknown = conn.execute(
            select(stage.c.line, stage.c.account_id)
            .where(~exists().where(accounts.c.account_id == stage.c.account_id))
            .order_by(stage.c.line).limit(MAX_PROBLEMS)
        ).all()
        for line, account_id in unknown:
            problems.append(Problem(line, "account_id", f"unknown account {account_id!r} "
                                    "(import it in accounts.csv first)"))
    return problems


def _count_problems(conn: Connection, kind: _Kind, stage: Table) -> int:
    keys = [stage.c[k] for k in kind.keys]
    dupes = select(func.count()).select_from(
        select(*keys).group_by(*keys).having(func.count() > 1).subquery()
    )
    total = conn.execute(dupes).scalar_one()
    if kind.table is not accounts:
        total += conn.execute(
            select(func.count()).select_from(stage)
            .where(~exists().where(accounts.c.account_id == stage.c.account_id))
        ).scalar_one()
    return int(total)


def _same_key(kind: _Kind, stage: Table) -> Any:
    return and_(*[kind.table.c[k] == stage.c[k] for k in kind.keys])


def _differs(kind: _Kind, left: Any, right: Any) -> Any:
    return or_(*[left[c].is_distinct_from(right[c]) for c in kind.values])


def _upsert(conn: Connection, kind: _Kind, stage: Table) -> tuple[int, int]:
    """Write staged rows into the real table; returns (existing keys, changed rows)."""
    existing, changed = conn.execute(
        select(func.count(), func.coalesce(func.sum(
            case((_differs(kind, kind.table.c, stage.c), 1), else_=0)), 0))
        .select_from(stage.join(kind.table, _same_key(kind, stage)))
    ).one()
    columns = [c.name for c in kind.table.columns]
    # key order makes the index inserts sequential; the WHERE is for SQLite, which cannot
    # parse INSERT ... SELECT ... ON CONFLICT without one
    source = (select(*[stage.c[c] for c in columns]).where(true())
              .order_by(*[stage.c[k] for k in kind.keys]))
    ins = dialect_insert(conn, kind.table).from_select(columns, source)
    ins = ins.on_conflict_do_update(
        index_elements=kind.keys,
        set_={c: ins.excluded[c] for c in kind.values},
        where=_differs(kind, kind.table.c, ins.excluded),
    )
    conn.execute(ins)
    return int(existing), int(changed)


def _examples(ids: list[str]) -> str:
    return ", ".join(ids[:3]) + (", ..." if len(ids) > 3 else "")


def _warnings(conn: Connection, kind: _Kind, stage: Table) -> list[str]:
    """Data-quality findings that do not block the import."""
    found: list[str] = []
    if kind.table is usage:
        outside = or_(stage.c.date < accounts.c.signup_date,
                      and_(accounts.c.churn_date.is_not(None),
                           stage.c.date > accounts.c.churn_date))
        rows = conn.execute(
            select(stage.c.account_id, func.count())
            .join(accounts, accounts.c.account_id == stage.c.account_id)
            .where(outside).group_by(stage.c.account_id).order_by(stage.c.account_id)
        ).all()
        if rows:
            found.append(f"{sum(n for _, n in rows):,} usage rows of {len(rows):,} accounts are "
                         f"dated before signup or after churn (e.g. "
                         f"{_examples([a for a, _ in rows])})")
        idle = conn.execute(
            select(accounts.c.account_id)
            .where(~exists().where(usage.c.account_id == accounts.c.account_id))
            .order_by(accounts.c.account_id)
        ).scalars().all()
        if idle:
            found.append(f"{len(idle):,} accounts have no usage at all "
                         f"(e.g. {_examples(list(idle))})")
    if kind.table is revenue:
        quiet = conn.execute(
            select(stage.c.account_id, func.count())
            .where(~exists().where(and_(usage.c.account_id == stage.c.account_id,
                                        usage.c.date >= stage.c.month,
                                        usage.c.date < stage.c.next_month)))
            .group_by(stage.c.account_id).order_by(stage.c.account_id)
        ).all()
        if quiet:
            found.append(f"{sum(n for _, n in quiet):,} revenue months of {len(quiet):,} accounts "
                         f"have no usage in that month (e.g. {_examples([a for a, _ in quiet])})")
    return found


def import_csv(engine: Engine, kind_name: str, path: str | Path,
               progress: Callable[[int], None] | None = None) -> ImportReport:
    """Import one CSV file of ``kind_name`` (accounts, usage, revenue) in one transaction.

    Raises :class:`ImportRejected` (nothing written) when any row is bad.
    """
    kind = KINDS[kind_name]
    path = Path(path)
    started = time.perf_counter()
    stage = _stage_table(kind)
    with engine.connect() as conn:
        try:
            with conn.begin():
                stage.create(conn)
                problems: list[Problem] = []
                staged = _stage(conn, stage, _rows(path, kind, problems), progress)
                if not problems:
                    problems = _check_staged(conn, kind, stage)
                    total = _count_problems(conn, kind, stage) if problems else 0
                else:
                    total = len(problems)
                if problems:
                    problems.sort()
                    raise ImportRejected(str(path), problems[:MAX_PROBLEMS], total)
                existing, changed = _upsert(conn, kind, stage)
                warnings = _warnings(conn, kind, stage)
        finally:
            with conn.begin():
                stage.drop(conn, checkfirst=True)
    return ImportReport(
        kind=kind_name, path=str(path), rows=staged, inserted=staged - existing,
        updated=changed, unchanged=existing - changed,
        seconds=time.perf_counter() - started, warnings=tuple(warnings),
    )


__all__ = ["KINDS", "ImportRejected", "ImportReport", "Problem", "import_csv"]
