"""Replay, replay plans, mocks and capture-to-mock through the local service."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.service.errors import Conflict, InvalidInput, NotFound
from engine.service.local import LocalService
from engine.service.models import ReplayOptions, RunOptions

PIPELINE = """
modules:
  - name: db
    type: database.sql
    config:
      url: "sqlite:///{db}"
      init: ["CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY AUTOINCREMENT, sku TEXT, qty INTEGER)"]
pipelines:
  order:
    record: full
    steps:
      - name: store
        type: step.db_exec
        config: {{database: db, query: "INSERT INTO orders (sku, qty) VALUES (:sku, :qty)", params: {{sku: "{{{{ .sku }}}}", qty: "{{{{ .qty }}}}"}}}}
      - {{name: quote, type: step.set, config: {{values: {{price: "{{{{ .qty * 10 }}}}"}}}}}}
      - name: check
        type: step.conditional
        config: {{if: "{{{{ .price > 50 }}}}", then: big, else: small}}
      - {{name: small, type: step.set, config: {{values: {{size: small}}}}}}
      - {{name: small-done, type: step.pipeline_output, config: {{values: {{size: "{{{{ .size }}}}", id: "{{{{ .steps.store.last_id }}}}", price: "{{{{ .price }}}}"}}}}}}
      - {{name: big, type: step.set, config: {{values: {{size: big}}}}}}
      - {{name: big-done, type: step.pipeline_output, config: {{values: {{size: "{{{{ .size }}}}", id: "{{{{ .steps.store.last_id }}}}", price: "{{{{ .price }}}}"}}}}}}
  slow:
    steps:
      - {{name: wait, type: step.delay, config: {{duration: 30s}}}}
"""


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[LocalService, Path, Path]]:
    db = tmp_path / "app.db"
    file = tmp_path / "orders.yaml"
    file.write_text(PIPELINE.format(db=db))
    svc = await LocalService.open([file], store=f"sqlite:///{tmp_path}/s.db")
    try:
        yield svc, db, file
    finally:
        await svc.close()


def rows(db: Path) -> int:
    return sqlite3.connect(db).execute("SELECT count(*) FROM orders").fetchone()[0]


async def test_exact_replay_reexecutes_and_links(env: tuple[LocalService, Path, Path]) -> None:
    svc, db, _ = env
    original = await svc.run("order", {"sku": "A-1", "qty": 2})
    replay = await svc.replay(original.execution_id)
    assert replay.status == "completed"
    assert rows(db) == 2  # really re-executed the write
    summary = await svc.get_execution(replay.execution_id)
    assert summary.replay_of == original.execution_id and summary.trigger_type == "replay"
    started = (await svc.events(replay.execution_id, types=["execution.started"]))[0]
    assert started.data["replay"] == {"mode": "exact"}
    assert started.data["trigger"]["payload"] == {"sku": "A-1", "qty": 2}
    diff = await svc.diff(original.execution_id, replay.execution_id)
    assert not diff.definition_changed
    # Only the generated row id differs: the first divergence is the write's output.
    assert diff.first_divergence is not None and diff.first_divergence.path == "store"


async def test_from_step_reuses_earlier_outputs_without_rerunning(env: tuple[LocalService, Path, Path]) -> None:
    svc, db, _ = env
    original = await svc.run("order", {"sku": "A-1", "qty": 2})
    assert rows(db) == 1
    options = ReplayOptions(mode="from_step", from_step="quote")
    plan = await svc.replay_plan(original.execution_id, options)
    assert [(s.step, s.action) for s in plan.steps][:3] == [
        ("store", "reuse"), ("quote", "run"), ("check", "run")]
    assert rows(db) == 1  # a plan runs nothing
    replay = await svc.replay(original.execution_id, options)
    assert replay.status == "completed"
    assert rows(db) == 1  # the write was NOT re-run
    assert replay.output == {"size": "small", "id": 1, "price": 20}
    timeline = await svc.timeline(replay.execution_id)
    store_run = next(s for s in timeline.steps if s.path == "store")
    assert "reused" in store_run.flags
    reused = [e for e in await svc.events(replay.execution_id) if e.data.get("reused")]
    assert [e.type for e in reused] == ["step.started", "step.completed"]
    first = next(e for e in await svc.events(original.execution_id)
                 if e.type == "step.completed" and e.data["path"] == "store")
    assert reused[1].data["output"] == first.data["output"] and first.data["output"]["last_id"] == 1


async def test_modified_replay_with_patch_takes_another_route(env: tuple[LocalService, Path, Path]) -> None:
    svc, _, _ = env
    original = await svc.run("order", {"sku": "A-1", "qty": 2})
    options = ReplayOptions(mode="modified", patch=[{"op": "replace", "path": "/qty", "value": 9}])
    plan = await svc.replay_plan(original.execution_id, options)
    assert plan.payload == {"sku": "A-1", "qty": 9}
    replay = await svc.replay(original.execution_id, options)
    assert replay.output["size"] == "big"
    diff = await svc.diff(original.execution_id, replay.execution_id)
    check = next(s for s in diff.steps if s.path == "check")
    assert (check.route_a, check.route_b) == ("small", "big")
    assert diff.trigger_changes[0].path == "/qty"
    started = (await svc.events(replay.execution_id, types=["execution.started"]))[0]
    assert started.data["replay"]["patch"] == options.patch


async def test_replay_with_mocks_and_recorded_mocks(env: tuple[LocalService, Path, Path]) -> None:
    svc, db, _ = env
    original = await svc.run("order", {"sku": "A-1", "qty": 2})
    options = ReplayOptions(mode="modified", use_recorded_mocks=["store"],
                            mocks={"quote": {"price": 1000}})
    plan = await svc.replay_plan(original.execution_id, options)
    assert {s.step: s.action for s in plan.steps}["store"] == "mock"
    replay = await svc.replay(original.execution_id, options)
    assert rows(db) == 1  # the recorded output answered the write
    assert replay.output == {"size": "big", "id": 1, "price": 1000}
    mocked = [e.data for e in await svc.events(replay.execution_id) if e.type == "step.mocked"]
    assert [m["step"] for m in mocked] == ["store", "quote"]


async def test_replay_the_original_definition_after_an_edit(env: tuple[LocalService, Path, Path]) -> None:
    svc, _, file = env
    original = await svc.run("order", {"sku": "A-1", "qty": 2})
    edited = file.read_text().replace("{{ .qty * 10 }}", "{{ .qty * 100 }}")
    await svc.put_definition(edited, str(file))
    exact = await svc.replay(original.execution_id)
    assert exact.output["price"] == 20  # the snapshot the original ran
    current = await svc.replay(original.execution_id, ReplayOptions(mode="modified",
                                                                     use_current_definition=True))
    assert current.output["price"] == 200
    diff = await svc.diff(original.execution_id, current.execution_id)
    assert diff.definition_changed
    assert any("qty * 100" in line for line in diff.definition_change)


async def test_replay_bad_input(env: tuple[LocalService, Path, Path]) -> None:
    svc, db, _ = env
    original = await svc.run("order", {"sku": "A-1", "qty": 2})
    with pytest.raises(NotFound):
        await svc.replay("nope")
    with pytest.raises(InvalidInput, match="does not apply"):
        await svc.replay(original.execution_id, ReplayOptions(
            mode="modified", patch=[{"op": "remove", "path": "/missing"}]))
    with pytest.raises(InvalidInput, match="no top-level step 'nope'"):
        await svc.replay(original.execution_id, ReplayOptions(mode="from_step", from_step="nope"))
    with pytest.raises(InvalidInput, match="never ran"):
        await svc.replay(original.execution_id, ReplayOptions(mode="from_step", from_step="big"))
    with pytest.raises(InvalidInput, match="use mode 'modified'"):
        await svc.replay(original.execution_id, ReplayOptions(
            patch=[{"op": "replace", "path": "/qty", "value": 1}]))
    slow = await svc.run("slow", {}, RunOptions(wait=False))
    with pytest.raises(Conflict, match="still running"):
        await svc.replay(slow.execution_id)
    await svc.cancel(slow.execution_id)
    assert rows(db) == 1
    page = await svc.list_executions()
    assert len([e for e in page.items if e.replay_of]) == 0  # nothing was started


async def test_step_mocks_and_capture_to_mock(env: tuple[LocalService, Path, Path]) -> None:
    svc, db, _ = env
    first = await svc.run("order", {"sku": "A-1", "qty": 2})
    mock = await svc.mock_from_execution(first.execution_id, "store")
    assert mock.mode == "recorded" and mock.output == {"affected_rows": 1, "last_id": 1}
    again = await svc.run("order", {"sku": "B-2", "qty": 3})
    assert rows(db) == 1 and again.output["id"] == 1
    assert (await svc.list_mocks("order"))[0].hit_count == 1
    unmocked = await svc.run("order", {"sku": "B-2", "qty": 3}, RunOptions(mocks=False))
    assert rows(db) == 2 and unmocked.output["id"] == 2

    await svc.set_mock("order", "quote", mode="error", error={"message": "pricing down"},
                       delay_ms=20)
    failed = await svc.run("order", {"sku": "C-3", "qty": 1})
    assert failed.status == "failed" and failed.error["message"] == "pricing down"
    with pytest.raises(InvalidInput, match="needs error"):
        await svc.set_mock("order", "quote", mode="error")
    with pytest.raises(InvalidInput, match="no step"):
        await svc.set_mock("order", "nope", output={})
    assert await svc.clear_mocks("order") == 2
    assert (await svc.run("order", {"sku": "D-4", "qty": 1})).status == "completed"


async def test_a_replay_of_a_replay_and_concurrent_replays(env: tuple[LocalService, Path, Path]) -> None:
    svc, _, _ = env
    original = await svc.run("order", {"sku": "A-1", "qty": 2})
    first = await svc.replay(original.execution_id, ReplayOptions(mode="from_step", from_step="quote"))
    second = await svc.replay(first.execution_id, ReplayOptions(mode="from_step", from_step="check"))
    assert second.status == "completed" and second.output["price"] == 20
    many = await asyncio.gather(*(svc.replay(original.execution_id, ReplayOptions(
        mode="from_step", from_step="quote")) for _ in range(10)))
    assert {r.status for r in many} == {"completed"}
