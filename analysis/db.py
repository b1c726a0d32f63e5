"""Engine creation and schema migrations (Alembic), the same on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, Table, create_engine, event, inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

MIGRATIONS = Path(__file__).with_name("migrations")
BUSY_TIMEOUT_MS = 30_000
# How long a writer waits for another one (e.g. a 3-million-row import) before giving up.
WRITE_LOCK_PATIENCE_S = 600
_WRITE_LOCK = "valuemetric_write_lock"  # execution option: callable(seconds waited)


class DatabaseError(Exception):
    """The database cannot be used as it is; the message says what to do."""


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys, WAL and a busy timeout."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(
            f"database url {url!r} is not a SQLAlchemy URL; use e.g. sqlite:///valuemetric.db "
            "or postgresql+psycopg://user@host/dbname"
        ) from exc
    if parsed.drivername == "postgresql":  # default to the driver the extra installs
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        engine = create_engine(parsed)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise DatabaseError(
            f"no driver for {parsed.drivername}: install the extra, "
            "e.g. pip install 'valuemetric[postgres]'"
        ) from exc
    if engine.dialect.name == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # SQLAlchemy's documented pysqlite recipe: the driver's implicit BEGIN (always
            # DEFERRED, so a reader turning writer fails at once on a busy database) is
            # switched off, and _sqlite_begin below emits BEGIN itself.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            waiting = conn.get_execution_options().get(_WRITE_LOCK)
            if waiting is None:
                conn.exec_driver_sql("BEGIN")
            else:
                _begin_immediate(conn.connection.dbapi_connection, waiting)

    return engine


def _begin_immediate(dbapi_conn: Any, waiting: Callable[[int], None]) -> None:
    """BEGIN IMMEDIATE: take the write lock now, telling ``waiting`` while another holds it."""
    started = time.monotonic()
    dbapi_conn.execute("PRAGMA busy_timeout=2000")
    try:
        while True:
            try:
                dbapi_conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                waited = time.monotonic() - started
                if "locked" not in str(exc) or waited > WRITE_LOCK_PATIENCE_S:
                    raise DatabaseError(
                        f"the database is busy: another process has been writing for "
                        f"{waited:.0f} s ({exc}); try again when it is done") from None
                waiting(int(waited))
    finally:
        dbapi_conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


@contextlib.contextmanager
def write_transaction(engine: Engine, waiting: Callable[[int], None] | None = None, *,
                      accounts_checked: bool = False) -> Iterator[Connection]:
    """A transaction holding the write lock from its first statement.

    On SQLite this is ``BEGIN IMMEDIATE``: two writers never both start and then collide,
    and a writer queued behind a long import waits for it (calling ``waiting`` with the
    seconds waited, every couple of seconds) instead of failing after the busy timeout.
    PostgreSQL locks rows, not the database: a plain transaction.

    ``accounts_checked``: the caller checks every account id against the accounts it read
    under this lock, so SQLite need not look each row's up again (a b-tree probe per row,
    2 s of a 5 M-row usage import); the pragma only changes outside a transaction.
    """
    with engine.connect() as conn:
        unchecked = accounts_checked and conn.dialect.name == "sqlite"
        driver = conn.connection.dbapi_connection  # a pragma outside any transaction
        if unchecked and driver is not None:
            driver.execute("PRAGMA foreign_keys=OFF")
        try:
            conn.execution_options(**{_WRITE_LOCK: waiting or (lambda _seconds: None)})
            with conn.begin():
                yield conn
        finally:
            if unchecked and driver is not None:
                with contextlib.suppress(sqlite3.Error):  # the error that got here wins
                    driver.execute("PRAGMA foreign_keys=ON")
                # still inside a transaction the pragma does nothing: never pool it so
                with contextlib.suppress(sqlite3.Error):
                    if driver.execute("PRAGMA foreign_keys").fetchone() != (1,):
                        conn.invalidate()


def dialect_insert(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (SQLite and PostgreSQL)."""
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    raise DatabaseError(f"{conn.dialect.name} is not supported yet: use SQLite or PostgreSQL")


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def pending_revisions(engine: Engine) -> list[str]:
    """The revisions an upgrade would apply, oldest first, each with its purpose."""
    script = ScriptDirectory.from_config(_alembic_config())
    pending = script.iterate_revisions("head", current_revision(engine) or "base")
    return [f"{r.revision} ({' '.join((r.doc or '').split())})" for r in reversed(list(pending))]


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the schema to the newest revision; returns (before, after)."""
    before = current_revision(engine)
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    return before, head_revision()


def ensure_schema(engine: Engine) -> bool:
    """Create the schema in an empty database; refuse an outdated one.

    Returns True when the schema was created. A database at an older revision is not
    upgraded behind the user's back: that is what ``valuemetric db upgrade`` is for.
    """
    revision = current_revision(engine)
    if revision == head_revision():
        return False
    if revision is None:
        existing = set(inspect(engine).get_table_names())
        if existing & {"accounts", "usage", "revenue"}:
            raise DatabaseError(
                "the database has valuemetric-like tables but no migration history; "
                "point VALUEMETRIC_DATABASE_URL at an empty database or one made by valuemetric"
            )
        upgrade(engine)
        return True
    raise DatabaseError(
        f"the database schema is at revision {revision}, this version needs {head_revision()}: "
        "run `valuemetric db upgrade`"
    )
