"""The Inspector: the selected step run's input, output, error and events as a lazy JSON tree.

A step run is read from its ``step.started`` event forward (``events(after_seq=seq-1)``,
page by page) until the event that ends it, keeping only the events that belong to that run:
they carry its start seq, or, for the few that do not (mocked, retrying, reused, logs), its
path. Nested sub-steps are runs of their own and are not repeated here. With no step run
selected the tree shows the execution's trigger payload, output and error.

Nothing is rendered whole: :class:`JsonTreeModel` creates rows only as they are expanded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from html import escape
from typing import Any, Final

from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QLabel, QMenu, QToolBar, QVBoxLayout, QWidget
from shiboken6 import isValid

from app.asyncqt import describe, spawn
from app.executions.json_tree import JsonTreeModel, JsonTreeView, to_json
from app.executions.support import cancel_all, named
from app.selection import SelectionHub
from app.stale import Generation, Token
from engine.service.errors import ServiceError
from engine.service.models import (
    TERMINAL_EVENTS,
    Event,
    EventType,
    ExecutionSummary,
    StepRun,
    carries_input,
    carries_output,
)
from engine.service.protocol import StudioService

PAGE: Final = 1000  # events per read while looking for a step run's end
_MISSING: Final = object()
# The events that mark a step run, as its flags name them.
_MARKS: Final[dict[str, str]] = {EventType.STEP_MOCKED: "mocked", EventType.STEP_ROUTED: "routed",
                                 EventType.STEP_IDEMPOTENT_HIT: "idempotent hit"}


@dataclass
class StepRunRecord:
    """What was read of one step run."""

    path: str
    seq: int
    start: Event | None = None
    events: list[Event] = field(default_factory=list)
    input: Any = _MISSING
    output: Any = _MISSING
    error: Any = _MISSING
    ended: bool = False
    status: str = "running"

    def belongs(self, event: Event) -> bool:
        """Whether ``event`` is part of this run (called for events after its start)."""
        if event.seq == self.seq:
            return True
        data = event.data
        started = data.get("started_seq")
        if started is not None:
            return started == self.seq
        if data.get("path") != self.path:
            return False
        mine = self.start.data.get("iteration") if self.start is not None else None
        theirs = data.get("iteration")
        return mine is None or theirs is None or mine == theirs

    def take(self, event: Event) -> None:
        """Record a belonging event; notes input, output, error and whether the run ended."""
        self.events.append(event)
        data = event.data
        kind = event.type
        # The input comes with step.started and the output with step.completed; stores of
        # 0.1.0 and earlier hold them in step.input / step.output events of their own.
        if carries_input(kind, data):
            self.input = data["input"]
        if carries_output(kind, data):
            self.output = data["output"]
        if event.seq == self.seq:
            self.start = event
            if kind == EventType.STEP_SKIPPED:
                self.ended, self.status = True, f"skipped ({data.get('reason', '')})"
            return
        if kind == EventType.STEP_FAILED:
            self.error = data.get("error")
            self.ended, self.status = True, "failed"
        elif kind == EventType.STEP_COMPLETED:
            self.ended, self.status = True, "completed"
        elif kind == EventType.STEP_RETRYING:
            # The attempt failed and another follows: that one is a step run of its own.
            self.error = data.get("error")
            self.ended, self.status = True, "failed (retried)"

    def value(self) -> dict[str, Any]:
        """The tree's content: input, output, error and the run's events by seq and type."""
        root: dict[str, Any] = {}
        if self.input is not _MISSING:
            root["input"] = self.input
        if self.output is not _MISSING:
            root["output"] = self.output
        if self.error is not _MISSING:
            root["error"] = self.error
        events: dict[str, Any] = {}
        for e in self.events:
            events[f"#{e.seq} {e.type}"] = {"seq": e.seq, "type": e.type, "ts": e.ts, "data": e.data}
        root["events"] = events
        return root

    def duration_ms(self) -> float | None:
        end = self.events[-1] if self.ended and self.events else None
        value = end.data.get("duration_ms") if end is not None else None
        return float(value) if isinstance(value, int | float) else None

    def flags(self) -> list[str]:
        found = [_MARKS[e.type] for e in self.events if e.type in _MARKS]
        if self.start is not None and self.start.data.get("reused"):
            found.append("reused")
        return found


class Inspector(QWidget):
    """Follows the hub: a step run's details, or the execution's when no step is selected."""

    statusMessage = Signal(str)

    def __init__(self, hub: SelectionHub, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("inspector")
        self.hub = hub
        self.service: StudioService | None = None
        self.execution_id = ""
        self.step_path = ""
        self.seq = 0
        self.pipeline = ""
        self.run: StepRunRecord | None = None
        self._generation = Generation()
        self._tasks: list[asyncio.Task[Any]] = []
        self._build()
        hub.executionSelected.connect(self._execution_selected)
        hub.stepRunSelected.connect(self.show_step_run)
        self.destroyed.connect(partial(cancel_all, self._tasks))

    def _build(self) -> None:
        self.title = named(QLabel(), "inspectorTitle")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.title.setWordWrap(True)
        self.model = JsonTreeModel(parent=self)
        tree = self.tree = JsonTreeView(self)
        tree.setObjectName("inspectorTree")
        tree.setModel(self.model)
        tree.setColumnWidth(0, 200)
        tree.setColumnWidth(1, 320)
        tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        tree.customContextMenuRequested.connect(self._context_menu)

        self.copy_action = named(QAction("Copy as JSON", self), "copyJson")
        self.copy_action.setShortcut(QKeySequence.StandardKey.Copy)
        self.copy_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.copy_action.setToolTip("Copy the selected value (or everything shown) as JSON")
        self.copy_action.triggered.connect(self.copy_json)
        self.mock_action = named(QAction("Turn this output into a mock", self), "mockFromOutput")
        self.mock_action.setToolTip("Answer this step with this recorded output from now on "
                                    "(while the mock is enabled)")
        self.mock_action.triggered.connect(self.mock_from_output)
        self.mock_action.setEnabled(False)
        self.addAction(self.copy_action)
        toolbar = QToolBar(self)
        toolbar.setIconSize(toolbar.iconSize() * 0.75)
        toolbar.addAction(self.copy_action)
        toolbar.addAction(self.mock_action)

        self.status = named(QLabel(), "inspectorStatus")
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addWidget(self.title)
        layout.addWidget(toolbar)
        layout.addWidget(tree, 1)
        layout.addWidget(self.status)
        self._show_message("Select an execution or a step run")

    # ------------------------------------------------------------------ following the hub

    def set_service(self, service: StudioService | None) -> None:
        self.service = service
        self.show_step_run(self.hub.execution_id if service is not None else "",
                           self.hub.step_path, self.hub.seq)

    def _execution_selected(self, execution_id: str) -> None:
        self.show_step_run(execution_id, "", 0)

    def refresh(self) -> None:
        self.show_step_run(self.execution_id, self.step_path, self.seq)

    def show_step_run(self, execution_id: str, path: str, seq: int) -> None:
        """Show one step run (``path`` "" shows the execution itself)."""
        self._cancel()
        generation = self._generation.next()
        self.execution_id, self.step_path, self.seq = execution_id, path, seq
        self.run = None
        self.mock_action.setEnabled(False)
        self.model.set_value({})
        self.title.clear()
        if not execution_id or self.service is None:
            self._show_message("Select an execution or a step run")
            return
        self._show_message("Reading…")
        if path:
            self._spawn(partial(self._load_step, self.service, generation, execution_id, path, seq))
        else:
            self._spawn(partial(self._load_execution, self.service, generation, execution_id))

    def _spawn(self, job: Callable[[], Awaitable[None]], *, background: bool = False) -> None:
        # A factory, not a coroutine: a task cancelled before it starts never creates it.
        task = spawn(self._guarded(job, self._generation.token), what="Reading the execution",
                     background=background)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    async def _guarded(self, job: Callable[[], Awaitable[None]], generation: Token) -> None:
        """Service errors (an execution purged meanwhile, a server gone) become a message."""
        try:
            await job()
        except ServiceError as exc:
            if self._current(generation):
                self._show_message(describe(exc))

    def _cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def _current(self, generation: Token) -> bool:
        return isValid(self) and self._generation.is_current(generation)

    # ------------------------------------------------------------------ execution

    async def _load_execution(self, service: StudioService, generation: Token, execution_id: str) -> None:
        summary = await service.get_execution(execution_id)
        if not self._current(generation):
            return
        self._show_execution(summary)
        if summary.status in ("running", "paused"):  # show the output once it ends
            self._spawn(partial(self._await_end, service, generation, execution_id), background=True)

    async def _await_end(self, service: StudioService, generation: Token, execution_id: str) -> None:
        """Wait for the run's end (a paused run may wait long), then show its outcome. The
        stream is re-opened every few seconds from the stored count, so an end recorded
        between reading the summary and subscribing cannot be missed."""
        while self._current(generation):
            summary = await service.get_execution(execution_id)
            if summary.status not in ("running", "paused"):
                self._show_execution(summary)
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    async for event in service.subscribe(execution_id, max(0, summary.event_count - 1)):
                        if event.type in TERMINAL_EVENTS:
                            break

    def _show_execution(self, summary: ExecutionSummary) -> None:
        self.pipeline = summary.pipeline
        root: dict[str, Any] = {"trigger": summary.trigger_payload, "output": summary.output}
        if summary.error is not None:
            root["error"] = summary.error
        self.model.set_value(root)
        self._expand_sections()
        links = []
        if summary.replay_of:
            links.append(f"replay of {summary.replay_of[:8]}")
        if summary.parent_id:
            links.append(f"called by {summary.parent_id[:8]}")
        self.title.setText(" · ".join([f"<b>{escape(summary.pipeline)}</b>", summary.id[:8],
                                       escape(summary.status), f"{escape(summary.trigger_type)} trigger",
                                       *links]))
        self._show_message(f"{summary.event_count:,} events · select a step in the timeline or "
                           "the event list to inspect it")

    # ------------------------------------------------------------------ step run

    async def _load_step(self, service: StudioService, generation: Token, execution_id: str,
                         path: str, seq: int) -> None:
        summary = await service.get_execution(execution_id)
        if not self._current(generation):
            return
        self.pipeline = summary.pipeline
        step_run: StepRun | None = None
        if seq <= 0:  # a step chosen by path (an editor node): its first run
            timeline = await service.timeline(execution_id)
            if not self._current(generation):
                return
            step_run = next((r for r in timeline.steps if r.path == path), None)
            if step_run is None:
                self._show_message(
                    f"Step {path!r} has not run yet: execution {execution_id[:8]} is {summary.status}"
                    if summary.status in ("running", "paused")
                    else f"Step {path!r} did not run in execution {execution_id[:8]}")
                return
            seq = self.seq = step_run.seq
        record = self.run = StepRunRecord(path, seq)
        after = seq - 1
        scanned = 0
        while not record.ended:
            page = await service.events(execution_id, after_seq=after, limit=PAGE)
            if not self._current(generation):
                return
            for event in page:
                after = event.seq
                if record.belongs(event):
                    record.take(event)
                    if record.ended:
                        break
            scanned += len(page)
            if len(page) < PAGE:
                break
            self._show_message(f"Reading… {scanned:,} events scanned")
        if not record.ended and summary.status not in ("running", "paused"):
            record.status = f"not ended ({summary.status})"  # cancelled or interrupted mid-step
            record.ended = True
        self._show_run(summary, record, step_run)
        if not record.ended and summary.status in ("running", "paused"):
            await self._follow_step(service, generation, execution_id, record, after, summary, step_run)

    async def _follow_step(self, service: StudioService, generation: Token, execution_id: str,
                           record: StepRunRecord, after: int, summary: ExecutionSummary,
                           step_run: StepRun | None) -> None:
        """A running step: show its events as they come, until it (or the execution) ends."""
        async for event in service.subscribe(execution_id, after):
            if not self._current(generation):
                return
            if record.belongs(event):
                record.take(event)
                if record.ended:
                    break
            if event.type in TERMINAL_EVENTS:
                break
        if self._current(generation):
            self._show_run(summary, record, step_run)

    def _show_run(self, summary: ExecutionSummary, record: StepRunRecord,
                  step_run: StepRun | None) -> None:
        self.model.set_value(record.value())
        self._expand_sections()
        start = record.start.data if record.start is not None else {}
        facts = [f"<b>{escape(record.path)}</b>",
                 escape(str(start.get("type") or (step_run.type if step_run else "")))]
        if start.get("iteration") is not None:
            facts.append(f"iteration {start['iteration']}")
        attempt = start.get("attempt") or (step_run.attempt if step_run else 1)
        if attempt and attempt > 1:
            facts.append(f"attempt {attempt}")
        facts.append(escape(record.status))
        duration = record.duration_ms()
        if duration is None and step_run is not None:
            duration = step_run.duration_ms
        if duration is not None:
            facts.append(f"{duration:,.1f} ms")
        flags = record.flags() or (step_run.flags if step_run is not None else [])
        if flags:
            facts.append(escape(", ".join(flags)))
        facts.append(f"{escape(summary.pipeline)} {summary.id[:8]}")
        self.title.setText(" · ".join(f for f in facts if f))
        has_output = record.output is not _MISSING
        self.mock_action.setEnabled(has_output)
        if record.start is None:
            self._show_message(f"No step.started event at seq {record.seq} for {record.path!r}")
        elif not record.ended:
            self._show_message(f"{len(record.events):,} events so far · running…")
        else:
            self._show_message(f"{len(record.events):,} events")

    def _expand_sections(self) -> None:
        """Open the small top-level sections (their first page only); events stay closed."""
        for row in range(self.model.rowCount()):
            index = self.model.index(row, 0)
            if index.data() != "events":
                self.tree.expand(index)

    # ------------------------------------------------------------------ actions

    def selected_value(self) -> Any:
        index = self.tree.currentIndex()
        selected = self.tree.selectionModel().selectedRows()
        if selected:
            index = selected[0]
        if not index.isValid():
            return self.model.value()
        return self.model.value_at(index.siblingAtColumn(0))

    def copy_json(self) -> None:
        text = to_json(self.selected_value())
        QGuiApplication.clipboard().setText(text)
        self._show_message(f"Copied {len(text):,} characters of JSON")

    def mock_from_output(self) -> None:
        if self.service is None or self.run is None or self.run.output is _MISSING:
            self._show_message("Select a step run that has an output first")
            return
        self._spawn(partial(self._make_mock, self.service, self.execution_id, self.run.path))

    async def _make_mock(self, service: StudioService, execution_id: str, path: str) -> None:
        try:
            mock = await service.mock_from_execution(execution_id, path)
        except ServiceError as exc:
            if isValid(self):
                self._show_message(f"Could not create the mock: {describe(exc)}")
            return
        if isValid(self):
            self._show_message(f"Mock created: {mock.pipeline}/{mock.step} now answers with this "
                               "recorded output (see the Mocks panel to edit or disable it)")

    def _context_menu(self, pos: Any) -> None:
        menu = QMenu(self)
        menu.addAction(self.copy_action)
        menu.addAction(self.mock_action)
        index: QModelIndex = self.tree.indexAt(pos)
        if index.isValid() and self.model.is_more(index.siblingAtColumn(0)):
            menu.addAction("Load the next page", lambda: self.model.fetch_next_page(index.siblingAtColumn(0)))
        menu.exec(self.tree.viewport().mapToGlobal(pos))

    def _show_message(self, text: str) -> None:
        self.status.setText(text)
        if text and not text.startswith(("Reading", "Select")):
            self.statusMessage.emit(text)
