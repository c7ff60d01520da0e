"""The server's side of webhook sources: their paths, served ahead of everything else.

A running ``source.webhook`` registers its endpoint in the hub of the server over its
store (``engine.connectors.webhook``); ``ServerApp`` hands a request whose path is
registered straight to that endpoint: no API key (the signature authenticates it), no
gate, no router. A path whose source is stopped or restarting answers 503 with
``Retry-After`` (nothing was taken). An endpoint belongs to its source's runtime, so it starts only the
pipelines of the tenant whose file declared it. With no webhook source running the hub
is empty, and the check costs the other requests one dict lookup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.types import Receive, Scope, Send

from engine.connectors.webhook import WebhookHub, release_hub, serve_hub
from engine.connectors.webhook_receiver import stopped

if TYPE_CHECKING:
    from engine.service.local import LocalService


def attach(service: LocalService) -> WebhookHub:
    """The hub this server dispatches from: the sources of ``service`` register in it."""
    return serve_hub(service.store)


def detach(service: LocalService) -> None:
    release_hub(service.store)


async def dispatch(hub: WebhookHub, scope: Scope, receive: Receive, send: Send) -> bool:
    """Serve the request if its path is a webhook's; False: not a webhook path."""
    path: str = scope["path"]
    if path not in hub.routes:
        return False
    endpoint = hub.routes[path]
    if endpoint is None:  # its source is stopped or restarting: the sender should retry
        await stopped(scope, receive, send)
        return True
    await endpoint(scope, receive, send)
    return True
