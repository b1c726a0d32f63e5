from __future__ import annotations

import datetime as dt
import types
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from analysis import imports
from analysis.db import DatabaseError, current_revision, ensure_schema, head_revision, upgrade
from analysis.imports import ImportRejected, import_csv
from analysis.schema import accounts, revenue, usage
from bot.cli import main

ACCOUNTS = """account_id,name,plan,signup_date,churn_date
a1,Acme,pro,2024-01-15,
a2,Globex,basic,2024-02-01,2024-09-30
a3,<!channel> & Co,basic,2024-03-01,
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _usage_text(rows: int = 300) -> str:
    lines = ["account_id,date,metric,value"]
    for k in range(rows):
        day = dt.date(2024, 3, 1) + dt.timedelta(days=k // 2)
        lines.append(f"a{1 + k % 2},{day},users,{k % 17}")
    return "\n".join(lines) + "\n"


def _snapshot(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    with engine.connect() as conn:
        return {t.name: sorted(tuple(r) for r in conn.execute(select(t)).all())
                for t in (accounts, usage, revenue)}


@pytest.fixture
def loaded(engine: Engine, tmp_path: Path) -> Engine:
    ensure_schema(engine)
    import_csv(engine, "accounts", _write(tmp_path / "accounts.csv", ACCOUNTS))
    import_csv(engine, "usage", _write(tmp_path / "usage.csv", _usage_text()))
    return engine


def test_schema_is_created_by_migrations(engine: Engine) -> None:
    assert current_revision(engine) is None
    assert upgrade(engine) == (None, head_revision())
    assert current_revision(engine) == head_revision()
    assert upgrade(engine) == (head_revision(), head_revision())


def test_import_counts_and_reimport_changes_nothing(loaded: Engine, tmp_path: Path) -> None:
    before = _snapshot(loaded)
    assert len(before["accounts"]) == 3 and len(before["usage"]) == 300
    report = import_csv(loaded, "usage", tmp_path / "usage.csv")
    assert (report.rows, report.inserted, report.updated, report.unchanged) == (300, 0, 0, 300)
    assert _snapshot(loaded) == before


def test_corrected_value_replaces_the_old_one(loaded: Engine, tmp_path: Path) -> None:
    fixed = _write(tmp_path / "fix.csv", "account_id,date,metric,value\na1,2024-03-01,users,99\n")
    report = import_csv(loaded, "usage", fixed)
    assert (report.inserted, report.updated, report.unchanged) == (0, 1, 0)
    with loaded.connect() as conn:
        value = conn.execute(select(usage.c.value).where(
            usage.c.account_id == "a1", usage.c.metric == "users")
            .order_by(usage.c.date).limit(1)).scalar_one()
    assert value == 99


def test_bad_row_in_the_middle_rejects_the_whole_file(loaded: Engine, tmp_path: Path) -> None:
    before = _snapshot(loaded)
    lines = _usage_text(600).splitlines()
    lines = [line.replace(",users,", ",seats,") for line in lines]  # all rows would be new
    lines[300] = "a1,2024-13-40,seats,3"  # line 301 of the file
    lines[450] = "a2,2024-05-01,seats,lots"
    bad = _write(tmp_path / "bad.csv", "\n".join(lines) + "\n")
    with pytest.raises(ImportRejected) as err:
        import_csv(loaded, "usage", bad)
    text = err.value.describe()
    assert f"{bad}:301: date: bad date '2024-13-40' (expected YYYY-MM-DD)" in text
    assert f"{bad}:451: value: not a number: 'lots'" in text
    assert "nothing was written" in text
    assert _snapshot(loaded) == before


@pytest.mark.parametrize(("content", "expected"), [
    ("account_id,date,metric,value\na9,2024-03-01,users,1\n",
     ":2: account_id: unknown account 'a9' (import it in accounts.csv first)"),
    ("account_id,date,metric,value\na1,2024-03-01,users,1\na1,2024-03-01,users,2\n",
     ":3: account_id,metric,date: duplicate key (also on line 2)"),
    ("account_id,date,value\n",
     ":1: metric: missing column; the header has: account_id,date,value"),
    ("account_id,date,metric,value\na1,2024-03-01,users\n", ":2: value: missing number"),
    ("account_id,date,metric,value\na1,2024-03-01,users,1,2\n",
     ":2: row: more fields than the header's 4"),
    ("account_id,date,metric,value\na1,20240301,users,1\n", ":2: date: bad date '20240301'"),
    ("account_id,date,metric,value\na1,2024-03-01,users,nan\n", ":2: value: not a number"),
    ("account_id,date,metric,value\na1,2024-03-01,users,inf\n", ":2: value: not a finite number"),
    ("account_id,date,metric,value\na1,2099-03-01,users,1\n",
     ":2: date: 2099-03-01 is in the future"),
    ("", ":1: header: empty file"),
])
def test_problems_name_file_line_and_column(loaded: Engine, tmp_path: Path, content: str,
                                            expected: str) -> None:
    before = _snapshot(loaded)
    path = _write(tmp_path / "usage_bad.csv", content)
    with pytest.raises(ImportRejected) as err:
        import_csv(loaded, "usage", path)
    assert f"{path}{expected}" in err.value.describe()
    assert _snapshot(loaded) == before


def test_problems_in_a_load_into_an_empty_table_name_their_lines(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a file goes straight into an empty table (COPY on PostgreSQL, inserts on SQLite): a
    # repeated key (found by the table's own key, in a later chunk) or a bad row must still
    # reject the file by line
    monkeypatch.setattr("analysis.imports.CHUNK_ROWS", 100)
    ensure_schema(engine)
    import_csv(engine, "accounts", _write(tmp_path / "accounts.csv", ACCOUNTS))
    lines = _usage_text(300).splitlines()
    repeated = _write(tmp_path / "repeated.csv", "\n".join([*lines, lines[5]]) + "\n")
    with pytest.raises(ImportRejected, match=r":302: account_id,metric,date: duplicate key "
                       r"\(also on line 6\)"):
        import_csv(engine, "usage", repeated)
    lines[250] = "a1,2024-03-01,users,many"
    bad = _write(tmp_path / "bad.csv", "\n".join(lines) + "\n")
    with pytest.raises(ImportRejected, match=r":251: value: not a number: 'many'"):
        import_csv(engine, "usage", bad)
    assert _snapshot(engine)["usage"] == []
    report = import_csv(engine, "usage", _write(tmp_path / "good.csv", _usage_text(300)))
    assert (report.inserted, report.updated, report.unchanged) == (300, 0, 0)
    assert len(_snapshot(engine)["usage"]) == 300


def test_only_the_first_twenty_problems_are_listed(loaded: Engine, tmp_path: Path) -> None:
    rows = "".join(f"a1,2024-03-{d:02d},users,x\n" for d in range(1, 29))
    path = _write(tmp_path / "u.csv", "account_id,date,metric,value\n" + rows)
    with pytest.raises(ImportRejected) as err:
        import_csv(loaded, "usage", path)
    assert len(err.value.problems) == 20 and err.value.total == 28
    assert "... and 8 more problems" in err.value.describe()


def test_account_and_revenue_rules(engine: Engine, tmp_path: Path) -> None:
    ensure_schema(engine)
    churn_first = "account_id,name,plan,signup_date,churn_date\nb1,B,pro,2024-05-01,2024-04-01\n"
    with pytest.raises(ImportRejected, match="churn_date: 2024-04-01 is before signup_date"):
        import_csv(engine, "accounts", _write(tmp_path / "a.csv", churn_first))
    import_csv(engine, "accounts", _write(tmp_path / "accounts.csv", ACCOUNTS))
    mid_month = "account_id,month,mrr\na1,2024-03-15,10\n"
    with pytest.raises(ImportRejected, match="month: 2024-03-15 is not the first day"):
        import_csv(engine, "revenue", _write(tmp_path / "r.csv", mid_month))
    negative = "account_id,month,mrr\na1,2024-03-01,-5\n"
    with pytest.raises(ImportRejected, match="mrr: must be >= 0"):
        import_csv(engine, "revenue", _write(tmp_path / "r2.csv", negative))


def test_data_quality_warnings_do_not_block(engine: Engine, tmp_path: Path) -> None:
    ensure_schema(engine)
    import_csv(engine, "accounts", _write(tmp_path / "accounts.csv", ACCOUNTS))
    early = "account_id,date,metric,value\na1,2023-12-01,users,1\na2,2024-10-05,users,1\n"
    report = import_csv(engine, "usage", _write(tmp_path / "u.csv", early))
    assert report.inserted == 2
    assert any("2 usage rows of 2 accounts are dated before signup or after churn" in w
               for w in report.warnings)
    assert any("1 accounts have no usage at all (e.g. a3)" in w for w in report.warnings)
    # into a table that has rows (the staged import): only this file's rows are counted
    later = "account_id,date,metric,value\na1,2023-11-01,users,1\na1,2024-08-05,users,1\n"
    staged = import_csv(engine, "usage", _write(tmp_path / "u2.csv", later))
    assert staged.inserted == 2
    assert any("1 usage rows of 1 accounts are dated before signup or after churn (e.g. a1)"
               in w for w in staged.warnings), staged.warnings
    rev = "account_id,month,mrr\na1,2024-06-01,100\n"
    report = import_csv(engine, "revenue", _write(tmp_path / "r.csv", rev))
    assert any("1 revenue months of 1 accounts have no usage" in w for w in report.warnings)


def test_cli_import_exit_codes_and_messages(database_url: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    accounts_csv = _write(tmp_path / "accounts.csv", ACCOUNTS)
    assert main(["import", "accounts", str(accounts_csv), "--database-url", database_url]) == 0
    out = capsys.readouterr()
    assert "3 accounts rows" in out.out and "3 new" in out.out and "rows/s" in out.out
    bad = _write(tmp_path / "usage.csv", "account_id,date,metric,value\nzz,2024-01-01,u,1\n")
    assert main(["import", "usage", str(bad), "--database-url", database_url]) == 1
    assert f"{bad}:2: account_id: unknown account 'zz'" in capsys.readouterr().err
    assert main(["import", "usage", str(tmp_path / "missing.csv"),
                 "--database-url", database_url]) == 2


def test_the_database_checks_accounts_again_after_an_import(engine: Engine,
                                                            tmp_path: Path) -> None:
    """An import checks accounts itself and spares SQLite its per-row foreign-key probe;
    the connection it leaves in the pool checks them again, has its own cache size and
    sorter threads back, and holds no chunk of the file in memory."""
    ensure_schema(engine)
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            before = [conn.exec_driver_sql(f"PRAGMA {p}").scalar_one()
                      for p in ("cache_size", "temp.cache_size", "threads")]
    import_csv(engine, "accounts", _write(tmp_path / "accounts.csv", ACCOUNTS))
    import_csv(engine, "usage", _write(tmp_path / "usage.csv", _usage_text(5)))
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            assert [conn.exec_driver_sql(f"PRAGMA {p}").scalar_one()
                    for p in ("cache_size", "temp.cache_size", "threads")] == before
            schemas = {row[1] for row in conn.exec_driver_sql("PRAGMA database_list")}
            assert schemas <= {"main", "temp", "vm_chunk"}
            if "vm_chunk" in schemas:  # chunks are opened there (imports._insert_packed)
                assert conn.exec_driver_sql("PRAGMA vm_chunk.page_count").scalar_one() == 1
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(usage.insert().values(account_id="nobody", metric="users",
                                           date=dt.date(2024, 6, 3), value=1.0))


def test_a_python_whose_sqlite3_cannot_serialize_is_told_what_to_use(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("only imports into SQLite pack their chunks")
    ensure_schema(engine)
    monkeypatch.setattr(imports, "sqlite3", types.SimpleNamespace(Connection=object,
                                                                  sqlite_version="3.31.1"))
    with pytest.raises(DatabaseError, match=r"SQLite 3\.31\.1\) cannot serialize.*3\.36"):
        import_csv(engine, "accounts", _write(tmp_path / "accounts.csv", ACCOUNTS))
    with engine.connect() as conn:  # nothing written
        assert conn.execute(select(accounts.c.account_id)).first() is None
