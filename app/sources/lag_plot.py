"""The selected source's lag over time, as a small live plot (pyqtgraph, like the timeline).

The service reports a source's lag as one number (how far behind the head it is, in the
source's unit); the pane samples it at every refresh into a :class:`LagHistory`, which
keeps the last :data:`KEEP` samples per source, and the plot draws them on a clock axis.
The executions in flight are drawn too, thinner: a source whose lag grows while its
executions pile up waits on its pipelines, one whose executions are idle waits on nothing.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Final, NamedTuple

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from app import theme
from app.executions.support import named
from engine.service.models import SourceInfo

KEEP: Final = 600  # samples per source: ten minutes at one refresh a second
WINDOW: Final = 300.0  # seconds the plot shows (it scrolls with the clock)


class Sample(NamedTuple):
    at: float
    lag: float | None
    in_flight: int


class LagHistory:
    """Samples of each source's lag, taken whenever the pane reads the sources."""

    def __init__(self) -> None:
        self._samples: dict[str, deque[Sample]] = {}

    def add(self, sources: list[SourceInfo], at: float | None = None) -> None:
        now = time.time() if at is None else at
        for s in sources:
            self._samples.setdefault(s.name, deque(maxlen=KEEP)).append(
                Sample(now, s.lag, s.in_flight))
        for gone in set(self._samples) - {s.name for s in sources}:
            del self._samples[gone]

    def of(self, name: str) -> list[Sample]:
        return list(self._samples.get(name, ()))

    def clear(self) -> None:
        self._samples.clear()


class LagPlot(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sourceLagPlot")
        self._theme = ""
        self.caption = named(QLabel(), "sourceLagCaption")
        self.caption.setTextFormat(Qt.TextFormat.RichText)
        self.plot = pg.PlotWidget(axisItems={"bottom": pg.DateAxisItem(orientation="bottom")})
        self.plot.setMinimumHeight(90)
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        item = self.plot.getPlotItem()
        item.setMouseEnabled(x=False, y=False)  # it follows the clock; dragging would fight it
        item.showGrid(x=True, y=True, alpha=0.15)
        item.getAxis("left").setWidth(44)
        self.lag_curve = item.plot([], [], name="lag")
        self.flight_curve = item.plot([], [], name="in flight")
        self.points = 0  # lag samples drawn (the tests and the screenshot check it)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.caption)
        layout.addWidget(self.plot, 1)
        self._restyle()

    def _restyle(self) -> None:
        c = theme.colors()
        if c.name == self._theme:
            return
        self._theme = c.name
        self.plot.setBackground(QColor(c.base))
        for side in ("left", "bottom"):
            axis = self.plot.getPlotItem().getAxis(side)
            axis.setPen(pg.mkPen(c.border))
            axis.setTextPen(pg.mkPen(c.muted))
        accent = QColor(c.accent)
        fill = QColor(accent)
        fill.setAlphaF(0.18)
        self.lag_curve.setPen(pg.mkPen(accent, width=2))
        self.lag_curve.setFillLevel(0)
        self.lag_curve.setBrush(fill)
        self.flight_curve.setPen(pg.mkPen(QColor(c.muted), width=1, style=Qt.PenStyle.DashLine))

    def show_samples(self, source: SourceInfo | None, samples: list[Sample],
                     now: float | None = None) -> None:
        """Draw ``samples`` of ``source`` (None: nothing selected)."""
        self._restyle()
        c = theme.colors()
        if source is None:
            self.caption.setText(f"<span style='color:{c.muted}'>Select a source to follow its lag</span>")
            self.lag_curve.setData([], [])
            self.flight_curve.setData([], [])
            self.points = 0
            return
        lagged = [(s.at, s.lag) for s in samples if s.lag is not None]
        self.lag_curve.setData([t for t, _ in lagged], [v for _, v in lagged])
        self.flight_curve.setData([s.at for s in samples], [s.in_flight for s in samples])
        self.points = len(lagged)
        end = time.time() if now is None else now
        first = samples[0].at if samples else end
        # the samples fill the width until they span the window; at least 10 s are shown
        self.plot.getPlotItem().setXRange(max(end - WINDOW, min(first, end - 10.0)), end, padding=0.02)
        top = max([1.0, *(v for _, v in lagged), *(s.in_flight for s in samples)])
        self.plot.getPlotItem().setYRange(0, top * 1.15, padding=0)
        unit = source.lag_unit or "events"
        now_text = (f"<b>{source.lag:,.0f}</b> {unit}" if source.lag is not None
                    else f"<span style='color:{c.muted}'>not reported yet</span>")
        self.caption.setText(
            f"<span style='color:{c.accent}'>━</span> Lag {now_text} &nbsp; "
            f"<span style='color:{c.muted}'>┅ in flight <b>{source.in_flight:,}</b></span>")
