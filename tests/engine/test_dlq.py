"""The dead-letter queue manager over a real Engine and a real store (SQLite and PostgreSQL).

Entries are made by real failures: ``ingest`` (``dlq`` enabled) fails while the table it
writes to is missing; ``screen`` parks negative quantities with ``step.dlq_send``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.api import Engine
from engine.executor import RunControls
from engine.service.dlq import DlqManager
from engine.service.errors import Conflict, InvalidInput, NotFound
from engine.service.models import DlqFilter, RunResult
from engine.store.records import ExecutionRecord
from engine.store.store import Store
from tests.waiting import wait_for_condition

APP = """
modules:
  - name: app
    type: database.sql
    config: {{url: "sqlite:///{db}"}}
pipelines:
  ingest:
    dlq: {{max_retries: 2}}
    record: full
    steps:
      - {{name: settle, type: step.delay, config: {{duration: 30ms}}}}
      - name: save
        type: step.db_exec
        config:
          database: app
          query: INSERT INTO items(name, qty) VALUES (:name, :qty)
          params: {{name: "{{{{ .name }}}}", qty: "{{{{ .qty }}}}"}}
  screen:
    record: full
    steps:
      - name: park
        type: step.dlq_send
        if: "{{{{ .qty < 0 }}}}"
        config: {{error: negative quantity}}
      - {{name: accept, type: step.set, config: {{values: {{accepted: "{{{{ .qty >= 0 }}}}"}}}}}}
"""


@dataclass
class World:
    engine: Engine
    store: Store
    dlq: DlqManager
    app_db: Path

    def create_table(self) -> None:
        with sqlite3.connect(self.app_db) as conn:
            conn.execute("CREATE TABLE items (name TEXT, qty INTEGER)")

    def saved(self) -> list[tuple[str, int]]:
        with sqlite3.connect(self.app_db) as conn:
            return conn.execute("SELECT name, qty FROM items ORDER BY name").fetchall()

    async def fail_ingest(self, *names: str) -> list[str]:
        """Run ``ingest`` once per name while its table is missing; the new entries' ids."""
        for name in names:
            ex = await self.engine.run("ingest", {"name": name, "qty": 1})
            assert ex.status == "failed" and "no such table" in ex.error["message"]
        entries = self.dlq.list(DlqFilter(pipeline="ingest"))
        by_name = {e.payload["name"]: e.id for e in entries}
        return [by_name[n] for n in names]

    def executions(self, trigger_type: str | None = None) -> list[ExecutionRecord]:
        rows, _ = self.store.list_executions(limit=1000)
        return [r for r in rows if trigger_type is None or r.trigger_type == trigger_type]


def make_runner(engine: Engine) -> Any:
    async def runner(pipeline: str, payload: Any, origin: dict[str, Any],
                     trigger_type: str) -> RunResult:
        ex = await engine.run(pipeline, payload, trigger_type=trigger_type,
                              controls=RunControls(origin=origin))
        return RunResult(execution_id=ex.id, status=ex.status, output=ex.output, error=ex.error)
    return runner


@pytest.fixture
async def world(tmp_path: Path, store_url: str) -> AsyncIterator[World]:
    store = Store.open(store_url)
    app_db = tmp_path / "app.db"
    engine = await Engine.open(APP.format(db=app_db), store=store)
    try:
        yield World(engine, store, DlqManager(store, make_runner(engine)), app_db)
    finally:
        await engine.close()
        store.close()


def max_overlap(records: list[ExecutionRecord]) -> int:
    """The most executions that were running at the same moment, from their timestamps."""
    edges = sorted([(r.started_at, 1) for r in records] + [(r.ended_at or 0.0, -1) for r in records],
                   key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, change in edges:
        running += change
        peak = max(peak, running)
    return peak


async def test_a_retry_after_the_cause_is_fixed_resolves_the_entry(world: World) -> None:
    [entry_id] = await world.fail_ingest("a")
    original = world.executions()[0]
    entry = world.dlq.get(entry_id)
    assert (entry.pipeline, entry.step, entry.status) == ("ingest", "save", "pending")
    assert entry.execution_id == original.id and entry.payload == {"name": "a", "qty": 1}
    assert "no such table" in (entry.error or "") and entry.retry_count == 0
    assert world.dlq.stats() == {"pending": 1, "retrying": 0, "resolved": 0, "discarded": 0,
                                 "total": 1}

    world.create_table()
    [result] = await world.dlq.retry([entry_id])

    assert result.status == "completed" and result.error is None
    assert result.execution_id not in (None, original.id)
    entry = world.dlq.get(entry_id)
    assert entry.status == "resolved" and entry.resolved is not None
    assert entry.last_retry_id == result.execution_id and entry.retry_count == 1
    assert world.saved() == [("a", 1)]
    started = world.store.events(result.execution_id, types=["execution.started"])[0].data
    assert started["origin"] == {"dlq_entry": entry_id, "execution_id": original.id}
    assert started["trigger"] == {"type": "dlq_retry", "payload": {"name": "a", "qty": 1}}
    assert world.store.get_execution(result.execution_id).trigger_type == "dlq_retry"
    assert world.dlq.stats()["resolved"] == 1 and world.dlq.stats()["pending"] == 0


async def test_a_failed_retry_keeps_the_entry_pending_until_its_retries_are_used_up(
        world: World) -> None:
    [entry_id] = await world.fail_ingest("a")

    [first] = await world.dlq.retry([entry_id])

    assert first.status == "failed" and "no such table" in (first.error or "")
    entry = world.dlq.get(entry_id)
    assert entry.status == "pending" and entry.retry_count == 1
    assert entry.last_retry_id == first.execution_id
    # the engine's own dead-letter of the failed retry is folded into this entry
    assert [e.id for e in world.dlq.list()] == [entry_id]

    [second] = await world.dlq.retry([entry_id])
    assert second.status == "failed" and world.dlq.get(entry_id).retry_count == 2

    # max_retries is 2: a third retry is refused without running anything ...
    runs = len(world.executions())
    [third] = await world.dlq.retry([entry_id])
    assert third.status == "skipped" and third.execution_id is None
    assert "retries used up (2 of 2)" in (third.error or "")
    assert len(world.executions()) == runs and world.dlq.get(entry_id).status == "pending"

    # ... unless forced, once the cause is fixed
    world.create_table()
    [forced] = await world.dlq.retry([entry_id], force=True)
    assert forced.status == "completed"
    entry = world.dlq.get(entry_id)
    assert entry.status == "resolved" and entry.retry_count == 3


async def test_a_bulk_retry_reports_progress_and_bounds_its_concurrency(world: World) -> None:
    ids = await world.fail_ingest("a", "b", "c", "d", "e", "f")
    world.create_table()
    world.dlq.resolve(ids[0])  # handled by hand: skipped, but still counted as done
    dlq = DlqManager(world.store, make_runner(world.engine), concurrency=2)
    calls: list[tuple[int, int]] = []

    results = await dlq.retry(ids, progress=lambda done, total: calls.append((done, total)))

    assert calls == [(n, 6) for n in range(1, 7)]
    assert [r.entry_id for r in results] == ids  # in the order asked
    assert results[0].status == "skipped" and "entry is resolved" in (results[0].error or "")
    assert [r.status for r in results[1:]] == ["completed"] * 5
    assert world.saved() == [(n, 1) for n in "bcdef"]
    assert world.dlq.stats()["resolved"] == 6
    retries = world.executions("dlq_retry")
    assert len(retries) == 5 and max_overlap(retries) == 2


async def test_a_patch_is_applied_to_the_payload_of_the_retry_only(world: World) -> None:
    parked = await world.engine.run("screen", {"sku": "X", "qty": -3})
    assert parked.status == "completed" and parked.output["accepted"] is False
    [entry] = world.dlq.list()
    assert (entry.step, entry.error, entry.error_type) == ("park", "negative quantity", "dlq_send")

    [result] = await world.dlq.retry([entry.id], patch=[{"op": "replace", "path": "/qty",
                                                         "value": 3}])

    assert result.status == "completed"
    retry = world.store.get_execution(result.execution_id)
    assert retry.trigger_payload == {"sku": "X", "qty": 3} and retry.output["accepted"] is True
    after = world.dlq.get(entry.id)
    assert after.status == "resolved" and after.payload == {"sku": "X", "qty": -3}
    assert len(world.dlq.list()) == 1  # the patched run parked nothing


async def test_a_patch_that_does_not_apply_changes_nothing(world: World) -> None:
    await world.engine.run("screen", {"sku": "X", "qty": -1, "note": "check"})
    await world.engine.run("screen", {"sku": "Y", "qty": -2})
    with_note, without_note = sorted(world.dlq.list(), key=lambda e: e.payload["sku"])
    runs = len(world.executions())

    with pytest.raises(InvalidInput) as caught:
        await world.dlq.retry([with_note.id, without_note.id],
                              patch=[{"op": "remove", "path": "/note"}])

    assert without_note.id in caught.value.message and "nothing was retried" in caught.value.message
    assert len(world.executions()) == runs
    for entry in world.dlq.list():
        assert entry.status == "pending" and entry.retry_count == 0
    with pytest.raises(InvalidInput, match="JSON Patch"):
        await world.dlq.retry([with_note.id], patch={"op": "remove", "path": "/note"})  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="invalid JSON Patch"):
        await world.dlq.retry([with_note.id], patch=[{"op": "frobnicate", "path": "/note"}])
    assert len(world.executions()) == runs


async def test_unknown_ids_are_not_found_before_anything_runs(world: World) -> None:
    [entry_id] = await world.fail_ingest("a")
    world.create_table()
    runs = len(world.executions())

    with pytest.raises(NotFound, match="'nope'"):
        await world.dlq.retry([entry_id, "nope"])

    assert len(world.executions()) == runs and world.dlq.get(entry_id).status == "pending"
    for operation in (world.dlq.get, world.dlq.resolve, world.dlq.discard):
        with pytest.raises(NotFound):
            operation("nope")


async def test_resolve_discard_purge_and_stats(world: World) -> None:
    first, second, third = await world.fail_ingest("a", "b", "c")
    assert [e.id for e in world.dlq.list()] == [third, second, first]  # newest first

    resolved = world.dlq.resolve(first)
    assert resolved.status == "resolved" and resolved.resolved is not None
    assert world.dlq.resolve(first) == resolved  # again: nothing changes
    with pytest.raises(Conflict, match="already resolved"):
        world.dlq.discard(first)
    assert world.dlq.discard(second).status == "discarded"
    with pytest.raises(Conflict, match="already discarded"):
        world.dlq.resolve(second)

    assert world.dlq.stats() == {"pending": 1, "retrying": 0, "resolved": 1, "discarded": 1,
                                 "total": 3}
    assert [e.id for e in world.dlq.list(DlqFilter(status="discarded"))] == [second]
    assert [e.id for e in world.dlq.list(DlqFilter(pipeline="screen"))] == []
    assert len(world.dlq.list(DlqFilter(limit=2))) == 2
    with pytest.raises(InvalidInput, match="unknown DLQ status"):
        world.dlq.list(DlqFilter(status="gone"))

    assert world.dlq.purge(3600) == 0  # finished just now: not old enough
    await asyncio.sleep(0.05)
    assert world.dlq.purge(0.01) == 2  # the pending entry is kept
    assert [e.id for e in world.dlq.list()] == [third]
    assert world.dlq.stats() == {"pending": 1, "retrying": 0, "resolved": 0, "discarded": 0,
                                 "total": 1}
    with pytest.raises(InvalidInput):
        world.dlq.purge(-1)


async def test_concurrent_retries_of_one_entry_conflict(world: World, store_url: str) -> None:
    [entry_id] = await world.fail_ingest("a")
    world.create_table()
    # A second manager over its own connection pool: the claim is decided in the database.
    other_store = Store.open(store_url)
    try:
        other = DlqManager(other_store, make_runner(world.engine))
        first = asyncio.ensure_future(world.dlq.retry([entry_id]))
        # The first retry holds the entry while its run goes on (a 30 ms delay step).
        await wait_for_condition(lambda: other.get(entry_id).status == "retrying",
                                 "the first retry to claim the entry")
        # No await between here and the second claim: the first run cannot end in between.
        with pytest.raises(Conflict):
            world.dlq.resolve(entry_id)
        with pytest.raises(Conflict, match="already being retried"):
            await other.retry([entry_id])
        [result] = await first
    finally:
        other_store.close()

    assert result.status == "completed"
    assert world.saved() == [("a", 1)] and len(world.executions("dlq_retry")) == 1
    assert world.dlq.get(entry_id).status == "resolved"


async def test_a_retry_whose_pipeline_is_gone_is_skipped_and_not_counted(world: World) -> None:
    [entry_id] = await world.fail_ingest("a")

    async def no_such_pipeline(pipeline: str, payload: Any, origin: dict[str, Any],
                               trigger_type: str) -> RunResult:
        return await make_runner(world.engine)("renamed-" + pipeline, payload, origin,
                                               trigger_type)

    [result] = await DlqManager(world.store, no_such_pipeline).retry([entry_id])

    assert result.status == "skipped" and "renamed-ingest" in (result.error or "")
    entry = world.dlq.get(entry_id)
    assert entry.status == "pending" and entry.retry_count == 0


async def test_cancelling_a_retry_puts_the_entry_back(world: World) -> None:
    [entry_id] = await world.fail_ingest("a")
    world.create_table()
    retry = asyncio.ensure_future(world.dlq.retry([entry_id]))
    await wait_for_condition(lambda: world.dlq.get(entry_id).status == "retrying",
                             "the retry to claim the entry")

    retry.cancel()
    with pytest.raises(asyncio.CancelledError):
        await retry

    entry = world.dlq.get(entry_id)
    assert entry.status == "pending" and entry.retry_count == 0
    [cancelled] = world.executions("dlq_retry")
    assert cancelled.status == "cancelled"
