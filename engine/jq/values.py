"""jq's value semantics on Python values: ordering, equality, arithmetic, text forms.

Values are what ``json.loads`` makes (None, bool, int, float, str, list, dict). jq computes
with doubles and keeps a number literal's text for printing; Python ints are exact. The two
agree while integers stay within ±2**53 and floats are finite, and a float printed by jq
reads like ``repr`` unless it needs an exponent. Outside that (and for any other Python
type) these functions raise ``Unsupported`` and the caller lets libjq decide.

Invariant kept by the arithmetic here: an integral float never results from a computation
(it becomes an int), so an integral float seen by ``number_text`` came from the context or
a literal, whose text jq keeps (``1.0``).
"""

from __future__ import annotations

import json
import math
from typing import Any

from engine.jq.lexer import Unsupported

LIMIT = 2**53
DBL_MAX = 1.7976931348623157e308
_RANK = {type(None): 0, int: 3, float: 3, str: 4, list: 5, dict: 6}
_NAMES = {type(None): "null", bool: "boolean", int: "number", float: "number", str: "string",
          list: "array", dict: "object"}


class JqError(Exception):
    """An error jq itself raises at run time (``error``, type mismatches, division by zero)."""


def type_name(value: Any) -> str:
    name = _NAMES.get(type(value))
    if name is None:
        raise Unsupported(f"value of Python type {type(value).__name__}")
    return name


def truthy(value: Any) -> bool:
    return value is not None and value is not False


def checked(number: Any) -> Any:
    """``number`` (int or float) when jq's double would behave exactly like it."""
    if type(number) is int:
        if -LIMIT <= number <= LIMIT:
            return number
    elif number == number and number not in (math.inf, -math.inf):
        return number
    raise Unsupported("number outside the exact range")


def computed(number: Any) -> Any:
    """The result of arithmetic: an integral float becomes an int (see the module doc)."""
    if type(number) is float:
        if number != number or number in (math.inf, -math.inf):
            raise Unsupported("non-finite result")
        if number.is_integer():
            if number == 0 and math.copysign(1.0, number) < 0:
                raise Unsupported("negative zero")  # jq prints "-0"
            number = int(number)
    if -LIMIT <= number <= LIMIT:
        return number
    raise Unsupported("number outside the exact range")


def _show(value: Any) -> str:
    """jq's short rendering of a value inside error messages."""
    try:
        text = dump(value)
    except Unsupported:
        text = "..."
    return text if len(text) <= 11 else text[:10] + "..."


def describe(value: Any) -> str:
    return f"{type_name(value)} ({_show(value)})"


# ------------------------------------------------------------------ ordering


def _rank(value: Any) -> int:
    kind = type(value)
    if kind is bool:
        return 2 if value else 1
    rank = _RANK.get(kind)
    if rank is None:
        raise Unsupported(f"value of Python type {kind.__name__}")
    return rank


def compare(a: Any, b: Any) -> int:
    """jq's total order: null < false < true < numbers < strings < arrays < objects."""
    ra, rb = _rank(a), _rank(b)
    if ra != rb:
        return -1 if ra < rb else 1
    if ra == 3:
        a, b = checked(a), checked(b)
    elif ra == 5:
        for x, y in zip(a, b, strict=False):
            order = compare(x, y)
            if order:
                return order
        a, b = len(a), len(b)
    elif ra == 6:
        ka, kb = sorted_keys(a), sorted_keys(b)
        if ka != kb:
            return -1 if ka < kb else 1
        for key in ka:
            order = compare(a[key], b[key])
            if order:
                return order
        return 0
    elif ra != 4:
        return 0
    return -1 if a < b else (1 if a > b else 0)


def order(a: Any, b: Any) -> int:
    """``compare`` with the common cases (two strings, two exact ints) first."""
    kind = type(a)
    if kind is type(b) and (kind is str or (kind is int and -LIMIT <= a <= LIMIT and -LIMIT <= b <= LIMIT)):
        return -1 if a < b else (1 if a > b else 0)
    return compare(a, b)


def equal(a: Any, b: Any) -> bool:
    kind = type(a)
    if kind is type(b) and (kind is str or a is None):
        return bool(a == b)
    return compare(a, b) == 0


def sorted_keys(obj: dict[Any, Any]) -> list[str]:
    keys = list(obj)
    for key in keys:
        if type(key) is not str:
            raise Unsupported("non-string object key")
    keys.sort()  # code point order is UTF-8 byte order, jq's order
    return keys


# ------------------------------------------------------------------ arithmetic


def _is_number(value: Any) -> bool:
    kind = type(value)
    return kind is int or kind is float


def add(a: Any, b: Any) -> Any:
    if type(a) is int and type(b) is int and -LIMIT <= a <= LIMIT and -LIMIT <= b <= LIMIT:
        total = a + b  # the common case, without the general checks' calls
        if -LIMIT <= total <= LIMIT:
            return total
    if _is_number(a) and _is_number(b):
        return computed(checked(a) + checked(b))
    if a is None:
        type_name(b)
        return b
    if b is None:
        type_name(a)
        return a
    kind = type(a)
    if kind is type(b):
        if kind is str or kind is list:
            return a + b
        if kind is dict:
            return {**a, **b}
    raise JqError(f"{describe(a)} and {describe(b)} cannot be added")


def subtract(a: Any, b: Any) -> Any:
    if _is_number(a) and _is_number(b):
        return computed(checked(a) - checked(b))
    if type(a) is list and type(b) is list:
        return [x for x in a if not any(equal(x, y) for y in b)]
    raise JqError(f"{describe(a)} and {describe(b)} cannot be subtracted")


def multiply(a: Any, b: Any) -> Any:
    if type(a) is int and type(b) is int and -LIMIT <= a <= LIMIT and -LIMIT <= b <= LIMIT:
        product = a * b
        if -LIMIT <= product <= LIMIT and (product or (a >= 0 and b >= 0)):
            return product
    if _is_number(a) and _is_number(b):
        result = checked(a) * checked(b)
        if result == 0 and math.copysign(1.0, float(a) * float(b)) < 0:
            raise Unsupported("negative zero")
        return computed(result)
    if (type(a) is str and _is_number(b)) or (_is_number(a) and type(b) is str):
        text, times = (a, checked(b)) if type(a) is str else (b, checked(a))
        if times < 0:
            return None
        count = int(times)
        if count * len(text) > 1_000_000:
            raise Unsupported("large string repetition")
        return text * count
    if type(a) is dict and type(b) is dict:
        return _deep_merge(a, b)
    raise JqError(f"{describe(a)} and {describe(b)} cannot be multiplied")


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    merged = dict(a)
    for key, value in b.items():
        old = merged.get(key)
        if type(old) is dict and type(value) is dict:
            merged[key] = _deep_merge(old, value)
        else:
            merged[key] = value
    return merged


def divide(a: Any, b: Any) -> Any:
    if _is_number(a) and _is_number(b):
        if checked(b) == 0:
            raise JqError(f"{describe(a)} and {describe(b)} cannot be divided because the "
                          "divisor is zero")
        result = checked(a) / b
        if result == 0 and math.copysign(1.0, float(a) / float(b)) < 0:
            raise Unsupported("negative zero")
        return computed(result)
    if type(a) is str and type(b) is str:
        if not a:
            return []
        return list(a) if not b else a.split(b)
    raise JqError(f"{describe(a)} and {describe(b)} cannot be divided")


def modulo(a: Any, b: Any) -> Any:
    if _is_number(a) and _is_number(b):
        left, right = int(checked(a)), int(checked(b))  # jq truncates both to integers
        if right == 0:
            raise JqError(f"{describe(a)} and {describe(b)} cannot be divided (remainder) "
                          "because the divisor is zero")
        result = abs(left) % abs(right)
        return -result if left < 0 else result
    raise JqError(f"{describe(a)} and {describe(b)} cannot be divided (remainder)")


def negate(a: Any) -> Any:
    if _is_number(a):
        if a == 0:
            raise Unsupported("negative zero")
        return -checked(a)  # a literal stays a literal: -(1.0) prints "-1.0" in jq
    raise JqError(f"{describe(a)} cannot be negated")


# ------------------------------------------------------------------ text


def number_text(number: Any) -> str:
    number = checked(number)
    if type(number) is int:
        return str(number)
    text = repr(number)
    if "e" in text:
        raise Unsupported("exponent notation")  # jq writes 1E-7 for a literal, 1e-07 computed
    return text


def _string_text(text: str) -> str:
    out = json.dumps(text, ensure_ascii=False)
    return out.replace("\x7f", "\\u007f") if "\x7f" in out else out


def dump(value: Any) -> str:
    """``tojson``: compact JSON as jq writes it."""
    kind = type(value)
    if kind is str:
        return _string_text(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int or kind is float:
        return number_text(value)
    if kind is list:
        return "[" + ",".join(dump(item) for item in value) + "]"
    if kind is dict:
        parts = []
        for key, item in value.items():
            if type(key) is not str:
                raise Unsupported("non-string object key")
            parts.append(_string_text(key) + ":" + dump(item))
        return "{" + ",".join(parts) + "}"
    raise Unsupported(f"value of Python type {kind.__name__}")


def tostring(value: Any) -> str:
    return value if type(value) is str else dump(value)


# ------------------------------------------------------------------ results


def result(value: Any) -> Any:
    """A value as libjq hands it back through the jq package: integral numbers as int,
    infinities as ±DBL_MAX, NaN as null. Unchanged sub-trees are returned as they are."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        if -LIMIT <= value <= LIMIT:
            return value
        try:
            return int(float(value))
        except OverflowError:
            return math.copysign(DBL_MAX, value)
    if kind is float:
        if value != value:
            return None
        if value in (math.inf, -math.inf):
            return math.copysign(DBL_MAX, value)
        return int(value) if value.is_integer() else value
    if kind is list:
        for i, item in enumerate(value):
            new = result(item)
            if new is not item:
                return [*value[:i], new, *(result(rest) for rest in value[i + 1:])]
        return value
    if kind is dict:
        changed = None
        for key, item in value.items():
            if type(key) is not str:
                raise Unsupported("non-string object key")
            new = result(item)
            if new is not item:
                if changed is None:
                    changed = dict(value)
                changed[key] = new
        return value if changed is None else changed
    raise Unsupported(f"value of Python type {kind.__name__}")
