"""Trigger requests served ahead of FastAPI's router (``ServerApp``) answer exactly as
through the router, and the trigger table's literal-path shortcut picks what its scan would."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from engine.server import KeyStore, create_app
from engine.server.app import ServerApp
from engine.server.triggers import TriggerTable
from engine.service.local import LocalService
from tests.server.support import auth

_ID = re.compile(r"[0-9a-f]{32}")
_COMPARED_HEADERS = ("content-type", "allow", "www-authenticate", "x-greeting")


class PassThrough:
    """A user middleware that changes nothing: its presence sends every request through
    the router, the way the catch-all route served triggers before ServerApp."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


@pytest.fixture
async def apps(service: LocalService, keys: KeyStore) -> AsyncIterator[tuple[ServerApp, ServerApp]]:
    direct = create_app(service, keys=keys)
    routed = create_app(service, keys=keys)
    routed.add_middleware(PassThrough)
    yield direct, routed


def _scope(path: str) -> dict[str, Any]:
    return {"type": "http", "path": path}


def test_only_what_the_router_would_give_the_catch_all_is_served_directly(
        apps: tuple[ServerApp, ServerApp]) -> None:
    direct, routed = apps
    for path in ("/greet/x", "/nowhere", "/", "/api", "/docs/", "/apix"):
        assert direct.serves_directly(_scope(path)), path
    for path in ("/api/v1/health", "/api/v1/openapi.json", "/api/nope", "/docs",
                 "/docs/swagger-ui-bundle.js"):
        assert not direct.serves_directly(_scope(path)), path
    assert not routed.serves_directly(_scope("/greet/x"))
    assert not direct.serves_directly({"type": "http", "path": "/greet/x", "root_path": "/p"})


async def _answer(app: ServerApp, method: str, path: str, **kwargs: Any) -> tuple[Any, ...]:
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://server") as client:
        answer = await client.request(method, path, **kwargs)
    headers = tuple(answer.headers.get(name) for name in _COMPARED_HEADERS)
    has_id = "x-execution-id" in answer.headers
    return answer.status_code, _ID.sub("<id>", answer.text), headers, has_id


async def test_direct_and_routed_answers_are_the_same(
        apps: tuple[ServerApp, ServerApp], secrets: dict[str, str]) -> None:
    run, read = auth(secrets["run"]), auth(secrets["read"])
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/greet/x/", {"headers": run, "json": {"a": 1}}),
        ("POST", "/greet/a%3Fb", {"headers": run, "json": {}}),  # an escaped '?' in the path
        ("GET", "/page?q=1&q=2", {"headers": run}),
        ("POST", "/ingest", {"headers": run, "content": b"plain text"}),
        ("POST", "/strict", {"headers": run, "json": {}}),
        ("GET", "/teapot/tea", {"headers": run}),
        ("GET", "/boom", {"headers": run}),
        ("GET", "/greet/x", {"headers": run}),
        ("POST", "/nowhere", {"headers": run}),
        ("POST", "/greet/x", {}),
        ("POST", "/greet/x", {"headers": read}),
        ("POST", "/greet/x", {"headers": {**run, "content-type": "application/json"},
                              "content": b"{broken"}),
        ("POST", "/api/nope", {"headers": run}),
        ("GET", "/api/v1/health", {}),
    ]
    direct, routed = apps
    statuses = []
    for method, path, kwargs in requests:
        first = await _answer(direct, method, path, **kwargs)
        assert first == await _answer(routed, method, path, **kwargs), (method, path)
        statuses.append(first[0])
    assert statuses == [201, 201, 200, 202, 409, 418, 500, 405, 404, 401, 403, 400, 404, 200]


async def test_the_trigger_path_is_the_url_path_with_its_escapes(
        apps: tuple[ServerApp, ServerApp], secrets: dict[str, str]) -> None:
    transport = httpx.ASGITransport(apps[0])
    async with httpx.AsyncClient(transport=transport, base_url="http://server") as client:
        for path in ("/greet/plain", "/greet/a%3Fb", "/greet/a%23b"):
            answer = await client.post(path, headers=auth(secrets["run"]), json={})
            assert answer.status_code == 201 and answer.json()["trigger"]["path"] == path


LITERAL_AND_TEMPLATED = """
pipelines:
  by-id:
    trigger: {type: http, config: {method: POST, path: "/items/{id}"}}
    steps: [{name: a, type: step.json_response, config: {body: {}}}]
  new-item:
    trigger: {type: http, config: {method: POST, path: /items/new}}
    steps: [{name: a, type: step.json_response, config: {body: {}}}]
  item-form:
    trigger: {type: http, config: {method: GET, path: /items/new/}}
    steps: [{name: a, type: step.json_response, config: {body: {}}}]
"""


async def test_a_literal_path_beats_a_templated_one_and_405_lists_every_method(tmp_path: Path) -> None:
    file = tmp_path / "items.yaml"
    file.write_text(LITERAL_AND_TEMPLATED)
    service = await LocalService.open([file], store=f"sqlite:///{tmp_path / 's.db'}")
    try:
        table = TriggerTable(service)
        route, params, _ = table.match("POST", "/items/new")
        assert route is not None and route.pipeline.name == "new-item" and params == {}
        route, params, _ = table.match("GET", "/items/new/")
        assert route is not None and route.pipeline.name == "item-form"
        route, params, _ = table.match("POST", "/items/42")
        assert route is not None and route.pipeline.name == "by-id" and params == {"id": "42"}
        route, _, allowed = table.match("PUT", "/items/new")
        assert route is None and sorted(allowed) == ["GET", "POST"]
    finally:
        await service.close()
