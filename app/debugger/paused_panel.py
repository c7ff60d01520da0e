"""The paused executions: which runs wait at a breakpoint, and which one the debugger is on.

The list is ``service.paused()``, reloaded whenever the live stream says an execution paused,
resumed or ended (so a pause started from another window or by a server shows up here).
One pause is *current*: the context editor shows it and the debug actions resume it. When
it is resumed with "continue" the next paused execution becomes current, so several are
handled one after another; after "step over" the panel waits for that same execution to
pause at its next step (and does not jump to another one meanwhile).

A pause happens before its step starts, so the step has no step run yet: the hub is told
the execution and step path with seq 0 ("this step, no particular run").
"""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app import asyncqt
from app.debugger.live import EventFollower
from app.selection import SelectionHub
from app.stale import Generation
from engine.service.models import DEBUG_EVENTS, TERMINAL_EVENTS, PausedExecution
from engine.service.protocol import StudioService

PIPELINE, STEP, REASON, EXECUTION, SINCE = range(5)
HEADERS = ("Pipeline", "Step", "Reason", "Execution", "Paused at")
REASONS = {"breakpoint": "breakpoint", "step_over": "step over", "pause": "paused on start"}
REFRESH_MS = 60  # one reload per burst of debug events
_ID_ROLE = Qt.ItemDataRole.UserRole + 1


def pause_key(p: PausedExecution) -> tuple[str, float]:
    """One pause of one execution (an execution pauses again after a step over)."""
    return p.execution_id, p.paused_at


class PausedPanel(QWidget):
    currentChanged = Signal(object)  # PausedExecution | None: the pause the debugger is on
    pausedAt = Signal(str, str)  # (pipeline, step path) of the current pause, for the editor
    pausedChanged = Signal(list)  # list[PausedExecution], after every reload

    def __init__(self, hub: SelectionHub, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("pausedPanel")
        self.hub = hub
        self.service: StudioService | None = None
        self._paused: list[PausedExecution] = []
        self._current: PausedExecution | None = None
        self._follow: str | None = None  # stepped over: wait for this execution's next pause
        self._generation = Generation()
        self._filling = False

        self.status = QLabel(objectName="pausedStatus")
        self.table = QTableWidget(0, len(HEADERS), objectName="pausedTable")
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.status)
        layout.addWidget(self.table, 1)
        self.table.itemSelectionChanged.connect(self._row_chosen)

        self._timer = QTimer(self, singleShot=True, interval=REFRESH_MS)
        self._timer.timeout.connect(lambda: asyncqt.spawn(self.refresh(), what="Loading paused executions"))
        self._follower = EventFollower(DEBUG_EVENTS | TERMINAL_EVENTS, self)
        self._follower.matched.connect(self._event)
        self._follower.reconnected.connect(self._timer.start)
        hub.executionSelected.connect(self._hub_selected)
        self._show_status()

    # -- service -----------------------------------------------------------------------
    def set_service(self, service: StudioService | None) -> None:
        self.service = service
        self._follow = None
        self._apply([])
        self._follower.follow(service)
        if service is not None:
            asyncqt.spawn(self.refresh(), what="Loading paused executions")

    def shutdown(self) -> None:
        self._follower.stop()

    async def refresh(self) -> list[PausedExecution]:
        """Reload the paused executions; the current one stays current while it is paused."""
        if self.service is None:
            return []
        generation = self._generation.next()
        paused = await self.service.paused()
        if self._generation.is_current(generation):
            self._apply(paused)
        return paused

    # -- state -------------------------------------------------------------------------
    def current(self) -> PausedExecution | None:
        return self._current

    def paused_executions(self) -> list[PausedExecution]:
        return list(self._paused)

    def following(self) -> str | None:
        """The execution stepped over and not paused again yet."""
        return self._follow

    def select(self, execution_id: str) -> bool:
        """Make the pause of ``execution_id`` current (False: it is not paused)."""
        found = next((p for p in self._paused if p.execution_id == execution_id), None)
        if found is None:
            return False
        self._follow = None
        self._select_row(found)
        self._set_current(found)
        return True

    def resumed(self, execution_id: str, action: str) -> None:
        """The debugger resumed ``execution_id``: drop its pause now; after a step over,
        wait for its next pause instead of moving on to another execution."""
        self._follow = execution_id if action == "step_over" else None
        self._apply([p for p in self._paused if p.execution_id != execution_id])
        self._timer.start()

    def _apply(self, paused: list[PausedExecution]) -> None:
        self._paused = paused
        by_id = {p.execution_id: p for p in paused}
        target: PausedExecution | None = None
        if self._current is not None and self._current.execution_id in by_id:
            target = by_id[self._current.execution_id]
        elif self._follow is not None:
            target = by_id.get(self._follow)
        elif paused:
            target = paused[0]  # the one waiting longest
        if target is not None and target.execution_id == self._follow:
            self._follow = None
        self._fill()
        if target is not None:
            self._select_row(target)
        if target is None or self._current is None or pause_key(target) != pause_key(self._current):
            self._set_current(target)
        else:
            self._current = target  # the same pause: its context is the one already shown
        self._show_status()
        self.pausedChanged.emit(list(paused))

    def _set_current(self, p: PausedExecution | None) -> None:
        self._current = p
        self._show_status()
        self.currentChanged.emit(p)
        if p is not None:
            self.pausedAt.emit(p.pipeline, p.path)
            self.hub.select_step_run(p.execution_id, p.path, 0)

    # -- the table ---------------------------------------------------------------------
    def _fill(self) -> None:
        self._filling = True
        self.table.setRowCount(len(self._paused))
        for row, p in enumerate(self._paused):
            cells = (p.pipeline, p.path, REASONS.get(p.reason, p.reason), p.execution_id[:12],
                     time.strftime("%H:%M:%S", time.localtime(p.paused_at)))
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(_ID_ROLE, p.execution_id)
                if column == EXECUTION:
                    item.setToolTip(p.execution_id)
                self.table.setItem(row, column, item)
        self.table.clearSelection()
        self._filling = False

    def _select_row(self, p: PausedExecution) -> None:
        self._filling = True
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item is not None and item.data(_ID_ROLE) == p.execution_id:
                self.table.selectRow(row)
                break
        self._filling = False

    def _row_chosen(self) -> None:
        if self._filling:
            return
        items = self.table.selectedItems()
        if items:
            self.select(str(items[0].data(_ID_ROLE)))

    def _show_status(self) -> None:
        n = len(self._paused)
        if self.service is None:
            text = "Not connected"
        elif self._follow is not None and self._current is None:
            text = f"Stepping execution {self._follow[:12]}…"
        elif n == 0:
            text = "No paused executions: set a breakpoint and run"
        else:
            text = f"{n} paused execution{'s' if n != 1 else ''}"
            if self._current is not None:
                text += f"; at {self._current.path} of {self._current.pipeline}"
        self.status.setText(text)

    # -- live --------------------------------------------------------------------------
    def _event(self, event_type: str, execution_id: str, _seq: int) -> None:
        if event_type in TERMINAL_EVENTS:
            if execution_id == self._follow:
                self._follow = None  # it finished instead of pausing again
            elif all(p.execution_id != execution_id for p in self._paused):
                return  # some other run ended: the paused list did not change
        self._timer.start()

    def _hub_selected(self, execution_id: str) -> None:
        if self._current is None or execution_id != self._current.execution_id:
            self.select(execution_id)
