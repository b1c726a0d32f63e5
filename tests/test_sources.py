"""A company's own tables read through ``[source]`` (SQLite, PostgreSQL, DuckDB) give the same
answers as the same data imported into valuemetric's tables, and ``check`` names its problems."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import create_engine, insert

from analysis import schema
from analysis.db import ensure_schema, make_engine
from bot.cli import main
from tests import company
from tests.conftest import new_database

DATA = company.generate()


def _frames(data: company.Company) -> dict[str, pd.DataFrame]:
    frames = {name: frame.copy() for name, frame in data.tables().items()}
    for name, columns in (("organizations", ["created_at", "canceled_at"]),
                          ("product_events", ["occurred_at"]),
                          ("billing_invoices", ["period_start", "period_end"]),
                          ("state_snapshots", ["day"])):
        for column in columns:
            frames[name][column] = pd.to_datetime(frames[name][column])
    return frames


def write_company_tables(url: str, data: company.Company) -> None:
    """The company's tables as they would sit in its own database."""
    frames = _frames(data)
    if url.startswith("duckdb"):
        import duckdb

        with duckdb.connect(url.removeprefix("duckdb:///")) as con:
            for name, frame in frames.items():
                con.register("frame", frame)
                con.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
                con.unregister("frame")
        return
    engine = create_engine(url)
    with engine.begin() as conn:
        for name, frame in frames.items():
            frame.to_sql(name, conn, index=False, chunksize=5000)
    engine.dispose()


def import_company(url: str, data: company.Company) -> None:
    """The same company through valuemetric's own tables (what the importers write)."""
    engine = make_engine(url)
    ensure_schema(engine)
    known = set(data.organizations["id"])
    orgs = data.organizations
    events = data.product_events[data.product_events["org_id"].isin(known)
                                 & (data.product_events["occurred_at"].dt.year < 2090)]
    merged = events.groupby(["name", "occurred_at", "org_id", "user_id"]).size()
    paid = data.billing_invoices[data.billing_invoices["status"] == "paid"]
    with engine.begin() as conn:
        conn.execute(insert(schema.accounts), [
            {"account_id": r["id"], "name": r["name"], "plan": r["tier"],
             "signup_date": r["created_at"].date(),
             "churn_date": (r["canceled_at"].date() if r["canceled_at"] is not pd.NaT
                            else None)}
            for r in orgs.astype(object).to_dict("records")])
        conn.execute(insert(schema.events), [
            {"event": e, "timestamp": t.to_pydatetime(), "account_id": a, "user_id": u,
             "occurrences": int(n)} for (e, t, a, u), n in merged.items()])
        conn.execute(insert(schema.invoices), [
            {"account_id": r.org_id, "period_start": r.period_start,
             "period_end": r.period_end, "currency": r.currency, "amount": r.amount}
            for r in paid.itertuples()])
        conn.execute(insert(schema.usage), [
            {"account_id": r.org_id, "metric": r.metric, "date": r.day, "value": r.value}
            for r in data.state_snapshots.itertuples()])
    engine.dispose()


def _config(tmp_path: Path, source_url: str | None,
            keys: tuple[str, ...] = tuple(company.SOURCE_SQL)) -> Path:
    text = company.CONFIG
    if source_url is not None:
        text += f'\n[source]\nurl = "{source_url}"\n' + "".join(
            f'{key} = "{company.SOURCE_SQL[key]}"\n' for key in keys)
    path = tmp_path / f"config-{'source' if source_url else 'imported'}.toml"
    path.write_text(text)
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    out = capsys.readouterr()
    assert code in (0, 1), out.err
    return code, out.out


def _ask(capsys: pytest.CaptureFixture[str], config: Path, db: str, question: str) -> Any:
    code, out = _run(capsys, "ask", question, "--format", "json", "--config", str(config),
                     "--database-url", db)
    assert code == 0
    return json.loads(out)


@pytest.fixture(scope="module")
def imported_answers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("imported")
    db = f"sqlite:///{tmp / 'own.db'}"
    import_company(db, DATA)
    config = _config(tmp, None)
    answers = {}
    for question in ("correlate", "recommend"):  # capsys is per test: capture stdout here
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["ask", question, "--format", "json", "--config", str(config),
                         "--database-url", db]) == 0
        answers[question] = json.loads(out.getvalue())
    return answers


def _answers_match(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                   imported_answers: dict[str, Any], own: str, keys: tuple[str, ...]
                   ) -> tuple[int, str]:
    """The company's tables in a ``kind`` database, read through ``[source]`` queries for
    ``keys``: asserts every answer equals the all-imported one; returns ``check``'s result."""
    with new_database("sqlite" if kind == "duckdb" else kind, tmp_path / "company") as url:
        if kind == "duckdb":
            url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
        elif kind == "sqlite":
            (tmp_path / "company").mkdir(exist_ok=True)
        write_company_tables(url, DATA)
        config = _config(tmp_path, url, keys=keys)
        for question, expected in imported_answers.items():
            assert _ask(capsys, config, own, question) == expected, question
        return _run(capsys, "check", "--config", str(config), "--database-url", own)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "duckdb"])
def test_source_tables_answer_like_the_imported_ones(
        kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        imported_answers: dict[str, Any]) -> None:
    own = f"sqlite:///{tmp_path / 'own.db'}"
    code, out = _answers_match(kind, tmp_path, capsys, imported_answers, own,
                               tuple(company.SOURCE_SQL))
    assert code == 0, out  # warnings only: the carried-forward revenue keeps ARR right
    assert "carried forward" in out
    assert company.GHOST in out  # events from an unknown organisation
    assert "2099-01-01" in out  # the future-dated event
    assert "problem:" not in out


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "duckdb"])
def test_shapes_left_out_of_a_separate_source_read_the_imported_tables(
        kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        imported_answers: dict[str, Any]) -> None:
    # the usual mix: organisations and events in the warehouse, invoices (a billing export)
    # and snapshots imported into valuemetric's own database
    own = f"sqlite:///{tmp_path / 'own.db'}"
    import_company(own, DATA)
    code, out = _answers_match(kind, tmp_path, capsys, imported_answers, own,
                               ("accounts", "events"))
    assert code == 0, out
    assert "carried forward" in out  # the imported invoices were read


def test_planted_effects_are_recovered(imported_answers: dict[str, Any]) -> None:
    # MRR is 20 per seat and active users track seats: a strong ARR correlation, because
    # the 40% of monthly customers not yet invoiced for December keep November's MRR
    by_metric = {m["metric"]: m for m in imported_answers["correlate"]["metrics"]}
    assert by_metric["active_users"]["arr_rho"] > 0.8
    assert imported_answers["correlate"]["as_of"] == str(company.END)
