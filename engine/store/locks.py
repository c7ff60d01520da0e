"""Named locks across processes: ``async with store.lock(name, timeout=...)``.

On PostgreSQL a lock is a session advisory lock (``pg_try_advisory_lock`` of a 64-bit
hash of the name) taken on one connection per store that exists only for locks, so
holding many locks costs one connection, and a process that dies drops its locks with
its connection. Inside one process the holders of a name queue up first (advisory locks
are re-entrant per session, so the process must not ask twice). On SQLite the lock is
in-process only (one machine, normally one process): a module-wide table keyed by the
database file, so two ``Store`` objects on one file still exclude each other.

Waiting polls with a short back-off instead of blocking in ``pg_advisory_lock``: a
waiter can then time out or be cancelled without a server-side wait to undo.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Engine

from engine.errors import StoreError
from engine.store.presence import lock_key

_held: set[tuple[str, str]] = set()  # (store identity, name): locks held in this process
_held_lock = threading.Lock()


class LockTimeout(StoreError, TimeoutError):
    """The lock was not free within the timeout."""


class StoreLocks:
    """The locks of one store; ``scope`` identifies the database for in-process exclusion."""

    def __init__(self, engine: Engine, scope: str):
        self.engine = engine
        self.scope = scope
        self.distributed = engine.dialect.name == "postgresql"
        self._proxy: Any = None  # the lock connection (PostgreSQL), opened on first use
        self._conn: Any = None  # its psycopg connection
        self._conn_lock = threading.Lock()
        self._closed = False

    @asynccontextmanager
    async def lock(self, name: str, timeout: float | None = None) -> AsyncIterator[None]:
        """Hold ``name`` across processes (PostgreSQL) or in this process (SQLite).

        ``timeout``: seconds to wait (None: wait as long as it takes); then ``LockTimeout``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        ident = (self.scope, name)
        delay = 0.002
        while True:
            if self._take_local(ident):
                try:
                    got = (await asyncio.to_thread(self._pg, "SELECT pg_try_advisory_lock(%s)", name)
                           if self.distributed else True)
                except BaseException:
                    self._drop_local(ident)
                    raise
                if got:
                    break
                self._drop_local(ident)
            if deadline is not None and time.monotonic() >= deadline:
                raise LockTimeout(f"the lock {name!r} is held elsewhere (waited {timeout:g}s)")
            await asyncio.sleep(delay if deadline is None
                                else max(0.0, min(delay, deadline - time.monotonic())))
            delay = min(delay * 2, 0.1)
        try:
            yield
        finally:
            try:
                if self.distributed:
                    await asyncio.shield(asyncio.to_thread(self._pg, "SELECT pg_advisory_unlock(%s)",
                                                           name))
            finally:
                self._drop_local(ident)

    def _take_local(self, ident: tuple[str, str]) -> bool:
        with _held_lock:
            if ident in _held:
                return False
            _held.add(ident)
            return True

    def _drop_local(self, ident: tuple[str, str]) -> None:
        with _held_lock:
            _held.discard(ident)

    def _pg(self, sql: str, name: str) -> bool:
        """One statement on the lock connection (worker thread); a broken one is replaced.

        A lost connection also lost its locks, so an unlock on a new one is a no-op.
        """
        import psycopg

        with self._conn_lock:
            if self._closed:
                raise StoreError("the store is closed")
            if self._proxy is None:
                proxy = self.engine.raw_connection()
                self._conn = proxy.driver_connection
                proxy.detach()
                self._conn.autocommit = True
                self._proxy = proxy
            try:
                key = lock_key("wfstudio.lock:" + name)
                row = self._conn.execute(sql, (key,)).fetchone()
            except psycopg.Error as exc:
                self._proxy.close()
                self._proxy = None
                raise StoreError(f"lock {name!r}: {exc}") from exc
            return bool(row and row[0])

    def close(self) -> None:
        with self._conn_lock:
            self._closed = True
            if self._proxy is not None:
                self._proxy.close()
                self._proxy = None
