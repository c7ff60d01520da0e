"""The mocks table's model: one row per mock, its Enabled cell a checkbox.

Ticking the checkbox does not change the row by itself: the model emits
:attr:`MocksModel.enabledToggled` and the panel asks the service, then shows the answer, so
the table never claims a state the service refused. Rows with unsaved edits in the panel's
editor are marked (``set_drafts``).
"""

from __future__ import annotations

import json
from typing import Any, Final

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QFont

from app import theme
from app.tables import Index, KeyedTableModel
from engine.service.models import Mock

COLUMNS: Final = ("On", "Pipeline", "Step", "Mode", "Value", "Delay", "Hits", "From execution")
ENABLED, PIPELINE, STEP, MODE, VALUE, DELAY, HITS, SOURCE = range(len(COLUMNS))
ID_ROLE: Final = Qt.ItemDataRole.UserRole + 1
PREVIEW: Final = 120


def mock_value(mock: Mock) -> Any:
    """What the value editor shows for ``mock``: the error for an error mock, else the output."""
    return mock.error if mock.mode == "error" else mock.output


def compact(value: Any, limit: int = PREVIEW) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class MocksModel(KeyedTableModel[Mock]):
    COLUMNS = COLUMNS
    enabledToggled = Signal(str, bool)  # (mock id, wanted state)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._drafts: set[str] = set()

    def set_drafts(self, ids: set[str]) -> None:
        changed = ids ^ self._drafts
        self._drafts = set(ids)
        for mock_id in changed:
            row = self.row_of(mock_id)
            if row >= 0:
                self.dataChanged.emit(self.index(row, STEP), self.index(row, STEP))

    def flags(self, index: Index) -> Qt.ItemFlag:
        base = super().flags(index)
        if index.isValid() and index.column() == ENABLED:
            return base | Qt.ItemFlag.ItemIsUserCheckable
        return base

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        m = self._items[index.row()]
        col = index.column()
        if role == ID_ROLE:
            return m.id
        if role == Qt.ItemDataRole.CheckStateRole and col == ENABLED:
            return Qt.CheckState.Checked if m.enabled else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.DisplayRole:
            return _display(m, col, m.id in self._drafts)
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == VALUE:
                return compact(mock_value(m), 2000)
            if col == ENABLED:
                return "The step is answered by this mock" if m.enabled else "Off: the step runs"
            if col == STEP and m.id in self._drafts:
                return "Unsaved changes in the editor"
        if role == Qt.ItemDataRole.ForegroundRole:
            if not m.enabled:
                return QColor(theme.colors().muted)
            if col == MODE and m.mode == "error":
                return QColor(theme.colors().error)
        if role == Qt.ItemDataRole.FontRole and col == STEP and m.id in self._drafts:
            font = QFont()
            font.setItalic(True)
            return font
        return None

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if index.isValid() and index.column() == ENABLED and role == Qt.ItemDataRole.CheckStateRole:
            wanted = Qt.CheckState(value) == Qt.CheckState.Checked
            m = self._items[index.row()]
            if wanted != m.enabled:
                self.enabledToggled.emit(m.id, wanted)
            return False  # the row changes when the service has answered
        return False


def _display(m: Mock, col: int, draft: bool) -> str:
    if col == PIPELINE:
        return m.pipeline
    if col == STEP:
        return m.step + (" ✎" if draft else "")
    if col == MODE:
        return m.mode
    if col == VALUE:
        return compact(mock_value(m))
    if col == DELAY:
        return f"{m.delay_ms:g} ms" if m.delay_ms else ""
    if col == HITS:
        return str(m.hit_count)
    if col == SOURCE:
        return (m.source_execution_id or "")[:12]
    return ""
