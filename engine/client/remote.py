"""The remote implementation of the studio service: the same interface over HTTP (httpx).

``RemoteService`` speaks the hosted server's ``/api/v1`` (docs/service-api.md) and
returns the same DTOs and raises the same typed errors as ``LocalService``, so callers do
not care which one they hold. Decisions:

- The API version is checked once, on the first call (``health`` excepted: it is how one
  probes a server that may be down, and it needs no key). A server speaking another major
  version is refused with a message that says which side to upgrade.
- Errors: the body's ``error`` code picks the class; without one the status does. Server
  failures (5xx), timeouts and connection errors are ``Unavailable`` naming the server.
- ``subscribe`` reads Server-Sent Events whose ids are ``<execution_id>:<seq>``. When the
  connection drops (or the server drops a slow subscriber) it reconnects with
  ``Last-Event-ID`` and skips any event it already yielded, so a consumer sees no gap and
  no duplicate. It gives up, raising ``Unavailable``, after ``max_reconnects`` attempts in
  a row that deliver nothing.
- Calls that wait for executions to finish (``run``/``replay`` with ``wait``, DLQ retries)
  use ``wait_timeout`` instead of ``timeout`` for reading the reply.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import ssl
from collections.abc import AsyncIterator
from typing import Any, Final, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from engine.client.sse import SseParser, parse_sse
from engine.service.errors import (
    ERRORS_BY_CODE,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    ServiceError,
    Unauthorized,
    Unavailable,
)
from engine.service.live import TERMINAL_EVENTS
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
    StepTypeInfo,
    TestEvent,
    Timeline,
    VersionInfo,
)
from engine.service.protocol import Progress

log = logging.getLogger("wfstudio.client")

API_VERSION: Final = "1"
API_PREFIX: Final = "/api/v1"

_STATUS_ERRORS: Final[dict[int, type[ServiceError]]] = {
    400: InvalidInput, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
    413: InvalidInput, 422: InvalidInput,
}


class IncompatibleServer(Unavailable):
    """The server speaks another API version than this client; the message says which
    side to upgrade."""

    code = "incompatible_server"


M = TypeVar("M", bound=BaseModel)


def _path(*parts: str) -> str:
    """``/api/v1/a/b``, each part escaped: ids and names never change the route."""
    return API_PREFIX + "".join("/" + quote(p, safe="") for p in parts)


def _dump(model: BaseModel) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=False)


class RemoteService:
    """``StudioService`` over HTTP. Use ``async with RemoteService(url, key) as svc:``
    (or call ``aclose()``).

    ``timeout``: seconds for connecting and for each ordinary reply; also how long a live
    stream may stay silent (the server sends heartbeats) before it is reconnected.
    ``wait_timeout``: for calls that answer when executions finish (None: no limit).
    ``verify``: TLS verification for https servers (False, or an ``ssl.SSLContext``).
    """

    def __init__(self, base_url: str, api_key: str | None, *, timeout: float = 30.0,
                 wait_timeout: float | None = 600.0, max_reconnects: int = 5,
                 reconnect_delay: float = 0.25, verify: bool | ssl.SSLContext = True,
                 transport: httpx.AsyncBaseTransport | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.wait_timeout = wait_timeout
        self.max_reconnects = max_reconnects
        self.reconnect_delay = reconnect_delay
        headers = {"Accept": "application/json", "User-Agent": f"wfstudio-remote/{API_VERSION}"}
        if api_key:
            headers["X-API-Key"] = api_key
        if verify is True:
            verify = _default_ssl_context()
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers, verify=verify,
                                       timeout=httpx.Timeout(timeout), transport=transport)
        self._server_version: VersionInfo | None = None
        self._version_lock = asyncio.Lock()

    async def __aenter__(self) -> RemoteService:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    close = aclose  # the same name LocalService uses

    # ------------------------------------------------------------------ plumbing

    def _unavailable(self, reason: str) -> Unavailable:
        return Unavailable(f"the Workflow Studio server at {self.base_url} is unavailable: "
                           f"{reason}", {"server": self.base_url})

    def _error(self, response: httpx.Response) -> ServiceError:
        """The typed error an error reply stands for."""
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        code = message = details = None
        if isinstance(body, dict):
            code = body.get("error")
            message = body.get("message")
            details = body.get("details")
            if message is None and "detail" in body:  # a framework-made error body
                detail = body["detail"]
                message = detail if isinstance(detail, str) else _validation_message(detail)
                details = None if isinstance(detail, str) else detail
        if not isinstance(message, str) or not message:
            text = response.text.strip()[:200]
            message = f"HTTP {status} {response.reason_phrase}" + (f": {text}" if text else "")
        cls = ERRORS_BY_CODE.get(code) if isinstance(code, str) else None
        if cls is None or cls is ServiceError:
            cls = _STATUS_ERRORS.get(status)
        if cls is None and status < 500:
            return ServiceError(f"{message} (HTTP {status})", details)
        if cls is None or cls is Unavailable:
            where = f"{response.request.method} {response.request.url.path}"
            return self._unavailable(f"{message} ({where} answered {status})")
        return cls(message, details)

    async def _ensure_version(self) -> None:
        if self._server_version is not None:
            return
        async with self._version_lock:
            if self._server_version is None:
                try:
                    data = await self._send("GET", _path("version"), check=False)
                except NotFound:
                    raise IncompatibleServer(
                        f"{self.base_url} has no {_path('version')}: it is not a Workflow "
                        f"Studio server, or one too old for this client (API version "
                        f"{API_VERSION}); upgrade the server") from None
                info: VersionInfo = _parse(VersionInfo, data, "version")
                _check_api_version(info.api_version, self.base_url)
                self._server_version = info

    async def _send(self, method: str, path: str, *, params: Any = None, body: Any = None,
                    check: bool = True, waits: bool = False) -> Any:
        """One request; the decoded JSON reply (None for an empty one) or a typed error.

        ``waits``: the server answers when executions finish, so read with ``wait_timeout``.
        """
        if check:
            await self._ensure_version()
        kwargs: dict[str, Any] = {}
        if params:
            kwargs["params"] = params
        if body is not None:
            kwargs["content"] = json.dumps(body, default=str).encode()
            kwargs["headers"] = {"Content-Type": "application/json"}
        if waits:
            kwargs["timeout"] = httpx.Timeout(self.timeout, read=self.wait_timeout)
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise self._unavailable(f"no reply to {method} {path} in time ({type(exc).__name__})"
                                    ) from None
        except httpx.TransportError as exc:
            raise self._unavailable(f"{type(exc).__name__}: {exc}" if str(exc)
                                    else type(exc).__name__) from None
        if response.is_error:
            raise self._error(response)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise self._unavailable(f"{method} {path} answered something that is not JSON"
                                    ) from None

    async def _get(self, path: str, model: type[M], params: Any = None) -> M:
        return _parse(model, await self._send("GET", path, params=params), path)

    async def _list(self, path: str, item: type[M], params: Any = None, *,
                    method: str = "GET", body: Any = None, waits: bool = False) -> list[M]:
        data = await self._send(method, path, params=params, body=body, waits=waits)
        if isinstance(data, dict) and "items" in data:
            data = data["items"]
        return _parse(_list_of(item), data, path)

    # ------------------------------------------------------------------ info and definitions

    async def version(self) -> VersionInfo:
        await self._ensure_version()
        assert self._server_version is not None
        return self._server_version.model_copy(update={"backend": "remote"})

    async def health(self) -> dict[str, Any]:
        data = await self._send("GET", _path("health"), check=False)
        return data if isinstance(data, dict) else {"ok": bool(data)}

    async def list_pipelines(self) -> list[PipelineInfo]:
        return await self._list(_path("pipelines"), PipelineInfo)

    async def get_definition(self, pipeline: str) -> DefinitionText:
        return await self._get(_path("pipelines", pipeline, "definition"), DefinitionText)

    async def validate(self, yaml_text: str, file: str = "<text>") -> list[DiagnosticInfo]:
        return await self._list(_path("definitions", "validate"), DiagnosticInfo, method="POST",
                                body={"yaml": yaml_text, "file": file})

    async def step_types(self) -> list[StepTypeInfo]:
        return await self._list(_path("step-types"), StepTypeInfo)

    async def connector_types(self) -> list[ConnectorTypeInfo]:
        return await self._list(_path("connector-types"), ConnectorTypeInfo)

    async def put_definition(self, yaml_text: str, file: str) -> DefinitionText:
        data = await self._send("PUT", _path("definitions"), body={"yaml": yaml_text, "file": file})
        return _parse(DefinitionText, data, "definitions")

    # ------------------------------------------------------------------ runs

    async def run(self, pipeline: str, input: Any = None,
                  options: RunOptions | None = None) -> RunResult:
        options = options or RunOptions()
        path = _path("pipelines", pipeline, "runs")
        data = await self._send("POST", path, body={"input": input, "options": _dump(options)},
                                waits=options.wait)
        return _parse(RunResult, data, path)

    async def cancel(self, execution_id: str) -> bool:
        data = await self._send("POST", _path("executions", execution_id, "cancel"))
        return bool(data.get("cancelled")) if isinstance(data, dict) else bool(data)

    # ------------------------------------------------------------------ executions

    async def list_executions(self, filter: ExecutionFilter | None = None) -> ExecutionPage:
        f = filter or ExecutionFilter.model_validate({})
        params = {k: v for k, v in f.model_dump().items() if v is not None}
        return await self._get(_path("executions"), ExecutionPage, params)

    async def get_execution(self, execution_id: str) -> ExecutionSummary:
        return await self._get(_path("executions", execution_id), ExecutionSummary)

    async def timeline(self, execution_id: str) -> Timeline:
        return await self._get(_path("executions", execution_id, "timeline"), Timeline)

    async def events(self, execution_id: str, after_seq: int = 0, types: list[str] | None = None,
                     limit: int = 1000) -> list[Event]:
        params: list[tuple[str, Any]] = [("after_seq", after_seq), ("limit", limit)]
        params += [("type", t) for t in types or ()]
        return await self._list(_path("executions", execution_id, "events"), Event, params)

    async def subscribe(self, execution_id: str | None = None,
                        after_seq: int = 0) -> AsyncIterator[Event]:
        """Events as the server streams them; see the module docstring for reconnects."""
        if after_seq < 0:
            raise InvalidInput(f"after_seq must be 0 or more, not {after_seq}")
        if execution_id is None and after_seq:
            # The same refusal as the service's: "all" is live only, seqs are per execution.
            raise InvalidInput("after_seq resumes one execution's events; the stream of all "
                               "executions is live only: subscribe without after_seq, or to "
                               "one execution")
        await self._ensure_version()
        state = _StreamState(execution_id, after_seq)
        failures = 0
        while True:
            try:
                async for event in self._stream_once(state):
                    failures = 0
                    yield event
                if state.finished:
                    return
                reason = state.reason or "the event stream ended early"
            except httpx.TimeoutException:
                reason = f"no event or heartbeat for {self.timeout:g}s"
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            failures += 1
            if failures > self.max_reconnects:
                raise Unavailable(f"the Workflow Studio server at {self.base_url} stopped "
                                  f"streaming events of {state.describe()} ({reason}); gave up "
                                  f"after {self.max_reconnects} reconnects",
                                  {"server": self.base_url, "last_event_id": state.last_id})
            await asyncio.sleep(min(self.reconnect_delay * 2 ** (failures - 1), state.backoff_cap))

    async def _stream_once(self, state: _StreamState) -> AsyncIterator[Event]:
        """One connection: the events not yet yielded, until it ends or breaks.

        Sets ``state.finished`` when nothing more will come (a one-execution stream that
        reached the execution's end), ``state.reason`` when it ended for a resumable cause.
        """
        state.reason = None
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if state.last_id is not None:
            headers["Last-Event-ID"] = state.last_id
        path, params = state.request()
        # Silence longer than ``timeout`` is a dead connection: the server's heartbeats stop too.
        async with self._http.stream("GET", path, params=params, headers=headers,
                                     timeout=httpx.Timeout(self.timeout)) as response:
            if response.is_error:
                await response.aread()
                error = self._error(response)
                if not isinstance(error, Unavailable):
                    raise error
                state.reason = error.message
                return
            async for message in parse_sse(response.aiter_lines(), SseParser(state.last_id)):
                if message.retry_ms is not None:
                    state.backoff_cap = max(message.retry_ms / 1000, self.reconnect_delay)
                if message.event == "error":
                    error = _stream_error(message.data)
                    if not isinstance(error, Unavailable):
                        raise error
                    state.reason = error.message  # dropped as too slow, or shutting down
                    return
                if not message.has_id:
                    # A stream-level notice (e.g. ``stream.gap``: the server no longer held
                    # the events after Last-Event-ID); the stream goes on live.
                    log.warning("event stream notice from %s: %s %s", self.base_url,
                                message.event, message.data[:300])
                    continue
                event = _parse(Event, _json(message.data), path)
                if state.seen(event, message.id):
                    continue  # already yielded before a reconnect
                yield event
                if state.execution_id is not None and event.type in TERMINAL_EVENTS:
                    state.finished = True
                    return
        # A clean end before the terminal event: a resume after the end of a finished
        # execution (nothing more will come), or a cut connection (resume).
        if state.execution_id is not None:
            state.finished = await self._finished_by(state.execution_id,
                                                     state.last_seq[state.execution_id])

    async def _finished_by(self, execution_id: str, seq: int) -> bool:
        """Whether the execution's terminal event has a seq <= ``seq`` (it is over)."""
        terminal = await self.events(execution_id, types=sorted(TERMINAL_EVENTS), limit=1)
        return bool(terminal) and terminal[0].seq <= seq

    # ------------------------------------------------------------------ replay and diff

    async def replay_plan(self, execution_id: str,
                          options: ReplayOptions | None = None) -> ReplayPlan:
        path = _path("executions", execution_id, "replay", "plan")
        data = await self._send("POST", path, body=_dump(options or ReplayOptions()))
        return _parse(ReplayPlan, data, path)

    async def replay(self, execution_id: str, options: ReplayOptions | None = None) -> RunResult:
        options = options or ReplayOptions()
        path = _path("executions", execution_id, "replay")
        data = await self._send("POST", path, body=_dump(options),
                                waits=options.wait)
        return _parse(RunResult, data, path)

    async def diff(self, a: str, b: str) -> ExecutionDiff:
        return await self._get(_path("executions", "diff"), ExecutionDiff, {"a": a, "b": b})

    # ------------------------------------------------------------------ debugger

    async def list_breakpoints(self) -> list[Breakpoint]:
        return await self._list(_path("debug", "breakpoints"), Breakpoint)

    async def set_breakpoint(self, pipeline: str, step: str,
                             condition: str | None = None) -> Breakpoint:
        data = await self._send("POST", _path("debug", "breakpoints"),
                                body={"pipeline": pipeline, "step": step, "condition": condition})
        return _parse(Breakpoint, data, "breakpoints")

    async def remove_breakpoint(self, breakpoint_id: str) -> None:
        await self._send("DELETE", _path("debug", "breakpoints", breakpoint_id))

    async def enable_breakpoint(self, breakpoint_id: str, enabled: bool = True) -> Breakpoint:
        data = await self._send("PATCH", _path("debug", "breakpoints", breakpoint_id),
                                body={"enabled": enabled})
        return _parse(Breakpoint, data, "breakpoints")

    async def pause_new_runs(self, pipeline: str, enabled: bool = True) -> None:
        await self._send("PUT", _path("debug", "pause-new-runs", pipeline),
                         body={"enabled": enabled})

    async def paused(self) -> list[PausedExecution]:
        return await self._list(_path("debug", "paused"), PausedExecution)

    async def resume(self, execution_id: str, action: ResumeAction = "continue",
                     patch: list[dict[str, Any]] | None = None) -> None:
        await self._send("POST", _path("debug", "paused", execution_id, "resume"),
                         body={"action": action, "patch": patch})

    # ------------------------------------------------------------------ mocks

    async def list_mocks(self, pipeline: str | None = None) -> list[Mock]:
        return await self._list(_path("mocks"), Mock, {"pipeline": pipeline} if pipeline else None)

    async def set_mock(self, pipeline: str, step: str, *, mode: MockMode = "fixed",
                       output: Any = None, error: dict[str, Any] | None = None,
                       delay_ms: float = 0.0, enabled: bool = True) -> Mock:
        data = await self._send("POST", _path("mocks"), body={
            "pipeline": pipeline, "step": step, "mode": mode, "output": output, "error": error,
            "delay_ms": delay_ms, "enabled": enabled})
        return _parse(Mock, data, "mocks")

    async def mock_from_execution(self, execution_id: str, step: str) -> Mock:
        data = await self._send("POST", _path("mocks", "from-execution"),
                                body={"execution_id": execution_id, "step": step})
        return _parse(Mock, data, "mocks/from-execution")

    async def remove_mock(self, mock_id: str) -> None:
        await self._send("DELETE", _path("mocks", mock_id))

    async def clear_mocks(self, pipeline: str | None = None) -> int:
        data = await self._send("DELETE", _path("mocks"),
                                params={"pipeline": pipeline} if pipeline else None)
        return _count(data, "removed")

    # ------------------------------------------------------------------ dead-letter queue

    async def list_dlq(self, filter: DlqFilter | None = None) -> list[DlqEntry]:
        f = filter or DlqFilter.model_validate({})
        params = {k: v for k, v in f.model_dump().items() if v is not None}
        return await self._list(_path("dlq"), DlqEntry, params)

    async def dlq_stats(self) -> dict[str, int]:
        data = await self._send("GET", _path("dlq", "stats"))
        return {str(k): int(v) for k, v in (data or {}).items()}

    async def get_dlq(self, entry_id: str) -> DlqEntry:
        return await self._get(_path("dlq", entry_id), DlqEntry)

    async def retry_dlq(self, entry_ids: list[str], patch: list[dict[str, Any]] | None = None,
                        progress: Progress | None = None,
                        force: bool = False) -> list[DlqRetryResult]:
        total = len(entry_ids)
        if progress is not None:
            progress(0, total)
        results = await self._list(_path("dlq", "retry"), DlqRetryResult, method="POST",
                                   body={"ids": entry_ids, "patch": patch, "force": force},
                                   waits=True)
        if progress is not None:
            progress(total, total)
        return results

    async def resolve_dlq(self, entry_id: str) -> DlqEntry:
        data = await self._send("POST", _path("dlq", entry_id, "resolve"))
        return _parse(DlqEntry, data, "dlq")

    async def discard_dlq(self, entry_id: str) -> DlqEntry:
        data = await self._send("POST", _path("dlq", entry_id, "discard"))
        return _parse(DlqEntry, data, "dlq")

    async def purge_dlq(self, older_than: float) -> int:
        data = await self._send("POST", _path("dlq", "purge"), body={"older_than": older_than})
        return _count(data, "purged")

    # ------------------------------------------------------------------ backfill

    async def start_backfill(self, request: BackfillRequest) -> Backfill:
        data = await self._send("POST", _path("backfills"), body=_dump(request))
        return _parse(Backfill, data, "backfills")

    async def list_backfills(self) -> list[Backfill]:
        return await self._list(_path("backfills"), Backfill)

    async def get_backfill(self, backfill_id: str) -> Backfill:
        return await self._get(_path("backfills", backfill_id), Backfill)

    async def cancel_backfill(self, backfill_id: str) -> Backfill:
        data = await self._send("POST", _path("backfills", backfill_id, "cancel"))
        return _parse(Backfill, data, "backfills")

    # ------------------------------------------------------------------ event schemas

    async def list_schemas(self) -> list[EventSchemaInfo]:
        return await self._list(_path("schemas"), EventSchemaInfo)

    async def register_schema(self, type: str, schema: dict[str, Any]) -> EventSchemaInfo:
        data = await self._send("POST", _path("schemas"), body={"type": type, "schema": schema})
        return _parse(EventSchemaInfo, data, "schemas")

    async def validate_event(self, type: str, data: Any) -> list[str]:
        reply = await self._send("POST", _path("schemas", "validate"),
                                 body={"type": type, "data": data})
        errors = reply.get("errors") if isinstance(reply, dict) else reply
        return [str(e) for e in errors or []]

    # ------------------------------------------------------------------ sources

    async def list_sources(self) -> list[SourceInfo]:
        return await self._list(_path("sources"), SourceInfo)

    async def start_source(self, name: str) -> SourceInfo:
        path = _path("sources", name, "start")
        return _parse(SourceInfo, await self._send("POST", path), path)

    async def stop_source(self, name: str) -> SourceInfo:
        path = _path("sources", name, "stop")
        return _parse(SourceInfo, await self._send("POST", path), path)

    async def send_test_event(self, name: str, event: TestEvent) -> SourceDelivery:
        path = _path("sources", name, "test-events")
        body = event.model_dump(mode="json", exclude_none=True)
        return _parse(SourceDelivery, await self._send("POST", path, body=body), path)

    async def source_deliveries(self, name: str, limit: int = 50) -> list[SourceDelivery]:
        return await self._list(_path("sources", name, "deliveries"), SourceDelivery,
                                {"limit": max(1, min(limit, 1000))})  # as the service clamps

    # ------------------------------------------------------------------ plugins

    async def installed_plugins(self) -> list[PluginInfo]:
        return await self._list(_path("plugins"), PluginInfo)


# ---------------------------------------------------------------------- helpers


class _StreamState:
    """Where a subscription stands across reconnects: the last seq yielded per execution."""

    def __init__(self, execution_id: str | None, after_seq: int):
        self.execution_id = execution_id
        self.last_seq: dict[str, int] = {} if execution_id is None else {execution_id: after_seq}
        self.last_id: str | None = None
        self.backoff_cap = 5.0  # the server's ``retry:`` replaces it
        self.finished = False
        self.reason: str | None = None

    def request(self) -> tuple[str, dict[str, Any] | None]:
        if self.execution_id is None:
            return _path("stream"), None
        last = self.last_seq[self.execution_id]
        return (_path("executions", self.execution_id, "stream"),
                {"after_seq": last} if last else None)

    def seen(self, event: Event, event_id: str | None) -> bool:
        """Record ``event`` as delivered; True if it already was (a replay after resuming)."""
        self.last_id = event_id or f"{event.execution_id}:{event.seq}"
        if event.seq <= self.last_seq.get(event.execution_id, 0):
            return True
        self.last_seq[event.execution_id] = event.seq
        return False

    def describe(self) -> str:
        if self.execution_id is None:
            return "all executions"
        return f"execution {self.execution_id} after seq {self.last_seq[self.execution_id]}"


@functools.cache
def _list_of(item: type[BaseModel]) -> TypeAdapter[list[Any]]:
    return TypeAdapter(list[item])  # type: ignore[valid-type]


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    """The system trust store, loaded once per process (it takes ~0.1 s per client)."""
    return httpx.create_ssl_context()


def _check_api_version(server: str, base_url: str) -> None:
    if server == API_VERSION:
        return
    try:
        newer = int(server) > int(API_VERSION)
    except ValueError:
        newer = server > API_VERSION
    if newer:
        advice = "upgrade this client (workflow-studio) to a release that speaks it"
    else:
        advice = "upgrade the server to a release that speaks it"
    raise IncompatibleServer(f"the server at {base_url} speaks API version {server}, this client "
                      f"speaks version {API_VERSION}: {advice}",
                      {"server_api_version": server, "client_api_version": API_VERSION})


def _parse(model: Any, data: Any, where: str) -> Any:
    """Validate a reply into its DTO; a reply of the wrong shape is the server's fault."""
    try:
        if isinstance(model, TypeAdapter):
            return model.validate_python(data)
        return model.model_validate(data)
    except ValidationError as exc:
        raise Unavailable(f"the server's reply to {where} does not have the expected shape "
                          f"({exc.error_count()} problems, first: {exc.errors()[0]['msg']}); "
                          "are client and server the same release?") from None


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise Unavailable(f"the server sent an event that is not JSON: {text[:100]!r}") from None


def _count(data: Any, key: str) -> int:
    if isinstance(data, dict):
        data = data.get(key, data.get("count"))
    return int(data or 0)


def _stream_error(data: str) -> ServiceError:
    """An ``event: error`` message of a stream, as its typed error."""
    try:
        body = json.loads(data)
    except ValueError:
        body = {"message": data}
    if not isinstance(body, dict):
        body = {"message": str(body)}
    cls = ERRORS_BY_CODE.get(str(body.get("error")), Unavailable)
    if cls is ServiceError:
        cls = Unavailable
    return cls(str(body.get("message") or "the event stream failed"), body.get("details"))


def _validation_message(detail: Any) -> str:
    """One line out of a framework's list of validation problems."""
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        more = f" (and {len(detail) - 1} more)" if len(detail) > 1 else ""
        return f"{where}: {first.get('msg', 'invalid')}{more}" if where else \
            f"{first.get('msg', 'invalid')}{more}"
    return "invalid input"
