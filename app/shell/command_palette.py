"""Ctrl+Shift+P: every action of the window, found by typing a few letters of it."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction, QKeyEvent
from PySide6.QtWidgets import QDialog, QLineEdit, QListWidget, QListWidgetItem, QVBoxLayout, QWidget


def matches(query: str, text: str) -> int | None:
    """Subsequence match score (lower is better), or None when ``query`` does not match."""
    query, text = query.lower().strip(), text.lower()
    if not query:
        return 0
    if query in text:
        return text.index(query)
    score, at = 0, 0
    for ch in query:
        found = text.find(ch, at)
        if found < 0:
            return None
        score += found - at
        at = found + 1
    return 100 + score


def _label(action: QAction) -> str:
    return action.text().replace("&", "")


class CommandPalette(QDialog):
    """A filter box over the window's actions; Enter triggers the highlighted one."""

    def __init__(self, actions: list[QAction], parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Popup)
        self.setObjectName("commandPalette")
        self.setMinimumWidth(460)
        self._actions = [a for a in actions if a.text() and not a.isSeparator()]
        self.query = QLineEdit(objectName="commandQuery")
        self.query.setPlaceholderText("Type a command…")
        self.list = QListWidget(objectName="commandList")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.query)
        layout.addWidget(self.list)
        self.query.textChanged.connect(self._refill)
        self.query.installEventFilter(self)
        self.list.itemActivated.connect(self._trigger)
        self._refill("")

    def _refill(self, text: str) -> None:
        self.list.clear()
        scored = []
        for action in self._actions:
            score = matches(text, _label(action))
            if score is not None and action.isEnabled():
                scored.append((score, _label(action), action))
        for _, label, action in sorted(scored, key=lambda s: (s[0], s[1])):
            shortcut = action.shortcut().toString()
            item = QListWidgetItem(action.icon(), f"{label}    {shortcut}" if shortcut else label)
            item.setData(Qt.ItemDataRole.UserRole, action)
            self.list.addItem(item)
        if self.list.count():
            self.list.setCurrentRow(0)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.query and isinstance(event, QKeyEvent) and event.type() == QEvent.Type.KeyPress:
            key = event.key()
            if key in (Qt.Key.Key_Down, Qt.Key.Key_Up):
                step = 1 if key == Qt.Key.Key_Down else -1
                row = max(0, min(self.list.count() - 1, self.list.currentRow() + step))
                self.list.setCurrentRow(row)
                return True
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                item = self.list.currentItem()
                if item is not None:
                    self._trigger(item)
                return True
        return super().eventFilter(watched, event)

    def _trigger(self, item: QListWidgetItem) -> None:
        action = item.data(Qt.ItemDataRole.UserRole)
        self.accept()
        if isinstance(action, QAction):
            action.trigger()
