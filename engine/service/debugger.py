"""The breakpoint debugger: pauses executions before steps, edits their context, resumes them.

A paused execution awaits a future; nothing else waits with it. Pauses, context patches and
resumes are recorded as events (``debug.paused``, ``debug.context_patched``,
``debug.resumed``), so the timeline, replay and diff see them like any other step event.
Breakpoints live in the store's ``breakpoints`` table and are cached here.

Several processes on one PostgreSQL store (``store.distributed``) share the debugger:

- a pause is also a row of ``paused_executions`` (the context as it was at the pause, which
  only a resume can change), so ``paused()`` in any process lists every process's pauses;
- ``resume`` of a pause held by another process writes the command into that row (one
  command per pause: a second is a Conflict, like a second local resume) and NOTIFYs
  ``wfstudio_debug``; the holder applies it as a local resume and answers on
  ``wfstudio_debug_reply`` (ok, or the error, e.g. a patch that does not apply), which the
  caller waits for, so a remote resume fails or succeeds like a local one;
- breakpoint changes NOTIFY ``wfstudio_breakpoints``; the others reload their cache (and
  listing breakpoints reloads it, so a list shows what every process will stop at).
  "Pause new runs" is passed on the same channel (it is not stored: a process started
  later does not know it).
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
from sqlalchemy import delete, select, update

from engine.context import RESERVED, Scope
from engine.errors import ExpressionError
from engine.executor import Aborted, ExecutionRun
from engine.expressions import check_program, compile_condition, truthy
from engine.service.errors import Conflict, InvalidInput, NotFound, ServiceError, Unavailable
from engine.service.models import Breakpoint, EventType, PausedExecution, PauseReason, ResumeAction
from engine.store import models
from engine.store.codec import dumps, loads
from engine.store.store import Store

log = logging.getLogger(__name__)

ACTIONS = ("continue", "step_over", "skip", "abort")
COMMANDS = "wfstudio_debug"  # payload: the execution id whose pause row has a command
REPLIES = "wfstudio_debug_reply"  # payload: {"request", "error"?}
BREAKPOINTS = "wfstudio_breakpoints"  # payload: "reload" or {"pause_new": [tenant, pipeline, on]}
REMOTE_TIMEOUT = 15.0  # seconds to wait for the process holding a pause to answer
_ERRORS: dict[str, type[ServiceError]] = {c.__name__: c for c in (Conflict, InvalidInput, NotFound)}

# Who resumes and patches, as ``debug.context_patched`` records it ("by"): the studio in
# embedded use; the hosted server sets the caller's API key for each request (server.auth).
current_actor: ContextVar[str] = ContextVar("wfstudio_actor", default="studio")


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
        self.distributed = store is not None and store.distributed
        self._stale = False  # another process changed the breakpoints: reload before use
        self._loop: asyncio.AbstractEventLoop | None = None  # where local pauses wait
        self._waiting: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = {}
        self._reload()
        if store is not None and self.distributed:
            store.listen(COMMANDS, self._on_command)
            store.listen(REPLIES, self._on_reply)
            store.listen(BREAKPOINTS, self._on_breakpoints)

    def close(self) -> None:
        """Stop listening to other processes (the store stays open)."""
        if self.store is not None:
            self.store.unlisten(COMMANDS, self._on_command)
            self.store.unlisten(REPLIES, self._on_reply)
            self.store.unlisten(BREAKPOINTS, self._on_breakpoints)

    def _reload(self) -> None:
        self._stale = False
        if self.store is not None:
            with self.store.read() as conn:
                rows = conn.execute(select(models.breakpoints)).mappings().all()
            self._breakpoints = {row["id"]: _breakpoint(row) for row in rows}
            self._tenants = {row["id"]: row["tenant"] for row in rows}
        self._reindex()

    def _changed(self, payload: str = "reload") -> None:
        if self.store is not None and self.distributed:
            self.store.notify(BREAKPOINTS, payload)

    # ------------------------------------------------------------------ breakpoints

    def breakpoints(self, tenant: str | None = None) -> list[Breakpoint]:
        """The breakpoints (of ``tenant`` when given)."""
        if self.distributed:
            self._reload()  # what every process stops at, hit counts included
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
        self._changed()
        return bp

    def remove(self, breakpoint_id: str, *, tenant: str | None = None) -> None:
        self._get(breakpoint_id, tenant)
        if self.store is not None:
            with self.store.begin() as conn:
                conn.execute(delete(models.breakpoints).where(models.breakpoints.c.id == breakpoint_id))
        del self._breakpoints[breakpoint_id]
        self._tenants.pop(breakpoint_id, None)
        self._reindex()
        self._changed()

    def enable(self, breakpoint_id: str, enabled: bool, *, tenant: str | None = None) -> Breakpoint:
        bp = self._get(breakpoint_id, tenant)
        if self.store is not None:
            with self.store.begin() as conn:
                conn.execute(update(models.breakpoints).where(models.breakpoints.c.id == breakpoint_id)
                             .values(enabled=enabled))
        bp.enabled = enabled
        self._reindex()
        self._changed()
        return bp

    def pause_new_runs(self, pipeline: str, enabled: bool, *, tenant: str = "default") -> None:
        self._set_pause_new(tenant, pipeline, enabled)
        self._changed(json.dumps({"pause_new": [tenant, pipeline, enabled]}))

    def _set_pause_new(self, tenant: str, pipeline: str, enabled: bool) -> None:
        if enabled:
            self._pause_new.add((tenant, pipeline))
        else:
            self._pause_new.discard((tenant, pipeline))

    def _get(self, breakpoint_id: str, tenant: str | None = None) -> Breakpoint:
        """The breakpoint; another tenant's is as absent as an unknown id."""
        if self._stale or (self.distributed and breakpoint_id not in self._breakpoints):
            self._reload()
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
        if self._stale:
            self._reload()
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
        self._loop = asyncio.get_running_loop()
        if self.distributed:
            self._store_pause(info, record.tenant)
        record.status = "paused"
        if run.recorder is not None:
            run.recorder.execution(record)
        run.emit(EventType.DEBUG_PAUSED, {"step": step, "path": path, "reason": reason,
                                          **({"breakpoint_id": bp.id} if bp else {})})
        try:
            if run.recorder is not None:
                await run.recorder.flush()  # the pause is visible in the store, not only live
            action = await pause.decision
        finally:
            if self._paused.get(record.id) is pause:
                del self._paused[record.id]
            if self.distributed:
                self._drop_pause(record.id)
            record.status = "running"
            if run.recorder is not None:
                run.recorder.execution(record)
        run.emit(EventType.DEBUG_RESUMED, {"step": step, "path": path, "action": action})
        if action == "abort":
            raise Aborted()
        if action == "step_over":
            run.step_over = True
        return "skip" if action == "skip" else None

    # ------------------------------------------------------------------ the service's side

    def paused(self) -> list[PausedExecution]:
        """Pauses in this process (context as it is now) and, on a shared store, in others."""
        for pause in self._paused.values():
            pause.info.context = _context(pause.scope)
        found = {p.info.execution_id: p.info for p in self._paused.values()}
        if self.store is not None and self.distributed:
            t = models.paused_executions
            with self.store.read() as conn:
                rows = conn.execute(select(t).where(t.c.execution_id.notin_(list(found)))).mappings()
                for row in rows:
                    found[row["execution_id"]] = _paused_info(row)
        return sorted(found.values(), key=lambda p: p.paused_at)

    def resume(self, execution_id: str, action: ResumeAction,
               patch: list[dict[str, Any]] | None = None, by: str | None = None) -> None:
        """Resume a pause held by this process; ``by``: who (default: ``current_actor``)."""
        by = by or current_actor.get()
        pause = self._paused.get(execution_id)
        if pause is None:
            raise Conflict(f"execution {execution_id!r} is not paused")
        if action not in ACTIONS:
            raise InvalidInput(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
        if pause.decision.done():
            raise Conflict(f"execution {execution_id!r} is already resuming")
        if patch:
            _apply_patch(pause.scope, patch)  # raises InvalidInput and changes nothing
            info = pause.info
            pause.run.emit(EventType.DEBUG_CONTEXT_PATCHED, {"step": info.step, "path": info.path,
                                                             "patch": patch, "by": by})
        del self._paused[execution_id]  # not paused any more from now on, for every reader
        pause.decision.set_result(action)

    async def resume_anywhere(self, execution_id: str, action: ResumeAction,
                              patch: list[dict[str, Any]] | None = None, by: str | None = None,
                              timeout: float = REMOTE_TIMEOUT) -> None:
        """Resume a pause held by this process or (shared store) by another one.

        Returns when the holder has resumed the execution; its refusal (a patch that does not
        apply, a concurrent resume) is raised here as the same error.
        """
        by = by or current_actor.get()
        if execution_id in self._paused or not self.distributed or self.store is None:
            return self.resume(execution_id, action, patch, by)
        if action not in ACTIONS:
            raise InvalidInput(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
        store = self.store
        request = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()
        self._waiting[request] = (loop, answer)
        t = models.paused_executions
        command = {"action": action, "patch": patch, "by": by, "request": request}
        try:
            with store.begin() as conn:
                sent = conn.execute(update(t).where(t.c.execution_id == execution_id,
                                                    t.c.command.is_(None))
                                    .values(command=command)).rowcount
                if sent == 1:
                    store.notify(COMMANDS, execution_id, conn)
            if sent != 1:
                with store.read() as conn:
                    held = conn.scalar(select(t.c.execution_id).where(t.c.execution_id == execution_id))
                if held is None:
                    raise Conflict(f"execution {execution_id!r} is not paused")
                raise Conflict(f"execution {execution_id!r} is already resuming")
            try:
                reply = await asyncio.wait_for(answer, timeout)
            except TimeoutError:
                with store.begin() as conn:  # withdraw it, unless it was taken meanwhile
                    conn.execute(update(t).where(t.c.execution_id == execution_id,
                                                 t.c.command["request"].as_string() == request)
                                 .values(command=None))
                raise Unavailable(f"the server process holding the pause of {execution_id!r} did "
                                  f"not answer within {timeout:g}s; try again") from None
        finally:
            self._waiting.pop(request, None)
        error = reply.get("error")
        if error:
            kind = _ERRORS.get(str(error.get("kind")), Conflict)
            raise kind(str(error.get("message")), details=error.get("details"))
        return None

    # ------------------------------------------------------------------ other processes

    def _store_pause(self, info: PausedExecution, tenant: str) -> None:
        assert self.store is not None
        t = models.paused_executions
        row = {"tenant": tenant, "pipeline": info.pipeline, "step": info.step, "path": info.path,
               "reason": info.reason, "breakpoint_id": info.breakpoint_id,
               "paused_at": info.paused_at, "context": loads(dumps(info.context)),
               "owner": self.store.instance_id, "command": None}
        with self.store.begin() as conn:
            conn.execute(delete(t).where(t.c.execution_id == info.execution_id))
            conn.execute(t.insert().values(execution_id=info.execution_id, **row))

    def _drop_pause(self, execution_id: str) -> None:
        assert self.store is not None
        t = models.paused_executions
        try:
            with self.store.begin() as conn:
                conn.execute(delete(t).where(t.c.execution_id == execution_id))
        except Exception:  # the execution goes on; a stale row is dropped by recovery
            log.exception("could not remove the pause of %s from the store", execution_id)

    def _on_command(self, _channel: str, execution_id: str) -> None:
        """(Listener thread.) A resume for one of our pauses may be waiting in its row."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._take_command, execution_id)

    def _take_command(self, execution_id: str) -> None:
        if execution_id not in self._paused or self.store is None:
            return  # another process's pause
        store = self.store
        t = models.paused_executions
        with store.read() as conn:
            command = conn.scalar(select(t.c.command).where(t.c.execution_id == execution_id))
        if not isinstance(command, dict):
            return
        reply: dict[str, Any] = {"request": command.get("request")}
        try:
            self.resume(execution_id, command.get("action", "continue"), command.get("patch"),
                        str(command.get("by") or "studio"))
        except ServiceError as exc:
            reply["error"] = {"kind": type(exc).__name__, "message": exc.message[:2000],
                              "details": exc.details if len(dumps(exc.details)) < 4000 else None}
            with store.begin() as conn:  # refused: the pause takes another command
                conn.execute(update(t).where(t.c.execution_id == execution_id).values(command=None))
        store.notify(REPLIES, json.dumps(reply, default=str))

    def _on_reply(self, _channel: str, payload: str) -> None:
        """(Listener thread.) The answer to a resume this process sent."""
        try:
            reply = json.loads(payload)
        except ValueError:
            return
        waiting = self._waiting.get(str(reply.get("request")))
        if waiting is not None:
            loop, future = waiting
            loop.call_soon_threadsafe(_settle, future, reply)

    def _on_breakpoints(self, _channel: str, payload: str) -> None:
        """(Listener thread.) Another process changed breakpoints or "pause new runs"."""
        if payload.startswith("{"):
            try:
                tenant, pipeline, enabled = json.loads(payload)["pause_new"]
            except (ValueError, KeyError, TypeError):
                return
            self._set_pause_new(str(tenant), str(pipeline), bool(enabled))
        else:
            self._stale = True

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


def _settle(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _paused_info(row: Any) -> PausedExecution:
    return PausedExecution(execution_id=row["execution_id"], pipeline=row["pipeline"],
                           step=row["step"], path=row["path"], reason=row["reason"],
                           breakpoint_id=row["breakpoint_id"], paused_at=row["paused_at"],
                           context=row["context"] or {})


def _breakpoint(row: Any) -> Breakpoint:
    return Breakpoint(id=row["id"], pipeline=row["pipeline"], step=row["step"],
                      condition=row["condition"], enabled=bool(row["enabled"]),
                      hit_count=row["hit_count"] or 0)
