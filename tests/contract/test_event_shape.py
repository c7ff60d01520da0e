"""Contract: a step's input rides on its ``step.started`` and its output on its
``step.completed``; an execution recorded in the shape of 0.1.0 and earlier (separate
``step.input`` / ``step.output`` events, written straight into the store) reads back the
same through the timeline, the diff, replays and capture-to-mock."""

from __future__ import annotations

from typing import Any

from engine.service.models import ExecutionDiff, ReplayOptions
from engine.service.protocol import StudioService

try:
    from tests.contract.legacy_store import rewrite_as_legacy
except ImportError:
    from legacy_store import rewrite_as_legacy  # type: ignore[no-redef]

STEPS = ("price", "tax", "out")


async def test_a_new_run_records_two_events_a_step(service: StudioService) -> None:
    ran = await service.run("order", {"qty": 2})
    events = await service.events(ran.execution_id)
    assert [e.type for e in events] == ["execution.started",
                                        *["step.started", "step.completed"] * 3,
                                        "execution.completed"]
    started = {e.data["path"]: e.data for e in events if e.type == "step.started"}
    completed = {e.data["path"]: e.data for e in events if e.type == "step.completed"}
    assert started["price"]["input"] == {"values": {"total": 20}}
    assert completed["price"]["output"] == {"total": 20}
    assert completed["price"]["started_seq"] == events[1].seq == 2
    assert completed["out"]["output"] == ran.output == {"gross": 30.0, "qty": 2}


def _steps(diff: ExecutionDiff) -> list[tuple[Any, ...]]:
    """What a diff says of each step, without the durations."""
    return [(s.path, s.status_a, s.status_b, s.same,
             [(c.path, c.value_a, c.value_b) for c in s.input_changes],
             [(c.path, c.value_a, c.value_b) for c in s.output_changes]) for s in diff.steps]


async def test_an_execution_in_the_old_shape_reads_back_the_same(
        service: StudioService, store_for_variant: str) -> None:
    new = (await service.run("order", {"qty": 2})).execution_id
    old = (await service.run("order", {"qty": 2})).execution_id
    written = rewrite_as_legacy(store_for_variant, old)
    assert [kind for _seq, kind, _data, _ts in written] == [
        "execution.started",
        *["step.started", "step.input", "step.output", "step.completed"] * 3,
        "execution.completed"]
    events = await service.events(old)
    assert [e.type for e in events] == [kind for _seq, kind, _data, _ts in written]
    assert (await service.get_execution(old)).event_count == 14

    # the timeline: the same runs, keyed by the seqs of their (old) starts
    runs_new, runs_old = (await service.timeline(new)).steps, (await service.timeline(old)).steps
    assert [(r.path, r.status, r.output_size, r.flags) for r in runs_old] == [
        (r.path, r.status, r.output_size, r.flags) for r in runs_new]
    assert [r.seq for r in runs_old] == [2, 6, 10]
    assert [e.seq for e in events if e.type == "step.started"] == [2, 6, 10]

    # the diff: nothing differs between the two forms of one run, and against a third run
    # the old form shows the same input and output changes as the new
    same = await service.diff(new, old)
    assert same.summary == {"same": 3, "changed": 0, "only_a": 0, "only_b": 0}
    assert all(not s.input_changes and not s.output_changes for s in same.steps)
    other = (await service.run("order", {"qty": 4})).execution_id
    against_old, against_new = await service.diff(old, other), await service.diff(new, other)
    assert _steps(against_old) == _steps(against_new)
    price = against_old.steps[0]
    assert [(c.path, c.value_a, c.value_b) for c in price.input_changes] == [
        ("/values/total", 20, 40)]
    assert against_old.first_divergence is not None
    assert against_old.first_divergence.path == "price"

    # replay from a step reuses the old form's recorded outputs
    from_tax = ReplayOptions(mode="from_step", from_step="tax")
    plan = await service.replay_plan(old, from_tax)
    assert [(s.path, s.action) for s in plan.steps] == [("price", "reuse"), ("tax", "run"),
                                                        ("out", "run")]
    replayed = await service.replay(old, from_tax)
    assert replayed.status == "completed" and replayed.output == {"gross": 30.0, "qty": 2}
    reused = [e for e in await service.events(replayed.execution_id) if e.data.get("reused")]
    assert [e.type for e in reused] == ["step.started", "step.completed"]
    assert reused[1].data["output"] == {"total": 20}
    mocked = await service.replay(old, ReplayOptions(mode="modified", use_recorded_mocks=["tax"]))
    assert mocked.output == {"gross": 30.0, "qty": 2}

    # capture-to-mock takes the last recorded output of the step
    mock = await service.mock_from_execution(old, "tax")
    assert (mock.step, mock.mode, mock.output) == ("tax", "recorded", {"gross": 30.0})
    await service.remove_mock(mock.id)
