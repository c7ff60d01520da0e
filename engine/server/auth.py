"""Who is calling: the API key of each request, its scopes and its tenant.

Every endpoint but ``GET /api/v1/health`` depends on ``require(scope)``. A missing, unknown,
revoked or expired key is 401; a key without the scope is 403. Both are decided before the
endpoint looks anything up, so neither answer says whether a resource exists.

The caller's key and tenant are kept in context variables for the rest of the request (and
for tasks it starts, which copy the context): the seam where tenant isolation plugs into
the service. So is who the caller is (``actor``), which the debugger records as the editor
of a paused run's context.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from engine.server.keys import ApiKey, KeyStore, Scope
from engine.service.debugger import current_actor
from engine.service.errors import Forbidden, Unauthorized
from engine.tenancy import current_tenant

current_key: ContextVar[ApiKey | None] = ContextVar("wfstudio_api_key", default=None)

# Headers that carry the key: never passed on (e.g. into an http trigger's payload) or logged.
AUTH_HEADERS = frozenset({"authorization", "x-api-key", "proxy-authorization"})

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                               description="An API key (`wfstudio keys create`).")
_bearer = HTTPBearer(auto_error=False, description="The API key as a bearer token.")

ApiKeyHeaderValue = Annotated[str | None, Security(_api_key_header)]
BearerValue = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]

UNAUTHORIZED = ("a valid API key is required: send it in the X-API-Key header or as "
                "'Authorization: Bearer <key>'")


def presented_secret(x_api_key: str | None, authorization: str | None) -> str | None:
    """The key a request presents: ``X-API-Key`` first, else an ``Authorization: Bearer``."""
    if x_api_key:
        return x_api_key.strip()
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


def authenticate(keys: KeyStore, secret: str | None, scope: Scope) -> ApiKey:
    """The caller's key if it may use ``scope``; raises Unauthorized or Forbidden."""
    key = keys.verify(secret) if secret else None
    if key is None:
        raise Unauthorized(UNAUTHORIZED)
    if not key.allows(scope):
        raise Forbidden(f"this API key lacks the {scope!r} scope")
    current_key.set(key)
    current_tenant.set(key.tenant)
    current_actor.set(actor(key))
    return key


def actor(key: ApiKey) -> str:
    """How the event store names a change made with ``key``: its name and id, never its secret."""
    return f"API key {key.name!r} ({key.id})"


def require(scope: Scope) -> Callable[..., Awaitable[ApiKey]]:
    """A FastAPI dependency: the request's key, which must carry ``scope`` (or admin)."""

    # async: a sync dependency runs in a worker thread and its context variables are lost.
    async def dependency(request: Request, x_api_key: ApiKeyHeaderValue = None,
                         bearer: BearerValue = None) -> ApiKey:
        secret = x_api_key.strip() if x_api_key else (bearer.credentials if bearer else None)
        keys: KeyStore = request.app.state.keys
        return authenticate(keys, secret, scope)

    dependency.__name__ = f"require_{scope}"
    dependency.required_scope = scope  # type: ignore[attr-defined]  # read by the API gate
    return dependency


def optional_key(request: Request) -> ApiKey | None:
    """The request's valid key, if any (for endpoints that say more to a known caller)."""
    secret = presented_secret(request.headers.get("x-api-key"),
                              request.headers.get("authorization"))
    keys: KeyStore = request.app.state.keys
    return keys.verify(secret) if secret else None
