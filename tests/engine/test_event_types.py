"""The events' vocabulary (engine/service/models.py EventType and its payload TypedDicts) is
what the engine really records: run the example workspace and the engine's other event
sources (debugger, mocks, replay, backfill, cancel, idempotency, resilience steps), then check
every recorded event's type and data against it, and that the stored names are unchanged."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine.sample_api import SampleApi
from engine.service.local import LocalService
from engine.service.models import (
    DEBUG_EVENTS,
    EVENT_DATA,
    LEGACY_EVENTS,
    TERMINAL_EVENTS,
    TERMINAL_STATUS,
    BackfillRequest,
    Event,
    EventType,
    ExecutionFilter,
    ReplayOptions,
    RunOptions,
)
from tests.waiting import wait_for_condition

WORKSPACE = Path(__file__).resolve().parents[2] / "resources" / "workspace"

# Pipelines for the event sources the example workspace does not reach.
EXTRAS = """\
pipelines:
  extras:
    steps:
      - {name: note, type: step.log, config: {message: "hello {{ .n }}", level: info}}
      - {name: never, type: step.set, if: "{{ false }}", config: {values: {x: 1}}}
      - {name: once, type: step.set, idempotency_key: "{{ .key }}", config: {values: {y: 2}}}
  limited:
    steps:
      - {name: gate, type: step.rate_limit, config: {requests_per_minute: 60, burst: 1, key: k}}
  breaker:
    steps:
      - name: guard
        type: step.circuit_breaker
        config:
          failure_threshold: 1
          reset_timeout: 60s
          steps:
            - {name: call, type: step.fail, config: {message: upstream down}}
  slow:
    steps:
      - {name: wait, type: step.delay, config: {duration: 60s}}
"""

# The stored names, spelt out: a renamed member would change what the store and the wire hold.
STORED_NAMES = {
    "execution.started", "execution.completed", "execution.failed", "execution.cancelled",
    "execution.compensated", "step.started", "step.input", "step.output", "step.completed",
    "step.failed", "step.skipped", "step.retrying", "step.routed", "step.mocked",
    "step.idempotent_hit", "step.compensating", "step.compensated", "debug.paused",
    "debug.resumed", "debug.context_patched", "log", "rate_limit.exceeded",
    "rate_limit.recovered", "circuit.state_changed",
}


@pytest.fixture
async def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LocalService]:
    folder = tmp_path / "workspace"
    shutil.copytree(WORKSPACE, folder)
    (folder / "extras.yaml").write_text(EXTRAS)
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("DATA_DIR", str(data))
    with SampleApi() as api:
        monkeypatch.setenv("SAMPLE_API_URL", api.url)
        svc = await LocalService.open(sorted(folder.glob("*.yaml")), store=f"sqlite:///{tmp_path}/s.db")
        try:
            yield svc
        finally:
            await svc.close()


async def _ended(service: LocalService, execution_id: str) -> str:
    async def status() -> str | None:
        found = (await service.get_execution(execution_id)).status
        return found if found in TERMINAL_STATUS.values() else None

    return await wait_for_condition(status, f"{execution_id} to end")


async def _run_everything(service: LocalService) -> None:
    samples: list[dict[str, Any]] = json.loads((WORKSPACE / "samples.json").read_text())
    for sample in samples:
        result = await service.run(sample["pipeline"], sample["input"])
        assert result.status == sample.get("expect", "completed"), (sample["title"], result.error)

    # the debugger: a pause, a context edit, a resumption
    bp = await service.set_breakpoint("triage", "classify")
    started = await service.run("triage", {"id": "T-9", "severity": 9, "product": "billing"},
                                RunOptions(wait=False))
    await wait_for_condition(lambda: _paused(service, started.execution_id), "the pause")
    await service.resume(started.execution_id, "continue",
                         [{"op": "add", "path": "/current/edited", "value": True}])
    assert await _ended(service, started.execution_id) == "completed"
    await service.remove_breakpoint(bp.id)

    # a step mock, a replay from a step (reused steps), a backfill (origin)
    mock = await service.set_mock("triage", "auto-reply", output={"handled_by": "mock", "sla": "none"})
    assert (await service.run("triage", {"id": "T-8", "severity": 1, "product": "x"})).status == "completed"
    await service.remove_mock(mock.id)
    original = await service.run("create-order", {"sku": "ABC-1", "qty": 3})
    replayed = await service.replay(original.execution_id,
                                    ReplayOptions(mode="from_step", from_step="store"))
    assert replayed.status == "completed", replayed.error
    backfill = await service.start_backfill(BackfillRequest(
        pipeline="triage", jsonl='{"id": "B-1", "severity": 2, "product": "x"}\n'))

    async def backfilled() -> bool:
        return (await service.get_backfill(backfill.id)).status == "completed"

    await wait_for_condition(backfilled, "the backfill")

    # a cancellation, an idempotency hit, a log, a skip, the resilience steps' own events
    slow = await service.run("slow", {}, RunOptions(wait=False))
    await service.cancel(slow.execution_id)
    assert await _ended(service, slow.execution_id) == "cancelled"
    for n in (1, 2):
        assert (await service.run("extras", {"n": n, "key": "same"})).status == "completed"
    assert (await service.run("limited", {})).status == "completed"
    assert (await service.run("limited", {})).status == "failed"  # within the second

    async def served() -> bool:
        return (await service.run("limited", {})).status == "completed"

    await wait_for_condition(served, "a token to come back (one a second)", interval=0.25)
    assert (await service.run("breaker", {})).status == "failed"


async def _paused(service: LocalService, execution_id: str) -> bool:
    return any(p.execution_id == execution_id for p in await service.paused())


async def _all_events(service: LocalService) -> list[Event]:
    page = await service.list_executions(ExecutionFilter(limit=1000))
    assert page.next_cursor is None
    events: list[Event] = []
    for summary in page.items:
        events += await service.events(summary.id, limit=10_000)
    return events


def _payload_problems(event: Event) -> list[str]:
    declared = EVENT_DATA[EventType(event.type)]
    required: frozenset[str] = declared.__required_keys__  # type: ignore[attr-defined]
    optional: frozenset[str] = declared.__optional_keys__  # type: ignore[attr-defined]
    keys = set(event.data)
    problems = [f"#{event.seq} {event.type}: no {key!r}" for key in sorted(required - keys)]
    problems += [f"#{event.seq} {event.type}: undeclared {key!r}"
                 for key in sorted(keys - required - optional)]
    return problems


async def test_every_recorded_event_is_in_the_vocabulary_with_its_declared_data(
        service: LocalService, tmp_path: Path) -> None:
    await _run_everything(service)
    events = await _all_events(service)

    kinds = {e.type for e in events}
    unknown = kinds - set(EventType)
    assert not unknown, f"recorded but not in EventType: {sorted(unknown)}"
    problems = [p for e in events for p in _payload_problems(e)]
    assert not problems, "\n".join(problems[:30])
    # Everything but the recovery's event and the legacy ones (read from old stores, never
    # written now) was produced (a test that reaches nothing proves nothing).
    assert set(EventType) - kinds == {EventType.EXECUTION_INTERRUPTED, *LEGACY_EVENTS}

    # The store holds the same plain names as before the vocabulary existed.
    with sqlite3.connect(tmp_path / "s.db") as conn:
        stored = {row[0] for row in conn.execute("SELECT DISTINCT type FROM execution_events")}
    assert stored == STORED_NAMES - LEGACY_EVENTS
    assert {str(member) for member in EventType} == STORED_NAMES | {"execution.interrupted"}


def test_the_groups_and_payload_table_cover_the_vocabulary() -> None:
    assert set(EVENT_DATA) == set(EventType)
    assert {t for t in EventType if t.startswith("execution.") and t != "execution.started"} == TERMINAL_EVENTS
    assert {t for t in EventType if t.startswith("debug.")} == DEBUG_EVENTS
    assert TERMINAL_STATUS == {"execution.completed": "completed", "execution.failed": "failed",
                               "execution.cancelled": "cancelled", "execution.compensated": "compensated",
                               "execution.interrupted": "interrupted"}
    # A member is its string: a stored name compares and hashes as the member does.
    assert EventType.STEP_STARTED == "step.started" and "step.started" in {EventType.STEP_STARTED}
