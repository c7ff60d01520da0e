"""The SQLite sink: the raw sqlite3 connection with precomputed SQL."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from engine.errors import StoreError
from engine.store.batch import CLOSE_STEPS_SQL, EVENT_COLS, EXEC_COLS, STEP_COLS, STEP_KEY, Batch, RowsRefused

if TYPE_CHECKING:
    from sqlalchemy import Engine

log = logging.getLogger(__name__)
# SQLite's default is 1,000 pages: a checkpoint (copying the WAL back and two fsyncs, about
# half of what raw sqlite3 spends writing a small run, benchmarks/bench_engine.py) every
# ~60 sequential small runs. Four times fewer keeps the WAL under ~16 MB. A checkpoint
# from another thread was measured too: it saves nothing on 2 cores, and cannot bound the
# WAL by itself (SQLite starts the WAL over only for a writer that finds all of it copied
# back, which a checkpoint racing the commits never leaves).
CHECKPOINT_PAGES = 4000


class SqliteSink:
    """SQLite through the raw sqlite3 connection with precomputed SQL.

    SQLAlchemy Core costs a few microseconds per row on top of sqlite3's executemany
    (see benchmarks/bench_store.py); at ~30 rows per run that is most of the write cost,
    so the hot appends use the driver directly. The statements mirror CoreSink's.
    """

    def __init__(self, engine: Engine, busy_timeout: float = 30.0):
        self._proxy = engine.raw_connection()  # held for the recorder's lifetime
        self._conn: sqlite3.Connection = self._proxy.driver_connection  # type: ignore[assignment]
        # Detached: this connection's lock handling differs from the pool's (below), so it
        # must never be handed to anyone else.
        self._proxy.detach()
        # sqlite3 would sleep up to busy_timeout inside BEGIN; the sink waits itself instead,
        # so that a write attempted on the event loop can give up at once.
        self._conn.execute("PRAGMA busy_timeout = 0")
        # SQLite checkpoints the WAL inside the COMMIT that takes it past this many pages.
        self._conn.execute(f"PRAGMA wal_autocheckpoint = {CHECKPOINT_PAGES}")
        self.busy_timeout = busy_timeout
        self._exec_sql = sqlite_upsert_sql("executions", EXEC_COLS, ("id",))
        self._step_sql = sqlite_upsert_sql("step_runs", STEP_COLS, STEP_KEY)
        self._event_sql = (f"INSERT INTO execution_events ({', '.join(EVENT_COLS)}) "
                           f"VALUES ({', '.join('?' * len(EVENT_COLS))})")
        self._close_sql = CLOSE_STEPS_SQL.format(p="?")

    def write(self, batch: Batch, wait: bool = True) -> bool:
        conn = self._conn
        try:
            if not self._begin(wait):
                return False
            try:
                if batch.executions:
                    conn.executemany(self._exec_sql, batch.executions)
                if batch.step_runs:
                    conn.executemany(self._step_sql, batch.step_runs)
                if batch.events:
                    conn.executemany(self._event_sql, batch.events)
                if batch.close_steps:
                    conn.executemany(self._close_sql, [(e, i) for i, e in batch.close_steps])
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:  # locked, I/O, disk full: the file, not the rows
            raise StoreError(f"could not record {len(batch)} rows: {exc}") from exc
        except Exception as exc:  # an encoding, a value, a constraint: these rows
            raise RowsRefused(len(batch), exc) from exc
        return True

    def _begin(self, wait: bool) -> bool:
        """BEGIN IMMEDIATE (take the write lock); retried until ``busy_timeout`` if ``wait``."""
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.0005
        while True:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                return True
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                    raise
                if not wait:
                    return False
                if time.monotonic() >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def close(self) -> None:
        try:  # a WAL copied back for whoever opens the file next (never waits for a lock)
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            log.debug("WAL checkpoint at close failed: %s", exc)
        finally:
            self._proxy.close()


def sqlite_upsert_sql(table: str, cols: Sequence[str], key: Sequence[str]) -> str:
    updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in key)
    return (f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}")


