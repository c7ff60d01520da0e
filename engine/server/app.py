"""The hosted server: the studio service over HTTP (shared/spec/service-api.md).

``create_app(service, keys=KeyStore(service.store))`` serves every service operation under
``/api/v1`` (OpenAPI document at ``/api/v1/openapi.json``, interactive docs at ``/docs``),
live events as Server-Sent Events, and the loaded pipelines' ``http`` triggers at their
declared paths. Every endpoint but ``GET /api/v1/health`` needs an API key.

The app does not own the service: whoever opened it closes it (``wfstudio serve`` does).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI

from engine import __version__
from engine.server import api_debug, api_executions, api_info, api_keys, api_ops, api_streams
from engine.server.errors import ERROR_RESPONSES, install_error_handlers
from engine.server.http_trigger import METHODS, handle_trigger
from engine.server.keys import KeyStore
from engine.server.recent import RecentEvents
from engine.server.triggers import TriggerTable
from engine.service.local import LocalService

API_PREFIX = "/api/v1"
API_VERSION = "1"
MAX_BODY = 10 * 1024 * 1024

DESCRIPTION = """\
The Workflow Studio service over HTTP: pipelines, runs, executions and their events,
replay and diff, the debugger, mocks, the dead-letter queue, backfills and event schemas.

Authenticate with an API key in `X-API-Key` (or `Authorization: Bearer <key>`); create the
first one on the server with `wfstudio keys create --name admin --scope admin`. Scopes:
`read`, `run`, `debug`, `admin` (admin implies all). Errors are
`{"error", "message", "details"?}` with the HTTP status of their kind.

The pipelines' `http` triggers are served at their declared paths, outside `/api/v1`;
they need a key with the `run` scope.
"""


def create_app(service: LocalService, *, keys: KeyStore, heartbeat: float = 15.0,
               deploy_dir: str | Path | None = None, max_body: int = MAX_BODY,
               recent_events: int = 10_000) -> FastAPI:
    """The ASGI app over an open ``service``.

    ``heartbeat``: seconds of silence before an event stream sends a comment line.
    ``deploy_dir``: where ``PUT /api/v1/definitions`` may write pipeline files (None: it is
    refused). ``max_body``: the largest http trigger request body, in bytes.
    ``recent_events``: how many events the stream of all executions can resume over.
    """
    recent = RecentEvents(recent_events)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        recent.detach(service.store.recorder)

    app = FastAPI(title="Workflow Studio", version=__version__, description=DESCRIPTION,
                  openapi_url=f"{API_PREFIX}/openapi.json", docs_url="/docs", redoc_url=None,
                  lifespan=lifespan)
    app.state.service = service
    app.state.keys = keys
    app.state.heartbeat = heartbeat
    app.state.deploy_dir = Path(deploy_dir).resolve() if deploy_dir is not None else None
    app.state.max_body = max_body
    app.state.recent = recent
    app.state.triggers = TriggerTable(service)
    recent.attach(service.store.recorder)
    install_error_handlers(app)

    api = APIRouter(prefix=API_PREFIX, responses=ERROR_RESPONSES)
    for module in (api_info, api_executions, api_streams, api_debug, api_ops, api_keys):
        api.include_router(module.router)
    app.include_router(api)
    # Last: whatever no API route matched may be a pipeline's http trigger.
    app.add_api_route("/{path:path}", handle_trigger, methods=METHODS, include_in_schema=False)
    return app
