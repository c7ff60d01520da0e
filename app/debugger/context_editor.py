"""The paused execution's context as editable JSON, turned into a JSON Patch on resume.

The editor shows the whole context (``current``, ``steps``, ``trigger``, ``meta``) so nothing
is hidden, but only ``current`` and ``steps`` can change (the engine refuses patches
elsewhere); editing the trigger or meta is reported before anything is sent. On resume the
difference between what was shown and what was edited is sent as an RFC 6902 patch computed
with ``jsonpatch``, which the engine records as ``debug.context_patched``.

Edits are kept per pause: switching to another paused execution and back finds the text as
it was left, and a reload of the paused list never overwrites it.
"""

from __future__ import annotations

from typing import Any

import jsonpatch
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QTabWidget, QVBoxLayout, QWidget

from app import theme
from app.debugger.json_edit import JsonEdit, JsonTree, pretty
from app.debugger.paused_panel import REASONS, pause_key
from app.run.http_input import InputError
from app.selection import SelectionHub
from engine.service.models import PausedExecution

EDITABLE = ("current", "steps")
READ_ONLY = ("trigger", "meta")


class ContextError(ValueError):
    """The edited context cannot be sent: bad JSON (with line/col) or a read-only part changed."""

    def __init__(self, message: str, line: int | None = None, col: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line
        self.col = col


def context_patch(original: dict[str, Any], edited: Any) -> list[dict[str, Any]]:
    """The RFC 6902 patch from ``original`` to ``edited`` over ``current`` and ``steps``."""
    if not isinstance(edited, dict):
        raise ContextError("the context must stay a JSON object with current, steps, trigger and meta")
    unknown = sorted(set(edited) - set(EDITABLE) - set(READ_ONLY))
    if unknown:
        raise ContextError(f"unknown top-level key {unknown[0]!r}: put new values under \"current\"")
    for key in READ_ONLY:
        if edited.get(key) != original.get(key):
            raise ContextError(f"\"{key}\" is read-only (the engine only patches current and steps): "
                               "revert that change")
    for key in EDITABLE:
        if not isinstance(edited.get(key), dict):
            raise ContextError(f"\"{key}\" must stay a JSON object")
    before = {key: original.get(key, {}) for key in EDITABLE}
    after = {key: edited[key] for key in EDITABLE}
    return list(jsonpatch.make_patch(before, after).patch)


class ContextEditor(QWidget):
    validityChanged = Signal(bool)  # the text is (not) sendable JSON
    modifiedChanged = Signal(bool)

    def __init__(self, hub: SelectionHub, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("contextEditor")
        self.hub = hub
        self._paused: PausedExecution | None = None
        self._original_text = ""
        self._buffers: dict[tuple[str, float], str] = {}  # edited text per pause
        self._modified = False

        self.header = QLabel(objectName="contextHeader")
        self.header.setWordWrap(True)
        self.json = JsonEdit("context")
        self.json.setObjectName("contextJson")
        self.tree = JsonTree()
        self.tree.setObjectName("contextTree")
        self.tabs = QTabWidget(objectName="contextTabs")
        self.tabs.addTab(self.json, "JSON")
        self.tabs.addTab(self.tree, "Tree")
        self.note = QLabel("Edit <b>current</b> and <b>steps</b>; the changes are applied as a "
                           "JSON Patch when you resume. <b>trigger</b> and <b>meta</b> are read-only.",
                           objectName="contextNote")
        self.note.setWordWrap(True)
        self.revert_button = QPushButton("Revert", objectName="revertContext")
        self.revert_button.setToolTip("Discard the edits: back to the context as paused")
        self.format_button = QPushButton("Format", objectName="formatContext")
        buttons = QHBoxLayout()
        buttons.addWidget(self.note, 1)
        buttons.addWidget(self.format_button)
        buttons.addWidget(self.revert_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.header)
        layout.addWidget(self.tabs, 1)
        layout.addLayout(buttons)

        self.json.validityChanged.connect(self.validityChanged)
        self.json.edited.connect(self._edited)
        self.revert_button.clicked.connect(self.revert)
        self.format_button.clicked.connect(self.format_text)
        self.tabs.currentChanged.connect(lambda _i: self._fill_tree())
        self.set_paused(None)

    # -- the pause shown -----------------------------------------------------------------
    def paused(self) -> PausedExecution | None:
        return self._paused

    def set_paused(self, p: PausedExecution | None) -> None:
        """Show ``p``'s context (None: nothing paused); the previous pause's edits are kept."""
        if self._paused is not None and p is not None and pause_key(p) == pause_key(self._paused):
            self._paused = p  # the same pause reloaded: keep the text as it is
            return
        self._keep_edits()
        self._paused = p
        if p is None:
            self._original_text = ""
            self.header.setText("Nothing paused: the context of a paused execution shows here")
            self.json.clear()  # empty is the neutral state here, not a JSON error
        else:
            self._original_text = pretty(p.context)
            self.header.setText(f"<b>{p.pipeline}</b> paused before <b>{p.path}</b> "
                                f"({REASONS.get(p.reason, p.reason)}), execution {p.execution_id[:12]}")
            self.json.set_text(self._buffers.get(pause_key(p), self._original_text))
        self.json.set_read_only(p is None)
        self.format_button.setEnabled(p is not None)
        self._set_modified(p is not None and self.json.text() != self._original_text)
        self._fill_tree()

    def discard(self, p: PausedExecution) -> None:
        """Forget the edits of a pause that was resumed."""
        self._buffers.pop(pause_key(p), None)
        if self._paused is not None and pause_key(self._paused) == pause_key(p):
            self.json.set_text(self._original_text)
            self._set_modified(False)

    def _keep_edits(self) -> None:
        if self._paused is None:
            return
        key = pause_key(self._paused)
        if self.json.text() != self._original_text:
            self._buffers[key] = self.json.text()
        else:
            self._buffers.pop(key, None)

    # -- editing -----------------------------------------------------------------------
    def text(self) -> str:
        return self.json.text()

    def set_text(self, text: str) -> None:
        """Replace the edited text (as if typed)."""
        self.json.set_text(text)
        self._edited()

    def edited_context(self) -> Any:
        try:
            return self.json.value()
        except InputError as exc:
            raise ContextError(exc.message, exc.line, exc.col) from None

    def patch(self) -> list[dict[str, Any]]:
        """The JSON Patch of the edits ([] when none); ContextError when they cannot be sent."""
        if self._paused is None:
            return []
        if not self._modified:
            return []
        return context_patch(self._paused.context, self.edited_context())

    def is_modified(self) -> bool:
        return self._modified

    def revert(self) -> None:
        if self._paused is not None:
            self._buffers.pop(pause_key(self._paused), None)
            self.json.set_text(self._original_text)
            self._set_modified(False)
            self._fill_tree()

    def format_text(self) -> None:
        try:
            value = self.json.value()
        except InputError:
            self.json.go_to_error()
            return
        self.set_text(pretty(value))

    def show_error(self, message: str) -> None:
        """A refusal from the service (a patch that does not apply) or a ContextError."""
        self.json.show_error(message)

    def _edited(self) -> None:
        self._set_modified(self._paused is not None and self.json.text() != self._original_text)

    def _set_modified(self, modified: bool) -> None:
        self.revert_button.setEnabled(modified)
        self.note.setStyleSheet(f"color: {theme.colors().warning};" if modified else "")
        if modified != self._modified:
            self._modified = modified
            self.modifiedChanged.emit(modified)

    def _fill_tree(self) -> None:
        if self.tabs.currentWidget() is not self.tree:
            return  # built when looked at: a large context is not walked twice per pause
        if self._paused is None:
            self.tree.clear()
            return
        try:
            value = self.json.value()
        except InputError:
            value = self._paused.context  # the edits do not parse: show the context as paused
        self.tree.set_value(value)
