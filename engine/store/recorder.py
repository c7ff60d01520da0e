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
import threading
import time
from collections.abc import Callable

from engine.errors import StoreError
from engine.service.models import EventType
from engine.store.batch import Batch, Row, RowsRefused, Sink, execution_row, step_run_row
from engine.store.codec import dumps, dumps_escaped
from engine.store.payload_refs import referenced, with_payload
from engine.store.records import EventRecord, ExecutionRecord, StepRunRecord

log = logging.getLogger(__name__)
_NO_PAYLOAD = object()



class ExecutionRefused(StoreError):
    """The store refused this execution's rows: it was closed as failed, and nothing more of
    it is recorded. Other executions are not affected."""

    def __init__(self, execution_id: str, message: str):
        self.execution_id = execution_id
        super().__init__(message)


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
        # A batch a lone flush cut but could not write at once, and its future: the writer
        # task writes it before anything else (_flush_alone).
        self._held: tuple[Batch, asyncio.Future[None]] | None = None
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
        if rec.type == EventType.EXECUTION_STARTED:
            text, rec = self._started(rec)
        else:
            text, escaped = dumps_escaped(rec.data)
            if escaped is not None:  # listeners (live streams) get what the store holds
                rec = EventRecord(rec.execution_id, rec.seq, rec.type, escaped, rec.ts)
        events.append((rec.execution_id, rec.seq, rec.type, text, rec.ts))
        for listener in self.listeners:
            try:
                listener(rec)
            except Exception:  # a broken subscriber must not break the execution
                log.exception("event listener failed")
        if len(events) >= self.max_events:
            self._kick()
        else:
            self._pending()

    def _started(self, rec: EventRecord) -> tuple[str, EventRecord]:
        """``execution.started`` without its trigger payload, which the execution's row holds
        (encoded here, once, for that row): a payload is stored once, not twice. Readers get
        it back (``store.payload_refs``); listeners get the whole event, as stored."""
        trigger = rec.data.get("trigger")
        record = self._open.get(rec.execution_id)
        if (record is None or not isinstance(trigger, dict)
                or trigger.get("payload", _NO_PAYLOAD) is not record.trigger_payload):
            text, escaped = dumps_escaped(rec.data)
            if escaped is not None:
                rec = EventRecord(rec.execution_id, rec.seq, rec.type, escaped, rec.ts)
            return text, rec
        payload_text, payload = dumps_escaped(record.trigger_payload)
        record.trigger_text = payload_text
        text, escaped = dumps_escaped({**rec.data, "trigger": referenced(trigger)})
        if escaped is not None or payload is not None:  # listeners get what the store holds
            shown = escaped if escaped is not None else rec.data
            shown = {**shown, "trigger": with_payload(
                shown["trigger"], record.trigger_payload if payload is None else payload)}
            rec = EventRecord(rec.execution_id, rec.seq, rec.type, shown, rec.ts)
        return text, rec

    # ------------------------------------------------------------------ flushing

    def refusal(self, execution_id: str) -> str | None:
        """Why the store refused this execution's rows (it was closed as failed), or None."""
        return self._refused.get(execution_id) if self._refused else None

    async def flush(self, execution_id: str | None = None) -> None:
        """Return once everything handed over before this call is committed.

        Raises StoreError if that batch (or an earlier background batch) failed, and
        ``ExecutionRefused`` if ``execution_id`` is given and the store refused its rows.
        """
        if self._alone():
            # One loop turn first: runs that are ready go on to their own flush meanwhile,
            # and this commit carries theirs too (group commit without a writer task).
            await asyncio.sleep(0)
            if not (self._alone() and self._flush_alone()):
                await self._flush()
        else:
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

    def _alone(self) -> bool:
        """Whether a flush may commit by itself (``_flush_alone``): rows are pending, no
        batch is in flight or awaited, the batch is small enough for the loop thread, and
        no execution is still running (one that is may flush soon: it joins the writer
        task's group commit instead)."""
        if (self._task is not None or self._next is not None or self._error is not None
                or self._closed or not self._has_pending()
                or (self.threaded and self.pending > self.inline_rows)):
            return False
        return all(record.status in _ENDED for record in self._open.values())

    def _flush_alone(self) -> bool:
        """Commit what is pending here and now, without a writer task (whose tasks,
        futures and loop turns cost a small run more than its rows do). Returns False when
        the writer task must do it: the write lock is taken, or the store refused rows
        (the writer task writes them one execution at a time)."""
        # The interval timer stays armed (it finds nothing to do, or the next run's rows):
        # one timer per interval rather than one armed and cancelled per run.
        batch = self._cut()
        try:
            if self._write(batch, wait=not self.threaded):
                self.batches += 1
                return True
        except RowsRefused:
            pass
        except StoreError as exc:
            log.error("%s", exc)
            raise
        # The writer task takes this batch first (rows stay in order: nothing else is
        # written before it); the caller awaits it like any batch in flight.
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        done.add_done_callback(_consume)
        self._held, self._inflight, self._inflight_awaited = (batch, done), done, False
        self._task = loop.create_task(self._drain())
        return False

    def flush_sync(self) -> None:
        """Write everything pending now, on the calling thread (for code without a loop)."""
        self._cancel_timer()
        held, self._held = self._held, None
        if held is not None:  # closing before the writer task took it
            batch, done = held
            self._inflight = None
            try:
                self._write_sync(batch)
            except BaseException as exc:
                if not done.done():
                    done.set_exception(exc)
                raise
            if not done.done():
                done.set_result(None)
        self._write_sync(self._cut())

    def _write_sync(self, batch: Batch) -> None:
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
        if self._has_pending():
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
            while self._held is not None or (self._has_pending() and not self._closed):
                if self._held is not None:  # a lone flush's batch (_flush_alone)
                    (batch, done), self._held = self._held, None
                    awaited = False
                else:
                    batch = self._cut()
                    waiting, self._next = self._next, None
                    awaited = waiting is not None
                    if waiting is None:
                        waiting = loop.create_future()
                        waiting.add_done_callback(_consume)
                    done = waiting
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
