"""YAML text -> plain Python values plus a map of where every value came from.

We compose with PyYAML's C parser (fast, and its nodes carry marks) and build the values
ourselves so each JSON path keeps its ``line:col``.

Scalars follow the YAML 1.2 core schema, as the Go engine's YAML library does: only
``true``/``false`` are booleans (``yes``, ``no``, ``on``, ``off`` stay strings), ``010`` is
ten, ``1:20`` is a string and dates stay strings. Mapping keys are always strings (the key's
source text), as in JSON. Merge keys (``<<: *anchor``) are supported; duplicate keys,
recursive aliases and tags other than the standard ones are errors.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from engine.config.model import Pos
from engine.errors import Diagnostic

PathKey = str | int
Path = tuple[PathKey, ...]

_T = "tag:yaml.org,2002:"
_MAX_DEPTH = 200  # deeper nesting is never a real pipeline; it protects the recursion below
_MAX_NODES = 300_000  # bounds alias expansion ("billion laughs"); real files are far smaller


class _Loader(yaml.CSafeLoader):
    """The C loader with YAML 1.2 core-schema scalar resolution (see module docstring)."""

    yaml_implicit_resolvers: dict[Any, Any] = {}  # our own table, filled below


_Loader.add_implicit_resolver(_T + "null", re.compile(r"^(?:~|null|Null|NULL|)$"),
                              ["~", "n", "N", ""])
_Loader.add_implicit_resolver(_T + "bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))
_Loader.add_implicit_resolver(_T + "int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
                              list("-+0123456789"))
_Loader.add_implicit_resolver(
    _T + "float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+.0123456789"))
_Loader.add_implicit_resolver(_T + "merge", re.compile(r"^<<$"), ["<"])


@dataclass
class PosMap:
    """Where each value of one file sits. Paths are JSON-path tuples; positions are 1-based."""

    file: str
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)  # mapping keys, by value path
    raw: dict[Path, str] = field(default_factory=dict)  # source text of number scalars

    def at(self, path: Path) -> Pos:
        """The value's position, else its nearest ancestor's (a missing key -> its mapping)."""
        for end in range(len(path), -1, -1):
            found = self.values.get(path[:end])
            if found is not None:
                return Pos(self.file, *found)
        return Pos(self.file, 1, 1)

    def key(self, path: Path) -> Pos:
        """The position of the mapping key that leads to ``path`` (for 'unknown key' errors)."""
        found = self.keys.get(path)
        return Pos(self.file, *found) if found is not None else self.at(path)


@dataclass
class Parsed:
    value: Any
    positions: PosMap
    diagnostics: list[Diagnostic]


def diagnostic(pos: Pos, message: str, severity: str = "error") -> Diagnostic:
    return Diagnostic(pos.file, pos.line, pos.col, message, severity)


def parse_yaml(text: str, file: str) -> Parsed:
    """Parse one YAML document. Syntax errors come back as diagnostics, never as exceptions."""
    positions = PosMap(file)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        return Parsed(None, positions, [Diagnostic(file, line, col, _syntax_message(exc))])
    except yaml.reader.ReaderError as exc:
        line, col = _byte_offset_position(text, exc.position)
        char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        return Parsed(None, positions, [Diagnostic(
            file, line, col, f"YAML syntax error: unacceptable character {char}: {exc.reason}")])
    except yaml.YAMLError as exc:
        return Parsed(None, positions, [Diagnostic(file, 1, 1, f"YAML syntax error: {exc}")])
    except UnicodeError as exc:  # lone surrogates cannot be handed to the C parser
        line, col = _char_offset_position(text, getattr(exc, "start", 0))
        return Parsed(None, positions, [Diagnostic(
            file, line, col, "the file contains an invalid character (a lone surrogate); "
                             "save it as UTF-8")])
    if node is None:
        return Parsed(None, positions, [])
    builder = _Builder(positions)
    value = builder.convert(node, ())
    if builder.overflow:  # what was built is truncated; nothing after this can be trusted
        value = None
    return Parsed(value, positions, builder.diagnostics)


def _syntax_message(exc: yaml.MarkedYAMLError) -> str:
    problem = exc.problem or "invalid YAML"
    message = f"YAML syntax error: {problem}"
    if exc.context:
        where = ""
        if exc.context_mark is not None and exc.context_mark is not exc.problem_mark:
            where = f" (line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1})"
        message += f" {exc.context}{where}"
    return message


def _char_offset_position(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    line = before.count("\n") + 1
    return line, offset - (before.rfind("\n") + 1) + 1


def _byte_offset_position(text: str, offset: int) -> tuple[int, int]:
    prefix = text.encode("utf-8", "surrogatepass")[:offset].decode("utf-8", "ignore")
    return _char_offset_position(text, len(prefix))


class _Builder:
    """Turns a node tree into plain values, recording positions and collecting errors."""

    def __init__(self, positions: PosMap) -> None:
        self.positions = positions
        self.diagnostics: list[Diagnostic] = []
        self.active: set[int] = set()  # nodes being converted, to catch recursive aliases
        self.count = 0
        self.overflow = False

    def error(self, node: Node, message: str) -> None:
        mark = node.start_mark
        self.diagnostics.append(Diagnostic(self.positions.file, mark.line + 1, mark.column + 1,
                                           message))

    def convert(self, node: Node, path: Path) -> Any:
        self.count += 1
        if self.count > _MAX_NODES:
            if not self.overflow:
                self.overflow = True
                self.error(node, "the document is too large (aliases expand to more than "
                                 f"{_MAX_NODES} values)")
            return None
        if len(path) > _MAX_DEPTH:
            self.error(node, f"values are nested more than {_MAX_DEPTH} levels deep")
            return None
        mark = node.start_mark
        self.positions.values[path] = (mark.line + 1, mark.column + 1)
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        if id(node) in self.active:
            self.error(node, "recursive alias: a value cannot contain itself")
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                if node.tag != _T + "seq":
                    self.error(node, f"unsupported YAML tag {node.tag!r} (use plain lists)")
                return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
            if isinstance(node, MappingNode):
                if node.tag != _T + "map":
                    self.error(node, f"unsupported YAML tag {node.tag!r} (use plain mappings)")
                return self.mapping(node, path)
        finally:
            self.active.discard(id(node))
        self.error(node, "unsupported YAML node")
        return None

    def scalar(self, node: ScalarNode, path: Path) -> Any:
        tag, text = node.tag, node.value
        if tag == _T + "str":
            return text
        if tag == _T + "null":
            return None
        if tag == _T + "bool":
            if text.lower() in ("true", "false"):
                return text.lower() == "true"
        elif tag == _T + "int":
            number = _parse_int(text)
            if number is not None:
                self.positions.raw[path] = text
                return number
        elif tag == _T + "float":
            real = _parse_float(text)
            if real is not None:
                self.positions.raw[path] = text
                return real
        elif tag == _T + "timestamp":
            return text  # JSON has no dates; steps parse them when they need to
        else:
            self.error(node, f"unsupported YAML tag {tag!r}")
            return None
        self.error(node, f"{text!r} is not a valid {tag.removeprefix(_T)}")
        return None

    def mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        seen: dict[str, Node] = {}
        for key, key_node, value_node in self.pairs(node, seen):
            child = (*path, key)
            mark = key_node.start_mark
            self.positions.keys[child] = (mark.line + 1, mark.column + 1)
            out[key] = self.convert(value_node, child)
        return out

    def pairs(self, node: MappingNode, seen: dict[str, Node],
              report: bool = True) -> Iterator[tuple[str, Node, Node]]:
        """Explicit pairs first, then merged-in pairs whose key is not set yet.

        ``report`` is off for merge sources: their own problems are reported where they are defined.
        """
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == _T + "merge":
                merges.append(value_node)
                continue
            if not isinstance(key_node, ScalarNode):
                if report:
                    self.error(key_node, "mapping keys must be plain strings, "
                                         "not lists or mappings")
                continue
            key = key_node.value
            if key in seen:
                first = seen[key].start_mark
                if report:
                    self.error(key_node, f"duplicate key {key!r} (first defined at line "
                                     f"{first.line + 1}, column {first.column + 1})")
                continue
            seen[key] = key_node
            yield key, key_node, value_node
        for merge in merges:
            sources = merge.value if isinstance(merge, SequenceNode) else [merge]
            for source in sources:
                if not isinstance(source, MappingNode):
                    if report:
                        self.error(source, "a merge key '<<' needs a mapping or a list of "
                                           "mappings")
                    continue
                if id(source) in self.active:
                    self.error(source, "recursive alias: a value cannot contain itself")
                    continue
                self.active.add(id(source))
                try:
                    inherited: dict[str, Node] = {}
                    for key, key_node, value_node in self.pairs(source, inherited, False):
                        if key not in seen:
                            seen[key] = key_node
                            yield key, key_node, value_node
                finally:
                    self.active.discard(id(source))


def _parse_int(text: str) -> int | None:
    cleaned = text.replace("_", "")
    try:
        if cleaned[:2] in ("0o", "0x", "0b"):
            return int(cleaned, 0)
        return int(cleaned, 10)
    except ValueError:
        return None


def _parse_float(text: str) -> float | None:
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
