"""Several engine processes on one PostgreSQL store: the debugger, locks and crash recovery.

Two ``LocalService`` objects with their own ``Store`` on one database behave like two server
processes: separate connections, liveness locks and notification listeners. (The tests with
real ``wfstudio serve`` processes are in tests/server/test_multiprocess.py.)
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from engine.service.errors import Conflict, InvalidInput
from engine.service.local import LocalService
from engine.service.models import PausedExecution, RunOptions
from engine.store import models
from engine.store.locks import LockTimeout
from engine.store.records import EventRecord, ExecutionRecord, StepRunRecord
from engine.store.store import Store
from tests.waiting import wait_for_condition

pytestmark = pytest.mark.postgres

PIPELINES = """
pipelines:
  order:
    steps:
      - {name: price, type: step.set, config: {values: {total: "{{ .qty * 10 }}"}}}
      - {name: tax, type: step.set, config: {values: {gross: "{{ .total * 2 }}"}}}
      - {name: out, type: step.pipeline_output, config: {values: {gross: "{{ .gross }}"}}}
"""


@pytest.fixture
async def pair(tmp_path: Path, fresh_pg_url: Callable[[], str]
               ) -> AsyncIterator[tuple[LocalService, LocalService]]:
    (tmp_path / "p.yaml").write_text(PIPELINES)
    url = fresh_pg_url()
    a = await LocalService.open([tmp_path / "p.yaml"], store=url)
    b = await LocalService.open([tmp_path / "p.yaml"], store=url)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def wait_for(check: Callable[[], Any], what: str) -> Any:
    return await wait_for_condition(check, what)


async def paused_in(service: LocalService, execution_id: str) -> PausedExecution | None:
    return next((p for p in await service.paused() if p.execution_id == execution_id), None)


# ---------------------------------------------------------------------- the debugger


async def test_a_breakpoint_set_on_one_process_stops_runs_on_the_other_and_resumes_from_it(
        pair: tuple[LocalService, LocalService]) -> None:
    a, b = pair
    assert a.store.distributed and b.store.distributed
    bp = await b.set_breakpoint("order", "tax")
    # A learns of it through the notification; listing re-reads the store in any case.
    assert [x.id for x in await a.list_breakpoints()] == [bp.id]
    await wait_for(lambda: _async(bp.id in a.debugger._breakpoints), "A caches the breakpoint")

    started = await a.run("order", {"qty": 2}, RunOptions(wait=False))
    seen = await wait_for(lambda: paused_in(b, started.execution_id), "B sees the pause")
    assert (seen.step, seen.reason, seen.breakpoint_id) == ("tax", "breakpoint", bp.id)
    assert seen.context["current"]["total"] == 20  # the context as it was at the pause
    assert (await b.get_execution(started.execution_id)).status == "paused"

    # A patch that does not apply is refused by A and the refusal reaches B's caller.
    with pytest.raises(InvalidInput, match="outside the editable context"):
        await b.resume(started.execution_id, "continue", [{"op": "add", "path": "/trigger/x",
                                                          "value": 1}])
    assert await paused_in(a, started.execution_id) is not None  # still paused

    await b.resume(started.execution_id, "continue",
                   [{"op": "replace", "path": "/current/total", "value": 7}])
    with pytest.raises(Conflict, match="not paused"):
        await b.resume(started.execution_id, "continue")
    done = await wait_for(lambda: _finished(a, started.execution_id), "the run finishes")
    assert done.status == "completed" and done.output == {"gross": 14}
    assert await a.paused() == [] and await b.paused() == []
    types = [e.type for e in await b.events(started.execution_id)]
    assert types.count("debug.paused") == 1 and "debug.context_patched" in types
    assert types[-1] == "execution.completed"

    # Disabled on B: A no longer stops there.
    await b.enable_breakpoint(bp.id, False)
    # The notification marks A's cache stale; A re-reads it before its next step.
    await wait_for(lambda: _async(a.debugger._stale), "A hears of the change")
    result = await a.run("order", {"qty": 1})
    assert result.status == "completed"


async def test_abort_and_pause_new_runs_across_processes(
        pair: tuple[LocalService, LocalService]) -> None:
    a, b = pair
    await b.pause_new_runs("order", True)
    await wait_for(lambda: _async(("default", "order") in a.debugger._pause_new),
                   "A hears of pause-new-runs")
    started = await a.run("order", {"qty": 1}, RunOptions(wait=False))
    seen = await wait_for(lambda: paused_in(b, started.execution_id), "B sees the pause")
    assert seen.reason == "pause" and seen.step == "price"
    await b.resume(started.execution_id, "abort")
    done = await wait_for(lambda: _finished(a, started.execution_id), "the run ends")
    assert done.status == "cancelled"
    await b.pause_new_runs("order", False)
    await wait_for(lambda: _async(not a.debugger._pause_new), "A hears it is off")


async def test_a_pause_whose_process_does_not_answer_gives_unavailable(
        pair: tuple[LocalService, LocalService]) -> None:
    from engine.service.errors import Unavailable

    a, b = pair
    await a.set_breakpoint("order", "tax")
    started = await a.run("order", {"qty": 1}, RunOptions(wait=False))
    await wait_for(lambda: paused_in(b, started.execution_id), "B sees the pause")
    a.store.unlisten("wfstudio_debug", a.debugger._on_command)  # A stops hearing commands
    with pytest.raises(Unavailable, match="did not answer"):
        await b.debugger.resume_anywhere(started.execution_id, "continue", timeout=0.3)
    # The command was withdrawn: the pause takes the next one once A listens again.
    a.store.listen("wfstudio_debug", a.debugger._on_command)
    await b.resume(started.execution_id, "continue")
    assert (await wait_for(lambda: _finished(a, started.execution_id), "ends")).status == "completed"


async def _async(value: Any) -> Any:
    return value


async def _finished(service: LocalService, execution_id: str) -> Any:
    summary = await service.get_execution(execution_id)
    return summary if summary.status not in ("running", "paused") else None


# ---------------------------------------------------------------------- locks


def _hold_lock(url: str, name: str, ready: Any, release: Any) -> None:
    async def main() -> None:
        store = Store.open(url)
        async with store.lock(name):
            ready.set()
            release.wait(20)
        store.close()

    asyncio.run(main())


async def test_a_lock_held_by_another_process_excludes_until_released(
        fresh_pg_url: Callable[[], str]) -> None:
    url = fresh_pg_url()
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(url, "backfill:42", ready, release))
    holder.start()
    store = Store.open(url)
    try:
        assert await asyncio.to_thread(ready.wait, 30)
        with pytest.raises(LockTimeout, match="backfill:42"):
            async with store.lock("backfill:42", timeout=0.2):
                pass
        async with store.lock("another name", timeout=1):
            pass  # other names are free
        release.set()
        async with store.lock("backfill:42", timeout=20):
            pass
    finally:
        release.set()
        holder.join(20)
        store.close()


def _die_holding_lock(url: str, name: str, ready: Any) -> None:
    async def main() -> None:
        store = Store.open(url)
        async with store.lock(name):
            ready.set()
            os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())


async def test_a_lock_of_a_killed_process_is_free_at_once(fresh_pg_url: Callable[[], str]) -> None:
    url = fresh_pg_url()
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_die_holding_lock, args=(url, "schedule:nightly", ready))
    holder.start()
    holder.join(30)
    assert ready.is_set() and holder.exitcode == -signal.SIGKILL
    with Store.open(url) as store:
        async with store.lock("schedule:nightly", timeout=10):
            pass


async def _contend(stores: list[Store]) -> list[int]:
    """Each store's holder notes how many holders are inside at once."""
    inside: list[str] = []
    overlaps: list[int] = []

    async def work(store: Store, tag: str) -> None:
        async with store.lock("k", timeout=10):
            inside.append(tag)
            overlaps.append(len(inside))
            await asyncio.sleep(0.02)
            inside.remove(tag)

    await asyncio.gather(*(work(s, str(i)) for i, s in enumerate(stores)))
    return overlaps


async def test_locks_within_one_process_queue_up(fresh_pg_url: Callable[[], str],
                                                 tmp_path: Path) -> None:
    for url in (fresh_pg_url(), f"sqlite:///{tmp_path / 's.db'}"):
        with Store.open(url) as one, Store.open(url) as two:
            assert await _contend([one, two, one, two]) == [1, 1, 1, 1], url


# ---------------------------------------------------------------------- crash recovery


def _orphan(store: Store, execution_id: str, status: str = "running") -> None:
    """Write what a process killed mid-run leaves: a running execution, a prefix of its
    events and a running step run, owned by that store's instance."""
    now = time.time()
    record = ExecutionRecord(id=execution_id, pipeline="order", status=status, started_at=now - 1)
    store.recorder.execution(record)
    store.recorder.event(EventRecord(execution_id, 1, "execution.started", {"pipeline": "order"},
                                     now - 1))
    store.recorder.event(EventRecord(execution_id, 2, "step.started", {"step": "price"}, now))
    store.recorder.step_run(StepRunRecord(execution_id, "price", "price", "step.set", 2,
                                          started_at=now))
    store.recorder.flush_sync()


def _crash(url: str, ready: Any) -> None:
    store = Store.open(url)
    _orphan(store, "killed-1")
    _orphan(store, "killed-2", status="paused")
    with store.begin() as conn:
        conn.execute(models.dlq_entries.insert().values(
            id="dlq-1", pipeline="order", status="retrying", retry_count=0, max_retries=3,
            created=time.time(), updated=time.time(), owner=store.instance_id))
    ready.set()
    os.kill(os.getpid(), signal.SIGKILL)


async def test_what_a_killed_process_left_running_is_interrupted_by_a_live_one(
        fresh_pg_url: Callable[[], str]) -> None:
    url = fresh_pg_url()
    survivor = Store.open(url)  # opened before the crash: it finds it on a sweep
    try:
        _orphan(survivor, "alive-1")  # a live process's execution is never touched
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Event()
        victim = ctx.Process(target=_crash, args=(url, ready))
        victim.start()
        victim.join(30)
        assert ready.is_set()
        found = await asyncio.to_thread(survivor.recover)
        assert sorted(found.executions) == ["killed-1", "killed-2"]
        assert found.dlq_entries == 1 and len(found.dead_instances) == 1
        for execution_id in ("killed-1", "killed-2"):
            record = survivor.get_execution(execution_id)
            assert record is not None and record.status == "interrupted"
            assert record.error is not None and record.error["type"] == "interrupted"
            assert record.error["step"] == "price" and record.event_count == 3
            events = survivor.events(execution_id)
            assert [e.seq for e in events] == [1, 2, 3]
            assert events[-1].type == "execution.interrupted"
            assert [s.status for s in survivor.timeline(execution_id)] == ["interrupted"]
        alive = survivor.get_execution("alive-1")
        assert alive is not None and alive.status == "running"
        with survivor.read() as conn:
            assert conn.scalar(models.dlq_entries.select().with_only_columns(
                models.dlq_entries.c.status)) == "pending"
        assert not await asyncio.to_thread(survivor.recover)  # nothing twice
    finally:
        survivor.close()
    with Store.open(url) as later:  # what the survivor left unfinished when it closed
        assert later.recovered.executions == ["alive-1"]
    with Store.open(url) as last:
        assert not last.recovered


def test_sqlite_recovers_at_open_only_when_no_other_process_has_the_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    first = Store.open(url)
    _orphan(first, "left-1")
    with Store.open(url) as second:  # the first is still open: nothing is touched
        assert not second.recovered
        record = second.get_execution("left-1")
        assert record is not None and record.status == "running"
    first.recorder.close()
    first._sqlite_presence.close()  # type: ignore[union-attr]  # as if the process died
    with Store.open(url) as third:
        assert third.recovered.executions == ["left-1"]
        record = third.get_execution("left-1")
        assert record is not None and record.status == "interrupted"
        assert third.events("left-1")[-1].type == "execution.interrupted"
    first.close()


async def test_an_idempotency_claim_left_by_a_dead_process_is_taken_over_at_once(
        fresh_pg_url: Callable[[], str], tmp_path: Path) -> None:
    from engine.idempotency import IdempotencyKeys

    for url, taken in ((fresh_pg_url(), True), (f"sqlite:///{tmp_path / 's.db'}", False)):
        with Store.open(url) as gone:  # claimed, then its process went away mid-step
            assert gone.idem_claim("p", "charge", "order-1", "exec-gone", time.time(), 3600)
        with Store.open(url) as store:
            keys = IdempotencyKeys(store)
            async with keys.lock("p", "charge", "order-1"):
                # PostgreSQL: holding the key's lock proves no live process runs the step.
                # SQLite: the lock is in-process only, so the claim waits for its TTL.
                assert keys.claim("p", "charge", "order-1", "exec-new", 3600) is taken, url
