"""Where a structural edit changes the text: the plan of entries it re-renders, found and spliced.

A structural edit of the round-trip tree names the entries it touches (a :class:`Plan`: entries
replaced, deleted or inserted next to an anchor). :func:`locate_plan` finds each entry's
rendering verbatim in the text, :func:`render_plan` renders them again after the change and
turns the difference into text hunks plus the tree operations that redo / undo it. When an
entry cannot be found unambiguously the plan is given up (None) and the caller dumps the whole
tree instead. Qt-free: the document owns the buffer and the undo stack.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from app.editor import yaml_edit
from app.editor.outline import Outline, StepNode, YamlPath
from app.editor.yaml_edit import Entry, Hunk, TreeOp

Located = dict[int, tuple[int, str]]  # id(entry) -> (position in the text, its rendering there)
TreeOps = tuple[list[TreeOp], list[TreeOp]]  # (redo, undo) replays on the cached tree


@dataclass
class Plan:
    """Where a structural edit changes the text, as entries rendered before and after it."""

    replace: list[tuple[Entry, Entry]] = field(default_factory=list)  # (before, after the change)
    delete: list[Entry] = field(default_factory=list)
    insert: list[tuple[Entry, Entry, bool]] = field(default_factory=list)  # (new, anchor, after it)
    key_index: dict[YamlPath, int] = field(default_factory=dict)  # position of a deleted mapping key


class Source:
    """The text an edit starts from, with what speeds up finding entries in it: the outline of
    exactly this text (when known; its step lines narrow the search) and its line starts."""

    def __init__(self, text: str, outline: Outline | None = None) -> None:
        self.text = text
        self.outline = outline
        self._lines: list[int] | None = None

    def line_start(self, line0: int) -> int:
        if self._lines is None:
            self._lines = [0] + [m.end() for m in re.finditer("\n", self.text)]
        if line0 < 0:
            return 0
        return self._lines[line0] if line0 < len(self._lines) else len(self.text)

    def step_hint(self, path: YamlPath) -> tuple[StepNode | None, bool]:
        """The innermost outline step holding ``path`` and whether it is the step itself."""
        if len(path) < 2 or path[0] != "pipelines" or self.outline is None:
            return None, False
        pipeline = self.outline.pipelines.get(str(path[1]))
        if pipeline is None:
            return None, False
        best: StepNode | None = None
        for node in pipeline.nodes.values():
            if path[:len(node.path)] == node.path and (best is None or len(node.path) > len(best.path)):
                best = node
        return best, best is not None and best.path == path


# ---------------------------------------------------------------------- planning

def entry_for(tree: CommentedMap, path: YamlPath) -> Entry | None:
    """The deepest existing block entry holding ``path`` (what a change at ``path`` re-renders)."""
    node: Any = tree
    best: Entry | None = None
    for depth, key in enumerate(path):
        if not yaml_edit.is_block(node):
            break
        try:
            child = yaml_edit.walk(node, (key,))
        except (KeyError, IndexError, TypeError):
            break
        best = Entry(path[:depth], key)
        node = child
    return best


def delete_plan(tree: CommentedMap, path: YamlPath) -> Plan | None:
    """Delete the entry at ``path``, or re-render what holds it when it is the only / first key."""
    container = yaml_edit.walk(tree, path[:-1])
    first_key = isinstance(container, CommentedMap) and len(path) >= 2 and isinstance(path[-2], int) \
        and next(iter(container), None) == path[-1]
    if yaml_edit.is_block(container) and len(container) > 1 and not first_key:
        index = list(container).index(path[-1]) if isinstance(container, CommentedMap) else -1
        return Plan(delete=[Entry(path[:-1], path[-1])], key_index={path: index})
    entry = entry_for(tree, path[:-1])
    return Plan(replace=[(entry, entry)]) if entry is not None else None


def insert_plan(tree: CommentedMap, list_path: YamlPath, index: int, new: Entry,
                shift: tuple[YamlPath, int] | None = None) -> Plan | None:
    """Insert ``new`` next to a neighbour in the list, or re-render what holds the list.
    ``shift``: (list, index) of an item leaving in the same edit (a move)."""
    current = yaml_edit.get(tree, list_path)
    if isinstance(current, CommentedSeq) and yaml_edit.is_block(current) and len(current) > 0:
        if index < len(current):
            return Plan(insert=[(new, Entry(list_path, index), False)])
        return Plan(insert=[(new, Entry(list_path, len(current) - 1), True)])
    entry = entry_for(tree, list_path)
    if entry is None:
        return None
    after = Entry(shift_after_removal(entry.container, *shift), entry.key) if shift else entry
    if shift and entry.container == shift[0] and isinstance(entry.key, int):
        return None  # the holder sits in the list a step leaves: dump it all
    return Plan(replace=[(entry, after)])


def shift_after_removal(path: YamlPath, src_list: YamlPath, index: int) -> YamlPath:
    """``path`` once item ``index`` of ``src_list`` is gone (later siblings move up one)."""
    n = len(src_list)
    if len(path) > n and path[:n] == src_list and isinstance(path[n], int) and path[n] > index:
        return (*src_list, path[n] - 1, *path[n + 1:])
    return path


def outermost(entries: list[Entry]) -> list[Entry]:
    """Drop entries inside other entries (and duplicates)."""
    out: list[Entry] = []
    for entry in sorted(entries, key=lambda e: len(e.path)):
        if not any(entry.path[:len(kept.path)] == kept.path for kept in out):
            out.append(entry)
    return out


# ---------------------------------------------------------------------- locating

def locate_plan(src: Source, ry: YAML, tree: CommentedMap, plan: Plan) -> Located | None:
    """Text position and rendering of every 'before' entry of the plan, or None (dump it all)."""
    if yaml_edit.has_anchors(src.text):
        return None
    found: Located = {}
    spans: list[tuple[int, int]] = []
    points: list[int] = []
    for before, _after in plan.replace:
        at = locate(src, ry, tree, before)
        if at is None:
            return None
        found[id(before)] = at
        spans.append((at[0], at[0] + len(at[1])))
    for entry in plan.delete:
        at = locate(src, ry, tree, entry)
        if at is None:
            return None
        found[id(entry)] = at
        spans.append((at[0], at[0] + len(at[1])))
    for _new, anchor, after in plan.insert:
        at = locate(src, ry, tree, anchor)
        if at is None:
            return None
        found[id(anchor)] = at
        points.append(at[0] + len(at[1]) if after else at[0])
    spans.sort()
    for (_s1, e1), (s2, _e2) in itertools.pairwise(spans):
        if s2 < e1:
            return None
    if any(s < p < e for p in points for s, e in spans):
        return None
    return found


def locate(src: Source, ry: YAML, tree: CommentedMap, entry: Entry) -> tuple[int, str] | None:
    """Where ``entry`` is written in the text, verified against its rendering."""
    if yaml_edit.block_chain(tree, entry.container) < len(entry.container) + 1:
        return None
    try:
        block = yaml_edit.render_entry(ry, tree, entry)
    except (KeyError, IndexError, TypeError):
        return None
    if not block.endswith("\n"):
        return None
    text = src.text
    node, exact = src.step_hint(entry.path)
    if node is not None and exact:
        pos = src.line_start(node.line - 1)
        candidates = [pos] if text.startswith(block, pos) else []
    else:
        start, end = 0, len(text)
        if node is not None:
            start, end = src.line_start(node.line - 1), src.line_start(node.end_line)
        candidates = yaml_edit.find_block(text, block, start, end + len(block))
        candidates = [c for c in candidates if c < max(end, start + 1)]
    if len(candidates) != 1:
        return None
    pos = candidates[0]
    col = yaml_edit.entry_col(block, isinstance(entry.key, str))
    if not yaml_edit.ends_entry(text, pos + len(block), col):
        return None
    return pos, block


# ---------------------------------------------------------------------- rendering

def render_plan(ry: YAML, tree: CommentedMap, plan: Plan, located: Located) -> tuple[list[Hunk], TreeOps]:
    """The text hunks of a located plan (``tree`` already changed), and the tree operations
    that redo / undo it."""
    hunks: list[Hunk] = []
    redo: list[TreeOp] = []
    undo: list[TreeOp] = []
    for before, after in plan.replace:
        pos, old = located[id(before)]
        new = yaml_edit.render_entry(ry, tree, after)
        hunks.append((pos, old, new))
        redo.append(("set", after.path, new, -1))
        undo.append(("set", before.path, old, -1) if before.path == after.path
                    else ("del", after.path, "", -1))
    for entry in plan.delete:
        pos, old = located[id(entry)]
        hunks.append((pos, old, ""))
        redo.append(("del", entry.path, "", -1))
        undo.append(("ins" if isinstance(entry.key, int) else "set", entry.path, old, plan.key_index.get(
            entry.path, -1)))
    for new_entry, anchor, after_anchor in plan.insert:
        pos, old = located[id(anchor)]
        new = yaml_edit.render_entry(ry, tree, new_entry)
        hunks.append((pos + len(old) if after_anchor else pos, "", new))
        redo.append(("ins", new_entry.path, new, -1))
        undo.append(("del", new_entry.path, "", -1))
    if any(b.path != a.path for b, a in plan.replace):
        redo = undo = []  # a holder that moved: no replay (the tree is parsed again when needed)
    undo.reverse()
    hunks.sort(key=lambda h: (h[0], len(h[1])))
    merged: list[Hunk] = []
    for hunk in hunks:  # touching hunks (insert next to a deletion) become one
        if merged and hunk[0] <= merged[-1][0] + len(merged[-1][1]):
            pos, removed, inserted = merged[-1]
            merged[-1] = (pos, removed + hunk[1], inserted + hunk[2])
        else:
            merged.append(hunk)
    return merged, (redo, undo)


# ---------------------------------------------------------------------- hunks

def apply_hunks(text: str, hunks: list[Hunk]) -> str:
    """``text`` with the hunks (ascending, positions in ``text``) applied."""
    for pos, removed, inserted in reversed(hunks):
        text = text[:pos] + inserted + text[pos + len(removed):]
    return text


def trim_common(removed: str, inserted: str) -> tuple[int, str, str]:
    """Drop what both sides of a replacement share at each end: (offset of the rest, the
    rest of ``removed``, the rest of ``inserted``). Keeps cursors in place and lets typing
    runs merge."""
    lo = 0
    limit = min(len(removed), len(inserted))
    while lo < limit and removed[lo] == inserted[lo]:
        lo += 1
    hi = 0
    while hi < limit - lo and removed[-1 - hi] == inserted[-1 - hi]:
        hi += 1
    return lo, removed[lo:len(removed) - hi], inserted[lo:len(inserted) - hi]


def refine(hunks: list[Hunk]) -> list[Hunk]:
    """Each hunk without the characters its two sides share at both ends."""
    out: list[Hunk] = []
    for pos, removed, inserted in hunks:
        lo, removed, inserted = trim_common(removed, inserted)
        if removed or inserted:
            out.append((pos + lo, removed, inserted))
    return out
