"""CSV import of accounts, usage, revenue, events and invoices: one transaction per file.

The file is read in chunks by pandas' C parser and every chunk is validated a column at a
time (vectorised: no Python loop over rows), including unknown accounts (against the
account ids read once) and future dates; a thread reads and checks the next chunk while
this one is written. Into an empty table the clean chunks go straight into the table, as
the engine's own loader would (``COPY`` on PostgreSQL for kinds that merge nothing;
``executemany`` on SQLite, each chunk in key order, repeated event and invoice keys merged
by ``ON CONFLICT``, secondary indexes updated as rows arrive); a constraint violation such
as a repeated key falls back to the staged import, which names the lines. Otherwise each chunk
is bulk-loaded into a temporary staging table. Keys are hashed as they pass, and only when
two hashes repeat does a SQL query look for the duplicate lines. The staged rows are then
written in the same transaction: on SQLite by ONE ``INSERT ... SELECT ... ON CONFLICT DO
UPDATE`` (secondary indexes rebuilt once when the load is at least as big as the table), on
PostgreSQL, with the table locked against other writers, by an UPDATE of changed rows and a
plain INSERT of new ones. A bad row rejects the whole file and nothing is written.
Re-importing a file changes nothing (rows whose values are equal are skipped); a corrected
value replaces the old one. Events and invoices repeating a key are merged (counted and
summed) instead of rejected, since exports legitimately contain such repeats.

Problems are found per data *record* (the n-th row after the header); only when a file is
rejected are records mapped back to physical line numbers, by re-reading the file.
"""

from __future__ import annotations

import codecs
import collections
import concurrent.futures
import contextlib
import csv
import datetime as dt
import gzip
import io
import os
import re
import sqlite3
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, TypeVar, cast

import numpy as np
import pandas as pd
from sqlalchemy import (
    Column,
    Connection,
    Date,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from analysis.db import DatabaseError, dialect_insert, write_transaction
from analysis.schema import accounts, events, invoice_months, invoices, revenue, usage
from analysis.sources import invoice_month_totals

MAX_PROBLEMS = 20
CHUNK_ROWS = 100_000  # small enough that reading the next overlaps writing this one
_Item = TypeVar("_Item")
RECORD = "vm_record"  # staging column: index of the data record in the file (0 = first row)

# (phase, rows done so far or None) -> None; phases: wait, read, check, upsert, index,
# statistics, commit
Progress = Callable[[str, "int | None"], None]


@dataclass(frozen=True, order=True)
class Problem:
    line: int  # 0 = the file as a whole
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
        lines = [f"{self.path}:{p.line}: {p.column}: {p.message}" if p.line
                 else f"{self.path}: {p.message}" for p in self.problems]
        if self.total > len(self.problems):
            lines.append(f"... and {self.total - len(self.problems)} more problems")
        lines.append(f"{self.path}: rejected, nothing was written; fix the rows above and re-run")
        return "\n".join(lines)


@dataclass(frozen=True)
class ImportReport:
    kind: str
    path: str
    rows: int  # data rows in the file
    inserted: int
    updated: int
    unchanged: int
    seconds: float
    merged: int = 0  # rows folded into another row with the same key (events, invoices)
    warnings: tuple[str, ...] = field(default=())

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float(self.rows)


# -- vectorised validation ------------------------------------------------------------------

class _Checks:
    """Collects problems of one chunk: the first few per check, and how many in all."""

    def __init__(self, first_record: int, today: dt.date, currencies: frozenset[str] | None
                 ) -> None:
        self.first_record = first_record
        self.latest = today + dt.timedelta(days=1)
        self.currencies = currencies
        self.found: list[tuple[int, str, str]] = []  # (record, column, message)
        self.total = 0

    def flag(self, bad: pd.Series[bool], column: str,
             message: str | Callable[[pd.Series[str]], pd.Series[str]],
             values: pd.Series[str]) -> None:
        count = int(bad.sum())
        if not count:
            return
        self.total += count
        positions = np.flatnonzero(bad.to_numpy())[:MAX_PROBLEMS]
        shown = values.iloc[positions]
        texts = ([message] * len(positions) if isinstance(message, str)
                 else list(message(shown)))
        self.found += [(self.first_record + int(p), column, t)
                       for p, t in zip(positions, texts, strict=True)]


def _required_text(frame: pd.DataFrame, column: str, checks: _Checks) -> pd.Series[str]:
    values = frame[column]
    checks.flag(pd.Series(~values.to_numpy().astype(bool), index=values.index), column,
                "missing value", values)
    return values


def _dates(frame: pd.DataFrame, column: str, checks: _Checks, *, required: bool = True,
           future: bool = False) -> pd.Series[str]:
    """ISO dates as YYYY-MM-DD text (how SQLAlchemy's Date is stored on SQLite), or None."""
    text = frame[column]
    # exports repeat few dates many times: each distinct text is parsed and formatted once
    codes, distinct = pd.factorize(text.to_numpy())
    parsed_distinct = pd.to_datetime(pd.Series(distinct, dtype=object), format="%Y-%m-%d",
                                      errors="coerce")
    parsed = pd.Series(parsed_distinct.to_numpy()[codes], index=frame.index)
    blank = pd.Series(~text.to_numpy().astype(bool), index=frame.index)
    checks.flag(parsed.isna() & ~blank, column,
                lambda v: "bad date " + v.map(repr) + " (expected YYYY-MM-DD)", text)
    if required:
        checks.flag(blank, column, "missing date (expected YYYY-MM-DD)", text)
    if not future:
        checks.flag(parsed > pd.Timestamp(checks.latest), column,
                    lambda v: v + f" is in the future (after {checks.latest}): fix the date "
                    "or leave the row out until then", text)
    # written back in canonical form: stored dates compare as text on SQLite
    canonical = pd.Series(np.datetime_as_string(
        parsed_distinct.to_numpy(dtype="datetime64[D]"), unit="D"), dtype=object
    ).where(parsed_distinct.notna(), None).to_numpy()
    return pd.Series(canonical[codes], index=frame.index, dtype=object)


def _timestamps(frame: pd.DataFrame, column: str, checks: _Checks) -> pd.Series[str]:
    """ISO-8601 timestamps, with or without an offset, as naive UTC text (SQLAlchemy's form)."""
    text = frame[column]
    parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    checks.flag(parsed.isna(), column, lambda v: "bad timestamp " + v.map(repr)
                + " (expected ISO-8601, e.g. 2024-03-01T12:30:00Z)", text)
    limit = pd.Timestamp(checks.latest, tz="UTC") + pd.Timedelta(days=1)
    checks.flag(parsed >= limit, column, lambda v: v + f" is in the future (after "
                f"{checks.latest}): fix the clock of the export or leave the row out", text)
    stamped = _whole_seconds(text) if parsed.notna().all() else None
    if stamped is None:
        naive = parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
        stamped = np.datetime_as_string(naive, unit="us").astype("S26")
    # 2024-03-01T08:00:00.000000 -> 2024-03-01 08:00:00.000000: an in-place byte edit
    # (np.char.replace loops in Python)
    stamped.view(np.uint8).reshape(-1, 26)[:, 10] = ord(" ")
    return pd.Series(stamped.astype(str), index=frame.index, dtype=object)


_SECONDS_FORM = b"dddd-dd-ddTdd:dd:dd"  # d: a digit
_DIGITS = np.array([c == ord("d") for c in _SECONDS_FORM])
_MARKS = [np.frombuffer(bytes(c for c in form if c != ord("d")), dtype=np.uint8)
          for form in (_SECONDS_FORM, _SECONDS_FORM.replace(b"T", b" "))]


def _whole_seconds(text: pd.Series[str]) -> np.ndarray[Any, Any] | None:
    """Parsed timestamps all written YYYY-MM-DDTHH:MM:SS, bare or with a ``Z`` (so already
    UTC) as S26 text with ``.000000`` appended, by byte copies: the usual export forms, and
    formatting parsed values back to text costs several times more. None for any other form."""
    try:  # one byte more than the longest form: it is zero unless the value is longer
        raw = text.to_numpy().astype("S21").view(np.uint8).reshape(-1, 21)
    except UnicodeEncodeError:
        return None
    chars = raw[:, :19]
    bare_or_zulu = (raw[:, 19] == 0) | ((raw[:, 19] == ord("Z")) & (raw[:, 20] == 0))
    if len(raw) == 0 or not bare_or_zulu.all():
        return None
    digits_ok = ((chars[:, _DIGITS] >= ord("0")) & (chars[:, _DIGITS] <= ord("9"))).all()
    marks = chars[:, ~_DIGITS]
    marks_ok = (marks == _MARKS[0]).all(axis=1) | (marks == _MARKS[1]).all(axis=1)
    if not (digits_ok and marks_ok.all()):
        return None
    stamped = np.empty(len(raw), dtype="S26")
    view = stamped.view(np.uint8).reshape(-1, 26)
    view[:, :19] = chars
    view[:, 19:] = np.frombuffer(b".000000", dtype=np.uint8)
    return stamped


def _numbers(frame: pd.DataFrame, column: str, checks: _Checks, *, required: bool = True,
             minimum: float | None = None) -> pd.Series[float]:
    text = frame[column]
    try:  # numpy's conversion is several times faster than to_numeric when all is well
        number = pd.Series(text.to_numpy().astype(np.float64), index=text.index)
    except ValueError:
        number = pd.to_numeric(text, errors="coerce")
    blank = text == ""
    checks.flag(number.isna() & ~blank, column, lambda v: "not a number: " + v.map(repr), text)
    checks.flag(number.abs() == np.inf, column,
                lambda v: "not a finite number: " + v.map(repr), text)
    if required:
        checks.flag(blank, column, "missing number", text)
    if minimum is not None:
        checks.flag(number < minimum, column, lambda v: f"must be >= {minimum:g}, got " + v,
                    text)
    return number


def _accounts(frame: pd.DataFrame, checks: _Checks) -> pd.DataFrame:
    signup = _dates(frame, "signup_date", checks)
    churn = _dates(frame, "churn_date", checks, required=False)
    early = churn.notna() & signup.notna() & (churn < signup)  # ISO text sorts as dates
    checks.flag(early, "churn_date",
                lambda v: v + " is before signup_date " + signup[v.index], frame["churn_date"])
    owner = frame["owner"] if "owner" in frame else pd.Series("", index=frame.index)
    return pd.DataFrame({
        "account_id": _required_text(frame, "account_id", checks),
        "name": frame["name"], "plan": frame["plan"],
        "signup_date": signup, "churn_date": churn,
        "owner": owner.where(owner != "", None),
    })


def _usage(frame: pd.DataFrame, checks: _Checks) -> pd.DataFrame:
    return pd.DataFrame({
        "account_id": _required_text(frame, "account_id", checks),
        "metric": _required_text(frame, "metric", checks),
        "date": _dates(frame, "date", checks),
        "value": _numbers(frame, "value", checks),
    })


def _revenue(frame: pd.DataFrame, checks: _Checks) -> pd.DataFrame:
    month = _dates(frame, "month", checks)
    checks.flag(month.notna() & (month.str[8:] != "01"), "month",
                lambda v: v + " is not the first day of a month (use " + v.str[:7] + "-01)",
                frame["month"])
    first = pd.to_datetime(month, format="%Y-%m-%d", errors="coerce")
    following = (first + pd.offsets.MonthBegin(1)).dt.strftime("%Y-%m-%d")
    return pd.DataFrame({
        "account_id": _required_text(frame, "account_id", checks),
        "month": month,
        "mrr": _numbers(frame, "mrr", checks, minimum=0),
        "next_month": following,
    })


def _events(frame: pd.DataFrame, checks: _Checks) -> pd.DataFrame:
    value = (_numbers(frame, "value", checks, required=False) if "value" in frame
             else pd.Series(np.nan, index=frame.index))
    return pd.DataFrame({
        "event": _required_text(frame, "event", checks),
        "timestamp": _timestamps(frame, "timestamp", checks),
        "account_id": _required_text(frame, "account_id", checks),
        "user_id": frame["user_id"],
        "occurrences": np.ones(len(frame), dtype=np.int64),  # merging repeats counts these
        "value": value,
    })


_CURRENCY = re.compile(r"^[A-Z]{3}$")


def _invoices(frame: pd.DataFrame, checks: _Checks) -> pd.DataFrame:
    start = _dates(frame, "period_start", checks)
    end = _dates(frame, "period_end", checks, future=True)  # annual plans end next year
    checks.flag(start.notna() & end.notna() & (end < start), "period_end",
                lambda v: v + " is before period_start " + start[v.index],
                frame["period_end"])
    currency = (frame["currency"].str.upper() if "currency" in frame
                else pd.Series("", index=frame.index))
    if checks.currencies is not None:
        known = ", ".join(sorted(checks.currencies))
        unknown = ~currency.isin(checks.currencies) & (currency != "")
        checks.flag(unknown, "currency", lambda v: "unknown currency " + v.map(repr)
                    + f" (known: {known}; add its rate to [revenue] rates)", currency)
    else:
        unlike = ~currency.str.fullmatch(_CURRENCY) & (currency != "")
        checks.flag(unlike, "currency", lambda v: v.map(repr)
                    + " is not an ISO 4217 code (three letters, e.g. USD)", currency)
    return pd.DataFrame({
        "account_id": _required_text(frame, "account_id", checks),
        "period_start": start, "period_end": end, "currency": currency,
        "amount": _numbers(frame, "amount", checks),
    })


@dataclass(frozen=True)
class _Kind:
    table: Table
    required: tuple[str, ...]
    optional: tuple[str, ...]
    convert: Callable[[pd.DataFrame, _Checks], pd.DataFrame]
    merged: Mapping[str, str] = field(default_factory=dict)  # column -> "count" | "sum"
    extra_stage_columns: tuple[Column[Any], ...] = ()

    @property
    def keys(self) -> list[str]:
        return [c.name for c in self.table.primary_key.columns]

    @property
    def values(self) -> list[str]:
        return [c.name for c in self.table.columns if not c.primary_key]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


KINDS: dict[str, _Kind] = {
    "accounts": _Kind(accounts, ("account_id", "name", "plan", "signup_date", "churn_date"),
                      ("owner",), _accounts),
    "usage": _Kind(usage, ("account_id", "date", "metric", "value"), (), _usage),
    "revenue": _Kind(revenue, ("account_id", "month", "mrr"), (), _revenue,
                     extra_stage_columns=(Column("next_month", Date),)),
    "events": _Kind(events, ("account_id", "user_id", "event", "timestamp"), ("value",), _events,
                    merged={"occurrences": "count", "value": "sum"}),
    "invoices": _Kind(invoices, ("account_id", "period_start", "period_end", "amount"),
                      ("currency",), _invoices, merged={"amount": "sum"}),
}


# -- reading the file -----------------------------------------------------------------------

_Compression = Literal["gzip"] | None


class _Unreadable(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


def _compression(path: Path) -> _Compression:
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic[:2] == b"\x1f\x8b":
        return "gzip"  # read transparently
    if magic == b"PK\x03\x04":
        raise _Unreadable(Problem(0, "file", "is a zip archive, not a CSV file: extract it "
                                  "first (unzip FILE) and import the CSV inside"))
    return None


def _binary(path: Path, compression: _Compression) -> IO[bytes]:
    return cast(IO[bytes], gzip.open(path, "rb")) if compression == "gzip" else open(path, "rb")


def _first_bad_byte(path: Path, compression: _Compression) -> Problem:
    decoder = codecs.getincrementaldecoder("utf-8")()
    with _binary(path, compression) as fh:
        for number, line in enumerate(fh, start=1):
            try:
                decoder.decode(line)
            except UnicodeDecodeError as exc:
                return Problem(number, "encoding", f"not UTF-8 text (byte 0x{line[exc.start]:02x}"
                               f" at character {exc.start + 1}): save the file as UTF-8, e.g. "
                               "iconv -f latin1 -t utf-8 FILE > FILE.utf8")
    return Problem(0, "encoding", "not UTF-8 text: save the file as UTF-8")


def _text(path: Path, compression: _Compression) -> IO[str]:
    return io.TextIOWrapper(_binary(path, compression), encoding="utf-8-sig", newline="")


def _header(path: Path, compression: _Compression) -> list[str]:
    try:
        with _text(path, compression) as fh:
            return [h.strip() for h in next(csv.reader(fh), [])]
    except UnicodeDecodeError:
        raise _Unreadable(_first_bad_byte(path, compression)) from None
    except (OSError, EOFError) as exc:  # e.g. a truncated gzip file
        raise _Unreadable(Problem(0, "file", f"cannot be read: {exc}")) from None


def _record_lines(path: Path, compression: _Compression, records: set[int]) -> dict[int, int]:
    """The physical line on which each data record starts (quoted fields may span lines)."""
    lines: dict[int, int] = {}
    last = max(records, default=-1)
    with _text(path, compression) as fh:
        reader = csv.reader(fh)
        next(reader, None)
        record, start = 0, reader.line_num + 1
        for fields in reader:
            if fields:  # blank lines are not records (pandas skips them too)
                if record in records:
                    lines[record] = start
                record += 1
                if record > last:
                    break
            start = reader.line_num + 1
    return lines


def parse_columns(spec: str) -> dict[str, str]:
    """``ours=theirs,...`` as given to ``--columns``; raises ValueError naming the fix."""
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        ours, sep, theirs = item.partition("=")
        if not sep or not ours.strip() or not theirs.strip():
            raise ValueError(f"--columns: {item!r} is not ours=theirs "
                             "(e.g. --columns account_id=org_id,date=day)")
        mapping[ours.strip()] = theirs.strip()
    return mapping


@dataclass(frozen=True)
class _Layout:
    """Which columns of the file are read, under which of our names."""

    positions: list[int]  # of the columns read, in the header
    ours: list[str]
    ignored: list[str]
    width: int  # columns in the header


def _layout(kind: _Kind, header: list[str], columns: Mapping[str, str]) -> _Layout:
    problems: list[Problem] = []
    if not any(header):
        problems.append(Problem(1, "header", "empty file; expected a header row: "
                                + ",".join(kind.required)))
        raise ImportRejected("", problems, len(problems))
    for ours in columns:
        if ours not in kind.columns:
            problems.append(Problem(1, ours, "--columns maps a column this import does not have "
                                    "(its columns: " + ",".join(kind.columns) + ")"))
    theirs, ours_read = [], []
    for ours in kind.columns:
        name = columns.get(ours, ours)
        if name in header:
            theirs.append(name)
            ours_read.append(ours)
        elif ours in kind.required:
            mapped = f" (--columns maps it to {name!r})" if ours in columns else ""
            problems.append(Problem(1, ours, f"missing column{mapped}; the header has: "
                                    + ",".join(header)))
    twice = sorted({h for h in theirs if header.count(h) > 1})
    if twice:
        problems.append(Problem(1, "header", "columns appear twice: " + ", ".join(twice)))
    if problems:
        raise ImportRejected("", problems, len(problems))
    return _Layout([header.index(t) for t in theirs], ours_read,
                   [h for h in header if h not in theirs], len(header))


def _chunks(path: Path, compression: _Compression, layout: _Layout
            ) -> Iterator[pd.DataFrame]:
    try:
        # every column is parsed (usecols would silently drop a row's surplus fields)
        reader = pd.read_csv(
            path, compression=compression, encoding="utf-8-sig", index_col=False,
            dtype=object, keep_default_na=False, na_filter=False, skipinitialspace=True,
            chunksize=CHUNK_ROWS, engine="c",
        )
        with reader, warnings.catch_warnings():
            # surplus fields on the first row are only a warning (and dropped) in pandas
            warnings.simplefilter("error", pd.errors.ParserWarning)
            for chunk in reader:
                ours = chunk.iloc[:, layout.positions]
                ours.columns = pd.Index(layout.ours)
                yield ours
    except pd.errors.ParserWarning:
        raise _Unreadable(Problem(2, "row", f"more fields than the header's {layout.width}")
                          ) from None
    except (OSError, EOFError) as exc:  # e.g. a truncated gzip file
        raise _Unreadable(Problem(0, "file", f"cannot be read: {exc}")) from None
    except UnicodeDecodeError:
        raise _Unreadable(_first_bad_byte(path, compression)) from None
    except pd.errors.ParserError as exc:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if found is None:
            raise _Unreadable(Problem(0, "file", f"malformed CSV: {exc}")) from None
        expected, line, saw = found.groups()
        raise _Unreadable(Problem(int(line), "row", f"expected {expected} fields, got {saw}")
                          ) from None


def _read_ahead(items: Iterator[_Item]) -> Iterator[_Item]:
    """The next item made in a thread while the caller works on this one: pandas' CSV
    parser, numpy and SQLite's inserts all run with the GIL released, so on two cores
    reading and checking a chunk overlaps writing the one before. One thread makes every
    item, in order."""
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="import-read") as pool:
        pending = pool.submit(next, items, None)
        while (item := pending.result()) is not None:
            pending = pool.submit(next, items, None)
            yield item


# -- the database side ----------------------------------------------------------------------

def _stage_table(kind: _Kind) -> Table:
    columns: list[Column[Any]] = [Column(c.name, c.type, nullable=True)
                                  for c in kind.table.columns]
    columns += [Column(c.name, c.type) for c in kind.extra_stage_columns]
    columns.append(Column(RECORD, Integer, nullable=False))
    return Table(f"vm_stage_{uuid.uuid4().hex[:12]}", MetaData(), *columns,
                 prefixes=["TEMPORARY"])


def _copy_rows(conn: Connection, kind: _Kind, stage: Table, chunk: _Chunk) -> None:
    """PostgreSQL: the chunk through COPY, the server's bulk path (into the staging table,
    or straight into the table itself, which has no record column)."""
    quote = conn.dialect.identifier_preparer.quote
    first_record = int(chunk.frame[RECORD].iloc[0])
    frame = chunk.frame[chunk.columns]
    names = ", ".join(quote(c) for c in frame.columns)
    # an unquoted empty field is NULL in COPY's CSV format; required text stays ''
    texts = [quote(c.name) for c in kind.table.columns
             if isinstance(c.type, String) and not c.nullable]
    options = "FORMAT csv" + (f", FORCE_NOT_NULL ({', '.join(texts)})" if texts else "")
    cursor: Any = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor, cursor.copy(f"COPY {quote(stage.name)} ({names}) FROM STDIN ({options})"
                                 ) as copy:
            copy.write(frame.to_csv(header=False, index=False))
    except Exception as exc:  # psycopg's DataError: psycopg is an optional extra
        refused = _refused_row(exc, first_record=first_record)
        if refused is None:
            raise
        raise refused from None


class _RowRefused(Exception):
    """The database refused a value (e.g. too long for its column): a problem of one row."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem


def _refused_row(exc: Exception, first_record: int) -> _RowRefused | None:
    diag = getattr(exc, "diag", None)
    where = re.search(r"line (\d+), column (\w+)", getattr(diag, "context", None) or "")
    if diag is None or where is None or getattr(diag, "sqlstate", "")[:2] != "22":
        return None  # not a data exception (SQLSTATE class 22) located in the COPY stream
    line, column = where.groups()
    return _RowRefused(Problem(first_record + int(line) - 1, column,
                               f"{diag.message_primary}: does not fit the column"))


def _packed(frame: pd.DataFrame) -> bytes:
    """SQLite: the chunk as a serialized in-memory database with one table, ``rows``.

    Made in the reading thread, so that the writing thread inserts it with one INSERT ...
    SELECT (:func:`_insert_packed`), which runs in SQLite without the GIL. Binding the rows
    one by one from Python in the writing thread competed with the reading thread for the
    GIL: the 5.1 M usage rows of benchmarks/company.py went in at 0.56-0.71x the rate of
    ``sqlite3``'s ``.import``; this way at 0.93-1.15x, and 1.4x in date order.
    """
    names = ", ".join(f'"{c}"' for c in frame.columns)  # our own column names
    with contextlib.closing(sqlite3.connect(":memory:")) as scratch:
        scratch.execute(f"CREATE TABLE rows ({names})")  # no types: values stay as bound
        # missing values are None in text columns and NaN in number columns, which SQLite
        # binds as NULL: the columns go to the driver as they are
        scratch.executemany(f"INSERT INTO rows VALUES ({', '.join('?' for _ in frame.columns)})",
                            zip(*(frame[c].tolist() for c in frame.columns), strict=True))
        scratch.commit()
        return scratch.serialize()


_CHUNK_SCHEMA = "vm_chunk"  # where the writing connection opens each packed chunk


@contextlib.contextmanager
def _chunk_schema(conn: Connection) -> Iterator[None]:
    """SQLite: an attached in-memory schema to open packed chunks in.

    It stays attached to the connection, emptied: SQLite refuses to detach a schema inside
    the transaction that read it, and the import's transaction is the caller's.
    """
    if not hasattr(sqlite3.Connection, "deserialize"):  # Python built without the API
        raise DatabaseError(f"this Python's sqlite3 module (SQLite {sqlite3.sqlite_version}) "
                            "cannot serialize databases, which imports into SQLite need: use "
                            "a Python 3.11+ built against SQLite 3.36 or newer (python.org, "
                            "Debian, Homebrew and the official Docker images are)")
    attached = {row[1] for row in conn.exec_driver_sql("PRAGMA database_list")}
    if _CHUNK_SCHEMA not in attached:
        conn.exec_driver_sql(f"ATTACH DATABASE ':memory:' AS {_CHUNK_SCHEMA}")
    try:
        yield
    finally:  # the last chunk's memory back: a database of one page, the least there is
        with contextlib.closing(sqlite3.connect(":memory:")) as empty:
            empty.execute("PRAGMA user_version = 0")
            dbapi: Any = conn.connection.dbapi_connection
            dbapi.deserialize(empty.serialize(), name=_CHUNK_SCHEMA)


def _insert_packed(conn: Connection, kind: _Kind, stage: Table, chunk: _Chunk) -> None:
    """SQLite: a packed chunk into the staging table, or into the table itself (an empty
    table, see :func:`_copies_directly`): there, rows repeating a key of a merging kind are
    merged as they arrive, as the staged import merges them."""
    assert chunk.packed is not None
    quote = conn.dialect.identifier_preparer.quote
    dbapi: Any = conn.connection.dbapi_connection
    dbapi.deserialize(chunk.packed, name=_CHUNK_SCHEMA)
    names = ", ".join(quote(c) for c in chunk.columns)
    # WHERE true: an upsert's ON CONFLICT after a SELECT would parse as a join's ON
    statement = (f"INSERT INTO {quote(stage.name)} ({names}) "
                 f"SELECT {names} FROM {_CHUNK_SCHEMA}.rows WHERE true")
    if stage is kind.table and kind.merged:
        table = quote(stage.name)
        merged = [f"{quote(c)} = {table}.{quote(c)} + excluded.{quote(c)}" if how == "count"
                  # SUM's NULL rule: NULL only when every value is NULL
                  else f"{quote(c)} = coalesce({table}.{quote(c)} + excluded.{quote(c)}, "
                  f"{table}.{quote(c)}, excluded.{quote(c)})"
                  for c, how in kind.merged.items()]
        statement += (f" ON CONFLICT ({', '.join(quote(k) for k in kind.keys)}) DO UPDATE SET "
                      + ", ".join(merged))
    conn.exec_driver_sql(statement)


def _duplicates(conn: Connection, kind: _Kind, stage: Table) -> tuple[list[Problem], int]:
    """Rows repeating a key (lines are record numbers here; the caller maps them)."""
    record = stage.c[RECORD]
    keys = [stage.c[k] for k in kind.keys]
    dupes = conn.execute(
        select(func.min(record), func.max(record), func.count())
        .group_by(*keys).having(func.count() > 1).order_by(func.max(record))
    ).all()
    problems = []
    for first, last, n in dupes[:MAX_PROBLEMS]:
        more = f" and {n - 2} other lines" if n > 2 else ""
        problems.append(Problem(last, ",".join(kind.keys),
                                f"duplicate key (also on line {{{first}}}{more})"))
    return problems, len(dupes)


def _source(conn: Connection, kind: _Kind, stage: Table, rows: int, repeats: bool
            ) -> tuple[Table, bool, int]:
    """The rows to write, whether they are already in key order, and how many there are.

    When keys repeat in a kind that merges them, they are merged once, into a second
    temporary table (its rows come out of GROUP BY in key order on SQLite), which both the
    counting query and the upsert then read. Without repeats the staged rows are final.
    """
    if not (kind.merged and repeats):
        return stage, False, rows
    keys = [stage.c[k] for k in kind.keys]
    merged_values = [(func.count() if how == "count" else func.sum(stage.c[name])).label(name)
                     for name, how in kind.merged.items()]
    merged = Table(f"{stage.name}_merged", MetaData(),
                   *[Column(c.name, c.type) for c in kind.table.columns],
                   prefixes=["TEMPORARY"])
    merged.create(conn)
    distinct = conn.execute(merged.insert().from_select(
        [*kind.keys, *kind.merged], select(*keys, *merged_values).group_by(*keys))
        .execution_options(preserve_rowcount=True)).rowcount
    return merged, conn.dialect.name == "sqlite", distinct


def _differs(kind: _Kind, left: Any, right: Any) -> Any:
    return or_(*[left[c].is_distinct_from(right[c]) for c in kind.values])


def _upsert(conn: Connection, kind: _Kind, source: Table, in_key_order: bool
            ) -> tuple[int, int]:
    """SQLite: one INSERT ... ON CONFLICT DO UPDATE; returns (existing keys, changed rows)."""
    table = kind.table
    same_key = and_(*[table.c[k] == source.c[k] for k in kind.keys])
    existing, changed = conn.execute(
        select(func.count(), func.coalesce(func.sum(
            case((_differs(kind, table.c, source.c), 1), else_=0)), 0))
        .select_from(source.join(table, same_key))
    ).one()
    columns = [c.name for c in table.columns]
    # key order makes the index inserts sequential; the WHERE is for SQLite, which cannot
    # parse INSERT ... SELECT ... ON CONFLICT without one
    rows = select(*[source.c[c] for c in columns]).where(true())
    if not in_key_order:
        rows = rows.order_by(*[source.c[k] for k in kind.keys])
    ins = dialect_insert(conn, table).from_select(columns, rows)
    ins = ins.on_conflict_do_update(
        index_elements=kind.keys,
        set_={c: ins.excluded[c] for c in kind.values},
        where=_differs(kind, table.c, ins.excluded),
    )
    conn.execute(ins)
    return int(existing), int(changed)


def _update_then_insert(conn: Connection, kind: _Kind, source: Table) -> tuple[int, int]:
    """PostgreSQL: UPDATE the changed rows, then a plain INSERT of the new ones.

    With the table locked against other writers (:func:`_lock_for_writing`) this is the
    upsert without ON CONFLICT's speculative insertion, which costs PostgreSQL almost
    twice a plain insert (measured: 9.0 s against 5.1 s for 300,000 rows); the row counts
    come for free. Returns (inserted rows, changed rows).
    """
    table = kind.table
    same_key = and_(*[table.c[k] == source.c[k] for k in kind.keys])
    changed = conn.execute(
        update(table).where(same_key, _differs(kind, table.c, source.c))
        .values({c: source.c[c] for c in kind.values})
    ).rowcount
    columns = [c.name for c in table.columns]
    inserted = conn.execute(insert(table).from_select(
        columns, select(*[source.c[c] for c in columns]).where(~exists().where(same_key)))
        .execution_options(preserve_rowcount=True)  # SQLAlchemy drops an INSERT's otherwise
    ).rowcount
    return inserted, changed


def _lock_for_writing(conn: Connection, kind: _Kind, progress: Progress | None) -> None:
    """PostgreSQL: keep other writers of the table out until commit; readers carry on."""
    if conn.dialect.name != "postgresql":
        return
    started = time.monotonic()
    quoted = conn.dialect.identifier_preparer.format_table(kind.table)
    while True:
        try:
            with conn.begin_nested():
                conn.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
                conn.exec_driver_sql(f"LOCK TABLE {quoted} IN SHARE ROW EXCLUSIVE MODE")
                conn.exec_driver_sql("SET LOCAL lock_timeout = 0")
            return
        except OperationalError as exc:
            if "lock timeout" not in str(exc.orig):
                raise
            if progress:
                progress("wait", int(time.monotonic() - started))


def _write(conn: Connection, kind: _Kind, stage: Table, rows: int, repeats: bool
           ) -> tuple[int, int, int]:
    """Write the staged rows; returns (distinct keys, existing keys, changed rows)."""
    source, in_key_order, distinct = _source(conn, kind, stage, rows, repeats)
    if conn.dialect.name == "postgresql":
        inserted, changed = _update_then_insert(conn, kind, source)
        existing = distinct - inserted
    else:
        existing, changed = _upsert(conn, kind, source, in_key_order)
    if source is not stage:
        source.drop(conn)
    return distinct, existing, changed


class _CopyConflict(Exception):
    """A file copied straight into its table violates a constraint (e.g. a key repeats):
    the staged import, which reports such rows by line, takes over."""


def _copies_directly(conn: Connection, kind: _Kind) -> bool:
    """An empty table (locked against other writers) and a kind that stages no extra
    columns: the file can go straight into the table, as the engine's own loader would.
    Staging it first and inserting it from there costs as much again. On PostgreSQL the
    kind must not merge repeated keys either (COPY cannot merge; SQLite merges with ON
    CONFLICT as rows arrive)."""
    if kind.extra_stage_columns or conn.dialect.name not in ("sqlite", "postgresql"):
        return False
    if conn.dialect.name == "postgresql" and kind.merged:
        return False
    return conn.execute(select(literal_column("1")).select_from(kind.table).limit(1)
                        ).first() is None


def _drop_indexes_for_load(conn: Connection, kind: _Kind, rows: int) -> list[Index]:
    """SQLite: secondary indexes to drop before a staged load at least as big as the table.

    Building an index once, from a sort, is cheaper than updating it row by row; the
    write lock is held, so nobody sees the table without them (readers see the snapshot
    from before the transaction).
    """
    if conn.dialect.name != "sqlite" or not kind.table.indexes or not rows:
        return []
    # counted up to one more than ``rows`` only: the load itself reads that many (a WITHOUT
    # ROWID table has no rowid to tell its size by)
    existing = conn.execute(select(func.count()).select_from(
        select(literal_column("1")).select_from(kind.table).limit(rows + 1).subquery())
    ).scalar_one()
    if rows < existing:
        return []
    dropped = sorted(kind.table.indexes, key=lambda index: str(index.name))
    for index in dropped:
        index.drop(conn)
    return dropped


def _examples(ids: list[str]) -> str:
    return ", ".join(ids[:3]) + (", ..." if len(ids) > 3 else "")


def _warnings(conn: Connection, kind: _Kind, stage: Table, staged: _Staged) -> list[str]:
    """Data-quality findings that do not block the import."""
    found: list[str] = []
    if kind.table is usage:
        rows = sorted(staged.outside_life.items())
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


@contextlib.contextmanager
def _heartbeat(progress: Progress | None, phase: str) -> Iterator[None]:
    """Reports the phase every few seconds while one long statement runs."""
    if progress is None:
        yield
        return
    progress(phase, None)
    done = threading.Event()

    def beat() -> None:
        while not done.wait(3.0):
            progress(phase, None)

    thread = threading.Thread(target=beat, name=f"import-{phase}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


@contextlib.contextmanager
def _bulk_session(conn: Connection) -> Iterator[None]:
    """Memory for the staging table, the sorts and the index builds, for this transaction."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")
        conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
    if conn.dialect.name != "sqlite":
        yield
        return
    sizes = {db: conn.exec_driver_sql(f"PRAGMA {db}.cache_size").scalar_one()
             for db in ("main", "temp")}
    for db in sizes:
        conn.exec_driver_sql(f"PRAGMA {db}.cache_size = -262144")  # 256 MiB each, at most
    # helper threads for the sorts of an index build or a GROUP BY (0, none, by default;
    # an index of 5.1 M usage rows: 9.1 s -> 7.6-8.0 s with 2)
    threads = conn.exec_driver_sql("PRAGMA threads").scalar_one()
    conn.exec_driver_sql(f"PRAGMA threads = {min(os.cpu_count() or 1, 4)}")
    try:
        yield
    finally:
        for db, size in sizes.items():
            conn.exec_driver_sql(f"PRAGMA {db}.cache_size = {int(size)}")
        conn.exec_driver_sql(f"PRAGMA threads = {int(threads)}")


def _located(problems: list[Problem], path: Path, compression: _Compression) -> list[Problem]:
    """Record numbers -> file lines (also inside messages, written as {record})."""
    refs = {p.line for p in problems if p.line >= 0}
    for p in problems:
        refs.update(int(r) for r in re.findall(r"\{(\d+)\}", p.message))
    lines = _record_lines(path, compression, refs)

    def line(record: int) -> int:
        return lines.get(record, record + 2)

    return [Problem(line(p.line), p.column,
                    re.sub(r"\{(\d+)\}", lambda m: str(line(int(m.group(1)))), p.message))
            for p in problems]


@dataclass
class _Staged:
    rows: int = 0
    problems: list[Problem] = field(default_factory=list)  # lines are record numbers here
    total: int = 0
    repeated_keys: bool = False  # some key hashes repeat: duplicates, or rows to merge
    # usage: rows per account dated before its signup or after its churn
    outside_life: collections.Counter[str] = field(default_factory=collections.Counter)


def _lives(conn: Connection) -> pd.DataFrame:
    """Each account's signup and churn dates as ISO text, indexed by account id."""
    rows = conn.execute(select(accounts.c.account_id, accounts.c.signup_date,
                               accounts.c.churn_date)).all()
    return pd.DataFrame(
        [(a, str(signup)[:10], None if churn is None else str(churn)[:10])
         for a, signup, churn in rows], columns=["account_id", "signup", "churn"]
    ).set_index("account_id")


def _outside_life(frame: pd.DataFrame, lives: pd.DataFrame) -> pd.Series[int]:
    """Usage rows per account dated before the account's signup or after its churn."""
    life = lives.reindex(frame["account_id"])
    date = frame["date"].to_numpy(dtype=object)
    signup, churn = life["signup"].to_numpy(dtype=object), life["churn"].to_numpy(dtype=object)
    known = pd.notna(signup)
    churned = known & pd.notna(churn)
    outside = np.zeros(len(frame), bool)
    # ISO dates compare as text
    outside[known] = date[known] < signup[known]
    outside[churned] |= date[churned] > churn[churned]
    return frame.loc[outside, "account_id"].value_counts()


@dataclass(frozen=True)
class _Chunk:
    """One chunk of the file, converted and checked, ready to write."""
    rows: int  # the file's rows in this chunk
    checks: _Checks
    frame: pd.DataFrame  # the rows to write, with their record numbers (RECORD)
    columns: list[str] = field(default_factory=list)  # the columns to write
    packed: bytes | None = None  # SQLite: ``frame`` as :func:`_packed` serializes it
    key_hashes: np.ndarray[Any, Any] | None = None  # for a staged load: repeated keys
    # usage: rows per account dated before the account's signup or after its churn
    outside_life: pd.Series[int] | None = None


def _checked(chunks: Iterator[pd.DataFrame], kind: _Kind, lives: pd.DataFrame | None,
             checks_for: Callable[[int], _Checks], stage: Table, dialect: str
             ) -> Iterator[_Chunk]:
    """Each chunk converted, checked and made ready to write, by the reading thread
    (:func:`_read_ahead`): all the work done here is off the writing thread.

    ``lives``: the known accounts (:func:`_lives`); every row's account must be one.

    ``stage``: the staging table, or the table itself when the rows go straight into it
    (:func:`_copies_directly`).
    """
    first = 0
    rejected = False
    for chunk in chunks:
        checks = checks_for(first)
        frame = kind.convert(chunk.reset_index(drop=True), checks)
        outside = None
        if lives is not None:
            ids = frame["account_id"]
            checks.flag(~ids.isin(lives.index) & (ids != ""), "account_id", lambda v: "unknown "
                        "account " + v.map(repr) + " (import it in accounts.csv first)", ids)
            if kind.table is usage and not checks.total:
                # here, beside the writes, instead of a join over the whole table after them
                outside = _outside_life(frame, lives)
        frame[RECORD] = np.arange(first, first + len(frame))
        first += len(chunk)
        rejected = rejected or bool(checks.total)
        if rejected or not len(frame):  # nothing of a rejected file is written
            yield _Chunk(len(chunk), checks, frame)
            continue
        hashes = None
        if stage is kind.table:  # the table itself refuses or merges repeated keys
            if dialect == "sqlite":
                # by the key's first column, stably (exports are in time order already),
                # so that inserting sweeps the key's b-tree once instead of jumping about
                # it: a sort on every key column costs more than the locality it buys
                codes, _ = pd.factorize(frame[kind.keys[0]], sort=True)
                frame = frame.take(np.argsort(codes, kind="stable")).reset_index(drop=True)
        else:  # equal keys hash equal: no repeated hash, no repeated key
            hashes = _key_hashes(frame, kind.keys)
        columns = [c for c in frame.columns if c in stage.c]
        packed = _packed(frame[columns]) if dialect == "sqlite" else None
        yield _Chunk(len(chunk), checks, frame, columns, packed, hashes, outside)


def _read_and_stage(conn: Connection, kind: _Kind, stage: Table, path: Path,
                    compression: _Compression, layout: _Layout,
                    checks_for: Callable[[int], _Checks], progress: Progress | None
                    ) -> _Staged:
    """Parse, validate and stage every chunk."""
    dialect = conn.dialect.name
    load = _copy_rows if dialect == "postgresql" else _insert_packed
    lives = None if kind.table is accounts else _lives(conn)
    staged = _Staged()
    found: list[tuple[int, str, str]] = []
    hashes: list[np.ndarray[Any, Any]] = []
    checked = _checked(_chunks(path, compression, layout), kind, lives, checks_for, stage,
                       dialect)
    with _chunk_schema(conn) if dialect == "sqlite" else contextlib.nullcontext():
        for chunk in _read_ahead(checked):
            if chunk.checks.total or staged.total:  # a rejected file: keep counting
                staged.total += chunk.checks.total
                found += chunk.checks.found
            elif len(chunk.frame):
                if chunk.key_hashes is not None:
                    hashes.append(chunk.key_hashes)
                try:
                    load(conn, kind, stage, chunk)
                except Exception as exc:
                    # an integrity violation: psycopg's SQLSTATE class 23, or SQLite's
                    if (str(getattr(exc, "sqlstate", None))[:2] == "23"
                            or isinstance(exc, IntegrityError)):
                        raise _CopyConflict from None
                    raise
            staged.rows += chunk.rows
            if chunk.outside_life is not None:
                staged.outside_life.update({str(a): int(n)
                                            for a, n in chunk.outside_life.items()})
            if progress:
                progress("read", staged.rows)
    staged.problems = [Problem(r, c, m) for r, c, m in sorted(found)[:MAX_PROBLEMS]]
    if hashes and not staged.total:
        every = np.sort(np.concatenate(hashes))  # a sort: np.unique's hash table is slower
        staged.repeated_keys = bool((every[1:] == every[:-1]).any())
    return staged


def _key_hashes(frame: pd.DataFrame, keys: list[str]) -> np.ndarray[Any, Any]:
    """One hash per row of its key columns; equal keys hash equal."""
    combined = np.zeros(len(frame), dtype=np.uint64)
    for name in keys:
        values = frame[name].to_numpy()
        # hashing the distinct values once pays off unless most values differ (timestamps)
        sample = values[:1000]
        repeats = len(pd.unique(sample)) < len(sample) // 2
        combined = combined * np.uint64(1_000_003) ^ pd.util.hash_array(values,
                                                                        categorize=repeats)
    return combined


ANALYZE_SAMPLE_ROWS = 100_000


def _refresh_derived(conn: Connection, kind: _Kind, progress: Progress | None) -> None:
    """Tables worked out from the one just written: invoices spread over their months, in
    full (an invoice of a year touches twelve months), so analyses read them spread."""
    if kind.table is not invoices:
        return
    with _heartbeat(progress, "spread"):
        conn.execute(invoice_months.delete())
        totals = invoice_month_totals(conn, invoices)
        if totals is not None:
            conn.execute(invoice_months.insert().from_select(
                ["account_id", "month", "currency", "amount"], totals))


def _refresh_statistics(conn: Connection, kind: _Kind) -> None:
    """Give the query planner fresh statistics for the table just loaded.

    Without them SQLite plans the per-account window queries as a scan of every row of a
    metric instead of an index seek per account. The sample must be far larger than an
    account's rows: 1,000 rows made a metric look as selective as an account, and `ask
    correlate` took 57 s instead of 12 s at 50,000 accounts (benchmarks/bench_scale.py).
    A sample of 100,000 rows costs a tenth of a second however large the table.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"PRAGMA analysis_limit={ANALYZE_SAMPLE_ROWS}")
    conn.exec_driver_sql(f"ANALYZE {kind.table.name}")  # our own table name, never user text


def import_csv(engine: Engine, kind_name: str, path: str | Path,
               progress: Progress | None = None, *, columns: Mapping[str, str] | None = None,
               currencies: Collection[str] | None = None, today: dt.date | None = None
               ) -> ImportReport:
    """Import one CSV file (optionally gzipped) of ``kind_name`` in one transaction.

    ``columns`` maps our column names to the file's (``--columns``); other columns of the
    file are ignored with one warning. ``currencies`` are the codes invoices may use
    (default: any ISO 4217-looking code). Rows dated after ``today`` (default: the date
    now, UTC) plus a day are rejected. Raises :class:`ImportRejected` (nothing written)
    when any row is bad, :class:`DatabaseError` when the database refuses the data.
    """
    kind = KINDS[kind_name]
    path = Path(path)
    started = time.perf_counter()
    today = today or dt.datetime.now(dt.UTC).date()
    allowed = frozenset(c.upper() for c in currencies) if currencies is not None else None
    try:
        compression = _compression(path)
        try:
            layout = _layout(kind, _header(path, compression), columns or {})
        except ImportRejected as exc:
            raise ImportRejected(str(path), exc.problems, exc.total) from None
        warnings = ([f"ignored columns not used by {kind_name} imports: "
                     + ", ".join(layout.ignored)] if layout.ignored else [])
        stage = _stage_table(kind)
        # every row's account is checked against the accounts read under the write lock
        # (_read_and_stage): the database's own foreign-key probe would repeat it per row
        with write_transaction(engine, (lambda s: progress("wait", s)) if progress else None,
                               accounts_checked=True) as conn, _bulk_session(conn):
            _lock_for_writing(conn, kind, progress)
            def checks(first: int) -> _Checks:
                return _Checks(first, today, allowed)

            staged = None
            if _copies_directly(conn, kind):
                # The secondary indexes stay: SQLite updates them as the chunks arrive faster
                # than it builds them afterwards (the 5.1 M usage rows of
                # benchmarks/company.py: 34.1 s against 43.5 s with the index dropped and
                # rebuilt, file in account order; 37.9 s against 53.3 s in date order). A
                # file in no order at all could fare better with the rebuild; exports come
                # in time or account order.
                try:
                    with conn.begin_nested():
                        staged = _read_and_stage(conn, kind, kind.table, path, compression,
                                                 layout, checks, progress)
                        if staged.total:
                            raise _CopyConflict  # undo the rows copied before the problem
                except _CopyConflict:
                    staged = staged if staged and staged.total else None
            if staged and not staged.total:
                distinct = (conn.execute(select(func.count()).select_from(kind.table))
                            .scalar_one() if kind.merged else staged.rows)
                warnings += _warnings(conn, kind, kind.table, staged)  # the table holds this file
                _refresh_derived(conn, kind, progress)
                with _heartbeat(progress, "statistics"):
                    _refresh_statistics(conn, kind)
                if progress:
                    progress("commit", None)
                return ImportReport(
                    kind=kind_name, path=str(path), rows=staged.rows, inserted=distinct,
                    updated=0, unchanged=0, merged=staged.rows - distinct,
                    seconds=time.perf_counter() - started, warnings=tuple(warnings))
            stage.create(conn)
            if staged is None:
                staged = _read_and_stage(conn, kind, stage, path, compression, layout,
                                         checks, progress)
            rows, problems, total = staged.rows, staged.problems, staged.total
            if staged.repeated_keys and not kind.merged:
                with _heartbeat(progress, "check"):
                    problems, total = _duplicates(conn, kind, stage)
            if problems:
                raise ImportRejected(str(path), sorted(_located(problems, path, compression)),
                                     total)
            with _heartbeat(progress, "upsert"):
                dropped = _drop_indexes_for_load(conn, kind, rows)
                distinct, existing, changed = _write(conn, kind, stage, rows,
                                                     staged.repeated_keys)
            with _heartbeat(progress, "index"):
                for index in dropped:
                    index.create(conn)
            warnings += _warnings(conn, kind, stage, staged)
            stage.drop(conn)
            _refresh_derived(conn, kind, progress)
            with _heartbeat(progress, "statistics"):
                _refresh_statistics(conn, kind)
            if progress:
                progress("commit", None)
    except _Unreadable as exc:
        raise ImportRejected(str(path), [exc.problem], 1) from None
    except _RowRefused as exc:
        raise ImportRejected(str(path), _located([exc.problem], path, compression), 1
                             ) from None
    except DBAPIError as exc:
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise DatabaseError(f"{path}: the database refused the data: {detail}; nothing was "
                            "written") from None
    return ImportReport(
        kind=kind_name, path=str(path), rows=rows, inserted=distinct - existing,
        updated=changed, unchanged=existing - changed, merged=rows - distinct,
        seconds=time.perf_counter() - started, warnings=tuple(warnings),
    )


__all__ = ["KINDS", "ImportRejected", "ImportReport", "Problem", "Progress", "import_csv",
           "parse_columns"]
