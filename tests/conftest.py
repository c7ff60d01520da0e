"""Fixtures shared by every test directory: store URLs on SQLite and on PostgreSQL.

``store_url`` runs a test twice: on a fresh SQLite file in tmp_path, and on a PostgreSQL
database created for this test session (emptied before each test, dropped at the end).
The PostgreSQL half is skipped, saying why, when the server is unreachable.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
_STORE_TABLES = ("executions", "execution_events", "step_runs", "definitions",
                 "idempotency_keys", "dlq_entries", "step_mocks", "breakpoints", "api_keys",
                 "event_schemas", "backfills", "instances", "paused_executions",
                 "source_events")


class PgDatabases:
    """Creates uniquely named PostgreSQL databases and drops them all at the end."""

    def __init__(self) -> None:
        import psycopg

        self.error: str | None = None
        self.created: list[str] = []
        try:
            self.admin = psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True,
                                         connect_timeout=3)
        except psycopg.OperationalError as exc:
            self.error = f"PostgreSQL is not reachable at 127.0.0.1:5432: {exc}".strip()

    def create(self) -> str:
        if self.error:
            pytest.skip(self.error)
        name = f"wfs_store_{uuid.uuid4().hex[:12]}"
        self.admin.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return f"{PG_SERVER}/{name}"

    def drop_all(self) -> None:
        if self.error:
            return
        for name in self.created:
            self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.admin.close()


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    databases = PgDatabases()
    try:
        yield databases
    finally:
        databases.drop_all()


@pytest.fixture(scope="session")
def pg_store_database(pg_databases: PgDatabases) -> str:
    """One database for the session's store tests (see ``store_url``)."""
    return pg_databases.create()


@pytest.fixture
def fresh_pg_url(pg_databases: PgDatabases) -> Callable[[], str]:
    """A factory of brand-new, empty PostgreSQL databases (e.g. to watch migrations run)."""
    return pg_databases.create


def _empty_pg_store(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        present = [t for t in _STORE_TABLES
                   if conn.execute("SELECT to_regclass(%s)", (t,)).fetchone()[0] is not None]
        if present:
            conn.execute(f"TRUNCATE {', '.join(present)} RESTART IDENTITY")


@pytest.fixture
def pg_store_url(pg_store_database: str) -> str:
    """The session's PostgreSQL store database, with every store table emptied."""
    _empty_pg_store(pg_store_database)
    return pg_store_database


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL for ``Store.open``: a new SQLite file, or the session's emptied PG database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("pg_store_url")
