"""Shared FastAPI dependencies: the service behind the app and the scope an operation needs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from engine.server.auth import require
from engine.server.keys import Scope
from engine.service.local import LocalService


def get_service(request: Request) -> LocalService:
    service: LocalService = request.app.state.service
    return service


Service = Annotated[LocalService, Depends(get_service)]


def needs(scope: Scope) -> list[Any]:
    """``dependencies=needs("run")``: the operation needs a key with that scope."""
    return [Depends(require(scope))]
