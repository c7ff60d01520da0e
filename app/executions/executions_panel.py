"""The Executions panel: every recorded execution, filtered, paged in on scroll, updated live.

Filters (pipeline, status, time range, text) reload the first page from the service;
scrolling to the bottom pages in the next one through the service's cursor. A subscription
to all executions inserts new runs at the top and updates finished ones in place. Live
changes are collected and applied at most every :data:`COALESCE_MS`, as row insertions and
``dataChanged`` (never a reset), so the selection and the scroll position stay put while a
busy engine records hundreds of runs a second.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from functools import partial
from typing import Any, Final

from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QCursor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from app.asyncqt import describe, spawn
from app.executions.list_model import (
    DURATION,
    ID,
    ID_ROLE,
    LINK_COLUMNS,
    LINK_ROLE,
    PIPELINE,
    STARTED,
    STATUS,
    TRIGGER,
    ExecutionListModel,
)
from app.executions.support import cancel_all, named
from app.icons import icon
from app.panes import fill_names, setup_table
from app.selection import SelectionHub
from app.stale import Generation, Token
from engine.service.errors import ServiceError, Unavailable
from engine.service.models import TERMINAL_STATUS, Event, EventType, ExecutionFilter, ExecutionSummary
from engine.service.protocol import StudioService

FIRST_PAGE: Final = 200  # rows of the first page: a screenful or two, quick to show
NEXT_PAGE: Final = 1000  # rows per page when scrolling (the service's maximum)
RECENT: Final = 500  # recently started runs remembered for reloads that race with them
COALESCE_MS: Final = 150  # live changes are applied at most this often
RECONNECT_S: Final = (0.5, 1.0, 2.0, 5.0)  # waits between live-stream reconnects
STATUSES: Final = ("running", "paused", "completed", "failed", "cancelled", "compensated", "interrupted")
SINCE: Final = (("Last 15 minutes", 15 * 60.0), ("Last hour", 3600.0), ("Last day", 86400.0),
                ("All time", None))
# What a row follows live: starts, ends, pauses and resumptions (not the many step events).
_FOLLOWED: Final = frozenset({EventType.EXECUTION_STARTED, *TERMINAL_STATUS, EventType.DEBUG_PAUSED,
                              EventType.DEBUG_RESUMED})
COLUMN_WIDTHS: Final = {STATUS: 110, PIPELINE: 170, STARTED: 150, DURATION: 90, TRIGGER: 80, ID: 80}


class ExecutionsPanel(QWidget):
    """Executions of the connected service; selecting one selects it in the hub."""

    statusMessage = Signal(str)

    def __init__(self, hub: SelectionHub, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("executionsPanel")
        self.hub = hub
        self.service: StudioService | None = None
        self._generation = Generation()  # bumped by every reload: answers to older requests are dropped
        self._live: asyncio.Task[Any] | None = None
        self._new: dict[str, ExecutionSummary] = {}  # live inserts waiting for the next flush
        self._changes: dict[str, dict[str, Any]] = {}  # live updates waiting for the next flush
        self._wanted: set[str] = set()  # finished runs the filter shows but the list lacks
        # The latest state of recently started runs: a reload whose read raced with them
        # puts back those it did not see.
        self._recent: OrderedDict[str, ExecutionSummary] = OrderedDict()
        self._selecting = False

        self.model = ExecutionListModel(self)
        self.model.wantMore.connect(self._load_more)
        self._build()

        self._flush_timer = QTimer(self, singleShot=True, interval=COALESCE_MS)
        self._flush_timer.timeout.connect(self._flush)
        self._text_timer = QTimer(self, singleShot=True, interval=300)
        self._text_timer.timeout.connect(self.refresh)
        self._tick = QTimer(self, interval=1000)  # running durations keep counting
        self._tick.timeout.connect(self.model.tick)
        self._tick.start()
        hub.executionSelected.connect(self._hub_selected)
        # A panel deleted with the window ends its subscription (a lambda would keep it alive).
        self._live_tasks: list[asyncio.Task[Any]] = []
        self.destroyed.connect(partial(cancel_all, self._live_tasks))

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        self.pipeline_filter = named(QComboBox(), "filterPipeline")
        self.pipeline_filter.addItem("All pipelines", None)
        self.pipeline_filter.setMinimumContentsLength(14)
        self.status_filter = named(QComboBox(), "filterStatus")
        self.status_filter.addItem("Any status", None)
        for status in STATUSES:
            self.status_filter.addItem(status.capitalize(), status)
        self.since_filter = named(QComboBox(), "filterSince")
        for label, seconds in SINCE:
            self.since_filter.addItem(label, seconds)
        self.since_filter.setCurrentIndex(len(SINCE) - 1)
        self.text_filter = named(QLineEdit(), "filterText")
        self.text_filter.setPlaceholderText("Search id, pipeline, error…")
        self.text_filter.setClearButtonEnabled(True)
        refresh = named(QToolButton(), "refreshExecutions")
        refresh.setIcon(icon("reset"))
        refresh.setToolTip("Reload the executions")
        refresh.clicked.connect(self.refresh)
        for combo in (self.pipeline_filter, self.status_filter, self.since_filter):
            combo.currentIndexChanged.connect(self.refresh)
        self.text_filter.textChanged.connect(lambda _text: self._text_timer.start())
        self.text_filter.returnPressed.connect(self.refresh)

        filters = QHBoxLayout()
        filters.setContentsMargins(4, 4, 4, 0)
        for w in (self.pipeline_filter, self.status_filter, self.since_filter):
            filters.addWidget(w)
        filters.addWidget(self.text_filter, 1)
        filters.addWidget(refresh)

        view = self.view = setup_table(named(QTableView(), "executionsView"), self.model, COLUMN_WIDTHS,
                                       single=True)
        view.setMouseTracking(True)  # link cells show a hand cursor
        view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        # Fixed row heights: the view never measures rows, whatever their number.
        view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 8)
        view.horizontalHeader().setHighlightSections(False)
        view.selectionModel().selectionChanged.connect(self._selection_changed)
        view.clicked.connect(self._clicked)
        view.entered.connect(self._hovered)

        self.count_label = named(QLabel(), "executionsCount")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(filters)
        layout.addWidget(view, 1)
        layout.addWidget(self.count_label)

    # ------------------------------------------------------------------ service

    def set_service(self, service: StudioService | None) -> None:
        """Show ``service``'s executions (None: show nothing) and follow its live runs."""
        self.stop()
        self.service = service
        self._generation.invalidate()
        self.model.reset([], None)
        if service is None:
            self._update_count()
            return
        spawn(self._load_pipelines(service), what="Listing pipelines")
        self.refresh()
        self._live = spawn(self._follow(service), what="Following executions", background=True)
        self._live_tasks.append(self._live)

    def stop(self) -> None:
        """Stop following live runs (when the service goes away or the panel closes)."""
        if self._live is not None:
            self._live.cancel()
            self._live = None
        cancel_all(self._live_tasks)
        self._new.clear()
        self._changes.clear()
        self._wanted.clear()

    def refresh(self) -> None:
        """Reload the first page with the current filters."""
        self._text_timer.stop()
        if self.service is None:
            return
        spawn(self._load_first(self.service, self._generation.next()), what="Listing executions")

    def current_filter(self, limit: int | None = None, cursor: str | None = None) -> ExecutionFilter:
        since = self.since_filter.currentData()
        text = self.text_filter.text().strip()
        return ExecutionFilter(pipeline=self.pipeline_filter.currentData(),
                               status=self.status_filter.currentData(),
                               since=time.time() - since if since else None,
                               text=text or None, limit=limit or FIRST_PAGE, cursor=cursor)

    async def _load_pipelines(self, service: StudioService) -> None:
        pipelines = await service.list_pipelines()
        if service is not self.service:
            return
        current = self.pipeline_filter.currentData()
        fill_names(self.pipeline_filter, {p.name for p in pipelines} | ({current} if current else set()))

    async def _load_first(self, service: StudioService, generation: Token) -> None:
        self.count_label.setText("Loading…")
        try:
            page = await service.list_executions(self.current_filter())
        except ServiceError as exc:
            if self._generation.is_current(generation):
                self.count_label.setText(f"Could not list executions: {describe(exc)}")
            raise
        if not self._generation.is_current(generation) or service is not self.service:
            return  # a newer filter or another service asked since
        self.model.reset(page.items, page.next_cursor)
        newest = page.items[0].started_at if page.items else 0.0
        missed = [s for s in self._recent.values()
                  if s.started_at >= newest and self._matches(s) and self.model.row_of(s.id) < 0]
        if missed:
            self.model.insert_top(sorted(missed, key=lambda s: (s.started_at, s.id), reverse=True))
        self._reselect()
        self._update_count()

    def _load_more(self) -> None:
        if self.service is None or self.model.next_cursor is None:
            self.model.loading = False
            return
        spawn(self._load_page(self.service, self._generation.token, self.model.next_cursor),
              what="Listing executions")

    async def _load_page(self, service: StudioService, generation: Token, cursor: str) -> None:
        try:
            page = await service.list_executions(self.current_filter(NEXT_PAGE, cursor))
        except BaseException:
            if self._generation.is_current(generation):
                self.model.loading = False
            raise
        if not self._generation.is_current(generation) or service is not self.service:
            return
        self.model.append_page(page.items, page.next_cursor)
        self._update_count()

    def _update_count(self) -> None:
        n = self.model.rowCount()
        more = " (scroll for more)" if self.model.next_cursor else ""
        self.count_label.setText(f"{n:,} execution{'s' if n != 1 else ''}{more}")

    # ------------------------------------------------------------------ live

    async def _follow(self, service: StudioService) -> None:
        """Every execution's events, live; reconnects (and reloads) after a drop."""
        failures = 0
        while service is self.service:
            try:
                async for event in service.subscribe(None):
                    failures = 0
                    self._on_event(event)
            except asyncio.CancelledError:
                raise
            except (Unavailable, ServiceError, OSError) as exc:
                if not isValid(self):
                    return
                # Dropped as too slow, or the server went away: what was missed is in the
                # store, so reload once the stream is back.
                wait = RECONNECT_S[min(failures, len(RECONNECT_S) - 1)]
                failures += 1
                self.statusMessage.emit(f"Live executions interrupted ({describe(exc)}); "
                                        f"reconnecting in {wait:g} s")
                await asyncio.sleep(wait)
                if service is self.service:
                    self.refresh()
                continue
            await asyncio.sleep(RECONNECT_S[0])  # the stream ended (server restart): resubscribe

    def _on_event(self, event: Event) -> None:
        kind = event.type
        if kind not in _FOLLOWED:
            return  # the all-executions stream carries every step event: skip them first
        eid = event.execution_id
        data = event.data
        if kind == EventType.EXECUTION_STARTED:
            summary = self._summary_of(event)
            self._recent[eid] = summary
            if len(self._recent) > RECENT:
                self._recent.popitem(last=False)
            if self._matches(summary):
                self._new[eid] = summary
        elif kind in TERMINAL_STATUS:
            changes: dict[str, Any] = {"status": TERMINAL_STATUS[kind], "ended_at": event.ts}
            if "duration_ms" in data:
                changes["duration_ms"] = data["duration_ms"]
            if "output" in data:
                changes["output"] = data["output"]
            if isinstance(data.get("error"), dict):
                changes["error"] = data["error"]
            self._change(eid, changes)
            if (self.model.row_of(eid) < 0 and eid not in self._new
                    and self.status_filter.currentData() == changes["status"]):
                self._wanted.add(eid)  # finished into the filter: fetch its summary
        elif kind == EventType.DEBUG_PAUSED:
            self._change(eid, {"status": "paused"})
        elif kind == EventType.DEBUG_RESUMED and data.get("action") != "abort":
            self._change(eid, {"status": "running"})
        else:
            return
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def _change(self, eid: str, changes: dict[str, Any]) -> None:
        recent = self._recent.get(eid)
        if recent is not None:
            self._recent[eid] = recent.model_copy(update=changes)
        pending = self._new.get(eid)
        if pending is not None:
            if "status" in changes and changes.get("ended_at") and pending.duration_ms is None:
                changes.setdefault("duration_ms", (changes["ended_at"] - pending.started_at) * 1000)
            self._new[eid] = pending.model_copy(update=changes)
        else:
            self._changes.setdefault(eid, {}).update(changes)

    @staticmethod
    def _summary_of(event: Event) -> ExecutionSummary:
        data = event.data
        trigger = data.get("trigger")
        if not isinstance(trigger, dict):
            trigger = {}
        return ExecutionSummary(
            id=event.execution_id, pipeline=str(data.get("pipeline", "")), status="running",
            trigger_type=str(trigger.get("type") or "manual"), trigger_payload=trigger.get("payload"),
            started_at=event.ts, definition_hash=str(data.get("definition_hash") or ""),
            parent_id=data.get("parent_id"), replay_of=data.get("replay_of"))

    def _matches(self, summary: ExecutionSummary) -> bool:
        """Whether the current filter shows ``summary`` (a run seen on the live stream)."""
        pipeline = self.pipeline_filter.currentData()
        if pipeline and summary.pipeline != pipeline:
            return False
        status = self.status_filter.currentData()
        if status and status != summary.status:
            return False
        since = self.since_filter.currentData()
        if since and summary.started_at < time.time() - since:
            return False
        text = self.text_filter.text().strip().lower()
        return not text or text in summary.id.lower() or text in summary.pipeline.lower()

    def _flush(self) -> None:
        """Apply the collected live changes: inserts at the top, then in-place updates."""
        new, self._new = self._new, {}
        changes, self._changes = self._changes, {}
        if new:
            items = sorted(new.values(), key=lambda s: (s.started_at, s.id), reverse=True)
            self._insert_top(items)
        for eid, change in changes.items():
            row = self.model.row_of(eid)
            if row < 0:
                continue
            item = self.model.execution(row)
            if change.get("ended_at") and "duration_ms" not in change and item.duration_ms is None:
                change["duration_ms"] = (change["ended_at"] - item.started_at) * 1000
            self.model.update(eid, **change)
        if self._wanted and self.service is not None:
            wanted, self._wanted = list(self._wanted)[:100], set()
            spawn(self._fetch_finished(self.service, self._generation.token, wanted),
                  what="Reading executions")

    async def _fetch_finished(self, service: StudioService, generation: Token, ids: list[str]) -> None:
        found = []
        for eid in ids:
            try:
                found.append(await service.get_execution(eid))
            except ServiceError:
                continue  # gone meanwhile (purged, another tenant): nothing to show
        if self._generation.is_current(generation) and service is self.service and found:
            self._insert_top(sorted(found, key=lambda s: (s.started_at, s.id), reverse=True))

    def _insert_top(self, items: list[ExecutionSummary]) -> None:
        bar = self.view.verticalScrollBar()
        scrolled = bar.value()
        inserted = self.model.insert_top(items)
        if inserted and scrolled > 0:
            # Someone reading further down keeps seeing the same rows.
            bar.setValue(scrolled + inserted * self.view.verticalHeader().defaultSectionSize())
        if inserted:
            self._update_count()

    # ------------------------------------------------------------------ selection

    def selected_id(self) -> str:
        rows = self.view.selectionModel().selectedRows()
        return str(rows[0].data(ID_ROLE)) if rows else ""

    def _selection_changed(self) -> None:
        if self._selecting:
            return
        eid = self.selected_id()
        if eid:
            self.hub.select_execution(eid)

    def _hub_selected(self, execution_id: str) -> None:
        if execution_id and execution_id != self.selected_id():
            self._select_row(execution_id)

    def _reselect(self) -> None:
        if self.hub.execution_id:
            self._select_row(self.hub.execution_id)

    def _select_row(self, execution_id: str) -> bool:
        row = self.model.row_of(execution_id)
        self._selecting = True
        try:
            selection = self.view.selectionModel()
            if row < 0:
                selection.clearSelection()
                return False
            index = self.model.index(row, 0)
            selection.setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect
                                      | QItemSelectionModel.SelectionFlag.Rows)
            self.view.scrollTo(index)
            return True
        finally:
            self._selecting = False

    def select(self, execution_id: str) -> None:
        """Select an execution here and in every pane."""
        self.hub.select_execution(execution_id)
        if not self._select_row(execution_id) and execution_id:
            self.statusMessage.emit(f"Execution {execution_id[:8]} is not in the loaded rows "
                                    "(other panes show it)")

    def _clicked(self, index: QModelIndex) -> None:
        if index.column() in LINK_COLUMNS:
            target = index.data(LINK_ROLE)
            if target:
                self.select(str(target))

    def _hovered(self, index: QModelIndex) -> None:
        link = index.column() in LINK_COLUMNS and bool(index.data(LINK_ROLE))
        if link:
            self.view.viewport().setCursor(QCursor(Qt.CursorShape.PointingHandCursor))
        else:
            self.view.viewport().unsetCursor()

