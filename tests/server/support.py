"""Helpers of the hosted server's tests: the pipelines every server loads, and keys."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from engine.server.keys import KeyStore

PIPELINES = """
pipelines:
  greet:
    trigger: {type: http, config: {method: POST, path: "/greet/{name}"}}
    steps:
      - {name: hello, type: step.set, config: {values: {greeting: "hello {{ .trigger.path_params.name }}"}}}
      - {name: answer, type: step.json_response, config: {status: 201, headers: {X-Greeting: hi}, body: {greeting: "{{ .greeting }}", trigger: "{{ .trigger }}"}}}
  ingest:
    trigger: {type: http, config: {method: POST, path: /ingest}}
    steps:
      - {name: note, type: step.log, config: {message: "got {{ .trigger.body }}"}}
  strict:
    trigger: {type: http, config: {method: POST, path: /strict}}
    steps:
      - {name: check, type: step.validate, config: {required_fields: [body.qty]}, error_status: 409}
      - {name: answer, type: step.json_response, config: {body: {ok: true}}}
  teapot:
    trigger: {type: http, config: {method: GET, path: "/teapot/{kind}"}}
    steps:
      - {name: refuse, type: step.fail, config: {message: "no {{ .trigger.path_params.kind }} here", status: 418}}
      - {name: answer, type: step.json_response, config: {body: {}}}
  boom:
    trigger: {type: http, config: {method: GET, path: /boom}}
    steps:
      - {name: explode, type: step.fail, config: {message: "secret internals at db.internal:5432"}}
      - {name: answer, type: step.json_response, config: {body: {}}}
  page:
    trigger: {type: http, config: {method: GET, path: /page}}
    steps:
      - {name: html, type: step.raw_response, config: {status: 200, content_type: text/html, body: "<p>{{ .trigger.query.q }}</p>"}}
  order:
    steps:
      - {name: price, type: step.set, config: {values: {total: "{{ .qty * 10 }}"}}}
      - {name: tax, type: step.set, config: {values: {gross: "{{ .total * 2 }}"}}}
      - {name: out, type: step.pipeline_output, config: {values: {gross: "{{ .gross }}"}}}
  slow:
    steps:
      - {name: a, type: step.delay, config: {duration: 50ms}}
      - {name: b, type: step.delay, config: {duration: 50ms}}
      - {name: c, type: step.delay, config: {duration: 50ms}}
      - {name: d, type: step.delay, config: {duration: 50ms}}
  flaky:
    dlq: true
    steps:
      - name: maybe
        type: step.fail
        if: "{{ .fail }}"
        config: {message: "failed on purpose"}
"""

SCOPE_NAMES = ("read", "run", "debug", "admin")


def write_pipelines(folder: Path) -> Path:
    path = folder / "pipelines.yaml"
    path.write_text(PIPELINES)
    return path


def make_secrets(keys: KeyStore, tenant: str = "default") -> dict[str, str]:
    return {scope: keys.create(f"{scope} key", tenant, [scope])[1] for scope in SCOPE_NAMES}


def auth(secret: str) -> dict[str, str]:
    return {"X-API-Key": secret}


def healthy(base_url: str) -> bool:
    """Whether a server answers its health check (False while it is still starting)."""
    try:
        return httpx.get(f"{base_url}/api/v1/health", timeout=10).status_code == 200
    except httpx.TransportError:
        return False


class SseReader:
    """Parses a text/event-stream response into messages: ``{"id", "event", "data"}`` (data
    JSON-decoded) and ``{"comment": text}`` for comment lines."""

    def __init__(self, response: Any):
        self.lines = response.aiter_lines()

    async def next(self, timeout: float = 30.0) -> dict[str, Any]:
        return await asyncio.wait_for(self._next(), timeout)

    async def _next(self) -> dict[str, Any]:
        message: dict[str, Any] = {}
        async for line in self.lines:
            if line.startswith(":"):
                return {"comment": line[1:].strip()}
            if not line:
                if message and set(message) != {"retry"}:  # a retry-only block is no message
                    return message
                message = {}
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            message[field] = json.loads(value) if field == "data" else value
        raise StopAsyncIteration

    async def events(self, until: Any = None, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Event messages (comments skipped) until ``until(message)`` holds or the stream ends."""
        found: list[dict[str, Any]] = []
        while True:
            try:
                message = await self.next(timeout)
            except StopAsyncIteration:
                return found
            if "comment" in message:
                continue
            found.append(message)
            if until is not None and until(message):
                return found
