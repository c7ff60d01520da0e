"""The output panel: the runs started from the studio, newest first, and the selected result.

A run appears as soon as it starts (``add_running``) and is completed in place by
``finish``; :func:`run_pipeline` does both around ``service.run`` and turns a service error
into the run's message instead of a traceback. A run started without waiting is followed
through the service's event stream until it ends (showing "paused" while a breakpoint holds
it). The execution id is a link: ``executionRequested`` asks the main window to show it.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.asyncqt import describe
from engine.service.errors import ServiceError
from engine.service.models import TERMINAL_EVENTS, EventType, RunOptions, RunResult
from engine.service.protocol import StudioService

PIPELINE, STATUS, DURATION, EXECUTION = range(4)
TOKEN_ROLE = Qt.ItemDataRole.UserRole + 1
STATUS_COLORS = {
    "completed": "#2e7d32",
    "failed": "#c62828",
    "error": "#c62828",
    "cancelled": "#757575",
    "running": "#1565c0",
    "paused": "#ef6c00",
}


MAX_ROWS = 500  # runs listed at most; older finished ones are dropped from the list


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def format_duration(ms: float | None) -> str:
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    return f"{int(ms // 60_000)} min {ms % 60_000 / 1000:.0f} s"


@dataclass
class RunEntry:
    token: int
    pipeline: str
    status: str = "running"
    started: float = 0.0  # time.monotonic() at add_running: the running row's elapsed time
    result: RunResult | None = None
    message: str = ""  # why the run could not start or finish (a service error)

    @property
    def execution_id(self) -> str:
        return self.result.execution_id if self.result else ""


class OutputPanel(QWidget):
    executionRequested = Signal(str)  # execution id

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("outputPanel")
        self._entries: dict[int, RunEntry] = {}
        self._items: dict[int, QTreeWidgetItem] = {}
        self._next = 1

        self.runs = QTreeWidget(self)
        self.runs.setObjectName("runsList")
        self.runs.setHeaderLabels(["Pipeline", "Status", "Duration", "Execution"])
        self.runs.setRootIsDecorated(False)
        self.runs.setUniformRowHeights(True)
        self.runs.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.runs.header()
        header.setStretchLastSection(False)
        # Fixed widths, not ResizeToContents: that re-measures every row on each change and made
        # a burst of runs cost milliseconds per row on the GUI thread.
        for column, width in ((PIPELINE, 120), (STATUS, 80), (DURATION, 70)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
            header.resizeSection(column, width)
        header.setSectionResizeMode(EXECUTION, QHeaderView.ResizeMode.Stretch)
        self.runs.setMinimumWidth(320)
        self.runs.setMouseTracking(True)
        self.runs.currentItemChanged.connect(lambda *_: self._show_selected())
        self.runs.itemClicked.connect(self._clicked)
        self.runs.itemActivated.connect(self._activated)
        self.runs.itemEntered.connect(self._hover)

        self.heading = QLabel(self)
        self.heading.setObjectName("runHeading")
        self.heading.setTextFormat(Qt.TextFormat.RichText)
        self.heading.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.heading.linkActivated.connect(self._link)
        self.message = QLabel(self)
        self.message.setObjectName("runMessage")
        self.message.setTextFormat(Qt.TextFormat.PlainText)
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.setStyleSheet(f"color: {STATUS_COLORS['failed']};")

        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("runResultTabs")
        self.texts: dict[str, QPlainTextEdit] = {}
        for key, title in (("response", "Response"), ("output", "Output"), ("error", "Error")):
            edit = QPlainTextEdit(self.tabs)
            edit.setObjectName(f"run{title}")
            edit.setReadOnly(True)
            edit.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
            edit.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
            self.texts[key] = edit
            self.tabs.addTab(edit, title)

        self.copy_id = QPushButton("Copy id", self)
        self.copy_id.setObjectName("copyRunId")
        self.copy_id.clicked.connect(self.copy_execution_id)
        self.copy_output = QPushButton("Copy output", self)
        self.copy_output.setObjectName("copyRunOutput")
        self.copy_output.clicked.connect(self.copy_result)
        self.clear_button = QPushButton("Clear", self)
        self.clear_button.setObjectName("clearRuns")
        self.clear_button.setToolTip("Forget the finished runs listed here (executions stay recorded)")
        self.clear_button.clicked.connect(self.clear_finished)

        detail = QWidget(self)
        top = QHBoxLayout()
        top.addWidget(self.heading, 1)
        top.addWidget(self.copy_id)
        top.addWidget(self.copy_output)
        top.addWidget(self.clear_button)
        box = QVBoxLayout(detail)
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(top)
        box.addWidget(self.message)
        box.addWidget(self.tabs, 1)
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(self.runs)
        splitter.addWidget(detail)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([460, 540])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)

        self._ticker = QTimer(self)  # elapsed time of running rows
        self._ticker.setInterval(500)
        self._ticker.timeout.connect(self._tick)
        self._show_selected()

    # ------------------------------------------------------------------ runs

    def add_running(self, pipeline: str) -> int:
        """A run that has started; returns the token ``finish`` takes."""
        token = self._next
        self._next += 1
        self._entries[token] = RunEntry(token, pipeline, started=time.monotonic())
        item = QTreeWidgetItem()
        item.setData(0, TOKEN_ROLE, token)
        self._items[token] = item
        self.runs.insertTopLevelItem(0, item)  # newest first
        self._render(token)
        self.runs.setCurrentItem(item)
        self._ticker.start()
        self._forget_oldest()
        return token

    def _forget_oldest(self) -> None:
        """Keep the list to MAX_ROWS: the oldest finished runs go (they stay recorded)."""
        row = self.runs.topLevelItemCount() - 1
        while self.runs.topLevelItemCount() > MAX_ROWS and row >= 0:
            token = self._token(self.runs.topLevelItem(row))
            if self._entries[token].status not in ("running", "paused"):
                self.runs.takeTopLevelItem(row)
                del self._entries[token], self._items[token]
            row -= 1

    def add_run(self, pipeline: str, result: RunResult) -> int:
        token = self.add_running(pipeline)
        self.finish(token, result)
        return token

    def set_status(self, token: int, status: str, execution_id: str | None = None) -> None:
        """A live update of an unfinished run (running, paused) and, once known, its id."""
        entry = self._entries.get(token)
        if entry is None:
            return
        entry.status = status
        if execution_id and entry.result is None:
            entry.result = RunResult(execution_id=execution_id, status=status)
        elif entry.result is not None:
            entry.result = entry.result.model_copy(update={"status": status})
        self._render(token)

    def finish(self, token: int, outcome: RunResult | str) -> None:
        """The run ended: its result, or the message of why it could not run."""
        entry = self._entries.get(token)
        if entry is None:
            return
        if isinstance(outcome, RunResult):
            entry.result = outcome
            entry.status = outcome.status
            entry.message = _error_message(outcome.error)
        else:
            entry.status = "error"
            entry.message = outcome
        self._render(token)
        if not any(e.status in ("running", "paused") for e in self._entries.values()):
            self._ticker.stop()

    def entry(self, token: int) -> RunEntry:
        return self._entries[token]

    def entries(self) -> list[RunEntry]:
        """Newest first, as listed."""
        return [
            self._entries[self._token(self.runs.topLevelItem(i))]
            for i in range(self.runs.topLevelItemCount())
        ]

    def select(self, token: int) -> None:
        item = self._items.get(token)
        if item is not None:
            self.runs.setCurrentItem(item)

    def selected(self) -> RunEntry | None:
        item = self.runs.currentItem()
        return self._entries.get(self._token(item)) if item is not None else None

    def clear_finished(self) -> None:
        for token, entry in list(self._entries.items()):
            if entry.status not in ("running", "paused"):
                item = self._items.pop(token)
                self.runs.takeTopLevelItem(self.runs.indexOfTopLevelItem(item))
                del self._entries[token]
        self._show_selected()

    # ------------------------------------------------------------------ actions

    def copy_execution_id(self) -> None:
        entry = self.selected()
        if entry is not None and entry.execution_id:
            QGuiApplication.clipboard().setText(entry.execution_id)

    def copy_result(self) -> None:
        """The shown result: the response if there is one, else the output, else the error."""
        entry = self.selected()
        if entry is not None:
            QGuiApplication.clipboard().setText(self.result_text(entry))

    def result_text(self, entry: RunEntry) -> str:
        result = entry.result
        if result is None or result.status in ("running", "paused"):
            return entry.message
        if result.response is not None:
            return pretty(result.response)
        if result.error is not None and result.output is None:
            return pretty(result.error)
        return pretty(result.output)

    # ------------------------------------------------------------------ rendering

    @staticmethod
    def _token(item: QTreeWidgetItem | None) -> int:
        return int(item.data(0, TOKEN_ROLE)) if item is not None else 0

    def _render(self, token: int) -> None:
        entry = self._entries[token]
        item = self._items[token]
        item.setText(PIPELINE, entry.pipeline)
        item.setText(STATUS, entry.status)
        item.setForeground(STATUS, QBrush(QColor(STATUS_COLORS.get(entry.status, "#424242"))))
        duration = entry.result.duration_ms if entry.result else None
        if entry.status in ("running", "paused"):
            duration = (time.monotonic() - entry.started) * 1000
        item.setText(DURATION, format_duration(duration))
        eid = entry.execution_id
        item.setText(EXECUTION, eid)
        if eid:
            font = QFont(item.font(EXECUTION))
            font.setUnderline(True)
            item.setFont(EXECUTION, font)
            item.setForeground(EXECUTION, self.palette().link())
            item.setToolTip(EXECUTION, "Open this execution (click)")
        item.setToolTip(STATUS, entry.message or entry.status)
        if self.runs.currentItem() is item:
            self._show_selected()

    def _tick(self) -> None:
        for token, entry in self._entries.items():
            if entry.status in ("running", "paused"):
                self._render(token)

    def _show_selected(self) -> None:
        entry = self.selected()
        self.copy_id.setEnabled(bool(entry and entry.execution_id))
        self.copy_output.setEnabled(entry is not None)
        if entry is None:
            self.heading.setText("No runs yet: Ctrl+R runs the open pipeline.")
            self.message.hide()
            for key in self.texts:
                self.texts[key].clear()
                self.tabs.setTabVisible(list(self.texts).index(key), False)
            return
        color = STATUS_COLORS.get(entry.status, "#424242")
        parts = [f"<b>{_esc(entry.pipeline)}</b>", f"<span style='color:{color}'>{_esc(entry.status)}</span>"]
        if entry.execution_id:
            parts.append(f"<a href='execution:{_esc(entry.execution_id)}'>{_esc(entry.execution_id)}</a>")
        self.heading.setText(" · ".join(parts))
        self.message.setText(entry.message)
        self.message.setVisible(bool(entry.message))
        result = entry.result
        values = {
            "response": result.response if result else None,
            "output": result.output if result and result.status not in ("running", "paused") else None,
            "error": result.error if result else None,
        }
        first = -1
        for index, (key, value) in enumerate(values.items()):
            shown = value is not None
            self.texts[key].setPlainText(pretty(value) if shown else "")
            self.tabs.setTabVisible(index, shown)
            if shown and first < 0:
                first = index
        if first >= 0 and not self.tabs.isTabVisible(self.tabs.currentIndex()):
            self.tabs.setCurrentIndex(first)
        elif first >= 0 and values["error"] is not None:
            self.tabs.setCurrentIndex(2)  # a failure: its error first
        elif first >= 0:
            self.tabs.setCurrentIndex(first)

    def _link(self, href: str) -> None:
        if href.startswith("execution:"):
            self.executionRequested.emit(href.removeprefix("execution:"))

    def _clicked(self, item: QTreeWidgetItem, column: int) -> None:
        entry = self._entries.get(self._token(item))
        if column == EXECUTION and entry is not None and entry.execution_id:
            self.executionRequested.emit(entry.execution_id)

    def _activated(self, item: QTreeWidgetItem, _column: int) -> None:
        entry = self._entries.get(self._token(item))
        if entry is not None and entry.execution_id:
            self.executionRequested.emit(entry.execution_id)

    def _hover(self, _item: QTreeWidgetItem, column: int) -> None:
        cursor = Qt.CursorShape.PointingHandCursor if column == EXECUTION else Qt.CursorShape.ArrowCursor
        self.runs.viewport().setCursor(cursor)


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#39;")


def _error_message(error: dict[str, Any] | None) -> str:
    if not error:
        return ""
    message = str(error.get("message") or "the run failed")
    step = error.get("step")
    return f"{step}: {message}" if step else message


async def run_pipeline(
    service: StudioService,
    pipeline: str,
    input: Any,
    options: RunOptions | None,
    panel: OutputPanel,
    *,
    follow: bool = True,
) -> RunResult | None:
    """Run ``pipeline`` with the panel showing it; a service error becomes the run's message.

    Without ``options.wait`` the service answers once the run has started; with ``follow``
    its events are then read until it ends, so the row ends up completed or failed too.
    Returns the result (None when the service refused the run).
    """
    token = panel.add_running(pipeline)
    try:
        result = await service.run(pipeline, input, options)
        if result.status == "running" and follow:
            panel.set_status(token, "running", result.execution_id)
            result = await _follow(service, result.execution_id, panel, token)
    except ServiceError as exc:
        panel.finish(token, describe(exc))
        return None
    except BaseException as exc:  # a bug or a cancellation: never leave the row "running"
        panel.finish(token, "cancelled" if isinstance(exc, asyncio.CancelledError) else describe(exc))
        raise
    panel.finish(token, result)
    return result


async def _follow(service: StudioService, execution_id: str, panel: OutputPanel, token: int) -> RunResult:
    events = service.subscribe(execution_id)  # replays from the start: the end is never missed
    try:
        async for event in events:
            if event.type == EventType.DEBUG_PAUSED:
                panel.set_status(token, "paused")
            elif event.type == EventType.DEBUG_RESUMED:
                panel.set_status(token, "running")
            elif event.type in TERMINAL_EVENTS:
                break
    finally:
        close = getattr(events, "aclose", None)  # a remote stream holds a connection
        if close is not None:
            await close()
    summary = await service.get_execution(execution_id)
    return RunResult(
        execution_id=execution_id,
        status=summary.status,
        output=summary.output,
        error=summary.error,
        duration_ms=summary.duration_ms,
    )
