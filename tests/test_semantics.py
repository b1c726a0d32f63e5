"""Metric semantics (count vs state, exposure), invoice spreading, carry-forward and checks,
each against numbers worked out by hand or in pandas inside the test."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, event, func, insert, select
from sqlalchemy.exc import DBAPIError

from analysis import features, schema
from analysis.catalog import Metric
from analysis.checks import run_checks
from analysis.db import ensure_schema, make_engine
from analysis.imports import import_csv
from analysis.sources import (
    DataSources,
    RevenueSettings,
    SourceError,
    SourceSettings,
    imported,
)
from bot.cli import main

D = dt.date
AT = D(2025, 6, 30)


def _load(engine: Engine, accounts: list[dict[str, Any]], **tables: list[dict[str, Any]]
          ) -> None:
    ensure_schema(engine)
    with engine.begin() as conn:
        conn.execute(insert(schema.accounts), accounts)
        for name, rows in tables.items():
            if rows:
                conn.execute(insert(schema.metadata.tables[name]), rows)


def _account(account_id: str, signup: dt.date, churn: dt.date | None = None) -> dict[str, Any]:
    return {"account_id": account_id, "name": account_id, "plan": "team",
            "signup_date": signup, "churn_date": churn}


def _monthly_mrr(engine: Engine, rates: dict[str, float] | None = None) -> dict[tuple[str, Any],
                                                                                float]:
    with engine.connect() as conn:
        source = imported(conn, revenue=RevenueSettings(rates=rates or {}))
        r = source.revenue
        rows = conn.execute(select(r.c.account_id, r.c.month, r.c.mrr)).all()
    return {(a, features.to_date(m)): round(float(v), 6) for a, m, v in rows}


def test_invoices_spread_into_monthly_mrr(engine: Engine) -> None:
    _load(engine, [_account(a, D(2024, 1, 1)) for a in "abcde"], invoices=[
        # annual, inclusive end: 1/12 a month
        {"account_id": "a", "period_start": D(2025, 1, 1), "period_end": D(2025, 12, 31),
         "currency": "", "amount": 1200.0},
        # quarterly: 1/3 a month, in EUR
        {"account_id": "b", "period_start": D(2025, 4, 1), "period_end": D(2025, 6, 30),
         "currency": "EUR", "amount": 300.0},
        # Stripe-style exclusive end on the same day of the month: exactly one month
        {"account_id": "c", "period_start": D(2025, 1, 15), "period_end": D(2025, 2, 15),
         "currency": "USD", "amount": 100.0},
        # a partial first month, pro rata by days: June 16-30 is 15 of 30 days
        {"account_id": "d", "period_start": D(2025, 6, 16), "period_end": D(2025, 7, 31),
         "currency": "", "amount": 150.0},
        # a credit note is negative revenue
        {"account_id": "e", "period_start": D(2025, 6, 1), "period_end": D(2025, 6, 30),
         "currency": "", "amount": -40.0},
    ])
    mrr = _monthly_mrr(engine, {"EUR": 1.08})
    assert mrr[("a", D(2025, 1, 1))] == mrr[("a", D(2025, 12, 1))] == 100.0
    assert mrr[("b", D(2025, 5, 1))] == pytest.approx(108.0)
    # Jan 15-Feb 14: 17/31 of January and 14/28 of February, in proportion
    jan, feb = 17 / 31, 14 / 28
    assert mrr[("c", D(2025, 1, 1))] == pytest.approx(100 * jan / (jan + feb))
    assert mrr[("c", D(2025, 2, 1))] == pytest.approx(100 * feb / (jan + feb))
    assert ("c", D(2025, 3, 1)) not in mrr
    assert mrr[("d", D(2025, 6, 1))] == pytest.approx(150 * 0.5 / 1.5)
    assert mrr[("d", D(2025, 7, 1))] == pytest.approx(100.0)
    assert mrr[("e", D(2025, 6, 1))] == -40.0


def test_imported_invoices_are_spread_once_by_the_import(engine: Engine,
                                                          tmp_path: Path) -> None:
    """An invoices import spreads them over their months (invoice_months, in their own
    currencies); analyses read that at the rates configured then, and get what spreading the
    invoices as they are read gives. A re-import spreads them again."""
    _load(engine, [_account(a, D(2024, 1, 1)) for a in "abc"])
    header = "account_id,period_start,period_end,currency,amount\n"
    rows = ["a,2025-01-01,2025-12-31,,1200",
            # the same period in two currencies: two invoices, each spread on its own
            "b,2025-04-16,2025-06-30,EUR,250", "b,2025-04-16,2025-06-30,usd,100",
            "c,2025-01-15,2025-02-15,USD,100"]
    path = tmp_path / "invoices.csv"
    path.write_text(header + "\n".join(rows) + "\n")
    import_csv(engine, "invoices", path, today=D(2026, 1, 1))
    euros = RevenueSettings(rates={"EUR": 1.08})
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.invoice_months)
                            ).scalar() == 12 + 3 * 2 + 2
        assert not imported(conn, revenue=euros).spreads_invoices
    spread_at_import = _monthly_mrr(engine, {"EUR": 1.08})
    # April 16-30 is half of April: May holds 1 / 2.5 of each of b's invoices
    assert spread_at_import[("b", D(2025, 5, 1))] == pytest.approx(0.4 * (250 * 1.08 + 100))
    assert spread_at_import[("a", D(2025, 3, 1))] == 100.0
    # rates apply as revenue is read: no re-import for a new rate
    assert _monthly_mrr(engine, {"EUR": 2.0})[("b", D(2025, 5, 1))] == pytest.approx(
        0.4 * (250 * 2.0 + 100))
    with engine.begin() as conn:  # as invoices imported before invoice_months existed
        conn.execute(schema.invoice_months.delete())
    with engine.connect() as conn:
        assert imported(conn, revenue=euros).spreads_invoices
    assert _monthly_mrr(engine, {"EUR": 1.08}) == pytest.approx(spread_at_import)

    path.write_text(header + "c,2025-01-15,2025-02-15,USD,300\n")  # a corrected invoice
    import_csv(engine, "invoices", path, today=D(2026, 1, 1))
    again = _monthly_mrr(engine, {"EUR": 1.08})
    assert again[("c", D(2025, 1, 1))] == pytest.approx(3 * spread_at_import[("c", D(2025, 1, 1))])
    assert {k: v for k, v in again.items() if k[0] != "c"} == pytest.approx(
        {k: v for k, v in spread_at_import.items() if k[0] != "c"})


def test_revenue_from_invoices_is_spread_once_per_source(engine: Engine) -> None:
    """An analysis reads revenue once per month of a panel: the spread is worked out on the
    first read, kept in a temporary table that answers as the query would, and dropped
    when the source closes."""
    _load(engine, [_account(a, D(2024, 1, 1)) for a in "ab"], invoices=[
        {"account_id": "a", "period_start": D(2025, 1, 1), "period_end": D(2025, 12, 31),
         "currency": "", "amount": 1200.0},
        {"account_id": "b", "period_start": D(2025, 4, 16), "period_end": D(2025, 6, 30),
         "currency": "", "amount": 250.0}])
    dates = [D(2025, 4, 30), D(2025, 5, 31), AT]
    with engine.connect() as conn:
        expected = [features.mrr_at(imported(conn), d).to_dict() for d in dates]
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        with engine.connect() as conn:
            with DataSources(engine).on(conn) as source:
                statements.clear()  # the source's own set-up reads invoices (currencies)
                assert [features.mrr_at(source, d).to_dict() for d in dates] == expected
                kept = source.revenue
            assert sum("FROM invoices" in s for s in statements) == 1
            assert expected[-1] == {"a": 100.0, "b": 100.0}
            with pytest.raises(DBAPIError):  # gone with the source
                conn.execute(select(kept.c.mrr)).all()
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def test_an_unknown_currency_is_a_clear_error(engine: Engine) -> None:
    _load(engine, [_account("a", D(2024, 1, 1))], invoices=[
        {"account_id": "a", "period_start": D(2025, 1, 1), "period_end": D(2025, 1, 31),
         "currency": "GBP", "amount": 10.0}])
    with pytest.raises(SourceError, match=r"currency 'GBP' has no rate.*rates = \{ GBP"):
        _monthly_mrr(engine)


def test_last_mrr_carries_forward_while_active(engine: Engine) -> None:
    revenue = [{"account_id": a, "month": m, "mrr": v} for a, m, v in (
        ("invoiced", D(2025, 6, 1), 50.0), ("invoiced", D(2025, 5, 1), 40.0),
        ("behind", D(2025, 5, 1), 30.0),            # June not invoiced yet: May holds
        ("lapsed", D(2025, 3, 1), 20.0),            # older than 2 months: gone
        ("churned", D(2025, 5, 1), 10.0))]          # churned in June: not carried
    _load(engine, [_account("invoiced", D(2024, 1, 1)), _account("behind", D(2024, 1, 1)),
                   _account("lapsed", D(2024, 1, 1)),
                   _account("churned", D(2024, 1, 1), D(2025, 6, 10))], revenue=revenue)
    with engine.connect() as conn:
        mrr = features.mrr_at(imported(conn), AT).to_dict()
    assert mrr == {"invoiced": 50.0, "behind": 30.0}


def _weekly(account: str, metric: str, values: dict[dt.date, float]) -> list[dict[str, Any]]:
    return [{"account_id": account, "metric": metric, "date": d, "value": v}
            for d, v in values.items()]


def test_count_reads_a_missing_week_as_zero_and_state_holds(engine: Engine) -> None:
    weeks = [AT - dt.timedelta(days=7 * k) for k in range(4)]  # 4 snapshots in 28 days
    _load(engine, [_account("a", D(2024, 1, 1))], usage=(
        _weekly("a", "calls", {weeks[0]: 10, weeks[1]: 10, weeks[3]: 10})       # one week out
        + _weekly("a", "seats", {AT - dt.timedelta(days=100): 5})))             # unchanged
    catalog = [Metric("calls", kind="count"), Metric("seats")]
    with engine.connect() as conn:
        levels = features.levels_at(imported(conn, catalog), ["calls", "seats"], AT, 28)
    assert levels.loc["a", "calls"] == pytest.approx(30 / 4)  # the silent week is a zero
    assert levels.loc["a", "seats"] == 5.0                     # held from 100 days ago
    with engine.connect() as conn:
        stale = features.levels_at(imported(conn, [Metric("seats", max_age_days=60)]),
                                   ["seats"], AT, 28)
    assert stale.loc["a", "seats"] == 0.0  # older than max_age_days: no longer known


def test_event_metrics_are_exposure_normalised_per_period(engine: Engine) -> None:
    late = AT - dt.timedelta(days=6)  # signed up 7 days before the as-of date (incl.)
    events = [("old", f"u{u}", AT - dt.timedelta(days=d)) for d in range(0, 28, 2)
              for u in range(d % 3 + 1)]
    events += [("new", "u0", late), ("new", "u1", late), ("new", "u0", AT)]
    _load(engine, [_account("old", D(2024, 1, 1)), _account("new", late)], events=[
        {"event": "edit", "timestamp": dt.datetime.combine(when, dt.time(12)),
         "account_id": a, "user_id": u, "occurrences": 1} for a, u, when in events])
    catalog = [Metric("users", events=[], aggregate="distinct_users", period="week"),
               Metric("edits", events=["edit"], aggregate="count", period="week")]
    with engine.connect() as conn:
        levels = features.levels_at(imported(conn, catalog), ["users", "edits"], AT, 28)
    frame = pd.DataFrame(events, columns=["account", "user", "day"])
    frame["week"] = [(AT - d).days // 7 for d in frame["day"]]
    old = frame[frame.account == "old"]
    assert levels.loc["old", "users"] == pytest.approx(
        old.groupby("week")["user"].nunique().sum() / 4)
    assert levels.loc["old", "edits"] == pytest.approx(len(old) / 4)
    # the new account existed for 7 of the 28 days: one week's worth, not a quarter of it
    assert levels.loc["new", "users"] == pytest.approx(2.0)
    assert levels.loc["new", "edits"] == pytest.approx(3.0)


def test_default_as_of_waits_for_revenue(engine: Engine) -> None:
    accounts = [_account(f"a{i}", D(2024, 1, 1)) for i in range(10)]
    usage = [{"account_id": f"a{i}", "metric": "seats", "date": d, "value": 1.0}
             for i in range(10) for d in (D(2025, 7, 6), D(2099, 1, 1))]
    revenue = [{"account_id": f"a{i}", "month": m, "mrr": 10.0}
               for i in range(10) for m in (D(2025, 5, 1), D(2025, 6, 1))]
    revenue += [{"account_id": "a0", "month": D(2025, 7, 1), "mrr": 10.0}]  # 1 of 10 in
    _load(engine, accounts, usage=usage, revenue=revenue)
    today = D(2025, 7, 8)
    no_carry = RevenueSettings(carry_forward_months=0)
    with engine.connect() as conn:
        # July is billed for 1 of 10 accounts: without carry-forward, revenue ends in June
        assert features.default_as_of(imported(conn, revenue=no_carry), ["seats"],
                                      today=today) == AT
        # with it, June's MRR holds into July: the newest usage (not 2099) sets the date
        assert features.default_as_of(imported(conn), ["seats"], today=today) == D(2025, 7, 6)
    check = run_checks(DataSources(engine, revenue=no_carry), ["seats"], 28, today=today)
    assert {f.check for f in check.findings} >= {"future_dates"}
    assert check.as_of == AT


def test_check_exits_1_when_most_accounts_have_no_revenue(engine: Engine, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    accounts = [_account(f"a{i}", D(2024, 1, 1)) for i in range(10)]
    usage = [{"account_id": f"a{i}", "metric": "seats", "date": AT, "value": 1.0}
             for i in range(10)]
    _load(engine, accounts, usage=usage, revenue=[
        {"account_id": "a0", "month": D(2025, 6, 1), "mrr": 10.0}])
    config = tmp_path / "c.toml"
    config.write_text('[analysis]\nas_of = 2025-06-30\n')
    url = engine.url.render_as_string(hide_password=False)
    assert main(["check", "--config", str(config), "--database-url", url]) == 1
    out = capsys.readouterr().out
    assert "problem: 9 of 10 active accounts have no revenue at 2025-06-30" in out


def test_check_names_active_accounts_without_usage_in_the_window(engine: Engine) -> None:
    """Usage or events in the window count; older usage, a churned account or usage of a
    metric not asked about do not make an account active in it."""
    accounts = [_account(a, D(2024, 1, 1)) for a in ("recent", "stale", "other", "evented")]
    accounts.append(_account("gone", D(2024, 1, 1), churn=D(2025, 5, 1)))
    usage = [{"account_id": "recent", "metric": "seats", "date": AT, "value": 1.0},
             {"account_id": "stale", "metric": "seats", "date": D(2025, 3, 2), "value": 1.0},
             {"account_id": "other", "metric": "projects", "date": AT, "value": 1.0}]
    events = [{"account_id": "evented", "event": "edit", "user_id": "u1",
               "timestamp": dt.datetime(2025, 6, 20, 9), "occurrences": 1}]
    revenue = [{"account_id": a["account_id"], "month": D(2025, 6, 1), "mrr": 10.0}
               for a in accounts]
    _load(engine, accounts, usage=usage, events=events, revenue=revenue)
    catalog = [Metric("seats"), Metric("edits", events=["edit"], aggregate="count")]
    checked = run_checks(DataSources(engine, catalog=catalog), ["seats", "edits"], 28, AT)
    (finding,) = [f for f in checked.findings if f.check == "no_usage"]
    assert finding.message.startswith("2 of 4 active accounts have no usage or events in the "
                                      "28 days to 2025-06-30")
    assert finding.examples == ("other", "stale")
    # without the event metric, the evented account has nothing in the window either
    only_seats = run_checks(DataSources(engine, catalog=catalog[:1]), ["seats"], 28, AT)
    (finding,) = [f for f in only_seats.findings if f.check == "no_usage"]
    assert finding.examples == ("evented", "other", "stale")


def test_check_counts_rows_outside_an_accounts_life_and_of_unknown_accounts(
        engine: Engine) -> None:
    """Rows before signup or after churn (an event on the churn day is inside), and rows of
    accounts the accounts query does not return, counted per shape up to the as-of date."""
    accounts = [_account("late", D(2024, 3, 1), churn=D(2025, 5, 1)),
                _account("early", D(2024, 6, 1)), _account("fine", D(2024, 1, 1)),
                _account("ghost", D(2024, 1, 1))]
    usage = [{"account_id": a, "metric": "seats", "date": day, "value": 1.0} for a, day in [
        ("late", D(2024, 2, 15)), ("late", D(2024, 2, 20)), ("late", D(2024, 4, 1)),
        ("late", D(2025, 5, 2)), ("late", D(2025, 7, 5)),  # after churn, but after AT too
        ("early", D(2024, 5, 1)), ("early", D(2024, 6, 1)),
        ("fine", D(2024, 2, 1)), ("fine", D(2025, 6, 1)),
        ("ghost", D(2024, 2, 1)), ("ghost", D(2025, 6, 1)), ("ghost", D(2025, 7, 2))]]
    events = [{"account_id": a, "event": "edit", "user_id": "u1", "timestamp": at,
               "occurrences": 1} for a, at in [
        ("late", dt.datetime(2025, 5, 1, 12)), ("late", dt.datetime(2025, 5, 2, 9)),
        ("early", dt.datetime(2024, 5, 31, 23)), ("ghost", dt.datetime(2025, 6, 1, 10))]]
    revenue = [{"account_id": a, "month": D(2025, 6, 1), "mrr": 10.0}
               for a in ("fine", "early", "ghost")]
    _load(engine, accounts, usage=usage, events=events, revenue=revenue)
    settings = SourceSettings(accounts="SELECT * FROM accounts WHERE account_id <> 'ghost'")
    catalog = [Metric("seats"), Metric("edits", events=["edit"], aggregate="count")]
    checked = run_checks(DataSources(engine, settings, catalog=catalog), ["seats", "edits"],
                         28, AT)
    found = [(f.check, f.message.split(" (")[0], f.examples) for f in checked.findings
             if f.check in ("outside_life", "unknown_accounts")]
    assert found == [
        ("outside_life", "4 usage rows of 2 accounts are dated before the account's signup or "
         "after its churn", ("early", "late")),
        ("outside_life", "2 events of 2 accounts are dated before the account's signup or "
         "after its churn", ("early", "late")),
        ("unknown_accounts", "2 usage rows come from 1 account ids that are not in accounts",
         ("ghost",)),
        ("unknown_accounts", "1 events come from 1 account ids that are not in accounts",
         ("ghost",)),
        ("unknown_accounts", "1 revenue months come from 1 account ids that are not in "
         "accounts", ("ghost",)),
    ]


def test_check_names_a_missing_column(engine: Engine) -> None:
    _load(engine, [_account("a", D(2024, 1, 1))])
    settings = SourceSettings(accounts="SELECT account_id AS id, signup_date FROM accounts")
    result = run_checks(DataSources(engine, settings), ["seats"], 28)
    assert result.problems
    assert "source.accounts: column 'account_id' is missing" in result.problems[0].message


def test_check_names_a_mistyped_column_in_duckdb(tmp_path: Path) -> None:
    import duckdb

    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE TABLE orgs AS SELECT 'a' AS id, 20250101 AS created")
    own = make_engine(f"sqlite:///{tmp_path / 'own.db'}")
    settings = SourceSettings(url=f"duckdb:///{warehouse}",
                              accounts="SELECT id AS account_id, created AS signup_date FROM orgs",
                              revenue="SELECT id AS account_id, DATE '2025-01-01' AS month, "
                                      "10.0 AS mrr FROM orgs")
    result = run_checks(DataSources(own, settings), ["seats"], 28)
    assert [f.check for f in result.problems] == ["source_query"]
    assert "source.accounts: column 'signup_date' must be a date" in result.problems[0].message


def test_a_separate_source_without_accounts_needs_them_imported(tmp_path: Path) -> None:
    own = make_engine(f"sqlite:///{tmp_path / 'own.db'}")
    settings = SourceSettings(url=f"sqlite:///{tmp_path / 'theirs.db'}",
                              events="SELECT 1 AS account_id, 'e' AS event, "
                                     "'2025-01-01' AS timestamp")
    with pytest.raises(SourceError, match=r"source.accounts: nothing to read: source.url is "
                       r"set, there is no source.accounts query and nothing was imported"), \
            DataSources(own, settings).connect():
        pass
    checked = run_checks(DataSources(own, settings), ["seats"], 28)
    assert [(f.check, f.message[:40]) for f in checked.problems] == [
        ("source", "source.accounts: nothing to read: source")]


def test_a_bad_source_query_is_named_by_check_and_ask(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    own = f"sqlite:///{tmp_path / 'own.db'}"
    ensure_schema(make_engine(own))
    config = tmp_path / "c.toml"
    config.write_text('[[metrics]]\nname = "seats"\n\n[source]\n'
                      'accounts = "SELECT account_id AS org, signup_date FROM accounts"\n')
    assert main(["check", "--config", str(config), "--database-url", own]) == 1
    assert "problem: source.accounts: column 'account_id' is missing" in capsys.readouterr().out
    assert main(["ask", "correlate", "--config", str(config), "--database-url", own]) == 1
    assert "valuemetric: source.accounts: column 'account_id' is missing" in (
        capsys.readouterr().err)


def test_a_source_repeating_an_account_is_named_by_check_and_ask(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A [source] accounts query joined to something with several rows per account (here,
    the same rows twice) would count those accounts twice; check and ask both say so."""
    own = f"sqlite:///{tmp_path / 'own.db'}"
    engine = make_engine(own)
    _load(engine, [_account("a1", D(2024, 1, 1)), _account("a2", D(2024, 1, 1))],
          usage=[{"account_id": "a1", "metric": "seats", "date": AT, "value": 1.0}])
    config = tmp_path / "c.toml"
    config.write_text('[[metrics]]\nname = "seats"\n\n[source]\n'
                      'accounts = "SELECT * FROM accounts UNION ALL SELECT * FROM accounts '
                      'WHERE account_id = \'a2\'"\n')
    message = ("source.accounts: 1 account ids come in more than one row (e.g. a2); make the "
               "query return one row per account")
    assert main(["check", "--config", str(config), "--database-url", own]) == 1
    assert f"problem: {message}" in capsys.readouterr().out
    assert main(["ask", "correlate", "--config", str(config), "--database-url", own]) == 1
    assert f"valuemetric: {message}" in capsys.readouterr().err


def test_check_says_invoices_replace_imported_monthly_revenue(engine: Engine) -> None:
    _load(engine, [_account("a", D(2024, 1, 1))],
          usage=[{"account_id": "a", "metric": "seats", "date": AT, "value": 1.0}],
          revenue=[{"account_id": "a", "month": D(2025, 6, 1), "mrr": 10.0}])
    before = run_checks(DataSources(engine), ["seats"], 28, today=D(2025, 7, 1))
    assert "both_revenue_shapes" not in {f.check for f in before.findings}
    with engine.begin() as conn:
        conn.execute(insert(schema.invoices), [
            {"account_id": "a", "period_start": D(2025, 6, 1), "period_end": D(2025, 6, 30),
             "currency": "", "amount": 30.0}])
    after = run_checks(DataSources(engine), ["seats"], 28, today=D(2025, 7, 1))
    assert [f.count for f in after.findings if f.check == "both_revenue_shapes"] == [1]
    with engine.connect() as conn:
        assert features.mrr_at(imported(conn), AT).to_dict() == {"a": 30.0}


def test_check_names_a_date_sqlite_cannot_read(tmp_path: Path) -> None:
    own = make_engine(f"sqlite:///{tmp_path / 'own.db'}")
    ensure_schema(own)
    with own.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE orgs (id TEXT, created TEXT)")
        conn.exec_driver_sql("INSERT INTO orgs VALUES ('a', '2025-01-02'), ('b', 'last week')")
    settings = SourceSettings(accounts="SELECT id AS account_id, created AS signup_date FROM orgs")
    result = run_checks(DataSources(own, settings), ["seats"], 28)
    assert [f.message for f in result.problems] == [
        "source.accounts: column 'signup_date' must be a date: 'last week' is not one "
        "(use YYYY-MM-DD or a DATE/TIMESTAMP column)"]


def test_price_panel_reads_a_count_metric_at_one_interval_for_every_month(
        engine: Engine) -> None:
    """The panel's months are computed one at a time (two at a time on two connections);
    a count metric's snapshot interval is still measured once, at the newest month, as a
    single pass over every month measures it. Here an export went from weekly totals to
    daily ones: the same use, one call a day, must read the same in every month."""
    accounts = [_account(f"a{i}", D(2024, 1, 1)) for i in range(12)]
    weekly = [D(2024, 1, 7) + dt.timedelta(weeks=k) for k in range(52)]
    daily = [D(2025, 1, 1) + dt.timedelta(days=k) for k in range(181)]
    usage = [{"account_id": a["account_id"], "metric": "calls", "date": day, "value": value}
             for a in accounts for days, value in ((weekly, 7.0), (daily, 1.0))
             for day in days if day < D(2025, 1, 1) or days is daily]
    months = [D(2024 + (m - 1) // 12, (m - 1) % 12 + 1, 1) for m in range(1, 19)]
    revenue = [{"account_id": a["account_id"], "month": month, "mrr": 100.0 + i * (k % 2)}
               for i, a in enumerate(accounts) for k, month in enumerate(months)]
    _load(engine, accounts, usage=usage, revenue=revenue)
    catalog = [Metric("calls", kind="count")]
    sources = DataSources(engine, catalog=catalog)
    with sources.connect() as source:
        for side in (None, sources.side):
            panel = features.increase_panel(source, ["calls"], 28, AT, side=side)
            assert set(panel["month"]) >= {D(2024, 8, 1), D(2025, 6, 1)}
            # about one call a day in every month: 28 or 35 a 31-day window while weekly
            assert panel["calls"].between(0.8, 1.2).all(), panel.groupby("month")["calls"].max()
