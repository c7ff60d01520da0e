"""The values a step type's reference paths name (``StepType.step_refs`` and friends).

A path is dotted keys below the step's ``config``; ``*`` matches every key of a mapping (or
item of a list). A list of strings at the end names one target per item; a missing or null
value names nothing. The engine checks these targets, the studio draws and renames them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

PathKey = str | int


def find_paths(config: Any, pattern: str) -> Iterator[tuple[tuple[PathKey, ...], Any]]:
    """``(path below config, value)`` for every value at the dotted ``pattern``."""
    yield from _walk(config, pattern.split(".") if pattern else [], ())


def _walk(value: Any, parts: list[str], at: tuple[PathKey, ...]
          ) -> Iterator[tuple[tuple[PathKey, ...], Any]]:
    if not parts:
        if isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, str):
                    yield (*at, i), item
        elif value is not None:
            yield at, value
        return
    head, rest = parts[0], parts[1:]
    if head == "*":
        if isinstance(value, dict):
            for key, item in value.items():
                yield from _walk(item, rest, (*at, key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                yield from _walk(item, rest, (*at, i))
    elif isinstance(value, dict) and head in value:
        yield from _walk(value[head], rest, (*at, head))


def label(pattern: str, path: Iterable[PathKey]) -> str:
    """A short name for the reference at ``path`` (from ``find_paths(_, pattern)``): the key
    the last ``*`` matched (``routes.*`` -> the route), else the pattern's first key."""
    name = ""
    for part, key in zip(pattern.split("."), path, strict=False):
        if part == "*":
            name = str(key)
        elif not name:
            name = part
    return name

