"""JSON as the store writes and reads it: fast (orjson), total, and the same on every store.

``dumps`` never raises and never produces text SQLite or PostgreSQL would refuse: what a
store cannot hold is escaped, the same way on both (docs/decisions.md, "What the store
cannot hold"). A run's values are recorded as they were except for:

- NUL (U+0000) in strings and keys: U+FFFD (PostgreSQL text and jsonb cannot hold it);
- lone UTF-16 surrogates: U+FFFD, a surrogate pair: the character it encodes (neither
  UTF-8 nor jsonb can hold them);
- NaN and ±Infinity: null (not JSON; jsonb refuses them);
- integers beyond what Python itself prints (4,300 digits): a string saying so (smaller
  ones, however far beyond 64 bits, are kept exactly);
- nesting deeper than ``MAX_DEPTH``: a string saying so (every reader's limit is higher);
- cycles: ``"[cycle]"``; keys that are not strings and other objects: their ``str``.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from typing import Any

import orjson

# The stdlib encoder, built once, for what orjson refuses; it only ever sees _sanitize's output.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_ORJSON = orjson.OPT_NON_STR_KEYS
# Deeper than orjson writes (254): such values take the slow path and are cut here, well
# below what orjson.loads (1,024), json.loads (~990) and the recursion limit allow.
MAX_DEPTH = 256
_SURROGATE = re.compile("[\ud800-\udfff]")


def dumps(value: Any) -> str:
    """JSON text for the store; never raises (see the module docstring for what is escaped).

    orjson (several times faster than the stdlib here, and encoding is most of what
    recording costs) writes NaN/Infinity as null, datetimes as ISO 8601, non-string keys
    as strings, and anything else it does not know through ``str``. It refuses lone
    surrogates, integers beyond 64 bits, cycles and deep nesting: those are sanitized.
    """
    try:
        text = orjson.dumps(value, default=str, option=_ORJSON).decode()
    except TypeError:  # orjson.JSONEncodeError, and whatever a __str__ raised
        return _encode(_sanitize(value, set(), 0))
    if "\\u0000" in text:  # a NUL (or the text "\u0000", which costs only the slow path)
        return _encode(_sanitize(value, set(), 0))
    return text


def dumps_escaped(value: Any) -> tuple[str, Any]:
    """``dumps(value)``, and the escaped copy it wrote, or None when ``value`` went in as it
    is: whoever shows ``value`` beside the store (a live event stream) shows the same."""
    try:
        text = orjson.dumps(value, default=str, option=_ORJSON).decode()
    except TypeError:
        clean = _sanitize(value, set(), 0)
        return _encode(clean), clean
    if "\\u0000" in text:
        clean = _sanitize(value, set(), 0)
        return _encode(clean), clean
    return text, None


_BIG_INT = re.compile(r"[0-9]{20}")


def loads(text: str) -> Any:
    """Parse stored JSON. orjson reads integers beyond 64 bits as floats: those go to json."""
    if _BIG_INT.search(text) is not None:
        return json.loads(text)
    return orjson.loads(text)


def dumps_or_none(value: Any) -> str | None:
    return None if value is None else dumps(value)


def clean_text(value: str) -> str:
    """``value`` as both stores hold it: NUL and lone surrogates become U+FFFD."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if not value.isascii() and _SURROGATE.search(value) is not None:
        # Through UTF-16: a pair becomes its character, a lone surrogate U+FFFD.
        value = value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return value


def _sanitize(value: Any, seen: set[int], depth: int) -> Any:
    """A copy of ``value`` made of str, int, float, bool, None, dict and list only, which
    the stdlib encoder writes without failing and both stores hold. Explicit loops, not
    comprehensions: on Python 3.11 each comprehension is one more frame per level."""
    if isinstance(value, str):
        return clean_text(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        try:
            str(value)
        except ValueError:  # beyond sys.get_int_max_str_digits()
            return f"[an integer of about {int(value.bit_length() * 0.30103) + 1} digits]"
        return int(value)  # an int subclass (an enum) is written as its number
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, dict | list | tuple):
        if id(value) in seen:
            return "[cycle]"
        if depth >= MAX_DEPTH:
            return f"[nested deeper than {MAX_DEPTH} levels]"
        seen.add(id(value))
        try:
            if isinstance(value, dict):
                out: dict[str, Any] = {}
                for k, v in value.items():
                    out[_key(k)] = _sanitize(v, seen, depth + 1)
                return out
            items: list[Any] = []
            for v in value:
                items.append(_sanitize(v, seen, depth + 1))
            return items
        finally:
            seen.discard(id(value))
    return clean_text(_str(value))


def _key(key: Any) -> str:
    if isinstance(key, str):
        return clean_text(key)
    if key is None or isinstance(key, bool):  # as orjson writes them
        return "null" if key is None else ("true" if key else "false")
    return clean_text(_str(key))


def _str(value: Any) -> str:
    try:
        text = str(value)
        if isinstance(text, str):
            return text
    except Exception:  # a broken __str__ must not lose the run's record
        pass
    return f"[unprintable {type(value).__name__}]"
