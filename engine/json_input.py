"""The one rule for JSON the engine is given from outside: the CLI's options, the service's
backfill JSON Lines, the server's API bodies and its http trigger bodies.

``loads`` accepts strict JSON only:

- no ``NaN``/``Infinity``, no number that overflows a float;
- integers of at most ``MAX_INT_DIGITS`` digits (Python's own limit for ``int(str)``),
  kept exact (never turned into a float);
- nesting of at most ``MAX_DEPTH`` levels (as for pipeline YAML): deeper values break the
  recursion of everything that reads them later (redaction, jq, the recorder);
- valid UTF-8, and no ``\\ud800`` escape without its pair (a lone surrogate cannot be
  stored or sent on as UTF-8).

A refusal is one ``JsonInputError`` naming the position (``line L column C``) where there is
one, and the rule. Callers add their own wording (the option, the line of a JSON Lines text).

Speed: orjson parses first. It already refuses what the rule refuses except two things,
checked after it with bytes operations: integers beyond 64 bits (orjson makes them floats;
any run of 19 digits sends the text to the exact parser) and nesting between ``MAX_DEPTH``
and orjson's own 1,024 (``_shallow``, only when the text has more than ``MAX_DEPTH``
brackets at all; a walk of the parsed containers where strings hold brackets). Whatever
orjson refuses is parsed again by the standard library's decoder under the same rule, so
the message is the same on both paths.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

MAX_DEPTH = 200
MAX_INT_DIGITS = 4300

# 19 digits in a row: maybe an integer orjson made a float (found by mapping every digit to
# "0" and searching, several times faster than a regular expression over the bytes)
_DIGITS_AS_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_DIGITS = b"0" * 19
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_STRUCTURE = bytes(byte for byte in range(256) if byte not in b'"[]{}')
# A \uD800-\uDFFF escape that is not itself escaped (preceded by an even number of backslashes).
_SURROGATE_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u([dD][89a-fA-F][0-9a-fA-F]{2})")


class JsonInputError(ValueError):
    """JSON that breaks the rule: ``str()`` is one line naming the position when there is one
    and what is wrong; ``rule`` names the rule for programs (``syntax``, ``utf-8``, ``number``,
    ``depth``, ``surrogate``)."""

    def __init__(self, message: str, rule: str, position: str | None = None):
        super().__init__(message)
        self.message = message
        self.rule = rule
        self.position = position  # "line L column C"


class _BadToken(ValueError):
    """A number or constant json accepts but the rule does not; ``token`` locates it."""

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


def _too_deep_at(text: str) -> int | None:
    """Where the text first opens a container deeper than ``MAX_DEPTH`` (strings skipped)."""
    depth = 0
    in_string = escaped = False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return index
        elif char in "]}":
            depth -= 1
    return None


def _lone_surrogate_at(text: str) -> int | None:
    """Where the text has a surrogate (escaped or raw) without its pair."""
    for index, char in enumerate(text):
        if "\ud800" <= char <= "\udfff":
            return index
    matches = list(_SURROGATE_ESCAPE.finditer(text))
    for number, match in enumerate(matches):
        unit = int(match.group(1), 16)
        start = match.start(1) - 2
        if unit <= 0xDBFF:  # a high half: its low half must follow at once
            following = matches[number + 1] if number + 1 < len(matches) else None
            if (following is not None and following.start(1) - 2 == match.end(1)
                    and int(following.group(1), 16) >= 0xDC00):
                continue
            return start
        previous = matches[number - 1] if number else None
        if not (previous is not None and previous.end(1) == start
                and int(previous.group(1), 16) <= 0xDBFF):
            return start
    return None


def tree_problem(value: Any) -> str | None:
    """What in a decoded value breaks the depth or surrogate rule (walked without recursion,
    it may be deep); None when nothing does. For values that did not come from text."""
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


def _deeper_than_max(value: Any) -> bool:
    """Whether containers nest more than ``MAX_DEPTH`` levels (only containers are pushed)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        for child in item.values() if type(item) is dict else item:
            if type(child) is dict or type(child) is list:
                stack.append((child, depth + 1))
    return False


def _shallow(raw: bytes) -> bool:
    """True when JSON that orjson accepted surely nests at most ``MAX_DEPTH`` levels, found
    with bytes operations only (about a third of what orjson takes; walking the parsed value
    costs as much as parsing it). False means "walk the value to know".

    Escaped backslashes and quotes are dropped, then every byte but quotes and brackets;
    strings without brackets are then ``""`` and go too. If no quote is left, what remains
    is the brackets of the structure alone, and removing the innermost pairs ``MAX_DEPTH``
    times must empty it.
    """
    if b"\\" in raw:  # only strings hold backslashes: escapes pair up left to right
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = raw.translate(_BRACKETS, _NOT_STRUCTURE).replace(b'""', b"")
    if b'"' in brackets:
        return False  # a string holds brackets: they would blur the count
    for _ in range(MAX_DEPTH):
        if not brackets:
            return True
        brackets = brackets.replace(b"[]", b"")
    return not brackets


def _strict(text: str, line: int | None) -> Any:
    """The exact (slower) parser: the standard library's decoder under the rule."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        at = _position(text, exc.start, line)
        raise JsonInputError(f"not valid UTF-8 at {at}: pass UTF-8 text", "utf-8", at) from None
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        at = _position(text, exc.pos, line)
        raise JsonInputError(f"invalid JSON at {at}: {exc.msg}", "syntax", at) from None
    except _BadToken as exc:
        at = _position(text, max(text.find(exc.token), 0), line)
        raise JsonInputError(f"invalid JSON at {at}: {exc}", "number", at) from None
    except RecursionError:
        problem: str | None = f"values are nested more than {MAX_DEPTH} levels deep"
    else:
        problem = tree_problem(value)
    if problem is None:
        return value
    deep = "nested" in problem
    index = _too_deep_at(text) if deep else _lone_surrogate_at(text)
    position = None if index is None else _position(text, index, line)
    where = (f" at {position}" if position is not None
             else f" on line {line}" if line is not None else "")
    head, _, tail = problem.partition(";")
    raise JsonInputError(f"{head}{where}{';' if tail else ''}{tail}",
                         "depth" if deep else "surrogate", position)


def loads(data: str | bytes, *, line: int | None = None) -> Any:
    """``data`` as JSON under the rule; ``JsonInputError`` otherwise.

    ``line``: ``data`` is that line of a larger text (JSON Lines); positions name it.
    """
    raw: bytes | None
    if isinstance(data, bytes):
        raw = data
    else:
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError:
            raw = None  # a lone surrogate in the text itself: the exact parser says where
    if raw is not None:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # the exact parser words the refusal
        else:
            if _LONG_DIGITS not in raw.translate(_DIGITS_AS_ZERO) and (
                    not isinstance(value, dict | list)
                    or raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH
                    or _shallow(raw) or not _deeper_than_max(value)):
                return value
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            shown = data[:exc.start].decode("utf-8", "replace")
            at = _position(shown, len(shown), line)
            raise JsonInputError(f"not valid UTF-8 at {at}: pass UTF-8 text", "utf-8", at) from None
    else:
        text = data
    return _strict(text, line)
