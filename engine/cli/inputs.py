"""The one reader of JSON given on the ``wfstudio`` command line (``--input``, ``--payload``,
``--patch``, ``--output``, ``--mock``, ``--input-file``, ``--jsonl``).

Every option goes through ``parse_json``: the engine's one rule for JSON input
(``engine.json_input``: strict JSON, exact integers of at most 4,300 digits, nesting of at
most 200 levels, UTF-8 without lone surrogates), so a bad value is always one
``InvalidInput`` line naming the option and, where there is one, the position. Added here:
trigger payloads (``expect="object"``) are JSON objects (the engine reads its context from
an object, so anything else would be silently dropped) and patches are RFC 6902 arrays.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from engine.json_input import JsonInputError, loads
from engine.service.errors import InvalidInput

Expect = Literal["any", "object", "patch"]
PATCH_EXAMPLE = '[{"op": "replace", "path": "/qty", "value": 2}]'


def _kind(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return "a number"
    return "a string" if isinstance(value, str) else "an array" if isinstance(value, list) else "a value"


def parse_json(text: str, option: str, expect: Expect = "any", *, line: int | None = None) -> Any:
    """``text`` as JSON under the engine's rule and ``expect``; ``InvalidInput`` (one line)
    otherwise.

    ``line``: ``text`` is that line of a larger input (JSON Lines); errors name it.
    """
    where = "" if line is None else f" line {line}:"
    try:
        value = loads(text, line=line)
    except JsonInputError as exc:
        raise InvalidInput(f"{option}: {exc}") from None
    problem = None
    if expect == "object" and not isinstance(value, dict):
        problem = f"expected a JSON object such as '{{\"n\": 1}}', got {_kind(value)}"
    if expect == "patch" and not (
            isinstance(value, list) and all(isinstance(op, dict) and "op" in op for op in value)):
        problem = f"expected a JSON Patch (RFC 6902) array such as '{PATCH_EXAMPLE}'"
    if problem is not None:
        raise InvalidInput(f"{option}:{where} {problem}")
    return value


def read_text(path: str, option: str) -> str:
    """A file's text for ``option`` (``--input-file``, ``--jsonl``): UTF-8, or one error line."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {option} {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InvalidInput(f"{option} {path}: not valid UTF-8 (byte {exc.start + 1}, "
                           f"line {line})") from None


def parse_json_lines(text: str, option: str, expect: Expect = "any") -> list[Any]:
    """One JSON value per non-blank line; errors name the line."""
    return [parse_json(text, option, expect, line=number)
            for number, text in enumerate(text.splitlines(), 1) if text.strip()]


def parse_patch(text: str | None, option: str = "--patch") -> list[dict[str, Any]] | None:
    if text is None:
        return None
    patch: list[dict[str, Any]] = parse_json(text, option, "patch")
    return patch

