"""Widgets and helpers the service panes share (executions, events, DLQ, mocks).

Each is a piece the panes had written alike: the read-only row table, a pipeline filter
combo kept in step with what the service knows, selecting rows by id, the message line
under a pane, and the confirmation asked before a destructive action.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from PySide6.QtCore import QAbstractItemModel, QItemSelectionModel, QModelIndex, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QComboBox,
    QHeaderView,
    QLabel,
    QMessageBox,
    QTableView,
    QWidget,
)

from app import theme

ALL_PIPELINES = "All pipelines"


def setup_table(view: QTableView, model: QAbstractItemModel, widths: Mapping[int, int], *,
                single: bool = False) -> QTableView:
    """``view`` made a read-only table of whole rows over ``model``, columns ``widths`` wide."""
    view.setModel(model)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection if single
                          else QAbstractItemView.SelectionMode.ExtendedSelection)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setAlternatingRowColors(True)
    view.setWordWrap(False)
    view.setShowGrid(False)
    view.verticalHeader().hide()
    header = view.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    header.setStretchLastSection(True)
    for column, width in widths.items():
        view.setColumnWidth(column, width)
    return view


def fill_names(combo: QComboBox, names: Iterable[str]) -> None:
    """List ``names`` (sorted) after "All pipelines", keeping the current choice where it still is."""
    current = combo.currentData()
    combo.blockSignals(True)  # repopulating is not a filter change
    try:
        combo.clear()
        combo.addItem(ALL_PIPELINES, None)
        for name in sorted(names):
            combo.addItem(name, name)
        combo.setCurrentIndex(max(0, combo.findData(current)) if current else 0)
    finally:
        combo.blockSignals(False)


def merge_names(combo: QComboBox, names: set[str]) -> None:
    """Add the ``names`` a filled combo lacks (it keeps the ones it has)."""
    known = {combo.itemData(i) for i in range(1, combo.count())}
    if not names <= known:
        fill_names(combo, known | names)


def selected_ids(view: QTableView, role: int) -> list[str]:
    """The ``role`` values (ids) of the selected rows, top to bottom."""
    rows = sorted(view.selectionModel().selectedRows(), key=lambda i: i.row())
    return [str(index.data(role)) for index in rows]


def select_rows(view: QTableView, indexes: Iterable[QModelIndex]) -> None:
    """Select exactly these rows (indexes of the view's model; invalid ones are passed over).

    The first becomes the current row.
    """
    selection = view.selectionModel()
    selection.clearSelection()
    flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    first = True
    for index in indexes:
        if not index.isValid():
            continue
        if first:
            selection.setCurrentIndex(index, flags)
            first = False
        else:
            selection.select(index, flags)


class MessageLine(QLabel):
    """A pane's line for the outcome of its last action; ``said`` repeats each message."""

    said = Signal(str)

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

    def say(self, text: str, *, error: bool = False) -> None:
        self.setStyleSheet(f"color: {theme.colors().error};" if error else "")
        self.setText(text)
        if text:
            self.said.emit(text)


def confirm(parent: QWidget, name: str, title: str, text: str, yes: str, on_yes: Callable[[], None]) -> None:
    """Ask (window-modal, Cancel by default) and call ``on_yes`` when ``yes`` is pressed."""
    box = QMessageBox(QMessageBox.Icon.Warning, title, text,
                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, parent)
    box.setObjectName(name)
    box.button(QMessageBox.StandardButton.Yes).setText(yes)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    # Deleted when answered (not WA_DeleteOnClose: deleting such a window after its answer hid
    # its parent crashes PySide).
    box.finished.connect(box.deleteLater)

    def answered(button: QAbstractButton) -> None:
        if box.standardButton(button) == QMessageBox.StandardButton.Yes:
            on_yes()

    box.buttonClicked.connect(answered)
    box.open()
