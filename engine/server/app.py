"""The hosted server: the studio service over HTTP (docs/service-api.md).

``create_app(service, keys=KeyStore(service.store))`` serves every service operation under
``/api/v1`` (OpenAPI document at ``/api/v1/openapi.json``, interactive docs at ``/docs``),
live events as Server-Sent Events, and the loaded pipelines' ``http`` triggers at their
declared paths. Every endpoint but ``GET /api/v1/health`` needs an API key. Every ``/api/``
request passes the gate (``engine.server.gate``: method, key and body size) before its
body is read.

The app does not own the service: whoever opened it closes it (``wfstudio serve`` does).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI
from starlette.types import Receive, Scope, Send

from engine import __version__
from engine.connectors.webhook import WebhookHub
from engine.server import (
    api_debug,
    api_executions,
    api_info,
    api_keys,
    api_ops,
    api_sources,
    api_streams,
    webhooks,
)
from engine.server.docs import install_docs
from engine.server.errors import ERROR_RESPONSES, install_error_handlers
from engine.server.gate import ApiGate
from engine.server.http_trigger import METHODS, handle_trigger, serve_trigger
from engine.server.keys import KeyStore
from engine.server.recent import RecentEvents
from engine.server.triggers import TriggerTable
from engine.service.local import LocalService

API_PREFIX = "/api/v1"
API_VERSION = "1"
MAX_BODY = 10 * 1024 * 1024  # any request body (http triggers and the API)
MAX_INPUT = 1024 * 1024  # the body of an API request that starts a run with its input

DESCRIPTION = """\
The Workflow Studio service over HTTP: pipelines, runs, executions and their events,
replay and diff, the debugger, mocks, the dead-letter queue, backfills, event schemas and
sources (the connectors that start executions from webhooks, streams and queues).

Authenticate with an API key in `X-API-Key` (or `Authorization: Bearer <key>`); create the
first one on the server with `wfstudio keys create --name admin --scope admin`. Scopes:
`read`, `run`, `debug`, `admin` (admin implies the first three) and `deploy` (`PUT
/definitions`; implied by nothing, a key must be given it by name). Sending a source a
test event needs `run`; starting or stopping a source needs `admin`. Errors are
`{"error", "message", "details"?}` with the HTTP status of their kind.

The pipelines' `http` triggers are served at their declared paths, outside `/api/v1`;
they need a key with the `run` scope.
"""


CATCH_ALL = "/{path:path}"


class ServerApp(FastAPI):
    """FastAPI with the http triggers dispatched ahead of its middleware stack and router.

    A trigger request would try every ``/api/v1`` route before reaching the catch-all, and
    pass five middleware layers on the way: about a third of what an HTTP-triggered run
    costs the server. Whatever the router would hand to the catch-all (a path outside
    ``/api/`` that no other route declares) goes straight to the same handler, with the
    same exception handlers (FastAPI's own OpenTelemetry spans are not made for them; the
    runs are in the event store). The catch-all route stays registered: an app given user
    middleware, which this path would skip, routes every request through the router.
    """

    _fast_for = -1  # how many routes _fast and _own_paths were worked out for
    _fast = False
    _own_paths: frozenset[str] = frozenset()  # non-API routes (the docs) that are not triggers
    gate: ApiGate
    webhook_hub: WebhookHub = WebhookHub()  # create_app sets the service's ("webhooks": FastAPI's)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            hub = self.webhook_hub
            if hub.routes and await webhooks.dispatch(hub, scope, receive, send):
                return  # a webhook source's path: its signature, not a key, lets it in
            if self.serves_directly(scope):
                scope["app"] = self
                await serve_trigger(scope, receive, send)
                return
            if self.gate.applies(scope):
                passed = await self.gate(scope, receive, send)
                if passed is None:
                    return  # answered (405, 401, 403, 413) without reading the body
                receive = passed
        await super().__call__(scope, receive, send)

    def serves_directly(self, scope: Scope) -> bool:
        """Whether the router would hand this request to the catch-all (the routes are
        looked at again whenever routes were added, e.g. by a test)."""
        if len(self.router.routes) != self._fast_for:
            paths = [str(getattr(route, "path", "")) for route in self.router.routes]
            others = [p for p in paths if p != CATCH_ALL and not p.startswith("/api/")]
            self._own_paths = frozenset(others)
            # Only a final catch-all, no other templated route outside /api/, no middleware.
            self._fast = (bool(paths) and paths[-1] == CATCH_ALL and not self.user_middleware
                          and not any("{" in p for p in others))
            self._fast_for = len(paths)
        path: str = scope["path"]
        return (self._fast and not path.startswith("/api/") and path not in self._own_paths
                and not scope.get("root_path"))


def claim_deployments(service: LocalService, root: Path) -> None:
    """Files loaded from ``<root>/<tenant>/…`` (deployed before a restart) are that tenant's."""
    for file in service.loaded_files():  # disk paths: a server names files relatively
        try:
            relative = Path(file).resolve().relative_to(root)
        except ValueError:
            continue
        if len(relative.parts) > 1:
            service.set_owner(file, relative.parts[0])


def create_app(service: LocalService, *, keys: KeyStore, heartbeat: float = 15.0,
               deploy_dir: str | Path | None = None, max_body: int = MAX_BODY,
               max_input: int = MAX_INPUT, recent_events: int = 10_000) -> ServerApp:
    """The ASGI app over an open ``service``.

    ``heartbeat``: seconds of silence before an event stream sends a comment line.
    ``deploy_dir``: where ``PUT /api/v1/definitions`` may write pipeline files, each tenant's
    under ``<deploy_dir>/<tenant>/`` (None: it is refused); loaded files found there belong
    to that tenant. ``max_body``: the largest request body, in bytes (http triggers and the
    API). ``max_input``: the largest body of an API request that starts a run with the
    caller's input (a run, a replay and its plan), in bytes; at most ``max_body`` applies.
    ``recent_events``: how many events the stream of all executions can resume over.
    """
    recent = RecentEvents(recent_events)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        recent.detach(service.store.recorder)
        webhooks.detach(service)

    app = ServerApp(title="Workflow Studio", version=__version__, description=DESCRIPTION,
                  openapi_url=f"{API_PREFIX}/openapi.json", docs_url=None, redoc_url=None,
                  lifespan=lifespan)
    app.state.service = service
    app.state.keys = keys
    app.state.heartbeat = heartbeat
    app.state.deploy_dir = Path(deploy_dir).resolve() if deploy_dir is not None else None
    if app.state.deploy_dir is not None:
        claim_deployments(service, app.state.deploy_dir)
    app.state.max_body = max_body
    app.state.max_input = max_input
    app.state.recent = recent
    app.state.triggers = TriggerTable(service)
    app.webhook_hub = webhooks.attach(service)
    recent.attach(service.store.recorder)
    install_error_handlers(app)
    install_docs(app, f"{API_PREFIX}/openapi.json")

    api = APIRouter(prefix=API_PREFIX, responses=ERROR_RESPONSES)
    modules = (api_info, api_executions, api_streams, api_debug, api_ops, api_sources, api_keys)
    for module in modules:
        api.include_router(module.router)
    app.gate = ApiGate(app, API_PREFIX, [module.router for module in modules])
    app.include_router(api)
    # Last: whatever no API route matched may be a pipeline's http trigger.
    app.add_api_route(CATCH_ALL, handle_trigger, methods=METHODS, include_in_schema=False)
    return app
