"""The batching recorder: the executor hands over rows, the recorder commits them in groups.

Calls from the executor (``execution``, ``step_run``, ``event``) only buffer. A single writer
task drains the buffer: it cuts a batch (serializing the records on the event-loop thread,
because the executor keeps mutating them), writes it in one transaction, and resolves
everyone who was waiting for that batch. Whatever arrives meanwhile forms the next batch,
so concurrent ``flush()`` callers share one commit (group commit).

Where the write runs was measured (benchmarks/bench_store.py, bench_engine.py): for SQLite,
writing on the loop thread is as fast or faster than a worker thread at every concurrency
tried (the GIL hand-offs between the loop and sqlite3 cost more than the overlap gains), so
SQLite batches up to a few thousand rows are written inline, and only if the write lock is
free right away; a locked database or a huge batch goes to a worker thread, which waits.
PostgreSQL batches always go to a worker thread (a network round trip).

Executions and step runs are coalesced per key: a row handed over several times before a
batch is cut is written once, in its latest state (an upsert). Events are appended.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Text, bindparam, cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from engine.errors import StoreError
from engine.store import models
from engine.store.codec import dumps, dumps_or_none
from engine.store.records import EventRecord, ExecutionRecord, StepRunRecord

if TYPE_CHECKING:
    from sqlalchemy import Engine

log = logging.getLogger(__name__)

Row = tuple[Any, ...]


def _text(value: str | None) -> str | None:
    # PostgreSQL text cannot hold NUL; SQLite could, but one rule for both keeps rows equal.
    if value is not None and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


def execution_row(r: ExecutionRecord, owner: str | None = None) -> Row:
    """``owner``: the instance (open store) running the execution, for crash recovery."""
    return (r.id, r.pipeline, r.status, r.trigger_type, dumps_or_none(r.trigger_payload),
            r.started_at, r.ended_at, r.duration_ms, dumps_or_none(r.output),
            dumps_or_none(r.error), r.definition_hash, r.parent_id, r.replay_of, r.tenant,
            r.event_count, owner)


def step_run_row(r: StepRunRecord) -> Row:
    return (r.execution_id, r.path, r.step, r.type, r.seq, r.iteration, r.attempt, r.status,
            r.started_at, r.ended_at, r.duration_ms, _text(r.error), r.output_size,
            dumps(r.flags) if r.flags else None)


EXEC_COLS = ("id", "pipeline", "status", "trigger_type", "trigger_payload", "started_at",
             "ended_at", "duration_ms", "output", "error", "definition_hash", "parent_id",
             "replay_of", "tenant", "event_count", "owner")
EXEC_JSON = frozenset({"trigger_payload", "output", "error"})
STEP_COLS = ("execution_id", "path", "step", "type", "seq", "iteration", "attempt", "status",
             "started_at", "ended_at", "duration_ms", "error", "output_size", "flags")
STEP_JSON = frozenset({"flags"})
STEP_KEY = ("execution_id", "seq")
EVENT_COLS = ("execution_id", "seq", "type", "data", "ts")


class Batch:
    """Serialized rows of one group commit."""

    __slots__ = ("events", "executions", "step_runs")

    def __init__(self, executions: list[Row], step_runs: list[Row], events: list[Row]):
        self.executions = executions
        self.step_runs = step_runs
        self.events = events

    def __len__(self) -> int:
        return len(self.executions) + len(self.step_runs) + len(self.events)


class Sink(Protocol):
    """Writes a batch in one transaction, or raises StoreError having written nothing."""

    def write(self, batch: Batch, wait: bool = True) -> bool:
        """Write ``batch``. With ``wait=False`` a sink may decline (return False, having
        done nothing) instead of waiting for a lock another connection holds."""
        ...

    def close(self) -> None: ...


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
        self.busy_timeout = busy_timeout
        self._exec_sql = sqlite_upsert_sql("executions", EXEC_COLS, ("id",))
        self._step_sql = sqlite_upsert_sql("step_runs", STEP_COLS, STEP_KEY)
        self._event_sql = (f"INSERT INTO execution_events ({', '.join(EVENT_COLS)}) "
                           f"VALUES ({', '.join('?' * len(EVENT_COLS))})")

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
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except Exception as exc:  # sqlite3.Error and anything the driver raises
            raise StoreError(f"could not record {len(batch)} rows: {exc}") from exc
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
        self._proxy.close()


def sqlite_upsert_sql(table: str, cols: Sequence[str], key: Sequence[str]) -> str:
    updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in key)
    return (f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}")


class PgSink:
    """PostgreSQL through the raw psycopg connection: COPY for events, pipelined upserts.

    Measured on 64-run batches (benchmarks/bench_store.py): ~30 ms against ~80 ms through
    SQLAlchemy Core's executemany. JSON goes in as text, which the server casts to jsonb.
    A broken connection is dropped and the next batch opens a new one.
    """

    def __init__(self, engine: Engine):
        self._engine = engine
        self._proxy: Any = None
        self._exec_sql = _pg_upsert_sql("executions", EXEC_COLS, ("id",))
        self._step_sql = _pg_upsert_sql("step_runs", STEP_COLS, STEP_KEY)
        self._copy_sql = f"COPY execution_events ({', '.join(EVENT_COLS)}) FROM STDIN"

    def write(self, batch: Batch, wait: bool = True) -> bool:
        import psycopg

        try:
            if self._proxy is None:
                self._proxy = self._engine.raw_connection()
            conn = self._proxy.driver_connection
            try:
                with conn.cursor() as cur:
                    if batch.executions:
                        cur.executemany(self._exec_sql, batch.executions)
                    if batch.step_runs:
                        cur.executemany(self._step_sql, batch.step_runs)
                    if batch.events:
                        with cur.copy(self._copy_sql) as copy:
                            for row in batch.events:
                                copy.write_row(row)
                conn.commit()
            except BaseException:
                if not conn.closed:
                    conn.rollback()
                raise
        except (psycopg.Error, SQLAlchemyError) as exc:
            if isinstance(exc, psycopg.OperationalError | DBAPIError) and self._proxy is not None:
                self._proxy.invalidate()  # a lost connection: reconnect for the next batch
                self._proxy = None
            reason = getattr(exc, "orig", None) or exc
            raise StoreError(f"could not record {len(batch)} rows: {reason}") from exc
        return True

    def close(self) -> None:
        if self._proxy is not None:
            self._proxy.close()
            self._proxy = None


def _pg_upsert_sql(table: str, cols: Sequence[str], key: Sequence[str]) -> str:
    updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in key)
    return (f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))}) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}")


class CoreSink:
    """Any backend through SQLAlchemy Core: in-memory SQLite, and the measured reference
    the raw-driver sinks are compared with (``Store.open(url, core_recorder=True)``).

    Statements are built once. JSON arrives pre-serialized, so JSON columns bind as text
    and are cast to the column type on PostgreSQL (SQLite stores JSON as text anyway).
    """

    def __init__(self, engine: Engine):
        self._engine = engine
        dialect = engine.dialect.name
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self._json_cast = dialect == "postgresql"
        self._exec_stmt = self._upsert(models.executions, EXEC_COLS, EXEC_JSON, ("id",))
        self._step_stmt = self._upsert(models.step_runs, STEP_COLS, STEP_JSON, STEP_KEY)
        self._event_stmt = models.execution_events.insert().values(
            {c: bindparam(c) for c in EVENT_COLS})

    def _upsert(self, table: Any, cols: Sequence[str], json_cols: frozenset[str],
                key: Sequence[str]) -> Any:
        values: dict[str, Any] = {}
        for c in cols:
            if c in json_cols:
                param = bindparam(c, type_=Text())
                values[c] = cast(param, table.c[c].type) if self._json_cast else param
            else:
                values[c] = bindparam(c)
        stmt = self._insert(table).values(values)
        return stmt.on_conflict_do_update(
            index_elements=list(key),
            set_={c: stmt.excluded[c] for c in cols if c not in key})

    def write(self, batch: Batch, wait: bool = True) -> bool:
        try:
            with self._engine.begin() as conn:
                if batch.executions:
                    conn.execute(self._exec_stmt, [dict(zip(EXEC_COLS, r, strict=True))
                                                   for r in batch.executions])
                if batch.step_runs:
                    conn.execute(self._step_stmt, [dict(zip(STEP_COLS, r, strict=True))
                                                   for r in batch.step_runs])
                if batch.events:
                    conn.execute(self._event_stmt, [dict(zip(EVENT_COLS, r, strict=True))
                                                    for r in batch.events])
        except SQLAlchemyError as exc:
            reason = getattr(exc, "orig", None) or exc
            raise StoreError(f"could not record {len(batch)} rows: {reason}") from exc
        return True

    def close(self) -> None:
        pass


class Recorder:
    """Buffers what the executor hands over and commits it in batches.

    ``max_events``: cut a batch as soon as this many events are pending.
    ``interval``: with anything pending, write at the latest after this many seconds.
    ``inline_rows``: batches up to this many rows are tried on the loop thread (without
    waiting for a lock); larger ones, and those that found the lock taken, are written in
    a worker thread. ``threaded``: False writes every batch on the loop thread, waiting if
    need be (in-memory SQLite, whose single connection is shared with the store's reads).
    """

    def __init__(self, sink: Sink, *, max_events: int = 2000, interval: float = 0.05,
                 inline_rows: int = 0, threaded: bool = True):
        self._sink = sink
        self.max_events = max_events
        self.interval = interval
        self.inline_rows = inline_rows
        self.threaded = threaded
        self.listeners: list[Callable[[EventRecord], None]] = []
        self._events: list[Row] = []
        self._executions: dict[str, ExecutionRecord] = {}
        self._step_runs: dict[tuple[str, int], StepRunRecord] = {}
        self._lock = threading.Lock()  # one transaction at a time on the sink's connection
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._next: asyncio.Future[None] | None = None  # resolved when the next batch commits
        self._inflight: asyncio.Future[None] | None = None  # the batch being written
        self._inflight_awaited = False  # someone awaits it: its failure reaches them
        self._error: StoreError | None = None  # a failed background batch, for the next flush
        self._closed = False
        self.batches = 0  # committed batches (for tests and benchmarks)
        self.owner: str | None = None  # the store's instance id, written on every execution row

    # ------------------------------------------------------------------ hand-over (executor)

    def execution(self, rec: ExecutionRecord) -> None:
        """Upsert the summary row (coalesced: the state at the next batch cut is written)."""
        if self._closed:
            raise _closed_error()
        self._executions[rec.id] = rec
        self._pending()

    def step_run(self, rec: StepRunRecord) -> None:
        """Upsert the step run keyed by (execution_id, seq of its step.started event)."""
        if self._closed:
            raise _closed_error()
        self._step_runs[(rec.execution_id, rec.seq)] = rec
        self._pending()

    def event(self, rec: EventRecord) -> None:
        """Append an event (its data is serialized now: later mutation does not change it)."""
        if self._closed:
            raise _closed_error()
        events = self._events
        events.append((rec.execution_id, rec.seq, rec.type, dumps(rec.data), rec.ts))
        for listener in self.listeners:
            try:
                listener(rec)
            except Exception:  # a broken subscriber must not break the execution
                log.exception("event listener failed")
        if len(events) >= self.max_events:
            self._kick()
        else:
            self._pending()

    # ------------------------------------------------------------------ flushing

    async def flush(self) -> None:
        """Return once everything handed over before this call is committed.

        Raises StoreError if that batch (or an earlier background batch) failed.
        """
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if self._has_pending():
            if self._next is None:
                self._next = asyncio.get_running_loop().create_future()
                self._next.add_done_callback(_consume)
            fut = self._next
            self._kick()
        elif self._inflight is not None:
            fut = self._inflight
            self._inflight_awaited = True
        else:
            return
        await asyncio.shield(fut)

    def flush_sync(self) -> None:
        """Write everything pending now, on the calling thread (for code without a loop)."""
        self._cancel_timer()
        batch = self._cut()
        if len(batch):
            with self._lock:
                self._sink.write(batch)
            self.batches += 1

    def close(self) -> None:
        """Final synchronous flush; the recorder accepts nothing afterwards."""
        if self._closed:
            return
        self._closed = True
        waiting, self._next = self._next, None
        try:
            self.flush_sync()
        except StoreError as exc:
            if waiting is not None and not waiting.done():
                waiting.set_exception(exc)
            raise
        else:
            if waiting is not None and not waiting.done():
                waiting.set_result(None)
        finally:
            with self._lock:  # a batch still being written in a worker thread finishes first
                self._sink.close()

    @property
    def pending(self) -> int:
        """Rows handed over and not yet in a batch."""
        return len(self._events) + len(self._executions) + len(self._step_runs)

    # ------------------------------------------------------------------ internals

    def _has_pending(self) -> bool:
        return bool(self._events or self._executions or self._step_runs)

    def _pending(self) -> None:
        """Something is buffered: make sure it is written within ``interval``."""
        if self._timer is None and self._task is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop: the owner calls flush_sync() / close()
                return
            self._timer = loop.call_later(self.interval, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._kick()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _kick(self) -> None:
        """Start the writer task unless it runs already (it loops until nothing is pending)."""
        if self._task is None and not self._closed:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush_sync()
                return
            self._cancel_timer()
            self._task = loop.create_task(self._drain())

    def _cut(self) -> Batch:
        """Serialize and take everything pending (on the loop thread)."""
        owner = self.owner
        batch = Batch([execution_row(r, owner) for r in self._executions.values()],
                      [step_run_row(r) for r in self._step_runs.values()],
                      self._events)
        self._executions = {}
        self._step_runs = {}
        self._events = []
        return batch

    def _write(self, batch: Batch, wait: bool = True) -> bool:
        with self._lock:
            return self._sink.write(batch, wait)

    async def _drain(self) -> None:
        try:  # everything inside: whatever fails, the finally lets the next flush start a writer
            loop = asyncio.get_running_loop()
            while self._has_pending() and not self._closed:
                batch = self._cut()
                done, self._next = self._next, None
                awaited = done is not None
                if done is None:
                    done = loop.create_future()
                    done.add_done_callback(_consume)
                self._inflight, self._inflight_awaited = done, False
                try:
                    if not self.threaded:
                        self._write(batch)
                    elif len(batch) > self.inline_rows or not self._write(batch, wait=False):
                        await asyncio.to_thread(self._write, batch)
                except StoreError as exc:
                    log.error("%s", exc)
                    # Someone waits for this batch: they get the error. Otherwise the next
                    # flush() reports it, so a failed background write is never silent.
                    if not (awaited or self._inflight_awaited):
                        self._error = exc
                    done.set_exception(exc)
                except BaseException as exc:
                    done.set_exception(StoreError(f"recording interrupted: {exc!r}"))
                    raise
                else:
                    self.batches += 1
                    done.set_result(None)
                finally:
                    self._inflight = None
        finally:
            self._task = None
            if self._has_pending() and not self._closed:
                self._pending()  # interrupted with rows left: the timer picks them up


def _closed_error() -> StoreError:
    return StoreError("the store is closed: nothing more can be recorded (open it again)")


def _consume(fut: asyncio.Future[None]) -> None:
    # Mark the exception retrieved: waiters that were cancelled must not cause a warning.
    if not fut.cancelled():
        fut.exception()
