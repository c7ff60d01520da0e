"""Contract: breakpoints, pausing, context patches, step over and pausing new runs."""

from __future__ import annotations

import pytest

from engine.service.errors import Conflict, InvalidInput, NotFound
from engine.service.models import RunOptions
from engine.service.protocol import StudioService

try:
    from tests.contract.contract_helpers import wait_finished, wait_paused
except ImportError:
    from contract_helpers import wait_finished, wait_paused  # type: ignore[no-redef]


async def test_breakpoints_set_list_enable_remove(service: StudioService) -> None:
    bp = await service.set_breakpoint("order", "tax", condition=".qty > 1")
    assert (bp.pipeline, bp.step, bp.condition, bp.enabled, bp.hit_count) == (
        "order", "tax", ".qty > 1", True, 0)
    assert await service.list_breakpoints() == [bp]
    disabled = await service.enable_breakpoint(bp.id, False)
    assert disabled.enabled is False and (await service.list_breakpoints())[0].enabled is False
    assert (await service.run("order", {"qty": 5})).status == "completed"  # disabled: no pause
    assert (await service.enable_breakpoint(bp.id)).enabled is True
    assert (await service.run("order", {"qty": 1})).status == "completed"  # condition false
    await service.remove_breakpoint(bp.id)
    assert await service.list_breakpoints() == []


async def test_pause_patch_step_over_and_resume(service: StudioService) -> None:
    bp = await service.set_breakpoint("order", "tax")
    started = await service.run("order", {"qty": 2}, RunOptions(wait=False))
    paused = await wait_paused(service, started.execution_id)
    assert (paused.pipeline, paused.step, paused.path, paused.reason, paused.breakpoint_id) == (
        "order", "tax", "tax", "breakpoint", bp.id)
    assert paused.context["current"]["total"] == 20
    assert (await service.get_execution(started.execution_id)).status == "paused"

    await service.resume(started.execution_id, "step_over",
                         [{"op": "replace", "path": "/current/total", "value": 100}])
    paused = await wait_paused(service, started.execution_id)
    assert (paused.step, paused.reason) == ("out", "step_over")
    assert paused.context["current"]["gross"] == 150
    await service.resume(started.execution_id, "continue")
    finished = await wait_finished(service, started.execution_id)
    assert finished.status == "completed" and finished.output == {"gross": 150.0, "qty": 2}
    assert await service.paused() == []
    assert (await service.list_breakpoints())[0].hit_count == 1

    # A run may ignore breakpoints altogether.
    assert (await service.run("order", {"qty": 2}, RunOptions(breakpoints=False))).status == \
        "completed"


async def test_skip_and_abort(service: StudioService) -> None:
    await service.set_breakpoint("order", "price")
    skipped = await service.run("order", {"qty": 3}, RunOptions(wait=False))
    await wait_paused(service, skipped.execution_id)
    await service.resume(skipped.execution_id, "skip")
    assert (await wait_finished(service, skipped.execution_id)).status == "failed"  # no total
    aborted = await service.run("order", {"qty": 3}, RunOptions(wait=False))
    await wait_paused(service, aborted.execution_id)
    await service.resume(aborted.execution_id, "abort")
    assert (await wait_finished(service, aborted.execution_id)).status == "cancelled"


async def test_pause_new_runs(service: StudioService) -> None:
    await service.pause_new_runs("greet")
    started = await service.run("greet", {"name": "Ada"}, RunOptions(wait=False))
    paused = await wait_paused(service, started.execution_id)
    assert (paused.step, paused.reason) == ("hello", "pause")
    assert (await service.run("order", {"qty": 1})).status == "completed"  # others unaffected
    await service.resume(started.execution_id)
    assert (await wait_finished(service, started.execution_id)).status == "completed"
    await service.pause_new_runs("greet", False)
    assert (await service.run("greet", {"name": "Bob"})).status == "completed"


async def test_debugger_errors(service: StudioService) -> None:
    with pytest.raises(InvalidInput, match="does not compile"):
        await service.set_breakpoint("order", "tax", condition=".qty >")
    with pytest.raises(InvalidInput, match="no step 'nope'"):
        await service.set_breakpoint("order", "nope")
    with pytest.raises(NotFound, match="no pipeline named 'nope'"):
        await service.set_breakpoint("nope", "tax")
    with pytest.raises(NotFound):
        await service.remove_breakpoint("missing")
    with pytest.raises(NotFound):
        await service.enable_breakpoint("missing", False)
    with pytest.raises(NotFound):
        await service.pause_new_runs("nope")
    with pytest.raises(NotFound):
        await service.resume("0" * 32)
    done = await service.run("greet", {"name": "Ada"})
    with pytest.raises(Conflict, match="is not paused"):
        await service.resume(done.execution_id)

    await service.set_breakpoint("order", "tax")
    started = await service.run("order", {"qty": 2}, RunOptions(wait=False))
    await wait_paused(service, started.execution_id)
    with pytest.raises(InvalidInput, match="immutable"):
        await service.resume(started.execution_id, "continue",
                             [{"op": "replace", "path": "/trigger/qty", "value": 1}])
    # Refused patch: still paused, context untouched.
    assert (await wait_paused(service, started.execution_id)).context["current"]["total"] == 20
    await service.resume(started.execution_id)
    assert (await wait_finished(service, started.execution_id)).status == "completed"
