"""The DLQ table's model and the text filter over it.

The service lists at most 1000 entries per call (newest first, filtered by pipeline and
status there); the text filter runs here, over what is loaded: id, pipeline, step, error,
execution ids and the payload's JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final

from PySide6.QtCore import QObject, QSortFilterProxyModel, Qt
from PySide6.QtGui import QColor

from app import theme
from app.tables import Index, KeyedTableModel
from engine.service.models import DlqEntry

COLUMNS: Final = ("Status", "Pipeline", "Step", "Error", "Attempts", "Created", "Execution")
STATUS, PIPELINE, STEP, ERROR, ATTEMPTS, CREATED, EXECUTION = range(len(COLUMNS))
ID_ROLE: Final = Qt.ItemDataRole.UserRole + 1  # the entry id of a row
SORT_ROLE: Final = Qt.ItemDataRole.UserRole + 2  # a sortable value of a cell
SEARCH_ROLE: Final = Qt.ItemDataRole.UserRole + 3  # the lower-case text the filter searches
ERROR_PREVIEW: Final = 160


def when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else ""


def _status_color(status: str) -> QColor | None:
    c = theme.colors()
    colour = {"pending": c.warning, "retrying": c.accent, "resolved": c.ok, "discarded": c.muted}.get(status)
    return QColor(colour) if colour else None


class DlqTableModel(KeyedTableModel[DlqEntry]):
    COLUMNS = COLUMNS

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._search: list[str] = []  # by row: what the filter searches

    def reset(self, entries: Iterable[DlqEntry]) -> None:
        listed = list(entries)
        self._search = [_search_text(e) for e in listed]  # ready when the proxy filters the new rows
        super().reset(listed)

    def replace(self, entry: DlqEntry) -> None:
        """Show a changed entry in place (a resolve, a discard)."""
        row = self.row_of(entry.id)
        if row >= 0:
            self._search[row] = _search_text(entry)
        super().replace(entry)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        e = self._items[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return _display(e, col)
        if role == ID_ROLE:
            return e.id
        if role == SEARCH_ROLE:
            return self._search[index.row()]
        if role == SORT_ROLE:
            if col == CREATED:
                return e.created
            if col == ATTEMPTS:
                return e.retry_count
            return _display(e, col)
        if role == Qt.ItemDataRole.ForegroundRole:
            if col == STATUS:
                return _status_color(e.status)
            if col == EXECUTION and e.execution_id:
                return QColor(theme.colors().accent)
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == ERROR and e.error:
                return f"{e.error_type or 'error'}: {e.error[:2000]}"
            if col == EXECUTION and e.execution_id:
                return f"Open the failed execution {e.execution_id} (double-click)"
            if col == ATTEMPTS:
                return f"{e.retry_count} of {e.max_retries} retries used"
        return None


def _display(e: DlqEntry, col: int) -> str:
    if col == STATUS:
        return e.status
    if col == PIPELINE:
        return e.pipeline
    if col == STEP:
        return e.step or ""
    if col == ERROR:
        text = (e.error or "").replace("\n", " ")
        return text if len(text) <= ERROR_PREVIEW else text[: ERROR_PREVIEW - 1] + "…"
    if col == ATTEMPTS:
        return f"{e.retry_count}/{e.max_retries}"
    if col == CREATED:
        return when(e.created)
    if col == EXECUTION:
        return (e.execution_id or "")[:12]
    return ""


def _search_text(e: DlqEntry) -> str:
    payload = json.dumps(e.payload, ensure_ascii=False, default=str)[:20_000]
    return " ".join(filter(None, (e.id, e.pipeline, e.step, e.error, e.error_type, e.execution_id,
                                  e.last_retry_id, payload))).lower()


class DlqFilterProxy(QSortFilterProxyModel):
    """Rows whose text holds every word of the search (case-insensitive)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._words: list[str] = []
        self.setSortRole(SORT_ROLE)

    def set_text(self, text: str) -> None:
        words = text.lower().split()
        if words == self._words:
            return
        if hasattr(self, "beginFilterChange"):  # Qt 6.9+
            self.beginFilterChange()
            self._words = words
            self.endFilterChange()
        else:
            self._words = words
            self.invalidateRowsFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        if not self._words:
            return True
        model = self.sourceModel()
        haystack = str(model.data(model.index(source_row, 0, source_parent), SEARCH_ROLE))
        return all(word in haystack for word in self._words)
