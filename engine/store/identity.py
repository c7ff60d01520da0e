"""Which database a connection really reached, so that no module opens the event store.

The event store holds every tenant's executions and the API keys' digests. A pipeline's
``database.sql`` module must never reach it, whatever spelling its URL uses: another path to
the same SQLite file (relative, ``..``, a symlink, a hard link, a ``file:`` URI), or another
host name, user or URL form for the same PostgreSQL database. Spellings are not compared:
each new module connection asks the database it reached who it is, and that answer is
compared with the store's.

- SQLite: the files the connection has open (``PRAGMA database_list``), as (device, inode);
  an authorizer refuses ``ATTACH`` and ``VACUUM INTO`` so no statement can reach another
  file afterwards.
- PostgreSQL: (server start time, port, database name) as the server reports them; two
  servers do not start in the same microsecond on the same port.

``protect(store)`` registers a store (the studio service does, for the server and the studio
alike); ``check_connection(dbapi_connection, dialect)`` raises ``StoreReached`` for one that
reached a registered store.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from typing import Any

from sqlalchemy.engine import Engine

from engine.store.store import Store

_PG_IDENTITY = ("SELECT current_database(), pg_postmaster_start_time()::text, "
                "current_setting('port')")
_DENIED = frozenset({sqlite3.SQLITE_ATTACH})  # VACUUM INTO attaches its target too

_lock = threading.Lock()
_protected: weakref.WeakKeyDictionary[Store, frozenset[tuple[Any, ...]]] = (
    weakref.WeakKeyDictionary())


class StoreReached(Exception):
    """A module connection reached a protected event store."""


def _sqlite_files(dbapi_connection: Any) -> frozenset[tuple[Any, ...]]:
    cursor = dbapi_connection.cursor()
    try:
        rows = cursor.execute("PRAGMA database_list").fetchall()
    finally:
        cursor.close()
    found: set[tuple[Any, ...]] = set()
    for _seq, _name, file in rows:
        if file:  # "" for in-memory and temporary databases
            try:
                stat = os.stat(file)
            except OSError:
                continue
            found.add(("sqlite", stat.st_dev, stat.st_ino))
    return frozenset(found)


def _postgres_identity(dbapi_connection: Any) -> frozenset[tuple[Any, ...]]:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(_PG_IDENTITY)
        row = cursor.fetchone()
    finally:
        cursor.close()
    return frozenset({("postgresql", *row)}) if row else frozenset()


def identity(dbapi_connection: Any, dialect: str) -> frozenset[tuple[Any, ...]]:
    """What this driver connection reached, in terms comparable across spellings."""
    if dialect == "sqlite":
        return _sqlite_files(dbapi_connection)
    if dialect == "postgresql":
        return _postgres_identity(dbapi_connection)
    return frozenset()


def _engine_identity(engine: Engine) -> frozenset[tuple[Any, ...]]:
    raw = engine.raw_connection()
    try:
        found = identity(raw.dbapi_connection, engine.dialect.name)
        if engine.dialect.name == "postgresql":
            raw.rollback()  # leave no transaction open on a pooled connection
        return found
    finally:
        raw.close()


def protect(store: Store) -> None:
    """Refuse module connections to ``store`` from now on (while it is open)."""
    if store in _protected:
        return
    found = _engine_identity(store.sa_engine)
    with _lock:
        _protected[store] = found


def _protected_identities() -> set[tuple[Any, ...]]:
    with _lock:
        return {item for found in _protected.values() for item in found}


def _authorizer(action: int, *_args: Any) -> int:
    return sqlite3.SQLITE_DENY if action in _DENIED else sqlite3.SQLITE_OK


async def check_async_postgres(connection: Any) -> None:
    """``check_connection`` for a psycopg ``AsyncConnection`` (a CDC source's): raise
    ``StoreReached`` if it reached a protected store."""
    protected = _protected_identities()
    if not protected:
        return
    cursor = await connection.execute(_PG_IDENTITY)
    row = await cursor.fetchone()
    if row and ("postgresql", *row) in protected:
        raise StoreReached("it is the event store of this server or studio")


def check_connection(dbapi_connection: Any, dialect: str) -> None:
    """Raise ``StoreReached`` if this new connection reached a protected store; on SQLite,
    also keep it from attaching any other file later."""
    if dialect == "sqlite" and isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.set_authorizer(_authorizer)
    protected = _protected_identities()
    if not protected:
        return
    reached = identity(dbapi_connection, dialect)
    if dialect == "postgresql":
        dbapi_connection.rollback()  # the identity query opened a transaction
    if reached & protected:
        raise StoreReached("it is the event store of this server or studio")
