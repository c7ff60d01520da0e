"""The timeline pane: every step run of one execution as a bar on a time axis.

``load(id)`` reads ``service.timeline(id)`` (the step runs, one indexed query) and the few
marker events (retries, routes, mocks, pauses, context edits); the lane tree and the bar
arrays of tens of thousands of runs are built in a worker thread, not on the GUI thread. A
running execution is then followed through ``service.subscribe`` from the last
seq seen: events are folded in as they come and the view is redrawn at most 20 times a
second; when the execution ends the stored timeline is read again (the authority).

Selection goes through the :class:`SelectionHub`: clicking a bar selects its step run
everywhere; a step run selected elsewhere is highlighted here, its lane unfolded and
scrolled into view. The pane also follows ``hub.executionSelected`` once a service is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import html
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QCursor, QKeySequence
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMenu,
    QSizePolicy,
    QToolButton,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from app.asyncqt import describe, spawn
from app.executions.timeline_hover import GLYPHS, bar_at, describe_bar
from app.executions.timeline_items import ROW_PX, BarsItem, LaneLabels, TimeAxis, TimelineViewBox, ViewState
from app.executions.timeline_model import (
    BAND,
    CHUNK_GROUP,
    EXPAND_ITERATIONS,
    ITERATION,
    MARKER_EVENTS,
    TERMINAL_EVENTS,
    LaneInfo,
    PauseSpan,
    TimelineModel,
)
from app.executions.timeline_style import (
    COLOR_KEYS,
    MARKER_KINDS,
    MARKER_LABELS,
    format_ms,
    format_seconds,
    timeline_style,
)
from app.selection import SelectionHub
from app.stale import Generation, Token
from engine.service.errors import ServiceError, Unavailable
from engine.service.models import Event, StepRun
from engine.service.protocol import StudioService

FRAME_MS = 50  # live redraws are coalesced to at most 20 a second
IDLE_FRAME_MS = 200  # while nothing happens (a long step, a pause) only the clock moves
EVENT_PAGE = 1000
_RESUBSCRIBE_LIMIT = 5


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while a big timeline is materialised (about 3 objects per step run):
    without this, full collections rescan the whole heap several times during one load and
    double its time. Nothing is freed late: the collection simply runs once afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class TimelinePane(QWidget):
    def __init__(self, hub: SelectionHub, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("timelinePane")
        self.hub = hub
        self.service: StudioService | None = None
        self.execution_id = ""
        self.state = ViewState()
        self._target = ""  # the execution being loaded or shown
        self._generation = Generation()  # bumps per load: stale loads and streams stop touching the view
        self._choices: dict[tuple[Any, ...], bool] = {}  # lane key -> expanded, by the user
        self._follow = True
        self._user_moved_x = False
        self._live_task: asyncio.Task[Any] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()  # loads started by the pane itself
        self._loading = 0
        self._pending_selection: tuple[str, str, int] | None = None
        self._seen = (-1, -1, -1)  # (structure, bars, data) versions of the last layout
        self._hover_text = ""

        self.title = QLabel(self)
        self.title.setObjectName("timelineTitle")
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.legend = QLabel(self)
        self.legend.setObjectName("timelineLegend")
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.message = QLabel(self)
        self.message.setObjectName("timelineMessage")
        self.message.setWordWrap(True)
        self.message.hide()

        self.fit_action = self._action("Zoom to fit", "zoomToFit", self.zoom_to_fit, "F",
                                       "Show the whole execution (F)")
        self.expand_action = self._action("Expand all", "expandAll", self.expand_all, None,
                                          "Unfold every lane (big loops stay in groups of 100)")
        self.collapse_action = self._action("Collapse all", "collapseAll", self.collapse_all, None,
                                            "Fold every lane with sub-lanes into one row")
        self.follow_action = self._action("Follow live", "followLive", self.follow_live, None,
                                          "Update while the execution runs and keep its latest step in view")
        self.follow_action.setCheckable(True)
        self.follow_action.setChecked(True)
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(self.title, 1)
        for action in (self.fit_action, self.expand_action, self.collapse_action, self.follow_action):
            button = QToolButton(self)
            button.setObjectName(action.objectName() + "Button")
            button.setDefaultAction(action)
            buttons.addWidget(button)

        self.plot = pg.GraphicsLayoutWidget(self)
        self.plot.setObjectName("timelinePlot")
        self.plot.ci.layout.setContentsMargins(0, 4, 8, 0)
        self.plot.ci.layout.setHorizontalSpacing(0)
        self.plot.ci.layout.setVerticalSpacing(0)
        self.vb = TimelineViewBox()
        self.vb.invertY(True)
        self.vb.setMouseEnabled(x=True, y=True)
        self.vb.disableAutoRange()
        self.vb.clicked = self._clicked
        self.vb.double_clicked = self._double_clicked
        self.bars = BarsItem(self.state)
        self.vb.addItem(self.bars)
        self.labels = LaneLabels(self.state, self.vb)
        self.labels.toggled = self._toggle_row
        self.labels.activated = self._activate_row
        self.axis = TimeAxis("bottom")
        self.axis.linkToView(self.vb)
        self.axis.enableAutoSIPrefix(False)  # ticks carry their unit (µs, ms, s, m:ss)
        self.axis.setLabel("time since start")
        self.bars.axis = self.axis  # the bars draw the grid: cheaper than the axis' own
        self.plot.addItem(self.labels, row=0, col=0)
        self.plot.addItem(self.vb, row=0, col=1)
        self.plot.addItem(self.axis, row=1, col=1)
        self.vb.sigResized.connect(self._keep_row_height)
        self.vb.sigRangeChangedManually.connect(self._moved_by_user)
        self.plot.scene().sigMouseMoved.connect(self._hover)

        box = QVBoxLayout(self)
        box.setContentsMargins(4, 4, 4, 4)
        box.setSpacing(2)
        box.addLayout(buttons)
        box.addWidget(self.legend)
        box.addWidget(self.message)
        box.addWidget(self.plot, 1)

        self._frame = QTimer(self)
        self._frame.setSingleShot(True)
        self._frame.setInterval(FRAME_MS)
        self._frame.timeout.connect(self._refresh)
        hub.stepRunSelected.connect(self._hub_selected)
        hub.executionSelected.connect(self._hub_execution)
        self._apply_theme()
        self._show_message("No execution selected.")

    def _action(self, text: str, name: str, slot: Any, shortcut: str | None, tip: str) -> QAction:
        action = QAction(text, self)
        action.setObjectName(name)
        action.setToolTip(tip)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        if name == "followLive":
            action.toggled.connect(slot)
        else:
            action.triggered.connect(lambda _checked=False: slot())
        self.addAction(action)
        return action

    # ------------------------------------------------------------------ public API

    @property
    def model(self) -> TimelineModel | None:
        return self.state.model

    def set_service(self, service: StudioService | None) -> None:
        """Switch backend: what was shown came from the old one, so it is cleared."""
        if service is self.service:
            return
        self.stop_live()
        self.service = service
        self.clear()

    def clear(self, message: str = "No execution selected.") -> None:
        self._generation.invalidate()
        self.stop_live()
        self.execution_id = self._target = ""
        self.state.model = None
        self.state.layout = None
        self.state.selected = -1
        self.state.now = None
        self._seen = (-1, -1, -1)
        self.bars.update()
        self.labels.update()
        self.title.setText("")
        self._show_message(message)

    async def load(self, execution_id: str) -> None:
        """Show ``execution_id``; follow it live when it is still running (and follow is on)."""
        generation = self._generation.next()
        self.stop_live()
        self._target = execution_id
        service = self.service
        if service is None:
            self._show_message("Not connected to an engine.")
            return
        if execution_id != self.execution_id:
            self._choices.clear()
        self._show_message("Loading…" if self.state.model is None else "")
        self._loading += 1
        try:
            with _gc_paused():
                await self._load(execution_id, generation, service)
        finally:
            self._loading -= 1

    async def _load(self, execution_id: str, generation: Token, service: StudioService) -> None:
        try:
            timeline = await service.timeline(execution_id)
            events: list[Event] = []
            after = 0
            while True:  # the marker events only: a handful even in a huge execution
                page = await service.events(execution_id, after_seq=after, types=MARKER_EVENTS,
                                            limit=EVENT_PAGE)
                events.extend(page)
                if len(page) < EVENT_PAGE or not self._generation.is_current(generation):
                    break
                after = page[-1].seq
        except ServiceError as exc:
            if self._generation.is_current(generation):
                self.clear(f"Cannot show execution {execution_id}: {describe(exc)}")
                self._target = execution_id
            return
        if not self._generation.is_current(generation):
            return
        model = await asyncio.to_thread(TimelineModel.build, timeline, events)
        if not self._generation.is_current(generation):
            return
        keep_view = execution_id == self.execution_id and self.state.layout is not None
        self.execution_id = execution_id
        self._install(model, keep_view)
        pending = self._pending_selection
        self._pending_selection = None
        if pending is not None and pending[0] == execution_id:
            self._select(pending[1], pending[2], scroll=True)
        elif self.hub.execution_id == execution_id and self.hub.step_path:
            self._select(self.hub.step_path, self.hub.seq, scroll=True)
        if model.running and self._follow:
            self._start_live(generation)

    def follow_live(self, enabled: bool) -> None:
        """On (default): a running execution updates as it runs and its tail stays in view.
        Off: the subscription is cancelled and the pane keeps what it shows."""
        self._follow = bool(enabled)
        if self.follow_action.isChecked() != self._follow:
            self.follow_action.setChecked(self._follow)
        if not self._follow:
            self.stop_live()
        elif self.state.model is not None and self.state.model.running and self._live_task is None:
            self._user_moved_x = False
            self._start_live(self._generation.token)

    @property
    def loading(self) -> bool:
        return self._loading > 0

    @property
    def following(self) -> bool:
        """A live subscription is open."""
        return self._live_task is not None and not self._live_task.done()

    def stop_live(self) -> None:
        task, self._live_task = self._live_task, None
        if task is not None and not task.done():
            task.cancel()

    def zoom_to_fit(self) -> None:
        model = self.state.model
        if model is None:
            return
        self._user_moved_x = False
        span = model.duration(time.time() if model.running else None)
        self._apply_limits()
        self.vb.setXRange(0.0, span, padding=0.02)
        self._scroll_to_row(0, top=True)

    def expand_all(self) -> None:
        self._set_all(True)

    def collapse_all(self) -> None:
        self._set_all(False)

    def lanes(self) -> list[LaneInfo]:
        """Every lane (shown or folded away), in tree order."""
        self._fresh_layout()
        model, lay = self.state.model, self.state.layout
        if model is None or lay is None:
            return []
        out = []
        stack = [(c, 0) for c in reversed(model.nodes[0].children)]
        while stack:
            nid, depth = stack.pop()
            node = model.nodes[nid]
            if model.chunk_hidden(node):
                stack.extend((c, depth) for c in reversed(node.children))
                continue
            out.append(LaneInfo(node.label, node.kind, node.path, node.iteration, depth, node.runs,
                                len(node.children), int(lay.node_row[nid])))
            stack.extend((c, depth + 1) for c in reversed(node.children))
        return out

    def set_expanded(self, path: str, iteration: int | None = None, expanded: bool = True) -> bool:
        """Expand or collapse a lane: a step lane by ``path``, an iteration by (loop path, number)."""
        model = self.state.model
        if model is None:
            return False
        for node in model.nodes[1:]:
            if node.path != path:
                continue
            if (iteration is None and node.kind != ITERATION and node.kind != CHUNK_GROUP) or \
                    (iteration is not None and node.kind == ITERATION and node.iteration == iteration):
                self._choices[node.key] = expanded
                self._relayout()
                return True
        return False

    def selected_run(self) -> StepRun | None:
        model, i = self.state.model, self.state.selected
        if model is None or i < 0:
            return None
        item = model.items[i]
        return item if isinstance(item, StepRun) else None

    def bar_point(self, path: str, seq: int = 0) -> QPoint | None:
        """Where the bar of step run (path, seq) is on the plot's viewport (None when off screen)."""
        self._fresh_layout()
        model, lay = self.state.model, self.state.layout
        if model is None or lay is None:
            return None
        index = model.run_index(path, seq)
        if index < 0:
            return None
        start = float(model.start[index])
        end = float(self.state.ends(np.array([index]))[0])
        top, bottom = BAND[int(lay.bar_kind[index])]
        y = int(lay.bar_row[index]) + (top + bottom) / 2
        scene = self.vb.mapViewToScene(QPointF((start + end) / 2, y))
        point = self.plot.mapFromScene(scene)
        return point if self.plot.viewport().rect().contains(point) else None

    def hover_text(self, point: QPoint) -> str:
        """The tooltip shown with the mouse at ``point`` of the plot's viewport ("" for none)."""
        scene = self.plot.mapToScene(point)
        if not self.vb.sceneBoundingRect().contains(scene):
            return ""
        view = self.vb.mapSceneToView(scene)
        return self._describe_at(view)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.stop_live()
        for task in list(self._tasks):
            task.cancel()
        super().closeEvent(event)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self._apply_theme()
        super().changeEvent(event)

    # ------------------------------------------------------------------ installing and drawing

    def _install(self, model: TimelineModel, keep_view: bool) -> None:
        old = self.state.model
        selected_seq = 0
        if keep_view and old is not None and self.state.selected >= 0:
            item = old.items[self.state.selected]
            selected_seq = item.seq if isinstance(item, StepRun) else 0
        x_range = self.vb.viewRange()[0] if keep_view else None
        self.state.model = model
        self.state.selected = model.by_seq.get(selected_seq, -1) if selected_seq else -1
        self.state.now = time.time() - model.t0 if model.running else None
        self._show_message("" if model.bar_count else "This execution has no step runs yet.")
        self._relayout()
        self._update_title()
        if not keep_view:
            self.zoom_to_fit()
        elif x_range is not None and self._user_moved_x:
            self._apply_limits()
            self.vb.setXRange(*x_range, padding=0)
        else:  # the same execution again (it ended, or a refresh): its whole time, same lanes
            self._apply_limits()
            self.vb.setXRange(0.0, model.duration(time.time() if model.running else None), padding=0.02)

    def _fresh_layout(self) -> None:
        """Lay out now if live events added lanes or bars since the last (coalesced) layout."""
        model = self.state.model
        if model is not None and (model.structure_version, model.bar_count) != self._seen[:2]:
            if model.needs_rebuild:
                self._refresh()
            else:
                self._relayout()

    def _relayout(self) -> None:
        model = self.state.model
        if model is None:
            return
        self.state.layout = model.layout(self._choices)
        self._seen = (model.structure_version, model.bar_count, model.data_version)
        self.bars.set_bounds(model.duration(time.time() if model.running else None),
                             len(self.state.layout.rows))
        self._apply_limits()
        self.labels.update()

    def _apply_limits(self) -> None:
        model, lay = self.state.model, self.state.layout
        if model is None or lay is None:
            return
        span = model.duration(time.time() if model.running else None)
        fit = self._rows_fit()
        pad = span * 0.05
        self.vb.setLimits(xMin=-pad, xMax=span + pad, minXRange=min(span, 1e-6), maxXRange=span + 2 * pad,
                          yMin=-0.5, yMax=max(len(lay.rows), fit) - 0.5)

    def _rows_fit(self) -> float:
        return max(1.0, self.vb.height() / ROW_PX)

    def _keep_row_height(self) -> None:
        (_, _), (y0, _) = self.vb.viewRange()
        self._apply_limits()
        self.vb.setYRange(y0, y0 + self._rows_fit(), padding=0)

    def _scroll_to_row(self, row: int, top: bool = False) -> None:
        fit = self._rows_fit()
        (_, _), (y0, y1) = self.vb.viewRange()
        if top:
            start = row - 0.5
        elif y0 + 0.5 <= row <= y1 - 0.5:
            return
        else:
            start = row - fit / 2
        lay = self.state.layout
        rows = len(lay.rows) if lay is not None else 0
        start = max(-0.5, min(start, max(rows, fit) - 0.5 - fit))
        self.vb.setYRange(start, start + fit, padding=0)

    def _moved_by_user(self, mask: Any) -> None:
        if mask is None or (isinstance(mask, list | tuple) and mask and mask[0]):
            self._user_moved_x = True

    def _schedule(self, idle: bool = False) -> None:
        """Redraw soon: within a frame when events arrived, slower when only the clock moves."""
        if not idle and self._frame.isActive() and self._frame.interval() > FRAME_MS:
            self._frame.stop()
        if not self._frame.isActive():
            self._frame.start(IDLE_FRAME_MS if idle else FRAME_MS)

    def _refresh(self) -> None:
        """One coalesced redraw of live changes."""
        model = self.state.model
        if model is None:
            return
        if model.needs_rebuild:
            selected = self.selected_run()
            model = model.rebuild()
            self.state.model = model
            self.state.selected = model.by_seq.get(selected.seq, -1) if selected else -1
            self._seen = (-1, -1, -1)
        self.state.now = time.time() - model.t0 if model.running else None
        seen = (model.structure_version, model.bar_count, model.data_version)
        if seen[:2] != self._seen[:2]:
            self._relayout()
        elif seen != self._seen:
            self._seen = seen
            self.bars.set_bounds(model.duration(time.time() if model.running else None),
                                 len(self.state.layout.rows) if self.state.layout else 0)
        else:
            self.bars.update()
        self._update_title()
        self._follow_tail()
        if model.running and self.following:
            self._schedule(idle=True)  # running bars grow with the clock

    def _follow_tail(self) -> None:
        model = self.state.model
        if model is None or not model.running or not self._follow or self._user_moved_x:
            return
        self._apply_limits()
        self.vb.setXRange(0.0, model.duration(time.time()), padding=0.02)

    def _update_title(self) -> None:
        model = self.state.model
        if model is None:
            self.title.setText("")
            return
        ex = model.execution
        style = timeline_style()
        status = ex.status
        key = {"completed": "completed", "failed": "failed", "running": "running", "paused": "paused",
               "cancelled": "cancelled"}.get(status, "other")
        runs = model.step_runs
        duration = (format_ms(ex.duration_ms) if ex.duration_ms is not None and not model.running
                    else format_seconds(model.duration(time.time() if model.running else None)))
        live = " · live" if self.following else ""
        self.title.setText(
            f"<b>{html.escape(ex.pipeline)}</b> · <span style='color:{style.hex_of(key)}'>"
            f"{html.escape(status)}</span> · {runs} step runs · {duration}{live}"
            f" <span style='color:{style.muted.name()}'>{html.escape(ex.id)}</span>")

    def _apply_theme(self) -> None:
        style = timeline_style()
        self.plot.setBackground(style.base)
        self.axis.setTextPen(style.muted)
        self.axis.setPen(style.muted)
        chips = [f"<span style='color:{style.hex_of(k)}'>■</span>&nbsp;{k}" for k in COLOR_KEYS
                 if k != "other"]
        marks = [f"<span style='color:{style.markers[i].name()}'>{GLYPHS[k]}</span>&nbsp;{k}"
                 for i, k in enumerate(MARKER_KINDS)]
        gap = "&nbsp;&nbsp;"
        self.legend.setText(gap.join(chips) + f"{gap}│{gap}" + gap.join(marks))
        self.legend.setToolTip("\n".join(f"{GLYPHS[k]}  {MARKER_LABELS[k]}" for k in MARKER_KINDS))
        self.bars.update()
        self.labels.update()

    def _show_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))

    # ------------------------------------------------------------------ live

    def _start_live(self, generation: Token) -> None:
        self.stop_live()
        model = self.state.model
        if self.service is None or model is None:
            return
        if self.message.text().startswith("Live updates stopped"):
            self._show_message("")
        self._live_task = spawn(self._live(generation, self.execution_id, model.last_seq),
                                what="Following the execution", background=True)
        self._update_title()
        self._schedule()

    async def _live(self, generation: Token, execution_id: str, after: int) -> None:
        service = self.service
        assert service is not None
        failures = 0
        ended = False
        while self._generation.is_current(generation) and not ended:
            try:
                # aclosing: leaving early (another execution, the pane closed) unsubscribes at once
                async with contextlib.aclosing(service.subscribe(execution_id, after_seq=after)) as stream:
                    async for event in stream:
                        if not self._generation.is_current(generation):
                            return
                        failures = 0
                        after = max(after, event.seq)
                        model = self.state.model
                        if model is not None and model.apply_event(event):
                            self._schedule()
                        if event.type in TERMINAL_EVENTS:
                            break
                ended = True  # the stream of one execution ends after its terminal event
            except Unavailable as exc:
                failures += 1  # fell behind, or the server went away: resume after the last seq
                if failures > _RESUBSCRIBE_LIMIT:
                    if self._generation.is_current(generation):
                        self._live_task = None
                        self._show_message(f"Live updates stopped: {describe(exc)} "
                                           "Turn Follow live off and on to try again.")
                        self._update_title()
                    return
                await asyncio.sleep(0.2 * failures)
        if self._generation.is_current(generation):
            self._live_task = None
            self._own(self.load(execution_id))  # the stored timeline is the authority once it ended
            self._update_title()

    def _own(self, coro: Any) -> None:
        """Start a load of the pane's own; closing the pane cancels it."""
        task = spawn(coro, what="Opening the execution timeline")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ selection

    def _hub_execution(self, execution_id: str) -> None:
        if self.service is None or execution_id == self._target:
            return
        if not execution_id:
            self.clear()
            return
        self._own(self.load(execution_id))

    def _hub_selected(self, execution_id: str, path: str, seq: int) -> None:
        if execution_id != self.execution_id or self.state.model is None:
            self._pending_selection = (execution_id, path, seq)
            return
        self._select(path, seq, scroll=True)

    def _select(self, path: str, seq: int, scroll: bool) -> None:
        self._fresh_layout()
        model = self.state.model
        if model is None:
            return
        index = model.run_index(path, seq)
        self.state.selected = index
        if index < 0:
            self.bars.update()
            self.labels.update()
            return
        lane = int(model.node[index])
        unfolded = False
        lay = self.state.layout
        for ancestor in model.ancestors(lane):
            node = model.nodes[ancestor]
            if model.chunk_hidden(node):
                continue
            row = int(lay.node_row[ancestor]) if lay is not None else -1
            if row < 0 or not lay.row_open[row]:  # type: ignore[union-attr]
                self._choices[node.key] = True
                unfolded = True
        if unfolded or self.state.layout is None:
            self._relayout()
        lay = self.state.layout
        if scroll and lay is not None:
            self._scroll_to_row(int(lay.bar_row[index]))
            start = float(model.start[index])
            end = float(self.state.ends(np.array([index]))[0])
            (x0, x1), _ = self.vb.viewRange()
            if start < x0 or end > x1:
                width = x1 - x0
                if end - start > width * 0.9:
                    self.vb.setXRange(start, end, padding=0.05)
                else:
                    middle = (start + end) / 2
                    self.vb.setXRange(middle - width / 2, middle + width / 2, padding=0)
                self._user_moved_x = True
        self.bars.update()
        self.labels.update()

    def _bar_at(self, view: QPointF) -> tuple[int, int]:
        return bar_at(self.state, view.x(), view.y(), 3 * self.vb.viewPixelSize()[0])

    def _clicked(self, view: QPointF, button: Qt.MouseButton, screen: QPointF) -> None:
        if button == Qt.MouseButton.RightButton:
            self._context_menu(screen.toPoint())
            return
        if button != Qt.MouseButton.LeftButton:
            return
        index, _ = self._bar_at(view)
        model = self.state.model
        if index < 0 or model is None:
            return
        item = model.items[index]
        if isinstance(item, PauseSpan):
            if item.run_seq:
                self.hub.select_step_run(self.execution_id, item.path, item.run_seq)
            return
        self.state.selected = index
        self.hub.select_step_run(self.execution_id, item.path, item.seq)
        self.bars.update()
        self.labels.update()

    def _double_clicked(self, view: QPointF) -> None:
        """Double-click a bar: zoom to it."""
        index, _ = self._bar_at(view)
        model = self.state.model
        if index < 0 or model is None:
            return
        start = float(model.start[index])
        end = float(self.state.ends(np.array([index]))[0])
        self._user_moved_x = True
        self.vb.setXRange(start, max(end, start + 1e-6), padding=0.1)

    def _context_menu(self, where: QPoint) -> None:
        menu = QMenu(self)
        for action in (self.fit_action, self.expand_action, self.collapse_action, self.follow_action):
            menu.addAction(action)
        menu.popup(where)

    def _toggle_row(self, row: int) -> None:
        model, lay = self.state.model, self.state.layout
        if model is None or lay is None:
            return
        node = model.nodes[lay.rows[row]]
        self._choices[node.key] = not lay.row_open[row]
        self._relayout()

    def _activate_row(self, row: int) -> None:
        """Clicking a leaf lane's name selects its first run in that lane."""
        model, lay = self.state.model, self.state.layout
        if model is None or lay is None:
            return
        nid = lay.rows[row]
        index = lay.order[lay.row_first[row]: lay.row_first[row + 1]]
        runs = [i for i in index.tolist()
                if int(model.node[i]) == nid and isinstance(model.items[i], StepRun)]
        if runs:
            item = model.items[min(runs, key=lambda i: model.items[i].seq)]
            self.hub.select_step_run(self.execution_id, item.path, item.seq)

    def _set_all(self, expanded: bool) -> None:
        model = self.state.model
        if model is None:
            return
        big_loops: dict[int, bool] = {}
        for node in model.nodes[1:]:
            if not node.children:
                continue
            if expanded and node.kind == ITERATION:
                # the iterations of a big loop stay one row each: thousands of sub-lanes help nobody
                loop = model.nodes[node.parent].parent
                if loop not in big_loops:
                    big_loops[loop] = model.iterations(loop) > EXPAND_ITERATIONS
                if big_loops[loop]:
                    self._choices[node.key] = False
                    continue
            self._choices[node.key] = expanded
        self._relayout()

    # ------------------------------------------------------------------ tooltips

    def _hover(self, scene_pos: QPointF) -> None:
        if not self.vb.sceneBoundingRect().contains(scene_pos):
            if self._hover_text:
                QToolTip.hideText()
                self._hover_text = ""
            return
        text = self._describe_at(self.vb.mapSceneToView(scene_pos))
        if text != self._hover_text:
            self._hover_text = text
            if text:
                QToolTip.showText(QCursor.pos(), text, self.plot)
            else:
                QToolTip.hideText()

    def _describe_at(self, view: QPointF) -> str:
        index, others = self._bar_at(view)
        return describe_bar(self.state, index, others) if index >= 0 else ""
