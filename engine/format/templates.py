"""``{{ }}`` templates (pipeline-format.md §3): where blocks end, and programs that are lookups.

A block ends at the first ``}}`` outside jq string literals and balanced braces, so object
constructions like ``{{ {a: {b: 1}} }}`` work. A program that is only a dotted path, hyphens
allowed (``.steps.get-user.row``), is a lookup and never compiled as jq.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

LOOKUP = re.compile(r"^\s*\.([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*)\s*$")  # group 1: the path
IDENTITY = re.compile(r"^\s*\.\s*$")

# Helpers every program may call, with their definitions where they do not depend on the run;
# ``uuid`` and ``now_iso`` read values of the run, so each caller defines those itself.
HELPERS = {
    "upper": "def upper: ascii_upcase; ",
    "lower": "def lower: ascii_downcase; ",
    "default": "def default(x): if . == null then x else . end; ",
}
VOLATILE_HELPERS = ("uuid", "now_iso")

_JQ_LOCATION = re.compile(r"\s*at <top-level>, line (\d+), column (\d+):?")


class UnclosedBlock(ValueError):
    """A ``{{`` without its ``}}``; ``start`` is the 0-based index of the ``{{``."""

    def __init__(self, text: str, start: int) -> None:
        super().__init__(f"'{{{{' at character {start + 1} is never closed with '}}}}'")
        self.text = text
        self.start = start


def is_template(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


def has_template(value: Any) -> bool:
    """True when ``value`` (recursively) holds a ``{{`` block."""
    if isinstance(value, str):
        return "{{" in value
    if isinstance(value, Mapping):
        return any(has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(has_template(v) for v in value)
    return False


def split(text: str) -> list[tuple[bool, str, int]]:
    """``(is_program, piece, offset)`` parts of ``text``; raises ``UnclosedBlock``."""
    parts: list[tuple[bool, str, int]] = []
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            if pos < len(text):
                parts.append((False, text[pos:], pos))
            return parts
        if start > pos:
            parts.append((False, text[pos:start], pos))
        end = block_end(text, start + 2)
        if end < 0:
            raise UnclosedBlock(text, start)
        parts.append((True, text[start + 2 : end], start + 2))
        pos = end + 2


def block_end(text: str, i: int) -> int:
    """The index of the ``}}`` closing a block whose program starts at ``i``, or -1."""
    depth = 0
    in_string = False
    n = len(text)
    while i < n:
        ch = text[i]
        if in_string:
            if ch == "\\":
                i += 2
                continue
            if ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0 and text.startswith("}}", i):
                return i
            depth = max(depth - 1, 0)
        i += 1
    return -1


def is_lookup(program: str) -> bool:
    """True for ``.`` and plain dotted paths, which are read without jq."""
    return LOOKUP.match(program) is not None or IDENTITY.match(program) is not None


def jq_message(error_text: str, prefix_len: int = 0) -> str:
    """libjq's compile error as one line; a column on line 1 counts from the user's program,
    not from the ``prefix_len`` characters of prelude compiled before it."""
    text = error_text.strip()
    first = text.splitlines()[0] if text else "invalid program"
    first = first.removeprefix("jq: error: ")
    match = _JQ_LOCATION.search(first)
    if match and match.group(1) == "1":
        column = max(int(match.group(2)) - prefix_len, 1)
        first = first[: match.start()] + f" at column {column}"
    return first
