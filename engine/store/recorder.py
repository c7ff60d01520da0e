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

One run never damages another. Every value is encoded once, by a codec that escapes what
either store cannot hold (codec.py), before its row joins a batch. If the store still
refuses a batch's rows (``RowsRefused``: an encoding or a constraint, not a lock or a lost
connection), the batch is written again one execution per transaction: the others are
recorded, and an execution whose own rows are refused is closed as failed (its running
step runs failed, an ``execution.failed`` event where its record stops), nothing more of it
is recorded, and ``flush(execution_id)`` raises ``ExecutionRefused`` for it alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Text, bindparam, cast, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from engine.errors import StoreError
from engine.service.models import EventType
from engine.store import models
from engine.store.codec import clean_text, dumps, dumps_escaped, dumps_or_none
from engine.store.records import EventRecord, ExecutionRecord, StepRunRecord

if TYPE_CHECKING:
    from sqlalchemy import Engine

log = logging.getLogger(__name__)

Row = tuple[Any, ...]


class RowsRefused(StoreError):
    """The store refused the rows themselves (an encoding, a value, a constraint): the same
    rows fail again, other rows would go in. Lock and connection failures are plain
    StoreErrors: nothing would go in."""

    def __init__(self, rows: int, reason: object):
        self.reason = str(reason)
        super().__init__(f"could not record {rows} rows: {reason}")


class ExecutionRefused(StoreError):
    """The store refused this execution's rows: it was closed as failed, and nothing more of
    it is recorded. Other executions are not affected."""

    def __init__(self, execution_id: str, message: str):
        self.execution_id = execution_id
        super().__init__(message)


def _text(value: str | None) -> str | None:
    # Free text (a step's error message): NUL and lone surrogates escaped, as codec.dumps
    # does in JSON, so both stores hold the same row.
    if value is None or (value.isascii() and "\x00" not in value):
        return value
    return clean_text(value)


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
    """Serialized rows of one group commit. Every row starts with its execution id.

    ``close_steps``: (execution_id, error) pairs whose still-running step runs are marked
    failed in the same transaction (closing a refused execution). ``records``: the execution
    records the rows were made from, by id.
    """

    __slots__ = ("close_steps", "events", "executions", "records", "step_runs")

    def __init__(self, executions: list[Row], step_runs: list[Row], events: list[Row],
                 close_steps: list[tuple[str, str]] | None = None,
                 records: dict[str, ExecutionRecord] | None = None):
        self.executions = executions
        self.step_runs = step_runs
        self.events = events
        self.close_steps = close_steps or []
        self.records = records or {}

    def __len__(self) -> int:
        return len(self.executions) + len(self.step_runs) + len(self.events)

    def by_execution(self) -> dict[str, Batch]:
        """The same rows, one batch per execution (the rows stay encoded: no second encode)."""
        parts: dict[str, Batch] = {}
        for table, rows in enumerate((self.executions, self.step_runs, self.events)):
            for row in rows:
                part = parts.get(row[0])
                if part is None:
                    part = parts[row[0]] = Batch([], [], [])
                (part.executions, part.step_runs, part.events)[table].append(row)
        return parts


CLOSE_STEPS_SQL = ("UPDATE step_runs SET status = 'failed', error = {p} "
                   "WHERE execution_id = {p} AND status = 'running'")


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
        self._close_sql = CLOSE_STEPS_SQL.format(p="%s")

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
                    if batch.close_steps:
                        cur.executemany(self._close_sql, [(e, i) for i, e in batch.close_steps])
                conn.commit()
            except BaseException:
                if not conn.closed:
                    conn.rollback()
                raise
        except (psycopg.OperationalError, psycopg.InterfaceError, SQLAlchemyError) as exc:
            if self._proxy is not None:
                self._proxy.invalidate()  # a lost connection: reconnect for the next batch
                self._proxy = None
            reason = getattr(exc, "orig", None) or exc
            raise StoreError(f"could not record {len(batch)} rows: {reason}") from exc
        except Exception as exc:  # psycopg.DataError, IntegrityError, an encoding: these rows
            raise RowsRefused(len(batch), exc) from exc
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
        steps = models.step_runs
        self._close_stmt = (update(steps).where(steps.c.execution_id == bindparam("eid"),
                                                steps.c.status == "running")
                            .values(status="failed", error=bindparam("err")))

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
                if batch.close_steps:
                    conn.execute(self._close_stmt, [{"eid": e, "err": i}
                                                    for e, i in batch.close_steps])
        except (OperationalError, InterfaceError) as exc:
            raise StoreError(f"could not record {len(batch)} rows: {exc.orig}") from exc
        except Exception as exc:  # an encoding, a value, a constraint: these rows
            reason = getattr(exc, "orig", None) or exc
            raise RowsRefused(len(batch), reason) from exc
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
        # Unfinished executions by id, to close one whose rows the store refuses.
        self._open: dict[str, ExecutionRecord] = {}
        # Executions whose rows the store refused -> why; their later rows are dropped.
        self._refused: dict[str, str] = {}
        self.batches = 0  # committed batches (for tests and benchmarks)
        self.owner: str | None = None  # the store's instance id, written on every execution row

    # ------------------------------------------------------------------ hand-over (executor)

    def execution(self, rec: ExecutionRecord) -> None:
        """Upsert the summary row (coalesced: the state at the next batch cut is written)."""
        if self._closed:
            raise _closed_error()
        if self._refused and rec.id in self._refused:
            return
        self._executions[rec.id] = rec
        self._open[rec.id] = rec
        self._pending()

    def step_run(self, rec: StepRunRecord) -> None:
        """Upsert the step run keyed by (execution_id, seq of its step.started event)."""
        if self._closed:
            raise _closed_error()
        if self._refused and rec.execution_id in self._refused:
            return
        self._step_runs[(rec.execution_id, rec.seq)] = rec
        self._pending()

    def event(self, rec: EventRecord) -> None:
        """Append an event (its data is serialized now: later mutation does not change it)."""
        if self._closed:
            raise _closed_error()
        if self._refused and rec.execution_id in self._refused:
            return
        events = self._events
        text, escaped = dumps_escaped(rec.data)
        events.append((rec.execution_id, rec.seq, rec.type, text, rec.ts))
        if escaped is not None:  # listeners (live streams) get what the store holds
            rec = EventRecord(rec.execution_id, rec.seq, rec.type, escaped, rec.ts)
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

    def refusal(self, execution_id: str) -> str | None:
        """Why the store refused this execution's rows (it was closed as failed), or None."""
        return self._refused.get(execution_id) if self._refused else None

    async def flush(self, execution_id: str | None = None) -> None:
        """Return once everything handed over before this call is committed.

        Raises StoreError if that batch (or an earlier background batch) failed, and
        ``ExecutionRefused`` if ``execution_id`` is given and the store refused its rows.
        """
        await self._flush()
        if execution_id is not None and self._refused:
            why = self._refused.get(execution_id)
            if why is not None:
                raise ExecutionRefused(execution_id, why)

    async def _flush(self) -> None:
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
            try:
                self._write(batch)
            except RowsRefused:
                self._write_closing(self._refuse(self._write_each(batch), batch))
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
        opened = self._open
        rows = []
        for r in self._executions.values():
            rows.append(execution_row(r, owner))
            if r.status in _ENDED:
                opened.pop(r.id, None)
        batch = Batch(rows, [step_run_row(r) for r in self._step_runs.values()], self._events,
                      records=self._executions)
        self._executions = {}
        self._step_runs = {}
        self._events = []
        return batch

    def _write(self, batch: Batch, wait: bool = True) -> bool:
        with self._lock:
            return self._sink.write(batch, wait)

    async def _commit(self, batch: Batch) -> None:
        """Write ``batch``; rows the store refuses cost only their own executions.

        Raises StoreError if the store could not be written at all (a lock, a connection).
        """
        try:
            if not self.threaded:
                self._write(batch)
            elif len(batch) > self.inline_rows or not self._write(batch, wait=False):
                await asyncio.to_thread(self._write, batch)
        except RowsRefused as exc:
            log.warning("%s; writing it one execution at a time", exc)
            if not self.threaded:
                self._write_closing(self._refuse(self._write_each(batch), batch))
                return
            failed = await asyncio.to_thread(self._write_each, batch)
            closing = self._refuse(failed, batch)  # on the loop thread: it edits the buffers
            if closing:
                await asyncio.to_thread(self._write_closing, closing)

    def _write_each(self, batch: Batch) -> dict[str, RowsRefused]:
        """Write ``batch`` one execution per transaction; returns the ones refused."""
        failed: dict[str, RowsRefused] = {}
        for execution_id, part in batch.by_execution().items():
            try:
                self._write(part)
            except RowsRefused as exc:
                failed[execution_id] = exc
        return failed

    def _refuse(self, failed: dict[str, RowsRefused], batch: Batch) -> list[Batch]:
        """Mark ``failed`` refused (their pending rows dropped) and build the rows closing each.

        On the loop thread. An execution's record stops where its refused rows began: an
        ``execution.failed`` event takes the first lost seq, so its events keep no gap.
        """
        closing: list[Batch] = []
        now = time.time()
        for execution_id, exc in failed.items():
            why = (f"the event store refused the record of execution {execution_id}: "
                   f"{exc.reason}; it was stopped, and nothing more of it is recorded")
            log.error("%s", why)
            while len(self._refused) >= _MAX_REFUSED:  # a memo, not a registry: oldest go
                del self._refused[next(iter(self._refused))]
            self._refused[execution_id] = why
            pending = [row for row in self._events if row[0] == execution_id]
            if pending:
                self._events = [row for row in self._events if row[0] != execution_id]
            self._executions.pop(execution_id, None)
            for key in [k for k in self._step_runs if k[0] == execution_id]:
                del self._step_runs[key]
            record = self._open.pop(execution_id, None) or batch.records.get(execution_id)
            seqs = [row[1] for row in batch.events if row[0] == execution_id]
            seqs += [row[1] for row in pending]
            if record is None and not seqs:
                continue  # nothing known to close it with
            error = {"message": why, "type": "store"}
            part = Batch([], [], [], [(execution_id, why)])
            seq = min(seqs) if seqs else (record.event_count + 1 if record else 1)
            if record is not None:
                ended = dataclasses.replace(
                    record, status="failed", output=None, error=error, ended_at=now,
                    duration_ms=round((now - record.started_at) * 1000, 3), event_count=seq)
                part.executions.append(execution_row(ended, self.owner))
            part.events.append((execution_id, seq, EventType.EXECUTION_FAILED,
                                dumps({"error": error, "step": None}), now))
            closing.append(part)
        return closing

    def _write_closing(self, closing: list[Batch]) -> None:
        for part in closing:
            try:
                self._write(part)
            except StoreError as exc:  # the refusal stands; the execution learns it from flush
                log.error("could not close the refused execution %s: %s",
                          part.events[0][0], exc)

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
                    await self._commit(batch)
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


_ENDED = frozenset({"completed", "failed", "cancelled", "compensated", "interrupted"})
_MAX_REFUSED = 10_000


def _closed_error() -> StoreError:
    return StoreError("the store is closed: nothing more can be recorded (open it again)")


def _consume(fut: asyncio.Future[None]) -> None:
    # Mark the exception retrieved: waiters that were cancelled must not cause a warning.
    if not fut.cancelled():
        fut.exception()
