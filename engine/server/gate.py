"""What every ``/api/`` request passes before FastAPI reads a byte of its body.

1. The route: a path the API serves, asked with a method it does not declare there, is 405
   with ``Allow`` (every method the path serves). A path under ``/api/`` the API does not
   serve is 401 without a valid key, else 404.
2. The key: an operation that needs one is answered 401 or 403 from the headers alone, so
   nobody without a key (or with a key lacking the scope) gets a body read or parsed.
3. The size: a body announced (``Content-Length``) over its cap is 413 at once; one sent in
   chunks is counted as it arrives and refused when it passes the cap, keeping nothing.
   Operations that start a run with an input the caller sends (a run, a replay and its
   plan, a source's test event) are capped at ``max_input``; every other one at ``max_body``.
4. The query: a parameter the operation takes once, given several times, is 422 naming it
   (FastAPI would silently keep the last one).
5. The JSON: a body sent as JSON (or without a content type: every API body is JSON) must
   follow the engine's one rule for JSON input (``engine.json_input``: strict, exact
   integers, at most 200 levels, no lone surrogates), else 422 naming the position and the
   rule. FastAPI's own parser would turn deep nesting into a bare 400 and let NaN, lone
   surrogates and 1,000-level values through to the run (and on to a RecursionError).

The body read here is handed on to the app as it came, so FastAPI parses it once. The
endpoints still depend on ``require(scope)``: the same check, answered from the key cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import get_args, get_origin
from urllib.parse import parse_qsl

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIRouter
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route, get_route_path
from starlette.types import Message, Receive, Scope, Send

from engine import json_input
from engine.server.auth import UNAUTHORIZED, authenticate, presented_secret
from engine.server.errors import error_response
from engine.server.keys import KeyStore
from engine.server.keys import Scope as KeyScope
from engine.service.errors import ServiceError

API_ROOT = "/api/"
# (method, path template under the API prefix) of the operations whose body is a run's input.
RUN_INPUT_OPERATIONS = frozenset({
    ("POST", "/pipelines/{name}/runs"),
    ("POST", "/executions/{execution_id}/replay"),
    ("POST", "/executions/{execution_id}/replay/plan"),
    ("POST", "/sources/{name}/test-events"),  # its data is the run's input
})


@dataclass(frozen=True)
class _Operation:
    route: BaseRoute
    methods: frozenset[str]
    scope: KeyScope | None  # None: no key needed (health)
    runs_input: bool
    single_query: frozenset[str] = frozenset()  # query parameters taken once (not lists)

    @property
    def templated(self) -> int:
        """How many parameters the path template has (0: a concrete path)."""
        return str(getattr(self.route, "path", "")).count("{")


def required_scope(dependant: Dependant) -> KeyScope | None:
    """The scope a route's ``require(scope)`` dependency asks for, wherever it is declared."""
    for dependency in dependant.dependencies:
        found: KeyScope | None = getattr(dependency.call, "required_scope", None)
        if found is None:
            found = required_scope(dependency)
        if found is not None:
            return found
    return None


class ApiGate:
    """The gate of the operations of ``routers`` served under ``prefix`` (their own routes,
    matched here against the path under the prefix), and of the OpenAPI document."""

    def __init__(self, app: FastAPI, prefix: str, routers: Sequence[APIRouter]):
        self.app = app
        self.prefix = prefix
        self.operations: list[_Operation] = []
        for router in routers:
            for route in router.routes:
                if isinstance(route, APIRoute):
                    methods = frozenset(route.methods or ())
                    runs_input = any((m, route.path) in RUN_INPUT_OPERATIONS for m in methods)
                    single = frozenset(field.alias for field in route.dependant.query_params
                                       if not _is_list(field.field_info.annotation))
                    self.operations.append(_Operation(route, methods, required_scope(route.dependant),
                                                      runs_input, single))
        if app.openapi_url and app.openapi_url.startswith(prefix + "/"):
            document = Route(app.openapi_url.removeprefix(prefix), _no_endpoint,
                             methods=["GET", "HEAD"])
            self.operations.append(_Operation(document, frozenset({"GET", "HEAD"}), None, False))

    def applies(self, scope: Scope) -> bool:
        return scope["type"] == "http" and get_route_path(scope).startswith(API_ROOT)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """The ``receive`` to hand on (the body already read), or None when answered here."""
        operation, allowed = self._match(scope)
        if operation is None:
            if allowed:
                response = error_response(
                    405, "method_not_allowed", f"{scope['method']} is not served at "
                    f"{scope['path']}: use {', '.join(allowed)}", headers={"Allow": ", ".join(allowed)})
                await response(scope, receive, send)
                return None
            await self._unknown(scope, receive, send)
            return None
        headers = Headers(scope=scope)
        if operation.scope is not None:
            keys: KeyStore = self.app.state.keys
            try:
                authenticate(keys, presented_secret(headers.get("x-api-key"),
                                                    headers.get("authorization")), operation.scope)
            except ServiceError as exc:
                await error_response(exc.status, exc.code, exc.message)(scope, receive, send)
                return None
        repeated = _repeated(scope, operation.single_query)
        if repeated:
            await error_response(422, "invalid_input", f"the query parameter {repeated!r} is given "
                                 "more than once: give it once", {"parameter": repeated}
                                 )(scope, receive, send)
            return None
        limit, what = self._limit(operation)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, receive, send, limit, what)
            return None
        try:
            body = await _read(receive, limit)
        except _ClientGone:
            return None  # nobody to answer
        if body is None:
            await self._too_large(scope, receive, send, limit, what)
            return None
        if body and _is_json(headers.get("content-type")):
            try:
                json_input.loads(body)
            except json_input.JsonInputError as exc:
                response = error_response(422, "invalid_input",
                                          f"the request body: {exc}",
                                          {"rule": exc.rule, "position": exc.position})
                await response(scope, receive, send)
                return None
        return _replay(body, receive)

    def _match(self, scope: Scope) -> tuple[_Operation | None, list[str]]:
        path = get_route_path(scope)
        if not path.startswith(self.prefix + "/"):
            return None, []
        under = {"type": "http", "path": path.removeprefix(self.prefix), "root_path": "",
                 "method": scope["method"]}
        # As OpenAPI matches a URL: a concrete path before a templated one, so the path item
        # of /dlq/purge is only that (POST), though GET /dlq/{entry_id} would route there.
        found: list[tuple[int, Match, _Operation]] = []
        for operation in self.operations:
            match, _child = operation.route.matches(under)
            if match is not Match.NONE:
                found.append((operation.templated, match, operation))
        if not found:
            return None, []
        nearest = min(templated for templated, _match, _operation in found)
        allowed: set[str] = set()
        for templated, match, operation in found:
            if templated == nearest:
                if match is Match.FULL:
                    return operation, []
                allowed |= operation.methods
        return None, sorted(allowed)

    async def _unknown(self, scope: Scope, receive: Receive, send: Send) -> None:
        """No API path: 401 without a valid key (nobody learns which paths exist), else 404."""
        headers = Headers(scope=scope)
        keys: KeyStore = self.app.state.keys
        secret = presented_secret(headers.get("x-api-key"), headers.get("authorization"))
        if secret is None or keys.verify(secret) is None:
            response = error_response(401, "unauthorized", UNAUTHORIZED)
        else:
            response = error_response(404, "not_found", f"no API endpoint {scope['method']} "
                                      f"{scope['path']}: the OpenAPI document at "
                                      f"{self.app.openapi_url} lists them")
        await response(scope, receive, send)

    def _limit(self, operation: _Operation) -> tuple[int, str]:
        state = self.app.state
        if operation.runs_input and state.max_input < state.max_body:
            return state.max_input, "a run's input (max_input)"
        return state.max_body, "a request body (max_body)"

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int,
                         what: str) -> None:
        response = error_response(413, "too_large", f"the request body is larger than {what} "
                                  f"may be on this server: {limit} bytes", details={"limit": limit})
        await response(scope, receive, send)


def _is_list(annotation: object) -> bool:
    """Whether a query parameter's annotation takes several values (``list[str] | None``)."""
    origin = get_origin(annotation)
    if origin in (list, set, tuple, frozenset) or (
            isinstance(origin, type) and issubclass(origin, Sequence) and origin is not str):
        return True
    return any(_is_list(arg) for arg in get_args(annotation)) if origin is not None else False


def _repeated(scope: Scope, single: frozenset[str]) -> str | None:
    """The first parameter of ``single`` that the query string gives more than once."""
    query: bytes = scope.get("query_string", b"")
    if not single or b"&" not in query:
        return None
    seen: set[str] = set()
    for name, _value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if name in single:
            if name in seen:
                return name
            seen.add(name)
    return None


def _is_json(content_type: str | None) -> bool:
    """Whether FastAPI reads the body as JSON (no content type, or a JSON media type)."""
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def _no_endpoint(_request: object) -> Response:
    raise AssertionError("only matched against, never served")


class _ClientGone(Exception):
    pass


async def _read(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None once it passes ``limit`` (what came is dropped)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then what the server sends (a disconnect)."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
