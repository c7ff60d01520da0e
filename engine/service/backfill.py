"""Backfills (events-and-store.md §6): run a pipeline over a set of past inputs.

The inputs are either the trigger payloads of earlier executions of a pipeline in a time
range (oldest first), or JSON Lines text (one payload per line). Each input becomes its own
recorded execution (trigger type ``backfill``, origin ``{"backfill": id, "source_execution"?}``),
at most ``concurrency`` at a time, in a background task of the process that started it.

Decisions:

- Past payloads come from ``executions.trigger_payload``, i.e. as the engine recorded them:
  under ``record: redacted`` secrets and personal data were masked before they were stored,
  and a backfill replays them masked. Executions that are themselves backfills are left out,
  so backfilling a pipeline over its own history twice does not double the inputs.
- ``since`` and ``until`` are both inclusive (unix seconds of the execution's start).
- Everything is checked before anything runs: an unknown pipeline, a bad JSON line (named by
  its line and column; the lines follow the engine's one rule for JSON input,
  ``engine.json_input``: strict, exact integers, at most 200 levels, no lone surrogates),
  ``jsonl`` mixed with a time range, an empty JSON Lines text. Then the ``backfills`` row
  is written with status ``running`` and the total.
- Progress (done/succeeded/failed) is written to the row at most every ``flush_interval``
  seconds and at the end. An execution that ends other than ``completed`` counts as failed;
  the backfill goes on. A runner that raises (the pipeline was unloaded, the store broke)
  stops the backfill with status ``failed`` and that error.
- ``cancel`` cancels the in-flight executions (they are recorded as cancelled) and keeps the
  counts. A backfill this process does not run (its process died, or on a shared PostgreSQL
  store another process runs it) is marked cancelled in the store; a process running it
  notices at its next progress write and stops.
- Cancelling an already finished backfill changes nothing and returns it as it is.
"""

from __future__ import annotations

import asyncio
import builtins
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select, update

from engine import json_input
from engine.service.errors import InvalidInput, NotFound
from engine.service.models import Backfill, BackfillRequest, RunResult
from engine.store import models
from engine.store.store import Store

# (pipeline, payload, origin, trigger_type) -> the finished execution
Runner = Callable[[str, Any, dict[str, Any], str], Awaitable[RunResult]]

TRIGGER_TYPE = "backfill"
ACTIVE = ("pending", "running")


@dataclass(slots=True)
class _Item:
    payload: Any
    source_execution: str | None = None


@dataclass
class _Counts:
    done: int = 0
    succeeded: int = 0
    failed: int = 0
    flushed_at: float = 0.0  # monotonic time of the last progress write


class _Stopped(Exception):
    """The row stopped being ``running`` under us: cancelled from elsewhere."""


class BackfillManager:
    """Starts, tracks and cancels backfills; one instance per service.

    ``pipelines`` returns the names of the pipelines that can run now (to reject unknown
    ones up front). ``tenant``: when set, backfills are written and listed for that tenant.
    """

    def __init__(self, store: Store, runner: Runner, pipelines: Callable[[], Iterable[str]], *,
                 tenant: str | None = None, flush_interval: float = 0.1):
        self.store = store
        self.runner = runner
        self.pipelines = pipelines
        self.tenant = tenant
        self.flush_interval = flush_interval
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._reasons: dict[str, str] = {}  # why a backfill was cancelled, for its error

    # ------------------------------------------------------------------ starting

    async def start(self, request: BackfillRequest) -> Backfill:
        """Check the request, write the backfill row and start running it in the background."""
        known = set(self.pipelines())
        if request.pipeline not in known:
            names = ", ".join(sorted(known)) or "none loaded"
            raise NotFound(f"cannot backfill {request.pipeline!r}: no pipeline of that name "
                               f"(pipelines: {names})")
        if request.jsonl is not None:
            if request.since is not None or request.until is not None or request.source_pipeline:
                raise InvalidInput("give either jsonl payloads or past executions "
                                   "(source_pipeline, since, until) to backfill from, not both")
            items = _parse_jsonl(request.jsonl)
            source: dict[str, Any] = {"kind": "jsonl", "lines": len(items)}
            if request.limit is not None:
                items = items[:request.limit]
        else:
            if (request.since is not None and request.until is not None
                    and request.since > request.until):
                raise InvalidInput(f"since ({request.since}) is after until ({request.until})")
            origin = request.source_pipeline or request.pipeline
            items = self._past_payloads(origin, request.since, request.until, request.limit)
            source = {"kind": "executions", "pipeline": origin, "since": request.since,
                      "until": request.until}
        if request.limit is not None:
            source["limit"] = request.limit

        backfill_id = uuid.uuid4().hex
        now = time.time()
        with self.store.begin() as conn:
            conn.execute(models.backfills.insert().values(
                id=backfill_id, tenant=self.tenant or "default", pipeline=request.pipeline,
                source=source, range_start=request.since, range_end=request.until,
                status="running", total=len(items), done=0, succeeded=0, failed=0,
                concurrency=request.concurrency, error=None, created=now, updated=now,
                owner=self.store.instance_id))  # a restart fails it if this process dies
        task = asyncio.create_task(
            self._run(backfill_id, request.pipeline, items, request.concurrency),
            name=f"backfill {backfill_id}")
        self._tasks[backfill_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(backfill_id, None))
        return self.get(backfill_id)

    def _past_payloads(self, pipeline: str, since: float | None, until: float | None,
                       limit: int | None) -> builtins.list[_Item]:
        t = models.executions
        conds: builtins.list[Any] = [t.c.pipeline == pipeline,
                                     t.c.trigger_type.is_distinct_from(TRIGGER_TYPE)]
        if since is not None:
            conds.append(t.c.started_at >= since)
        if until is not None:
            conds.append(t.c.started_at <= until)
        if self.tenant is not None:
            conds.append(t.c.tenant == self.tenant)
        query = (select(t.c.id, t.c.trigger_payload).where(and_(*conds))
                 .order_by(t.c.started_at, t.c.id))
        if limit is not None:
            query = query.limit(limit)
        with self.store.read() as conn:
            return [_Item(payload, execution_id) for execution_id, payload in conn.execute(query)]

    # ------------------------------------------------------------------ running

    async def _run(self, backfill_id: str, pipeline: str, items: builtins.list[_Item],
                   concurrency: int) -> None:
        counts = _Counts(flushed_at=time.monotonic())
        queue = iter(items)  # shared by the workers: each takes the next input
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(concurrency, len(items))):
                    group.create_task(self._worker(backfill_id, pipeline, queue, counts))
        except asyncio.CancelledError:
            self._end(backfill_id, "cancelled", counts, self._reasons.pop(backfill_id, None))
            raise
        except BaseExceptionGroup as group_error:
            problem = _first(group_error)
            if isinstance(problem, _Stopped):
                self._end(backfill_id, "cancelled", counts, None)
            else:
                message = getattr(problem, "message", None) or str(problem) or repr(problem)
                self._end(backfill_id, "failed", counts,
                          f"the backfill stopped after {counts.done} of {len(items)} inputs: "
                          f"{message}")
            return
        self._end(backfill_id, "completed", counts, None)

    async def _worker(self, backfill_id: str, pipeline: str, queue: Iterator[_Item],
                      counts: _Counts) -> None:
        for item in queue:
            origin: dict[str, Any] = {"backfill": backfill_id}
            if item.source_execution is not None:
                origin["source_execution"] = item.source_execution
            result = await self.runner(pipeline, item.payload, origin, TRIGGER_TYPE)
            counts.done += 1
            if result.status == "completed":
                counts.succeeded += 1
            else:
                counts.failed += 1
            now = time.monotonic()
            if now - counts.flushed_at >= self.flush_interval:
                counts.flushed_at = now
                if not self._flush(backfill_id, counts):
                    raise _Stopped(backfill_id)

    def _flush(self, backfill_id: str, counts: _Counts) -> bool:
        """Write the progress; False when the row is no longer running (cancelled elsewhere)."""
        t = models.backfills
        with self.store.begin() as conn:
            written = conn.execute(update(t).where(t.c.id == backfill_id, t.c.status == "running")
                                   .values(done=counts.done, succeeded=counts.succeeded,
                                           failed=counts.failed, updated=time.time()))
        return written.rowcount == 1

    def _end(self, backfill_id: str, status: str, counts: _Counts, error: str | None) -> None:
        t = models.backfills
        now = time.time()
        values: dict[str, Any] = {"done": counts.done, "succeeded": counts.succeeded,
                                  "failed": counts.failed, "updated": now, "ended": now,
                                  "status": status}
        if error is not None:
            values["error"] = error
        with self.store.begin() as conn:
            conn.execute(update(t).where(t.c.id == backfill_id).values(**values))

    # ------------------------------------------------------------------ reading, stopping

    def list(self, limit: int = 100) -> builtins.list[Backfill]:
        """Backfills newest first."""
        t = models.backfills
        query = select(t).order_by(t.c.created.desc(), t.c.id.desc()).limit(max(1, limit))
        if self.tenant is not None:
            query = query.where(t.c.tenant == self.tenant)
        with self.store.read() as conn:
            return [_backfill(row) for row in conn.execute(query).mappings()]

    def get(self, backfill_id: str) -> Backfill:
        t = models.backfills
        query = select(t).where(t.c.id == backfill_id)
        if self.tenant is not None:
            query = query.where(t.c.tenant == self.tenant)
        with self.store.read() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise NotFound(f"no backfill {backfill_id!r}")
        return _backfill(row)

    async def cancel(self, backfill_id: str) -> Backfill:
        """Stop a backfill: in-flight executions are cancelled, the counts so far are kept."""
        backfill = self.get(backfill_id)
        task = self._tasks.get(backfill_id)
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})  # until its executions are recorded as cancelled
        # A task cancelled before it first ran never wrote its end; a backfill not running
        # here is marked so the process running it (if any) stops.
        if task is not None or backfill.status in ACTIVE:
            self._mark_cancelled(backfill_id, None)
            return self.get(backfill_id)
        return backfill

    def _mark_cancelled(self, backfill_id: str, reason: str | None) -> None:
        t = models.backfills
        now = time.time()
        with self.store.begin() as conn:
            conn.execute(update(t).where(t.c.id == backfill_id, t.c.status.in_(ACTIVE))
                         .values(status="cancelled", error=reason, updated=now, ended=now))

    async def wait(self, backfill_id: str) -> Backfill:
        """Wait until a backfill this process runs has ended; returns it (with its totals).

        Cancelling the waiter does not cancel the backfill.
        """
        self.get(backfill_id)
        task = self._tasks.get(backfill_id)
        if task is not None:
            await asyncio.wait({task})
        return self.get(backfill_id)

    async def close(self) -> None:
        """Cancel every backfill this process runs and wait for them to stop."""
        tasks = builtins.list(self._tasks.items())
        for backfill_id, task in tasks:
            self._reasons[backfill_id] = "cancelled: the service was shut down while it ran"
            task.cancel()
        if tasks:
            await asyncio.wait([task for _, task in tasks])
        for backfill_id, _task in tasks:
            self._mark_cancelled(backfill_id, self._reasons.pop(backfill_id, None))


def _parse_jsonl(text: str) -> builtins.list[_Item]:
    items: builtins.list[_Item] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            items.append(_Item(json_input.loads(line, line=number)))
        except json_input.JsonInputError as exc:
            raise InvalidInput(f"the JSON Lines input: {exc}; nothing was started",
                               details={"line": number, "rule": exc.rule}) from None
    if not items:
        raise InvalidInput("the JSON Lines input holds no payloads (one JSON value per line)")
    return items


def _first(group: BaseExceptionGroup[Any]) -> BaseException:
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def _backfill(row: Any) -> Backfill:
    return Backfill(id=row["id"], pipeline=row["pipeline"], source=dict(row["source"] or {}),
                    status=row["status"], total=row["total"], done=row["done"],
                    succeeded=row["succeeded"], failed=row["failed"],
                    concurrency=row["concurrency"], error=row["error"], created=row["created"],
                    updated=row["updated"], ended=row["ended"])
