"""The local implementation of the studio service: the embedded engine and store, in-process.

One ``Engine`` per loaded file, all sharing one store, one debugger, one mock book, one
live-event hub and one set of process-wide step state (circuit breakers, rate limits).
Replays of an older definition run on an engine built from the stored snapshot.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from engine import __version__
from engine.api import Engine, Execution
from engine.config.loader import LOCAL, ImportPolicy, load_file, load_sources, load_text
from engine.config.model import Definition
from engine.connectors.types import SinkType, SourceType
from engine.errors import ConfigError, StoreError
from engine.executor import ExecutionRun, MockAnswer, RunControls
from engine.idempotency import IdempotencyKeys
from engine.service.backfill import BackfillManager
from engine.service.debugger import Debugger
from engine.service.diff import diff_executions
from engine.service.dlq import DlqManager
from engine.service.errors import Conflict, InvalidInput, NotFound
from engine.service.live import EventHub
from engine.service.mocks import MockBook
from engine.service.models import (
    Backfill,
    BackfillRequest,
    Breakpoint,
    ConnectorTypeInfo,
    DefinitionText,
    DiagnosticInfo,
    DlqEntry,
    DlqFilter,
    DlqRetryResult,
    Event,
    EventSchemaInfo,
    ExecutionDiff,
    ExecutionFilter,
    ExecutionPage,
    ExecutionSummary,
    Mock,
    MockMode,
    PausedExecution,
    PipelineInfo,
    PluginInfo,
    ReplayOptions,
    ReplayPlan,
    ResumeAction,
    RunOptions,
    RunResult,
    SourceDelivery,
    SourceInfo,
    StepRun,
    StepTypeInfo,
    TestEvent,
    Timeline,
    VersionInfo,
)
from engine.service.naming import ServerNames
from engine.service.protocol import Progress
from engine.service.replay import PreparedReplay, prepare_replay, step_outputs
from engine.service.sources import SourceManager
from engine.steps.base import Registry, default_registry
from engine.store import models
from engine.store.identity import protect
from engine.store.ids import new_execution_id
from engine.store.recorder import ExecutionRefused
from engine.store.records import EventRecord, ExecutionRecord
from engine.store.store import Store
from engine.tenancy import current_tenant

LOAD_TIME_LIMIT = 20.0
_loader_pool: list[ThreadPoolExecutor] = []


def _loaders() -> ThreadPoolExecutor:
    """Two threads for loading pipeline files, apart from the loop's default executor: a
    slow validation cannot starve the other work sent to threads."""
    if not _loader_pool:
        _loader_pool.append(ThreadPoolExecutor(2, thread_name_prefix="wfstudio-load"))
    return _loader_pool[0]


class _Hooks:
    """The executor's view of the debugger and the mock book."""

    def __init__(self, debugger: Debugger, mocks: MockBook):
        self.debugger = debugger
        self.mocks = mocks

    async def before_step(self, run: ExecutionRun, step: Any, path: str, scope: Any) -> str | None:
        return await self.debugger.before_step(run, step, path, scope)

    def mock_for(self, run: ExecutionRun, step: Any, path: str) -> MockAnswer | None:
        return self.mocks.mock_for(run, step, path)


class LocalService:
    """``StudioService`` over the embedded engine. Open with ``await LocalService.open(...)``."""

    def __init__(self, store: Store, *, registry: Registry | None = None,
                 env: dict[str, str] | None = None, owns_store: bool = False,
                 names: ServerNames | None = None):
        self.store = store
        # None: the studio, files are named by their paths; a server names them relative to
        # their definition root and never shows its own paths (naming.py).
        self.names = names
        self.registry = registry or default_registry()
        self.env = env
        self._owns_store = owns_store
        self.load_time_limit = LOAD_TIME_LIMIT  # seconds a validation or load may take
        self.debugger = Debugger(store)
        self.mocks = MockBook(store)
        self.hooks = _Hooks(self.debugger, self.mocks)
        # Steps that never await emit a whole run in one loop turn: room for many such runs.
        self.hub = EventHub(maxsize=50_000)
        self._owners: dict[str, str] = {}  # execution id -> tenant, for the all-runs stream
        # First listener: an event's owner is noted while its run is surely still running.
        store.recorder.listeners.insert(0, self._note_owner)
        self.hub.attach(store.recorder)
        self.shared_state: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.idempotency = IdempotencyKeys(store)
        self._engines: dict[str, Engine] = {}  # by the file's absolute path on disk
        # file -> the tenant that deployed it, who alone sees and runs its pipelines; the
        # files the service was opened with (the operator's) have no owner and serve all.
        self._file_owner: dict[str, str] = {}
        self._snapshots: dict[str, Engine] = {}  # by definition hash, for replays
        self._tasks: set[asyncio.Task[Any]] = set()
        # One DLQ and backfill manager per tenant, made on first use; "default" is embedded use.
        self._dlqs: dict[str, DlqManager] = {}
        self._backfills: dict[str, BackfillManager] = {}
        self.backfills = self._backfill_manager()
        # Sources of the loaded files; `wfstudio serve` sets autostart, the studio starts
        # them on demand.
        self.sources = SourceManager(self)
        protect(store)  # no database.sql module may open this store, whatever its URL says

    @property
    def dlq(self) -> DlqManager:
        """The caller's tenant's dead-letter queue."""
        tenant = current_tenant.get()
        if tenant not in self._dlqs:
            self._dlqs[tenant] = DlqManager(self.store, self._run_linked, tenant=tenant)
        return self._dlqs[tenant]

    def _backfill_manager(self) -> BackfillManager:
        tenant = current_tenant.get()
        if tenant not in self._backfills:
            self._backfills[tenant] = BackfillManager(self.store, self._run_linked,
                                                      self._pipeline_names, tenant=tenant)
        return self._backfills[tenant]

    def owns(self, execution_id: str) -> bool:
        """Whether this execution is the caller's tenant's."""
        return self._tenant_of(execution_id) == current_tenant.get()

    def _note_owner(self, event: EventRecord) -> None:
        if event.execution_id not in self._owners:
            self._tenant_of(event.execution_id)

    def _tenant_of(self, execution_id: str) -> str | None:
        """Whose execution this is (None if unknown): running ones first, then the store."""
        owner = self._owners.get(execution_id)
        if owner is None:
            for engine in [*self._engines.values(), *self._snapshots.values()]:
                entry = engine.running.get(execution_id)
                if entry is not None:
                    owner = entry[0].record.tenant
                    break
            else:
                record = self.store.get_execution(execution_id)
                owner = record.tenant if record is not None else None
            if owner is not None:
                if len(self._owners) > 100_000:  # a cache, not a registry
                    self._owners.clear()
                self._owners[execution_id] = owner
        return owner

    @classmethod
    async def open(cls, files: Iterable[str | os.PathLike[str]] = (), *, store: str | None = None,
                   registry: Registry | None = None,
                   env: dict[str, str] | None = None,
                   names: ServerNames | None = None) -> LocalService:
        """``env``: the variables pipelines see (``${VAR}``, ``.env``, jq's ``$ENV``); None is
        the whole process environment (the studio), the server passes only those it allows
        (``envvars.allowed_env``). ``names``: the hosted server's (``ServerNames``): files
        are named relative to their definition root, and files found in a tenant's deploy
        folder are that tenant's; None (the studio) names files by their paths."""
        opened = Store.open(store)
        try:
            service = cls(opened, registry=registry, env=env, owns_store=True, names=names)
        except BaseException:
            opened.close()
            raise
        try:
            for file in files:
                await service.load_file(file)
        except BaseException:
            await service.close()
            raise
        return service

    async def __aenter__(self) -> LocalService:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.sources.close()  # first: no new executions while the rest shuts down
        self.debugger.close()
        self.debugger.abort_all()
        for backfills in self._backfills.values():
            await backfills.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for engine in [*self._engines.values(), *self._snapshots.values()]:
            await engine.close()
        self._engines.clear()
        self._snapshots.clear()
        self.hub.close()
        self.hub.detach(self.store.recorder)
        while self._note_owner in self.store.recorder.listeners:
            self.store.recorder.listeners.remove(self._note_owner)
        await self.store.recorder.flush()
        if self._owns_store:
            self.store.close()

    # ------------------------------------------------------------------ engines

    async def _engine_for(self, definition: Definition) -> Engine:
        engine = Engine(definition, store=self.store, registry=self.registry, env=self.env)
        engine.hooks = self.hooks
        engine.shared_state = self.shared_state
        engine.idempotency = self.idempotency
        await engine.start()
        return engine

    async def load_file(self, file: str | os.PathLike[str]) -> list[str]:
        """Load (or reload) a pipeline file; returns its pipeline names."""
        disk = os.path.abspath(file)
        name, policy = os.fspath(file), LOCAL
        if self.names is not None:
            name, policy = self.names.name(disk)
            tenant = self.names.tenant_of(disk)
            if tenant is not None:  # deployed before a restart: still only its tenant's
                self.set_owner(disk, tenant)
        definition = await self._off_loop(lambda: load_file(
            name, registry=self.registry, env=self.env, policy=policy))
        return await self._install(definition, disk)

    async def unload_file(self, file: str | os.PathLike[str]) -> list[str]:
        """Forget a pipeline file (deleted or closed); returns the pipeline names it held."""
        here = os.path.abspath(file)
        for path, engine in list(self._engines.items()):
            if path == here:
                del self._engines[path]
                if not engine.running:
                    await engine.close()
                await self.sources.refresh()
                return list(engine.definition.pipelines)
        return []

    def _check_clash(self, definition: Definition, disk: str) -> None:
        """Pipeline names are unique among what one tenant sees (other tenants' deployed
        files are not looked at: saying they clash would tell what they hold)."""
        clash = {name: other.definition.path for path, other in self._visible_files()
                 if path != disk
                 for name in other.definition.pipelines if name in definition.pipelines}
        if clash:
            name, where = next(iter(clash.items()))
            raise Conflict(f"pipeline {name!r} of {definition.path} is already defined in {where}")

    async def _install(self, definition: Definition, disk: str) -> list[str]:
        self._check_clash(definition, disk)
        engine = await self._engine_for(definition)
        old = self._engines.pop(disk, None)
        self._engines[disk] = engine
        if old is not None and not old.running:
            await old.close()
        await self.sources.refresh()
        return list(definition.pipelines)

    def definitions(self) -> list[Definition]:
        """The loaded pipeline files of every tenant (the server routes their http triggers,
        each to its owner's requests only: see ``owner_of``)."""
        return [engine.definition for engine in self._engines.values()]

    def owner_of(self, definition: Definition) -> str | None:
        """The tenant that deployed this file, None for the files the service was opened with."""
        disk = self.disk_path(definition)
        return self._file_owner.get(disk) if disk is not None else None

    def owned_definitions(self) -> list[tuple[Definition, str | None]]:
        """Every loaded definition with its owner (``owner_of``), in one pass: the server
        checks this on every trigger request."""
        owner = self._file_owner.get
        return [(engine.definition, owner(disk)) for disk, engine in self._engines.items()]

    def loaded_files(self) -> list[str]:
        """The absolute paths of the loaded files of every tenant."""
        return list(self._engines)

    def disk_path(self, definition: Definition) -> str | None:
        """Where a loaded definition's file is on disk (its ``path`` is only its name on a
        server); None for one that is not loaded."""
        return next((path for path, engine in self._engines.items()
                     if engine.definition is definition), None)

    def set_owner(self, file: str | os.PathLike[str], tenant: str) -> None:
        """Mark a loaded file as ``tenant``'s (e.g. a deployment found on disk at start)."""
        self._file_owner[os.path.abspath(file)] = tenant

    def _visible_files(self) -> list[tuple[str, Engine]]:
        """The caller's tenant's files (the shared ones and its own), by disk path."""
        tenant = current_tenant.get()
        return [(path, engine) for path, engine in self._engines.items()
                if self._file_owner.get(path, tenant) == tenant]

    def _visible(self) -> list[Engine]:
        """The engines of the caller's tenant's pipelines: the shared files and its own."""
        return [engine for _path, engine in self._visible_files()]

    def _engine(self, pipeline: str) -> Engine:
        for engine in self._visible():
            if pipeline in engine.definition.pipelines:
                return engine
        known = ", ".join(sorted(self._pipeline_names())) or "none loaded"
        raise NotFound(f"no pipeline named {pipeline!r} (pipelines: {known})")

    def engine_for(self, pipeline: str) -> Engine:
        """The engine of the caller's tenant's pipeline (sources run their events on it)."""
        return self._engine(pipeline)

    def _pipeline_names(self) -> set[str]:
        return {name for e in self._visible() for name in e.definition.pipelines}

    async def _snapshot_engine(self, definition_hash: str) -> Engine:
        for engine in self._engines.values():
            if engine.definition.hash == definition_hash:
                return engine
        cached = self._snapshots.get(definition_hash)
        if cached is not None:
            return cached
        sources = self.store.get_definition(definition_hash)
        if not sources:
            raise NotFound(f"the definition snapshot {definition_hash[:12]} is not in the "
                           "store: replay with use_current_definition")
        root = next(iter(sources))
        try:
            definition = load_sources(sources, root, registry=self.registry, env=self.env)
        except ConfigError as exc:
            raise InvalidInput(f"the original definition no longer loads ({exc}): replay "
                               "with use_current_definition") from None
        engine = await self._engine_for(definition)
        self._snapshots[definition_hash] = engine
        return engine

    def _find_running(self, execution_id: str) -> Engine | None:
        """The engine running this execution of the caller's tenant."""
        tenant = current_tenant.get()
        for engine in [*self._engines.values(), *self._snapshots.values()]:
            entry = engine.running.get(execution_id)
            if entry is not None and entry[0].record.tenant == tenant:
                return engine
        return None

    # ------------------------------------------------------------------ info and definitions

    async def version(self) -> VersionInfo:
        # A server tells its callers the kind of store, not where it is.
        store = self.store.url if self.names is None else self.store.dialect
        return VersionInfo(engine_version=__version__, backend="local", store=store)

    async def health(self) -> dict[str, Any]:
        return {"ok": True, "store": self.store.dialect, "pipelines": len(self._pipeline_names()),
                "running": sum(len(e.running) for e in self._engines.values())}

    async def list_pipelines(self) -> list[PipelineInfo]:
        infos = []
        for engine in self._visible():
            d = engine.definition
            for p in d.pipelines.values():
                infos.append(PipelineInfo(
                    name=p.name, file=d.path, description=p.description,
                    trigger={"type": p.trigger.type, "config": p.trigger.config},
                    steps=[{"name": s.name, "type": s.type} for s in p.steps],
                    definition_hash=d.hash))
        return sorted(infos, key=lambda i: i.name)

    async def get_definition(self, pipeline: str) -> DefinitionText:
        d = self._engine(pipeline).definition
        return DefinitionText(file=d.path, text=d.sources.get(d.path, ""), hash=d.hash,
                              pipelines=list(d.pipelines))

    async def validate(self, yaml_text: str, file: str = "<text>", *,
                       policy: ImportPolicy = LOCAL) -> list[DiagnosticInfo]:
        """Diagnostics of a file's text; ``policy`` says which imports may be read (the
        server passes its definition roots)."""
        try:
            definition = await self._off_loop(lambda: load_text(
                yaml_text, file, registry=self.registry, env=self.env, policy=policy))
        except ConfigError as exc:
            return [_diagnostic(d) for d in exc.diagnostics]
        return [_diagnostic(d) for d in definition.warnings]

    async def _off_loop(self, load: Callable[[], Definition]) -> Definition:
        """Run a load in the loaders' threads, so the event loop keeps answering, and give up
        after ``load_time_limit`` seconds with a 422 (the thread finishes on its own: loads are
        bounded by the parser's alias budget and the file size caps)."""
        future = asyncio.get_running_loop().run_in_executor(_loaders(), load)
        # After a time-out nobody awaits it: its outcome must not be logged as lost.
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.load_time_limit)
        except TimeoutError:
            raise InvalidInput(
                f"checking this pipeline file took longer than {self.load_time_limit:g} s; it is "
                "too large or too complex: split it into smaller files that import each other",
                details=[{"reason": "time_limit", "seconds": self.load_time_limit}]) from None

    async def step_types(self) -> list[StepTypeInfo]:
        return [StepTypeInfo(name=t.name, description=t.description, category=t.category,
                             schema_=t.schema, output=t.output, example=t.example,
                             substep_keys=dict(t.substep_keys), step_refs=sorted(t.step_refs),
                             module_refs=sorted(t.module_refs), program_keys=sorted(t.program_keys))
                for t in sorted(self.registry.steps.values(), key=lambda t: t.name)]

    async def connector_types(self) -> list[ConnectorTypeInfo]:
        kinds: list[tuple[str, SourceType | SinkType]] = [
            ("source", t) for t in self.registry.sources.values()]
        kinds += [("sink", t) for t in self.registry.sinks.values()]
        return [ConnectorTypeInfo(name=t.name, kind=kind,  # type: ignore[arg-type]
                                  description=t.description, schema_=t.schema,
                                  example=t.example, secret_keys=sorted(t.secret_keys))
                for kind, t in sorted(kinds, key=lambda kt: kt[1].name)]

    async def put_definition(self, yaml_text: str, file: str, *,
                             policy: ImportPolicy = LOCAL) -> DefinitionText:
        """Validate ``yaml_text``, write it to ``file`` and (re)load it; invalid text changes
        nothing. On a server ``file`` is named relative to ``policy.base`` (the tenant's
        deploy folder) in everything the service says about it."""
        disk, name = os.path.abspath(file), file
        if self.names is not None:
            name, _ = self.names.name(disk, policy.base)
        try:
            definition = await self._off_loop(lambda: load_text(
                yaml_text, name, registry=self.registry, env=self.env, policy=policy))
        except ConfigError as exc:
            raise InvalidInput(str(exc), details=[_diagnostic(d).model_dump()
                                                  for d in exc.diagnostics]) from None
        self._check_clash(definition, disk)  # refuse before anything is written
        path = Path(disk)
        path.parent.mkdir(parents=True, exist_ok=True)
        before = path.read_text(encoding="utf-8") if path.is_file() else None
        _write_atomically(path, yaml_text)
        try:
            definition = await self._off_loop(lambda: load_file(
                name, registry=self.registry, env=self.env, policy=policy))
            await self._install(definition, disk)
        except BaseException:  # e.g. a module refused its config: the old file stays
            if before is None:
                path.unlink(missing_ok=True)
            else:
                _write_atomically(path, before)
            raise
        return DefinitionText(file=definition.path, text=yaml_text, hash=definition.hash,
                              pipelines=list(definition.pipelines))

    # ------------------------------------------------------------------ runs

    async def run(self, pipeline: str, input: Any = None,
                  options: RunOptions | None = None) -> RunResult:
        options = options or RunOptions()
        engine = self._engine(pipeline)
        controls = RunControls(mocks=options.mocks, breakpoints=options.breakpoints,
                               record=options.record)
        return await self._start(engine, pipeline, input, controls, options.wait)

    async def _start(self, engine: Engine, pipeline: str, payload: Any, controls: RunControls,
                     wait: bool, *, replay_of: str | None = None,
                     trigger_type: str | None = None) -> RunResult:
        execution_id = new_execution_id()
        coro = engine.run(pipeline, payload, execution_id=execution_id, replay_of=replay_of,
                          trigger_type=trigger_type, controls=controls)
        if wait:
            return _result(await coro)
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        await engine.started(execution_id, task)
        if task.done() and (task.cancelled() or task.exception() is not None):
            task.result()  # it never started: say why instead of acknowledging it
        # Acknowledged means recorded: a process killed after this answer keeps the run
        # (its start is committed; a restart marks it interrupted). The flush is shared
        # with every other run waiting for the same batch (group commit).
        try:
            await self.store.recorder.flush(execution_id)
        except ExecutionRefused as exc:  # recorded, as failed (recorder.py)
            return RunResult(execution_id=execution_id, status="failed",
                             error={"message": str(exc), "type": "store"})
        return RunResult(execution_id=execution_id, status="running")

    async def _run_linked(self, pipeline: str, payload: Any, origin: dict[str, Any],
                          trigger_type: str) -> RunResult:
        """DLQ retries and backfills: a new execution whose start event says why it exists.

        These are batch operations: they do not stop at breakpoints.
        """
        engine = self._engine(pipeline)
        return await self._start(engine, pipeline, payload,
                                 RunControls(origin=origin, breakpoints=False), True,
                                 trigger_type=trigger_type)

    async def cancel(self, execution_id: str) -> bool:
        engine = self._find_running(execution_id)
        if engine is None:
            await self.store.recorder.flush()
            self._record(execution_id)  # unknown ids are NotFound, finished ones just False
            return False
        return await engine.cancel(execution_id)

    # ------------------------------------------------------------------ executions

    def _record(self, execution_id: str) -> ExecutionRecord:
        """The caller's tenant's execution; another tenant's is as absent as an unknown id."""
        record = self.store.get_execution(execution_id)
        if record is None or record.tenant != current_tenant.get():
            raise NotFound(f"no execution {execution_id!r}")
        return record

    async def list_executions(self, filter: ExecutionFilter | None = None) -> ExecutionPage:
        f = filter or ExecutionFilter()

        def read() -> ExecutionPage:  # off the loop: a page may be thousands of rows
            try:
                rows, cursor = self.store.list_executions(
                    pipeline=f.pipeline, status=f.status, since=f.since, until=f.until, text=f.text,
                    limit=f.limit, cursor=f.cursor, tenant=current_tenant.get())
            except ValueError as exc:
                raise InvalidInput(str(exc)) from None
            return ExecutionPage(items=[_summary(r) for r in rows], next_cursor=cursor)

        return await asyncio.to_thread(read)

    async def get_execution(self, execution_id: str) -> ExecutionSummary:
        await self.store.recorder.flush()  # read your own writes
        return _summary(self._record(execution_id))

    async def timeline(self, execution_id: str) -> Timeline:
        await self.store.recorder.flush()  # read your own writes

        def read() -> Timeline:  # off the loop: a long execution is tens of thousands of rows
            record = self._record(execution_id)
            runs = self.store.timeline(execution_id)
            return Timeline(execution=_summary(record),
                            steps=[StepRun.model_validate(r, from_attributes=True) for r in runs])

        return await asyncio.to_thread(read)

    async def events(self, execution_id: str, after_seq: int = 0, types: list[str] | None = None,
                     limit: int = 1000) -> list[Event]:
        await self.store.recorder.flush()  # read your own writes

        def read() -> list[Event]:  # off the loop, as timeline()
            self._record(execution_id)
            return [Event.model_validate(e, from_attributes=True)
                    for e in self.store.events(execution_id, after_seq=after_seq, types=types,
                                               limit=max(1, min(limit, 10_000)))]

        return await asyncio.to_thread(read)

    async def subscribe(self, execution_id: str | None = None,
                        after_seq: int = 0) -> AsyncIterator[Event]:
        if execution_id is not None and self._find_running(execution_id) is None:
            self._record(execution_id)
        tenant = current_tenant.get()
        async for event in self.hub.subscribe(self.store, self.store.recorder, execution_id,
                                              after_seq):
            if execution_id is None and self._tenant_of(event.execution_id) != tenant:
                continue  # the all-executions stream carries the caller's tenant only
            yield Event.model_validate(event, from_attributes=True)

    # ------------------------------------------------------------------ replay and diff

    async def _prepare_replay(self, execution_id: str, options: ReplayOptions) -> PreparedReplay:
        await self.store.recorder.flush()
        original = self._record(execution_id)
        engine = (self._engine(original.pipeline) if options.use_current_definition
                  else await self._snapshot_engine(original.definition_hash))
        pipeline = engine.definition.pipelines.get(original.pipeline)
        if pipeline is None:
            raise InvalidInput(f"pipeline {original.pipeline!r} is not in the definition to replay")
        mocked = {m.step for m in self.mocks.list(original.pipeline, tenant=original.tenant)
                  if m.enabled}
        return prepare_replay(self.store, original, execution_id, options, pipeline,
                              engine.definition.hash, mocked)

    async def replay_plan(self, execution_id: str,
                          options: ReplayOptions | None = None) -> ReplayPlan:
        return (await self._prepare_replay(execution_id, options or ReplayOptions())).plan

    async def replay(self, execution_id: str, options: ReplayOptions | None = None) -> RunResult:
        options = options or ReplayOptions()
        prepared = await self._prepare_replay(execution_id, options)
        engine = (self._engine(prepared.original.pipeline) if options.use_current_definition
                  else await self._snapshot_engine(prepared.original.definition_hash))
        return await self._start(engine, prepared.pipeline.name, prepared.payload,
                                 prepared.controls, options.wait, replay_of=execution_id,
                                 trigger_type="replay")

    async def diff(self, a: str, b: str) -> ExecutionDiff:
        await self.store.recorder.flush()
        self._record(a)
        self._record(b)
        # off the loop: two long executions are reads plus an alignment of every step run
        return await asyncio.to_thread(diff_executions, self.store, a, b)

    # ------------------------------------------------------------------ debugger

    async def list_breakpoints(self) -> list[Breakpoint]:
        return self.debugger.breakpoints(current_tenant.get())

    async def set_breakpoint(self, pipeline: str, step: str,
                             condition: str | None = None) -> Breakpoint:
        self._check_step(pipeline, step)
        return self.debugger.set(pipeline, step, condition, tenant=current_tenant.get())

    def _check_step(self, pipeline: str, step: str) -> None:
        definition = self._engine(pipeline).definition.pipelines[pipeline]
        known: set[str] = set()

        def walk(steps: list[Any], prefix: str) -> None:
            for s in steps:
                known.update((s.name, prefix + s.name))
                for children in s.substeps.values():
                    walk(children, prefix + s.name + "/")

        walk(definition.steps, "")
        if step not in known:
            raise InvalidInput(f"pipeline {pipeline!r} has no step {step!r}")

    async def remove_breakpoint(self, breakpoint_id: str) -> None:
        self.debugger.remove(breakpoint_id, tenant=current_tenant.get())

    async def enable_breakpoint(self, breakpoint_id: str, enabled: bool = True) -> Breakpoint:
        return self.debugger.enable(breakpoint_id, enabled, tenant=current_tenant.get())

    async def pause_new_runs(self, pipeline: str, enabled: bool = True) -> None:
        self._engine(pipeline)
        self.debugger.pause_new_runs(pipeline, enabled, tenant=current_tenant.get())

    async def paused(self) -> list[PausedExecution]:
        tenant = current_tenant.get()
        return [p for p in self.debugger.paused() if self._tenant_of(p.execution_id) == tenant]

    async def resume(self, execution_id: str, action: ResumeAction = "continue",
                     patch: list[dict[str, Any]] | None = None) -> None:
        if not any(p.execution_id == execution_id for p in await self.paused()):
            self._record(execution_id)
        # On a shared PostgreSQL store the pause may be held by another server process.
        await self.debugger.resume_anywhere(execution_id, action, patch)

    # ------------------------------------------------------------------ mocks

    async def list_mocks(self, pipeline: str | None = None) -> list[Mock]:
        return self.mocks.list(pipeline, tenant=current_tenant.get())

    async def set_mock(self, pipeline: str, step: str, *, mode: MockMode = "fixed",
                       output: Any = None, error: dict[str, Any] | None = None,
                       delay_ms: float = 0.0, enabled: bool = True) -> Mock:
        self._check_step(pipeline, step)
        return self.mocks.set(pipeline, step, mode=mode, output=output, error=error,
                              delay_ms=delay_ms, enabled=enabled, tenant=current_tenant.get())

    async def mock_from_execution(self, execution_id: str, step: str) -> Mock:
        await self.store.recorder.flush()
        record = self._record(execution_id)
        output: Any = None
        found = None
        for data in step_outputs(self.store, execution_id):  # the last output of that step wins
            if step in (data.get("path"), data.get("step")):
                found, output = data.get("path") or step, data.get("output")
        if found is None:
            raise InvalidInput(f"step {step!r} has no recorded output in execution {execution_id!r}")
        return self.mocks.set(record.pipeline, found, mode="recorded", output=output,
                              source_execution_id=execution_id, tenant=record.tenant)

    async def remove_mock(self, mock_id: str) -> None:
        self.mocks.remove(mock_id, tenant=current_tenant.get())

    async def clear_mocks(self, pipeline: str | None = None) -> int:
        return self.mocks.clear(pipeline, tenant=current_tenant.get())

    # ------------------------------------------------------------------ dead-letter queue

    async def list_dlq(self, filter: DlqFilter | None = None) -> list[DlqEntry]:
        return self.dlq.list(filter or DlqFilter())

    async def dlq_stats(self) -> dict[str, int]:
        return self.dlq.stats()

    async def get_dlq(self, entry_id: str) -> DlqEntry:
        return self.dlq.get(entry_id)

    async def retry_dlq(self, entry_ids: list[str], patch: list[dict[str, Any]] | None = None,
                        progress: Progress | None = None, force: bool = False) -> list[DlqRetryResult]:
        return await self.dlq.retry(entry_ids, patch, progress, force=force)

    async def resolve_dlq(self, entry_id: str) -> DlqEntry:
        return self.dlq.resolve(entry_id)

    async def discard_dlq(self, entry_id: str) -> DlqEntry:
        return self.dlq.discard(entry_id)

    async def purge_dlq(self, older_than: float) -> int:
        return self.dlq.purge(older_than)

    # ------------------------------------------------------------------ backfill

    async def start_backfill(self, request: BackfillRequest) -> Backfill:
        return await self._backfill_manager().start(request)

    async def list_backfills(self) -> list[Backfill]:
        return self._backfill_manager().list()

    async def get_backfill(self, backfill_id: str) -> Backfill:
        return self._backfill_manager().get(backfill_id)

    async def cancel_backfill(self, backfill_id: str) -> Backfill:
        return await self._backfill_manager().cancel(backfill_id)

    # ------------------------------------------------------------------ event schemas

    async def list_schemas(self) -> list[EventSchemaInfo]:
        """The caller's tenant's schemas: declared in the files it sees, then registered."""
        table = models.event_schemas
        with self.store.read() as conn:
            rows = conn.execute(select(table).where(table.c.tenant == current_tenant.get())
                                .order_by(table.c.type, table.c.version)).mappings().all()
        stored = [EventSchemaInfo(type=r["type"], version=r["version"], schema_=r["schema"])
                  for r in rows]
        declared = [EventSchemaInfo(type=name, version=0, schema_=schema)
                    for e in self._visible()
                    for name, schema in e.definition.schemas.items() if isinstance(schema, dict)]
        return declared + stored

    async def register_schema(self, type: str, schema: dict[str, Any]) -> EventSchemaInfo:
        """A new version of ``type`` in the caller's tenant's registry (versions count per
        tenant: another tenant's ``type`` is neither seen nor superseded)."""
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise InvalidInput(f"not a valid JSON Schema: {exc.message}") from None
        table = models.event_schemas
        tenant = current_tenant.get()
        for attempt in range(5):
            try:
                with self.store.begin() as conn:
                    latest = conn.execute(select(func.max(table.c.version)).where(
                        table.c.tenant == tenant, table.c.type == type)).scalar()
                    version = (latest or 0) + 1
                    conn.execute(table.insert().values(tenant=tenant, type=type, version=version,
                                                       schema=schema, created=time.time()))
                return EventSchemaInfo(type=type, version=version, schema_=schema)
            except StoreError as exc:  # another process took this version number first
                if not isinstance(exc.__cause__, IntegrityError) or attempt == 4:
                    raise
        raise AssertionError("unreachable")

    async def validate_event(self, type: str, data: Any) -> list[str]:
        schemas = [s for s in await self.list_schemas() if s.type == type]
        if not schemas:
            raise NotFound(f"no schema registered for event type {type!r}")
        latest = max(schemas, key=lambda s: s.version)
        validator = jsonschema.Draft202012Validator(latest.schema_)
        return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                for e in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path)))]

    # ------------------------------------------------------------------ sources

    async def list_sources(self) -> list[SourceInfo]:
        return await self.sources.infos()

    async def start_source(self, name: str) -> SourceInfo:
        return await self.sources.start(name)

    async def stop_source(self, name: str) -> SourceInfo:
        return await self.sources.stop(name)

    async def send_test_event(self, name: str, event: TestEvent) -> SourceDelivery:
        return await self.sources.send_test(name, event)

    async def source_deliveries(self, name: str, limit: int = 50) -> list[SourceDelivery]:
        return await self.sources.deliveries(name, limit)

    # ------------------------------------------------------------------ plugins

    async def installed_plugins(self) -> list[PluginInfo]:
        return [PluginInfo(**p) for p in self.registry.plugins]


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # a reader never sees half a file


def _diagnostic(d: Any) -> DiagnosticInfo:
    return DiagnosticInfo(file=d.file, line=d.line, col=d.col, message=d.message,
                          severity=d.severity)


def _summary(r: ExecutionRecord) -> ExecutionSummary:
    return ExecutionSummary.model_validate(r, from_attributes=True)


def _result(ex: Execution) -> RunResult:
    return RunResult(execution_id=ex.id, status=ex.status, output=ex.output, error=ex.error,
                     response=ex.response, duration_ms=ex.duration_ms)

