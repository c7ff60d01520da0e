"""The breakpoint debugger through the local service: pause, edit the context, step, resume."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.service.errors import Conflict, InvalidInput, NotFound
from engine.service.local import LocalService
from engine.service.models import PausedExecution, RunOptions
from tests.waiting import wait_for_condition

PIPELINES = """
pipelines:
  order:
    steps:
      - {name: price, type: step.set, config: {values: {total: "{{ .qty * 10 }}"}}}
      - name: each
        type: step.foreach
        config:
          collection: "{{ .items }}"
          steps:
            - {name: line, type: step.set, config: {values: {line: "{{ .item }}"}}}
      - {name: tax, type: step.set, config: {values: {gross: "{{ .total * 1.5 }}"}}}
      - {name: out, type: step.pipeline_output, config: {values: {gross: "{{ .gross }}", qty: "{{ .qty }}"}}}
  other:
    steps:
      - {name: only, type: step.set, config: {values: {x: 1}}}
"""


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[LocalService]:
    (tmp_path / "p.yaml").write_text(PIPELINES)
    svc = await LocalService.open([tmp_path / "p.yaml"], store=f"sqlite:///{tmp_path}/s.db")
    try:
        yield svc
    finally:
        await svc.close()


async def wait_paused(service: LocalService, execution_id: str) -> PausedExecution:
    async def found() -> PausedExecution | None:
        return next((p for p in await service.paused() if p.execution_id == execution_id), None)

    return await wait_for_condition(found, f"{execution_id} to pause")


async def test_pause_patch_step_over_twice_and_continue(service: LocalService) -> None:
    bp = await service.set_breakpoint("order", "tax")
    started = await service.run("order", {"qty": 2, "items": ["a"]}, RunOptions(wait=False))
    paused = await wait_paused(service, started.execution_id)
    assert (paused.step, paused.reason, paused.breakpoint_id) == ("tax", "breakpoint", bp.id)
    assert paused.context["current"]["total"] == 20
    assert (await service.get_execution(started.execution_id)).status == "paused"

    # Edit and continue: the next steps see the patched context.
    await service.resume(started.execution_id, "step_over",
                         [{"op": "replace", "path": "/current/total", "value": 100}])
    paused = await wait_paused(service, started.execution_id)
    assert (paused.step, paused.reason) == ("out", "step_over")
    assert paused.context["current"]["gross"] == 150
    await service.resume(started.execution_id, "step_over")
    # step_over after the last step: nothing more to pause at, the run completes.
    assert await _finished(service, started.execution_id) == "completed"
    summary = await service.get_execution(started.execution_id)
    assert summary.output == {"gross": 150.0, "qty": 2}
    events = await service.events(started.execution_id)
    debug = [(e.type, e.data.get("step"), e.data.get("action") or e.data.get("reason"))
             for e in events if e.type.startswith("debug.")]
    assert debug == [
        ("debug.paused", "tax", "breakpoint"),
        ("debug.context_patched", "tax", None),
        ("debug.resumed", "tax", "step_over"),
        ("debug.paused", "out", "step_over"),
        ("debug.resumed", "out", "step_over"),
    ]
    patched = next(e for e in events if e.type == "debug.context_patched")
    assert patched.data["patch"] == [{"op": "replace", "path": "/current/total", "value": 100}]
    assert (await service.list_breakpoints())[0].hit_count == 1


async def test_step_over_descends_into_composite_steps(service: LocalService) -> None:
    await service.set_breakpoint("order", "each")
    started = await service.run("order", {"qty": 1, "items": ["x", "y"]}, RunOptions(wait=False))
    paused = await wait_paused(service, started.execution_id)
    assert paused.path == "each"
    await service.resume(started.execution_id, "step_over")
    paused = await wait_paused(service, started.execution_id)
    assert paused.path == "each/line" and paused.context["current"]["total"] == 10
    await service.resume(started.execution_id, "continue")
    result = await _finished(service, started.execution_id)
    assert result == "completed"


async def test_condition_skip_and_abort(service: LocalService) -> None:
    await service.set_breakpoint("order", "price", condition=".qty > 5")
    small = await service.run("order", {"qty": 1, "items": []})
    assert small.status == "completed"  # condition false: no pause
    big = await service.run("order", {"qty": 9, "items": []}, RunOptions(wait=False))
    await wait_paused(service, big.execution_id)
    await service.resume(big.execution_id, "skip")
    assert await _finished(service, big.execution_id) == "failed"  # total missing → tax fails
    skipped = [e.data for e in await service.events(big.execution_id) if e.type == "step.skipped"]
    assert skipped == [{"step": "price", "path": "price", "reason": "debugger"}]

    third = await service.run("order", {"qty": 9, "items": []}, RunOptions(wait=False))
    await wait_paused(service, third.execution_id)
    await service.resume(third.execution_id, "abort")
    assert await _finished(service, third.execution_id) == "cancelled"


async def test_breakpoints_off_for_a_run_and_disabled(service: LocalService) -> None:
    bp = await service.set_breakpoint("order", "price")
    ran = await service.run("order", {"qty": 1, "items": []}, RunOptions(breakpoints=False))
    assert ran.status == "completed"
    await service.enable_breakpoint(bp.id, False)
    assert (await service.run("order", {"qty": 1, "items": []})).status == "completed"
    await service.remove_breakpoint(bp.id)
    assert await service.list_breakpoints() == []


async def test_pause_new_runs_at_the_first_step(service: LocalService) -> None:
    await service.pause_new_runs("other")
    started = await service.run("other", {}, RunOptions(wait=False))
    paused = await wait_paused(service, started.execution_id)
    assert (paused.step, paused.reason) == ("only", "pause")
    # Other pipelines are not held up while one execution waits.
    assert (await service.run("order", {"qty": 1, "items": []})).status == "completed"
    await service.resume(started.execution_id)
    assert await _finished(service, started.execution_id) == "completed"
    await service.pause_new_runs("other", False)
    assert (await service.run("other", {})).status == "completed"


async def test_bad_input_is_typed_and_changes_nothing(service: LocalService) -> None:
    with pytest.raises(InvalidInput, match="does not compile"):
        await service.set_breakpoint("order", "tax", condition=".qty >")
    with pytest.raises(InvalidInput, match="no step 'nope'"):
        await service.set_breakpoint("order", "nope")
    with pytest.raises(NotFound, match="no pipeline named 'nope'"):
        await service.set_breakpoint("nope", "tax")
    with pytest.raises(NotFound):
        await service.remove_breakpoint("missing")
    with pytest.raises(NotFound):
        await service.resume("missing")
    done = await service.run("other", {})
    with pytest.raises(Conflict, match="is not paused"):
        await service.resume(done.execution_id)

    await service.set_breakpoint("order", "tax")
    started = await service.run("order", {"qty": 2, "items": []}, RunOptions(wait=False))
    await wait_paused(service, started.execution_id)
    with pytest.raises(InvalidInput, match="does not apply"):
        await service.resume(started.execution_id, "continue",
                             [{"op": "replace", "path": "/current/nope/deeper", "value": 1}])
    with pytest.raises(InvalidInput, match="immutable"):
        await service.resume(started.execution_id, "continue",
                             [{"op": "replace", "path": "/trigger/qty", "value": 1}])
    # Still paused, context untouched; then continue normally.
    paused = await wait_paused(service, started.execution_id)
    assert paused.context["current"]["total"] == 20
    await service.resume(started.execution_id)
    assert await _finished(service, started.execution_id) == "completed"
    events = await service.events(started.execution_id)
    assert not [e for e in events if e.type == "debug.context_patched"]


async def test_breakpoints_survive_a_restart(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(PIPELINES)
    url = f"sqlite:///{tmp_path}/s.db"
    async with await LocalService.open([tmp_path / "p.yaml"], store=url) as first:
        bp = await first.set_breakpoint("order", "tax", ".qty > 1")
    async with await LocalService.open([tmp_path / "p.yaml"], store=url) as second:
        assert [b.id for b in await second.list_breakpoints()] == [bp.id]


async def test_cancel_a_paused_execution(service: LocalService) -> None:
    await service.set_breakpoint("order", "price")
    started = await service.run("order", {"qty": 1, "items": []}, RunOptions(wait=False))
    await wait_paused(service, started.execution_id)
    assert await service.cancel(started.execution_id)
    assert await _finished(service, started.execution_id) == "cancelled"
    assert await service.paused() == []


async def _finished(service: LocalService, execution_id: str) -> str:
    async def ended() -> str | None:
        status = (await service.get_execution(execution_id)).status
        return None if status in ("running", "paused") else status

    return await wait_for_condition(ended, f"{execution_id} to finish")
