"""Replay (events-and-store.md §4): re-execute a recorded execution exactly or modified.

A replay is a new execution linked by ``replay_of``; the original is never touched. Everything
it needs comes from the record: the trigger payload, the definition snapshot and the outputs
of the steps a ``from_step`` replay reuses.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jsonpatch

from engine.config.model import PipelineDef
from engine.executor import MockAnswer, Reused, RunControls
from engine.service.errors import Conflict, InvalidInput, NotFound
from engine.service.models import (
    OUTPUT_EVENTS,
    ReplayOptions,
    ReplayPlan,
    ReplayPlanStep,
    carries_output,
)
from engine.store.records import ExecutionRecord
from engine.store.store import Store

ACTIVE = ("running", "paused")


@dataclass
class PreparedReplay:
    """Everything a replay needs, worked out without running anything."""

    original: ExecutionRecord
    pipeline: PipelineDef
    definition_hash: str
    payload: Any
    controls: RunControls
    plan: ReplayPlan


def step_outputs(store: Store, execution_id: str) -> Iterator[dict[str, Any]]:
    """The data of every event recording a step's output, in order, read in pages: a
    ``step.completed`` with ``output``, or a ``step.output`` in stores of 0.1.0 and earlier
    (whose ``step.completed`` carries none, so nothing is counted twice)."""
    after = 0
    while True:
        page = store.events(execution_id, after_seq=after, types=list(OUTPUT_EVENTS), limit=1000)
        for event in page:
            if carries_output(event.type, event.data):
                yield event.data
        if len(page) < 1000:
            return
        after = page[-1].seq


def recorded_outputs(store: Store, execution_id: str) -> dict[str, Any]:
    """The last recorded output of every step path of an execution."""
    return {str(data.get("path") or data.get("step")): data.get("output")
            for data in step_outputs(store, execution_id)}


def prepare_replay(store: Store, original: ExecutionRecord | None, execution_id: str,
                   options: ReplayOptions, pipeline: PipelineDef, definition_hash: str,
                   mocked_steps: set[str]) -> PreparedReplay:
    """Validate ``options`` against the record and build the plan and the run controls.

    ``pipeline`` is the definition the replay will run (the original snapshot or the current
    file); ``mocked_steps`` are the paths the service's enabled mocks would answer.
    """
    if original is None:
        raise NotFound(f"no execution {execution_id!r} to replay")
    if original.status in ACTIVE:
        raise Conflict(f"execution {execution_id!r} is still {original.status}: wait for it to "
                       "finish (or cancel it) before replaying")
    payload = copy.deepcopy(original.trigger_payload)
    if options.mode == "modified":
        if options.payload is not None:
            payload = options.payload
        elif options.patch:
            try:
                payload = jsonpatch.apply_patch(payload, options.patch)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError) as exc:
                raise InvalidInput(f"patch does not apply to the trigger payload: {exc}",
                                   details={"patch": options.patch}) from None
        elif not (options.use_current_definition or options.mocks or options.use_recorded_mocks):
            raise InvalidInput("a modified replay needs a patch, a payload, mocks or "
                               "use_current_definition")
    elif options.patch or options.payload is not None:
        raise InvalidInput(f"mode {options.mode!r} replays the original payload: use mode "
                           "'modified' to patch or replace it")

    names = [s.name for s in pipeline.steps]
    reused: list[Reused] = []
    outputs: dict[str, Any] = {}
    if options.mode == "from_step" or options.use_recorded_mocks:
        outputs = recorded_outputs(store, original.id)
    if options.mode == "from_step":
        if not options.from_step:
            raise InvalidInput("mode 'from_step' needs from_step: the name of a top-level step")
        if options.from_step not in names:
            raise InvalidInput(f"no top-level step {options.from_step!r} in pipeline "
                               f"{pipeline.name!r} (steps: {', '.join(names)})")
        runs = [r for r in store.timeline(original.id) if "/" not in r.path]
        ran = {r.path for r in runs}
        if options.from_step not in ran:
            raise InvalidInput(f"step {options.from_step!r} never ran in execution "
                               f"{execution_id!r}: nothing to resume at")
        first = next(r.seq for r in runs if r.path == options.from_step)
        seen: set[str] = set()
        for r in runs:
            if r.seq >= first or r.status != "completed" or r.path in seen:
                continue
            if r.path not in outputs:
                raise InvalidInput(f"the output of step {r.path!r} was not recorded "
                                   f"(record: metadata?): replay from an earlier step")
            seen.add(r.path)
            step = pipeline.step(r.path)
            reused.append(Reused(r.path, r.path, step.type if step else r.type, outputs[r.path]))

    replay_mocks = {path: MockAnswer(id="replay", output=value) for path, value in options.mocks.items()}
    for path in options.use_recorded_mocks:
        if path not in outputs:
            raise InvalidInput(f"no recorded output of step {path!r} in execution {execution_id!r}")
        replay_mocks[path] = MockAnswer(id="recorded", output=outputs[path])

    reused_paths = {r.path for r in reused}
    plan_steps: list[ReplayPlanStep] = []
    for step in pipeline.steps:
        if step.name in reused_paths:
            plan_steps.append(ReplayPlanStep(step=step.name, path=step.name, action="reuse",
                                             reason="recorded output of the original"))
        elif step.name in replay_mocks:
            plan_steps.append(ReplayPlanStep(step=step.name, path=step.name, action="mock",
                                             reason="mocked for this replay"))
        elif step.name in mocked_steps:
            plan_steps.append(ReplayPlanStep(step=step.name, path=step.name, action="mock",
                                             reason="an enabled step mock"))
        elif (options.mode == "from_step"
              and names.index(step.name) < names.index(options.from_step or "")):
            plan_steps.append(ReplayPlanStep(step=step.name, path=step.name, action="skip",
                                             reason="before from_step and not completed in the "
                                                    "original: contributes nothing"))
        else:
            plan_steps.append(ReplayPlanStep(step=step.name, path=step.name, action="run"))
    plan = ReplayPlan(execution_id=original.id, pipeline=pipeline.name, mode=options.mode,
                      definition_hash=definition_hash,
                      definition_changed=definition_hash != original.definition_hash,
                      payload=payload, steps=plan_steps)
    replay_info: dict[str, Any] = {"mode": options.mode}
    if options.from_step:
        replay_info["from_step"] = options.from_step
    if options.patch:
        replay_info["patch"] = options.patch
    if options.mode == "modified" and options.payload is not None:
        replay_info["payload_replaced"] = True
    if plan.definition_changed:
        replay_info["definition"] = "current"
    controls = RunControls(replay_mocks=replay_mocks, reused=reused, breakpoints=options.breakpoints,
                           start_at=options.from_step if options.mode == "from_step" else None,
                           replay=replay_info)
    return PreparedReplay(original, pipeline, definition_hash, payload, controls, plan)
