"""Serving the pipelines' ``http`` triggers: a request becomes a run, the run the reply.

The trigger payload (what ``.trigger`` holds) is::

    {method, path, path_params, query: {name: value | [values]},
     headers: {lower-case name: value}, body: JSON-decoded when JSON | text | null,
     raw_body: text}

without the headers that carry the API key (``Authorization``, ``X-API-Key``,
``Proxy-Authorization``): credentials never reach the event store.

The reply:

- a run that produced a response (``step.json_response``/``step.raw_response``): that
  status, headers and body;
- a pipeline without a response step: 202 ``{"execution_id"}`` as soon as the execution is
  durably started (it runs on in the background); so is a run that completed without
  reaching its response step;
- a failed run: the failing step's ``error_status`` if it declares one, else the HTTP
  status its error carries (see ``failure_status``), else 500. A 4xx answers
  ``{"error": "step_failed", "message", "details"?, "execution_id"}`` (the client's
  request was refused: say why); a 5xx ``{"error": "execution_failed", "message",
  "execution_id"}`` without internals. A cancelled run: 503.

Every reply carries ``X-Execution-Id``. Triggers need an API key with the ``run`` scope.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, unquote

import orjson
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from engine import json_input
from engine.server.auth import AUTH_HEADERS, authenticate, presented_secret
from engine.server.errors import error_response, handle_error
from engine.server.keys import KeyStore
from engine.server.triggers import TriggerRoute, TriggerTable, failing_step
from engine.service.errors import NotFound
from engine.service.local import LocalService
from engine.service.models import RunOptions, RunResult

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_NOT_FORWARDED = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive",
                            "upgrade", "x-execution-id"})


class BodyTooLarge(Exception):
    pass


class _Head:
    """A request's headers, read in one pass over the ASGI scope: what the payload holds
    (lower-case names, repeats joined, no credentials) and the first value of each header
    the server itself reads (as ``Request.headers.get`` gives it)."""

    __slots__ = ("api_key", "authorization", "content_length", "shown")

    def __init__(self, scope: Scope):
        self.api_key: str | None = None
        self.authorization: str | None = None
        self.content_length: str | None = None
        shown: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1")
            value = raw_value.decode("latin-1")
            if name in AUTH_HEADERS:
                if name == "x-api-key":
                    self.api_key = value if self.api_key is None else self.api_key
                elif name == "authorization":
                    self.authorization = (value if self.authorization is None
                                          else self.authorization)
                continue
            if name in shown:
                shown[name] = f"{shown[name]}, {value}"
                continue
            if name == "content-length":
                self.content_length = value
            shown[name] = value
        self.shown = shown


async def _read_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    """The whole body; ``BodyTooLarge`` as soon as it is announced or counted over ``limit``
    (nothing kept), ``ClientDisconnect`` if the client leaves first."""
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge()
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            continue
        chunk: bytes = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge()
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_body(request: Request, limit: int) -> bytes:
    return await _read_body(request.receive, request.headers.get("content-length"), limit)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _url_path(scope: Scope) -> str:
    """``request.url.path`` without building the URL (the common case: nothing to escape)."""
    path: str = scope["path"]
    return Request(scope).url.path if "?" in path or "#" in path or "\\" in path else path


def trigger_payload(request: Request, params: dict[str, str], raw: bytes) -> dict[str, Any]:
    """The run's ``.trigger`` for ``request`` with body ``raw`` (see ``_payload``)."""
    return _payload(request.scope, _Head(request.scope).shown, params, raw)


def _payload(scope: Scope, headers: dict[str, str], params: dict[str, str],
             raw: bytes) -> dict[str, Any]:
    """The run's ``.trigger``; raises ``JsonInputError`` if a JSON body breaks the engine's
    rule for JSON input (``engine.json_input``; orjson first, so the common body costs what
    ``orjson.loads`` does). A body without a content type that is not such JSON is text."""
    query: dict[str, Any] = {}
    for name, value in (parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
                        if scope.get("query_string") else ()):
        if name not in query:
            query[name] = value
        elif isinstance(query[name], list):
            query[name].append(value)
        else:
            query[name] = [query[name], value]
    text = raw.decode("utf-8", "replace")
    content_type = headers.get("content-type", "")
    body: Any = None
    if text and not text.isspace():  # what text.strip() tests, without copying the body
        if _is_json(content_type):
            body = json_input.loads(raw)  # JsonInputError is a ValueError
        elif not content_type:
            try:
                body = json_input.loads(raw)
            except json_input.JsonInputError:
                body = text
        else:
            body = text
    return {"method": scope["method"], "path": _url_path(scope),
            "path_params": {k: unquote(v) for k, v in params.items()}, "query": query,
            "headers": headers, "body": body, "raw_body": text}


def _safe_headers(headers: Any, execution_id: str) -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(headers, dict):
        for name, value in headers.items():
            name, value = str(name), str(value)
            if (_TOKEN.fullmatch(name) and name.lower() not in _NOT_FORWARDED
                    and not any(c in value for c in "\r\n\0")):
                out[name] = value
    out["X-Execution-Id"] = execution_id
    return out


def reply(result: RunResult, route: TriggerRoute) -> Response:
    eid = result.execution_id
    if result.status == "cancelled":
        return error_response(503, "unavailable", "the execution was cancelled",
                              headers={"X-Execution-Id": eid})
    if result.status not in ("completed",):
        return _failure(result, route)
    response = result.response
    if not response:
        return accepted(eid)
    status = int(response.get("status") or 200)
    if not 200 <= status <= 599:
        return error_response(500, "execution_failed", f"the pipeline answered with status "
                              f"{status}, which cannot end a request", headers={"X-Execution-Id": eid})
    headers = _safe_headers(response.get("headers"), eid)
    empty = status in (204, 304) or status < 200
    if "raw" in response:
        content_type = str(response.get("content_type") or "text/plain; charset=utf-8")
        if any(c in content_type for c in "\r\n\0"):
            content_type = "text/plain; charset=utf-8"
        return Response(b"" if empty else str(response["raw"]).encode("utf-8"), status,
                        headers, media_type=content_type)
    content = b"" if empty else orjson.dumps(response.get("body"), default=str)
    return Response(content, status, headers, media_type="application/json")


def failure_status(result: RunResult, route: TriggerRoute) -> int:
    """The failing step's ``error_status``; else the status its error carries for the
    reply (400 for validation, 401 for a bad signature, 429 for a rate limit, a
    ``step.fail``'s ``status`` …) but not an ``http_call``'s, which is the upstream's; else 500."""
    error = result.error or {}
    if error.get("step"):
        step = failing_step(route.pipeline, str(error["step"]))
        if step is not None and step.error_status is not None:
            return step.error_status
    status = error.get("status")
    if error.get("type") != "http" and isinstance(status, int) and 400 <= status <= 599:
        return status
    return 500


def _failure(result: RunResult, route: TriggerRoute) -> Response:
    status = failure_status(result, route)
    error = result.error or {}
    headers = {"X-Execution-Id": result.execution_id}
    body: dict[str, Any] = {"error": "step_failed", "execution_id": result.execution_id}
    if status < 500:  # the client's fault: say what was wrong
        body["message"] = str(error.get("message") or "the request was refused")
        if error.get("details") is not None:
            body["details"] = error["details"]
    else:
        body["error"] = "execution_failed"
        body["message"] = ("the pipeline failed; its execution is recorded under "
                           "execution_id")
    return Response(orjson.dumps(body, default=str), status, headers,
                    media_type="application/json")


def accepted(execution_id: str) -> Response:
    return JSONResponse({"execution_id": execution_id}, 202,
                        {"X-Execution-Id": execution_id,
                         "Location": f"/api/v1/executions/{execution_id}"})


_WAIT = RunOptions()  # the service only reads it: one instance, validated once
_NO_WAIT = RunOptions(wait=False)


async def handle_trigger(request: Request) -> Response:
    """The catch-all route: every request outside the API lands here."""
    return await _handle(request.scope, request.receive)


async def _handle(scope: Scope, receive: Receive) -> Response:
    state = scope["app"].state
    keys: KeyStore = state.keys
    head = _Head(scope)
    # The key first: without one nobody learns which paths exist.
    authenticate(keys, presented_secret(head.api_key, head.authorization), "run")
    method: str = scope["method"]
    if scope["path"].startswith("/api/"):
        raise NotFound(f"no API endpoint {method} {_url_path(scope)}")
    table: TriggerTable = state.triggers
    raw_path = scope.get("raw_path") or _url_path(scope).encode()
    path = raw_path.decode("latin-1").split("?", 1)[0]
    route, params, allowed = table.match(method, path)
    if route is None:
        if allowed:
            return error_response(405, "method_not_allowed",
                                  f"{method} is not served at {_url_path(scope)}",
                                  headers={"Allow": ", ".join(allowed)})
        raise NotFound(f"no trigger at {method} {_url_path(scope)}")
    try:
        raw = await _read_body(receive, head.content_length, state.max_body)
    except BodyTooLarge:
        return error_response(413, "too_large", f"the request body exceeds {state.max_body} bytes")
    try:
        payload = _payload(scope, head.shown, params, raw)
    except json_input.JsonInputError as exc:
        return error_response(400, "invalid_input", f"the request body: {exc}",
                              {"rule": exc.rule, "position": exc.position})
    service: LocalService = state.service
    name = route.pipeline.name
    if not route.responds:
        # Returns once the start is durable: acknowledged means recorded.
        started = await service.run(name, payload, _NO_WAIT)
        return accepted(started.execution_id)
    return reply(await service.run(name, payload, _WAIT), route)


async def serve_trigger(scope: Scope, receive: Receive, send: Send) -> None:
    """``handle_trigger`` as a bare ASGI app (see ServerApp): errors answered by the app's
    exception handlers, as through the router."""
    try:
        response = await _handle(scope, receive)
    except Exception as exc:
        response = await handle_error(Request(scope, receive), exc)
    await response(scope, receive, send)
