"""Imports of raw exports: events, invoices, other column names, awkward files, concurrency."""

from __future__ import annotations

import datetime as dt
import gzip
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, func, select

from analysis.db import ensure_schema, make_engine
from analysis.imports import ImportRejected, import_csv, parse_columns
from analysis.schema import accounts, events, invoices, metadata, usage
from bot.cli import main

ACCOUNTS = """account_id,name,plan,signup_date,churn_date
a1,Acme,pro,2024-01-15,
a2,Globex,basic,2024-02-01,
"""
TODAY = dt.date(2024, 6, 30)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def loaded(engine: Engine, tmp_path: Path) -> Engine:
    ensure_schema(engine)
    import_csv(engine, "accounts", _write(tmp_path / "accounts.csv", ACCOUNTS))
    return engine


def _events(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(events).order_by(events.c.timestamp, events.c.account_id, events.c.user_id))]


EVENTS = """account_id,user_id,event,timestamp,value
a1,u1,export,2024-03-01T10:00:00+02:00,2
a1,u1,export,2024-03-01T08:00:00Z,3
a1,u1,export,2024-03-01 08:00:00,
a2,,login,2024-03-02T23:30:00-01:00,
a2,u9,login,2024-03-04,1.5
"""


def test_events_merge_repeats_store_utc_and_reimport_changes_nothing(
        loaded: Engine, tmp_path: Path) -> None:
    path = _write(tmp_path / "events.csv", EVENTS)
    report = import_csv(loaded, "events", path, today=TODAY)
    # the first three rows are one instant in UTC: one row counting 3, values summed
    assert (report.rows, report.merged, report.inserted) == (5, 2, 3)
    assert _events(loaded) == [
        ("export", dt.datetime(2024, 3, 1, 8), "a1", "u1", 3, 5.0),
        ("login", dt.datetime(2024, 3, 3, 0, 30), "a2", "", 1, None),
        ("login", dt.datetime(2024, 3, 4), "a2", "u9", 1, 1.5),
    ]
    again = import_csv(loaded, "events", path, today=TODAY)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3)
    assert _events(loaded)[0][4:] == (3, 5.0)  # replaced, not added up
    single = _write(tmp_path / "one.csv", "account_id,user_id,event,timestamp\n"
                    "a2,u9,login,2024-03-05T00:00:00Z\n")  # no repeats: no merging pass
    report = import_csv(loaded, "events", single, today=TODAY)
    assert (report.inserted, report.merged) == (1, 0)
    assert _events(loaded)[-1] == ("login", dt.datetime(2024, 3, 5), "a2", "u9", 1, None)


def test_events_in_the_plain_form_store_the_same_instants_as_other_forms(
        loaded: Engine, tmp_path: Path) -> None:
    # every timestamp YYYY-MM-DDTHH:MM:SS (or with a space) takes a byte-copy path: its
    # rows must key exactly like the same instants written with a zone
    plain = _write(tmp_path / "plain.csv", "account_id,user_id,event,timestamp,value\n"
                   "a1,u1,export,2024-03-01T08:00:00,2\n"
                   "a1,u1,export,2024-03-01 08:00:00,3\n"
                   "a2,u9,login,2024-03-04T23:59:59,1\n")
    report = import_csv(loaded, "events", plain, today=TODAY)
    assert (report.inserted, report.merged) == (2, 1)
    zoned = _write(tmp_path / "zoned.csv", "account_id,user_id,event,timestamp,value\n"
                   "a1,u1,export,2024-03-01T10:00:00+02:00,5\n"
                   "a2,u9,login,2024-03-04T23:59:59.000Z,1\n")
    again = import_csv(loaded, "events", zoned, today=TODAY)
    assert (again.inserted, again.updated, again.unchanged) == (0, 1, 1)
    assert _events(loaded) == [
        ("export", dt.datetime(2024, 3, 1, 8), "a1", "u1", 1, 5.0),
        ("login", dt.datetime(2024, 3, 4, 23, 59, 59), "a2", "u9", 1, 1.0),
    ]
    zulu = _write(tmp_path / "zulu.csv", "account_id,user_id,event,timestamp,value\n"
                  "a1,u1,export,2024-03-01T08:00:00Z,5\n"
                  "a2,u9,login,2024-03-04T23:59:59Z,1\n")  # the byte-copy path too
    assert import_csv(loaded, "events", zulu, today=TODAY).unchanged == 2
    for stamp in ("2024-02-30T00:00:00", "2024-02-30T00:00:00Z"):
        impossible = _write(tmp_path / "bad.csv", "account_id,user_id,event,timestamp\n"
                            f"a1,u1,login,{stamp}\n")
        with pytest.raises(ImportRejected, match=r":2: timestamp: bad timestamp '2024-02-30T"):
            import_csv(loaded, "events", impossible, today=TODAY)


def test_events_problems_name_line_and_column(loaded: Engine, tmp_path: Path) -> None:
    path = _write(tmp_path / "events.csv", "account_id,user_id,event,timestamp\n"
                  "a1,u1,login,2024-03-01T10:00:00Z\n"
                  "a1,u1,login,yesterday\n"
                  "a1,u1,,2024-03-01T10:00:00Z\n"
                  "zz,u1,login,2024-03-01T10:00:00Z\n"
                  "a1,u1,login,2024-07-02T00:00:00Z\n")
    with pytest.raises(ImportRejected) as err:
        import_csv(loaded, "events", path, today=TODAY)
    text = err.value.describe()
    assert f"{path}:3: timestamp: bad timestamp 'yesterday'" in text
    assert f"{path}:4: event: missing value" in text
    assert f"{path}:6: timestamp: 2024-07-02T00:00:00Z is in the future (after 2024-07-01)" \
        in text
    assert _events(loaded) == []
    fixed = path.read_text().replace("yesterday", "2024-03-01").replace("u1,,", "u1,x,")
    fixed = fixed.replace("2024-07-02", "2024-07-01")
    with pytest.raises(ImportRejected, match=r":5: account_id: unknown account 'zz'"):
        import_csv(loaded, "events", _write(path, fixed), today=TODAY)


def _invoices(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(invoices).order_by(
            invoices.c.account_id, invoices.c.period_start, invoices.c.currency))]


def test_invoices_sum_line_items_keep_credits_and_check_currencies(
        loaded: Engine, tmp_path: Path) -> None:
    path = _write(tmp_path / "invoices.csv", "account_id,period_start,period_end,amount,currency\n"
                  "a1,2024-01-01,2024-12-31,1200,usd\n"
                  "a1,2024-01-01,2024-12-31,-200,USD\n"
                  "a2,2024-03-01,2024-03-31,90,EUR\n"
                  "a2,2024-04-01,2024-04-30,90,\n")
    report = import_csv(loaded, "invoices", path, currencies={"USD", "EUR"}, today=TODAY)
    assert (report.rows, report.merged, report.inserted) == (4, 1, 3)
    assert _invoices(loaded) == [
        ("a1", dt.date(2024, 1, 1), dt.date(2024, 12, 31), "USD", 1000.0),
        ("a2", dt.date(2024, 3, 1), dt.date(2024, 3, 31), "EUR", 90.0),
        ("a2", dt.date(2024, 4, 1), dt.date(2024, 4, 30), "", 90.0),
    ]
    with pytest.raises(ImportRejected) as err:
        import_csv(loaded, "invoices", path, currencies={"USD"}, today=TODAY)
    assert (f"{path}:4: currency: unknown currency 'EUR' (known: USD; add its rate to "
            "[revenue] rates)") in err.value.describe()
    bad = _write(tmp_path / "bad.csv", "account_id,period_start,period_end,amount,currency\n"
                 "a1,2024-02-01,2024-01-31,10,DOLLARS\n")
    with pytest.raises(ImportRejected) as err:
        import_csv(loaded, "invoices", bad, today=TODAY)
    text = err.value.describe()
    assert ":2: currency: 'DOLLARS' is not an ISO 4217 code" in text
    assert ":2: period_end: 2024-01-31 is before period_start 2024-02-01" in text
    assert len(_invoices(loaded)) == 3


def test_columns_map_their_names_and_extra_columns_are_ignored_with_one_warning(
        loaded: Engine, tmp_path: Path) -> None:
    path = _write(tmp_path / "daily.csv", "org_id,day,name,count,notes,owner_email\n"
                  "a1,2024-03-01,seats,4,hello,x@y\n"
                  "a2,2024-03-01,seats,2,,\n")
    columns = parse_columns("account_id=org_id, date=day,metric=name,value=count")
    report = import_csv(loaded, "usage", path, columns=columns, today=TODAY)
    assert report.inserted == 2
    assert report.warnings[0] == "ignored columns not used by usage imports: notes, owner_email"
    with loaded.connect() as conn:
        assert sorted(conn.execute(select(usage.c.account_id, usage.c.value))) == [
            ("a1", 4.0), ("a2", 2.0)]
    with pytest.raises(ImportRejected, match=r":1: value: missing column \(--columns maps it "
                       r"to 'amount'\)"):
        import_csv(loaded, "usage", path, columns={**columns, "value": "amount"})
    with pytest.raises(ImportRejected, match=r":1: plan: --columns maps a column"):
        import_csv(loaded, "usage", path, columns={**columns, "plan": "tier"})
    with pytest.raises(ValueError, match="is not ours=theirs"):
        parse_columns("account_id")


def test_gzip_is_read_zip_and_latin1_are_named_with_the_fix(loaded: Engine,
                                                           tmp_path: Path) -> None:
    text = "account_id,date,metric,value\na1,2024-03-01,users,3\n"
    packed = tmp_path / "usage.csv.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    assert import_csv(loaded, "usage", packed, today=TODAY).inserted == 1
    archive = tmp_path / "usage.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("usage.csv", text)
    with pytest.raises(ImportRejected, match=r"usage.zip: is a zip archive, not a CSV file: "
                       r"extract it first"):
        import_csv(loaded, "usage", archive)
    latin = tmp_path / "latin.csv"
    many = "".join(f"b{k},Acme,pro,2024-01-15,\n" for k in range(5000))  # past pandas' buffer
    latin.write_bytes(("account_id,name,plan,signup_date,churn_date\n" + many
                       + "a4,Société,pro,2024-01-15,\n").encode("latin-1"))
    with pytest.raises(ImportRejected) as err:
        import_csv(loaded, "accounts", latin)
    assert f"{latin}:5002: encoding: not UTF-8 text (byte 0xe9 at character 8)" in \
        err.value.describe()
    truncated = tmp_path / "cut.csv.gz"
    truncated.write_bytes(gzip.compress(latin.read_bytes())[:200])
    with pytest.raises(ImportRejected, match=r"cut.csv.gz: cannot be read: Compressed file "
                       "ended"):
        import_csv(loaded, "accounts", truncated)
    with loaded.connect() as conn:
        assert conn.execute(select(accounts.c.account_id)).scalars().all() == ["a1", "a2"]


def test_quoted_newlines_keep_line_numbers_right(loaded: Engine, tmp_path: Path) -> None:
    path = _write(tmp_path / "accounts.csv", "account_id,name,plan,signup_date,churn_date\n"
                  'b1,"two\n\nlines",pro,2024-01-15,\n'
                  "\n"
                  "b2,Bad,pro,2024-99-15,\n")
    with pytest.raises(ImportRejected, match=r"accounts.csv:6: signup_date: bad date"):
        import_csv(loaded, "accounts", path)


def test_two_processes_importing_at_once_both_succeed(database_url: str,
                                                     tmp_path: Path) -> None:
    url = database_url
    engine = make_engine(url)
    ensure_schema(engine)
    import_csv(engine, "accounts", _write(tmp_path / "accounts.csv", ACCOUNTS))
    files = []
    for n, metric in enumerate(("seats", "projects")):
        rows = [f"a{1 + k % 2},{dt.date(2022, 1, 1) + dt.timedelta(days=k // 100)},"
                f"{metric}{k // 2 % 50},{k}" for k in range(60_000 + n)]
        files.append(_write(tmp_path / f"{metric}.csv",
                            "account_id,date,metric,value\n" + "\n".join(rows) + "\n"))
    processes = [subprocess.Popen([sys.executable, "-m", "bot.cli", "import", "usage", str(f),
                                   "--database-url", url], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for f in files]
    outputs = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(usage)).scalar_one() == 120_001
    engine.dispose()


def test_import_exits_0_when_alerts_cannot_run_yet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    config = _write(tmp_path / "config.toml", '[slack]\nalert_channel = "CALERTS"\n')
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("VALUEMETRIC_SLACK_API_URL", "http://127.0.0.1:9/api/")
    url = f"sqlite:///{tmp_path / 'x.db'}"
    accounts_csv = _write(tmp_path / "accounts.csv", ACCOUNTS)
    assert main(["import", "accounts", str(accounts_csv), "--config", str(config),
                 "--database-url", url]) == 0
    out = capsys.readouterr()
    assert "2 accounts rows" in out.out
    assert "alerts: warning: not evaluated after this import" in out.err
    assert main(["import", "usage", str(accounts_csv), "--database-url", url,
                 "--columns", "account_id"]) == 2
    assert "--columns: 'account_id' is not ours=theirs" in capsys.readouterr().err


def test_a_load_into_an_empty_table_leaves_its_indexes_as_the_schema_has_them(
        loaded: Engine, tmp_path: Path) -> None:
    path = _write(tmp_path / "usage.csv", "account_id,date,metric,value\n"
                  "a1,2024-03-01,users,3\na2,2024-03-01,users,4\n")
    import_csv(loaded, "usage", path, today=TODAY)  # larger than the (empty) table
    with loaded.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
        plan = conn.execute(select(usage.c.account_id).where(usage.c.metric == "users",
                                                             usage.c.date >= dt.date(2024, 3, 1)))
        assert sorted(plan.scalars()) == ["a1", "a2"]
    assert diff == []


def test_a_value_too_long_for_postgresql_names_its_line_and_column(
        loaded: Engine, tmp_path: Path) -> None:
    if loaded.dialect.name == "sqlite":
        pytest.skip("SQLite does not limit the length of text")
    long_plan = "x" * 300
    path = _write(tmp_path / "accounts.csv", "account_id,name,plan,signup_date,churn_date\n"
                  f"b1,B,pro,2024-01-15,\nb2,C,{long_plan},2024-01-15,\n")
    with pytest.raises(ImportRejected) as err:
        import_csv(loaded, "accounts", path)
    assert err.value.describe().splitlines()[0] == (
        f"{path}:3: plan: value too long for type character varying(255): does not fit the "
        "column")
