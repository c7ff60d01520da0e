"""One running source: the engine's ``Intake`` for it, its counters and its task.

``deliver`` is where at-least-once becomes one execution per event. For a batch it checks
each envelope, routes it by type to the pipeline whose ``event`` trigger takes it, checks
its data against the source's event schema, and then records, in one transaction
(``engine.store.intake.take``), a dedup row plus either the execution's start or a DLQ
entry. Only then does it return, and only then does the source acknowledge. Executions
run in the background, at most ``max_in_flight`` at once: past that, ``deliver`` waits
(the source slows its intake; nothing is dropped).
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.config.model import Definition, PipelineDef
from engine.connectors.envelope import InvalidEnvelope, from_record
from engine.connectors.types import Delivery, Outcome, Source, SourceType
from engine.errors import StoreError
from engine.redaction import redact_secrets, redact_trigger
from engine.store import intake
from engine.store.ids import new_execution_id
from engine.tenancy import current_tenant

if TYPE_CHECKING:
    from engine.api import Engine
    from engine.store.store import Store

log = logging.getLogger("wfstudio.sources")

RESTART_DELAY = (0.5, 30.0)  # first and longest wait before a failed source runs again
RERUN_EVERY = 10.0  # seconds between looks for events whose execution a dead process left
FINISH_EVERY = 0.2  # seconds between writes marking ended executions' events done
HISTORY = 600  # lag samples kept for the plot


@dataclass
class Route:
    pipeline: PipelineDef
    types: str | None  # a type pattern (fnmatch), None: every type

    def takes(self, event_type: str) -> bool:
        return self.types is None or fnmatch.fnmatchcase(event_type, self.types)


class Counters:
    def __init__(self) -> None:
        self.delivered = self.acknowledged = self.redelivered = 0
        self.dead_lettered = self.filtered = self.started = 0
        self.lag: float | None = None
        self.last_error: str | None = None
        self.history: deque[tuple[float, float]] = deque(maxlen=HISTORY)


class SourceRuntime:
    """A source connector of one loaded file, for one tenant."""

    def __init__(self, *, tenant: str, name: str, file: str, config: dict[str, Any],
                 kind: SourceType, definition: Definition, routes: list[Route], store: Store,
                 engine_for: Callable[[str], Engine],
                 schema_check: Callable[[str, Any], Awaitable[list[str] | None]]):
        self._tenant = tenant
        self.name = name
        self.file = file
        self.config = config
        self.kind = kind
        self.definition = definition
        self.routes = routes
        self.store = store
        self._engine_for = engine_for
        self._schema_check = schema_check
        self.max_deliveries = int(config.get("max_deliveries", 5))
        self.max_in_flight = int(config.get("max_in_flight", 64))
        self.event_schema: str | None = config.get("schema")
        self.counters = Counters()
        self.since: float | None = None
        self.source: Source | None = None
        self._task: asyncio.Task[None] | None = None
        # execution id -> its task, from its recorded start until it ends (waiting included)
        self._running: dict[str, asyncio.Task[Any]] = {}
        self._slots = asyncio.Semaphore(self.max_in_flight)
        self._engines: dict[str, Engine] = {}
        self._active = 0
        self._room = asyncio.Event()
        self._room.set()
        self._ended: list[tuple[str, str, str]] = []  # (source, event id, execution id)
        self._finisher: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ Intake

    @property
    def tenant(self) -> str:
        return self._tenant

    @property
    def instance_id(self) -> str:
        return self.store.instance_id

    def lock(self, name: str, timeout: float | None = None) -> Any:
        return self.store.lock(f"source:{self._tenant}:{name}", timeout)

    async def last_event_id(self, prefix: str = "") -> str | None:
        return await asyncio.to_thread(intake.last_event_id, self.store, self._tenant,
                                       self.name, prefix)

    def acknowledged(self, count: int) -> None:
        self.counters.acknowledged += count

    def report_lag(self, lag: float | None) -> None:
        self.counters.lag = lag
        if lag is not None:
            self.counters.history.append((time.time(), float(lag)))

    def report_error(self, message: str | None) -> None:
        if message and message != self.counters.last_error:
            log.warning("source %r: %s", self.name, message)
        self.counters.last_error = message

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        self.counters.delivered += len(deliveries)
        while len(self._running) >= self.max_in_flight:
            self._room.clear()
            await self._room.wait()
        outcomes: list[Outcome | None] = [None] * len(deliveries)
        admissions: list[tuple[int, intake.Admission, Route]] = []
        dead: list[tuple[int, intake.DeadLetter]] = []
        for i, delivery in enumerate(deliveries):
            verdict = await self._admit(delivery)
            if verdict is None:
                outcomes[i] = Outcome.FILTERED
                self.counters.filtered += 1
            elif isinstance(verdict, intake.DeadLetter):
                dead.append((i, verdict))
            else:
                admissions.append((i, *verdict))
        if admissions or dead:
            try:
                started, lettered = await asyncio.to_thread(
                    intake.take, self.store, self._tenant, [a for _, a, _ in admissions],
                    [d for _, d in dead])
            except StoreError as exc:
                self.report_error(f"could not record events (they will be redelivered): {exc}")
                return [o or Outcome.REFUSED for o in outcomes]
            for (i, admission, route), taken in zip(admissions, started, strict=True):
                if taken.new:
                    outcomes[i] = Outcome.STARTED
                    self.counters.started += 1
                    self._launch(route.pipeline.name, admission.envelope,
                                 admission.execution_id, admission.event_id)
                else:
                    outcomes[i] = Outcome.DUPLICATE
                    self.counters.redelivered += 1
            for (i, _letter), taken in zip(dead, lettered, strict=True):
                outcomes[i] = Outcome.DEAD_LETTERED if taken.new else Outcome.DUPLICATE
                if taken.new:
                    self.counters.dead_lettered += 1
                else:
                    self.counters.redelivered += 1
        if self.counters.last_error and all(o is not Outcome.REFUSED for o in outcomes):
            self.counters.last_error = None
        return [o or Outcome.REFUSED for o in outcomes]

    async def _admit(self, delivery: Delivery) -> tuple[intake.Admission, Route] | intake.DeadLetter | None:
        """What to do with one delivery: start (admission), dead-letter, or skip (None)."""
        raw = delivery.event
        first = self.routes[0].pipeline.name
        event_id = str(raw.get("id", "")) if isinstance(raw, dict) else ""
        event_type = raw.get("type") if isinstance(raw, dict) else None

        def letter(error: str, kind: str, pipeline: str = first) -> intake.DeadLetter:
            return intake.DeadLetter(self.name, event_id or new_execution_id(), event_type,
                                     pipeline, raw, error, kind, attempt=delivery.attempt)
        try:
            envelope = from_record(raw)
        except InvalidEnvelope as exc:
            return letter(str(exc), "invalid_event")
        event_type = envelope["type"]
        route = next((r for r in self.routes if r.takes(event_type)), None)
        if route is None:
            return None
        pipeline = route.pipeline
        if delivery.attempt > self.max_deliveries:
            return letter(f"delivered {delivery.attempt} times (max_deliveries is "
                          f"{self.max_deliveries}) without being recorded", "max_deliveries",
                          pipeline.name)
        if self.event_schema:
            violations = await self._schema_check(self.event_schema, envelope.get("data"))
            if violations is None:
                return letter(f"the event schema {self.event_schema!r} is not registered: "
                              "register it (wfstudio schemas add) and retry", "schema_missing",
                              pipeline.name)
            if violations:
                return letter(f"the event's data does not match the schema "
                              f"{self.event_schema!r}: " + "; ".join(violations[:20]),
                              "schema_violation", pipeline.name)
        admission = intake.Admission(
            self.name, envelope["id"], event_type, pipeline.name, new_execution_id(), envelope,
            redact_trigger(envelope, pipeline.record), self.definition.hash, delivery.attempt,
            self.kind.trigger_type)
        return admission, route

    # ------------------------------------------------------------------ executions

    def _launch(self, pipeline: str, envelope: Any, execution_id: str, event_id: str) -> None:
        # The engine of a pipeline is looked up once: a changed file makes a new runtime.
        engine = self._engines.get(pipeline)
        if engine is None:
            engine = self._engines[pipeline] = self._engine_for(pipeline)
        token = current_tenant.set(self._tenant)
        try:
            task = asyncio.ensure_future(self._run_one(engine, pipeline, envelope, execution_id))
        finally:
            current_tenant.reset(token)
        self._running[execution_id] = task

        def ended(done: asyncio.Task[Any]) -> None:
            self._running.pop(execution_id, None)
            self._room.set()
            if done.cancelled():
                return  # stopped with the service: a restart marks it interrupted, runs it again
            if done.exception() is not None:
                log.error("source %r: execution %s failed to run: %s", self.name, execution_id,
                          done.exception())
                return
            self._ended.append((self.name, event_id, execution_id))
        task.add_done_callback(ended)

    async def _run_one(self, engine: Engine, pipeline: str, envelope: Any,
                       execution_id: str) -> Any:
        # A batch may start more than max_in_flight; the extra ones wait their turn here
        # (their starts are recorded already), and intake waits until they have run.
        async with self._slots:
            self._active += 1
            try:
                return await engine.run(pipeline, envelope, execution_id=execution_id,
                                        trigger_type=self.kind.trigger_type)
            finally:
                self._active -= 1

    @property
    def in_flight(self) -> int:
        """Executions running now (at most ``max_in_flight``)."""
        return self._active

    async def _finish_loop(self) -> None:
        """Mark ended executions' events done, a batch at a time."""
        while True:
            await asyncio.sleep(FINISH_EVERY)
            await self._finish_now()

    async def _finish_now(self) -> None:
        ended, self._ended = self._ended, []
        if not ended:
            return
        try:
            await self.store.recorder.flush()  # their ends are durable before the mark
            await asyncio.to_thread(intake.finish, self.store, self._tenant, ended)
        except StoreError as exc:
            self._ended[:0] = ended
            self.report_error(f"could not mark finished events: {exc}")

    async def rerun_interrupted(self) -> int:
        """Run again the events whose execution a stopped process left interrupted."""
        count = 0
        try:
            await asyncio.to_thread(intake.settle_ended, self.store, self._tenant, self.name)
            found = await asyncio.to_thread(intake.interrupted, self.store, self._tenant, self.name)
        except StoreError as exc:
            self.report_error(f"could not look for interrupted events: {exc}")
            return 0
        for unfinished in found:
            route = next((r for r in self.routes if r.pipeline.name == unfinished.pipeline), None)
            if route is None or not isinstance(unfinished.envelope, dict):
                continue
            admission = intake.Admission(
                self.name, unfinished.event_id, unfinished.envelope.get("type"),
                route.pipeline.name, new_execution_id(), unfinished.envelope,
                redact_trigger(unfinished.envelope, route.pipeline.record), self.definition.hash,
                trigger_type=self.kind.trigger_type)
            try:
                claimed = await asyncio.to_thread(intake.claim_rerun, self.store, unfinished,
                                                  admission)
            except StoreError as exc:
                self.report_error(f"could not rerun event {unfinished.event_id}: {exc}")
                continue
            if claimed:
                count += 1
                self.counters.started += 1
                self._launch(route.pipeline.name, unfinished.envelope, admission.execution_id,
                             unfinished.event_id)
        if count:
            log.info("source %r: %d interrupted events run again", self.name, count)
        return count

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def state(self) -> str:
        if not self.running:
            return "stopped"
        if self.counters.last_error:
            return "failing"
        lag_alert = self.config.get("lag_alert", self.kind.lag_alert)
        if (self.counters.lag is not None and self.counters.lag > lag_alert) \
                or len(self._running) >= self.max_in_flight:
            return "lagging"
        return "running"

    def start(self) -> None:
        if self.running:
            return
        self.since = time.time()
        self.counters = Counters()
        token = current_tenant.set(self._tenant)
        try:
            self._task = asyncio.ensure_future(self._supervise())
            self._finisher = asyncio.ensure_future(self._finish_loop())
        finally:
            current_tenant.reset(token)

    async def _supervise(self) -> None:
        """Run the source; after a failure, report it and start it again (backing off)."""
        delay = RESTART_DELAY[0]
        reruns = asyncio.ensure_future(self._rerun_loop())
        try:
            while True:
                source = self.source = self.kind.factory(self.name, self.config)
                began = time.monotonic()
                try:
                    await source.run(self)
                    return  # a source that ends by itself (e.g. a one-off snapshot) is done
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the transport: report, back off, reconnect
                    self.report_error(redact_secrets(f"{type(exc).__name__}: {exc}"))
                finally:
                    await _close_quietly(source)
                if time.monotonic() - began > 60:
                    delay = RESTART_DELAY[0]
                await asyncio.sleep(delay)
                delay = min(delay * 2, RESTART_DELAY[1])
        finally:
            reruns.cancel()
            await asyncio.gather(reruns, return_exceptions=True)

    async def _rerun_loop(self) -> None:
        while True:
            await self.rerun_interrupted()
            await asyncio.sleep(RERUN_EVERY)

    async def stop(self) -> None:
        """Stop reading (what was not recorded is not acknowledged; the transport redelivers
        it). Executions already started run on: they belong to the engine."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        finisher, self._finisher = self._finisher, None
        if finisher is not None:
            finisher.cancel()
            await asyncio.gather(finisher, return_exceptions=True)

    async def close(self, grace: float = 30.0) -> None:
        """Stop, give the executions it started ``grace`` seconds to end, and mark the
        events of those that ended done (the others a restart runs again)."""
        await self.stop()
        running = list(self._running.values())
        if running:
            await asyncio.wait(running, timeout=grace)
        try:
            await self._finish_now()
        except Exception as exc:  # closing: say so, lose nothing (they are re-checked later)
            log.warning("source %r: %s", self.name, exc)


async def _close_quietly(source: Source) -> None:
    try:
        await source.close()
    except Exception as exc:
        log.debug("closing a source failed: %s", exc)
