"""API key management (admin scope). An admin key manages the keys of its own tenant only:
it lists, creates and revokes keys of that tenant; other tenants' keys look absent (404)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from engine.server.auth import require
from engine.server.bodies import KeyRequest
from engine.server.keys import ApiKey, KeyStore, NewApiKey
from engine.service.errors import Forbidden

router = APIRouter(tags=["API keys"])

Admin = Annotated[ApiKey, Depends(require("admin"))]


def _keys(request: Request) -> KeyStore:
    keys: KeyStore = request.app.state.keys
    return keys


@router.post("/keys", status_code=201)
async def create_key(body: KeyRequest, caller: Admin, request: Request) -> NewApiKey:
    """Create a key. The secret is in this answer only: it is stored as a hash."""
    tenant = body.tenant or caller.tenant
    if tenant != caller.tenant:
        raise Forbidden("an admin key creates keys for its own tenant only")
    beyond = [scope for scope in body.scopes if not caller.allows(scope)]
    if beyond:  # e.g. deploy: an admin cannot grant itself what it was not given
        raise Forbidden(f"this key cannot grant scopes it does not hold: {', '.join(beyond)}")
    expires = time.time() + body.expires_in if body.expires_in is not None else None
    key, secret = _keys(request).create(body.name, tenant, body.scopes, expires)
    return NewApiKey(key=key, secret=secret)


@router.get("/keys")
async def list_keys(caller: Admin, request: Request) -> list[ApiKey]:
    """The caller's tenant's keys, revoked ones included (``active: false``)."""
    return _keys(request).list(caller.tenant)


@router.delete("/keys/{key_id}", status_code=204)
async def revoke_key(key_id: str, caller: Admin, request: Request) -> None:
    """Revoke a key: it stops working at once on this server (within seconds on others)."""
    _keys(request).revoke(key_id, caller.tenant)
