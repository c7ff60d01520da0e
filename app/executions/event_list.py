"""The raw event list of the selected execution: every recorded event, paged in on scroll.

Rows are read from the service 1,000 at a time by ``(execution, seq)`` as the view scrolls
(an execution of 50,000 events costs what is on screen), can be narrowed to one event type,
and follow a running execution live once the stored events are all shown. Selecting a row
selects its step run in the hub; a step run selected elsewhere selects its ``step.started``
row here, paging forward to it when needed.
"""

from __future__ import annotations

import asyncio
import bisect
from functools import partial
from typing import Any, Final

from PySide6.QtCore import (
    QItemSelectionModel,
    QObject,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableView,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from app import theme
from app.asyncqt import describe, spawn
from app.executions.json_tree import preview
from app.executions.support import cancel_all, named
from app.panes import setup_table
from app.selection import SelectionHub
from app.stale import Generation, Token
from app.tables import ROOT, ColumnsModel, Index
from engine.service.errors import ServiceError
from engine.service.models import TERMINAL_EVENTS, Event, EventType
from engine.service.protocol import StudioService

PAGE: Final = 1000  # events per read
TAIL_MS: Final = 100  # live events are appended at most this often
MAX_SEEK_PAGES: Final = 100  # pages read forward to reach a step selected elsewhere
COLUMNS: Final = ("Seq", "Time", "Type", "Step", "Data")
SEQ, TIME, TYPE, STEP, DATA = range(len(COLUMNS))
RUNNING: Final = frozenset({"running", "paused"})
# Fields that name the step run (shown in the Step column, so left out of the summary).
_RUN_KEYS: Final = frozenset({"step", "path", "attempt", "started_seq", "iteration", "index"})
EVENT_ROLE: Final = Qt.ItemDataRole.UserRole + 1



def step_label(data: dict[str, Any]) -> str:
    path = str(data.get("path") or data.get("step") or "")
    if not path:
        return ""
    extra = []
    if data.get("iteration") is not None:
        extra.append(f"#{data['iteration']}")
    if isinstance(data.get("attempt"), int) and data["attempt"] > 1:
        extra.append(f"attempt {data['attempt']}")
    return f"{path} ({', '.join(extra)})" if extra else path


def summarize(data: dict[str, Any], budget: int = 160) -> str:
    """``key=value`` pairs of an event's data (its step fields left out), cut to ``budget``."""
    parts: list[str] = []
    used = 0
    for key, value in data.items():
        if key in _RUN_KEYS:
            continue
        room = budget - used
        if room <= 10:
            parts.append("…")
            break
        text = f"{key}={preview(value, max(10, room - len(key) - 1))}"
        parts.append(text)
        used += len(text) + 2
    return ", ".join(parts)


def format_offset(seconds: float) -> str:
    if seconds < 0:
        return ""
    if seconds < 1:
        return f"+{seconds * 1000:.1f} ms"
    if seconds < 60:
        return f"+{seconds:.3f} s"
    minutes, rest = divmod(seconds, 60)
    return f"+{int(minutes)}m {rest:06.3f}s"


def step_run_of(event: Event) -> tuple[str, int] | None:
    """(path, started seq) of the step run an event names directly, if it does."""
    data = event.data
    path = data.get("path")
    if not isinstance(path, str) or not path:
        return None
    if event.type in (EventType.STEP_STARTED, EventType.STEP_SKIPPED):
        return path, event.seq
    started = data.get("started_seq")
    if isinstance(started, int):
        return path, started
    return path, 0  # a step event without its run's seq (mocked, retrying, log, reused…)


class EventTableModel(ColumnsModel):
    """Loaded events in seq order; ``wantMore`` asks for the page after the last one."""

    COLUMNS = COLUMNS
    wantMore = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.events: list[Event] = []
        self.seqs: list[int] = []  # for bisect
        self.started_at = 0.0
        self.exhausted = True  # nothing more is stored (beyond the live tail)
        self.loading = False

    def reset(self, started_at: float = 0.0, exhausted: bool = True) -> None:
        self.beginResetModel()
        self.events, self.seqs = [], []
        self.started_at = started_at
        self.exhausted = exhausted
        self.loading = False
        self.endResetModel()

    def append(self, events: list[Event]) -> None:
        last = self.seqs[-1] if self.seqs else 0
        fresh = [e for e in events if e.seq > last]
        if not fresh:
            return
        start = len(self.events)
        self.beginInsertRows(ROOT, start, start + len(fresh) - 1)
        self.events.extend(fresh)
        self.seqs.extend(e.seq for e in fresh)
        self.endInsertRows()

    def last_seq(self) -> int:
        return self.seqs[-1] if self.seqs else 0

    def row_of_seq(self, seq: int) -> int:
        row = bisect.bisect_left(self.seqs, seq)
        return row if row < len(self.seqs) and self.seqs[row] == seq else -1

    def rowCount(self, parent: Index = ROOT) -> int:
        return 0 if parent.isValid() else len(self.events)

    def canFetchMore(self, parent: Index) -> bool:
        return not parent.isValid() and not self.exhausted and not self.loading

    def fetchMore(self, parent: Index) -> None:
        if self.canFetchMore(parent):
            self.loading = True
            self.wantMore.emit()

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        event = self.events[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if column == SEQ:
                return str(event.seq)
            if column == TIME:
                return format_offset(event.ts - self.started_at) if self.started_at else ""
            if column == TYPE:
                return event.type
            if column == STEP:
                return step_label(event.data)
            return summarize(event.data)
        if role == EVENT_ROLE:
            return event
        if role == Qt.ItemDataRole.ForegroundRole:
            c = theme.colors()
            if column == TYPE:
                kind = event.type
                # by family (.failed, debug., execution.): a plugin step's own events too
                if kind.endswith(".failed") or kind == EventType.STEP_RETRYING:
                    return QColor(c.error)
                if kind.startswith("debug.") or kind in (EventType.STEP_MOCKED, EventType.STEP_SKIPPED):
                    return QColor(c.warning)
                if kind.startswith("execution."):
                    return QColor(c.accent)
            if column in (SEQ, TIME, DATA):
                return QColor(c.muted)
        if role == Qt.ItemDataRole.ToolTipRole and column == DATA:
            return preview(event.data, 1500)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (SEQ, TIME):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class EventList(QWidget):
    """The selected execution's events; selecting one selects its step run in the hub."""

    statusMessage = Signal(str)

    def __init__(self, hub: SelectionHub, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("eventList")
        self.hub = hub
        self.service: StudioService | None = None
        self.execution_id = ""
        self.status = ""
        self._generation = Generation()
        self._types_seen: set[str] = set()
        self._tail: asyncio.Task[Any] | None = None
        self._tail_buffer: list[Event] = []
        self._seek: tuple[str, int] | None = None  # a step run to select once its row is loaded
        self._seek_pages = 0
        self._selecting = False

        self.model = EventTableModel(self)
        self.model.wantMore.connect(self._load_more)
        self._build()
        self._tail_timer = QTimer(self, singleShot=True, interval=TAIL_MS)
        self._tail_timer.timeout.connect(self._flush_tail)
        hub.executionSelected.connect(self.show_execution)
        hub.stepRunSelected.connect(self._hub_step_selected)
        self._tasks: list[asyncio.Task[Any]] = []
        self.destroyed.connect(partial(cancel_all, self._tasks))

    def _build(self) -> None:
        self.type_filter = named(QComboBox(), "eventTypeFilter")
        self.type_filter.addItem("All types", None)
        self.type_filter.setMinimumContentsLength(18)
        self.type_filter.setToolTip("Show one event type (types of the events read so far)")
        self.type_filter.currentIndexChanged.connect(self._filter_changed)
        self.info = named(QLabel(), "eventListInfo")
        top = QHBoxLayout()
        top.setContentsMargins(4, 4, 4, 0)
        top.addWidget(self.type_filter)
        top.addWidget(self.info, 1)

        view = self.view = setup_table(named(QTableView(), "eventTable"), self.model,
                                       {SEQ: 60, TIME: 90, TYPE: 150, STEP: 170}, single=True)
        view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 6)
        view.selectionModel().selectionChanged.connect(self._selection_changed)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addWidget(view, 1)

    # ------------------------------------------------------------------ loading

    def set_service(self, service: StudioService | None) -> None:
        self.service = service
        self.show_execution(self.hub.execution_id if service is not None else "")

    def selected_type(self) -> str | None:
        return self.type_filter.currentData()

    def show_execution(self, execution_id: str) -> None:
        """Read the first page of ``execution_id``'s events ("" clears the list)."""
        self._stop_tail()
        generation = self._generation.next()
        self._seek = None
        if execution_id != self.execution_id:
            self._types_seen = set()
            self.type_filter.blockSignals(True)
            self.type_filter.clear()
            self.type_filter.addItem("All types", None)
            self.type_filter.blockSignals(False)
        self.execution_id = execution_id
        loading = bool(execution_id and self.service is not None)
        self.model.reset(exhausted=not loading)
        self.model.loading = loading  # until the first page: a step selected meanwhile waits
        self.info.clear()
        if loading and self.service is not None:
            self._spawn(self._load_first(self.service, generation, execution_id),
                        "Reading events")

    def refresh(self) -> None:
        self.show_execution(self.execution_id)

    def _spawn(self, coro: Any, what: str) -> None:
        task = spawn(coro, what=what)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    async def _load_first(self, service: StudioService, generation: Token, execution_id: str) -> None:
        try:
            summary = await service.get_execution(execution_id)
        except ServiceError as exc:
            if self._generation.is_current(generation):
                self.model.reset()
                self.info.setText(describe(exc))
            return
        if not self._generation.is_current(generation):
            return
        self.status = summary.status
        self.model.reset(summary.started_at, exhausted=False)
        self.model.loading = True
        await self._read_page(service, generation)

    def _load_more(self) -> None:
        if self.service is None or not self.execution_id:
            self.model.loading = False
            return
        self._spawn(self._read_page(self.service, self._generation.token), "Reading events")

    async def _read_page(self, service: StudioService, generation: Token) -> None:
        wanted = self.selected_type()
        try:
            page = await service.events(self.execution_id, after_seq=self.model.last_seq(),
                                        types=[wanted] if wanted else None, limit=PAGE)
        except BaseException:
            if self._generation.is_current(generation):
                self.model.loading = False
            raise
        if not self._generation.is_current(generation):
            return
        self.model.loading = False
        if len(page) < PAGE:
            self.model.exhausted = True
        self._note_types(page)
        self.model.append(page)
        self._update_info()
        if self.model.exhausted and self.status in RUNNING:
            self._start_tail(service, generation)
        if self._seek is not None:
            self._seek_to_pending()

    def _note_types(self, events: list[Event]) -> None:
        fresh = {e.type for e in events} - self._types_seen
        if not fresh:
            return
        self._types_seen |= fresh
        combo = self.type_filter
        current = combo.currentData()
        combo.blockSignals(True)
        try:
            combo.clear()
            combo.addItem("All types", None)
            for kind in sorted(self._types_seen):
                combo.addItem(kind, kind)
            combo.setCurrentIndex(max(0, combo.findData(current)) if current else 0)
        finally:
            combo.blockSignals(False)

    def _filter_changed(self) -> None:
        self.show_execution(self.execution_id)

    def _update_info(self) -> None:
        n = self.model.rowCount()
        state = "live" if self._tail is not None else ("more on scroll" if not self.model.exhausted else "")
        self.info.setText(f"{n:,} event{'s' if n != 1 else ''}" + (f" · {state}" if state else ""))

    # ------------------------------------------------------------------ live tail

    def _start_tail(self, service: StudioService, generation: Token) -> None:
        if self._tail is None:
            self._tail = spawn(self._follow(service, generation, self.execution_id,
                                            self.model.last_seq()), what="Following events",
                               background=True)
            self._tasks.append(self._tail)

    def _stop_tail(self) -> None:
        if self._tail is not None:
            self._tail.cancel()
            self._tail = None
        self._tail_buffer.clear()

    async def _follow(self, service: StudioService, generation: Token, execution_id: str,
                      after_seq: int) -> None:
        wanted = self.selected_type()
        try:
            async for event in service.subscribe(execution_id, after_seq):
                if not self._generation.is_current(generation) or not isValid(self):
                    return
                if wanted is None or event.type == wanted:
                    self._tail_buffer.append(event)
                    if not self._tail_timer.isActive():
                        self._tail_timer.start()
                if event.type in TERMINAL_EVENTS:
                    self.status = "ended"
        except ServiceError as exc:
            if self._generation.is_current(generation) and isValid(self):
                self.statusMessage.emit(f"Live events stopped: {describe(exc)}")
        finally:
            if self._generation.is_current(generation) and isValid(self):
                self._tail = None
                self._flush_tail()

    def _flush_tail(self) -> None:
        events, self._tail_buffer = self._tail_buffer, []
        if events:
            self._note_types(events)
            self.model.append(events)
        self._update_info()
        if self._seek is not None:
            self._seek_to_pending()

    # ------------------------------------------------------------------ selection

    def selected_event(self) -> Event | None:
        rows = self.view.selectionModel().selectedRows()
        return rows[0].data(EVENT_ROLE) if rows else None

    def _selection_changed(self) -> None:
        if self._selecting:
            return
        event = self.selected_event()
        if event is None:
            return
        run = self._run_of(event)
        if run is not None:
            self.hub.select_step_run(self.execution_id, *run)

    def _run_of(self, event: Event) -> tuple[str, int] | None:
        """The step run an event belongs to: named by the event, or the latest start before it."""
        named = step_run_of(event)
        if named is None:
            return None
        path, seq = named
        if seq:
            return path, seq
        iteration = event.data.get("iteration")
        row = self.model.row_of_seq(event.seq)
        for before in reversed(self.model.events[max(0, row - 5000):row]):
            data = before.data
            if (before.type == EventType.STEP_STARTED and data.get("path") == path
                    and (iteration is None or data.get("iteration") == iteration)):
                return path, before.seq
        return path, 0

    def _hub_step_selected(self, execution_id: str, path: str, seq: int) -> None:
        if execution_id != self.execution_id or self._selecting:
            return
        self._seek = (path, seq) if path else None
        self._seek_pages = 0
        if self._seek is not None:
            self._seek_to_pending()

    def _seek_to_pending(self) -> None:
        """Select the pending step run's start row, reading forward until it is loaded."""
        if self._seek is None:
            return
        path, seq = self._seek
        row = self._row_of_run(path, seq)
        if row >= 0:
            self._seek = None
            self._select_row(row)
            return
        beyond = seq > self.model.last_seq() or seq == 0
        if beyond and self.model.canFetchMore(ROOT) and self._seek_pages < MAX_SEEK_PAGES:
            self._seek_pages += 1
            self.model.fetchMore(ROOT)
        elif not self.model.loading:
            self._seek = None  # not among the events shown (filtered out, or not recorded)

    def _row_of_run(self, path: str, seq: int) -> int:
        if seq:
            row = self.model.row_of_seq(seq)
            if row >= 0:
                return row
            # filtered by type: the run's first shown event instead of its start
            for row, event in enumerate(self.model.events):
                if event.seq >= seq:
                    return row if step_run_of(event) == (path, seq) else -1
            return -1
        for row, event in enumerate(self.model.events):
            if event.data.get("path") == path:
                return row
        return -1

    def _select_row(self, row: int) -> None:
        self._selecting = True
        try:
            index = self.model.index(row, 0)
            self.view.selectionModel().setCurrentIndex(
                index, QItemSelectionModel.SelectionFlag.ClearAndSelect
                | QItemSelectionModel.SelectionFlag.Rows)
            self.view.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)
        finally:
            self._selecting = False
