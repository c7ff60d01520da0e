"""Backfills over a real Engine and a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import ValidationError

from engine.api import Engine
from engine.executor import RunControls
from engine.service.backfill import BackfillManager
from engine.service.errors import InvalidInput, NotFound
from engine.service.models import Backfill, BackfillRequest, RunResult
from engine.store.records import ExecutionRecord
from engine.store.store import Store
from tests.waiting import wait_for_condition

PIPELINES = """
pipelines:
  work:
    record: full
    steps:
      - {name: pause, type: step.delay, config: {duration: 20ms}}
      - {name: refuse, type: step.fail, if: "{{ .n < 0 }}", config: {message: negative}}
      - {name: double, type: step.set, config: {values: {twice: "{{ .n * 2 }}"}}}
  slow:
    record: full
    steps:
      - {name: wait, type: step.delay, config: {duration: "{{ .wait }}"}}
"""


def make_runner(engine: Engine) -> Any:
    async def runner(pipeline: str, payload: Any, origin: dict[str, Any],
                     trigger_type: str) -> RunResult:
        ex = await engine.run(pipeline, payload, trigger_type=trigger_type,
                              controls=RunControls(origin=origin))
        return RunResult(execution_id=ex.id, status=ex.status, output=ex.output, error=ex.error)
    return runner


@dataclass
class World:
    engine: Engine
    store: Store
    backfills: BackfillManager

    def manager(self, pipelines: Callable[[], set[str]] | None = None) -> BackfillManager:
        return BackfillManager(self.store, make_runner(self.engine),
                               pipelines or (lambda: set(self.engine.pipelines)))

    def executions(self, pipeline: str, trigger_type: str | None = None) -> list[ExecutionRecord]:
        rows, _ = self.store.list_executions(pipeline=pipeline, limit=1000)
        rows = [r for r in rows if trigger_type is None or r.trigger_type == trigger_type]
        return sorted(rows, key=lambda r: r.started_at)

    def origin(self, execution_id: str) -> dict[str, Any]:
        return self.store.events(execution_id, types=["execution.started"])[0].data["origin"]


@pytest.fixture
async def world(store_url: str) -> AsyncIterator[World]:
    store = Store.open(store_url)
    engine = await Engine.open(PIPELINES, store=store)
    world = World(engine, store, BackfillManager(store, make_runner(engine),
                                                 lambda: set(engine.pipelines)))
    try:
        yield world
    finally:
        await world.backfills.close()
        await engine.close()
        store.close()


def max_overlap(records: list[ExecutionRecord]) -> int:
    edges = sorted([(r.started_at, 1) for r in records] + [(r.ended_at or 0.0, -1) for r in records])
    running = peak = 0
    for _, change in edges:
        running += change
        peak = max(peak, running)
    return peak


async def until(condition: Callable[[], bool]) -> None:
    await wait_for_condition(condition, "the backfill's state")


async def test_a_backfill_over_past_executions_runs_them_with_bounded_concurrency(
        world: World) -> None:
    originals = []
    for n in range(30):
        originals.append((await world.engine.run("work", {"n": n})).id)

    started = await world.backfills.start(BackfillRequest(pipeline="work", concurrency=3))
    assert started.status == "running" and started.total == 30 and started.concurrency == 3
    assert started.source == {"kind": "executions", "pipeline": "work", "since": None,
                              "until": None}
    done = await world.backfills.wait(started.id)

    assert (done.status, done.total, done.done, done.succeeded, done.failed) == (
        "completed", 30, 30, 30, 0)
    assert done.ended is not None and done.error is None
    runs = world.executions("work", "backfill")
    assert len(runs) == 30 and all(r.status == "completed" for r in runs)
    assert [r.trigger_payload["n"] for r in runs] == list(range(30))  # oldest input first
    assert [r.output["twice"] for r in runs] == [2 * n for n in range(30)]
    assert max_overlap(runs) == 3
    assert [world.origin(r.id) for r in runs] == [
        {"backfill": started.id, "source_execution": original} for original in originals]
    assert world.backfills.get(started.id) == done
    assert [b.id for b in world.backfills.list()] == [started.id]

    # Backfill executions are not inputs of a later backfill.
    again = await world.backfills.wait((await world.backfills.start(
        BackfillRequest(pipeline="work", concurrency=8))).id)
    assert again.total == 30 and again.succeeded == 30
    assert [b.id for b in world.backfills.list()] == [again.id, started.id]


async def test_a_time_range_and_a_limit_select_the_inputs(world: World) -> None:
    for n in range(8):
        await world.engine.run("work", {"n": n})
    past = world.executions("work")
    since, until_ = past[2].started_at, past[5].started_at  # both inclusive

    ranged = await world.backfills.wait((await world.backfills.start(
        BackfillRequest(pipeline="work", since=since, until=until_))).id)
    limited = await world.backfills.wait((await world.backfills.start(
        BackfillRequest(pipeline="work", since=since, limit=2))).id)

    assert ranged.total == 4 and ranged.source["since"] == since
    assert limited.total == 2 and limited.source["limit"] == 2
    payloads = [r.trigger_payload["n"] for r in world.executions("work", "backfill")]
    assert sorted(payloads) == [2, 2, 3, 3, 4, 5]


async def test_a_backfill_can_take_another_pipelines_inputs(world: World) -> None:
    await world.engine.run("slow", {"wait": "1ms", "n": 4})
    done = await world.backfills.wait((await world.backfills.start(
        BackfillRequest(pipeline="work", source_pipeline="slow"))).id)
    assert done.succeeded == 1
    [run] = world.executions("work", "backfill")
    assert run.output["twice"] == 8


async def test_a_jsonl_backfill_counts_failures_and_goes_on(world: World) -> None:
    jsonl = '{"n": 1}\n\n{"n": -1}\n   \n{"n": 3}\n'

    done = await world.backfills.wait((await world.backfills.start(
        BackfillRequest(pipeline="work", jsonl=jsonl, concurrency=2))).id)

    assert (done.status, done.total, done.done, done.succeeded, done.failed) == (
        "completed", 3, 3, 2, 1)
    assert done.source == {"kind": "jsonl", "lines": 3}
    runs = world.executions("work", "backfill")
    assert sorted(r.status for r in runs) == ["completed", "completed", "failed"]
    assert all(world.origin(r.id) == {"backfill": done.id} for r in runs)


async def test_a_bad_jsonl_line_is_named_and_nothing_starts(world: World) -> None:
    jsonl = '{"n": 1}\n\n{"n": 2,}\n{"n": 3}\n'

    with pytest.raises(InvalidInput, match="line 3 ") as caught:
        await world.backfills.start(BackfillRequest(pipeline="work", jsonl=jsonl))

    assert caught.value.details == {"line": 3, "rule": "syntax"}
    assert world.backfills.list() == [] and world.executions("work") == []
    with pytest.raises(InvalidInput, match="no payloads"):
        await world.backfills.start(BackfillRequest(pipeline="work", jsonl="\n \n"))


@pytest.mark.parametrize(("line", "rule", "words"), [
    ('{"n": ' + "[" * 1000 + "]" * 1000 + "}", "depth", "nested more than 200 levels deep at line 2 col"),
    ('{"n": ' + "7" * 5000 + "}", "number", "at line 2 column 7: an integer of 5000 digits"),
    ('{"n": "\\ud800"}', "surrogate", "unpaired surrogate ('\\ud800') at line 2 column 8"),
    ('{"n": NaN}', "number", "at line 2 column 7: NaN is not JSON"),
])
async def test_jsonl_lines_follow_the_one_json_rule(world: World, line: str, rule: str,
                                                    words: str) -> None:
    """The service reads JSON Lines as the CLI reads --jsonl (engine.json_input): API callers
    cannot pass what the CLI refuses."""
    with pytest.raises(InvalidInput) as caught:
        await world.backfills.start(BackfillRequest(pipeline="work", jsonl=f'{{"n": 1}}\n{line}'))
    assert caught.value.details == {"line": 2, "rule": rule}
    assert words in caught.value.message, caught.value.message
    assert world.backfills.list() == [] and world.executions("work") == []


async def test_jsonl_integers_beyond_64_bits_run_exact(world: World) -> None:
    done = await world.backfills.wait((await world.backfills.start(
        BackfillRequest(pipeline="work", jsonl=f'{{"n": {10**30 + 1}}}'))).id)
    assert done.status == "completed"
    [run] = world.executions("work", "backfill")
    assert run.trigger_payload == {"n": 10**30 + 1}


async def test_requests_that_cannot_run_are_refused(world: World) -> None:
    with pytest.raises(NotFound, match=r"'nope'.*pipelines: slow, work"):
        await world.backfills.start(BackfillRequest(pipeline="nope"))
    with pytest.raises(InvalidInput, match="not both"):
        await world.backfills.start(BackfillRequest(pipeline="work", jsonl="1", since=0))
    with pytest.raises(InvalidInput, match="is after until"):
        await world.backfills.start(BackfillRequest(pipeline="work", since=10, until=5))
    with pytest.raises(ValidationError, match="limit"):  # the request model refuses it
        BackfillRequest(pipeline="work", jsonl="1", limit=0)
    assert world.backfills.list() == []
    for operation in (world.backfills.get, world.backfills.cancel, world.backfills.wait):
        with pytest.raises(NotFound):
            result = operation("nope")
            if asyncio.iscoroutine(result):
                await result


async def test_an_empty_range_completes_with_nothing_to_do(world: World) -> None:
    done = await world.backfills.wait((await world.backfills.start(
        BackfillRequest(pipeline="work"))).id)
    assert (done.status, done.total, done.done) == ("completed", 0, 0)


async def test_cancel_stops_in_flight_executions_and_keeps_the_counts(world: World) -> None:
    payloads = [{"wait": "1ms"}] * 3 + [{"wait": "10s"}] * 7
    jsonl = "\n".join(json.dumps(p) for p in payloads)
    started = await world.backfills.start(BackfillRequest(pipeline="slow", jsonl=jsonl,
                                                          concurrency=2))
    # the three quick inputs finish, then two slow ones hold both slots
    await until(lambda: len(world.engine.running) == 2
                and len(world.executions("slow", "backfill")) == 5)

    # The two 10 s runs end as "cancelled" below, not "completed": cancel did not wait them out.
    cancelled = await world.backfills.cancel(started.id)

    assert (cancelled.status, cancelled.total, cancelled.done, cancelled.succeeded,
            cancelled.failed) == ("cancelled", 10, 3, 3, 0)
    assert cancelled.ended is not None and not world.engine.running
    runs = world.executions("slow", "backfill")
    assert [r.status for r in runs] == ["completed"] * 3 + ["cancelled"] * 2
    assert await world.backfills.cancel(started.id) == cancelled  # already over: unchanged
    assert await world.backfills.wait(started.id) == cancelled


async def test_a_cancel_from_another_process_stops_the_backfill(world: World,
                                                                store_url: str) -> None:
    jsonl = "\n".join(json.dumps({"wait": "5ms"}) for _ in range(400))
    started = await world.backfills.start(BackfillRequest(pipeline="slow", jsonl=jsonl,
                                                          concurrency=2))
    await until(lambda: world.backfills.get(started.id).done > 0)
    other_store = Store.open(store_url)
    try:
        marked = await BackfillManager(other_store, make_runner(world.engine),
                                       lambda: {"slow"}).cancel(started.id)
    finally:
        other_store.close()
    assert marked.status == "cancelled"

    ended = await asyncio.wait_for(world.backfills.wait(started.id), 10)

    assert ended.status == "cancelled" and 0 < ended.done < 400
    assert len(world.executions("slow", "backfill")) < 400


async def test_a_runner_that_breaks_fails_the_backfill(world: World) -> None:
    # The caller believes "ghost" exists, but the engine cannot run it.
    manager = world.manager(lambda: {"ghost"})
    started = await manager.start(BackfillRequest(pipeline="ghost", jsonl="1\n2\n3"))

    done = await manager.wait(started.id)

    assert done.status == "failed" and done.done == 0 and done.ended is not None
    assert "stopped after 0 of 3 inputs" in (done.error or "")
    assert "no pipeline named 'ghost'" in (done.error or "")


async def test_close_cancels_running_backfills(world: World) -> None:
    manager = world.manager()
    started = await manager.start(BackfillRequest(pipeline="slow", jsonl='{"wait": "10s"}'))
    await until(lambda: len(world.engine.running) == 1)

    await manager.close()

    ended: Backfill = manager.get(started.id)
    assert ended.status == "cancelled" and "shut down" in (ended.error or "")
    assert not world.engine.running
    assert [r.status for r in world.executions("slow")] == ["cancelled"]


async def test_cancel_right_after_start_still_ends_the_backfill(world: World) -> None:
    started = await world.backfills.start(BackfillRequest(pipeline="slow",
                                                          jsonl='{"wait": "10s"}'))
    cancelled = await world.backfills.cancel(started.id)  # before its task first ran
    assert cancelled.status == "cancelled" and cancelled.ended is not None
