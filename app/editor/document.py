"""One open pipeline file: its text, one undo stack for typing and structural edits, saving.

The text is the truth. Every change, typed or structural, is a :class:`TextEdit` command of
text hunks on the document's ``QUndoStack``, so undo and redo are exact whatever made the
change. Structural edits go through a ruamel.yaml round-trip tree (see
:mod:`app.editor.yaml_edit`); the tree is cached for the text it was made for, so after an edit
(whose tree *is* the tree of the new text) the next edit does not parse again. Typing never
touches ruamel: the outline is re-read with the fast PyYAML outline parser, debounced.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from app.editor import yaml_edit
from app.editor.outline import (
    FALLBACK_SHAPES,
    Outline,
    PipelineOutline,
    StepNode,
    TypeShape,
    YamlPath,
    parse_outline,
)
from app.editor.yaml_edit import Entry, Hunk, TreeError, TreeOp

OUTLINE_DELAY_MS = 150
_TYPING_ID = 0x7E47


class EditError(Exception):
    """A structural edit cannot be made; the message says what to do. Nothing was changed."""


class TextEdit(QUndoCommand):
    """Replace text hunks ``(pos, removed, inserted)`` (ascending, positions in the old text)."""

    def __init__(self, doc: PipelineDocument, hunks: list[Hunk], description: str, typing: bool,
                 tree_ops: tuple[list[TreeOp], list[TreeOp]] | None = None) -> None:
        super().__init__(description)
        self.doc = doc
        self.hunks = hunks
        self.typing = typing
        self.tree_ops = tree_ops  # (redo, undo) replays of a structural edit on the cached tree
        self._pushed = False

    def id(self) -> int:
        return _TYPING_ID if self.typing else -1

    def redo(self) -> None:
        # The first redo is the push of a keystroke: its outline may wait for the typing to pause.
        ops = self.tree_ops[0] if self.tree_ops is not None and self._pushed else None
        self.doc._apply(self.hunks, debounce=self.typing and not self._pushed, tree_ops=ops)
        self._pushed = True

    def undo(self) -> None:
        inverse: list[Hunk] = []
        shift = 0
        for pos, removed, inserted in self.hunks:
            inverse.append((pos + shift, inserted, removed))
            shift += len(inserted) - len(removed)
        self.doc._apply(inverse, debounce=False, tree_ops=self.tree_ops[1] if self.tree_ops else None)

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, TextEdit) or not (self.typing and other.typing):
            return False
        if len(self.hunks) != 1 or len(other.hunks) != 1:
            return False
        pos, removed, inserted = self.hunks[0]
        opos, oremoved, oinserted = other.hunks[0]
        if "\n" in removed + inserted + oremoved + oinserted:  # a new line starts a new run
            return False
        if not oremoved and opos == pos + len(inserted):  # typing on
            self.hunks = [(pos, removed, inserted + oinserted)]
        elif not inserted and not oinserted and opos + len(oremoved) == pos:  # backspace run
            self.hunks = [(opos, oremoved + removed, "")]
        elif not inserted and not oinserted and opos == pos:  # delete-key run
            self.hunks = [(pos, removed + oremoved, "")]
        else:
            return False
        return True


@dataclass
class _Plan:
    """Where a structural edit changes the text, as entries rendered before and after it."""

    replace: list[tuple[Entry, Entry]] = field(default_factory=list)  # (before, after the change)
    delete: list[Entry] = field(default_factory=list)
    insert: list[tuple[Entry, Entry, bool]] = field(default_factory=list)  # (new, anchor, after it)
    key_index: dict[YamlPath, int] = field(default_factory=dict)  # position of a deleted mapping key


class PipelineDocument(QObject):
    textChanged = Signal(int, int, str)
    outlineChanged = Signal()
    modifiedChanged = Signal(bool)
    pathChanged = Signal(str)

    def __init__(self, text: str = "", path: Path | None = None,
                 shapes: Mapping[str, TypeShape] | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.path: Path | None = Path(path) if path is not None else None
        self._text = _normalize(text)
        self._newline = "\n"
        self._bom = False
        self._shapes: Mapping[str, TypeShape] = dict(shapes) if shapes is not None else FALLBACK_SHAPES
        self.undo_stack = QUndoStack(self)
        self.undo_stack.cleanChanged.connect(self._clean_changed)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(OUTLINE_DELAY_MS)
        self._timer.timeout.connect(self.flush_outline)
        # caches, each valid for the text it was made for
        self._ry: YAML | None = None
        self._tree: CommentedMap | None = None
        self._tree_text: str | None = None
        self._tree_dump: str | None = None  # the full dump of the cached tree, when known
        self._plain: Any = None
        self._plain_text: str | None = None
        self._lines: list[int] = []
        self._lines_text: str | None = None
        self.outline = parse_outline(self._text, self._shapes)
        self._outline_text = self._text
        self.last_good = self.outline if self.outline.ok else Outline()

    # ------------------------------------------------------------------ file

    @classmethod
    def load(cls, path: Path | str, shapes: Mapping[str, TypeShape] | None = None,
             parent: QObject | None = None) -> PipelineDocument:
        """Open a file (OSError / UnicodeDecodeError propagate)."""
        path = Path(path)
        text, newline, bom = read_text(path)
        doc = cls(text, path, shapes, parent)
        doc._newline, doc._bom = newline, bom
        return doc

    def _clean_changed(self, clean: bool) -> None:
        self.modifiedChanged.emit(not clean)

    @property
    def text(self) -> str:
        return self._text

    def is_modified(self) -> bool:
        return not self.undo_stack.isClean()

    def save(self, path: Path | str | None = None) -> None:
        """Write exactly ``text`` (atomically); OSError leaves the buffer as it was, still modified."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise OSError("the document has no file name yet: choose where to save it")
        text = self._text.replace("\n", self._newline) if self._newline != "\n" else self._text
        write_atomic(target, ("\ufeff" if self._bom else "") + text)
        if target != self.path:
            self.path = target
            self.pathChanged.emit(str(target))
        self.undo_stack.setClean()

    def reload(self, text: str) -> None:
        """The file's text from disk replaces the buffer (one undoable command); marks clean."""
        if text.startswith("\ufeff"):
            text, self._bom = text[1:], True
        if "\r\n" in text:
            self._newline = "\r\n"
        text = _normalize(text)
        hunks = _refine(yaml_edit.diff_hunks(self._text, text))
        if hunks:
            self.undo_stack.push(TextEdit(self, hunks, "Reload from disk", typing=False))
        self.undo_stack.setClean()

    def reload_from_disk(self) -> None:
        """``reload`` with this document's file (OSError / UnicodeDecodeError propagate)."""
        if self.path is None:
            raise OSError("the document has no file")
        text, newline, bom = read_text(self.path)
        self.reload(text)
        self._newline, self._bom = newline, bom

    # ------------------------------------------------------------------ outline

    def set_shapes(self, shapes: Mapping[str, TypeShape]) -> None:
        self._shapes = dict(shapes)
        self._parse_outline()

    def flush_outline(self) -> None:
        if self._timer.isActive() or self._outline_text is not self._text:
            self._parse_outline()

    def _parse_outline(self) -> None:
        self._timer.stop()
        self.outline = parse_outline(self._text, self._shapes)
        self._outline_text = self._text
        if self.outline.ok:
            self.last_good = self.outline
        self.outlineChanged.emit()

    # ------------------------------------------------------------------ text changes

    def replace(self, pos: int, removed: int, inserted: str, *, typing: bool = False,
                description: str = "Typing") -> None:
        if pos < 0 or removed < 0 or pos + removed > len(self._text):
            raise ValueError(f"replace({pos}, {removed}) outside the text (length {len(self._text)})")
        if removed == 0 and not inserted:
            return
        hunk = (pos, self._text[pos:pos + removed], _normalize(inserted))
        if hunk[1] == hunk[2]:
            return
        self.undo_stack.push(TextEdit(self, [hunk], description, typing))

    def set_text(self, text: str, description: str) -> None:
        hunks = _refine(yaml_edit.diff_hunks(self._text, _normalize(text)))
        if hunks:
            self.undo_stack.push(TextEdit(self, hunks, description, typing=False))

    def _apply(self, hunks: list[Hunk], debounce: bool, tree_ops: list[TreeOp] | None = None) -> None:
        text = self._text
        for pos, removed, inserted in reversed(hunks):
            assert text.startswith(removed, pos), "undo history does not match the text"
            text = text[:pos] + inserted + text[pos + len(removed):]
        if tree_ops is not None and self._tree is not None and self._ry is not None and (
                self._tree_text is self._text or self._tree_text == self._text):
            try:  # keep the cached tree current: undo/redo of a structural edit need no parse
                yaml_edit.replay(self._ry, self._tree, tree_ops)
                self._tree_text, self._tree_dump = text, None
            except Exception:  # a tree that cannot follow is simply parsed again
                self._forget_tree()
        self._text = text
        for pos, removed, inserted in reversed(hunks):
            self.textChanged.emit(pos, len(removed), inserted)
        if debounce:
            self._timer.start()
        else:
            self._parse_outline()

    # ------------------------------------------------------------------ structural edits

    def edit(self, description: str, fn: Callable[[CommentedMap], None]) -> None:
        self._structural(description, fn, None)

    def value_at(self, path: YamlPath) -> Any:
        """The value at ``path`` as plain data (KeyError/IndexError when missing or unreadable)."""
        if self._tree is not None and (self._tree_text is self._text or self._tree_text == self._text):
            return yaml_edit.to_plain(yaml_edit.walk(self._tree, path))
        if self._plain_text is not self._text:
            try:
                self._plain = yaml_edit.plain_load(self._text)
            except Exception as exc:
                raise KeyError(f"the YAML does not parse: {exc}") from exc
            self._plain_text = self._text
        return yaml_edit.walk(self._plain, path)

    def set_value(self, path: YamlPath, value: Any) -> None:
        if not path:
            raise EditError("set_value needs a path below the top level")

        def change(tree: CommentedMap) -> None:
            _assign(tree, path, value)

        tree = self._parsed()
        plan = _Plan(replace=[(e, e) for e in [self._entry_for(tree, path)] if e is not None])
        self._structural(f"Set {_path_text(path)}", change, plan if plan.replace else None)

    def delete_value(self, path: YamlPath) -> None:
        if not path:
            raise EditError("delete_value needs a path below the top level")
        tree = self._parsed()
        try:
            parent = yaml_edit.walk(tree, path[:-1])
            yaml_edit.walk(parent, path[-1:])
        except (KeyError, IndexError, TypeError):
            return  # already gone

        def change(tree: CommentedMap) -> None:
            del yaml_edit.walk(tree, path[:-1])[path[-1]]

        self._structural(f"Delete {_path_text(path)}", change, self._delete_plan(tree, path))

    def insert_step(self, list_path: YamlPath, index: int, step: dict[str, Any]) -> YamlPath:
        tree = self._parsed()
        current = _get(tree, list_path)
        if current is not None and not isinstance(current, list):
            raise EditError(f"{_path_text(list_path)} is not a list of steps; fix the YAML first")
        length = len(current) if isinstance(current, list) else 0
        index = max(0, min(index, length))
        names = self._step_names(tree, list_path)
        base = str(step.get("name") or _default_name(step))
        unique = _unique_name(base, names)
        data = dict(step)
        if "name" in data:
            data["name"] = unique
        else:
            data = {"name": unique, **data}
        node = yaml_edit.new_step_node(data)
        new_path = (*list_path, index)

        def change(tree: CommentedMap) -> None:
            _ensure_list(tree, list_path).insert(index, node)

        plan = self._insert_plan(tree, list_path, index, Entry(list_path, index))
        self._structural(f"Insert step {unique}", change, plan)
        return new_path

    def delete_step(self, path: YamlPath) -> None:
        tree = self._parsed()
        self._step_at(tree, path)

        def change(tree: CommentedMap) -> None:
            del yaml_edit.walk(tree, path[:-1])[path[-1]]

        name = self._step_name_at(tree, path)
        self._structural(f"Delete step {name}", change, self._delete_plan(tree, path))

    def duplicate_step(self, path: YamlPath) -> YamlPath:
        tree = self._parsed()
        original = self._step_at(tree, path)
        list_path, index = path[:-1], int(path[-1]) + 1
        copy = yaml_edit.clone(original)
        unique = _unique_name(str(original.get("name") or _default_name(original)),
                              self._step_names(tree, list_path))
        copy["name"] = unique

        def change(tree: CommentedMap) -> None:
            yaml_edit.walk(tree, list_path).insert(index, copy)

        plan = self._insert_plan(tree, list_path, index, Entry(list_path, index))
        self._structural(f"Duplicate step {original.get('name', '')}", change, plan)
        return (*list_path, index)

    def move_step(self, path: YamlPath, list_path: YamlPath, index: int) -> YamlPath:
        tree = self._parsed()
        node = self._step_at(tree, path)
        src_list, i = path[:-1], int(path[-1])
        if list_path[:len(path)] == path:
            raise EditError("a step cannot be moved into itself")
        target = _get(tree, list_path)
        if target is not None and not isinstance(target, list):
            raise EditError(f"{_path_text(list_path)} is not a list of steps; fix the YAML first")
        length = len(target) if isinstance(target, list) else 0
        index = max(0, min(index, length))
        if list_path == src_list and index in (i, i + 1):
            return path
        after_list = _shift_after_removal(list_path, src_list, i)
        after_index = index - 1 if list_path == src_list and index > i else index
        new_path = (*after_list, after_index)
        rename = None
        if list_path[:2] != src_list[:2]:  # into another pipeline: keep names unique there
            names = self._step_names(tree, list_path)
            if str(node.get("name", "")) in names:
                rename = _unique_name(str(node.get("name")), names)

        def change(tree: CommentedMap) -> None:
            moved = yaml_edit.walk(tree, src_list).pop(i)
            if rename is not None:
                moved["name"] = rename
            _ensure_list(tree, after_list).insert(after_index, moved)

        plan = self._insert_plan(tree, list_path, index, Entry(after_list, after_index),
                                 shift=(src_list, i))
        if plan is not None:
            deletion = self._delete_plan(tree, path)
            if deletion is None or deletion.replace:
                plan = None
            else:
                plan.delete += deletion.delete
        self._structural(f"Move step {node.get('name', '')}", change, plan)
        return new_path

    def rename_step(self, path: YamlPath, new_name: str) -> None:
        new_name = new_name.strip()
        if not new_name:
            raise EditError("a step needs a name")
        tree = self._parsed()
        self._step_at(tree, path)
        old = self._step_name_at(tree, path)
        if old == new_name:
            return
        changes: dict[YamlPath, Any] = {(*path, "name"): new_name}
        pipeline = self.outline.pipelines.get(str(path[1])) if len(path) > 1 else None
        node = _node_by_path(pipeline, path) if pipeline else None
        if pipeline is not None and node is not None:
            changes.update(self._reference_changes(tree, pipeline, node, old, new_name))

        def change(tree: CommentedMap) -> None:
            for where, value in changes.items():
                _assign(tree, where, value)

        entries: list[Entry] = []
        for where in changes:
            entry = self._entry_for(tree, where)
            if entry is None:
                entries = []
                break
            entries.append(entry)
        entries = _outermost(entries)
        plan = _Plan(replace=[(e, e) for e in entries]) if entries else None
        self._structural(f"Rename step {old} to {new_name}", change, plan)

    # ------------------------------------------------------------------ machinery

    def _parsed(self) -> CommentedMap:
        """The round-trip tree of the current text (cached), or EditError."""
        self.flush_outline()
        if self._tree_text is self._text and self._tree is not None:
            return self._tree
        if self._tree_text == self._text and self._tree is not None:
            self._tree_text = self._text
            return self._tree
        if self.outline.error:
            raise EditError(f"The file cannot be changed while its YAML is broken "
                            f"({self.outline.error}). Fix the YAML first.")
        ry = yaml_edit.make_yaml(self._text)
        try:
            tree = yaml_edit.load_tree(ry, self._text)
        except TreeError as exc:
            where = f"line {exc.line}: " if exc.line else ""
            raise EditError(f"The file cannot be changed while its YAML is broken ({where}{exc}). "
                            f"Fix the YAML first.") from exc
        self._ry, self._tree, self._tree_text, self._tree_dump = ry, tree, self._text, None
        return tree

    def _structural(self, description: str, fn: Callable[[CommentedMap], None], plan: _Plan | None) -> None:
        tree = self._parsed()
        ry = self._ry
        assert ry is not None
        text = self._text
        located = self._locate_plan(ry, tree, plan) if plan is not None else None
        try:
            if located is None:  # the slow, sure way: dump everything, keep only what changed
                before = self._tree_dump if self._tree_dump is not None else yaml_edit.dump(ry, tree)
                fn(tree)
                after = yaml_edit.dump(ry, tree)
                hunks = yaml_edit.three_way(text, before, after)
                if hunks is None:
                    hunks = yaml_edit.diff_hunks(text, after)
                dumped: str | None = after
                ops: tuple[list[TreeOp], list[TreeOp]] | None = None
            else:
                assert plan is not None
                fn(tree)
                hunks, ops = self._render_plan(ry, tree, plan, located)
                dumped = None
        except EditError:
            self._forget_tree()
            raise
        except Exception as exc:
            self._forget_tree()
            raise EditError(f"{description} failed: {exc}") from exc
        hunks = _refine(hunks)
        if not hunks:
            self._tree_dump = dumped if dumped is not None else self._tree_dump
            return
        new_text = text
        for pos, removed, inserted in reversed(hunks):
            new_text = new_text[:pos] + inserted + new_text[pos + len(removed):]
        # The mutated tree is the tree of the new text: the next edit need not parse again.
        self._tree, self._tree_text, self._tree_dump = tree, new_text, dumped
        self.undo_stack.push(TextEdit(self, hunks, description, typing=False, tree_ops=ops))

    def _forget_tree(self) -> None:
        self._tree = None
        self._tree_text = None
        self._tree_dump = None

    def _locate_plan(self, ry: YAML, tree: CommentedMap, plan: _Plan) -> dict[int, tuple[int, str]] | None:
        """Text position and rendering of every 'before' entry of the plan, or None (dump it all)."""
        if yaml_edit.has_anchors(self._text):
            return None
        found: dict[int, tuple[int, str]] = {}
        spans: list[tuple[int, int]] = []
        points: list[int] = []
        for before, _after in plan.replace:
            at = self._locate(ry, tree, before)
            if at is None:
                return None
            found[id(before)] = at
            spans.append((at[0], at[0] + len(at[1])))
        for entry in plan.delete:
            at = self._locate(ry, tree, entry)
            if at is None:
                return None
            found[id(entry)] = at
            spans.append((at[0], at[0] + len(at[1])))
        for _new, anchor, after in plan.insert:
            at = self._locate(ry, tree, anchor)
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

    def _locate(self, ry: YAML, tree: CommentedMap, entry: Entry) -> tuple[int, str] | None:
        """Where ``entry`` is written in the text, verified against its rendering."""
        if yaml_edit.block_chain(tree, entry.container) < len(entry.container) + 1:
            return None
        try:
            block = yaml_edit.render_entry(ry, tree, entry)
        except (KeyError, IndexError, TypeError):
            return None
        if not block.endswith("\n"):
            return None
        text = self._text
        node, exact = self._step_hint(entry.path)
        if node is not None and exact:
            pos = self._line_start(node.line - 1)
            candidates = [pos] if text.startswith(block, pos) else []
        else:
            start, end = 0, len(text)
            if node is not None:
                start, end = self._line_start(node.line - 1), self._line_start(node.end_line)
            candidates = yaml_edit.find_block(text, block, start, end + len(block))
            candidates = [c for c in candidates if c < max(end, start + 1)]
        if len(candidates) != 1:
            return None
        pos = candidates[0]
        col = yaml_edit.entry_col(block, isinstance(entry.key, str))
        if not yaml_edit.ends_entry(text, pos + len(block), col):
            return None
        return pos, block

    def _render_plan(self, ry: YAML, tree: CommentedMap, plan: _Plan, located: dict[int, tuple[int, str]]
                     ) -> tuple[list[Hunk], tuple[list[TreeOp], list[TreeOp]]]:
        """The text hunks of a located plan, and the tree operations that redo / undo it."""
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

    def _entry_for(self, tree: CommentedMap, path: YamlPath) -> Entry | None:
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

    def _delete_plan(self, tree: CommentedMap, path: YamlPath) -> _Plan | None:
        container = yaml_edit.walk(tree, path[:-1])
        first_key = isinstance(container, CommentedMap) and len(path) >= 2 and isinstance(path[-2], int) \
            and next(iter(container), None) == path[-1]
        if yaml_edit.is_block(container) and len(container) > 1 and not first_key:
            index = list(container).index(path[-1]) if isinstance(container, CommentedMap) else -1
            return _Plan(delete=[Entry(path[:-1], path[-1])], key_index={path: index})
        entry = self._entry_for(tree, path[:-1])
        return _Plan(replace=[(entry, entry)]) if entry is not None else None

    def _insert_plan(self, tree: CommentedMap, list_path: YamlPath, index: int, new: Entry,
                     shift: tuple[YamlPath, int] | None = None) -> _Plan | None:
        """Insert ``new`` next to a neighbour in the list, or re-render what holds the list."""
        current = _get(tree, list_path)
        if isinstance(current, CommentedSeq) and yaml_edit.is_block(current) and len(current) > 0:
            if index < len(current):
                return _Plan(insert=[(new, Entry(list_path, index), False)])
            return _Plan(insert=[(new, Entry(list_path, len(current) - 1), True)])
        entry = self._entry_for(tree, list_path)
        if entry is None:
            return None
        after = Entry(_shift_after_removal(entry.container, *shift), entry.key) if shift else entry
        if shift and entry.container == shift[0] and isinstance(entry.key, int):
            return None  # the holder sits in the list a step leaves: dump it all
        return _Plan(replace=[(entry, after)])

    def _step_hint(self, path: YamlPath) -> tuple[StepNode | None, bool]:
        """The innermost outline step holding ``path`` and whether it is the step itself."""
        if len(path) < 2 or path[0] != "pipelines":
            return None, False
        pipeline = self.outline.pipelines.get(str(path[1])) if self._outline_text is self._text else None
        if pipeline is None:
            return None, False
        best: StepNode | None = None
        for node in pipeline.nodes.values():
            if path[:len(node.path)] == node.path and (best is None or len(node.path) > len(best.path)):
                best = node
        return best, best is not None and best.path == path

    def _line_start(self, line0: int) -> int:
        if self._lines_text is not self._text:
            self._lines = [0] + [m.end() for m in re.finditer("\n", self._text)]
            self._lines_text = self._text
        if line0 < 0:
            return 0
        return self._lines[line0] if line0 < len(self._lines) else len(self._text)

    def _step_at(self, tree: CommentedMap, path: YamlPath) -> CommentedMap:
        try:
            node = yaml_edit.walk(tree, path)
        except (KeyError, IndexError, TypeError) as exc:
            raise EditError(f"there is no step at {_path_text(path)} any more") from exc
        if not isinstance(node, CommentedMap) or not path or not isinstance(path[-1], int):
            raise EditError(f"{_path_text(path)} is not a step")
        return node

    def _step_name_at(self, tree: CommentedMap, path: YamlPath) -> str:
        return str(self._step_at(tree, path).get("name", ""))

    def _step_names(self, tree: CommentedMap, list_path: YamlPath) -> set[str]:
        """Every step name in the pipeline holding ``list_path`` (from the tree, sub-steps too)."""
        root = _get(tree, list_path[:2]) if len(list_path) >= 2 and list_path[0] == "pipelines" else None
        names: set[str] = set()
        for value in _walk_maps(root if root is not None else _get(tree, list_path)):
            name = value.get("name")
            if isinstance(name, str) and "type" in value:
                names.add(name)
        return names

    def _reference_changes(self, tree: CommentedMap, pipeline: PipelineOutline, target: StepNode,
                           old: str, new: str) -> dict[YamlPath, Any]:
        """Config values naming ``target`` (at the types' step_refs) and templates reading its output."""
        changes: dict[YamlPath, Any] = {}
        for node in pipeline.nodes.values():
            shape = self._shapes.get(node.type)
            if shape is None or not shape.step_refs:
                continue
            siblings = pipeline.steps if node.parent is None else pipeline.nodes[node.parent].children
            scope = {s.name: s.id for s in pipeline.steps}
            scope.update({s.name: s.id for s in siblings})
            if scope.get(old) != target.id:
                continue
            config = _get(tree, (*node.path, "config"))
            for pattern in sorted(shape.step_refs):
                for rel, value in _find_paths(config, pattern.split(".")):
                    if value == old:
                        changes[(*node.path, "config", *rel)] = new
        pattern = re.compile(r"(\.steps\.)" + re.escape(old) + r"(?![\w-])|(\.steps\[\s*)([\"'])"
                             + re.escape(old) + r"\3(\s*\])")

        ident = re.compile(r"[A-Za-z_]\w*")
        dotted = ident.fullmatch(new) is not None or ident.fullmatch(old) is None

        def fix(match: re.Match[str]) -> str:
            if match.group(1):  # .steps.old -> .steps.new (or .steps["new"] when that would not read)
                return f".steps.{new}" if dotted else f'.steps["{new}"]'
            return f"{match.group(2)}{match.group(3)}{new}{match.group(3)}{match.group(4)}"

        base = pipeline.path
        for rel, value in _strings(_get(tree, base), ()):
            if ".steps" in value and old in value:
                fixed = pattern.sub(fix, value)
                if fixed != value:
                    changes[(*base, *rel)] = fixed
        return changes


# ---------------------------------------------------------------------- helpers

def read_text(path: Path) -> tuple[str, str, bool]:
    """(text with \\n newlines, the file's newline, whether it had a UTF-8 BOM)."""
    raw = path.read_bytes().decode("utf-8")
    bom = raw.startswith("\ufeff")
    if bom:
        raw = raw[1:]
    newline = "\r\n" if "\r\n" in raw and raw.count("\r\n") == raw.count("\n") else "\n"
    return _normalize(raw), newline, bom


def write_atomic(target: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename it over the target."""
    real = target.resolve() if target.is_symlink() else target
    if real.exists() and not os.access(real, os.W_OK):
        raise PermissionError(13, "Permission denied", str(real))
    data = text.encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{real.name}.", suffix=".tmp", dir=real.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if real.exists():
            os.chmod(tmp, real.stat().st_mode & 0o7777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, real)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _normalize(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


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


def _refine(hunks: list[Hunk]) -> list[Hunk]:
    """Each hunk without the characters its two sides share at both ends."""
    out: list[Hunk] = []
    for pos, removed, inserted in hunks:
        lo, removed, inserted = trim_common(removed, inserted)
        if removed or inserted:
            out.append((pos + lo, removed, inserted))
    return out


def _path_text(path: YamlPath) -> str:
    return ".".join(f"[{k}]" if isinstance(k, int) else str(k) for k in path).replace(".[", "[")


def _get(tree: Any, path: YamlPath) -> Any:
    try:
        return yaml_edit.walk(tree, path)
    except (KeyError, IndexError, TypeError):
        return None


def _assign(tree: CommentedMap, path: YamlPath, value: Any) -> None:
    """Set ``path`` to plain ``value``, creating missing maps; a map or list is updated in place."""
    node: Any = tree
    for key in path[:-1]:
        try:
            child = yaml_edit.walk(node, (key,))
        except (KeyError, IndexError, TypeError):
            child = None
        if not isinstance(child, (dict, list)):
            if isinstance(node, list):
                raise EditError(f"index {key} is outside the list")
            child = CommentedMap()
            if isinstance(node, CommentedMap) and node.fa.flow_style():
                child.fa.set_flow_style()
            node[key] = child
        node = child
    _set(node, path[-1], value)


def _set(container: Any, key: str | int, value: Any) -> None:
    if isinstance(container, list):
        if not isinstance(key, int) or not -len(container) <= key <= len(container):
            raise EditError(f"index {key} is outside the list")
        if key == len(container):
            container.append(yaml_edit.to_node(value, flow=_flow(container)))
            return
    elif not isinstance(container, dict):
        raise EditError("the value's parent is not a mapping")
    old = container.get(key) if isinstance(container, dict) else container[key]
    has = key in container if isinstance(container, dict) else True
    if has and isinstance(old, CommentedMap) and isinstance(value, dict):
        for gone in [k for k in old if k not in value]:
            del old[gone]
        for k, v in value.items():
            _set(old, k, v)
        return
    if has and isinstance(old, CommentedSeq) and isinstance(value, list):
        del old[len(value):]
        for i, v in enumerate(value):
            _set(old, i, v)
        return
    if has and _same(old, value):
        return  # keep the source form (1.0, 'x', 0x10)
    container[key] = yaml_edit.to_node(value, old, flow=_flow(container))


def _flow(container: Any) -> bool:
    return isinstance(container, (CommentedMap, CommentedSeq)) and bool(container.fa.flow_style())


def _same(old: Any, new: Any) -> bool:
    plain = yaml_edit.to_plain(old)
    return type(plain) is type(new) and plain == new


def _ensure_list(tree: CommentedMap, path: YamlPath) -> list[Any]:
    """The list at ``path``, made (block style, parents included) when missing or an empty ``[]``."""
    current = _get(tree, path)
    if isinstance(current, list) and (len(current) or not _flow(current)):
        return current
    if current is not None and not isinstance(current, list):
        raise EditError(f"{_path_text(path)} is not a list")
    parent: Any = tree
    for key in path[:-1]:
        child = _get(parent, (key,))
        if not isinstance(child, (dict, list)):
            if not isinstance(parent, dict):
                raise EditError(f"cannot make {_path_text(path)}: {key} is not there")
            child = CommentedMap()
            parent[key] = child
        parent = child
    fresh = CommentedSeq()
    parent[path[-1]] = fresh
    return fresh


def _shift_after_removal(path: YamlPath, src_list: YamlPath, index: int) -> YamlPath:
    """``path`` once item ``index`` of ``src_list`` is gone (later siblings move up one)."""
    n = len(src_list)
    if len(path) > n and path[:n] == src_list and isinstance(path[n], int) and path[n] > index:
        return (*src_list, path[n] - 1, *path[n + 1:])
    return path


def _default_name(step: Mapping[str, Any]) -> str:
    kind = str(step.get("type") or "step")
    return re.sub(r"[^A-Za-z0-9_-]+", "-", kind.rsplit(".", 1)[-1]).strip("-") or "step"


def _unique_name(base: str, names: set[str]) -> str:
    if base not in names:
        return base
    stem = re.sub(r"-\d+$", "", base) or base
    n = 2
    while f"{stem}-{n}" in names:
        n += 1
    return f"{stem}-{n}"


def _walk_maps(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _walk_maps(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk_maps(item)


def _strings(value: Any, at: YamlPath) -> Iterator[tuple[YamlPath, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*at, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, (*at, i))
    elif isinstance(value, str):
        yield at, value


def _find_paths(value: Any, parts: list[str], at: YamlPath = ()) -> Iterator[tuple[YamlPath, Any]]:
    """Values at a dotted step_refs pattern (``*`` = every key or item), like the engine reads them."""
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
                yield from _find_paths(item, rest, (*at, key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                yield from _find_paths(item, rest, (*at, i))
    elif isinstance(value, dict) and head in value:
        yield from _find_paths(value[head], rest, (*at, head))


def _node_by_path(pipeline: PipelineOutline, path: YamlPath) -> StepNode | None:
    return next((n for n in pipeline.nodes.values() if n.path == path), None)


def _outermost(entries: list[Entry]) -> list[Entry]:
    """Drop entries inside other entries (and duplicates)."""
    out: list[Entry] = []
    for entry in sorted(entries, key=lambda e: len(e.path)):
        if not any(entry.path[:len(kept.path)] == kept.path for kept in out):
            out.append(entry)
    return out
