"""``sink.webhook``: POST a CloudEvent to a URL, signed, retried with backoff.

Structured mode sends the envelope as ``application/cloudevents+json``; binary mode sends
the data as the body and the attributes as ``ce-*`` headers. With a ``secret`` the body is
signed under ``scheme`` (as ``engine.connectors.signatures`` checks it on the way in), anew
at each attempt so the timestamp stays fresh.

A 2xx is success. A 5xx, a 429 or a connection error is tried again after an exponential
backoff with jitter (``Retry-After`` is honoured up to ``max_backoff``), ``max_attempts``
in all; any other status, or the last failure, raises ``ConnectorError``: the step fails,
and a pipeline with ``dlq`` enabled dead-letters the execution.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any
from urllib.parse import urlsplit

import orjson

from engine.connectors import signatures
from engine.connectors.types import ConnectorError, SinkType

RETRIED = frozenset({429})  # plus every 5xx


class WebhookSink:
    def __init__(self, name: str, config: dict[str, Any]):
        self.name = name
        self.url = str(config.get("url") or "")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConnectorError(f"sink {name!r}: url {self.url!r} is not an http(s) URL")
        # What messages show: no credentials from the URL, no query.
        self.shown = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}" \
                     f"{parts.path}"
        self.mode = str(config.get("mode", "structured"))
        secret = config.get("secret")
        self.secret = str(secret[0] if isinstance(secret, list) else secret) if secret else None
        self.scheme = str(config.get("scheme", "generic"))
        self.max_attempts = int(config.get("max_attempts", 5))
        self.backoff = float(config.get("backoff", 0.5))
        self.max_backoff = float(config.get("max_backoff", 30.0))
        self.timeout = float(config.get("timeout", 10.0))
        self.headers = {str(k): str(v) for k, v in (config.get("headers") or {}).items()}
        self._client: Any = None

    def encode(self, event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        """The body and headers of ``event`` in this sink's mode."""
        if self.mode != "binary":
            return orjson.dumps(event), {"Content-Type": "application/cloudevents+json"}
        headers = {"Content-Type": str(event.get("datacontenttype") or "application/json")}
        for name, value in event.items():
            if name not in ("data", "data_base64", "datacontenttype") and value is not None:
                headers[f"ce-{name}"] = str(value)
        data = event.get("data")
        media = headers["Content-Type"].split(";", 1)[0].strip().lower()
        if isinstance(data, str) and not (media == "application/json" or media.endswith("+json")):
            return data.encode("utf-8"), headers
        return (b"" if data is None else orjson.dumps(data)), headers

    def delay(self, attempt: int, retry_after: str | None) -> float:
        """Seconds before attempt ``attempt + 1``: half the exponential step plus a random
        half (senders that failed together do not retry together)."""
        if retry_after and retry_after.strip().isdigit():
            return min(float(retry_after), self.max_backoff)
        step = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return step / 2 + random.uniform(0, step / 2)

    async def send(self, event: dict[str, Any]) -> dict[str, Any]:
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        body, headers = self.encode(event)
        headers.update(self.headers)
        if self.scheme == "generic" and event.get("id"):
            headers["X-Webhook-Id"] = str(event["id"])
        reason = "no attempt made"
        for attempt in range(1, self.max_attempts + 1):
            signed = dict(headers)
            if self.secret:
                signed.update(signatures.sign(self.scheme, self.secret, body))
            retry_after = None
            try:
                response = await self._client.post(self.url, content=body, headers=signed)
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {exc or 'connection failed'}"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return {"status": status, "attempts": attempt}
                text = response.text[:300]
                if status < 500 and status not in RETRIED:
                    raise ConnectorError(f"sink {self.name!r}: {self.shown} refused event "
                                         f"{event.get('id')}: HTTP {status} {text}")
                reason = f"HTTP {status} {text}".strip()
                retry_after = response.headers.get("retry-after")
            if attempt < self.max_attempts:
                await asyncio.sleep(self.delay(attempt, retry_after))
        raise ConnectorError(f"sink {self.name!r}: could not send event {event.get('id')} to "
                             f"{self.shown} in {self.max_attempts} attempts; last: {reason}")

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


_SECRET = {"type": "string", "minLength": 1}

SINK_TYPE = SinkType(
    name="sink.webhook", factory=WebhookSink,
    description="POSTs each event as a CloudEvent (structured or binary mode), optionally "
                "HMAC-signed; retries 5xx, 429 and connection errors with exponential backoff "
                "and jitter, then fails the step.",
    schema={"type": "object", "additionalProperties": False, "required": ["url"], "properties": {
        "url": {"type": "string", "pattern": "^https?://", "description": "where to POST"},
        "mode": {"enum": ["structured", "binary"], "default": "structured",
                 "description": "structured: the envelope as application/cloudevents+json; "
                                "binary: the data as the body, attributes as ce-* headers"},
        "secret": {"description": "signs each request (a list: the first signs)",
                   "oneOf": [_SECRET, {"type": "array", "items": _SECRET, "minItems": 1}]},
        "scheme": {"enum": list(signatures.SCHEMES), "default": "generic",
                   "description": "the signature headers to send (with secret)"},
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": 100, "default": 5},
        "backoff": {"type": "number", "minimum": 0, "default": 0.5,
                    "description": "seconds before the second attempt; doubles each time"},
        "max_backoff": {"type": "number", "minimum": 0, "default": 30},
        "timeout": {"type": "number", "exclusiveMinimum": 0, "default": 10,
                    "description": "seconds for one attempt"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"},
                    "description": "extra request headers"},
    }},
    example={"url": "https://example.com/hooks/orders", "secret": "${HOOK_SECRET}"},
    secret_keys=frozenset({"secret"}))
