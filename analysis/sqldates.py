"""Date arithmetic spelled per dialect (SQLite, PostgreSQL, DuckDB; ANSI for the rest).

SQLite keeps dates as ISO text, PostgreSQL and DuckDB as DATE, and each has its own way of
adding days, subtracting dates and truncating to a month. These elements compile to the
dialect's spelling, so one query runs unchanged on the user's database. Whole numbers (days,
period lengths) are Python ints rendered into the SQL, never user text.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Date, Integer
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal


class _Spelled(FunctionElement[Any]):
    """A function whose SQL is a template per dialect: ``{0}``, ``{1}`` are its arguments
    and ``{n}`` its whole number."""

    inherit_cache = True
    # n is rendered into the SQL, so it must be part of the statement cache key: otherwise a
    # query compiled for +366 days would be reused for +60
    _traverse_internals = [*FunctionElement._traverse_internals,  # noqa: RUF012 - SQLAlchemy API
                           ("n", InternalTraversal.dp_plain_obj)]
    n: int = 0


def _spell(cls: type[_Spelled], default: str, **dialects: str) -> None:
    def register(template: str) -> Any:
        def render(element: _Spelled, compiler: SQLCompiler, **kw: Any) -> str:
            args = [compiler.process(c, **kw) for c in element.clauses.clauses]
            return template.format(*args, n=element.n)
        return render

    compiles(cls)(register(default))
    for dialect, template in dialects.items():
        compiles(cls, dialect)(register(template))


class date_plus_days(_Spelled):
    """``date + n days`` in each dialect's own spelling."""

    type = Date()
    inherit_cache = True

    def __init__(self, date_expr: Any, days: int) -> None:
        self.n = int(days)
        super().__init__(date_expr)


# DATE + integer stays a DATE in PostgreSQL and DuckDB (an INTERVAL makes it a timestamp)
_spell(date_plus_days, "({0} + INTERVAL '{n}' DAY)", sqlite="date({0}, '{n:+d} days')",
       postgresql="({0} + {n})", duckdb="({0} + {n})")


class as_date(_Spelled):
    """The calendar date of a date, timestamp or ISO text value."""

    type = Date()
    inherit_cache = True


# CAST(... AS DATE) has numeric affinity in SQLite and would turn '2025-01-31' into 2025
_spell(as_date, "CAST({0} AS DATE)", sqlite="date({0})")


class month_start(_Spelled):
    """The first day of the value's calendar month."""

    type = Date()
    inherit_cache = True


_spell(month_start, "CAST(date_trunc('month', {0}) AS DATE)",
       sqlite="date({0}, 'start of month')")


class days_between(_Spelled):
    """Whole days from the first date to the second (``end - start``)."""

    type = Integer()
    inherit_cache = True

    def __init__(self, start: Any, end: Any) -> None:
        super().__init__(start, end)


_spell(days_between, "DATEDIFF(day, {0}, {1})",
       postgresql="(CAST({1} AS DATE) - CAST({0} AS DATE))",
       duckdb="date_diff('day', CAST({0} AS DATE), CAST({1} AS DATE))",
       sqlite="CAST(round(julianday({1}) - julianday({0})) AS INTEGER)")


class whole_periods(_Spelled):
    """``floor(days / n)`` for non-negative integer days."""

    type = Integer()
    inherit_cache = True

    def __init__(self, days: Any, period: int) -> None:
        self.n = int(period)
        super().__init__(days)


# integer division in SQLite and PostgreSQL; DuckDB's / is real division
_spell(whole_periods, "FLOOR({0} / {n})", sqlite="({0} / {n})", postgresql="({0} / {n})",
       duckdb="({0} // {n})")

__all__ = ["as_date", "date_plus_days", "days_between", "month_start", "whole_periods"]
