"""The Diff pane: two executions side by side, step by step, and where they part ways.

The service aligns the step runs (``diff(a, b)``: by path, iteration, attempt and
occurrence) and compares them; this pane only shows the result: one row per aligned step
with each side's status, route and duration and the timing delta, rows that differ tinted
(a status or route that differs in its own colour), the first divergence marked with a
button to jump to it, and below the table the JSON changes of the selected step's input and
output (or, with no step selected, of the trigger input and the execution's output).

Durations and markers such as "reused" or "mocked" are shown, never counted as a difference
(a replay reuses outputs in no time): the service decides what diverges.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QFontDatabase
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app import asyncqt, theme
from app.debugger.json_edit import compact
from app.selection import SelectionHub
from app.stale import Generation
from engine.service.errors import ServiceError
from engine.service.models import ExecutionDiff, StepDiff, ValueChange
from engine.service.protocol import StudioService

Index = QModelIndex | QPersistentModelIndex
STEP, STATUS_A, STATUS_B, ROUTE_A, ROUTE_B, DURATION_A, DURATION_B, DELTA = range(8)
HEADERS = ("Step", "Status A", "Status B", "Route A", "Route B", "Duration A", "Duration B", "Δ")
DIVERGENCE_MARK = "▶ "
KIND_ROLE = Qt.ItemDataRole.UserRole + 1  # "same" | "changed" | "only_a" | "only_b"
SIZE_TO_CONTENTS_ROWS = 2000


def step_label(step: StepDiff) -> str:
    label = step.path
    if step.iteration:
        label += f" [{step.iteration}]"
    if step.attempt > 1:
        label += f" attempt {step.attempt}"
    if step.occurrence:
        label += f" (run {step.occurrence + 1})"
    return label


def kind(step: StepDiff) -> str:
    if step.status_a is None:
        return "only_b"
    if step.status_b is None:
        return "only_a"
    return "same" if step.same else "changed"


def duration_text(ms: float | None) -> str:
    if ms is None:
        return ""
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.1f} ms"


def delta_text(step: StepDiff) -> str:
    if step.duration_ms_a is None or step.duration_ms_b is None:
        return ""
    delta = step.duration_ms_b - step.duration_ms_a
    if abs(delta) < 0.05:
        return "0.0 ms"  # not "-0.0"
    return f"{delta / 1000:+.2f} s" if abs(delta) >= 1000 else f"{delta:+.1f} ms"


def _tint(colour: str, alpha: int = 45) -> QBrush:
    c = QColor(colour)
    c.setAlpha(alpha)
    return QBrush(c)


class DiffModel(QAbstractTableModel):
    """The aligned steps of one ExecutionDiff."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.steps: list[StepDiff] = []
        self.divergence = -1  # row of the first divergence

    def set_diff(self, diff: ExecutionDiff | None) -> None:
        self.beginResetModel()
        self.steps = list(diff.steps) if diff is not None else []
        self.divergence = -1
        first = diff.first_divergence if diff is not None else None
        if first is not None:
            for row, step in enumerate(self.steps):
                if (step.path, step.iteration, step.attempt, step.occurrence) == (
                        first.path, first.iteration, first.attempt, first.occurrence):
                    self.divergence = row
                    break
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt API
        return 0 if parent.isValid() else len(self.steps)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt API
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        step = self.steps[index.row()]
        column = index.column()
        c = theme.colors()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(step, column, index.row())
        if role == KIND_ROLE:
            return kind(step)
        if role == Qt.ItemDataRole.BackgroundRole:
            tints = {"changed": c.warning, "only_a": c.error, "only_b": c.ok}
            colour = tints.get(kind(step))
            return _tint(colour) if colour else None
        if role == Qt.ItemDataRole.ForegroundRole:
            if column in (STATUS_A, STATUS_B) and step.status_a != step.status_b:
                return QBrush(QColor(c.error))
            if column in (ROUTE_A, ROUTE_B) and step.route_a != step.route_b:
                return QBrush(QColor(c.error))
            if column in (DURATION_A, DURATION_B, DELTA):
                return QBrush(QColor(c.muted))
            return None
        if role == Qt.ItemDataRole.FontRole:
            if index.row() == self.divergence or (
                    column in (STATUS_A, STATUS_B, ROUTE_A, ROUTE_B) and _differs(step, column)):
                font = QFont()
                font.setBold(True)
                return font
            return None
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(step, index.row())
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (DURATION_A, DURATION_B, DELTA):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _text(self, step: StepDiff, column: int, row: int) -> str:
        if column == STEP:
            return (DIVERGENCE_MARK if row == self.divergence else "") + step_label(step)
        if column == STATUS_A:
            return _status(step.status_a, step.flags_a)
        if column == STATUS_B:
            return _status(step.status_b, step.flags_b)
        if column == ROUTE_A:
            return step.route_a or ""
        if column == ROUTE_B:
            return step.route_b or ""
        if column == DURATION_A:
            return duration_text(step.duration_ms_a)
        if column == DURATION_B:
            return duration_text(step.duration_ms_b)
        return delta_text(step)

    def _tooltip(self, step: StepDiff, row: int) -> str:
        lines = []
        if row == self.divergence:
            lines.append("The first divergence")
        k = kind(step)
        lines.append({"same": "Same status, route and output", "changed": "Differs",
                      "only_a": "Ran only in A", "only_b": "Ran only in B"}[k])
        if step.output_changes:
            lines.append(f"{len(step.output_changes)} output change(s)")
        if step.input_changes:
            lines.append(f"{len(step.input_changes)} input change(s)")
        return "\n".join(lines)


def _status(status: str | None, flags: list[str]) -> str:
    if status is None:
        return "—"
    return f"{status} · {', '.join(flags)}" if flags else status


def _differs(step: StepDiff, column: int) -> bool:
    if column in (STATUS_A, STATUS_B):
        return step.status_a != step.status_b
    return step.route_a != step.route_b


class DiffPane(QWidget):
    compared = Signal(object)  # ExecutionDiff | None, after each compare
    stepSelected = Signal(str, str, str)  # (execution a, execution b, step path)

    def __init__(self, hub: SelectionHub, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("diffPane")
        self.hub = hub
        self.service: StudioService | None = None
        self._diff: ExecutionDiff | None = None
        self._generation = Generation()

        self.header = QLabel("Choose two executions to compare, or a replay to compare with its original",
                             objectName="diffHeader")
        self.header.setWordWrap(True)
        self.header.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary = QLabel(objectName="diffSummary")
        self.summary.setWordWrap(True)
        self.jump_button = QPushButton("Jump to first divergence", objectName="jumpToDivergence")
        self.jump_button.setEnabled(False)
        self.jump_button.clicked.connect(self.jump_to_first_divergence)
        self.definition_note = QLabel(objectName="diffDefinition")
        self.definition_note.setWordWrap(True)
        self.definition_button = QPushButton("Show definition diff", objectName="diffShowDefinition")
        self.definition_button.setCheckable(True)
        self.definition_text = QPlainTextEdit(objectName="diffDefinitionText")
        self.definition_text.setReadOnly(True)
        self.definition_text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.definition_text.hide()
        self.definition_button.toggled.connect(self.definition_text.setVisible)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.jump_button)
        definition = QHBoxLayout()
        definition.addWidget(self.definition_note, 1)
        definition.addWidget(self.definition_button)

        self.model = DiffModel(self)
        self.table = QTableView(objectName="diffTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setSectionResizeMode(STEP, QHeaderView.ResizeMode.Stretch)
        self.table.selectionModel().selectionChanged.connect(self._row_selected)

        self.changes_title = QLabel(objectName="diffChangesTitle")
        self.changes = QTableWidget(0, 4, objectName="diffChanges")
        self.changes.setHorizontalHeaderLabels(["Of", "Path", "A", "B"])
        self.changes.verticalHeader().hide()
        self.changes.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.changes.setWordWrap(False)
        header = self.changes.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        detail = QWidget()
        detail_layout = QVBoxLayout(detail)
        detail_layout.setContentsMargins(0, 0, 0, 0)
        detail_layout.addWidget(self.changes_title)
        detail_layout.addWidget(self.changes, 1)

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(detail)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.header)
        layout.addLayout(top)
        layout.addLayout(definition)
        layout.addWidget(self.definition_text)
        layout.addWidget(splitter, 1)
        self._show(None)

    def set_service(self, service: StudioService | None) -> None:
        self.service = service
        self._generation.invalidate()
        self._show(None)

    # -- comparing ---------------------------------------------------------------------
    def diff(self) -> ExecutionDiff | None:
        return self._diff

    async def compare(self, a_id: str, b_id: str) -> ExecutionDiff | None:
        """Compare execution ``b_id`` with ``a_id``; an error is shown in the pane."""
        if self.service is None:
            return None
        generation = self._generation.next()
        self.header.setText(f"Comparing {a_id[:12]} with {b_id[:12]}…")
        try:
            diff = await self.service.diff(a_id, b_id)
        except ServiceError as exc:
            if self._generation.is_current(generation):
                self._show(None, f"Cannot compare {a_id[:12]} with {b_id[:12]}: {exc}")
            return None
        if not self._generation.is_current(generation):
            return None  # a newer comparison was asked for meanwhile
        self._show(diff)
        return diff

    async def compare_with_original(self, execution_id: str) -> ExecutionDiff | None:
        """Compare a replay (B) with the execution it replayed (A)."""
        if self.service is None:
            return None
        try:
            summary = await self.service.get_execution(execution_id)
        except ServiceError as exc:
            self._show(None, str(exc))
            return None
        if not summary.replay_of:
            self._show(None, f"Execution {execution_id[:12]} is not a replay: there is no original "
                             "to compare it with")
            return None
        return await self.compare(summary.replay_of, execution_id)

    def compare_selected_with_original(self) -> None:
        """"Compare with original" for the execution selected everywhere (the hub's)."""
        if self.hub.execution_id:
            asyncqt.spawn(self.compare_with_original(self.hub.execution_id), what="The comparison")

    # -- showing -----------------------------------------------------------------------
    def _show(self, diff: ExecutionDiff | None, error: str = "") -> None:
        self._diff = diff
        self.model.set_diff(diff)
        c = theme.colors()
        if diff is None:
            if error:
                self.header.setText(error)
                self.header.setStyleSheet(f"color: {c.error};")
            self.summary.setText("")
            self.jump_button.setEnabled(False)
            self.definition_note.hide()
            self.definition_button.hide()
            self.definition_text.hide()
            self._show_changes([], "")
            self.compared.emit(None)
            return
        self.header.setStyleSheet("")
        pipeline = diff.pipeline_a if diff.pipeline_a == diff.pipeline_b else \
            f"{diff.pipeline_a} / {diff.pipeline_b}"
        self.header.setText(f"<b>{pipeline}</b>: A <code>{diff.a[:12]}</code> ({diff.status_a}) "
                            f"↔ B <code>{diff.b[:12]}</code> ({diff.status_b})")
        s = diff.summary
        text = (f"{s.get('same', 0)} same, {s.get('changed', 0)} changed, "
                f"{s.get('only_a', 0)} only in A, {s.get('only_b', 0)} only in B")
        if diff.first_divergence is None:
            text += " · no divergence"
        else:
            text += f" · first divergence at <b>{step_label(diff.first_divergence)}</b>"
        self.summary.setText(text)
        self.jump_button.setEnabled(self.model.divergence >= 0)
        self.definition_note.setVisible(diff.definition_changed)
        self.definition_button.setVisible(diff.definition_changed and bool(diff.definition_change))
        if diff.definition_changed:
            self.definition_note.setText("Definition changed: B ran another version of the pipeline "
                                         "than A")
            self.definition_note.setStyleSheet(f"color: {c.warning};")
            self.definition_text.setPlainText("\n".join(diff.definition_change))
        self.definition_text.setVisible(diff.definition_changed and self.definition_button.isChecked())
        if len(diff.steps) <= SIZE_TO_CONTENTS_ROWS:  # measuring every row of a huge diff costs
            for column in range(STEP + 1, len(HEADERS)):
                self.table.resizeColumnToContents(column)
        self._show_overall_changes()
        self.compared.emit(diff)

    def _show_overall_changes(self) -> None:
        diff = self._diff
        if diff is None:
            return
        rows = [("trigger", ch) for ch in diff.trigger_changes]
        rows += [("output", ch) for ch in diff.output_changes]
        self._show_changes(rows, "Trigger input and execution output" if rows else
                           "The trigger input and the execution output are equal")

    def _show_changes(self, rows: list[tuple[str, ValueChange]], title: str) -> None:
        self.changes_title.setText(title)
        self.changes.setRowCount(len(rows))
        for row, (where, change) in enumerate(rows):
            cells = (where, change.path or "/", compact(change.value_a), compact(change.value_b))
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column >= 2:
                    item.setToolTip(compact(change.value_a if column == 2 else change.value_b, 4000))
                self.changes.setItem(row, column, item)

    def selected_step(self) -> StepDiff | None:
        rows = self.table.selectionModel().selectedRows()
        return self.model.steps[rows[0].row()] if rows else None

    def select_row(self, row: int) -> None:
        index = self.model.index(row, 0)
        self.table.selectRow(row)
        self.table.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)

    def jump_to_first_divergence(self) -> int:
        """Select and show the first divergence; its row (-1 when there is none)."""
        row = self.model.divergence
        if row >= 0:
            self.select_row(row)
            self.table.setFocus()
        return row

    def _row_selected(self, *_args: object) -> None:
        step = self.selected_step()
        if step is None or self._diff is None:
            self._show_overall_changes()
            return
        rows = [("input", ch) for ch in step.input_changes] + [("output", ch) for ch in step.output_changes]
        if rows:
            title = f"Changes of {step_label(step)}"
        elif kind(step) in ("only_a", "only_b"):
            title = f"{step_label(step)} ran only in {'A' if kind(step) == 'only_a' else 'B'}"
        else:
            title = f"{step_label(step)}: input and output are equal"
        self._show_changes(rows, title)
        self.stepSelected.emit(self._diff.a, self._diff.b, step.path)
