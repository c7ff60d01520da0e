"""Contract: replay plans, replays and the diff of two executions."""

from __future__ import annotations

import pytest

from engine.service.errors import Conflict, InvalidInput, NotFound
from engine.service.models import ReplayOptions, RunOptions
from engine.service.protocol import StudioService

try:
    from tests.contract.contract_helpers import wait_finished, wait_paused
except ImportError:
    from contract_helpers import wait_finished, wait_paused  # type: ignore[no-redef]


async def test_plan_replay_and_diff(service: StudioService) -> None:
    original = await service.run("order", {"qty": 2})
    plan = await service.replay_plan(original.execution_id)
    assert (plan.execution_id, plan.pipeline, plan.mode) == (original.execution_id, "order", "exact")
    assert plan.definition_changed is False and plan.payload == {"qty": 2}
    assert [(s.path, s.action) for s in plan.steps] == [("price", "run"), ("tax", "run"),
                                                        ("out", "run")]

    exact = await service.replay(original.execution_id)
    assert exact.status == "completed" and exact.output == original.output
    summary = await service.get_execution(exact.execution_id)
    assert summary.replay_of == original.execution_id and summary.trigger_type == "replay"

    modified = ReplayOptions(mode="modified", patch=[{"op": "replace", "path": "/qty",
                                                      "value": 4}])
    assert (await service.replay_plan(original.execution_id, modified)).payload == {"qty": 4}
    changed = await service.replay(original.execution_id, modified)
    assert changed.output == {"gross": 60.0, "qty": 4}

    from_tax = ReplayOptions(mode="from_step", from_step="tax")
    plan = await service.replay_plan(original.execution_id, from_tax)
    assert [(s.path, s.action) for s in plan.steps] == [("price", "reuse"), ("tax", "run"),
                                                        ("out", "run")]
    assert (await service.replay(original.execution_id, from_tax)).output == original.output

    same = await service.diff(original.execution_id, exact.execution_id)
    assert same.first_divergence is None and same.output_changes == []
    assert same.summary["changed"] == 0
    diff = await service.diff(original.execution_id, changed.execution_id)
    assert (diff.a, diff.b, diff.definition_changed) == (original.execution_id,
                                                         changed.execution_id, False)
    assert [(c.path, c.value_a, c.value_b) for c in diff.trigger_changes] == [("/qty", 2, 4)]
    assert diff.first_divergence is not None and diff.first_divergence.path == "price"
    assert {c.path for c in diff.output_changes} == {"/gross", "/qty"}


async def test_replay_without_waiting(service: StudioService) -> None:
    original = await service.run("greet", {"name": "Ada"})
    started = await service.replay(original.execution_id, ReplayOptions(wait=False))
    assert started.status == "running"
    finished = await wait_finished(service, started.execution_id)
    assert finished.output == {"greeting": "Hello Ada"}


async def test_replay_and_diff_errors(service: StudioService) -> None:
    missing = "0" * 32
    with pytest.raises(NotFound):
        await service.replay_plan(missing)
    with pytest.raises(NotFound):
        await service.replay(missing)
    original = await service.run("order", {"qty": 2})
    with pytest.raises(NotFound):
        await service.diff(original.execution_id, missing)
    with pytest.raises(InvalidInput, match="no top-level step 'nope'"):
        await service.replay_plan(original.execution_id,
                                  ReplayOptions(mode="from_step", from_step="nope"))
    with pytest.raises(InvalidInput, match="patch does not apply"):
        await service.replay(original.execution_id, ReplayOptions(
            mode="modified", patch=[{"op": "remove", "path": "/absent"}]))

    await service.set_breakpoint("order", "tax")
    held = await service.run("order", {"qty": 1}, RunOptions(wait=False))
    await wait_paused(service, held.execution_id)
    with pytest.raises(Conflict, match="still"):
        await service.replay(held.execution_id)
    # A replay may run past the breakpoints.
    unheld = await service.replay(original.execution_id, ReplayOptions(breakpoints=False))
    assert unheld.status == "completed" and unheld.output == original.output
    assert [p.execution_id for p in await service.paused()] == [held.execution_id]
    await service.resume(held.execution_id, "abort")
