"""The migrations build exactly the tables the queries are written against."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, inspect, text

from analysis.db import _alembic_config, upgrade
from analysis.schema import metadata


def test_migrations_match_schema_module(engine: Engine) -> None:
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def _at_revision_with_an_account(conn: Connection, revision: str) -> Config:
    """The schema at ``revision`` on ``conn``, with account 'a'; the Alembic config to move
    it on with."""
    cfg = _alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)
    conn.execute(text("INSERT INTO accounts (account_id, name, plan, signup_date) "
                      "VALUES ('a', 'A', 'p', '2024-01-01')"))
    return cfg


def test_events_are_rekeyed_by_account_with_their_rows_kept(engine: Engine) -> None:
    with engine.begin() as conn:
        cfg = _at_revision_with_an_account(conn, "0004")
        conn.execute(text("INSERT INTO events (event, timestamp, account_id, user_id, "
                          "occurrences, value) VALUES ('e', '2024-01-02 00:00:00', 'a', 'u', "
                          "2, 1.5)"))
        for revision, key in (("0005", ["account_id", "timestamp", "event", "user_id"]),
                              ("0004", ["event", "timestamp", "account_id", "user_id"])):
            if revision == "0005":
                command.upgrade(cfg, revision)
            else:
                command.downgrade(cfg, revision)
            assert inspect(conn).get_pk_constraint("events")["constrained_columns"] == key
            assert conn.execute(text("SELECT account_id, user_id, occurrences, value "
                                     "FROM events")).all() == [("a", "u", 2, 1.5)]


def test_usage_is_clustered_on_sqlite_with_its_rows_kept(engine: Engine) -> None:
    clustered = engine.dialect.name == "sqlite"

    def without_rowid(conn: Connection) -> bool:
        if not clustered:
            return False
        sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'usage'")).scalar()
        return "WITHOUT ROWID" in str(sql).upper()

    with engine.begin() as conn:
        cfg = _at_revision_with_an_account(conn, "0006")
        conn.execute(text("INSERT INTO usage (account_id, metric, date, value) VALUES "
                          "('a', 'seats', '2024-01-08', 3), ('a', 'seats', '2024-01-01', 2)"))
        assert not without_rowid(conn)
        for step, revision in ((command.upgrade, "0007"), (command.downgrade, "0006")):
            step(cfg, revision)
            assert without_rowid(conn) is (clustered and revision == "0007")
            assert [i["name"] for i in inspect(conn).get_indexes("usage")] == [
                "ix_usage_metric_date"]
            rows = conn.execute(text("SELECT metric, date, value FROM usage ORDER BY date"))
            assert [(m, str(d), v) for m, d, v in rows] == [("seats", "2024-01-01", 2.0),
                                                           ("seats", "2024-01-08", 3.0)]
