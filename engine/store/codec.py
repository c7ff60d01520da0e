"""JSON as the store writes and reads it: fast (orjson), and never failing on odd values."""

from __future__ import annotations

import datetime
import json
import math
import re
from typing import Any

import orjson

# The stdlib encoder, built once, for what orjson refuses (integers beyond 64 bits).
_encode = json.JSONEncoder(default=str, separators=(",", ":"), ensure_ascii=False,
                           allow_nan=False).encode
_ORJSON = orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> str:
    """JSON text for the store; never raises: odd values degrade to strings or null.

    orjson (several times faster than the stdlib here, and encoding is most of what
    recording costs) writes NaN/Infinity as null, datetimes as ISO 8601, non-string keys
    as strings, and anything else it does not know through ``str``.
    """
    try:
        text = orjson.dumps(value, default=str, option=_ORJSON).decode()
    except TypeError:  # big integers, cycles, nesting deeper than 254
        try:
            text = _encode(value)
        except (TypeError, ValueError, RecursionError):
            text = _encode(_sanitize(value, set()))
    if "\\u0000" in text:  # PostgreSQL's jsonb rejects NUL characters
        text = _encode(_sanitize(value, set()))
    return text


_BIG_INT = re.compile(r"[0-9]{20}")


def loads(text: str) -> Any:
    """Parse stored JSON. orjson reads integers beyond 64 bits as floats: those go to json."""
    if _BIG_INT.search(text) is not None:
        return json.loads(text)
    return orjson.loads(text)


def dumps_or_none(value: Any) -> str | None:
    return None if value is None else dumps(value)


def _sanitize(value: Any, seen: set[int]) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, dict | list | tuple):
        if id(value) in seen:
            return "[cycle]"
        seen.add(id(value))
        try:
            if isinstance(value, dict):
                return {_sanitize(str(k), seen): _sanitize(v, seen) for k, v in value.items()}
            return [_sanitize(v, seen) for v in value]
        finally:
            seen.discard(id(value))
    return _sanitize(str(value), seen)


