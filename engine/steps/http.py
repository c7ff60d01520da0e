"""HTTP step types: outgoing calls, reading the HTTP trigger's request, answering it, and
verifying webhook signatures.

The payload of an ``http`` trigger (what ``.trigger`` holds) is::

    {method, path, path_params: {name: value}, query: {name: value | [values]},
     headers: {lower-case name: value}, body: parsed JSON | text | null, raw_body: text}

``raw_body`` is the request body exactly as received (decoded as UTF-8); signatures are
computed over it. Runs started by hand may pass only some of these keys.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import time
import weakref
from collections.abc import Mapping
from typing import Any

import httpx

from engine.durations import parse_duration
from engine.errors import StepError
from engine.steps.base import StepContext, StepResult, StepType

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
DEFAULT_TIMEOUT = 30.0  # seconds, for calls without a client module
BODY_EXCERPT = 500  # characters of a failing response body kept in the error

_DURATION = {"type": ["string", "number"],
             "description": "Duration: 250ms, 5s, 2m, 1h, 1d or a number of seconds."}
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

# Calls without a ``client`` share one client per event loop: an httpx client's pooled
# connections belong to the loop that opened them.
_shared: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary())


def shared_client() -> httpx.AsyncClient:
    """The process client for the running loop (made on first use)."""
    loop = asyncio.get_running_loop()
    client = _shared.get(loop)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(timeout=DEFAULT_TIMEOUT)
        _shared[loop] = client
    return client


async def close_shared_client() -> None:
    """Close the running loop's shared client (call at shutdown; a later call makes a new one)."""
    client = _shared.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


def _duration(step: str, key: str, value: Any) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise StepError(f"step {step!r}: {key}: {exc}", type="config") from None


def _decode_body(response: httpx.Response) -> Any:
    content_type = response.headers.get("content-type", "").lower()
    text = response.text
    if "json" in content_type and text.strip():
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _excerpt(response: httpx.Response) -> str:
    text = response.text
    return text if len(text) <= BODY_EXCERPT else text[:BODY_EXCERPT] + "…"


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return [_query_value(v) for v in value]
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return value


# -- step.http_call ------------------------------------------------------------------------

async def run_http_call(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    step = ctx.step.name
    method = str(config.get("method") or "GET").upper()
    url = str(config.get("url") or "")
    if not url:
        raise StepError(f"step {step!r}: 'url' is empty", type="config")
    client_name = config.get("client")
    if client_name:
        module = ctx.module(str(client_name))
        client = getattr(module, "client", None)
        if not isinstance(client, httpx.AsyncClient):
            raise StepError(f"step {step!r}: module {client_name!r} is not an http.client module",
                            type="config")
    else:
        client = shared_client()

    headers = {str(k): str(v) for k, v in (config.get("headers") or {}).items() if v is not None}
    query = {str(k): _query_value(v) for k, v in (config.get("query") or {}).items()
             if v is not None}
    kwargs: dict[str, Any] = {"headers": headers}
    if query:  # httpx replaces a URL's own query with ``params``: merge them instead
        try:
            kwargs["params"] = httpx.URL(url).params.merge(query)
        except httpx.InvalidURL as exc:
            raise StepError(f"step {step!r}: invalid url {url!r}: {exc}", type="config") from None
    body = config.get("body")
    if body is not None:
        if isinstance(body, str):  # a string is sent as written (XML, form data, text …)
            kwargs["content"] = body.encode("utf-8")
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "text/plain; charset=utf-8"
        else:
            kwargs["json"] = body
    timeout: float | None = None
    if config.get("timeout") is not None:
        timeout = _duration(step, "timeout", config["timeout"])
        kwargs["timeout"] = timeout

    target = f"{method} {url}"
    try:
        request = client.build_request(method, url, **kwargs)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol, TypeError, ValueError) as exc:
        raise StepError(f"step {step!r}: cannot build request {target}: {exc}",
                        type="config") from None
    started = time.perf_counter()
    try:
        response = await client.send(request)
    except httpx.UnsupportedProtocol:
        raise StepError(f"step {step!r}: {target}: the URL needs http:// or https:// "
                        "(or set 'client' to an http.client module with a base_url)",
                        type="config") from None
    except httpx.TimeoutException:
        limit = timeout if timeout is not None else client.timeout.read
        raise StepError(f"step {step!r}: {target} timed out after {limit}s",
                        type="timeout", details={"url": str(request.url)}) from None
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        raise StepError(f"step {step!r}: cannot reach {request.url}: {reason}",
                        type="http_connection", details={"url": str(request.url)}) from None
    elapsed_ms = round((time.perf_counter() - started) * 1000, 2)

    if response.status_code >= 400 and config.get("error_on_status", True):
        excerpt = _excerpt(response)
        raise StepError(f"step {step!r}: {target} returned {response.status_code}: {excerpt}",
                        type="http", status=response.status_code,
                        details={"status_code": response.status_code, "url": str(request.url),
                                 "body": excerpt})
    return {
        "status_code": response.status_code,
        "headers": dict(response.headers),
        "body": _decode_body(response),
        "elapsed_ms": elapsed_ms,
    }


# -- step.request_parse ----------------------------------------------------------------------

def _pick(source: Mapping[str, Any], names: list[str] | None, *, fold_case: bool = False
          ) -> dict[str, Any]:
    if names is None:
        return {(k.lower() if fold_case else k): v for k, v in source.items()}
    if fold_case:
        lowered = {str(k).lower(): v for k, v in source.items()}
        return {name: lowered.get(name.lower()) for name in names}
    return {name: source.get(name) for name in names}


async def run_request_parse(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    trigger = ctx.vars.get("trigger")
    trigger = trigger if isinstance(trigger, Mapping) else {}

    def section(key: str) -> Mapping[str, Any]:
        value = trigger.get(key)
        return value if isinstance(value, Mapping) else {}

    out: dict[str, Any] = {
        "path_params": _pick(section("path_params"), config.get("path_params")),
        "query": _pick(section("query"), config.get("query_params")),
        "headers": _pick(section("headers"), config.get("headers"), fold_case=True),
    }
    body = trigger.get("body")
    if config.get("parse_body", True):
        if isinstance(body, str | bytes):
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
            if text.strip():
                try:
                    body = json.loads(text)
                except ValueError as exc:
                    raise StepError(f"step {ctx.step.name!r}: the request body is not valid "
                                    f"JSON: {exc}", type="validation", status=400) from None
            else:
                body = None
    elif "raw_body" in trigger:
        body = trigger.get("raw_body")
    out["body"] = body
    return out


# -- responses ----------------------------------------------------------------------------

def _headers(config: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in (config.get("headers") or {}).items() if v is not None}


def _status(step: str, value: Any, default: int) -> int:
    if value is None:
        return default
    try:
        status = int(value)
    except (TypeError, ValueError):
        raise StepError(f"step {step!r}: status {value!r} is not an HTTP status code",
                        type="config") from None
    if not 100 <= status <= 599:
        raise StepError(f"step {step!r}: status {status} is outside 100-599", type="config")
    return status


async def run_json_response(ctx: StepContext, config: dict[str, Any]) -> StepResult:
    status = _status(ctx.step.name, config.get("status"), 200)
    body = config.get("body")
    headers = _headers(config)
    return StepResult(output={"status": status, "body": body}, stop=True,
                      response={"status": status, "headers": headers, "body": body})


async def run_raw_response(ctx: StepContext, config: dict[str, Any]) -> StepResult:
    status = _status(ctx.step.name, config.get("status"), 200)
    content_type = str(config.get("content_type") or "text/plain; charset=utf-8")
    body = config.get("body")
    if body is None:
        text = ""
    elif isinstance(body, str):
        text = body
    else:  # a template that produced a structure: send its compact JSON
        text = json.dumps(body, separators=(",", ":"))
    headers = _headers(config)
    return StepResult(output={"status": status, "content_type": content_type, "body": text},
                      stop=True,
                      response={"status": status, "headers": headers, "raw": text,
                                "content_type": content_type})


# -- step.webhook_verify -----------------------------------------------------------------------

_SCHEMES = {"hmac-sha256": ("sha256", "sha256="), "hmac-sha1": ("sha1", "sha1="),
            "github": ("sha256", "sha256=")}
_DEFAULT_HEADERS = {"github": "X-Hub-Signature-256"}


def _raw_body(trigger: Mapping[str, Any]) -> str:
    if isinstance(trigger.get("raw_body"), str):
        return str(trigger["raw_body"])
    body = trigger.get("body")
    if body is None:
        return ""
    if isinstance(body, str):
        return body
    # No raw text was recorded (a hand-made run): the compact JSON is the best stand-in.
    return json.dumps(body, separators=(",", ":"))


async def run_webhook_verify(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    step = ctx.step.name
    scheme = str(config.get("scheme") or "hmac-sha256")
    if scheme not in _SCHEMES:
        raise StepError(f"step {step!r}: unknown scheme {scheme!r}; use one of "
                        f"{', '.join(_SCHEMES)}", type="config")
    secret = config.get("secret")
    if not isinstance(secret, str) or not secret:
        raise StepError(f"step {step!r}: 'secret' is empty (is the variable it comes from set?)",
                        type="config")
    header = str(config.get("header") or _DEFAULT_HEADERS.get(scheme, "X-Signature"))
    encoding = str(config.get("encoding") or "hex")
    trigger = ctx.vars.get("trigger")
    trigger = trigger if isinstance(trigger, Mapping) else {}
    raw_headers = trigger.get("headers")
    headers: Mapping[str, Any] = raw_headers if isinstance(raw_headers, Mapping) else {}
    supplied = next((str(v) for k, v in headers.items() if str(k).lower() == header.lower()), None)
    if not supplied:
        raise StepError(f"step {step!r}: missing signature header {header}",
                        type="unauthorized", status=401)

    payload = config.get("payload")
    message = payload if isinstance(payload, str) else _raw_body(trigger)
    algorithm, prefix = _SCHEMES[scheme]
    digest = hmac.new(secret.encode("utf-8"), message.encode("utf-8"), algorithm).digest()
    signature = supplied.strip()
    if scheme == "github":
        if not signature.startswith(prefix):
            raise StepError(f"step {step!r}: signature in {header} must start with {prefix!r}",
                            type="unauthorized", status=401)
        signature = signature[len(prefix):]
    elif signature.lower().startswith(prefix):
        signature = signature[len(prefix):]
    if encoding == "base64":
        expected = base64.b64encode(digest).decode("ascii")
    else:
        expected, signature = digest.hex(), signature.lower()
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace")):
        raise StepError(f"step {step!r}: signature in {header} does not match the body",
                        type="unauthorized", status=401)
    return {"verified": True}


# -- schemas and registration --------------------------------------------------------------

def _schema(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"$schema": SCHEMA_DIALECT, "type": "object",
                              "additionalProperties": False, "properties": properties}
    if required:
        schema["required"] = required
    return schema


_HEADER_MAP = {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}

STEP_TYPES: list[StepType] = [
    StepType(
        name="step.http_call",
        run=run_http_call,
        description="Call an HTTP endpoint and return its status, headers and decoded body.",
        category="http",
        schema=_schema({
            "url": {"type": "string", "description": "Absolute URL, or a path relative to the "
                                                     "client module's base_url."},
            "method": {"type": "string", "enum": _METHODS, "default": "GET",
                       "description": "HTTP method."},
            "headers": {**_HEADER_MAP, "description": "Request headers (added to the client's)."},
            "query": {"type": "object", "description": "Query parameters; a list repeats the "
                                                       "parameter."},
            "body": {"description": "Request body: objects, lists, numbers are sent as JSON; a "
                                    "string is sent as written (text/plain unless a "
                                    "Content-Type header is given)."},
            "timeout": {**_DURATION, "description": "Request timeout (default: the client's, "
                                                    "else 30s)."},
            "error_on_status": {"type": "boolean", "default": True,
                                "description": "Fail the step when the status is 400 or more."},
            "client": {"type": "string", "description": "Name of an http.client module (base "
                                                        "URL, default headers, timeout)."},
        }, ["url"]),
        output="{status_code, headers (lower-case names), body (parsed JSON when the response "
               "is JSON, else text), elapsed_ms}. Fails with type http (status ≥ 400), timeout "
               "or http_connection.",
        module_refs=frozenset({"client"}),
        example={"url": "https://api.example.com/users/{{ .user_id }}", "method": "GET",
                 "timeout": "5s"},
    ),
    StepType(
        name="step.request_parse",
        run=run_request_parse,
        description="Extract path params, query params, headers and the JSON body of the HTTP "
                    "trigger's request (trigger payload: {method, path, path_params, query, "
                    "headers, body, raw_body}).",
        category="http",
        schema=_schema({
            "path_params": {"type": "array", "items": {"type": "string"},
                            "description": "Path parameters to extract (default: all)."},
            "query_params": {"type": "array", "items": {"type": "string"},
                             "description": "Query parameters to extract (default: all)."},
            "headers": {"type": "array", "items": {"type": "string"},
                        "description": "Headers to extract, case-insensitive (default: all)."},
            "parse_body": {"type": "boolean", "default": True,
                           "description": "Parse a text body as JSON (invalid JSON fails with "
                                          "status 400); false keeps the raw text."},
        }),
        output="{path_params, query, headers, body}; names that are absent map to null.",
        example={"path_params": ["id"], "query_params": ["page"], "parse_body": True},
    ),
    StepType(
        name="step.json_response",
        run=run_json_response,
        description="Answer the HTTP trigger with a JSON body and end the pipeline.",
        category="http",
        schema=_schema({
            "status": {"type": "integer", "minimum": 100, "maximum": 599, "default": 200,
                       "description": "HTTP status code."},
            "headers": {**_HEADER_MAP, "description": "Response headers."},
            "body": {"description": "Response body, sent as JSON."},
        }),
        output="{status, body}; stops the pipeline successfully.",
        example={"status": 200, "body": {"ok": True}},
    ),
    StepType(
        name="step.raw_response",
        run=run_raw_response,
        description="Answer the HTTP trigger with a raw body of a given content type and end "
                    "the pipeline.",
        category="http",
        schema=_schema({
            "status": {"type": "integer", "minimum": 100, "maximum": 599, "default": 200,
                       "description": "HTTP status code."},
            "content_type": {"type": "string", "default": "text/plain; charset=utf-8",
                             "description": "Content-Type of the body."},
            "headers": {**_HEADER_MAP, "description": "Further response headers."},
            "body": {"type": "string", "description": "The body text (a structure produced by "
                                                      "a template is sent as compact JSON)."},
        }),
        output="{status, content_type, body}; stops the pipeline successfully.",
        example={"status": 200, "content_type": "text/html; charset=utf-8",
                 "body": "<h1>Hello</h1>"},
    ),
    StepType(
        name="step.webhook_verify",
        run=run_webhook_verify,
        description="Verify an HMAC signature header over the HTTP trigger's raw body; fails "
                    "with 401 when it does not match.",
        category="security",
        schema=_schema({
            "secret": {"type": "string", "description": "The shared secret, e.g. "
                                                        "'{{ .env.WEBHOOK_SECRET }}'; never commit it."},
            "header": {"type": "string",
                       "description": "Header holding the signature (default "
                                      "X-Hub-Signature-256 for github, else X-Signature)."},
            "scheme": {"type": "string", "enum": list(_SCHEMES), "default": "hmac-sha256",
                       "description": "hmac-sha256 / hmac-sha1: hex digest, optional "
                                      "sha256=/sha1= prefix; github: 'sha256=' + hex."},
            "encoding": {"type": "string", "enum": ["hex", "base64"], "default": "hex",
                         "description": "How the signature is encoded (hmac schemes)."},
            "payload": {"type": "string", "description": "Text to verify instead of the "
                                                         "trigger's raw body."},
        }, ["secret"]),
        output="{verified: true}; fails with type unauthorized and status 401.",
        example={"secret": "{{ .env.WEBHOOK_SECRET }}", "scheme": "github"},
    ),
]
