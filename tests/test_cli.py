from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command

from analysis.db import _alembic_config, head_revision, make_engine
from bot.cli import main


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("VALUEMETRIC_CONFIG", "VALUEMETRIC_DATABASE_URL")}
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_demo_prints_a_digest_and_is_reproducible(tmp_path: Path) -> None:
    first = _run("demo", "--accounts", "400", "--seed", "3", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "valuemetric-demo.db").is_file()
    assert "demo database: sqlite:///valuemetric-demo.db" in first.stderr
    for heading in ("valuemetric weekly digest, as of", "== Which usage predicts value ==",
                    "Segment: High-LTV customers (>$10k ARR)", "Segment: Churned customers",
                    "Insight: ", "== Recommendation =="):
        assert heading in first.stdout
    again = _run("demo", "--accounts", "400", "--seed", "3", cwd=tmp_path)
    assert again.stdout == first.stdout

    # the settings file it leaves makes `ask` give the digest's own answer
    assert "demo settings: valuemetric-demo.toml" in first.stderr
    asked = _run("ask", "recommend", "--format", "json", "--config", "valuemetric-demo.toml",
                 cwd=tmp_path)
    assert asked.returncode == 0, asked.stderr
    recommendation = json.loads(asked.stdout)
    assert recommendation["primary_metric"] == "active_users"
    assert recommendation["text"] in first.stdout


def test_db_upgrade_and_digest_json(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the demo writes its settings file here
    url = f"sqlite:///{tmp_path / 'x.db'}"
    head = head_revision()
    assert main(["db", "upgrade", "--database-url", url]) == 0
    created = capsys.readouterr()
    assert f"upgraded empty database -> {head}" in created.out
    assert "applying" not in created.err  # nothing to rebuild in an empty database
    assert main(["db", "upgrade", "--database-url", url]) == 0
    assert f"already at revision {head}" in capsys.readouterr().out
    assert main(["demo", "--accounts", "300", "--database-url", url]) == 0
    capsys.readouterr()
    assert main(["digest", "--format", "json", "--database-url", url]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert {"as_of", "correlate", "segments", "thresholds", "recommend"} <= set(payload)


def test_db_upgrade_says_which_revisions_it_applies(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    cfg = _alembic_config()
    with make_engine(url).begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0006")
    assert main(["db", "upgrade", "--database-url", url]) == 0
    said = capsys.readouterr()
    assert f"{url}: applying 0007 (usage clustered on its key on SQLite" in said.err
    assert f"upgraded 0006 -> {head_revision()}" in said.out


def test_db_upgrade_refuses_usage_of_unknown_accounts_and_changes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "orphans.db"
    cfg = _alembic_config()
    with make_engine(f"sqlite:///{path}").begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0006")
    with sqlite3.connect(path) as raw:  # another loader, foreign keys off
        raw.execute("INSERT INTO usage VALUES ('ghost', 'seats', '2025-01-06', 3)")
    assert main(["db", "upgrade", "--database-url", f"sqlite:///{path}"]) == 1
    err = capsys.readouterr().err
    assert ("usage has 1 rows of 1 accounts that are not in accounts (e.g. ghost): import "
            "those accounts") in err
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT version_num FROM alembic_version").fetchall() == [("0006",)]
        assert raw.execute("SELECT account_id FROM usage").fetchall() == [("ghost",)]


def test_errors_are_one_line_with_a_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    assert main(["ask", "correlate", "--database-url", empty]) == 1
    assert "import usage.csv first" in capsys.readouterr().err
    assert main(["ask", "help", "--database-url", "nonsense"]) == 1
    assert "is not a SQLAlchemy URL" in capsys.readouterr().err
    assert main(["ask", "help", "--database-url", "nonsense://"]) == 1
    assert "no driver for nonsense" in capsys.readouterr().err
    bad_config = tmp_path / "c.toml"
    bad_config.write_text("[analysis]\nwindow = 3\n")
    assert main(["ask", "help", "--config", str(bad_config), "--database-url", empty]) == 1
    assert "analysis.window: unknown key (did you mean 'window_days'?)" in capsys.readouterr().err
    assert main(["ask", "help", "--as-of", "tomorrow", "--database-url", empty]) == 2
