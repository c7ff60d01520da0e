"""The Sources pane: the sources of the loaded files, their state and counters, and for the
selected one its lag over time, Start/Stop, "Send test event…" and its recent deliveries.

While the pane is visible it reads ``list_sources()`` every :data:`REFRESH_MS` (the
counters live in the service's memory: the call is cheap) and samples each source's lag
for the plot; hidden, it reads nothing. The selected source's deliveries (a store query)
are read again only when its counters moved. Double-clicking a delivery opens what it
became: its execution (:attr:`SourcesPane.openExecution`, which the window shows in the
timeline) or its dead-letter entry (:attr:`SourcesPane.openDlqEntry`).

The plot needs pyqtgraph, which the window does not import at start: it is built the first
time the pane shows.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Final

from PySide6.QtCore import QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app import theme
from app.asyncqt import describe, spawn
from app.executions.support import named
from app.icons import icon
from app.panes import MessageLine, select_rows, setup_table
from app.selection import SelectionHub
from app.sources.sources_model import (
    ACKED,
    DEAD,
    DELIVERED,
    DELIVERY_ROLE,
    EVENT_ID,
    EVENT_TYPE,
    IN_FLIGHT,
    LAG,
    NAME,
    NAME_ROLE,
    OUTCOME,
    PIPELINES,
    RECEIVED,
    REDELIVERED,
    STATE,
    TYPE,
    DeliveriesModel,
    SourcesModel,
    state_color,
    target_of,
)
from app.sources.state_badge import StateBadgeDelegate
from app.sources.test_event_dialog import TestEventDialog, event_schema_of
from app.stale import Generation, Token
from engine.service.errors import ServiceError
from engine.service.models import SourceDelivery, SourceInfo
from engine.service.protocol import StudioService

if TYPE_CHECKING:
    from app.sources.lag_plot import LagHistory, LagPlot

REFRESH_MS: Final = 1000  # while visible
DELIVERIES: Final = 50  # recent deliveries listed
SOURCE_WIDTHS: Final = {NAME: 110, TYPE: 100, STATE: 80, PIPELINES: 120, DELIVERED: 74, ACKED: 64,
                        REDELIVERED: 92, DEAD: 106, IN_FLIGHT: 66, LAG: 90}
DELIVERY_WIDTHS: Final = {RECEIVED: 70, EVENT_ID: 150, EVENT_TYPE: 110, OUTCOME: 95}
STATES: Final = ("running", "lagging", "failing", "stopped")


class SourcesPane(QWidget):
    openExecution = Signal(str)  # an execution a delivery started
    openDlqEntry = Signal(str)  # the dead-letter entry a delivery became
    statusMessage = Signal(str)

    def __init__(self, hub: SelectionHub, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sourcesPane")
        self.hub = hub
        self.service: StudioService | None = None
        self.loading = False  # a list_sources call is out: the timer does not ask again
        self.loads = 0  # completed reads of the sources (the tests wait on it)
        self.busy: set[str] = set()  # sources being started or stopped
        self._generation = Generation()
        self._deliveries_generation = Generation()
        self._counters_seen: tuple[Any, ...] | None = None  # the selected source's, last deliveries read
        self.model = SourcesModel(self)
        self.deliveries = DeliveriesModel(self)
        self.history: LagHistory | None = None
        self.lag_plot: LagPlot | None = None
        self.dialog: TestEventDialog | None = None
        self._build()
        self._timer = QTimer(self, interval=REFRESH_MS)
        self._timer.timeout.connect(self._tick)

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        self.summary = named(QLabel(), "sourcesSummary")
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        refresh = named(QToolButton(), "sourcesRefresh")
        refresh.setIcon(icon("reset"))
        refresh.setToolTip("Read the sources again now")
        refresh.clicked.connect(self.refresh)
        top = QHBoxLayout()
        top.setContentsMargins(6, 4, 4, 0)
        top.addWidget(self.summary, 1)
        top.addWidget(refresh)

        view = self.view = setup_table(named(QTableView(), "sourcesView"), self.model, SOURCE_WIDTHS,
                                       single=True)
        view.setItemDelegateForColumn(STATE, StateBadgeDelegate(view))
        view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 10)
        view.selectionModel().selectionChanged.connect(self._selection_changed)

        self.detail_title = named(QLabel("Select a source"), "sourceDetailTitle")
        self.detail_title.setTextFormat(Qt.TextFormat.RichText)
        self.detail_title.setWordWrap(True)
        self.detail_title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.detail_error = named(QLabel(), "sourceDetailError")  # the last error, whole
        self.detail_error.setWordWrap(True)
        self.detail_error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.detail_error.hide()
        self.plot_box = QVBoxLayout()
        self.plot_box.setContentsMargins(0, 0, 0, 0)
        self.plot_placeholder = QLabel("", alignment=Qt.AlignmentFlag.AlignCenter)
        self.plot_box.addWidget(self.plot_placeholder, 1)
        self.start_button = named(QPushButton("Start"), "sourceStart")
        self.start_button.setIcon(icon("run"))
        self.start_button.setToolTip("Start reading from the source's transport")
        self.start_button.clicked.connect(lambda: self.set_running(True))
        self.stop_button = named(QPushButton("Stop"), "sourceStop")
        self.stop_button.setToolTip("Stop reading (what was taken in runs to its end)")
        self.stop_button.clicked.connect(lambda: self.set_running(False))
        self.test_button = named(QPushButton("Send test event…"), "sourceTestEvent")
        self.test_button.setToolTip("Send a made-up event through the source's intake (works stopped)")
        self.test_button.clicked.connect(self.open_test_dialog)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        buttons.addWidget(self.test_button)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(4, 0, 4, 0)
        left_layout.addWidget(self.detail_title)
        left_layout.addWidget(self.detail_error)
        left_layout.addLayout(self.plot_box, 1)
        left_layout.addLayout(buttons)

        self.deliveries_title = named(QLabel("Recent deliveries"), "sourceDeliveriesTitle")
        self.deliveries_view = setup_table(named(QTableView(), "sourceDeliveriesView"), self.deliveries,
                                           DELIVERY_WIDTHS, single=True)
        self.deliveries_view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 8)
        self.deliveries_view.doubleClicked.connect(self._delivery_activated)
        self.deliveries_view.activated.connect(self._delivery_activated)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(4, 0, 4, 0)
        right_layout.addWidget(self.deliveries_title)
        right_layout.addWidget(self.deliveries_view, 1)

        detail = QSplitter(Qt.Orientation.Horizontal)
        detail.addWidget(left)
        detail.addWidget(right)
        detail.setStretchFactor(0, 2)
        detail.setStretchFactor(1, 3)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(view)
        split.addWidget(detail)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)

        self.message = MessageLine("sourcesMessage")
        self.message.said.connect(self.statusMessage)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addWidget(split, 1)
        layout.addWidget(self.message)
        self._update_actions()

    def _ensure_plot(self) -> None:
        """Build the lag plot (pyqtgraph is imported here, the first time the pane shows)."""
        if self.lag_plot is not None:
            return
        from app.sources.lag_plot import LagHistory, LagPlot

        self.history = LagHistory()
        self.lag_plot = LagPlot()
        self.plot_box.replaceWidget(self.plot_placeholder, self.lag_plot)
        self.plot_placeholder.deleteLater()
        self._show_plot()

    # ------------------------------------------------------------------ visibility

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._ensure_plot()
        self._timer.start()
        self.refresh()

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self._timer.stop()  # hidden: nothing is read

    def _tick(self) -> None:
        if self.isVisible() and not self.loading:
            self.refresh()

    # ------------------------------------------------------------------ service

    def set_service(self, service: StudioService | None) -> None:
        """Show ``service``'s sources (None: nothing)."""
        self.service = service
        self._generation.invalidate()
        self._deliveries_generation.invalidate()
        self.loading = False
        self.busy.clear()
        self.model.update([])
        self.deliveries.reset([])
        self._counters_seen = None
        if self.history is not None:
            self.history.clear()
        self.message.say("")
        self._show_summary([])
        self._show_detail()
        if service is not None and self.isVisible():
            self.refresh()

    def refresh(self) -> None:
        """Read the sources (and the selected one's deliveries when its counters moved)."""
        if self.service is None:
            return
        self.loading = True
        spawn(self._load(self.service, self._generation.next()), what="Listing the sources")

    async def _load(self, service: StudioService, generation: Token) -> None:
        try:
            sources = await service.list_sources()
        except ServiceError as exc:
            if self._generation.is_current(generation):
                self.message.say(f"Could not list the sources: {describe(exc)}", error=True)
            return
        finally:
            if self._generation.is_current(generation):
                self.loading = False  # whatever happened, the timer may ask again
        if not self._generation.is_current(generation) or service is not self.service:
            return
        self.loads += 1
        selected = self.selected_name()
        if self.message.text().startswith("Could not list the sources"):
            self.message.say("")  # the service answers again
        self.model.update(sources)
        if self.history is not None:
            self.history.add(sources)
        self._show_summary(sources)
        if selected and self.model.row_of(selected) >= 0:
            if self.selected_name() != selected:
                self.select(selected)
        elif self.model.rowCount() and not self.selected_name():
            self.select(sources[0].name)  # something to look at from the start
        self._show_detail()
        self._maybe_load_deliveries()

    def _show_summary(self, sources: list[SourceInfo]) -> None:
        if not sources:
            self.summary.setText("No sources: a source is a connector of a <code>source.*</code> type "
                                 "that a pipeline's <code>event</code> trigger names"
                                 if self.service is not None else "")
            return
        counts = {state: sum(1 for s in sources if s.state == state) for state in STATES}
        parts = [f"<b>{len(sources)}</b> source{'s' if len(sources) != 1 else ''}"]
        parts += [f"<span style='color:{state_color(state).name()}'>●</span> {state} <b>{n}</b>"
                  for state, n in counts.items() if n]
        in_flight = sum(s.in_flight for s in sources)
        parts.append(f"in flight <b>{in_flight:,}</b>")
        self.summary.setText(" &nbsp; ".join(parts))

    # ------------------------------------------------------------------ selection

    def selected_name(self) -> str:
        rows = self.view.selectionModel().selectedRows()
        return str(rows[0].data(NAME_ROLE)) if rows else ""

    def selected_source(self) -> SourceInfo | None:
        name = self.selected_name()
        return self.model.by_name(name) if name else None

    def select(self, name: str) -> None:
        select_rows(self.view, [self.model.index(self.model.row_of(name), 0)])

    def _selection_changed(self) -> None:
        self._counters_seen = None
        self._deliveries_generation.invalidate()
        self.deliveries.reset([])
        self._show_detail()
        self._maybe_load_deliveries()

    def _show_detail(self) -> None:
        s = self.selected_source()
        c = theme.colors()
        if s is None:
            self.detail_title.setText(f"<span style='color:{c.muted}'>Select a source to see its lag, "
                                      "start or stop it and send it a test event</span>")
            self.deliveries_title.setText("Recent deliveries")
        else:
            colour = state_color(s.state).name()
            config = ", ".join(f"{k}: {v}" for k, v in s.config.items()
                               if not isinstance(v, dict | list))
            self.detail_title.setText(
                f"<b>{s.name}</b> · {s.type} · <span style='color:{colour}'>{s.state}</span>"
                f" → {', '.join(s.pipelines) or 'no pipeline'}<br><small style='color:{c.muted}'>"
                f"{PurePath(s.file).name}{' · ' + config if config else ''}</small>")
            self.detail_title.setToolTip(f"Declared in {s.file}")
            self.deliveries_title.setText(f"Recent deliveries of {s.name} (double-click to open)")
        error = s.last_error if s is not None else None
        self.detail_error.setVisible(bool(error))
        if error:
            self.detail_error.setStyleSheet(f"color: {c.error};")
            self.detail_error.setText(error[:2000])
        self._show_plot()
        self._update_actions()

    def _show_plot(self) -> None:
        if self.lag_plot is None or self.history is None:
            return
        s = self.selected_source()
        self.lag_plot.show_samples(s, self.history.of(s.name) if s else [])

    def _update_actions(self) -> None:
        s = self.selected_source()
        ready = self.service is not None and s is not None and s.name not in self.busy
        running = s is not None and s.state != "stopped"
        self.start_button.setEnabled(ready and not running)
        self.stop_button.setEnabled(ready and running)
        self.test_button.setEnabled(self.service is not None and s is not None)

    # ------------------------------------------------------------------ deliveries

    def _maybe_load_deliveries(self) -> None:
        s = self.selected_source()
        if s is None or self.service is None:
            return
        seen = (s.name, s.delivered, s.started, s.dead_lettered, s.redelivered, s.filtered, s.in_flight)
        if seen == self._counters_seen:
            return
        self._counters_seen = seen
        self.load_deliveries()

    def load_deliveries(self) -> None:
        s = self.selected_source()
        if s is not None and self.service is not None:
            spawn(self._load_deliveries(self.service, s.name, self._deliveries_generation.next()),
                  what="Reading the source's deliveries")

    async def _load_deliveries(self, service: StudioService, name: str, generation: Token) -> None:
        try:
            deliveries = await service.source_deliveries(name, DELIVERIES)
        except ServiceError as exc:
            if self._deliveries_generation.is_current(generation):
                self.message.say(f"Could not read {name}'s deliveries: {describe(exc)}", error=True)
            return
        if not self._deliveries_generation.is_current(generation) or service is not self.service:
            return
        chosen = self.deliveries_view.currentIndex().data(DELIVERY_ROLE)
        self.deliveries.reset(deliveries)
        if isinstance(chosen, SourceDelivery):
            row = self.deliveries.row_of(chosen.event_id)
            if row >= 0:
                select_rows(self.deliveries_view, [self.deliveries.index(row, 0)])

    def _delivery_activated(self, index: QModelIndex) -> None:
        delivery = index.data(DELIVERY_ROLE)
        if isinstance(delivery, SourceDelivery):
            self.open_delivery(delivery)

    def open_delivery(self, delivery: SourceDelivery) -> None:
        """Open what ``delivery`` became: its execution or its dead-letter entry."""
        target = target_of(delivery)
        if target is None:
            self.message.say(f"Event {delivery.event_id} was {delivery.outcome.replace('_', ' ')}: "
                             "it started no execution")
        else:
            self.open_target(*target)

    def open_target(self, kind: str, target_id: str) -> None:
        if kind == "dlq":
            self.openDlqEntry.emit(target_id)
        else:
            self.hub.select_execution(target_id)
            self.openExecution.emit(target_id)

    # ------------------------------------------------------------------ start, stop, test events

    def set_running(self, running: bool) -> None:
        s = self.selected_source()
        if s is None or self.service is None or s.name in self.busy:
            return
        self.busy.add(s.name)
        self._update_actions()
        self.message.say(f"{'Starting' if running else 'Stopping'} {s.name}…")
        spawn(self._set_running(self.service, s.name, running),
              what=f"{'Starting' if running else 'Stopping'} the source")

    async def _set_running(self, service: StudioService, name: str, running: bool) -> None:
        try:
            info = await (service.start_source(name) if running else service.stop_source(name))
        except ServiceError as exc:
            self.message.say(f"Could not {'start' if running else 'stop'} {name}: {describe(exc)}",
                             error=True)
            return
        finally:
            self.busy.discard(name)
            self._update_actions()
        if service is not self.service:
            return
        self.message.say(f"{name} {'started' if running else 'stopped'} ({info.state})")
        self.refresh()

    def open_test_dialog(self) -> None:
        s = self.selected_source()
        if s is None or self.service is None:
            return
        spawn(self._open_test_dialog(self.service, s), what="Opening the test event form")

    async def _open_test_dialog(self, service: StudioService, source: SourceInfo) -> None:
        try:
            schema = await event_schema_of(service, source)
        except ServiceError as exc:
            self.message.say(f"Could not read {source.name}'s event schema ({describe(exc)}); "
                             "the data is edited as JSON", error=True)
            schema = {}
        if service is not self.service:
            return
        if self.dialog is not None:
            self.dialog.close()
        dialog = self.dialog = TestEventDialog(service, source, schema, self)
        # Deleted when closed (not WA_DeleteOnClose: deleting such a window after its answer hid
        # its parent crashes PySide).
        dialog.finished.connect(dialog.deleteLater)
        dialog.finished.connect(lambda _r, d=dialog: self._dialog_closed(d))
        dialog.sent.connect(self._test_sent)
        dialog.openRequested.connect(self.open_target)
        dialog.open()

    def _dialog_closed(self, dialog: TestEventDialog) -> None:
        if self.dialog is dialog:
            self.dialog = None

    def _test_sent(self, delivery: SourceDelivery) -> None:
        self.statusMessage.emit(f"Test event {delivery.event_id}: {delivery.outcome.replace('_', ' ')}")
        self._counters_seen = None  # read the deliveries at once, whatever the counters say
        self.refresh()
