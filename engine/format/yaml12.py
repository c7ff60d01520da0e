"""Plain scalars under the YAML 1.2 core schema, as the engine reads pipeline files.

Only ``true``/``false`` (any case spelling the spec lists) are booleans, so ``yes``, ``no``,
``on`` and ``off`` stay strings; ``010`` is ten, ``0o17`` and ``0x1F`` are integers, ``1:20``
and dates are strings. Quoted and block scalars are always strings.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml
from yaml.constructor import ConstructorError

TAG = "tag:yaml.org,2002:"

NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
FLOAT = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                   r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")

# (tag, pattern, first characters) in PyYAML's resolver order: the first match wins.
IMPLICIT: tuple[tuple[str, re.Pattern[str], tuple[str, ...]], ...] = (
    ("null", NULL, ("~", "n", "N", "")),
    ("bool", BOOL, tuple("tTfF")),
    ("int", INT, tuple("-+0123456789")),
    ("float", FLOAT, tuple("-+.0123456789")),
)
_BY_FIRST: dict[str, tuple[tuple[re.Pattern[str], str], ...]] = {}
for _tag, _pattern, _firsts in IMPLICIT:
    for _first in _firsts:
        _BY_FIRST[_first] = (*_BY_FIRST.get(_first, ()), (_pattern, _tag))


def resolve(text: str) -> str:
    """The core-schema type of an untagged plain scalar: null, bool, int, float or str."""
    for pattern, tag in _BY_FIRST.get(text[:1], ()):
        if pattern.match(text):
            return tag
    return "str"


def parse_int(text: str) -> int | None:
    """The value of an ``int`` scalar (decimal, ``0o``, ``0x``), or None."""
    cleaned = text.replace("_", "")
    try:
        if cleaned[:2] in ("0o", "0x", "0b"):
            return int(cleaned, 0)
        return int(cleaned, 10)
    except ValueError:
        return None


def parse_float(text: str) -> float | None:
    """The value of a ``float`` scalar (``.inf``, ``-.inf``, ``.nan`` included), or None."""
    lowered = text.lower()
    if lowered in (".inf", "+.inf"):
        return math.inf
    if lowered == "-.inf":
        return -math.inf
    if lowered == ".nan":
        return math.nan
    try:
        return float(text.replace("_", ""))
    except ValueError:
        return None


def plain_value(text: str) -> Any:
    """What an untagged plain scalar means: None, a bool, an int, a float or the text."""
    kind = resolve(text)
    if kind == "null":
        return None
    if kind == "bool":
        return text.lower() == "true"
    if kind == "int":
        number = parse_int(text)
        return text if number is None else number
    if kind == "float":
        real = parse_float(text)
        return text if real is None else real
    return text


class Loader(yaml.CSafeLoader):
    """PyYAML's C loader with the core-schema scalars above (plain data, no node graph kept)."""

    yaml_implicit_resolvers: dict[Any, Any] = {}


for _tag, _pattern, _firsts in IMPLICIT:
    Loader.add_implicit_resolver(TAG + _tag, _pattern, list(_firsts))


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    number = parse_int(text)
    if number is None:
        raise ConstructorError(None, None, f"{text!r} is not a valid int", node.start_mark)
    return number


Loader.add_constructor(TAG + "int", _construct_int)


def load(text: str) -> Any:
    """Plain data from YAML ``text`` under the rules above; raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=Loader)  # Loader is a safe loader
