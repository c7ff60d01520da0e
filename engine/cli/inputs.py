"""The one reader of JSON given on the ``wfstudio`` command line (``--input``, ``--payload``,
``--patch``, ``--output``, ``--mock``, ``--input-file``, ``--jsonl``).

Every option goes through ``parse_json`` with one set of rules, so a bad value is always one
``InvalidInput`` line naming the option and, where there is one, the position:

- strict JSON: no ``NaN``/``Infinity``, no number that overflows a float;
- integers of at most 4,300 digits (Python's own limit for ``int(str)``);
- nesting of at most ``MAX_DEPTH`` levels (as for pipeline YAML): deeper values break the
  recursion of everything that reads them later;
- text that is valid UTF-8: the shell may pass bytes that are not (Python keeps them as
  lone surrogates), and a ``\\ud800`` escape without its pair makes the same kind of string;
- trigger payloads (``expect="object"``) are JSON objects: the engine reads its context
  from an object, so anything else would be silently dropped.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from engine.service.errors import InvalidInput

MAX_DEPTH = 200
MAX_INT_DIGITS = 4300

Expect = Literal["any", "object", "patch"]
PATCH_EXAMPLE = '[{"op": "replace", "path": "/qty", "value": 2}]'


class _BadToken(ValueError):
    """A number or constant json accepts but the rules above do not; ``token`` locates it."""

    def __init__(self, message: str, token: str) -> None:
        super().__init__(message)
        self.token = token


def _int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise _BadToken(f"an integer of {digits} digits (at most {MAX_INT_DIGITS})", text)
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadToken(f"the number {text[:24]}{'…' if len(text) > 24 else ''} is out of range",
                        text)
    return value


def _constant(name: str) -> Any:
    raise _BadToken(f"{name} is not JSON (use null or a number)", name)


_DECODER = json.JSONDecoder(parse_int=_int, parse_float=_float, parse_constant=_constant)


def _position(text: str, index: int, line: int | None) -> str:
    """``line L column C`` of ``index``; ``line`` is the number of a one-line ``text``."""
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    if line is None:
        line = text.count("\n", 0, index) + 1
    return f"line {line} column {column}"


def _kind(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return "a number"
    return "a string" if isinstance(value, str) else "an array" if isinstance(value, list) else "a value"


def _check_tree(value: Any) -> str | None:
    """What breaks the depth or surrogate rule, walked without recursion (it may be deep)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                return (f"a string holds an unpaired surrogate ({item[exc.start]!a}); JSON text "
                        "must encode characters as UTF-8 or as \\u escapes in pairs")
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > MAX_DEPTH:
            return f"values are nested more than {MAX_DEPTH} levels deep"
        if isinstance(item, dict):
            stack.extend((key, depth) for key in item)
            stack.extend((child, depth + 1) for child in item.values())
        else:
            stack.extend((child, depth + 1) for child in item)
    return None


def parse_json(text: str, option: str, expect: Expect = "any", *, line: int | None = None) -> Any:
    """``text`` as JSON under the rules above; ``InvalidInput`` (one line) otherwise.

    ``line``: ``text`` is that line of a larger input (JSON Lines); errors name it.
    """
    where = "" if line is None else f" line {line}:"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{option}: not valid UTF-8 at {_position(text, exc.start, line)}: "
                           "pass UTF-8 text") from None
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{option}: invalid JSON at {_position(text, exc.pos, line)}: "
                           f"{exc.msg}") from None
    except _BadToken as exc:
        index = text.find(exc.token)
        raise InvalidInput(f"{option}: invalid JSON at {_position(text, max(index, 0), line)}: "
                           f"{exc}") from None
    except RecursionError:
        raise InvalidInput(f"{option}:{where} values are nested more than {MAX_DEPTH} levels "
                           "deep") from None
    problem = _check_tree(value)
    if problem is None and expect == "object" and not isinstance(value, dict):
        problem = f"expected a JSON object such as '{{\"n\": 1}}', got {_kind(value)}"
    if problem is None and expect == "patch" and not (
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

