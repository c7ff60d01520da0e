"""Errors as HTTP answers: ``{"error", "message", "details"?}`` with the typed error's status.

Bad input is always a 4xx with a body saying what is wrong; an unexpected exception is a
500 whose body says nothing about the server's internals (the traceback goes to the log).
"""

from __future__ import annotations

import logging
from typing import Any

import pydantic
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.errors import ConfigError, NotFoundError, StoreError, WorkflowError
from engine.service.errors import ServiceError

log = logging.getLogger("wfstudio.server")

_CODES = {400: "invalid_input", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 413: "too_large", 422: "invalid_input",
          503: "unavailable"}


class ErrorBody(BaseModel):
    error: str  # not_found, invalid_input, conflict, unauthorized, forbidden, unavailable, …
    message: str
    details: Any = None


# Documented on every /api/v1 operation (the OpenAPI document lists what a client may see).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in [
        (400, "Malformed request (e.g. a body that cannot be decoded)"),
        (401, "No valid API key (missing, unknown, revoked or expired)"),
        (403, "The API key lacks the scope this operation needs"),
        (404, "No such resource"),
        (409, "Conflicts with the current state"),
        (413, "The request body is larger than this server accepts"),
        (422, "Invalid input"),
        (503, "Temporarily unavailable"),
    ]
}


def error_response(status: int, code: str, message: str, details: Any = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": code, "message": message}
    if details is not None:
        body["details"] = details
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": 'Bearer realm="wfstudio"'}
    return JSONResponse(body, status_code=status, headers=headers)


UNKNOWN_FIELD = "unknown field: not part of this request (the OpenAPI document lists the fields)"


def _validation_details(errors: Any) -> list[dict[str, Any]]:
    # Only the parts that are safe to echo and always JSON: the raw input may be anything.
    return [{"loc": [str(p) for p in e.get("loc", ())],
             "msg": UNKNOWN_FIELD if e.get("type") == "extra_forbidden" else str(e.get("msg", "")),
             "type": str(e.get("type", ""))} for e in errors]


def _summary(details: list[dict[str, Any]]) -> str:
    if not details:
        return "invalid request"
    first = details[0]
    where = ".".join(first["loc"]) or "request"
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return f"{where}: {first['msg']}{more}"


async def _service_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return error_response(exc.status, exc.code, exc.message, exc.details)


async def _request_invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError | pydantic.ValidationError)
    details = _validation_details(exc.errors())
    return error_response(422, "invalid_input", _summary(details), details)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODES.get(exc.status_code, "error")
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, code, str(exc.detail), headers=headers)


async def _engine_error(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, ConfigError):
        details = [{"file": d.file, "line": d.line, "col": d.col, "message": d.message,
                    "severity": d.severity} for d in exc.diagnostics]
        return error_response(422, "invalid_input", str(exc), details)
    if isinstance(exc, NotFoundError):
        return error_response(404, "not_found", str(exc))
    if isinstance(exc, StoreError):
        log.error("store error: %s", exc)
        return error_response(503, "unavailable", "the event store is unavailable; try again")
    return error_response(422, "invalid_input", str(exc))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error in %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal", "internal server error")


async def handle_error(request: Request, exc: Exception) -> Response:
    """``exc`` answered by the handler the app registered for its nearest class (as
    Starlette's exception middleware picks it)."""
    handlers = request.app.exception_handlers
    for cls in type(exc).__mro__:
        handler = handlers.get(cls)
        if handler is not None:
            response: Response = await handler(request, exc)
            return response
    return await _unexpected(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(pydantic.ValidationError, _request_invalid)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(WorkflowError, _engine_error)
    app.add_exception_handler(Exception, _unexpected)
