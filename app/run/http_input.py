"""The trigger input of an ``http`` pipeline, built as the hosted server builds it.

A pipeline behind ``wfstudio serve`` sees a request as (engine/server/http_trigger.py)::

    {method, path, path_params, query: {name: value | [values]},
     headers: {lower-case name: value}, body: JSON-decoded when JSON | text | null,
     raw_body: text}

The run dialog builds exactly that from its fields, so a pipeline run from the studio sees
what the same request would give it behind the server. The app may not import the server,
so the few rules are restated here; tests compare both on the same requests.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

# The server drops the headers carrying the API key: credentials never reach the event store.
AUTH_HEADERS = frozenset({"authorization", "x-api-key", "proxy-authorization"})
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name


class InputError(ValueError):
    """Input that cannot be run; ``line``/``col`` (1-based) locate a JSON error in ``field``."""

    def __init__(self, message: str, field: str = "", line: int | None = None, col: int | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.line = line
        self.col = col


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(text: str, field: str = "input") -> Any:
    """Strict JSON (no NaN/Infinity, like the server's parser); InputError with the position."""
    try:
        return json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{field}: line {exc.lineno}, column {exc.colno}: {exc.msg}", field, exc.lineno, exc.colno
        ) from None
    except ValueError as exc:
        raise InputError(f"{field}: {exc}", field) from None


def path_params(template: str) -> list[str]:
    """The ``{name}`` segments of a trigger path, in order, each once."""
    return list(dict.fromkeys(_PARAM.findall(template)))


def is_json_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


@dataclass
class HttpFields:
    """What the run dialog's request fields hold (and Settings remembers per pipeline)."""

    method: str = "POST"
    params: dict[str, str] = field(default_factory=dict)
    query: str = ""  # a query string: a=1&b=2&a=3
    headers: list[tuple[str, str]] = field(default_factory=lambda: [("content-type", "application/json")])
    body: str = "{}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "params": dict(self.params),
            "query": self.query,
            "headers": [list(h) for h in self.headers],
            "body": self.body,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HttpFields:
        """Remembered fields; anything damaged falls back to the default."""
        fields = cls()
        if isinstance(data.get("method"), str):
            fields.method = data["method"]
        if isinstance(data.get("params"), dict):
            fields.params = {str(k): str(v) for k, v in data["params"].items()}
        if isinstance(data.get("query"), str):
            fields.query = data["query"]
        if isinstance(data.get("headers"), list):
            fields.headers = [
                (str(h[0]), str(h[1])) for h in data["headers"] if isinstance(h, list | tuple) and len(h) == 2
            ]
        if isinstance(data.get("body"), str):
            fields.body = data["body"]
        return fields


def build_http_input(fields: HttpFields, trigger_config: dict[str, Any]) -> dict[str, Any]:
    """The server's trigger payload for this request; InputError where the server would refuse it."""
    declared = str(trigger_config.get("method", "")).upper()
    method = fields.method.strip().upper()
    template = str(trigger_config.get("path", ""))
    if declared and method != declared:
        raise InputError(
            f"method: the trigger serves {declared} {template}; the server answers 405 to {method}", "method"
        )
    values: dict[str, str] = {}
    path = template
    for name in path_params(template):
        value = fields.params.get(name, "")
        if not value:
            raise InputError(f"path: fill in {{{name}}}", "path")
        if "/" in value:
            raise InputError(f"path: {{{name}}} matches one path segment; it cannot contain '/'", "path")
        values[name] = value
        path = path.replace(f"{{{name}}}", value)

    headers: dict[str, str] = {}
    for name, value in fields.headers:
        name = name.strip().lower()
        if not name:
            continue
        if not _TOKEN.fullmatch(name):
            raise InputError(f"headers: {name!r} is not a valid header name", "headers")
        if name in AUTH_HEADERS:
            continue  # as the server: never part of the payload
        headers[name] = f"{headers[name]}, {value}" if name in headers else value

    query: dict[str, Any] = {}
    for name, value in parse_qsl(fields.query.strip().lstrip("?"), keep_blank_values=True):
        if name not in query:
            query[name] = value
        elif isinstance(query[name], list):
            query[name].append(value)
        else:
            query[name] = [query[name], value]

    text = fields.body
    content_type = headers.get("content-type", "")
    body: Any = None
    if text.strip():
        if is_json_type(content_type):
            body = parse_json(text, "body")  # the server answers 400 to a bad JSON body
        elif not content_type:
            try:
                body = parse_json(text, "body")
            except InputError:
                body = text
        else:
            body = text
    return {
        "method": method,
        "path": path,
        "path_params": values,
        "query": query,
        "headers": headers,
        "body": body,
        "raw_body": text,
    }
