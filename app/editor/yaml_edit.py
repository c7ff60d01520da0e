"""Round-trip YAML machinery behind the document's structural edits.

ruamel.yaml keeps comments, key order, quotes and flow style, but dumping a whole 10k-line
file costs most of a second. So an edit renders only the *entries* it touches (one mapping
key or one list item, with everything below it) inside a skeleton of their ancestors, finds
that rendering in the text and splices the new rendering in its place. A rendering that is
not found verbatim (the file does not round-trip there) falls back to a full dump whose
changes are mapped back onto the text line by line, so untouched lines stay as they were.

Scalars follow the YAML 1.2 core schema, as the engine reads them (``engine.format.yaml12``).
"""

from __future__ import annotations

import copy
import datetime
import difflib
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedBase, CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarstring import (
    DoubleQuotedScalarString,
    LiteralScalarString,
    ScalarString,
    SingleQuotedScalarString,
)

from engine.format import yaml12

YamlPath = tuple[str | int, ...]
Container = CommentedMap | CommentedSeq

WIDTH = 1_000_000  # never re-wrap long lines


class TreeError(Exception):
    """The text does not load as a round-trip tree; ``line`` is 1-based (0 = unknown)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.line = line


# ---------------------------------------------------------------- loading and dumping

@dataclass(frozen=True)
class Indent:
    mapping: int = 2
    sequence: int = 4
    offset: int = 2


def guess_indent(text: str) -> Indent:
    """The file's mapping indent and block-sequence indent/offset (ruamel's ``indent()``)."""
    mapping: int | None = None
    sequence: int | None = None
    offset: int | None = None
    key_col: int | None = None  # column of the last "key:" line with nothing after the colon
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        col = len(line) - len(line.lstrip(" "))
        if key_col is not None:
            if stripped.startswith("- ") or stripped == "-":
                if sequence is None:
                    rest = stripped[1:]
                    content = col + 1 + (len(rest) - len(rest.lstrip(" ")) if rest.strip() else 1)
                    offset, sequence = col - key_col, content - key_col
            elif mapping is None and col > key_col:
                mapping = col - key_col
        if mapping is not None and sequence is not None:
            break
        body = stripped[2:].lstrip() if stripped.startswith("- ") else stripped
        body_col = col + (len(stripped) - len(body))
        key_col = body_col if _key_only(body) else None
    mapping = mapping or (sequence - offset if sequence is not None and offset is not None
                          and sequence - offset > 0 else 2)
    if sequence is None or offset is None:
        sequence, offset = mapping + 2, 2
    return Indent(mapping, max(sequence, offset + 2), offset)


def _key_only(body: str) -> bool:
    body = body.split(" #", 1)[0].rstrip()
    return body.endswith(":") and not body.startswith(("{", "[", "'", '"', "#"))


def make_yaml(text: str) -> YAML:
    indent = guess_indent(text)
    ry = YAML()  # round-trip
    ry.preserve_quotes = True
    ry.width = WIDTH
    ry.indent(mapping=indent.mapping, sequence=indent.sequence, offset=indent.offset)
    first = next((ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")), "")
    ry.explicit_start = first.rstrip() == "---" or first.startswith("--- ")
    return ry


def load_tree(ry: YAML, text: str) -> CommentedMap:
    """The text's round-trip tree; the top level must be a mapping (an empty text gives {})."""
    try:
        root = ry.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise TreeError(f"{exc.problem or exc.context or 'syntax error'}", line) from exc
    except YAMLError as exc:
        raise TreeError(str(exc).splitlines()[0] if str(exc) else "syntax error") from exc
    if root is None:
        return CommentedMap()
    if not isinstance(root, CommentedMap):
        raise TreeError("the top level of a pipeline file must be a mapping", 1)
    return root


def dump(ry: YAML, tree: Any) -> str:
    out = io.StringIO()
    ry.dump(tree, out)
    return out.getvalue()


# ---------------------------------------------------------------- plain data both ways

def to_plain(value: Any) -> Any:
    """A round-trip node as plain dicts, lists, str, int, float, bool and None."""
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, (int, float, bool)) else k: to_plain(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, datetime.date):  # the engine reads dates as text
        return value.isoformat()
    return value


def to_node(value: Any, old: Any = None, flow: bool = False) -> Any:
    """Plain data -> round-trip nodes, keeping the style of ``old`` where it is replaced."""
    if isinstance(value, dict):
        node = CommentedMap()
        for key, item in value.items():
            node[key] = to_node(item, flow=flow)
        if flow or (isinstance(old, CommentedBase) and old.fa.flow_style()):
            node.fa.set_flow_style()
        return node
    if isinstance(value, (list, tuple)):
        seq = CommentedSeq(to_node(item, flow=flow) for item in value)
        if flow or (isinstance(old, CommentedBase) and old.fa.flow_style()):
            seq.fa.set_flow_style()
        return seq
    if isinstance(value, str) and not isinstance(value, ScalarString):
        if isinstance(old, (DoubleQuotedScalarString, SingleQuotedScalarString)) and "\n" not in value:
            return type(old)(value)
        if "\n" in value.rstrip("\n") and not flow:
            return LiteralScalarString(value)
        if _needs_quotes(value):
            return DoubleQuotedScalarString(value)
    return value


def _needs_quotes(text: str) -> bool:
    """Whether a string must be quoted to stay a string (house style: double quotes)."""
    if not text or text != text.strip() or text.startswith(_INDICATORS):
        return True
    # Ask a YAML 1.2 loader whether the plain form reads back as the same string.
    try:
        back = yaml12.load(f"v: {text}")
    except yaml.YAMLError:
        return True
    return not (isinstance(back, dict) and back.get("v") == text)


_INDICATORS = ("{", "[", "*", "&", "!", "%", "@", "`", "'", '"', "#", "|", ">", "- ", "? ", ": ", ",")


def new_step_node(step: dict[str, Any]) -> CommentedMap:
    node = to_node(step)
    assert isinstance(node, CommentedMap)
    return node


def clone(node: Any) -> Any:
    return copy.deepcopy(node)


# ---------------------------------------------------------------- tree navigation

def walk(tree: Any, path: Iterable[str | int]) -> Any:
    node = tree
    for key in path:
        if isinstance(node, dict):
            node = node[key]
        elif isinstance(node, list):
            if not isinstance(key, int):
                raise KeyError(key)
            node = node[key]
        else:
            raise KeyError(key)
    return node


def get(tree: Any, path: Iterable[str | int]) -> Any:
    """The node at ``path``, or None when it is missing (or a parent is not a container)."""
    try:
        return walk(tree, path)
    except (KeyError, IndexError, TypeError):
        return None


def is_block(node: Any) -> bool:
    return isinstance(node, (CommentedMap, CommentedSeq)) and not node.fa.flow_style()


# ---------------------------------------------------------------- entry rendering

@dataclass
class Entry:
    """One key of a block mapping or one item of a block list, with all below it."""

    container: YamlPath
    key: str | int

    @property
    def path(self) -> YamlPath:
        return (*self.container, self.key)


def block_chain(tree: Any, path: YamlPath) -> int:
    """How many leading containers along ``path`` exist and are block style (root included)."""
    node = tree
    depth = 0
    for key in path:
        if not is_block(node):
            return depth
        depth += 1
        try:
            node = walk(node, (key,))
        except (KeyError, IndexError):
            return depth
    return depth + (1 if is_block(node) else 0)


def render_entry(ry: YAML, tree: Any, entry: Entry) -> str:
    """The text of ``entry`` as a full dump would write it (the first line includes a list dash)."""
    parent = walk(tree, entry.container)
    inner: Container
    if isinstance(parent, CommentedSeq):
        assert isinstance(entry.key, int)
        inner = CommentedSeq([parent[entry.key]])
        if entry.key in parent.ca.items:
            inner.ca.items[0] = parent.ca.items[entry.key]
    else:
        inner = CommentedMap()
        inner[entry.key] = parent[entry.key]
        if entry.key in parent.ca.items:
            inner.ca.items[entry.key] = parent.ca.items[entry.key]
    node: Any = inner
    for key in reversed(entry.container):
        node = CommentedSeq([node]) if isinstance(key, int) else CommentedMap([(key, node)])
    saved = ry.explicit_start
    ry.explicit_start = False
    try:
        text = dump(ry, node)
    finally:
        ry.explicit_start = saved
    # Each mapping key above the entry wrote one "key:" line; list items above it share a line
    # (the dash) with their first key, and the entry's own first line keeps its dash.
    skip = sum(1 for key in entry.container if isinstance(key, str))
    pos = 0
    for _ in range(skip):
        pos = text.index("\n", pos) + 1
    text = text[pos:]
    if _under_dash(entry.container, entry.key) and next(iter(parent)) != entry.key:
        # Alone in the skeleton the key came first and took the item's dash; in the file it doesn't.
        body = text.lstrip(" ")
        after = body[1:].lstrip(" ")
        text = " " * (len(text) - len(after)) + after
    return text


def _under_dash(container: YamlPath, key: str | int) -> bool:
    """Whether ``key`` is a mapping key of a list item (the first such key shares the dash line)."""
    return bool(container) and isinstance(container[-1], int) and isinstance(key, str)


def find_block(text: str, block: str, start: int = 0, end: int | None = None) -> list[int]:
    """Positions where ``block`` (whole lines) occurs in ``text[start:end]``."""
    end = len(text) if end is None else end
    found = []
    at = text.find(block, start, end)
    while at >= 0:
        if at == 0 or text[at - 1] == "\n":
            found.append(at)
            if len(found) > 1:
                break
        at = text.find(block, at + 1, end)
    return found


def ends_entry(text: str, pos: int, col: int) -> bool:
    """Whether the entry text ending at ``pos`` is complete: what follows is less indented."""
    for line in text[pos:pos + 100_000].split("\n"):
        stripped = line.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        return len(line) - len(stripped) <= col
    return True


def entry_col(block: str, is_key: bool) -> int:
    """The column of an entry's key (``is_key``) or list dash, from its first non-comment line."""
    for line in block.split("\n"):
        stripped = line.lstrip(" ")
        if stripped and not stripped.startswith("#"):
            col = len(line) - len(stripped)
            while is_key and stripped.startswith("- "):  # the first key of a list item
                rest = stripped[1:].lstrip(" ")
                col += len(stripped) - len(rest)
                stripped = rest
            return col
    return 0


def has_anchors(text: str) -> bool:
    """Anchors make renderings context-dependent (an alias after its anchor): dump it all then."""
    return re.search(r"(?:^|[\s,\[{:-])&[^\s,\]}&]", text, re.M) is not None


# ---------------------------------------------------------------- text differences

Hunk = tuple[int, str, str]  # (position, removed text, inserted text)


def diff_hunks(old: str, new: str) -> list[Hunk]:
    """Line-level hunks turning ``old`` into ``new`` (ascending, non-overlapping)."""
    if old == new:
        return []
    a = old.splitlines(keepends=True)
    b = new.splitlines(keepends=True)
    lo = 0
    while lo < len(a) and lo < len(b) and a[lo] == b[lo]:
        lo += 1
    hi = 0
    while hi < len(a) - lo and hi < len(b) - lo and a[-1 - hi] == b[-1 - hi]:
        hi += 1
    a_mid, b_mid = a[lo:len(a) - hi], b[lo:len(b) - hi]
    base = sum(len(line) for line in a[:lo])
    if len(a_mid) * len(b_mid) > 4_000_000:  # too big to align: one hunk
        return [(base, "".join(a_mid), "".join(b_mid))]
    hunks: list[Hunk] = []
    offsets = [base]
    for line in a_mid:
        offsets.append(offsets[-1] + len(line))
    matcher = difflib.SequenceMatcher(None, a_mid, b_mid, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            hunks.append((offsets[i1], "".join(a_mid[i1:i2]), "".join(b_mid[j1:j2])))
    return hunks


def three_way(text: str, before: str, after: str) -> list[Hunk] | None:
    """Hunks for ``text`` that make the changes ``before`` -> ``after`` (None if they touch
    lines where ``text`` and ``before`` differ)."""
    if text == before:
        return diff_hunks(before, after)
    t_lines = text.splitlines(keepends=True)
    b_lines = before.splitlines(keepends=True)
    t_offsets = [0]
    for line in t_lines:
        t_offsets.append(t_offsets[-1] + len(line))
    b_offsets = [0]
    for line in b_lines:
        b_offsets.append(b_offsets[-1] + len(line))
    # line number in `before` -> line number in `text`, where the two agree
    same: dict[int, int] = {}
    matcher = difflib.SequenceMatcher(None, b_lines, t_lines, autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            same[block.a + k] = block.b + k
    hunks: list[Hunk] = []
    for pos, removed, inserted in diff_hunks(before, after):
        first = b_offsets.index(pos) if pos in b_offsets else -1
        if first < 0:
            return None
        count = removed.count("\n") + (1 if removed and not removed.endswith("\n") else 0)
        if count:
            mapped = [same.get(first + k) for k in range(count)]
            if any(m is None for m in mapped) or any(
                    m != mapped[0] + k for k, m in enumerate(mapped)):  # type: ignore[operator]
                return None
            at = mapped[0]
        else:  # pure insertion: anchor on the line before (or after) it
            if first > 0 and (first - 1) in same:
                at = same[first - 1] + 1  # type: ignore[operator]
            elif first in same:
                at = same[first]
            elif first == 0:
                at = 0
            else:
                return None
        assert at is not None
        hunks.append((t_offsets[at], "".join(t_lines[at:at + count]), inserted))
    return hunks


# ---------------------------------------------------------------- replaying edits on a tree

# A structural edit's effect as tree operations, so undo/redo keep the cached tree current
# without parsing the whole text: ("set", path, entry_text, index) replaces or (at index)
# inserts a mapping key or list item, ("ins", path, entry_text, -1) inserts a list item,
# ("del", path, "", -1) removes one. Entry texts are parsed on their own.
TreeOp = tuple[str, YamlPath, str, int]


def parse_entry(ry: YAML, block: str, path: YamlPath, first: bool = True) -> tuple[Any, Any]:
    """An entry's text (as :func:`render_entry` writes it) -> (value, its comment slot).

    The text is parsed inside the same skeleton of ancestors it was rendered in, so columns
    (which ruamel keeps for comments) stay what they were. ``first``: the entry is the first
    key of a list item (its line has the dash); otherwise a stand-in key takes the dash."""
    container, key = path[:-1], path[-1]
    stand_in = _under_dash(container, key) and not first
    node: Any
    if isinstance(key, str):
        node = CommentedMap([(_STAND_IN, None), (key, None)] if stand_in else [(key, None)])
    else:
        node = CommentedSeq([None])
    for part in reversed(container):
        node = CommentedSeq([node]) if isinstance(part, int) else CommentedMap([(part, node)])
    saved = ry.explicit_start
    ry.explicit_start = False
    try:
        skeleton = dump(ry, node)
    finally:
        ry.explicit_start = saved
    skip = sum(1 for part in container if isinstance(part, str)) + (1 if stand_in else 0)
    prefix = "".join(skeleton.splitlines(keepends=True)[:skip])
    doc = ry.load(prefix + block)
    parent = walk(doc, tuple(0 if isinstance(part, int) else part for part in container))
    slot = key if isinstance(key, str) else 0
    if isinstance(key, str):
        if not isinstance(parent, CommentedMap) or list(parent) != ([_STAND_IN, key] if stand_in else [key]):
            raise ValueError("entry text is not one mapping key")
    elif not isinstance(parent, CommentedSeq) or len(parent) != 1:
        raise ValueError("entry text is not one list item")
    return parent[slot], parent.ca.items.get(slot)


_STAND_IN = "wfstudio-stand-in"


def replay(ry: YAML, tree: Any, ops: list[TreeOp]) -> None:
    for kind, path, block, index in ops:
        parent = walk(tree, path[:-1])
        key = path[-1]
        if kind == "del":
            del parent[key]
            continue
        if isinstance(parent, CommentedMap):
            first = (next(iter(parent), None) == key) if key in parent else index == 0
        else:
            first = True
        value, comment = parse_entry(ry, block, path, first)
        if isinstance(parent, CommentedSeq):
            assert isinstance(key, int)
            if kind == "ins":
                parent.insert(key, value)
            else:
                parent[key] = value
        elif key in parent or index < 0:
            parent[key] = value
        else:
            parent.insert(index, key, value)
        if comment is not None:
            parent.ca.items[key] = comment
        else:
            parent.ca.items.pop(key, None)
