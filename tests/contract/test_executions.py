"""Contract: runs, cancel, listing with filters and cursor, timeline, events and live streams."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from engine.service.errors import InvalidInput, NotFound
from engine.service.models import Event, ExecutionFilter, RunOptions
from engine.service.protocol import StudioService

try:
    from tests.contract.contract_helpers import eventually, seqs, wait_finished, wait_paused
except ImportError:
    from contract_helpers import eventually, seqs, wait_finished, wait_paused  # type: ignore[no-redef]


async def test_run_waits_for_the_result(service: StudioService) -> None:
    result = await service.run("greet", {"name": "Ada"})
    assert (result.status, result.output, result.error) == ("completed",
                                                           {"greeting": "Hello Ada"}, None)
    assert result.duration_ms is not None and result.duration_ms >= 0
    summary = await service.get_execution(result.execution_id)
    assert (summary.pipeline, summary.status, summary.trigger_payload) == (
        "greet", "completed", {"name": "Ada"})
    assert summary.output == {"greeting": "Hello Ada"} and summary.ended_at >= summary.started_at
    assert summary.event_count > 0

    failed = await service.run("order", {"qty": {"bad": 1}})
    assert failed.status == "failed" and failed.error["message"]
    with pytest.raises(NotFound, match="no pipeline named 'nope'"):
        await service.run("nope", {})
    with pytest.raises(NotFound):
        await service.get_execution("0" * 32)


async def test_run_without_waiting_and_cancel(service: StudioService) -> None:
    started = await service.run("slow", {"wait": "30s"}, RunOptions(wait=False))
    assert started.status == "running" and started.output is None
    assert (await service.get_execution(started.execution_id)).status == "running"
    assert await service.cancel(started.execution_id) is True
    finished = await wait_finished(service, started.execution_id)
    assert finished.status == "cancelled"
    assert await service.cancel(started.execution_id) is False  # already over
    with pytest.raises(NotFound):
        await service.cancel("0" * 32)


async def test_list_executions_filters_and_pages(service: StudioService) -> None:
    before = time.time()
    ids = [(await service.run("greet", {"name": name})).execution_id
           for name in ("Ada", "Bob", "Cyd", "Dee", "Eve")]
    failed = (await service.run("order", {"qty": {"bad": 1}})).execution_id
    await asyncio.sleep(0.02)
    middle = time.time()
    late = (await service.run("order", {"qty": 1})).execution_id

    everything = await service.list_executions()
    assert {e.id for e in everything.items} == {*ids, failed, late}
    assert everything.next_cursor is None
    greet = await service.list_executions(ExecutionFilter(pipeline="greet"))
    assert {e.id for e in greet.items} == set(ids)
    assert [e.id for e in (await service.list_executions(
        ExecutionFilter(status="failed"))).items] == [failed]
    assert [e.id for e in (await service.list_executions(
        ExecutionFilter(since=middle))).items] == [late]
    until = await service.list_executions(ExecutionFilter(since=before, until=middle))
    assert {e.id for e in until.items} == {*ids, failed}
    # text: a part of the id, the pipeline or the error
    text = await service.list_executions(ExecutionFilter(text=ids[2][:16].upper()))
    assert [e.id for e in text.items] == [ids[2]]
    text = await service.list_executions(ExecutionFilter(text="cannot be multiplied"))
    assert [e.id for e in text.items] == [failed]

    # Pages of two: every execution once, newest first, then no cursor.
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = await service.list_executions(ExecutionFilter(limit=2, cursor=cursor))
        assert len(page.items) <= 2
        seen += [e.id for e in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted([*ids, failed, late]) and len(seen) == 7
    assert seen[0] == late


async def test_a_bad_cursor_is_invalid_input(service: StudioService) -> None:
    with pytest.raises(InvalidInput, match="invalid cursor"):
        await service.list_executions(ExecutionFilter(cursor="not-a-cursor"))


async def test_timeline_and_events(service: StudioService) -> None:
    ran = await service.run("order", {"qty": 2})
    timeline = await service.timeline(ran.execution_id)
    assert timeline.execution.id == ran.execution_id
    assert [(s.path, s.status) for s in timeline.steps] == [
        ("price", "completed"), ("tax", "completed"), ("out", "completed")]

    events = await service.events(ran.execution_id)
    assert seqs(events) == list(range(1, len(events) + 1))
    assert events[0].type == "execution.started" and events[-1].type == "execution.completed"
    assert all(isinstance(e, Event) and e.execution_id == ran.execution_id for e in events)
    assert await service.events(ran.execution_id, after_seq=3) == events[3:]
    assert await service.events(ran.execution_id, limit=2) == events[:2]
    started = await service.events(ran.execution_id, types=["step.started", "step.completed"])
    assert started == [e for e in events if e.type in ("step.started", "step.completed")]
    assert [e.data["step"] for e in started if e.type == "step.started"] == ["price", "tax", "out"]
    with pytest.raises(NotFound):
        await service.timeline("0" * 32)
    with pytest.raises(NotFound):
        await service.events("0" * 32)


async def _collect(service: StudioService, execution_id: str | None = None,
                   after_seq: int = 0) -> list[Event]:
    return [e async for e in service.subscribe(execution_id, after_seq)]


async def test_subscribe_to_a_finished_execution_replays_and_ends(service: StudioService) -> None:
    ran = await service.run("greet", {"name": "Ada"})
    stored = await service.events(ran.execution_id)
    assert await asyncio.wait_for(_collect(service, ran.execution_id), 10) == stored
    assert await asyncio.wait_for(_collect(service, ran.execution_id, 2), 10) == stored[2:]
    # Resumed after the terminal event: nothing more will come, the iterator just ends.
    assert await asyncio.wait_for(_collect(service, ran.execution_id, stored[-1].seq), 10) == []
    with pytest.raises(NotFound):
        await _collect(service, "0" * 32)


async def test_subscribe_follows_a_live_execution(service: StudioService) -> None:
    await service.set_breakpoint("order", "tax")
    started = await service.run("order", {"qty": 2}, RunOptions(wait=False))
    await wait_paused(service, started.execution_id)
    received: list[Event] = []

    async def consume() -> None:
        async for event in service.subscribe(started.execution_id):
            received.append(event)

    task = asyncio.ensure_future(consume())
    # The stored part arrives first (up to the pause), then the live tail after resuming.
    await eventually(lambda: _true_if(any(e.type == "debug.paused" for e in received)),
                     "the stored events up to the pause")
    await service.resume(started.execution_id)
    await asyncio.wait_for(task, 10)
    assert received == await service.events(started.execution_id)
    assert received[-1].type == "execution.completed"


async def test_subscribe_to_all_executions(service: StudioService) -> None:
    received: list[Event] = []

    async def consume() -> None:
        async for event in service.subscribe(None):
            received.append(event)

    task = asyncio.ensure_future(consume())
    try:
        # The stream is live only: run until one whole execution has been seen from its start.
        async def whole_execution() -> str | None:
            ran = await service.run("greet", {"name": "x"})
            mine = [e for e in received if e.execution_id == ran.execution_id]
            complete = mine and mine[0].seq == 1 and mine[-1].type == "execution.completed"
            return ran.execution_id if complete else None

        execution_id = await eventually(whole_execution, "a whole execution on the stream")
        mine = [e for e in received if e.execution_id == execution_id]
        assert mine == await service.events(execution_id)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    with pytest.raises(InvalidInput, match="after_seq"):
        await _collect(service, None, 5)


async def _true_if(value: bool) -> bool | None:
    return True if value else None
