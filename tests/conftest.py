"""Shared fixtures: a real database on SQLite and on PostgreSQL for every integration test.

PostgreSQL tests run in a database created for the test session and dropped after it. Where
no server answers they skip with the reason, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from leadflow import Leadflow, Settings, open_leadflow
from leadflow.adapters.db.tables import Base

PG_ADMIN_URL = os.environ.get(
    "LEADFLOW_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() == "true"


def need_service(reason: str) -> None:
    """Skip with the reason on a developer machine; fail under CI=true."""
    if IN_CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def _admin():  # type: ignore[no-untyped-def]
    import psycopg

    url = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    return psycopg.connect(url, autocommit=True, connect_timeout=3)


@pytest.fixture(scope="session")
def pg_url(worker_id: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (one per xdist worker)."""
    name = f"leadflow_test_{worker_id}_{uuid.uuid4().hex[:8]}"
    try:
        admin = _admin()
    except Exception as exc:
        need_service(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with _admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _truncate(app: Leadflow) -> None:
    with app.transaction() as conn:
        if conn.dialect.name == "postgresql":
            names = ", ".join(t.name for t in Base.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL on each backend: a SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'leadflow.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, home=tmp_path)


@pytest.fixture
def leadflow(settings: Settings) -> Iterator[Leadflow]:
    """An empty, migrated store on each backend."""
    app = open_leadflow(settings)
    _truncate(app)
    try:
        yield app
    finally:
        _truncate(app)
        app.close()
