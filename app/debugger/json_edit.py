"""A JSON text field that says where its text stops being JSON, and a lazy read-only JSON tree.

Both the debugger's context editor and the replay dialog's input editor use ``JsonEdit``:
the text is checked as it is typed (debounced, so a large context never makes typing lag),
an error names its line and column and marks that line, and ``value()`` parses strictly
(no NaN or Infinity, like the server).
"""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFontDatabase, QTextCursor, QTextFormat
from PySide6.QtWidgets import (
    QLabel,
    QPlainTextEdit,
    QTextEdit,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app import theme
from app.run.http_input import InputError, parse_json

CHECK_DELAY_MS = 150
TREE_PAGE = 200  # children shown per node; the rest behind a "… more" row


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def compact(value: Any, limit: int = 200) -> str:
    """One line of JSON for a table cell, cut at ``limit`` characters."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class JsonEdit(QWidget):
    """A monospace JSON editor with a live syntax check."""

    validityChanged = Signal(bool)
    edited = Signal()  # the user changed the text

    def __init__(self, field: str = "JSON", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.field = field  # how errors name this text ("input", "context")
        self.text_edit = QPlainTextEdit(objectName="jsonText")
        self.text_edit.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.text_edit.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.text_edit.setTabChangesFocus(True)
        self.error_label = QLabel(objectName="jsonError")
        self.error_label.setWordWrap(True)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.text_edit, 1)
        layout.addWidget(self.error_label)
        self._error = ""
        self._dirty = False  # text changed since the last check
        self._loading = False
        self._timer = QTimer(self, singleShot=True, interval=CHECK_DELAY_MS)
        self._timer.timeout.connect(self._check)
        self.text_edit.textChanged.connect(self._text_changed)

    # -- content -----------------------------------------------------------------------
    def set_value(self, value: Any) -> None:
        self.set_text(pretty(value))

    def set_text(self, text: str) -> None:
        """Replace the text (not a user edit: ``edited`` is not emitted)."""
        self._loading = True
        try:
            self.text_edit.setPlainText(text)
        finally:
            self._loading = False
        self._check()

    def clear(self) -> None:
        """Empty, with nothing to check (no value is being edited)."""
        self._loading = True
        try:
            self.text_edit.clear()
        finally:
            self._loading = False
        self._timer.stop()
        self._dirty = False
        was_valid, self._error = not self._error, ""
        self._mark_line(0)
        self.show_error("")
        if not was_valid:
            self.validityChanged.emit(True)

    def text(self) -> str:
        return self.text_edit.toPlainText()

    def value(self) -> Any:
        """The parsed text; InputError (with line and column) when it is not JSON."""
        return parse_json(self.text(), self.field)

    def error(self) -> str:
        if self._dirty:
            self._check()
        return self._error

    def is_valid(self) -> bool:
        return not self.error()

    def set_read_only(self, read_only: bool) -> None:
        self.text_edit.setReadOnly(read_only)

    def show_error(self, message: str) -> None:
        """Show an error found elsewhere (the service refused the value); cleared by the next edit."""
        self.error_label.setText(message)
        self.error_label.setStyleSheet(f"color: {theme.colors().error};")
        self.error_label.setVisible(bool(message))

    # -- checking ----------------------------------------------------------------------
    def _text_changed(self) -> None:
        self._dirty = True
        self._timer.start()
        if not self._loading:
            self.edited.emit()

    def _check(self) -> None:
        self._timer.stop()
        self._dirty = False
        line = 0
        try:
            self.value()
            error = ""
        except InputError as exc:
            error, line = exc.message, exc.line or 0
        self._mark_line(line)
        self.show_error(error)
        if error != self._error:
            was_valid = not self._error
            self._error = error
            if was_valid != (not error):
                self.validityChanged.emit(not error)

    def _mark_line(self, line: int) -> None:
        if line <= 0:
            self.text_edit.setExtraSelections([])
            return
        block = self.text_edit.document().findBlockByLineNumber(line - 1)
        selection = QTextEdit.ExtraSelection()
        colour = QColor(theme.colors().error)
        colour.setAlpha(50)
        selection.format.setBackground(colour)
        selection.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
        selection.cursor = QTextCursor(block)
        self.text_edit.setExtraSelections([selection])

    def go_to_error(self) -> None:
        """Move the caret to the line the error names (if any)."""
        try:
            self.value()
        except InputError as exc:
            if exc.line:
                block = self.text_edit.document().findBlockByLineNumber(exc.line - 1)
                cursor = QTextCursor(block)
                cursor.movePosition(QTextCursor.MoveOperation.Right, n=max((exc.col or 1) - 1, 0))
                self.text_edit.setTextCursor(cursor)
                self.text_edit.setFocus()


class _Node(QTreeWidgetItem):
    """A tree row holding the (Python) value its children are built from."""

    def __init__(self, parent: QTreeWidgetItem, texts: list[str], value: Any = None, start: int = 0):
        super().__init__(parent, texts)
        self.value = value
        self.start = start  # for a "… more" row: the first child index it stands for
        self.filled = False


class JsonTree(QTreeWidget):
    """A read-only tree of a JSON value whose children are built when first expanded."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setColumnCount(2)
        self.setHeaderLabels(["Key", "Value"])
        self.setUniformRowHeights(True)
        self.itemExpanded.connect(self._fill)
        self.itemDoubleClicked.connect(self._more)

    def set_value(self, value: Any) -> None:
        self.clear()
        root = self.invisibleRootItem()
        if isinstance(value, dict | list):
            self._add_children(root, value, 0)
        else:
            _Node(root, ["", _summary(value)])
        if root.childCount() <= 5:  # a context's few top-level keys: open them
            for i in range(root.childCount()):
                child = root.child(i)
                if child is not None:
                    self.expandItem(child)
        self.resizeColumnToContents(0)

    def _add_children(self, parent: QTreeWidgetItem, value: Any, start: int) -> None:
        pairs = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
        for key, child in pairs[start : start + TREE_PAGE]:
            item = _Node(parent, [str(key), _summary(child)], child)
            if isinstance(child, dict | list) and child:
                QTreeWidgetItem(item, ["…"])  # a placeholder so the expander shows
        rest = len(pairs) - start - TREE_PAGE
        if rest > 0:
            more = _Node(parent, [f"… {rest} more", "(double-click to show them)"], value,
                         start + TREE_PAGE)
            more.filled = True

    def _fill(self, item: QTreeWidgetItem) -> None:
        if not isinstance(item, _Node) or item.filled:
            return
        item.filled = True
        item.takeChildren()
        self._add_children(item, item.value, 0)

    def _more(self, item: QTreeWidgetItem, _column: int) -> None:
        if not isinstance(item, _Node) or not item.start:
            return
        parent = item.parent() or self.invisibleRootItem()
        value, start = item.value, item.start
        parent.removeChild(item)
        self._add_children(parent, value, start)


def _summary(value: Any) -> str:
    if isinstance(value, dict):
        return f"{{…}} {len(value)} keys" if value else "{}"
    if isinstance(value, list):
        return f"[…] {len(value)} items" if value else "[]"
    return compact(value, 300)
