"""The Problems panel: every validation diagnostic of the workspace, click to jump.

Rows are kept per file (``set_problems`` replaces one file's rows, as each file is
re-validated on its own); a proxy filters them by text and severity and sorts them. The
file reported by ``jumpRequested`` is the key the caller used in ``set_problems``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QStyle,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from engine.service.models import DiagnosticInfo

Index = QModelIndex | QPersistentModelIndex
SEVERITY, MESSAGE, FILE, POSITION = range(4)
HEADERS = ("", "Message", "File", "Line:Col")
SORT_ROLE = Qt.ItemDataRole.UserRole + 1


@dataclass(frozen=True)
class Problem:
    file: str  # the caller's key for the file
    line: int
    col: int
    message: str
    severity: str  # error | warning


class ProblemsModel(QAbstractTableModel):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._by_file: dict[str, list[Problem]] = {}
        self._rows: list[Problem] = []
        self._icons: dict[str, QIcon] = {}

    def set_icons(self, icons: dict[str, QIcon]) -> None:
        self._icons = icons

    def problem(self, row: int) -> Problem:
        return self._rows[row]

    def problems(self) -> list[Problem]:
        return list(self._rows)

    def files(self) -> list[str]:
        return list(self._by_file)

    def set_file(self, file: str, problems: list[Problem]) -> None:
        # Reset rather than diff: a file has tens of diagnostics and the proxy re-sorts anyway.
        self.beginResetModel()
        if problems:
            self._by_file[file] = problems
        else:
            self._by_file.pop(file, None)
        self._rows = [p for rows in self._by_file.values() for p in rows]
        self.endResetModel()

    def counts(self) -> tuple[int, int]:
        errors = sum(1 for p in self._rows if p.severity == "error")
        return errors, len(self._rows) - errors

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        p = self._rows[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if column == SEVERITY:
                return None  # the icon says it; the tooltip and accessible text name it
            if column == MESSAGE:
                return p.message
            if column == FILE:
                return Path(p.file).name
            return f"{p.line}:{p.col}"
        if role == Qt.ItemDataRole.DecorationRole and column == SEVERITY:
            return self._icons.get(p.severity)
        if role in (Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.AccessibleTextRole):
            if column == SEVERITY:
                return p.severity
            if column == FILE:
                return p.file
            if column == MESSAGE:
                return p.message
        if role == SORT_ROLE:
            if column == SEVERITY:
                return (0 if p.severity == "error" else 1, p.file, p.line, p.col)
            if column == POSITION:
                return (p.file, p.line, p.col)
            if column == FILE:
                return (p.file, p.line, p.col)
            return (p.message.lower(), p.file, p.line)
        return None


class ProblemsFilter(QSortFilterProxyModel):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._text = ""
        self._errors_only = False
        self.setSortRole(SORT_ROLE)

    def set_text(self, text: str) -> None:
        self.beginFilterChange()  # Qt 6.9+: replaces the deprecated invalidateFilter()
        self._text = text.strip().lower()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_errors_only(self, on: bool) -> None:
        self.beginFilterChange()
        self._errors_only = on
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        model = self.sourceModel()
        assert isinstance(model, ProblemsModel)
        p = model.problem(source_row)
        if self._errors_only and p.severity != "error":
            return False
        return not self._text or self._text in p.message.lower() or self._text in p.file.lower()

    def lessThan(self, left: Index, right: Index) -> bool:
        return bool(left.data(SORT_ROLE) < right.data(SORT_ROLE))


class ProblemsPanel(QWidget):
    countsChanged = Signal(int, int)  # (errors, warnings) over all files, whatever the filter shows
    jumpRequested = Signal(str, int, int)  # (file, line, col): 1-based, as diagnostics carry them

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("problemsPanel")
        self.model = ProblemsModel(self)
        style = self.style()
        self.model.set_icons(
            {
                "error": style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxCritical),
                "warning": style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning),
            }
        )
        self.proxy = ProblemsFilter(self)
        self.proxy.setSourceModel(self.model)

        self.filter_edit = QLineEdit(self)
        self.filter_edit.setObjectName("problemsFilter")
        self.filter_edit.setPlaceholderText("Filter problems (message or file)")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self.proxy.set_text)
        self.errors_only = QCheckBox("Errors only", self)
        self.errors_only.setObjectName("problemsErrorsOnly")
        self.errors_only.toggled.connect(self.proxy.set_errors_only)
        self.summary = QLabel(self)
        self.summary.setObjectName("problemsSummary")

        self.view = QTableView(self)
        self.view.setObjectName("problemsView")
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(POSITION, Qt.SortOrder.AscendingOrder)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setWordWrap(False)
        self.view.verticalHeader().hide()
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(SEVERITY, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(MESSAGE, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(FILE, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(POSITION, QHeaderView.ResizeMode.ResizeToContents)
        self.view.activated.connect(self._activated)  # double-click and Enter

        bar = QHBoxLayout()
        bar.addWidget(self.filter_edit, 1)
        bar.addWidget(self.errors_only)
        bar.addWidget(self.summary)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.view)
        self._counts = (-1, -1)
        self._update_counts()

    def set_problems(self, file: str, diagnostics: list[DiagnosticInfo]) -> None:
        """Replace ``file``'s rows (an empty list clears them)."""
        rows = [Problem(file, d.line, d.col, d.message, d.severity) for d in diagnostics]
        self.model.set_file(file, rows)
        self._update_counts()

    def clear(self, file: str | None = None) -> None:
        """Forget ``file``'s problems, or every file's."""
        for name in [file] if file is not None else self.model.files():
            self.model.set_file(name, [])
        self._update_counts()

    def rename_file(self, old: str, new: str) -> None:
        """A file was renamed: its rows follow it."""
        rows = [p for p in self.model.problems() if p.file == old]
        if rows:
            self.model.set_file(old, [])
            self.model.set_file(new, [Problem(new, p.line, p.col, p.message, p.severity) for p in rows])

    def counts(self) -> tuple[int, int]:
        return self.model.counts()

    def visible_problems(self) -> list[Problem]:
        """The rows as the view shows them (filtered and sorted)."""
        source = [self.proxy.mapToSource(self.proxy.index(r, 0)) for r in range(self.proxy.rowCount())]
        return [self.model.problem(i.row()) for i in source]

    def _activated(self, index: QModelIndex) -> None:
        source = self.proxy.mapToSource(index)
        if source.isValid():
            p = self.model.problem(source.row())
            self.jumpRequested.emit(p.file, p.line, p.col)

    def _update_counts(self) -> None:
        counts = self.model.counts()
        errors, warnings = counts
        self.summary.setText(
            f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
        )
        if counts != self._counts:
            self._counts = counts
            self.countsChanged.emit(errors, warnings)
