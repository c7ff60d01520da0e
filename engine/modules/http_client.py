"""``http.client``: a configured HTTP client (base URL, default headers, timeout) for
``step.http_call``. One ``httpx.AsyncClient`` per module, made on first use so that opening an
engine costs nothing, and closed with the engine so no connection outlives it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from engine.durations import parse_duration
from engine.errors import StepError
from engine.steps.base import ModuleType

DEFAULT_TIMEOUT = 30.0  # seconds


class HttpClient:
    def __init__(self, name: str, config: Mapping[str, Any]):
        self.name = name
        self.base_url = str(config.get("base_url") or "")
        self.headers = {str(k): str(v) for k, v in (config.get("headers") or {}).items()}
        self.verify_tls = bool(config.get("verify_tls", True))
        self.follow_redirects = bool(config.get("follow_redirects", False))
        try:
            self.timeout = parse_duration(config.get("timeout", DEFAULT_TIMEOUT))
        except ValueError as exc:
            raise StepError(f"module {name!r} (http.client): timeout: {exc}",
                            type="config") from None
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = httpx.AsyncClient(
                base_url=self.base_url, headers=self.headers, timeout=self.timeout,
                verify=self.verify_tls, follow_redirects=self.follow_redirects,
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "base_url": {
            "type": "string",
            "description": "Prefix for relative step URLs, e.g. https://api.example.com/v1/.",
        },
        "headers": {
            "type": "object", "additionalProperties": {"type": "string"},
            "description": "Headers sent with every request (a step's headers win).",
        },
        "timeout": {
            "type": ["string", "number"], "default": "30s",
            "description": "Default request timeout (e.g. 10s); a step's timeout wins.",
        },
        "verify_tls": {
            "type": "boolean", "default": True,
            "description": "Verify server certificates (turn off only for local test servers).",
        },
        "follow_redirects": {
            "type": "boolean", "default": False,
            "description": "Follow 3xx redirects instead of returning them.",
        },
    },
}

MODULE_TYPES: list[ModuleType] = [
    ModuleType(
        name="http.client",
        factory=HttpClient,
        description="A shared HTTP client with a base URL, default headers and a timeout.",
        schema=_SCHEMA,
    ),
]
