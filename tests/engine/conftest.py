"""Shared fixtures of the engine tests: a loopback HTTP server and a throwaway PostgreSQL database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

try:  # the helper sits next to this file; tests/ may or may not become a package
    from tests.engine.http_server import LoopbackServer
except ImportError:
    from http_server import LoopbackServer  # type: ignore[no-redef]

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def http_server() -> Iterator[LoopbackServer]:
    """A real HTTP server on 127.0.0.1 (see tests/engine/http_server.py for its endpoints)."""
    with LoopbackServer() as server:
        yield server


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL database created for this test session and dropped after it."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at 127.0.0.1:5432: {exc}")
    name = f"wfs_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
