"""The sources of the loaded files: which exist, which run, and the service calls on them.

A source is a connector of a ``source.*`` type that at least one pipeline of its file takes
events from (an ``event`` trigger naming it), or the implicit ``schedule:<pipeline>`` of a
pipeline with an enabled ``schedule`` trigger (``engine.service.schedules``). There is one
per (tenant, connector name): a file the server was started with serves tenant
``default``; a deployed file, its owner.
``wfstudio serve`` starts them all (``autostart``) and starts again those whose file
changed; the studio starts them on demand.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import jsonschema

from engine.config.model import Definition
from engine.connectors.envelope import make
from engine.connectors.types import Delivery, Outcome
from engine.redaction import redact_secrets
from engine.service.errors import InvalidInput, NotFound
from engine.service.models import SourceDelivery, SourceInfo, TestEvent
from engine.service.schedules import schedule_connectors, schedules_pipeline
from engine.service.source_runtime import Route, SourceRuntime
from engine.store import intake
from engine.tenancy import DEFAULT_TENANT, current_tenant

if TYPE_CHECKING:
    from engine.api import Engine
    from engine.service.local import LocalService

SCHEMA_CACHE = 5.0  # seconds a looked-up event schema is reused


def source_routes(definition: Definition, name: str) -> list[Route]:
    """The pipelines of ``definition`` whose ``event`` trigger names connector ``name``
    (or, for ``schedule:P``, pipeline P's own schedule)."""
    routes = []
    for pipeline in definition.pipelines.values():
        trigger = pipeline.trigger
        if trigger.type == "event" and trigger.config.get("connector") == name:
            types = trigger.config.get("type")
            routes.append(Route(pipeline, str(types) if types else None))
        elif (fired := schedules_pipeline(pipeline, name)) is not None:
            routes.append(Route(pipeline, fired))
    return routes


class SourceManager:
    def __init__(self, service: LocalService, *, autostart: bool = False):
        self.service = service
        self.autostart = autostart
        self.runtimes: dict[tuple[str, str], SourceRuntime] = {}
        self._keys: dict[tuple[str, str], tuple[str, str]] = {}  # -> (file hash, config text)
        self._schemas: dict[tuple[str, str], tuple[float, Any]] = {}
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ what exists

    def _wanted(self) -> dict[tuple[str, str], tuple[Definition, dict[str, Any]]]:
        wanted: dict[tuple[str, str], tuple[Definition, dict[str, Any]]] = {}
        sources = self.service.registry.sources
        for definition, owner in self.service.owned_definitions():
            tenant = owner or DEFAULT_TENANT
            for connector in definition.connectors:
                if connector.get("type") in sources and source_routes(definition,
                                                                      connector["name"]):
                    wanted.setdefault((tenant, connector["name"]), (definition, connector))
            for connector in schedule_connectors(definition):  # implicit: schedule:<pipeline>
                if connector["type"] in sources:
                    wanted.setdefault((tenant, connector["name"]), (definition, connector))
        return wanted

    async def refresh(self) -> None:
        """Follow the loaded files: new sources appear (started if ``autostart``), changed
        ones start again with their new config, removed ones stop."""
        async with self._lock:
            wanted = self._wanted()
            for key in [k for k in self.runtimes if k not in wanted]:
                await self.runtimes.pop(key).close()
                self._keys.pop(key, None)
            for key, (definition, connector) in wanted.items():
                stamp = (definition.hash, repr(sorted(connector.items(), key=lambda kv: kv[0])))
                old = self.runtimes.get(key)
                if old is not None and self._keys.get(key) == stamp:
                    if self.autostart and old.since is None:
                        old.start()  # loaded before autostart was turned on (serve), never run
                    continue
                was_running = old is not None and old.running
                if old is not None:
                    await old.stop()
                runtime = self._make(key[0], definition, connector)
                self.runtimes[key] = runtime
                self._keys[key] = stamp
                if self.autostart or was_running:
                    runtime.start()

    def _make(self, tenant: str, definition: Definition, connector: dict[str, Any]) -> SourceRuntime:
        name = connector["name"]
        config = connector.get("config") or {}
        return SourceRuntime(
            tenant=tenant, name=name, file=definition.path, config=dict(config),
            kind=self.service.registry.sources[connector["type"]], definition=definition,
            routes=source_routes(definition, name), store=self.service.store,
            engine_for=self._engine_for(tenant), schema_check=self._schema_check(tenant))

    def _engine_for(self, tenant: str) -> Callable[[str], Engine]:
        def find(pipeline: str) -> Engine:
            token = current_tenant.set(tenant)
            try:
                return self.service.engine_for(pipeline)
            finally:
                current_tenant.reset(token)
        return find

    def _schema_check(self, tenant: str) -> Callable[[str, Any], Any]:
        async def check(schema_type: str, data: Any) -> list[str] | None:
            cached = self._schemas.get((tenant, schema_type))
            if cached is None or time.monotonic() - cached[0] > SCHEMA_CACHE:
                token = current_tenant.set(tenant)
                try:
                    known = [s for s in await self.service.list_schemas() if s.type == schema_type]
                finally:
                    current_tenant.reset(token)
                validator = (jsonschema.Draft202012Validator(
                    max(known, key=lambda s: s.version).schema_) if known else None)
                cached = self._schemas[(tenant, schema_type)] = (time.monotonic(), validator)
            validator = cached[1]
            if validator is None:
                return None
            return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                    for e in validator.iter_errors(data)]
        return check

    def visible(self) -> list[SourceRuntime]:
        tenant = current_tenant.get()
        return sorted((r for (t, _), r in self.runtimes.items() if t == tenant),
                      key=lambda r: r.name)

    def get(self, name: str) -> SourceRuntime:
        runtime = self.runtimes.get((current_tenant.get(), name))
        if runtime is None:
            known = ", ".join(r.name for r in self.visible()) or "none"
            raise NotFound(f"no source named {name!r} (sources: {known}); a source is a "
                           "connector of a source type that a pipeline's event trigger names, or "
                           "schedule:<pipeline> for an enabled schedule trigger")
        return runtime

    # ------------------------------------------------------------------ service calls

    async def infos(self) -> list[SourceInfo]:
        """The caller's tenant's sources, each with the JSON Schema of its events' data
        (its ``schema`` setting's latest version), which the studio's test form is made from."""
        runtimes = self.visible()
        wanted = {r.event_schema for r in runtimes if r.event_schema}
        schemas: dict[str, tuple[int, dict[str, Any]]] = {}
        if wanted:
            for known in await self.service.list_schemas():
                if known.type in wanted and (known.type not in schemas
                                             or known.version >= schemas[known.type][0]):
                    schemas[known.type] = (known.version, known.schema_)
        infos = []
        for runtime in runtimes:
            info = self.info(runtime)
            if runtime.event_schema in schemas:
                info.event_schema = schemas[runtime.event_schema][1]
            infos.append(info)
        return infos

    def info(self, runtime: SourceRuntime) -> SourceInfo:
        c = runtime.counters
        return SourceInfo(
            name=runtime.name, type=runtime.kind.name, file=runtime.file,
            pipelines=[r.pipeline.name for r in runtime.routes], state=runtime.state(),
            config=_masked(runtime.config, runtime.kind.secret_keys),
            delivered=c.delivered, acknowledged=c.acknowledged, redelivered=c.redelivered,
            dead_lettered=c.dead_lettered, filtered=c.filtered, started=c.started,
            in_flight=runtime.in_flight, lag=c.lag,
            lag_unit=runtime.kind.lag_unit,
            last_error=c.last_error, since=runtime.since if runtime.running else None)

    async def start(self, name: str) -> SourceInfo:
        runtime = self.get(name)
        runtime.start()
        return self.info(runtime)

    async def stop(self, name: str) -> SourceInfo:
        runtime = self.get(name)
        await runtime.stop()
        return self.info(runtime)

    async def send_test(self, name: str, event: TestEvent) -> SourceDelivery:
        """Deliver a made-up event through the source's intake (its transport is not used:
        this works with the source stopped), exactly as a real one would be taken in."""
        runtime = self.get(name)
        event_type = event.type or _plain_type(runtime.routes)
        try:
            envelope = make(f"wfstudio:test/{name}", event_type, event.data, id=event.id,
                            subject=event.subject)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        [outcome] = await runtime.deliver([Delivery(envelope)])
        if outcome is Outcome.REFUSED:
            raise InvalidInput(f"the store did not take the event: {runtime.counters.last_error}")
        found = await asyncio.to_thread(intake.lookup, self.service.store, runtime.tenant, name,
                                        [envelope["id"]])
        row = found.get(envelope["id"])
        if row is None:  # filtered: nothing recorded
            return SourceDelivery(source=name, event_id=envelope["id"], type=event_type,
                                  outcome="filtered", received=time.time())
        delivery = _delivery(row)
        if outcome is Outcome.DUPLICATE:
            delivery.outcome = "duplicate"
        return delivery

    async def deliveries(self, name: str, limit: int = 50) -> list[SourceDelivery]:
        runtime = self.get(name)
        rows = await asyncio.to_thread(intake.recent, self.service.store, runtime.tenant, name,
                                       max(1, min(limit, 1000)))
        return [_delivery(r) for r in rows]

    async def close(self) -> None:
        async with self._lock:
            await asyncio.gather(*(r.close() for r in self.runtimes.values()),
                                 return_exceptions=True)
            self.runtimes.clear()


def _plain_type(routes: Iterable[Route]) -> str:
    for route in routes:
        if route.types and not any(c in route.types for c in "*?["):
            return route.types
    return "wfstudio.test"


def _masked(config: dict[str, Any], secret_keys: frozenset[str]) -> dict[str, Any]:
    shown = redact_secrets(config)
    return {k: ("***" if k in secret_keys and v is not None else v) for k, v in shown.items()}


def _delivery(row: intake.DeliveryRow) -> SourceDelivery:
    outcome = {"started": "started", "done": "done", "dead": "dead_lettered"}.get(row.status,
                                                                                 "started")
    return SourceDelivery(source=row.source, event_id=row.event_id, type=row.type,
                          pipeline=row.pipeline, outcome=outcome,  # type: ignore[arg-type]
                          execution_id=row.execution_id, execution_status=row.execution_status,
                          dlq_entry=row.dlq_entry, deliveries=row.deliveries,
                          received=row.received)
