"""One open pipeline file: its text, one undo stack for typing and structural edits, saving.

The text is the truth. Every change, typed or structural, is a :class:`TextEdit` command of
text hunks on the document's ``QUndoStack``, so undo and redo are exact whatever made the
change. Structural edits go through a ruamel.yaml round-trip tree (see
:mod:`app.editor.yaml_edit`); the tree is cached for the text it was made for, so after an edit
(whose tree *is* the tree of the new text) the next edit does not parse again. Typing never
touches ruamel: the outline is re-read with the fast PyYAML outline parser, debounced.

Where a structural edit changes the text is planned by :mod:`app.editor.text_patch`; the rules
of steps (unique names, references that follow a rename) are :mod:`app.editor.step_rules`.
Both are Qt-free: this module owns the Qt side, the buffer, its undo stack and saving.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from app.editor import step_rules, text_patch, yaml_edit
from app.editor.outline import FALLBACK_SHAPES, Outline, TypeShape, YamlPath, parse_outline
from app.editor.step_rules import EditError, path_text
from app.editor.text_patch import Plan, Source, refine, shift_after_removal
from app.editor.yaml_edit import Entry, Hunk, TreeError, TreeOp
from engine.format import yaml12

__all__ = ["EditError", "PipelineDocument", "TextEdit", "read_text", "write_atomic"]

OUTLINE_DELAY_MS = 150
_TYPING_ID = 0x7E47


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
        self._source: Source | None = None  # the planner's view of the text
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
        hunks = refine(yaml_edit.diff_hunks(self._text, text))
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
        hunks = refine(yaml_edit.diff_hunks(self._text, _normalize(text)))
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
                self._plain = yaml12.load(self._text)
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
        plan = Plan(replace=[(e, e) for e in [text_patch.entry_for(tree, path)] if e is not None])
        self._structural(f"Set {path_text(path)}", change, plan if plan.replace else None)

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

        self._structural(f"Delete {path_text(path)}", change, text_patch.delete_plan(tree, path))

    def insert_step(self, list_path: YamlPath, index: int, step: dict[str, Any]) -> YamlPath:
        tree = self._parsed()
        current = yaml_edit.get(tree, list_path)
        if current is not None and not isinstance(current, list):
            raise EditError(f"{path_text(list_path)} is not a list of steps; fix the YAML first")
        length = len(current) if isinstance(current, list) else 0
        index = max(0, min(index, length))
        names = step_rules.step_names(tree, list_path)
        base = str(step.get("name") or step_rules.default_name(step))
        unique = step_rules.unique_name(base, names)
        data = dict(step)
        if "name" in data:
            data["name"] = unique
        else:
            data = {"name": unique, **data}
        node = yaml_edit.new_step_node(data)
        new_path = (*list_path, index)

        def change(tree: CommentedMap) -> None:
            _ensure_list(tree, list_path).insert(index, node)

        plan = text_patch.insert_plan(tree, list_path, index, Entry(list_path, index))
        self._structural(f"Insert step {unique}", change, plan)
        return new_path

    def delete_step(self, path: YamlPath) -> None:
        tree = self._parsed()
        step_rules.step_at(tree, path)

        def change(tree: CommentedMap) -> None:
            del yaml_edit.walk(tree, path[:-1])[path[-1]]

        name = step_rules.step_name_at(tree, path)
        self._structural(f"Delete step {name}", change, text_patch.delete_plan(tree, path))

    def duplicate_step(self, path: YamlPath) -> YamlPath:
        tree = self._parsed()
        original = step_rules.step_at(tree, path)
        list_path, index = path[:-1], int(path[-1]) + 1
        copy = yaml_edit.clone(original)
        unique = step_rules.unique_name(str(original.get("name") or step_rules.default_name(original)),
                              step_rules.step_names(tree, list_path))
        copy["name"] = unique

        def change(tree: CommentedMap) -> None:
            yaml_edit.walk(tree, list_path).insert(index, copy)

        plan = text_patch.insert_plan(tree, list_path, index, Entry(list_path, index))
        self._structural(f"Duplicate step {original.get('name', '')}", change, plan)
        return (*list_path, index)

    def move_step(self, path: YamlPath, list_path: YamlPath, index: int) -> YamlPath:
        tree = self._parsed()
        node = step_rules.step_at(tree, path)
        src_list, i = path[:-1], int(path[-1])
        if list_path[:len(path)] == path:
            raise EditError("a step cannot be moved into itself")
        target = yaml_edit.get(tree, list_path)
        if target is not None and not isinstance(target, list):
            raise EditError(f"{path_text(list_path)} is not a list of steps; fix the YAML first")
        length = len(target) if isinstance(target, list) else 0
        index = max(0, min(index, length))
        if list_path == src_list and index in (i, i + 1):
            return path
        after_list = shift_after_removal(list_path, src_list, i)
        after_index = index - 1 if list_path == src_list and index > i else index
        new_path = (*after_list, after_index)
        rename = None
        if list_path[:2] != src_list[:2]:  # into another pipeline: keep names unique there
            names = step_rules.step_names(tree, list_path)
            if str(node.get("name", "")) in names:
                rename = step_rules.unique_name(str(node.get("name")), names)

        def change(tree: CommentedMap) -> None:
            moved = yaml_edit.walk(tree, src_list).pop(i)
            if rename is not None:
                moved["name"] = rename
            _ensure_list(tree, after_list).insert(after_index, moved)

        plan = text_patch.insert_plan(tree, list_path, index, Entry(after_list, after_index),
                                 shift=(src_list, i))
        if plan is not None:
            deletion = text_patch.delete_plan(tree, path)
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
        step_rules.step_at(tree, path)
        old = step_rules.step_name_at(tree, path)
        if old == new_name:
            return
        changes: dict[YamlPath, Any] = {(*path, "name"): new_name}
        pipeline = self.outline.pipelines.get(str(path[1])) if len(path) > 1 else None
        node = step_rules.node_by_path(pipeline, path) if pipeline else None
        if pipeline is not None and node is not None:
            changes.update(step_rules.reference_changes(tree, self._shapes, pipeline, node, old, new_name))

        def change(tree: CommentedMap) -> None:
            for where, value in changes.items():
                _assign(tree, where, value)

        entries: list[Entry] = []
        for where in changes:
            entry = text_patch.entry_for(tree, where)
            if entry is None:
                entries = []
                break
            entries.append(entry)
        entries = text_patch.outermost(entries)
        plan = Plan(replace=[(e, e) for e in entries]) if entries else None
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

    def _structural(self, description: str, fn: Callable[[CommentedMap], None], plan: Plan | None) -> None:
        tree = self._parsed()
        ry = self._ry
        assert ry is not None
        text = self._text
        located = text_patch.locate_plan(self._text_source(), ry, tree, plan) if plan is not None else None
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
                hunks, ops = text_patch.render_plan(ry, tree, plan, located)
                dumped = None
        except EditError:
            self._forget_tree()
            raise
        except Exception as exc:
            self._forget_tree()
            raise EditError(f"{description} failed: {exc}") from exc
        hunks = refine(hunks)
        if not hunks:
            self._tree_dump = dumped if dumped is not None else self._tree_dump
            return
        new_text = text_patch.apply_hunks(text, hunks)
        # The mutated tree is the tree of the new text: the next edit need not parse again.
        self._tree, self._tree_text, self._tree_dump = tree, new_text, dumped
        self.undo_stack.push(TextEdit(self, hunks, description, typing=False, tree_ops=ops))

    def _forget_tree(self) -> None:
        self._tree = None
        self._tree_text = None
        self._tree_dump = None

    def _text_source(self) -> Source:
        """The current text for the planner, with its outline when that is current (kept while
        the text is: its line starts are computed once)."""
        outline = self.outline if self._outline_text is self._text else None
        src = self._source
        if src is None or src.text is not self._text or src.outline is not outline:
            src = self._source = Source(self._text, outline)
        return src

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
    current = yaml_edit.get(tree, path)
    if isinstance(current, list) and (len(current) or not _flow(current)):
        return current
    if current is not None and not isinstance(current, list):
        raise EditError(f"{path_text(path)} is not a list")
    parent: Any = tree
    for key in path[:-1]:
        child = yaml_edit.get(parent, (key,))
        if not isinstance(child, (dict, list)):
            if not isinstance(parent, dict):
                raise EditError(f"cannot make {path_text(path)}: {key} is not there")
            child = CommentedMap()
            parent[key] = child
        parent = child
    fresh = CommentedSeq()
    parent[path[-1]] = fresh
    return fresh
