"""Runs one execution of a pipeline (pipeline-format.md §2) and records it as events.

One ``ExecutionRun`` per execution. Steps run in order inside a ``Scope``; composite steps
run their sub-steps through ``StepCtx.run_substeps`` with the same semantics (if/skip_if,
timeout, retry, on_error, compensation, idempotency), recorded under their parent's path.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from engine.config.model import PipelineDef, StepDef
from engine.context import Scope
from engine.errors import ExpressionError, StepError
from engine.expressions import Compiled, compile_condition, compile_value, evaluate, truthy
from engine.idempotency import IdempotencyKeys
from engine.redaction import redact, redact_trigger
from engine.scrub import Scrubber
from engine.service.models import EventType
from engine.steps.base import StepResult, StepType, SubRun
from engine.store.codec import dumps
from engine.store.recorder import ExecutionRefused, Recorder
from engine.store.records import EventRecord, ExecutionRecord, StepRunRecord
from engine.tenancy import current_tenant

STRATEGIES = ("stop", "continue", "compensate")


@dataclass(slots=True)
class Prepared:
    """A step definition compiled once per engine: templates parsed, type looked up."""

    type: StepType
    config: Compiled  # the config without raw and sub-step keys
    raw: dict[str, Any]  # raw and sub-step keys, handed over unresolved
    if_: Compiled | None
    skip_if: Compiled | None
    idempotency_key: Compiled | None


def prepare(step: StepDef, types: Mapping[str, StepType]) -> None:
    """Compile ``step`` (and its sub-steps and compensation) into ``step.compiled``."""
    step_type = types.get(step.type)
    if step_type is None:
        raise StepError(f"unknown step type {step.type!r} in step {step.name!r}", type="config")
    keep = step_type.raw_keys | frozenset(step_type.substep_keys)
    resolved = {k: v for k, v in step.config.items() if k not in keep}
    raw = {k: v for k, v in step.config.items() if k in keep}
    step.compiled = Prepared(
        type=step_type,
        config=compile_value(resolved),
        raw=raw,
        if_=compile_condition(step.if_) if step.if_ else None,
        skip_if=compile_condition(step.skip_if) if step.skip_if else None,
        idempotency_key=compile_value(step.idempotency_key) if step.idempotency_key else None,
    )
    for children in step.substeps.values():
        for child in children:
            prepare(child, types)
    if step.compensate is not None:
        prepare(step.compensate, types)


@dataclass(slots=True)
class MockAnswer:
    """What a mock makes a step return instead of running it."""

    id: str
    output: Any = None
    error: dict[str, Any] | None = None  # {message, type?, status?}: fail instead
    delay_ms: float = 0.0


@dataclass(slots=True)
class Reused:
    """A step output taken from an earlier execution's record (replay ``from_step``)."""

    name: str
    path: str
    type: str
    output: Any


class StepHooks(Protocol):
    """The debugger and the mock book, consulted by the executor around every step."""

    async def before_step(self, run: ExecutionRun, step: StepDef, path: str,
                          scope: Scope) -> str | None:
        """None to run the step, "skip" to skip it; may pause; raises Aborted to stop."""

    def mock_for(self, run: ExecutionRun, step: StepDef, path: str) -> MockAnswer | None:
        """The enabled mock answering this step, if any."""


class RunOwner(Protocol):
    """What a run needs of the engine that started it (``engine.api.Engine`` is one): declared
    here so the executor does not import the API module that imports it."""

    recorder: Recorder | None
    hooks: StepHooks | None
    env: Mapping[str, Any]
    scrubber: Scrubber
    idempotency: IdempotencyKeys
    modules: dict[str, Any]
    shared_state: dict[tuple[str, str, str], dict[str, Any]]

    async def call_child(self, parent: ExecutionRun, pipeline: str, payload: Any, *,
                         wait: bool = True) -> dict[str, Any]: ...

    def send_to_dlq(self, run: ExecutionRun, step: str | None, payload: Any, error: str,
                    error_type: str) -> str: ...

    def sink(self, name: str, step: str = "") -> Any: ...


class Aborted(Exception):
    """The debugger's ``abort``: the execution ends cancelled."""


@dataclass
class RunControls:
    """Per-execution switches set by the service (run options, replays)."""

    mocks: bool = True
    breakpoints: bool = True
    replay_mocks: dict[str, MockAnswer] = field(default_factory=dict)  # by step path
    reused: list[Reused] = field(default_factory=list)
    start_at: str | None = None  # top-level step to start at (replay from_step)
    replay: dict[str, Any] | None = None  # {mode, from_step, patch} for execution.started
    origin: dict[str, Any] | None = None  # e.g. {dlq_entry} or {backfill}: why this run exists
    record: str | None = None  # overrides the pipeline's ``record`` level


class Failure(Exception):
    """A step failed and its strategy ends the execution (``stop`` or ``compensate``)."""

    def __init__(self, error: StepError, step: str, strategy: str):
        super().__init__(error.message)
        self.error = error
        self.step = step
        self.strategy = strategy


@dataclass(slots=True)
class Outcome:
    output: Any = None
    stop: bool = False
    jump: str | None = None
    response: dict[str, Any] | None = None
    skipped: bool = False
    failed: str | None = None  # message, when the step failed under on_error: continue


def _as_step_error(exc: BaseException, step: StepDef) -> StepError:
    if isinstance(exc, StepError):
        return exc
    if isinstance(exc, ExpressionError):
        return StepError(str(exc), type="expression")
    if isinstance(exc, TimeoutError):
        after = f" after {step.timeout:g}s" if step.timeout else ""
        return StepError(f"step {step.name!r} timed out{after}", type="timeout")
    # A bug in a step type: still an error a user can read, not a traceback.
    return StepError(f"{type(exc).__name__}: {exc}", type="internal")


def _size(value: Any) -> int:
    """Size of the output as the store encodes it (shown on the timeline)."""
    return len(dumps(value))


class ExecutionRun:
    """The state of one running execution."""

    def __init__(self, engine: RunOwner, pipeline: PipelineDef, payload: Any, *, execution_id: str,
                 parent_id: str | None = None, replay_of: str | None = None,
                 trigger_type: str | None = None, definition_hash: str = "",
                 depth: int = 0, controls: RunControls | None = None):
        self.engine = engine
        self.pipeline = pipeline
        self.payload = payload
        self.depth = depth
        self.recorder = engine.recorder
        self.controls = controls or RunControls()
        self.hooks: StepHooks | None = engine.hooks
        self.level = self.controls.record or pipeline.record
        self.step_over = False  # the debugger's step_over: pause before the next step
        self.first_step = True  # "pause new runs" pauses before the very first step
        self.seq = 0
        self.jumps = 0
        self.cancel_requested = False
        self.compensations: list[tuple[StepDef, str, Scope, Any]] = []
        now = time.time()
        self.record = ExecutionRecord(
            id=execution_id, pipeline=pipeline.name, status="running",
            trigger_type=trigger_type or pipeline.trigger.type,
            trigger_payload=redact_trigger(payload, self.level), started_at=now,
            definition_hash=definition_hash, parent_id=parent_id, replay_of=replay_of,
            tenant=current_tenant.get(),  # children and retries run in the caller's context
        )
        self.response: dict[str, Any] | None = None
        self.output: Any = None
        meta = {
            "execution_id": execution_id, "pipeline": pipeline.name,
            "started_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
            "attempt": 1, "trigger_type": self.record.trigger_type,
            "parent_id": parent_id, "replay_of": replay_of,
        }
        self.scope = Scope.root(payload, meta, engine.env)

    # ------------------------------------------------------------------ recording

    def emit(self, type: str, data: dict[str, Any]) -> int:
        """Record an event: an EventType, or a plugin step type's own (StepCtx.event)."""
        if self.recorder is None:
            return 0
        self.seq += 1
        self.record.event_count = self.seq
        self.recorder.event(EventRecord(self.record.id, self.seq, type, data, time.time()))
        return self.seq

    def scrubbed(self, error: StepError) -> StepError:
        """``error`` as it may be recorded and answered: no value ``${VAR}`` substituted
        into the definition, no password of a URL (engine.scrub)."""
        scrub = self.engine.scrubber
        message, details = scrub.text(error.message), scrub.value(error.details)
        if message == error.message and details == error.details:
            return error
        return StepError(message, type=error.type, status=error.status, details=details)

    def _save_run(self, run: StepRunRecord | None) -> None:
        if run is not None and self.recorder is not None:
            self.recorder.step_run(run)

    # ------------------------------------------------------------------ the whole execution

    async def execute(self) -> None:
        pipeline = self.pipeline
        started: dict[str, Any] = {
            "pipeline": pipeline.name,
            "trigger": {"type": self.record.trigger_type, "payload": self.record.trigger_payload},
            "definition_hash": self.record.definition_hash,
        }
        if self.record.parent_id:
            started["parent_id"] = self.record.parent_id
        if self.record.replay_of:
            started["replay_of"] = self.record.replay_of
        if self.controls.replay is not None:
            started["replay"] = self.controls.replay
        if self.controls.origin is not None:
            started["origin"] = self.controls.origin
        if self.recorder is not None:
            self.recorder.execution(self.record)
        self.emit(EventType.EXECUTION_STARTED, started)
        output: Any = None
        start = self._reuse_recorded()
        try:
            if pipeline.timeout:
                async with asyncio.timeout(pipeline.timeout):
                    outcome = await self.run_sequence(pipeline.steps, self.scope, "", None, start)
            else:
                outcome = await self.run_sequence(pipeline.steps, self.scope, "", None, start)
            self.response = outcome.response
            output = outcome.output if outcome.stop else self.scope.current
            self._finish("completed", output=output)
        except Failure as failure:
            error = {**failure.error.to_dict(), "step": failure.step}
            if failure.strategy == "compensate":
                ok, names = await self.compensate(failure)
                # Nothing to undo is not a compensation: the execution simply failed.
                status = "compensated" if ok and names else "failed"
                self._finish(status, error=error, compensated=names)
            else:
                self._finish("failed", error=error)
        except TimeoutError:
            message = f"pipeline {pipeline.name!r} timed out after {pipeline.timeout:g}s"
            self._finish("failed", error={"message": message, "type": "timeout"})
        except Aborted:
            self.cancel_requested = True
            self._finish("cancelled", error={"message": "aborted in the debugger",
                                             "type": "aborted"}, reason="aborted in the debugger")
        except asyncio.CancelledError:
            refused = self.recorder.refusal(self.record.id) if self.recorder is not None else None
            if refused is not None:  # stopped by run_step: the store refused its record
                self._finish("failed", error={"message": refused, "type": "store"})
            else:
                self._finish("cancelled", error={"message": "cancelled", "type": "cancelled"})
                if not self.cancel_requested:
                    raise
        finally:
            if self.recorder is not None:
                try:  # flush() shields the batch it waits for: no task of our own here
                    await self.recorder.flush(self.record.id)
                except ExecutionRefused as refused_exc:
                    self._refused(str(refused_exc))

    def _refused(self, why: str) -> None:
        """The store refused this execution's record (recorder.py closed it as failed there):
        the caller is told the same, whatever the steps did."""
        rec = self.record
        rec.status = "failed"
        rec.output = self.output = self.response = None
        rec.error = {"message": why, "type": "store"}

    def _reuse_recorded(self) -> int:
        """Replay ``from_step``: record the reused outputs and return the index to start at."""
        for reused in self.controls.reused:
            seq = self.emit(EventType.STEP_STARTED, {"step": reused.name, "path": reused.path,
                                                     "attempt": 1, "type": reused.type, "reused": True})
            self.emit(EventType.STEP_COMPLETED, {"step": reused.name, "path": reused.path,
                                                 "duration_ms": 0.0, "reused": True,
                                                 "output": redact(reused.output, self.level)})
            if self.recorder is not None:
                now = time.time()
                self._save_run(StepRunRecord(self.record.id, reused.path, reused.name, reused.type,
                                             seq, status="completed", started_at=now, ended_at=now,
                                             duration_ms=0.0, flags=["reused"]))
            self.scope.record(reused.name, reused.output)
        if self.controls.start_at is None:
            return 0
        for index, step in enumerate(self.pipeline.steps):
            if step.name == self.controls.start_at:
                return index
        raise ValueError(f"no top-level step {self.controls.start_at!r} in {self.pipeline.name!r}")

    def _finish(self, status: str, *, output: Any = None, error: dict[str, Any] | None = None,
                compensated: list[str] | None = None, reason: str | None = None) -> None:
        rec = self.record
        rec.status = status
        rec.ended_at = time.time()
        rec.duration_ms = round((rec.ended_at - rec.started_at) * 1000, 3)
        self.output = output  # what run() returns; the stored summary is redacted like the events
        rec.output = redact(output, self.level)
        rec.error = error = self.engine.scrubber.error(error)
        if status == "completed":
            self.emit(EventType.EXECUTION_COMPLETED, {"output": redact(output, self.level),
                                                      "duration_ms": rec.duration_ms})
        elif status == "cancelled":
            default = "cancelled by request" if self.cancel_requested else "cancelled"
            self.emit(EventType.EXECUTION_CANCELLED, {"reason": reason or default})
        elif status == "compensated":
            self.emit(EventType.EXECUTION_COMPENSATED, {"steps": compensated or [], "error": error,
                                                        "duration_ms": rec.duration_ms})
        else:
            data = {"error": error, "step": (error or {}).get("step"), "duration_ms": rec.duration_ms}
            if compensated is not None:
                data["compensated"] = compensated
            self.emit(EventType.EXECUTION_FAILED, data)
        if self.recorder is not None:
            self.recorder.execution(rec)

    # ------------------------------------------------------------------ sequences and steps

    async def run_sequence(self, steps: list[StepDef], scope: Scope, prefix: str,
                           iteration: int | None, start: int = 0) -> Outcome:
        """Run ``steps`` in order, following stops and jumps. Returns the last outcome."""
        index = start
        last = Outcome()
        count = len(steps)
        while index < count:
            step = steps[index]
            last = await self.run_step(step, scope, prefix, iteration, index)
            if last.stop:
                return last
            if last.jump is not None:
                target = next((i for i, s in enumerate(steps) if s.name == last.jump), None)
                if target is None:
                    raise Failure(StepError(
                        f"step {step.name!r} routes to {last.jump!r}, which is not a step of "
                        f"this {'pipeline' if not prefix else 'step list'}", type="routing"),
                        prefix + step.name, "stop")
                self.jumps += 1
                if self.jumps > self.pipeline.max_jumps:
                    raise Failure(StepError(
                        f"more than {self.pipeline.max_jumps} jumps: the routing loops; raise "
                        "max_jumps if this is intended", type="routing"), prefix + step.name, "stop")
                index = target
                continue
            index += 1
        return Outcome(output=last.output, response=last.response)

    async def run_step(self, step: StepDef, scope: Scope, prefix: str, iteration: int | None,
                       index: int) -> Outcome:
        """Run one step with its condition, retries and error strategy."""
        if self.recorder is not None and self.recorder.refusal(self.record.id) is not None:
            # Nothing more of this run can be recorded: stop it like a cancellation (which
            # composites pass on, unlike errors); execute() ends it failed.
            raise asyncio.CancelledError
        prepared: Prepared = step.compiled
        path = prefix + step.name
        vars = scope.vars
        try:
            if prepared.if_ is not None and not truthy(prepared.if_.render(vars)):
                return self._skip(step, path, "if", iteration)
            if prepared.skip_if is not None and truthy(prepared.skip_if.render(vars)):
                return self._skip(step, path, "skip_if", iteration)
        except ExpressionError as exc:
            return self._on_error(step, path, scope, StepError(str(exc), type="expression"))
        if self.hooks is not None and await self.hooks.before_step(self, step, path, scope) == "skip":
            return self._skip(step, path, "debugger", iteration)

        policy = step.retry
        attempts = policy.max_attempts if policy else 1
        attempt = 1
        while True:
            try:
                result = await self._attempt(step, prepared, path, scope, iteration, index, attempt,
                                             attempt < attempts)
                break
            except _Retry as retry:
                assert policy is not None
                delay = min(policy.initial_delay * policy.multiplier ** (attempt - 1),
                            policy.max_delay)
                if policy.jitter:
                    delay *= 1 + random.uniform(-policy.jitter, policy.jitter)
                data = {"step": step.name, "path": path, "attempt": attempt + 1,
                        "delay_ms": round(delay * 1000, 3), "error": retry.error.to_dict()}
                if iteration is not None:  # concurrent iterations share a path
                    data["iteration"] = iteration
                self.emit(EventType.STEP_RETRYING, data)
                await asyncio.sleep(delay)
                attempt += 1
            except StepError as error:
                return self._on_error(step, path, scope, error)

        output = result.output
        scope.record(step.name, output)
        if step.compensate is not None:
            self.compensations.append((step, path, scope, output))
        return Outcome(output=output, stop=result.stop, jump=result.jump, response=result.response)

    def _skip(self, step: StepDef, path: str, reason: str, iteration: int | None) -> Outcome:
        data: dict[str, Any] = {"step": step.name, "path": path, "reason": reason}
        if iteration is not None:  # a loop's skipped sub-step belongs to its iteration
            data["iteration"] = iteration
        seq = self.emit(EventType.STEP_SKIPPED, data)
        if self.recorder is not None:
            now = time.time()
            self._save_run(StepRunRecord(self.record.id, path, step.name, step.type, seq,
                                         iteration=iteration or 0, status="skipped", started_at=now,
                                         ended_at=now, duration_ms=0.0))
        return Outcome(skipped=True)

    def _on_error(self, step: StepDef, path: str, scope: Scope, error: StepError) -> Outcome:
        error = self.scrubbed(error)  # e.g. a condition's jq error quoting a value
        strategy = step.on_error or self.pipeline.on_error
        if strategy == "continue":
            output = {"error": error.message}
            scope.record(step.name, output)
            return Outcome(output=output, failed=error.message)
        raise Failure(error, path, strategy)

    async def _attempt(self, step: StepDef, prepared: Prepared, path: str, scope: Scope,
                       iteration: int | None, index: int, attempt: int, may_retry: bool) -> StepResult:
        """One attempt: record it, run the type (or answer from idempotency), classify errors."""
        recording = self.recorder is not None
        run: StepRunRecord | None = None
        started = time.time() if recording else 0.0
        # The input travels with step.started: render first; a failed render is recorded
        # as a start without input, then the failure (below).
        config: dict[str, Any] | None = None
        render_error: Exception | None = None
        try:
            config = prepared.config.render(scope.vars)
            if prepared.raw:
                config = {**config, **prepared.raw}
        except Exception as exc:
            render_error = exc
        if recording:
            data: dict[str, Any] = {"step": step.name, "path": path, "index": index,
                                    "attempt": attempt, "type": step.type}
            if iteration is not None:
                data["iteration"] = iteration
            if config is not None:
                data["input"] = redact(config, self.level)
            seq = self.emit(EventType.STEP_STARTED, data)
            run = StepRunRecord(self.record.id, path, step.name, step.type, seq,
                                iteration=iteration or 0, attempt=attempt, started_at=started)
            if attempt > 1:
                run.flags.append("retried")
            self._save_run(run)
        ctx = StepCtx(self, step, path, scope, iteration, attempt)
        # Events after step.started name their run exactly: concurrent loop iterations share
        # a path, so iteration, attempt and the start event's seq tell them apart.
        which: dict[str, Any] = {}
        if recording:
            assert run is not None
            which = {"attempt": attempt, "started_seq": run.seq}
            if iteration is not None:
                which["iteration"] = iteration
        try:
            if render_error is not None:
                raise render_error
            assert config is not None
            mock = self._mock(step, path)
            if mock is not None:
                result = await self._mocked(step, path, mock, run)
            elif prepared.idempotency_key is not None:
                result = await self._idempotent(step, prepared, path, ctx, config, run)
            else:
                result = await self._invoke(step, prepared, ctx, config)
        except asyncio.CancelledError:
            if run is not None:
                self._end_run(run, "cancelled", "cancelled")
            raise
        except Exception as exc:
            error = self.scrubbed(_as_step_error(exc, step))
            duration = round((time.time() - started) * 1000, 3) if recording else 0.0
            if run is not None:
                self._end_run(run, "failed", error.message)
            if may_retry:
                raise _Retry(error) from None
            if recording:
                self.emit(EventType.STEP_FAILED, {"step": step.name, "path": path, **which,
                                                  "error": error.to_dict(), "duration_ms": duration})
            raise error from None
        if recording:
            assert run is not None
            output = result.output
            if result.jump is not None:
                run.flags.append("routed")
                self.emit(EventType.STEP_ROUTED, {"step": step.name, "path": path, **which,
                                                  "next_step": result.jump,
                                                  "matched_value": result.matched_value})
            duration = self._end_run(run, "completed", None)
            run.output_size = _size(output)
            # The output travels with step.completed (0.1.0 and earlier wrote step.output).
            self.emit(EventType.STEP_COMPLETED, {"step": step.name, "path": path, **which,
                                                 "duration_ms": duration,
                                                 "output": redact(output, self.level)})
        return result

    def _mock(self, step: StepDef, path: str) -> MockAnswer | None:
        answer = self.controls.replay_mocks.get(path)
        if answer is None and self.hooks is not None and self.controls.mocks:
            answer = self.hooks.mock_for(self, step, path)
        return answer

    async def _mocked(self, step: StepDef, path: str, mock: MockAnswer,
                      run: StepRunRecord | None) -> StepResult:
        data: dict[str, Any] = {"step": step.name, "path": path, "mock_id": mock.id}
        if run is not None:  # name the run exactly, as the events after step.started do
            data.update(started_seq=run.seq, iteration=run.iteration, attempt=run.attempt)
            run.flags.append("mocked")
        self.emit(EventType.STEP_MOCKED, data)
        if mock.delay_ms:
            await asyncio.sleep(mock.delay_ms / 1000)
        if mock.error is not None:
            raise StepError(str(mock.error.get("message", "mocked error")),
                            type=str(mock.error.get("type", "mocked")), status=mock.error.get("status"))
        return StepResult(output={} if mock.output is None else mock.output)

    def _end_run(self, run: StepRunRecord, status: str, error: str | None) -> float:
        run.ended_at = time.time()
        run.duration_ms = round((run.ended_at - run.started_at) * 1000, 3)
        run.status = status
        run.error = error
        self._save_run(run)
        return run.duration_ms

    async def _invoke(self, step: StepDef, prepared: Prepared, ctx: StepCtx,
                      config: dict[str, Any]) -> StepResult:
        if step.timeout:
            async with asyncio.timeout(step.timeout):
                value = await prepared.type.run(ctx, config)
        else:
            value = await prepared.type.run(ctx, config)
        if type(value) is StepResult:
            if value.output is None:
                value.output = {}
            return value
        return StepResult({} if value is None else value)

    async def _idempotent(self, step: StepDef, prepared: Prepared, path: str, ctx: StepCtx,
                          config: dict[str, Any], run: StepRunRecord | None) -> StepResult:
        """Exactly one execution runs the step per live key; the others reuse its output."""
        assert prepared.idempotency_key is not None
        key = prepared.idempotency_key.render(ctx.vars)
        key = key if isinstance(key, str) else json.dumps(key, sort_keys=True, default=str)
        ttl = step.idempotency_ttl or 86400.0
        keys = self.engine.idempotency
        async with keys.lock(self.pipeline.name, path, key):
            found, output = keys.lookup(self.pipeline.name, path, key)
            while not found and not keys.claim(self.pipeline.name, path, key, self.record.id, ttl):
                await asyncio.sleep(0.05)  # another process holds the key: wait for its output
                found, output = keys.lookup(self.pipeline.name, path, key)
            if found:
                self.emit(EventType.STEP_IDEMPOTENT_HIT, {"step": step.name, "path": path,
                                                          "key": key})
                if run is not None:
                    run.flags.append("idempotent_hit")
                return StepResult(output=output)
            try:
                result = await self._invoke(step, prepared, ctx, config)
            except BaseException:
                keys.release(self.pipeline.name, path, key)
                raise
            keys.complete(self.pipeline.name, path, key, result.output, ttl)
            return result

    # ------------------------------------------------------------------ saga

    async def compensate(self, failure: Failure) -> tuple[bool, list[str]]:
        """Compensate completed steps most recent first, then the pipeline's list. All run."""
        ok = True
        names: list[str] = []
        for step, path, scope, output in reversed(self.compensations):
            assert step.compensate is not None
            self.emit(EventType.STEP_COMPENSATING, {"step": step.name, "path": path})
            comp_scope = scope.child({"compensating": {"step": step.name, "output": output,
                                                       "error": failure.error.to_dict()}})
            error = await self._run_compensation(step.compensate, comp_scope, path + "/")
            self.emit(EventType.STEP_COMPENSATED, {"step": step.name, "path": path,
                                                   **({"error": error} if error else {})})
            ok = ok and error is None
            names.append(step.name)
        for comp in reversed(self.pipeline.compensation):
            scope = self.scope.child({"compensating": {"step": failure.step, "output": None,
                                                       "error": failure.error.to_dict()}})
            comp_path = "compensation/" + comp.name
            self.emit(EventType.STEP_COMPENSATING, {"step": comp.name, "path": comp_path})
            error = await self._run_compensation(comp, scope, "compensation/")
            self.emit(EventType.STEP_COMPENSATED, {"step": comp.name, "path": comp_path,
                                                   **({"error": error} if error else {})})
            ok = ok and error is None
            names.append(comp.name)
        return ok, names

    async def _run_compensation(self, step: StepDef, scope: Scope, prefix: str) -> str | None:
        try:
            outcome = await self.run_step(step, scope, prefix, None, 0)
        except Failure as failure:
            return failure.error.message
        return outcome.failed


class _Retry(Exception):
    def __init__(self, error: StepError):
        self.error = error


class StepCtx:
    """What a running step sees (the StepContext protocol of engine.steps.base)."""

    __slots__ = ("attempt", "iteration", "path", "run", "scope", "step", "vars")

    def __init__(self, run: ExecutionRun, step: StepDef, path: str, scope: Scope,
                 iteration: int | None, attempt: int):
        self.run = run
        self.step = step
        self.path = path
        self.scope = scope
        self.vars = scope.vars
        self.iteration = iteration
        self.attempt = attempt

    @property
    def execution_id(self) -> str:
        return self.run.record.id

    @property
    def pipeline(self) -> str:
        return self.run.pipeline.name

    def resolve(self, value: Any, extra: Mapping[str, Any] | None = None) -> Any:
        return compile_value(value).render({**self.vars, **extra} if extra else self.vars)

    def evaluate(self, program: str, extra: Mapping[str, Any] | None = None) -> Any:
        return evaluate(program, {**self.vars, **extra} if extra else self.vars)

    def module(self, name: str) -> Any:
        instance = self.run.engine.modules.get(name)
        if instance is None:
            known = ", ".join(sorted(self.run.engine.modules)) or "none"
            raise StepError(f"step {self.step.name!r} uses module {name!r}, which is not "
                            f"defined (modules: {known})", type="config")
        return instance

    def sink(self, name: str) -> Any:
        return self.run.engine.sink(name, self.step.name)

    def log(self, level: str, message: str) -> None:
        self.run.emit(EventType.LOG, {"level": level, "message": message, "step": self.step.name,
                                      "path": self.path})

    def event(self, type: str, data: dict[str, Any]) -> None:
        self.run.emit(type, {"step": self.step.name, "path": self.path, **data})

    async def run_substeps(self, key: str, *, extra: Mapping[str, Any] | None = None,
                           iteration: int | None = None, isolated: bool = True,
                           only: int | None = None) -> SubRun:
        steps = self.step.substeps.get(key, [])
        if only is not None:
            steps = steps[only : only + 1]
        if isolated:
            scope = self.scope.child(extra)
        else:
            scope = self.scope
            if extra:
                scope.vars.update(extra)
        # A loop nested in a loop: keep the outer iteration in the path so runs stay apart.
        prefix = self.path
        if iteration is not None and self.iteration is not None:
            prefix += f"[{self.iteration}]"
        prefix += "/"
        if self.attempt > 1:
            prefix = prefix[:-1] + f"@{self.attempt}/"
        inherited = iteration if iteration is not None else self.iteration
        try:
            outcome = await self.run.run_sequence(steps, scope, prefix, inherited)
        except Failure as failure:
            raise StepError(f"{failure.step}: {failure.error.message}", type=failure.error.type,
                            status=failure.error.status, details=failure.error.details) from None
        outputs = {s.name: scope.steps[s.name] for s in steps if s.name in scope.steps}
        errors = {name: out["error"] for name, out in outputs.items()
                  if isinstance(out, dict) and set(out) == {"error"}}
        return SubRun(outputs=outputs, last_output=outcome.output, stopped=outcome.stop,
                      response=outcome.response, errors=errors)

    async def call_workflow(self, pipeline: str, payload: Any, *, wait: bool = True) -> dict[str, Any]:
        return await self.run.engine.call_child(self.run, pipeline, payload, wait=wait)

    async def send_to_dlq(self, payload: Any, error: str) -> str:
        return self.run.engine.send_to_dlq(self.run, self.step.name, payload, error, "dlq_send")

    def shared_state(self, kind: str) -> dict[str, Any]:
        return self.run.engine.shared_state.setdefault((self.pipeline, self.path, kind), {})
