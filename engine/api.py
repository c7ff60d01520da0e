"""The Python embedding API.

    async with Engine.open("orders.yaml", store="sqlite:///orders.db") as engine:
        execution = await engine.run("create-order", {"sku": "A-1", "qty": 2})
        print(execution.status, execution.output)
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config.model import Definition, PipelineDef
from engine.errors import ConfigError, Diagnostic, NotFoundError, WorkflowError
from engine.executor import ExecutionRun, RunControls, StepHooks, prepare
from engine.idempotency import IdempotencyKeys
from engine.scrub import Scrubber
from engine.steps.base import Registry, default_registry
from engine.store.ids import new_execution_id
from engine.store.records import EventRecord, ExecutionRecord, StepRunRecord
from engine.store.store import Store

DEFAULT_STORE = "default"  # the SQLite file in the user's data directory
MAX_CALL_DEPTH = 32


@dataclass
class Execution:
    """What ``Engine.run`` returns: the finished execution's summary."""

    id: str
    pipeline: str
    status: str  # completed | failed | compensated | cancelled
    output: Any = None
    error: dict[str, Any] | None = None
    response: dict[str, Any] | None = None  # set by response steps under HTTP triggers
    duration_ms: float | None = None
    started_at: float = 0.0
    ended_at: float | None = None
    parent_id: str | None = None
    replay_of: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    def to_dict(self) -> dict[str, Any]:
        return {"execution_id": self.id, "pipeline": self.pipeline, "status": self.status,
                "output": self.output, "error": self.error, "duration_ms": self.duration_ms}


def _load(source: str | os.PathLike[str] | Definition, env: Mapping[str, str] | None,
          environment: str | None, registry: Registry) -> Definition:
    from engine.config.loader import load_file, load_text

    if isinstance(source, Definition):
        return source
    if isinstance(source, os.PathLike):
        return load_file(os.fspath(source), env=env, environment=environment, registry=registry)
    if "\n" not in source and (Path(source).suffix in (".yaml", ".yml") or Path(source).is_file()):
        return load_file(source, env=env, environment=environment, registry=registry)
    return load_text(source, env=env, environment=environment, registry=registry)


class Engine:
    """A loaded definition, its live modules and (optionally) the store it records into."""

    def __init__(self, definition: Definition, *, store: Store | None = None,
                 registry: Registry | None = None, env: Mapping[str, str] | None = None,
                 environment: str | None = None, owns_store: bool = False):
        self.definition = definition
        self.registry = registry or default_registry()
        self.store = store
        self.recorder = store.recorder if store is not None else None
        self._owns_store = owns_store
        self.env = self._environment(env, environment)
        self.scrubber = Scrubber(definition.substituted)  # what errors may not say
        self.modules: dict[str, Any] = {}
        self.sinks: dict[str, Any] = {}  # sink connectors by name, made on first use (step.emit)
        self.shared_state: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.idempotency = IdempotencyKeys(store)
        self.running: dict[str, tuple[ExecutionRun, asyncio.Task[None]]] = {}
        self.hooks: StepHooks | None = None  # the studio service's debugger and mocks
        self._background: set[asyncio.Task[Any]] = set()
        for pipeline in definition.pipelines.values():
            for step in [*pipeline.steps, *pipeline.compensation]:
                prepare(step, self.registry.steps)

    def _environment(self, env: Mapping[str, str] | None,
                     environment: str | None) -> Mapping[str, Any]:
        values: dict[str, Any] = dict(os.environ if env is None else env)
        active = environment or values.get("WFSTUDIO_ENV")
        chosen = self.definition.environments.get(active) if active else None
        if isinstance(chosen, Mapping):
            variables = chosen.get("variables", chosen)
            if isinstance(variables, Mapping):
                values.update({str(k): v for k, v in variables.items()})
        return values

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(cls, source: str | os.PathLike[str] | Definition, *,
             store: str | Store | None = DEFAULT_STORE, env: Mapping[str, str] | None = None,
             environment: str | None = None, registry: Registry | None = None) -> _Opening:
        """Load ``source`` (a file path, YAML text or a Definition) and open ``store``.

        ``store`` is a SQLAlchemy URL, ``"default"`` (the user's SQLite file), an open
        ``Store`` (left open on close) or ``None`` (record nothing).
        """
        return _Opening(cls, source, store, env, environment, registry)

    async def start(self) -> None:
        if self.store is not None:
            self.store.save_definition(self.definition.hash, self.definition.sources)
        for module in self.definition.modules.values():
            module_type = self.registry.modules.get(module.type)
            if module_type is None:
                raise WorkflowError(f"{module.pos}: module {module.name!r} has unknown type "
                                    f"{module.type!r}")
            try:
                instance = module_type.factory(module.name, module.config)
                starter = getattr(instance, "start", None)
                if starter is not None:
                    await starter()
            except WorkflowError as exc:  # bad module config: point at the module
                pos = module.pos
                raise ConfigError([Diagnostic(pos.file, pos.line, pos.col, f"module "
                                              f"{module.name!r}: {self.scrubber.text(str(exc))}")
                                   ]) from None
            self.modules[module.name] = instance

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        for instance in self.modules.values():
            closer = getattr(instance, "close", None)
            if closer is not None:
                await closer()
        self.modules.clear()
        sinks, self.sinks = list(self.sinks.values()), {}
        for sink in sinks:
            await sink.close()
        if self.store is not None:
            if self.recorder is not None:
                await self.recorder.flush()
            if self._owns_store:
                self.store.close()

    def sink(self, name: str, step: str = "") -> Any:
        """The sink of the file's connector ``name`` (made on first use, closed with the engine)."""
        from engine.errors import StepError

        instance = self.sinks.get(name)
        if instance is not None:
            return instance
        connector = next((c for c in self.definition.connectors if c.get("name") == name), None)
        kind = self.registry.sinks.get(str(connector.get("type"))) if connector else None
        if connector is None or kind is None:
            known = ", ".join(sorted(c["name"] for c in self.definition.connectors
                                     if c.get("type") in self.registry.sinks)) or "none"
            raise StepError(f"step {step!r} sends through connector {name!r}, which is not a sink "
                            f"connector of this file (sinks: {known}); declare it under "
                            "'connectors:' with a sink.* type", type="config")
        try:
            instance = kind.factory(name, dict(connector.get("config") or {}))
        except Exception as exc:  # a config the factory refuses: say which connector
            raise StepError(f"sink {name!r}: {self.scrubber.text(str(exc))}",
                            type="config") from None
        self.sinks[name] = instance
        return instance

    # ------------------------------------------------------------------ running

    @property
    def pipelines(self) -> dict[str, PipelineDef]:
        return self.definition.pipelines

    def pipeline(self, name: str) -> PipelineDef:
        pipeline = self.definition.pipelines.get(name)
        if pipeline is None:
            known = ", ".join(sorted(self.definition.pipelines)) or "none"
            raise NotFoundError(f"no pipeline named {name!r} (pipelines: {known})")
        return pipeline

    async def run(self, pipeline: str, payload: Any = None, *, execution_id: str | None = None,
                  parent_id: str | None = None, replay_of: str | None = None,
                  trigger_type: str | None = None, controls: RunControls | None = None,
                  _depth: int = 0) -> Execution:
        """Run ``pipeline`` with ``payload`` as its trigger; returns when it has finished and
        its events are durable."""
        run = self._new_run(pipeline, payload, execution_id, parent_id, replay_of, trigger_type,
                            _depth, controls)
        task = asyncio.ensure_future(run.execute())
        self.running[run.record.id] = (run, task)
        try:
            await task
        finally:
            self.running.pop(run.record.id, None)
        self._after(run)
        return _execution(run)

    def _new_run(self, pipeline: str, payload: Any, execution_id: str | None,
                 parent_id: str | None, replay_of: str | None, trigger_type: str | None,
                 depth: int, controls: RunControls | None = None) -> ExecutionRun:
        return ExecutionRun(self, self.pipeline(pipeline), payload,
                            execution_id=execution_id or new_execution_id(),
                            parent_id=parent_id, replay_of=replay_of, trigger_type=trigger_type,
                            definition_hash=self.definition.hash, depth=depth, controls=controls)

    def _after(self, run: ExecutionRun) -> None:
        """Dead-letter a failed execution of a pipeline with ``dlq`` enabled."""
        record = run.record
        origin = run.controls.origin or {}
        if "dlq_entry" in origin:  # a failed retry stays on its own entry, not a new one
            return
        if run.pipeline.dlq and record.status in ("failed", "compensated"):
            error = (record.error or {}).get("message", record.status)
            self.send_to_dlq(run, (record.error or {}).get("step"), run.payload, str(error),
                             str((record.error or {}).get("type", "step_error")))

    async def cancel(self, execution_id: str) -> bool:
        """Cancel a running execution; the cancellation reaches the step that is running."""
        entry = self.running.get(execution_id)
        if entry is None:
            return False
        run, task = entry
        run.cancel_requested = True
        task.cancel()
        return True

    async def call_child(self, parent: ExecutionRun, pipeline: str, payload: Any, *,
                         wait: bool = True) -> dict[str, Any]:
        """``step.workflow_call``: the child is its own recorded execution, linked to the parent."""
        from engine.errors import StepError

        if parent.depth + 1 > MAX_CALL_DEPTH:
            raise StepError(f"workflow_call nested deeper than {MAX_CALL_DEPTH} levels "
                            f"(calling {pipeline!r}): is a pipeline calling itself?",
                            type="recursion")
        if pipeline not in self.definition.pipelines:
            raise StepError(f"workflow_call: no pipeline named {pipeline!r}", type="config")
        kwargs = {"parent_id": parent.record.id, "trigger_type": "workflow_call",
                  "_depth": parent.depth + 1}
        if wait:
            child = await self.run(pipeline, payload, **kwargs)  # type: ignore[arg-type]
            return {"id": child.id, "status": child.status, "output": child.output,
                    "error": child.error}
        child_id = new_execution_id()
        task = asyncio.ensure_future(self.run(pipeline, payload, execution_id=child_id,
                                              **kwargs))  # type: ignore[arg-type]
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        # The parent records the child's id next: the child's start goes to the recorder
        # first, so no commit can hold the id without the child.
        await self.started(child_id, task)
        return {"id": child_id, "status": "running", "output": None, "error": None}

    async def started(self, execution_id: str, task: asyncio.Future[Any]) -> None:
        """Return once ``execution_id`` (run by ``task``) has handed its start event to the
        recorder, or ``task`` has ended; events reach the store in the order handed over."""
        while not task.done():
            entry = self.running.get(execution_id)
            if entry is not None and entry[0].seq > 0:
                return
            await asyncio.sleep(0)

    def send_to_dlq(self, run: ExecutionRun, step: str | None, payload: Any, error: str,
                    error_type: str) -> str:
        from engine.errors import StepError
        from engine.redaction import redact

        if self.store is None:
            raise StepError("the dead-letter queue needs a store (this engine records nothing)",
                            type="config")
        return self.store.dlq_add(run.pipeline.name, step, run.record.id,
                                  redact(payload, run.level), error, error_type,
                                  run.pipeline.dlq_max_retries, tenant=run.record.tenant)

    # ------------------------------------------------------------------ reading the record

    def _store(self) -> Store:
        if self.store is None:
            raise WorkflowError("this engine records nothing (opened with store=None)")
        return self.store

    async def list_executions(self, **filters: Any) -> list[ExecutionRecord]:
        rows, _cursor = self._store().list_executions(**filters)
        return rows

    async def get_execution(self, execution_id: str) -> ExecutionRecord:
        record = self._store().get_execution(execution_id)
        if record is None:
            raise NotFoundError(f"no execution {execution_id!r} in {self._store().url}")
        return record

    async def timeline(self, execution_id: str) -> list[StepRunRecord]:
        await self.get_execution(execution_id)
        return self._store().timeline(execution_id)

    async def events(self, execution_id: str, after_seq: int = 0, types: list[str] | None = None,
                     limit: int = 1000) -> list[EventRecord]:
        await self.get_execution(execution_id)
        return self._store().events(execution_id, after_seq=after_seq, types=types, limit=limit)


def _execution(run: ExecutionRun) -> Execution:
    r = run.record
    return Execution(id=r.id, pipeline=r.pipeline, status=r.status, output=run.output, error=r.error,
                     response=run.response, duration_ms=r.duration_ms, started_at=r.started_at,
                     ended_at=r.ended_at, parent_id=r.parent_id, replay_of=r.replay_of)


class _Opening:
    """``Engine.open(...)``: use with ``async with`` (or ``await`` it and close it yourself)."""

    def __init__(self, cls: type[Engine], source: Any, store: Any, env: Any, environment: Any,
                 registry: Any):
        self._args = (cls, source, store, env, environment, registry)
        self._engine: Engine | None = None

    async def _open(self) -> Engine:
        cls, source, store, env, environment, registry = self._args
        registry = registry or default_registry()
        definition = _load(source, env, environment, registry)
        owns = not isinstance(store, Store) and store is not None
        opened = Store.open(None if store == DEFAULT_STORE else store) if owns else store
        engine = cls(definition, store=opened, registry=registry, env=env,
                     environment=environment, owns_store=owns)
        try:
            await engine.start()
        except BaseException:
            await engine.close()
            raise
        self._engine = engine
        return engine

    def __await__(self) -> Generator[Any, None, Engine]:
        return self._open().__await__()

    async def __aenter__(self) -> Engine:
        return await self._open()

    async def __aexit__(self, *exc: object) -> None:
        if self._engine is not None:
            await self._engine.close()
