"""The batching recorder: coalescing, durability, group commit, automatic flushes, failures."""

from __future__ import annotations

import asyncio
import datetime
import math
import sqlite3
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import pytest

from engine.errors import StoreError
from engine.store.recorder import ExecutionRefused
from engine.store.records import EventRecord, ExecutionRecord, StepRunRecord
from engine.store.sink_sqlite import CHECKPOINT_PAGES
from engine.store.store import Store
from tests.waiting import wait_for_condition


@pytest.fixture(params=["sqlite", "sqlite-core",
                        pytest.param("postgresql", marks=pytest.mark.postgres),
                        pytest.param("postgresql-core", marks=pytest.mark.postgres)])
def recorder_url(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, bool]:
    """(url, core_recorder): both backends, each through both sinks (raw driver, Core)."""
    core = request.param.endswith("-core")
    if request.param.startswith("postgresql"):
        return request.getfixturevalue("pg_store_url"), core
    return f"sqlite:///{tmp_path / 'store.db'}", core


@pytest.fixture
async def store(recorder_url: tuple[str, bool]) -> AsyncIterator[Store]:
    url, core = recorder_url
    s = Store.open(url, core_recorder=core)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def reader(recorder_url: tuple[str, bool]):
    """A second Store on the same database: sees only what was committed."""
    s = Store.open(recorder_url[0])
    yield s
    s.close()


def run_records(eid: str, steps: int = 3, start: float = 1000.0
                ) -> tuple[ExecutionRecord, list[StepRunRecord], list[EventRecord]]:
    ex = ExecutionRecord(id=eid, pipeline="p", status="completed", started_at=start,
                         event_count=1 + steps)
    runs = [StepRunRecord(eid, f"s{i}", f"s{i}", "step.set", i + 2, status="completed")
            for i in range(steps)]
    events = [EventRecord(eid, 1, "execution.started", {"pipeline": "p"}, start)]
    events += [EventRecord(eid, i + 2, "step.completed", {"step": f"s{i}"}, start + i)
               for i in range(steps)]
    return ex, runs, events


def hand_over(store: Store, eid: str, steps: int = 3, start: float = 1000.0) -> None:
    ex, runs, events = run_records(eid, steps, start)
    rec = store.recorder
    rec.execution(ex)
    for r in runs:
        rec.step_run(r)
    for e in events:
        rec.event(e)


async def test_flush_commits_everything_handed_over(store: Store, reader: Store) -> None:
    hand_over(store, "e1")
    assert reader.get_execution("e1") is None  # only buffered so far
    await store.recorder.flush()
    assert reader.get_execution("e1") is not None
    assert len(reader.timeline("e1")) == 3
    assert [e.seq for e in reader.events("e1")] == [1, 2, 3, 4]
    assert store.recorder.pending == 0


async def test_rows_handed_over_repeatedly_are_written_once_in_their_latest_state(
        store: Store, reader: Store) -> None:
    rec = store.recorder
    ex = ExecutionRecord(id="c", pipeline="p", status="running", started_at=5.0)
    run = StepRunRecord("c", "a", "a", "step.set", 2)
    rec.execution(ex)
    rec.step_run(run)
    run.status, run.flags = "failed", ["retried"]
    rec.step_run(run)
    retry = StepRunRecord("c", "a", "a", "step.set", 3, attempt=2)
    rec.step_run(retry)
    ex.status, ex.event_count = "completed", 9
    rec.execution(ex)
    assert rec.pending == 3  # one execution, two step runs (two attempts)
    ex.output = {"late": True}  # mutated after hand-over but before the batch is cut
    await rec.flush()
    assert rec.batches == 1
    got = reader.get_execution("c")
    assert got is not None and (got.status, got.event_count, got.output) == (
        "completed", 9, {"late": True})
    timeline = reader.timeline("c")
    assert [(r.attempt, r.status, r.flags) for r in timeline] == [
        (1, "failed", ["retried"]), (2, "running", [])]
    # a later hand-over of the same row updates it in place
    ex.status = "compensated"
    rec.execution(ex)
    await rec.flush()
    assert reader.get_execution("c").status == "compensated"  # type: ignore[union-attr]
    page, _ = reader.list_executions()
    assert [r.id for r in page] == ["c"]


async def test_event_data_is_captured_when_handed_over(store: Store, reader: Store) -> None:
    data = {"output": {"n": 1}}
    store.recorder.event(EventRecord("m", 1, "step.output", data, 1.0))
    data["output"]["n"] = 2  # the executor keeps using its objects
    await store.recorder.flush()
    assert reader.events("m")[0].data == {"output": {"n": 1}}


async def test_committed_rows_survive_reopening_the_database(
        recorder_url: tuple[str, bool]) -> None:
    url, core = recorder_url
    store = Store.open(url, core_recorder=core)
    hand_over(store, "durable")
    await store.recorder.flush()
    # read through a brand-new engine while the first store is still open (no close flush)
    other = Store.open(url)
    try:
        assert other.count_events("durable") == 4
        assert other.get_execution("durable") is not None
    finally:
        other.close()
        store.close()


async def test_concurrent_flushers_share_commits(store: Store, reader: Store) -> None:
    async def one_run(i: int) -> None:
        hand_over(store, f"g{i:03d}")
        await asyncio.sleep(0)
        await store.recorder.flush()
        # flush() returned: this run's rows are committed, whatever batch carried them
        assert reader.count_events(f"g{i:03d}") == 4

    await asyncio.gather(*(one_run(i) for i in range(60)))
    assert reader.count_events() == 240
    assert store.recorder.batches <= 3  # 60 flushers, a handful of commits


async def test_flush_with_nothing_pending_returns_at_once(store: Store) -> None:
    await asyncio.wait_for(store.recorder.flush(), 30)
    assert store.recorder.batches == 0


async def test_flush_waits_for_a_batch_already_being_written(store: Store,
                                                              reader: Store) -> None:
    store.recorder.inline_rows = 100  # this batch goes to the worker thread
    for i in range(10):
        hand_over(store, f"big{i}", steps=40)
    first = asyncio.ensure_future(store.recorder.flush())
    for _ in range(10):  # until the writer has cut the batch
        await asyncio.sleep(0)
        if store.recorder.pending == 0:
            break
    assert store.recorder.pending == 0 and not first.done()
    await store.recorder.flush()  # must still wait for that batch
    assert reader.count_events() == 410
    await first


async def test_pending_rows_are_written_after_the_interval(store: Store,
                                                           reader: Store) -> None:
    store.recorder.interval = 0.02
    hand_over(store, "timer")
    await wait_for_condition(lambda: reader.count_events("timer") == 4, "the timed batch")
    assert reader.get_execution("timer") is not None


async def test_a_full_buffer_is_written_without_waiting_for_the_interval(
        store: Store, reader: Store) -> None:
    rec = store.recorder
    rec.interval, rec.max_events = 60.0, 50
    for i in range(120):
        rec.event(EventRecord("burst", i + 1, "log", {"i": i}, 1.0))
    # long before the 60 s interval (the wait gives up at 30 s)
    await wait_for_condition(lambda: reader.count_events("burst") >= 100, "the full batches")
    await rec.flush()
    assert reader.count_events("burst") == 120


async def test_rows_the_store_refuses_cost_only_their_own_execution(store: Store,
                                                                   reader: Store) -> None:
    rec = store.recorder
    hand_over(store, "ok")
    await rec.flush()
    ex, runs, events = run_records("bad")
    ex.status = "running"
    rec.execution(ex)
    for r in runs:
        rec.step_run(r)
    for e in events:
        rec.event(e)
    rec.event(EventRecord("bad", 2, "log", {"dup": True}, 1.0))  # seq 2 twice: refused
    hand_over(store, "innocent")  # same batch: written all the same
    await rec.flush()  # the batch's other executions are recorded: nothing to report
    with pytest.raises(ExecutionRefused, match="refused the record of execution bad"):
        await rec.flush("bad")  # the refused one learns it
    assert reader.count_events("innocent") == 4 and len(reader.timeline("innocent")) == 3
    closed = reader.get_execution("bad")
    assert closed is not None and closed.status == "failed" and closed.event_count == 1
    assert closed.error is not None and closed.error["type"] == "store"
    assert [(e.seq, e.type) for e in reader.events("bad")] == [(1, "execution.failed")]
    assert reader.timeline("bad") == []
    # Nothing more of it is written, and the recorder keeps working for the others.
    rec.event(EventRecord("bad", 5, "log", {}, 1.0))
    hand_over(store, "after")
    await rec.flush()
    assert reader.count_events("after") == 4 and reader.count_events("bad") == 1
    # A row the store refuses in an execution recorded earlier: the rest of it stays.
    rec.event(EventRecord("after", 1, "log", {}, 1.0))  # a seq that already exists
    rec.execution(ExecutionRecord(id="after", pipeline="p", status="changed", started_at=1.0))
    await rec.flush()
    with pytest.raises(ExecutionRefused):
        await rec.flush("after")
    assert reader.get_execution("after").status == "completed"  # type: ignore[union-attr]
    assert reader.count_events("after") == 4


async def test_a_failed_background_batch_is_reported_by_the_next_flush(tmp_path: Path) -> None:
    """The store could not be written at all (another process held its lock too long)."""
    path = tmp_path / "locked.db"
    store = Store.open(f"sqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        rec = store.recorder
        rec._sink.busy_timeout = 0.05  # type: ignore[attr-defined]
        rec.interval = 0.01
        other.execute("BEGIN IMMEDIATE")
        rec.event(EventRecord("bg", 1, "log", {}, 1.0))
        await wait_for_condition(lambda: rec.pending == 0 and rec._task is None,
                                 "the background batch to fail")
        other.execute("COMMIT")
        with pytest.raises(StoreError, match="could not record"):
            await rec.flush()
        await rec.flush()  # reported once
    finally:
        other.close()
        store.close()


async def test_a_refused_background_batch_is_reported_to_its_execution(store: Store) -> None:
    rec = store.recorder
    rec.interval = 0.01
    rec.event(EventRecord("bg", 1, "log", {}, 1.0))
    rec.event(EventRecord("bg", 1, "log", {}, 1.0))
    await wait_for_condition(lambda: rec.pending == 0 and rec._task is None,
                             "the background batch to be refused")
    await rec.flush()  # not another execution's business
    with pytest.raises(ExecutionRefused):
        await rec.flush("bg")


async def test_close_flushes_and_then_refuses(recorder_url: tuple[str, bool]) -> None:
    url, core = recorder_url
    store = Store.open(url, core_recorder=core)
    hand_over(store, "closing")
    store.close()
    with Store.open(url) as again:
        assert again.count_events("closing") == 4
    with pytest.raises(StoreError, match="closed"):
        store.recorder.event(EventRecord("closing", 9, "log", {}, 1.0))


async def test_listeners_see_each_event_synchronously(store: Store) -> None:
    seen: list[tuple[str, int]] = []

    def broken(_: EventRecord) -> None:
        raise RuntimeError("a broken subscriber")

    store.recorder.listeners.append(broken)
    store.recorder.listeners.append(lambda e: seen.append((e.execution_id, e.seq)))
    hand_over(store, "live")
    assert seen == [("live", 1), ("live", 2), ("live", 3), ("live", 4)]  # before any flush
    await store.recorder.flush()


async def test_odd_values_are_recorded_not_fatal(store: Store, reader: Store) -> None:
    class Thing:
        def __str__(self) -> str:
            return "a thing"

    cyclic: list[object] = [1]
    cyclic.append(cyclic)
    data = {"nan": math.nan, "inf": -math.inf, "when": datetime.datetime(2024, 5, 1, 12, 0),
            "thing": Thing(), 3: "int key", "big": 2**80, "nul": "a\x00b", "cycle": cyclic}
    store.recorder.event(EventRecord("odd", 1, "log", data, 1.0))
    store.recorder.execution(ExecutionRecord(id="odd", pipeline="p", status="completed",
                                             started_at=1.0, output=data,
                                             trigger_payload={"v": math.nan}))
    await store.recorder.flush()
    got = reader.events("odd")[0].data
    assert got["nan"] is None and got["inf"] is None
    assert got["when"].startswith("2024-05-01") and got["thing"] == "a thing"
    assert got["3"] == "int key" and got["big"] == 2**80
    assert "\x00" not in got["nul"] and got["cycle"][0] == 1
    ex = reader.get_execution("odd")
    assert ex is not None and ex.output["big"] == 2**80 and ex.trigger_payload == {"v": None}


async def test_a_locked_sqlite_file_does_not_block_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    store = Store.open(f"sqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        hand_over(store, "waiting")
        flushing = asyncio.ensure_future(store.recorder.flush())
        ticks = 0
        for _ in range(20):  # the loop keeps running while the batch waits for the lock
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 20 and not flushing.done()
        other.execute("COMMIT")
        await asyncio.wait_for(flushing, 10)
        assert store.count_events("waiting") == 4
    finally:
        other.close()
        store.close()


@pytest.mark.postgres
async def test_the_postgres_recorder_reconnects_after_losing_its_connection(
        pg_store_url: str) -> None:
    import psycopg

    store = Store.open(pg_store_url)
    try:
        hand_over(store, "before")
        await store.recorder.flush()
        with psycopg.connect(pg_store_url, autocommit=True) as admin:  # the server drops us
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        hand_over(store, "lost")
        with pytest.raises(StoreError, match="could not record"):
            await store.recorder.flush()
        hand_over(store, "after")
        await store.recorder.flush()
        assert store.count_events("after") == 4 and store.count_events("lost") == 0
    finally:
        store.close()


def test_without_an_event_loop_flush_sync_writes(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        hand_over(store, "sync")  # no running loop: nothing is scheduled
        assert store.recorder.pending == 8
        store.recorder.flush_sync()
        assert store.count_events("sync") == 4


async def test_a_long_execution_stays_visible_while_it_runs(store: Store,
                                                            reader: Store) -> None:
    """Many small automatic batches while the run goes on, then the final flush."""
    rec = store.recorder
    rec.interval = 0.005
    ex = ExecutionRecord(id="long", pipeline="p", status="running", started_at=1.0)
    rec.execution(ex)
    for seq in range(1, 31):
        rec.event(EventRecord("long", seq, "log", {"seq": seq}, 1.0))
        ex.event_count = seq
        rec.execution(ex)
        await asyncio.sleep(0.003)  # the run goes on
    visible = await wait_for_condition(  # an automatic batch lands while it is still running
        lambda: (found := reader.get_execution("long")) is not None and found.event_count > 0
        and found, "an automatic batch of the running execution")
    assert visible.status == "running"
    ex.status = "completed"
    rec.execution(ex)
    await rec.flush()
    done = reader.get_execution("long")
    assert done is not None and (done.status, done.event_count) == ("completed", 30)
    assert rec.batches > 2


def _loop_turns(coro: Coroutine[Any, Any, None]) -> int | None:
    """How many bare loop turns ``coro`` takes to return; None if it awaits a future."""
    turns = 0
    while True:
        try:
            awaited = coro.send(None)
        except StopIteration:
            return turns
        if awaited is not None:  # a future: a task or a thread resolves it
            coro.close()
            return None
        turns += 1


# SQLite only: a PostgreSQL batch is always written in a worker thread (a future).
@pytest.mark.parametrize("recorder_url", ["sqlite", "sqlite-core"], indirect=True)
async def test_a_lone_run_is_committed_by_its_own_flush(store: Store, reader: Store) -> None:
    """Nothing else running: one loop turn (for runs about to flush), no writer task, no
    future; still durable on return."""
    hand_over(store, "lone")
    assert _loop_turns(store.recorder.flush("lone")) == 1
    assert reader.count_events("lone") == 4 and store.recorder.batches == 1


async def test_runs_ready_to_flush_share_the_lone_commit(store: Store, reader: Store) -> None:
    async def one_run(i: int) -> None:  # runs whose steps never wait, as step.set's
        hand_over(store, f"r{i}")
        await store.recorder.flush(f"r{i}")
        assert reader.count_events(f"r{i}") == 4

    await asyncio.gather(*(one_run(i) for i in range(32)))
    assert store.recorder.batches <= 2


async def test_runs_still_running_keep_the_group_commit(store: Store, reader: Store) -> None:
    rec = store.recorder
    hand_over(store, "done")
    rec.execution(ExecutionRecord(id="busy", pipeline="p", status="running", started_at=1.0))
    rec.event(EventRecord("busy", 1, "execution.started", {}, 1.0))
    flushing = asyncio.ensure_future(rec.flush("done"))
    await asyncio.sleep(0)
    assert not flushing.done()  # left to the writer task, which another flush may join
    await asyncio.wait_for(flushing, 30)
    assert reader.count_events("done") == 4 and reader.count_events("busy") == 1


async def test_close_writes_a_lone_batch_that_waited_for_the_lock(tmp_path: Path) -> None:
    """The batch a lone flush cut while another connection held the lock is written by
    close() if the writer task has not taken it yet, and its flush learns it."""
    path = tmp_path / "locked.db"
    store = Store.open(f"sqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        rec = store.recorder
        other.execute("BEGIN IMMEDIATE")
        hand_over(store, "held")
        assert not rec._flush_alone()  # the lock is taken: held for the writer task
        assert rec._held is not None
        done = rec._held[1]
        other.execute("COMMIT")
        store.close()
        assert done.done() and done.exception() is None
        await wait_for_condition(lambda: rec._task is None, "the writer task to end")
    finally:
        other.close()
        store.close()
    with Store.open(f"sqlite:///{path}") as again:
        assert again.count_events("held") == 4


async def test_the_recorder_keeps_the_wal_bounded(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    with Store.open(f"sqlite:///{path}") as store:
        for i in range(600):  # ~16 WAL pages each: past several checkpoints
            hand_over(store, f"w{i}")
            await store.recorder.flush()
        size = Path(f"{path}-wal").stat().st_size
    assert size <= (CHECKPOINT_PAGES + 200) * (4096 + 24)
