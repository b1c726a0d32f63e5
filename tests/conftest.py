"""Shared fixtures: a real SQLite file, and a real PostgreSQL where one is configured."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from analysis.db import make_engine

PG_URL = os.environ.get("VALUEMETRIC_TEST_DATABASE_URL", "")
PG_SKIP_REASON = ("PostgreSQL tests need VALUEMETRIC_TEST_DATABASE_URL, e.g. "
                  "postgresql+psycopg://postgres@127.0.0.1:5432/test")


DATABASES = ["sqlite", "postgresql"]


@contextlib.contextmanager
def new_database(kind: str, directory: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a fresh schema in the test PostgreSQL."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'valuemetric.db'}"
        return
    if not PG_URL:
        pytest.skip(PG_SKIP_REASON)
    schema = f"vm_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with new_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    yield eng
    eng.dispose()
