"""``source.webhook`` and ``sink.webhook``: signed HTTP POSTs in, CloudEvents POSTed out.

Where a webhook source listens depends on where it runs:

- under ``wfstudio serve`` the server serves it at its ``path`` (the app dispatches those
  paths to ``WebhookHub.routes`` ahead of everything else): ``run`` registers its endpoint
  in the hub of the server over the same store and waits;
- elsewhere (the studio) ``run`` listens itself on ``listen`` (default 127.0.0.1:8787),
  with the same endpoint.

Each endpoint delivers into its own runtime's intake, which carries the tenant of the file
that declared it: a deployed file's webhook only ever starts its tenant's pipelines.
Requests are handled by ``engine.connectors.webhook_receiver``; signatures by
``engine.connectors.signatures``; the sink is ``engine.connectors.webhook_sink``.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from engine.connectors import signatures
from engine.connectors.types import ConnectorError, Intake, SourceType, source_schema
from engine.connectors.webhook_receiver import DEFAULT_MAX_BODY, WebhookConfig, WebhookEndpoint
from engine.tenancy import DEFAULT_TENANT

if TYPE_CHECKING:
    from engine.steps.base import Registry

DEFAULT_LISTEN = "127.0.0.1:8787"


class WebhookHub:
    """The webhook paths one server serves: path -> the endpoint of the source holding it,
    or None while that source is stopped or restarting (answered 503: try again later)."""

    def __init__(self) -> None:
        self.routes: dict[str, WebhookEndpoint | None] = {}

    def register(self, endpoint: WebhookEndpoint) -> None:
        path = endpoint.config.path
        # Webhook paths are answered ahead of every http trigger and without a key: a
        # deployed file's webhook stays inside its tenant's own prefix, so it can never
        # take a path another tenant's (or the operator's) callers use.
        tenant = endpoint.tenant
        if tenant != DEFAULT_TENANT and not path.startswith(f"/hooks/{tenant}/"):
            raise ConnectorError(f"webhook {endpoint.config.name!r}: a deployed file's webhook "
                                 f"is served under /hooks/{tenant}/ (its tenant's prefix); "
                                 f"change its path {path} to e.g. /hooks/{tenant}{path}")
        held = self.routes.get(path)
        if held is not None and held is not endpoint:
            # Not naming the holder: it may be another tenant's source.
            raise ConnectorError(f"webhook {endpoint.config.name!r}: the path {path} is already "
                                 "served by another webhook source; give this one its own path")
        self.routes[path] = endpoint

    def unregister(self, endpoint: WebhookEndpoint) -> None:
        if self.routes.get(endpoint.config.path) is endpoint:
            self.routes[endpoint.config.path] = None


# The hub of each server, by the store its service records into: a source finds the server
# that runs it through its intake's store (the runtime's), without the engine's source
# runtime knowing about servers. Weak keys: a closed, dropped store takes its hub along.
_hubs: weakref.WeakKeyDictionary[Any, WebhookHub] = weakref.WeakKeyDictionary()


def serve_hub(store: Any) -> WebhookHub:
    """The hub a server over ``store`` dispatches from (created on first call)."""
    hub = _hubs.get(store)
    if hub is None:
        hub = _hubs[store] = WebhookHub()
    return hub


def release_hub(store: Any) -> None:
    """The server over ``store`` stopped serving: its sources listen themselves again."""
    _hubs.pop(store, None)


def served_hub(intake: Intake) -> WebhookHub | None:
    store = getattr(intake, "store", None)  # SourceRuntime.store; other intakes: no server
    return _hubs.get(store) if store is not None else None


class WebhookSource:
    def __init__(self, name: str, config: dict[str, Any]):
        self.name = name
        self.config = WebhookConfig.parse(name, config)
        self.listen = str(config.get("listen") or DEFAULT_LISTEN)
        self.endpoint: WebhookEndpoint | None = None
        self.bound: tuple[str, int] | None = None  # where the own listener listens

    async def run(self, intake: Intake) -> None:
        endpoint = self.endpoint = WebhookEndpoint(self.config, intake)
        hub = served_hub(intake)
        if hub is None:
            await self._listen(endpoint)
            return
        hub.register(endpoint)
        try:
            await asyncio.Event().wait()  # served by the server until cancelled
        finally:
            hub.unregister(endpoint)

    async def _listen(self, endpoint: WebhookEndpoint) -> None:
        import socket

        import uvicorn

        from engine.connectors.webhook_receiver import not_found

        host, _, port_text = self.listen.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        try:
            port = int(port_text)
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
        except (ValueError, OSError) as exc:
            raise ConnectorError(f"webhook {self.name!r}: listen {self.listen!r} is not "
                                 f"host:port ({exc})") from None
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise ConnectorError(f"webhook {self.name!r}: cannot listen on {self.listen}: "
                                 f"{exc.strerror or exc}; set 'listen' to a free host:port") from None
        self.bound = sock.getsockname()[:2]
        path = self.config.path

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"] != path:
                await not_found(scope, receive, send)
                return
            await endpoint(scope, receive, send)

        config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False,
                                server_header=False, timeout_graceful_shutdown=2)
        server = _quiet_server(config)
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        try:
            await asyncio.shield(task)
            raise ConnectorError(f"webhook {self.name!r}: the listener on {self.listen} stopped")
        except asyncio.CancelledError:
            server.should_exit = True
            await asyncio.wait([task], timeout=10)
            raise
        finally:
            sock.close()

    async def close(self) -> None:
        self.endpoint = None


def _quiet_server(config: Any) -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        # The process (studio or server) owns SIGINT/SIGTERM; a listener must not take them.
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Server(config)


_SECRET = {"type": "string", "minLength": 1}

SOURCE_SCHEMA = source_schema({
    "path": {"type": "string", "pattern": r"^/(?!api/)[^?#\s]*$",
             "description": "where the webhook is served, e.g. /hooks/stripe (not under /api/)"},
    "secret": {"description": "the signing secret; a list while rotating (any may sign)",
               "oneOf": [_SECRET, {"type": "array", "items": _SECRET, "minItems": 1}]},
    "scheme": {"enum": list(signatures.SCHEMES), "default": "generic",
               "description": "stripe (Stripe-Signature), github (X-Hub-Signature-256) or "
                              "generic (X-Webhook-Signature + X-Webhook-Timestamp)"},
    "tolerance": {"type": "number", "minimum": 1, "default": signatures.DEFAULT_TOLERANCE,
                  "description": "seconds a signed timestamp may be off (older: refused as a "
                                 "replay)"},
    "max_body": {"type": "integer", "minimum": 1, "maximum": 64 * 1024 * 1024,
                 "default": DEFAULT_MAX_BODY, "description": "largest body in bytes (413 past it)"},
    "type": {"type": "string", "description": "CloudEvents type of plain JSON bodies (default: "
             "the Stripe event's type, github.<X-GitHub-Event>, or webhook.received)"},
    "source": {"type": "string", "description": "CloudEvents source of plain JSON bodies "
               "(default wfstudio://webhook<path>)"},
    "id_header": {"type": "string", "description": "header holding the delivery id of plain JSON "
                  "(default X-GitHub-Delivery / X-Webhook-Id; else the Stripe event id, else a "
                  "hash of the body)"},
    "signature_header": {"type": "string", "default": "X-Webhook-Signature",
                         "description": "generic scheme: the signature header"},
    "timestamp_header": {"type": "string", "default": "X-Webhook-Timestamp",
                         "description": "generic scheme: the timestamp header"},
    "listen": {"type": "string", "default": DEFAULT_LISTEN,
               "description": "host:port to listen on when not run by wfstudio serve (the studio)"},
}, required=["path", "secret"])


def register(registry: Registry) -> None:
    from engine.connectors.webhook_sink import SINK_TYPE

    registry.add_source(SourceType(
        name="source.webhook", factory=WebhookSource,
        description="Signed HTTP POSTs (Stripe, GitHub or generic HMAC-SHA256 signatures) as "
                    "events: CloudEvents structured or binary mode, or plain JSON. Answered 2xx "
                    "only once the event is recorded; a redelivery is answered as a duplicate.",
        schema=SOURCE_SCHEMA,
        example={"path": "/hooks/stripe", "secret": "${STRIPE_WEBHOOK_SECRET}", "scheme": "stripe"},
        secret_keys=frozenset({"secret"})))
    registry.add_sink(SINK_TYPE)
