"""YAML text -> plain Python values plus a map of where every value came from.

We read the event stream of PyYAML's C parser (fast, and each event carries its position)
and build the values in one pass, so each JSON path keeps its ``line:col``. Skipping
PyYAML's node graph and its resolver makes this several times faster than composing.

Scalars follow the YAML 1.2 core schema (``engine.format.yaml12``, shared with the studio):
only ``true``/``false`` are booleans (``yes``, ``no``, ``on``, ``off`` stay strings), ``010``
is ten, ``1:20`` is a string and dates stay strings. Mapping keys are always strings (the key's
source text), as in JSON. Merge keys (``<<: *anchor``) are supported; duplicate keys,
recursive aliases and tags other than the standard ones are errors.

Bounded work: an alias copies its anchor's value and a merge key copies pairs, so a few
hundred bytes of nested aliases could ask for billions of values ("billion laughs", and the
same with ``<<``). Every value, position and pair that aliases and merges produce is counted
against a budget proportional to the text (at least ``ALIAS_BUDGET``); past it the document
is refused with an error at the alias that crossed it. Nesting is limited to ``_MAX_DEPTH``.
"""

from __future__ import annotations

import gc
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)

from engine.config.model import Pos
from engine.errors import Diagnostic
from engine.format import yaml12

PathKey = str | int
Path = tuple[PathKey, ...]

_T = yaml12.TAG
_MAX_DEPTH = 200  # deeper nesting is never a real pipeline; it protects the recursion below
ALIAS_BUDGET = 100_000  # values/positions/pairs aliases may produce (or 1 per 4 bytes of text)

# The implicit resolvers by first character: the format's core schema, then merge keys.
_RESOLVERS: dict[str, tuple[tuple[re.Pattern[str], str], ...]] = {}
for _tag, _pattern, _firsts in (*yaml12.IMPLICIT, ("merge", re.compile(r"^<<$"), ("<",))):
    for _first in _firsts:
        _RESOLVERS[_first] = (*_RESOLVERS.get(_first, ()), (_pattern, _T + _tag))

_VALUE, _KEY, _RAW = 0, 1, 2  # kinds of position records


class _Loader(yaml.CSafeLoader):
    """The C parser; only its events are used (scalars are resolved here, see above)."""


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


_gc_lock = threading.Lock()
_gc_pause: dict[str, Any] = {"holders": 0, "was_enabled": True, "since": 0.0}
_GC_MAX_PAUSE = 5.0  # seconds: overlapping loads must not keep the collector off for good


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a file is parsed and built.

    Loading allocates hundreds of thousands of small containers and no cycles; every
    collection would walk them all again, which made big files superlinear. Nested and
    concurrent users (threads) share one pause: the last one out restores the collector,
    and one leaving a pause older than ``_GC_MAX_PAUSE`` collects once (a server validating
    without pause would otherwise never collect the rest of its garbage).
    """
    with _gc_lock:
        if _gc_pause["holders"] == 0:
            _gc_pause["was_enabled"] = gc.isenabled()
            _gc_pause["since"] = time.monotonic()
            gc.disable()
        _gc_pause["holders"] += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pause["holders"] -= 1
            if _gc_pause["holders"] == 0:
                if _gc_pause["was_enabled"]:
                    gc.enable()
            elif _gc_pause["was_enabled"] and time.monotonic() - _gc_pause["since"] > _GC_MAX_PAUSE:
                gc.collect()
                _gc_pause["since"] = time.monotonic()


def parse_yaml(text: str, file: str) -> Parsed:
    """Parse one YAML document. Syntax errors come back as diagnostics, never as exceptions."""
    positions = PosMap(file)
    builder = _Builder(positions, max(ALIAS_BUDGET, len(text) // 4))
    try:
        with paused_gc():
            value = builder.document(yaml.parse(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        return _failed(builder, line, col, _syntax_message(exc))
    except yaml.reader.ReaderError as exc:
        line, col = _byte_offset_position(text, exc.position)
        char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        return _failed(builder, line, col,
                       f"YAML syntax error: unacceptable character {char}: {exc.reason}")
    except yaml.YAMLError as exc:
        return _failed(builder, 1, 1, f"YAML syntax error: {exc}")
    except UnicodeError as exc:  # lone surrogates cannot be handed to the C parser
        line, col = _char_offset_position(text, getattr(exc, "start", 0))
        return _failed(builder, line, col, "the file contains an invalid character (a lone "
                                           "surrogate); save it as UTF-8")
    if builder.overflow:  # what was built is truncated; nothing after this can be trusted
        value = None
    return Parsed(value, positions, builder.diagnostics)


def _failed(builder: _Builder, line: int, col: int, message: str) -> Parsed:
    """A syntax error: nothing is built, but what was found before it is still reported."""
    file = builder.positions.file
    return Parsed(None, PosMap(file), [*builder.diagnostics, Diagnostic(file, line, col, message)])


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


def _where(event: Any) -> tuple[int, int]:
    mark = event.start_mark
    return mark.line + 1, mark.column + 1


class _Fragment:
    """An anchored (or merge-source) value with its positions relative to itself."""

    __slots__ = ("_pairs", "depth", "records", "text", "value")

    def __init__(self, value: Any, records: list[tuple[int, Path, Any]], text: str | None):
        self.value = value
        self.records = records  # (kind, path relative to the value, position or raw text)
        self.text = text  # a scalar's source text (it may be used as a mapping key)
        self.depth = max((len(rel) for _, rel, _ in records), default=0)
        self._pairs: dict[str, list[tuple[int, Path, Any]]] | None = None

    def item(self, index: int) -> _Fragment:
        """One item of a sequence fragment, as a fragment of its own."""
        return _Fragment(self.value[index], self.pairs().get(str(index), []), None)

    def pairs(self) -> dict[str, list[tuple[int, Path, Any]]]:
        """A mapping's records grouped by key, paths relative to that key's value."""
        if self._pairs is None:
            grouped: dict[str, list[tuple[int, Path, Any]]] = {}
            for kind, rel, data in self.records:
                if rel:
                    grouped.setdefault(str(rel[0]), []).append((kind, rel[1:], data))
            self._pairs = grouped
        return self._pairs


class _Builder:
    """Turns the event stream into plain values, recording positions and collecting errors."""

    def __init__(self, positions: PosMap, budget: int) -> None:
        self.positions = positions
        self.diagnostics: list[Diagnostic] = []
        self.anchors: dict[str, _Fragment] = {}
        self.open: dict[str, tuple[int, int]] = {}  # anchors being built: recursion check
        self.defined: dict[str, tuple[int, int]] = {}
        # (path length, records, mute level): anchors and merge sources being built
        self.recorders: list[tuple[int, list[tuple[int, Path, Any]], int]] = []
        self.mute = 0  # >0: values built only to be merged or dropped; no positions kept
        self.budget = budget
        self.spent = 0
        self.overflow = False
        self.next: Callable[[], Any]

    # ------------------------------------------------------------ reporting and recording

    def error(self, where: tuple[int, int], message: str) -> None:
        self.diagnostics.append(Diagnostic(self.positions.file, where[0], where[1], message))

    def record(self, kind: int, path: Path, data: Any) -> None:
        if not self.mute:
            target = (self.positions.values if kind == _VALUE else
                      self.positions.keys if kind == _KEY else self.positions.raw)
            target[path] = data
        if self.recorders:
            self.spent += len(self.recorders)
            for offset, records, level in self.recorders:
                if level == self.mute:  # a muted value belongs only to fragments inside it
                    records.append((kind, path[offset:], data))

    def spend(self, amount: int, where: tuple[int, int]) -> bool:
        """Count alias/merge work; False (and one error) once the budget is exhausted."""
        if self.overflow:
            return False
        self.spent += amount
        if self.spent <= self.budget:
            return True
        self.overflow = True
        self.error(where, f"the document is too large: aliases and merge keys ('<<') expand to "
                          f"more than {self.budget:,} values; write the values out or use fewer "
                          "nested aliases")
        return False

    # ------------------------------------------------------------ the document

    def document(self, events: Iterator[Any]) -> Any:
        self.next = events.__next__
        self.next()  # StreamStartEvent
        start: Any = self.next()
        if type(start) is not DocumentStartEvent:
            return None  # an empty stream
        first = start
        value = self.node(self.next(), ())
        self.next()  # DocumentEndEvent
        event: Any = self.next()
        if type(event) is DocumentStartEvent:
            marks: list[Any] = [first.start_mark, event.start_mark]
            raise yaml.composer.ComposerError("expected a single document in the stream", marks[0],
                                              "but found another document", marks[1])
        return value

    def node(self, event: Any, path: Path) -> Any:
        kind = type(event)
        if kind is AliasEvent:
            return self.alias(event, path)
        if len(path) > _MAX_DEPTH:
            self.error(_where(event), f"values are nested more than {_MAX_DEPTH} levels deep")
            self.skip(event)
            return None
        anchor = event.anchor
        if anchor is None:
            return self.build(event, kind, path)
        where = _where(event)
        if anchor in self.defined:
            line, col = self.defined[anchor]
            self.error(where, f"duplicate anchor &{anchor} (first defined at line {line}, "
                              f"column {col}): rename one of them")
        self.defined[anchor] = where
        records: list[tuple[int, Path, Any]] = []
        self.recorders.append((len(path), records, self.mute))
        self.open[anchor] = where
        try:
            value = self.build(event, kind, path)
        finally:
            self.recorders.pop()
            self.open.pop(anchor, None)
        text = event.value if kind is ScalarEvent else None
        self.anchors[anchor] = _Fragment(value, records, text)
        return value

    def build(self, event: Any, kind: type, path: Path) -> Any:
        if self.mute or self.recorders:
            self.record(_VALUE, path, _where(event))
        else:  # the common case, inlined: this runs for every value of the file
            mark = event.start_mark
            self.positions.values[path] = (mark.line + 1, mark.column + 1)
        if kind is ScalarEvent:
            return self.scalar(event, path)
        if kind is SequenceStartEvent:
            if event.tag not in (None, "!", _T + "seq"):
                self.error(_where(event), f"unsupported YAML tag {event.tag!r} (use plain lists)")
            items: list[Any] = []
            while True:
                item = self.next()
                if type(item) is SequenceEndEvent:
                    return items
                items.append(self.node(item, (*path, len(items))))
        if event.tag not in (None, "!", _T + "map"):
            self.error(_where(event), f"unsupported YAML tag {event.tag!r} (use plain mappings)")
        return self.mapping(path)

    def skip(self, event: Any) -> None:
        """Consume the rest of a node without building it."""
        depth = 1 if isinstance(event, SequenceStartEvent | MappingStartEvent) else 0
        while depth:
            event = self.next()
            if isinstance(event, SequenceStartEvent | MappingStartEvent):
                depth += 1
            elif isinstance(event, SequenceEndEvent | MappingEndEvent):
                depth -= 1

    # ------------------------------------------------------------ scalars

    def scalar(self, event: Any, path: Path) -> Any:
        text = event.value
        tag = event.tag
        if tag is None or tag == "!":
            tag = _T + "str"
            if event.implicit[0]:
                for pattern, resolved in _RESOLVERS.get(text[:1], ()):
                    if pattern.match(text):
                        tag = resolved
                        break
        if tag == _T + "str":
            return text
        if tag == _T + "null":
            return None
        if tag == _T + "bool":
            if text.lower() in ("true", "false"):
                return text.lower() == "true"
        elif tag == _T + "int":
            number = yaml12.parse_int(text)
            if number is not None:
                self.record(_RAW, path, text)
                return number
        elif tag == _T + "float":
            real = yaml12.parse_float(text)
            if real is not None:
                self.record(_RAW, path, text)
                return real
        elif tag == _T + "timestamp":
            return text  # JSON has no dates; steps parse them when they need to
        else:
            self.error(_where(event), f"unsupported YAML tag {tag!r}")
            return None
        self.error(_where(event), f"{text!r} is not a valid {tag.removeprefix(_T)}")
        return None

    # ------------------------------------------------------------ aliases

    def fragment(self, event: Any) -> _Fragment | None:
        """The anchor an alias names, or None (reported) when it cannot be used."""
        name = event.anchor
        if name in self.open:
            self.error(self.open[name], "recursive alias: a value cannot contain itself")
            return None
        found = self.anchors.get(name)
        if found is None:
            self.error(_where(event), f"unknown alias *{name}: define the anchor &{name} "
                                      "before using it")
        return found

    def alias(self, event: Any, path: Path) -> Any:
        found = self.fragment(event)
        if found is None or self.too_deep(found, path, event):
            return None
        if not self.spend(len(found.records), _where(event)):
            return None
        self.replay(found.records, path)
        return _copy(found.value)

    def too_deep(self, found: _Fragment, path: Path, event: Any) -> bool:
        if len(path) + found.depth <= _MAX_DEPTH:
            return False
        self.error(_where(event), f"values are nested more than {_MAX_DEPTH} levels deep "
                                  "(through aliases)")
        return True

    def replay(self, records: list[tuple[int, Path, Any]], path: Path) -> None:
        for kind, rel, data in records:
            self.record(kind, (*path, *rel) if rel else path, data)

    # ------------------------------------------------------------ mappings and merge keys

    def mapping(self, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        seen: dict[str, tuple[int, int]] = {}
        merges: list[tuple[_Fragment, tuple[int, int]]] = []
        while True:
            event = self.next()
            if type(event) is MappingEndEvent:
                break
            key, where = self.key(event)
            value_event = self.next()
            if key is _MERGE:
                merges.extend(self.merge_sources(value_event, path))
                continue
            if key is None:
                self.dropped(value_event, path)
                continue
            if key in seen:
                line, col = seen[key]
                self.error(where, f"duplicate key {key!r} (first defined at line {line}, column "
                                  f"{col})")
                self.dropped(value_event, path)
                continue
            seen[key] = where
            child = (*path, key)
            if self.mute or self.recorders:
                self.record(_KEY, child, where)
            else:
                self.positions.keys[child] = where
            out[key] = self.node(value_event, child)
        for source, where in merges:  # explicit keys win, then the first source naming a key
            if not isinstance(source.value, dict):
                continue
            grouped = source.pairs()
            for key, value in source.value.items():
                if not self.spend(1, where):
                    return out
                if key in out:
                    continue
                records = grouped.get(key, [])
                if not self.spend(len(records), where):
                    return out
                self.replay(records, (*path, key))
                out[key] = _copy(value)
        return out

    def key(self, event: Any) -> tuple[Any, tuple[int, int]]:
        """A mapping key: its text, ``_MERGE`` for ``<<``, or None (reported)."""
        mark = event.start_mark
        where = (mark.line + 1, mark.column + 1)
        kind = type(event)
        if kind is ScalarEvent:
            text = event.value
            if event.anchor is None and event.tag is None and text != "<<":
                return text, where  # the common case first
            if event.tag == _T + "merge" or (text == "<<" and event.implicit[0]
                                              and event.tag in (None, "!")):
                return (_MERGE if event.anchor is None else self.anchored_key(event)), where
            if event.anchor is not None:
                return self.anchored_key(event), where
            return text, where
        if kind is AliasEvent:
            found = self.fragment(event)
            if found is None:
                return None, where
            if found.text is not None:
                return found.text, where
        else:
            self.skip(event)
        self.error(where, "mapping keys must be plain strings, not lists or mappings")
        return None, where

    def anchored_key(self, event: Any) -> str:
        """An anchored scalar key (rare): keep the anchor so later aliases can use it."""
        self.mute += 1
        try:
            self.node(event, ())
        finally:
            self.mute -= 1
        return event.value

    def dropped(self, event: Any, path: Path) -> None:
        """Build a value that is not kept (its key was a duplicate or not a string): anchors
        defined inside it stay usable and its own errors are still reported."""
        self.mute += 1
        try:
            self.node(event, path)
        finally:
            self.mute -= 1

    def merge_sources(self, event: Any, path: Path) -> list[tuple[_Fragment, tuple[int, int]]]:
        """The mappings a ``<<`` value names: an alias, a mapping, or a list of those."""
        if type(event) is SequenceStartEvent and event.anchor is None:
            found: list[tuple[_Fragment, tuple[int, int]]] = []
            while True:
                item = self.next()
                if type(item) is SequenceEndEvent:
                    return found
                found.extend(self.merge_sources(item, path))
        where = _where(event)
        if type(event) is AliasEvent:
            source = self.fragment(event)
            if source is None or self.too_deep(source, path, event):
                return []
            if isinstance(source.value, list):  # an alias of a list of mappings
                items = [source.item(i) for i in range(len(source.value))]
                if all(isinstance(item.value, dict) for item in items):
                    return [(item, where) for item in items]
        else:
            records: list[tuple[int, Path, Any]] = []
            self.mute += 1
            self.recorders.append((len(path), records, self.mute))
            try:
                value = self.node(event, path)
            finally:
                self.recorders.pop()
                self.mute -= 1
            source = _Fragment(value, records, None)
        if not isinstance(source.value, dict):
            self.error(where, "a merge key '<<' needs a mapping or a list of mappings")
            return []
        return [(source, where)]


_MERGE: Any = object()


def _copy(value: Any) -> Any:
    """A fresh copy of a built value (aliases must not share mutable containers)."""
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value
