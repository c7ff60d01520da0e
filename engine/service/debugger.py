"""The breakpoint debugger: pauses executions before steps, edits their context, resumes them.

A paused execution awaits a future; nothing else waits with it. Pauses, context patches and
resumes are recorded as events (``debug.paused``, ``debug.context_patched``,
``debug.resumed``), so the timeline, replay and diff see them like any other step event.
Breakpoints live in the store's ``breakpoints`` table and are cached here.
"""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
from sqlalchemy import delete, select, update

from engine.context import RESERVED, Scope
from engine.errors import ExpressionError
from engine.executor import Aborted, ExecutionRun
from engine.expressions import check_program, compile_condition, truthy
from engine.service.errors import Conflict, InvalidInput, NotFound
from engine.service.models import Breakpoint, PausedExecution, PauseReason, ResumeAction
from engine.store import models
from engine.store.store import Store

ACTIONS = ("continue", "step_over", "skip", "abort")


@dataclass
class _Pause:
    run: ExecutionRun
    scope: Scope
    info: PausedExecution
    decision: asyncio.Future[str] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Debugger:
    def __init__(self, store: Store | None):
        self.store = store
        self._breakpoints: dict[str, Breakpoint] = {}
        self._tenants: dict[str, str] = {}  # breakpoint id -> tenant
        self._by_pipeline: dict[tuple[str, str], list[Breakpoint]] = {}  # by (tenant, pipeline)
        self._pause_new: set[tuple[str, str]] = set()  # (tenant, pipeline)
        self._paused: dict[str, _Pause] = {}
        if store is not None:
            with store.read() as conn:
                for row in conn.execute(select(models.breakpoints)).mappings():
                    self._breakpoints[row["id"]] = _breakpoint(row)
                    self._tenants[row["id"]] = row["tenant"]
        self._reindex()

    # ------------------------------------------------------------------ breakpoints

    def breakpoints(self, tenant: str | None = None) -> list[Breakpoint]:
        """The breakpoints (of ``tenant`` when given)."""
        return sorted((b for b in self._breakpoints.values()
                       if tenant is None or self._tenants[b.id] == tenant),
                      key=lambda b: (b.pipeline, b.step, b.id))

    def set(self, pipeline: str, step: str, condition: str | None = None, *,
            tenant: str = "default") -> Breakpoint:
        if condition is not None and condition.strip():
            error = check_program(condition) if "{{" not in condition else None
            if error is None:
                try:
                    compile_condition(condition)
                except ExpressionError as exc:
                    error = str(exc)
            if error:
                raise InvalidInput(f"breakpoint condition does not compile: {error}",
                                   details={"condition": condition})
        else:
            condition = None
        bp = Breakpoint(id=uuid.uuid4().hex[:12], pipeline=pipeline, step=step, condition=condition)
        if self.store is not None:
            with self.store.begin() as conn:
                conn.execute(models.breakpoints.insert().values(
                    id=bp.id, tenant=tenant, pipeline=pipeline, step=step, condition=condition, enabled=True,
                    hit_count=0, created=time.time()))
        self._breakpoints[bp.id] = bp
        self._tenants[bp.id] = tenant
        self._reindex()
        return bp

    def remove(self, breakpoint_id: str, *, tenant: str | None = None) -> None:
        self._get(breakpoint_id, tenant)
        if self.store is not None:
            with self.store.begin() as conn:
                conn.execute(delete(models.breakpoints).where(models.breakpoints.c.id == breakpoint_id))
        del self._breakpoints[breakpoint_id]
        self._tenants.pop(breakpoint_id, None)
        self._reindex()

    def enable(self, breakpoint_id: str, enabled: bool, *, tenant: str | None = None) -> Breakpoint:
        bp = self._get(breakpoint_id, tenant)
        if self.store is not None:
            with self.store.begin() as conn:
                conn.execute(update(models.breakpoints).where(models.breakpoints.c.id == breakpoint_id)
                             .values(enabled=enabled))
        bp.enabled = enabled
        self._reindex()
        return bp

    def pause_new_runs(self, pipeline: str, enabled: bool, *, tenant: str = "default") -> None:
        if enabled:
            self._pause_new.add((tenant, pipeline))
        else:
            self._pause_new.discard((tenant, pipeline))

    def _get(self, breakpoint_id: str, tenant: str | None = None) -> Breakpoint:
        """The breakpoint; another tenant's is as absent as an unknown id."""
        bp = self._breakpoints.get(breakpoint_id)
        if bp is None or tenant not in (None, self._tenants[breakpoint_id]):
            raise NotFound(f"no breakpoint {breakpoint_id!r}")
        return bp

    def _reindex(self) -> None:
        index: dict[tuple[str, str], list[Breakpoint]] = {}
        for bp in self._breakpoints.values():
            if bp.enabled:
                index.setdefault((self._tenants[bp.id], bp.pipeline), []).append(bp)
        self._by_pipeline = index

    # ------------------------------------------------------------------ the executor's hook

    async def before_step(self, run: ExecutionRun, step: Any, path: str, scope: Scope) -> str | None:
        first, run.first_step = run.first_step, False
        reason: PauseReason | None = None
        hit: Breakpoint | None = None
        if run.step_over:
            reason = "step_over"
        elif first and (run.record.tenant, run.pipeline.name) in self._pause_new:
            reason = "pause"
        elif run.controls.breakpoints:
            for bp in self._by_pipeline.get((run.record.tenant, run.pipeline.name), ()):
                if (bp.step == path or bp.step == step.name) and self._condition_holds(bp, scope):
                    reason, hit = "breakpoint", bp
                    break
        if reason is None:
            return None
        run.step_over = False
        if hit is not None:
            hit.hit_count += 1
            if self.store is not None:
                with self.store.begin() as conn:
                    conn.execute(update(models.breakpoints).where(models.breakpoints.c.id == hit.id)
                                 .values(hit_count=models.breakpoints.c.hit_count + 1))
        return await self._pause(run, step.name, path, scope, reason, hit)

    def _condition_holds(self, bp: Breakpoint, scope: Scope) -> bool:
        if bp.condition is None:
            return True
        try:
            return truthy(compile_condition(bp.condition).render(scope.vars))
        except ExpressionError:
            return True  # a condition that cannot be evaluated here stops, so it can be looked at

    async def _pause(self, run: ExecutionRun, step: str, path: str, scope: Scope, reason: PauseReason,
                     bp: Breakpoint | None) -> str | None:
        record = run.record
        info = PausedExecution(execution_id=record.id, pipeline=record.pipeline, step=step,
                               path=path, reason=reason, breakpoint_id=bp.id if bp else None,
                               paused_at=time.time(), context=_context(scope))
        pause = _Pause(run, scope, info)
        self._paused[record.id] = pause
        record.status = "paused"
        if run.recorder is not None:
            run.recorder.execution(record)
        run.emit("debug.paused", {"step": step, "path": path, "reason": reason,
                                  **({"breakpoint_id": bp.id} if bp else {})})
        try:
            if run.recorder is not None:
                await run.recorder.flush()  # the pause is visible in the store, not only live
            action = await pause.decision
        finally:
            if self._paused.get(record.id) is pause:
                del self._paused[record.id]
            record.status = "running"
            if run.recorder is not None:
                run.recorder.execution(record)
        run.emit("debug.resumed", {"step": step, "path": path, "action": action})
        if action == "abort":
            raise Aborted()
        if action == "step_over":
            run.step_over = True
        return "skip" if action == "skip" else None

    # ------------------------------------------------------------------ the service's side

    def paused(self) -> list[PausedExecution]:
        for pause in self._paused.values():
            pause.info.context = _context(pause.scope)
        return sorted((p.info for p in self._paused.values()), key=lambda p: p.paused_at)

    def resume(self, execution_id: str, action: ResumeAction,
               patch: list[dict[str, Any]] | None = None, by: str = "studio") -> None:
        pause = self._paused.get(execution_id)
        if pause is None:
            raise Conflict(f"execution {execution_id!r} is not paused")
        if action not in ACTIONS:
            raise InvalidInput(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
        if pause.decision.done():
            raise Conflict(f"execution {execution_id!r} is already resuming")
        if patch:
            _apply_patch(pause.scope, patch)  # raises InvalidInput and changes nothing
            pause.run.emit("debug.context_patched", {"step": pause.info.step, "path": pause.info.path,
                                                     "patch": patch, "by": by})
        del self._paused[execution_id]  # not paused any more from now on, for every reader
        pause.decision.set_result(action)

    def abort_all(self) -> None:
        for pause in list(self._paused.values()):
            if not pause.decision.done():
                pause.decision.set_result("abort")


def _context(scope: Scope) -> dict[str, Any]:
    snapshot = scope.snapshot()
    return {"current": copy.deepcopy(snapshot["current"]), "steps": copy.deepcopy(snapshot["steps"]),
            "trigger": snapshot["trigger"], "meta": snapshot["meta"]}


def _apply_patch(scope: Scope, patch: list[dict[str, Any]]) -> None:
    """Apply an RFC 6902 patch to ``{current, steps}``; the trigger and meta are immutable."""
    if not isinstance(patch, list) or not all(isinstance(op, dict) for op in patch):
        raise InvalidInput("a patch is a JSON array of operations, e.g. "
                           '[{"op": "replace", "path": "/current/qty", "value": 2}]')
    for op in patch:
        target = str(op.get("path", ""))
        if not (target.startswith("/current") or target.startswith("/steps")):
            raise InvalidInput(f"patch path {target!r} is outside the editable context: paths start "
                               "with /current/ or /steps/ (the trigger and meta are immutable)")
    document = {"current": copy.deepcopy(scope.current), "steps": copy.deepcopy(scope.steps)}
    try:
        patched = jsonpatch.apply_patch(document, patch)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise InvalidInput(f"patch does not apply: {exc}", details={"patch": patch}) from None
    if not isinstance(patched.get("current"), dict) or not isinstance(patched.get("steps"), dict):
        raise InvalidInput("patch must leave /current and /steps as objects")
    old_keys = [k for k in scope.current if k not in RESERVED]
    scope.current.clear()
    scope.current.update(patched["current"])
    scope.steps.clear()
    scope.steps.update(patched["steps"])
    for key in old_keys:  # extras such as a loop's item are not in current: they stay
        scope.vars.pop(key, None)
    scope.vars.update((k, v) for k, v in scope.current.items() if k not in RESERVED)


def _breakpoint(row: Any) -> Breakpoint:
    return Breakpoint(id=row["id"], pipeline=row["pipeline"], step=row["step"],
                      condition=row["condition"], enabled=bool(row["enabled"]),
                      hit_count=row["hit_count"] or 0)
