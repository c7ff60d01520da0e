"""The Breakpoints panel: every breakpoint of the connected service, and "pause new runs".

Breakpoints live in the service (the store), not in the studio: the panel lists
``list_breakpoints()`` and changes them through the service, then reloads, so what it shows
is what the engine stops at. Hit counts go up while executions run; the panel follows the
live ``debug.paused`` events to show them. ``breakpointsChanged`` carries the whole list
after every reload, for the editor to draw its breakpoint dots.

A condition is a jq program (``.qty > 10``) or a ``{{ }}`` template; its syntax is checked
as it is typed, with the same jq the engine uses, and a breakpoint with a condition that
does not compile is never sent. The service has no "edit condition": editing one sets a new
breakpoint and removes the old one (in that order, so a refused condition loses nothing).
"""

from __future__ import annotations

import asyncio

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app import asyncqt, theme
from app.debugger.live import EventFollower
from app.editor.jq_field import PROGRAM, JqField, check_text
from app.selection import SelectionHub
from app.stale import Generation
from engine.service.errors import ServiceError
from engine.service.models import Breakpoint, EventType, PipelineInfo
from engine.service.protocol import StudioService

ENABLED, PIPELINE, STEP, CONDITION, HITS = range(5)
HEADERS = ("On", "Pipeline", "Step", "Condition", "Hits")
_ID_ROLE = Qt.ItemDataRole.UserRole + 1
HIT_REFRESH_MS = 300  # hit counts: one reload per burst of pauses


def condition_error(condition: str | None) -> str:
    """Why ``condition`` cannot be a breakpoint condition ("" when it can; empty means none)."""
    if condition is None or not condition.strip():
        return ""
    return check_text(condition.strip(), PROGRAM) or ""


class BreakpointsPanel(QWidget):
    breakpointsChanged = Signal(list)  # list[Breakpoint], after every reload

    def __init__(self, hub: SelectionHub, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("breakpointsPanel")
        self.hub = hub
        self.service: StudioService | None = None
        self._breakpoints: list[Breakpoint] = []
        self._pipelines: list[PipelineInfo] = []
        self._pause_new: set[str] = set()  # pipelines we asked to pause (the service has no getter)
        self._filling = False
        self._generation = Generation()  # a reload answered after a newer one started is dropped

        self.pipeline_combo = QComboBox(objectName="bpPipeline")
        self.pipeline_combo.setMinimumContentsLength(12)
        self.step_combo = QComboBox(objectName="bpStep")
        self.step_combo.setEditable(True)  # nested paths ("fan-out/profile") are typed
        self.step_combo.setMinimumContentsLength(12)
        step_edit = self.step_combo.lineEdit()
        if step_edit is not None:
            step_edit.setPlaceholderText("step or path")
        self.condition = JqField(PROGRAM)
        self.condition.setObjectName("bpCondition")
        self.condition.setPlaceholderText("optional condition, e.g. .qty > 10")
        self.add_button = QPushButton("Add", objectName="bpAdd")
        self.add_button.setToolTip("Stop before this step (when the condition holds)")
        form = QHBoxLayout()
        form.addWidget(self.pipeline_combo, 2)
        form.addWidget(self.step_combo, 2)
        form.addWidget(self.condition, 3)
        form.addWidget(self.add_button)

        self.table = QTableWidget(0, len(HEADERS), objectName="bpTable")
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                   | QAbstractItemView.EditTrigger.EditKeyPressed)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(CONDITION, QHeaderView.ResizeMode.Stretch)

        self.remove_button = QPushButton("Remove", objectName="bpRemove")
        self.remove_button.setEnabled(False)
        self.pause_new = QCheckBox("Pause new runs of this pipeline", objectName="bpPauseNew")
        self.pause_new.setToolTip("Every run of the pipeline chosen above stops before its first step")
        self.error_label = QLabel(objectName="bpError")
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        bottom = QHBoxLayout()
        bottom.addWidget(self.remove_button)
        bottom.addStretch(1)
        bottom.addWidget(self.pause_new)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(form)
        layout.addWidget(self.error_label)
        layout.addWidget(self.table, 1)
        layout.addLayout(bottom)

        self.pipeline_combo.currentIndexChanged.connect(self._pipeline_chosen)
        self.condition.errorChanged.connect(lambda _e: self._update_buttons())
        self.condition.textChanged.connect(lambda _t: self._update_buttons())
        self.step_combo.editTextChanged.connect(lambda _t: self._update_buttons())
        self.add_button.clicked.connect(self._add_clicked)
        self.condition.returnPressed.connect(self._add_clicked)
        self.remove_button.clicked.connect(self._remove_clicked)
        self.pause_new.toggled.connect(self._pause_new_toggled)
        self.table.itemChanged.connect(self._item_changed)
        self.table.itemSelectionChanged.connect(self._update_buttons)

        self._hits_timer = QTimer(self, singleShot=True, interval=HIT_REFRESH_MS)
        self._hits_timer.timeout.connect(lambda: asyncqt.spawn(self.refresh(), what="Loading breakpoints"))
        self._follower = EventFollower(frozenset({EventType.DEBUG_PAUSED}), self)
        self._follower.matched.connect(lambda *_: self._hits_timer.start())
        self._follower.reconnected.connect(self._hits_timer.start)
        self._update_buttons()

    # -- service -----------------------------------------------------------------------
    def set_service(self, service: StudioService | None) -> None:
        """Show ``service``'s breakpoints (None: nothing); starts the reloads in the background."""
        self.service = service
        self._pause_new.clear()
        self._breakpoints = []
        self._fill()
        self._follower.follow(service)
        if service is not None:
            asyncqt.spawn(self.reload_all(), what="Loading breakpoints")

    def shutdown(self) -> None:
        """Stop following live events (the window is closing)."""
        self._follower.stop()

    async def reload_all(self) -> None:
        await asyncio.gather(self.refresh_pipelines(), self.refresh())

    async def refresh_pipelines(self) -> None:
        """Reload the pipeline choices (call after files were loaded or saved)."""
        if self.service is None:
            return
        pipelines = await self.service.list_pipelines()
        current = self.pipeline_combo.currentText()
        self._pipelines = sorted(pipelines, key=lambda p: p.name)
        self.pipeline_combo.blockSignals(True)
        self.pipeline_combo.clear()
        self.pipeline_combo.addItems([p.name for p in self._pipelines])
        index = self.pipeline_combo.findText(current)
        self.pipeline_combo.setCurrentIndex(index if index >= 0 else 0)
        self.pipeline_combo.blockSignals(False)
        self._pipeline_chosen()

    async def refresh(self) -> list[Breakpoint]:
        """Reload the breakpoints from the service; emits ``breakpointsChanged``."""
        if self.service is None:
            return []
        generation = self._generation.next()
        breakpoints = await self.service.list_breakpoints()
        if self._generation.is_current(generation):
            self._breakpoints = breakpoints
            self._fill()
            self.breakpointsChanged.emit(list(breakpoints))
        return breakpoints

    # -- what the rest of the studio calls -----------------------------------------------
    def breakpoints(self, pipeline: str | None = None) -> list[Breakpoint]:
        return [b for b in self._breakpoints if pipeline is None or b.pipeline == pipeline]

    async def add_breakpoint(self, pipeline: str, step: str,
                             condition: str | None = None) -> Breakpoint | None:
        """Set a breakpoint; a bad condition or an unknown step is shown here, not raised."""
        if self.service is None:
            return None
        error = condition_error(condition)
        if error:
            self._show_error(f"The condition does not compile: {error}")
            return None
        try:
            bp = await self.service.set_breakpoint(pipeline, step, (condition or "").strip() or None)
        except ServiceError as exc:
            self._show_error(str(exc))
            return None
        self._show_error("")
        await self.refresh()
        return bp

    async def toggle_breakpoint(self, pipeline: str, step_path: str,
                                condition: str | None = None) -> Breakpoint | None:
        """Set a breakpoint on the step, or remove the ones it has: the new one, or None."""
        if self.service is None:
            return None
        existing = [b for b in await self.service.list_breakpoints()
                    if b.pipeline == pipeline and b.step == step_path]
        if not existing:
            return await self.add_breakpoint(pipeline, step_path, condition)
        try:
            for bp in existing:
                await self.service.remove_breakpoint(bp.id)
        except ServiceError as exc:
            self._show_error(str(exc))
        await self.refresh()
        return None

    async def remove_breakpoint(self, breakpoint_id: str) -> None:
        if self.service is None:
            return
        try:
            await self.service.remove_breakpoint(breakpoint_id)
        except ServiceError as exc:
            self._show_error(str(exc))
        await self.refresh()

    async def set_enabled(self, breakpoint_id: str, enabled: bool) -> None:
        if self.service is None:
            return
        try:
            await self.service.enable_breakpoint(breakpoint_id, enabled)
        except ServiceError as exc:
            self._show_error(str(exc))
        await self.refresh()

    async def set_condition(self, breakpoint_id: str, condition: str | None) -> Breakpoint | None:
        """Replace a breakpoint's condition (a new breakpoint, then the old one removed)."""
        old = next((b for b in self._breakpoints if b.id == breakpoint_id), None)
        if old is None or self.service is None:
            return None
        bp = await self.add_breakpoint(old.pipeline, old.step, condition)
        if bp is None:
            self._fill()  # the cell goes back to the old condition
            return None
        try:
            if not old.enabled:
                bp = await self.service.enable_breakpoint(bp.id, False)
            await self.service.remove_breakpoint(old.id)
        except ServiceError as exc:
            self._show_error(str(exc))
        await self.refresh()
        return bp

    async def set_pause_new_runs(self, pipeline: str, enabled: bool) -> None:
        if self.service is None:
            return
        try:
            await self.service.pause_new_runs(pipeline, enabled)
        except ServiceError as exc:
            self._show_error(str(exc))
            enabled = not enabled
        else:
            self._show_error("")
        (self._pause_new.add if enabled else self._pause_new.discard)(pipeline)
        if self.pipeline_combo.currentText() == pipeline:
            self.pause_new.blockSignals(True)
            self.pause_new.setChecked(enabled)
            self.pause_new.blockSignals(False)

    def pausing_new_runs(self) -> set[str]:
        return set(self._pause_new)

    # -- the table ---------------------------------------------------------------------
    def _fill(self) -> None:
        self._filling = True
        selected = self._selected_ids()
        self.table.setRowCount(len(self._breakpoints))
        muted = theme.colors().muted
        for row, bp in enumerate(self._breakpoints):
            on = QTableWidgetItem()
            on.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable
                        | Qt.ItemFlag.ItemIsSelectable)
            on.setCheckState(Qt.CheckState.Checked if bp.enabled else Qt.CheckState.Unchecked)
            on.setToolTip("Stop here" if bp.enabled else "Disabled: runs go on")
            cells = [on, QTableWidgetItem(bp.pipeline), QTableWidgetItem(bp.step),
                     QTableWidgetItem(bp.condition or ""), QTableWidgetItem(str(bp.hit_count))]
            for column, item in enumerate(cells):
                item.setData(_ID_ROLE, bp.id)
                if column not in (ENABLED, CONDITION):
                    item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                if not bp.enabled:
                    item.setForeground(QBrush(QColor(muted)))
                self.table.setItem(row, column, item)
            cells[CONDITION].setToolTip("Double-click to edit the condition (empty: always stop)")
            cells[HITS].setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        for row, bp in enumerate(self._breakpoints):
            if bp.id in selected:
                self.table.selectRow(row)
        self._filling = False
        self._update_buttons()

    def _selected_ids(self) -> set[str]:
        return {str(item.data(_ID_ROLE)) for item in self.table.selectedItems()}

    def _item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling:
            return
        breakpoint_id = str(item.data(_ID_ROLE))
        bp = next((b for b in self._breakpoints if b.id == breakpoint_id), None)
        if bp is None:
            return
        if item.column() == ENABLED:
            enabled = item.checkState() == Qt.CheckState.Checked
            if enabled != bp.enabled:
                asyncqt.spawn(self.set_enabled(bp.id, enabled), what="Enabling the breakpoint")
        elif item.column() == CONDITION:
            text = item.text().strip() or None
            if text != bp.condition:
                asyncqt.spawn(self.set_condition(bp.id, text), what="Changing the condition")

    # -- the form ----------------------------------------------------------------------
    def _pipeline_chosen(self, _index: int = -1) -> None:
        name = self.pipeline_combo.currentText()
        info = next((p for p in self._pipelines if p.name == name), None)
        step = self.step_combo.currentText()
        self.step_combo.blockSignals(True)
        self.step_combo.clear()
        if info is not None:
            self.step_combo.addItems([str(s.get("name", "")) for s in info.steps])
        self.step_combo.setEditText(step if step and self.step_combo.findText(step) >= 0
                                    else self.step_combo.itemText(0))
        self.step_combo.blockSignals(False)
        self.pause_new.blockSignals(True)
        self.pause_new.setChecked(name in self._pause_new)
        self.pause_new.setEnabled(bool(name))
        self.pause_new.blockSignals(False)
        self._update_buttons()

    def _update_buttons(self) -> None:
        error = condition_error(self.condition.text())
        ready = bool(self.pipeline_combo.currentText() and self.step_combo.currentText().strip())
        self.add_button.setEnabled(self.service is not None and ready and not error)
        self.add_button.setToolTip(f"The condition does not compile: {error}" if error
                                   else "Stop before this step (when the condition holds)")
        self.remove_button.setEnabled(bool(self._selected_ids()))

    def _add_clicked(self) -> None:
        if not self.add_button.isEnabled():
            return
        pipeline, step = self.pipeline_combo.currentText(), self.step_combo.currentText().strip()
        condition = self.condition.text()

        async def add() -> None:
            if await self.add_breakpoint(pipeline, step, condition) is not None:
                self.condition.clear()

        asyncqt.spawn(add(), what="Setting the breakpoint")

    def _remove_clicked(self) -> None:
        ids = self._selected_ids()

        async def remove() -> None:
            for breakpoint_id in ids:
                await self.remove_breakpoint(breakpoint_id)

        asyncqt.spawn(remove(), what="Removing breakpoints")

    def _pause_new_toggled(self, on: bool) -> None:
        pipeline = self.pipeline_combo.currentText()
        if pipeline:
            asyncqt.spawn(self.set_pause_new_runs(pipeline, on), what="Pausing new runs")

    def _show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.setStyleSheet(f"color: {theme.colors().error};")
        self.error_label.setVisible(bool(message))

