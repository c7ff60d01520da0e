"""The pyqtgraph items of the timeline: the view box, the bars, the lane labels, the time axis.

One :class:`BarsItem` paints every bar: per frame it culls the bars of the visible rows to
the visible time range, rounds them to device pixels and merges what lands on the same
pixels (numpy), then draws one ``drawRects`` call per colour. Zoomed out over 25,000 runs a
frame draws a few hundred rectangles, never one QGraphicsItem per bar.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QLineF, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPolygonF
from PySide6.QtWidgets import QGraphicsSceneWheelEvent

from app.executions.timeline_model import (
    BAND,
    CHUNK_GROUP,
    FOLDED,
    FULL,
    GROUP,
    ITERATION,
    SUMMARY,
    Layout,
    Node,
    PauseSpan,
    TimelineModel,
)
from app.executions.timeline_style import COLOR_KEYS, MARKER_KINDS, format_seconds, timeline_style

ROW_PX = 22  # row height on screen; the y range follows the view's height to keep it
LABEL_MIN_PX = 44  # a bar this wide shows its step name
MAX_BAR_LABELS = 250
MARKER_PX = 4.5
_NCOLORS = len(COLOR_KEYS)


@dataclass
class ViewState:
    """What the items draw; the pane owns it and swaps its parts."""

    model: TimelineModel | None = None
    layout: Layout | None = None
    selected: int = -1  # bar index
    now: float | None = None  # seconds since start: where running bars end
    marker_x: np.ndarray = field(default_factory=lambda: np.empty(0))
    marker_kind: np.ndarray = field(default_factory=lambda: np.empty(0, np.int8))
    marker_version: tuple[int, int] = (0, -1)  # (id of the model, its data_version)

    def ends(self, index: np.ndarray) -> np.ndarray:
        """End times of bars ``index``: running bars end "now" (or at their start)."""
        assert self.model is not None
        starts = self.model.start[index]
        ends = self.model.end[index]
        missing = np.isnan(ends)
        if missing.any():
            fill = starts if self.now is None else np.maximum(starts, self.now)
            ends = np.where(missing, fill, ends)
        return ends

    def refresh_markers(self) -> None:
        model = self.model
        if model is None or self.marker_version == (id(model), model.data_version):
            return
        self.marker_x = np.fromiter((m.x for m in model.markers), np.float64, len(model.markers))
        self.marker_kind = np.fromiter((m.kind for m in model.markers), np.int8, len(model.markers))
        self.marker_version = (id(model), model.data_version)


class TimeAxis(pg.AxisItem):
    """Seconds since the execution started, written in the unit the zoom calls for."""

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        return [format_seconds(v * scale, spacing * scale) for v in values]


class TimelineViewBox(pg.ViewBox):
    """Wheel zooms time (Shift+wheel scrolls lanes), drag pans, right-drag zooms time only."""

    def __init__(self) -> None:
        super().__init__(enableMenu=False)
        self.clicked: Callable[[QPointF, Qt.MouseButton, QPointF], None] | None = None
        self.double_clicked: Callable[[QPointF], None] | None = None

    def wheelEvent(self, ev: QGraphicsSceneWheelEvent, axis: int | None = None) -> None:
        if axis == 1 or ev.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.scroll_rows(-ev.delta() / 120 * 3)
            ev.accept()
            return
        super().wheelEvent(ev, axis=0)

    def scroll_rows(self, rows: float) -> None:
        self.translateBy(y=rows)

    def mouseDragEvent(self, ev, axis: int | None = None) -> None:  # type: ignore[no-untyped-def]
        if ev.button() & Qt.MouseButton.RightButton:
            super().mouseDragEvent(ev, axis=0)
        else:
            super().mouseDragEvent(ev, axis=axis)

    def mouseClickEvent(self, ev) -> None:  # type: ignore[no-untyped-def]
        if self.clicked is not None:
            ev.accept()
            if ev.double() and self.double_clicked is not None:
                self.double_clicked(self.mapSceneToView(ev.scenePos()))
                return
            self.clicked(self.mapSceneToView(ev.scenePos()), ev.button(), ev.screenPos())


def visible_rows(vb: pg.ViewBox, count: int) -> tuple[int, int]:
    """First and last row index whose band is inside the view (r1 < r0 when none)."""
    (_, _), (y0, y1) = vb.viewRange()
    lo, hi = min(y0, y1), max(y0, y1)
    return max(0, math.floor(lo + 0.5)), min(count - 1, math.ceil(hi - 0.5))


class BarsItem(pg.GraphicsObject):
    def __init__(self, state: ViewState) -> None:
        super().__init__()
        self.state = state
        self._bounds = QRectF(0, -1, 1, 2)
        self.font = QFont()
        self.font.setPointSizeF(max(7.0, self.font.pointSizeF() - 1))
        self.metrics = QFontMetricsF(self.font)
        self.last_rects = 0  # rectangles drawn by the last frame (benchmarks, tests)
        self.axis: pg.AxisItem | None = None  # vertical grid lines at its ticks

    def set_bounds(self, width: float, rows: int) -> None:
        rect = QRectF(-width * 0.05, -1.0, width * 1.1 + 1e-9, rows + 2.0)
        if rect != self._bounds:
            self.prepareGeometryChange()
            self._bounds = rect
        self.update()

    def boundingRect(self) -> QRectF:
        return self._bounds

    def paint(self, p: QPainter, *args: object) -> None:
        st = self.state
        model, lay = st.model, st.layout
        vb = self.getViewBox()
        if model is None or lay is None or vb is None or not lay.rows:
            return
        style = timeline_style()
        (vx0, vx1), _ = vb.viewRange()
        t = p.transform()
        sx, dx, sy, dy = t.m11(), t.dx(), t.m22(), t.dy()
        r0, r1 = visible_rows(vb, len(lay.rows))
        left, right = sx * vx0 + dx, sx * vx1 + dx
        if right < left:
            left, right = right, left
        p.save()
        p.resetTransform()
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        p.setPen(Qt.PenStyle.NoPen)
        self._rows_background(p, lay, model, r0, r1, left, right, sy, dy)
        self._grid(p, vx0, vx1, sx, dx, sy * (-0.5) + dy, sy * (len(lay.rows) - 0.5) + dy, right - left)
        drawn = 0
        if r1 >= r0:
            self._spans(p, lay, model, r0, r1, vx0, vx1, sx, dx, sy, dy)
            drawn = self._bars(p, lay, r0, r1, vx0, vx1, sx, dx, sy, dy, left, right)
            self._markers(p, lay, r0, r1, vx0, vx1, sx, dx, sy, dy)
            self._selection(p, lay, r0, r1, sx, dx, sy, dy)
        if st.now is not None and vx0 <= st.now <= vx1:
            p.setPen(style.now)
            x = sx * st.now + dx
            p.drawLine(QPointF(x, sy * (r0 - 0.5) + dy), QPointF(x, sy * (max(r1, r0) + 0.5) + dy))
        p.restore()
        self.last_rects = drawn

    def _rows_background(self, p: QPainter, lay: Layout, model: TimelineModel, r0: int, r1: int,
                         left: float, right: float, sy: float, dy: float) -> None:
        style = timeline_style()
        for row in range(r0, r1 + 1):
            if row % 2:
                top, bottom = sy * (row - 0.5) + dy, sy * (row + 0.5) + dy
                p.fillRect(QRectF(left, min(top, bottom), right - left, abs(bottom - top)), style.stripe)

    def _grid(self, p: QPainter, vx0: float, vx1: float, sx: float, dx: float, top: float, bottom: float,
              width: float) -> None:
        """Light vertical lines at the time axis' ticks (drawn here: one call, under the bars)."""
        if self.axis is None or width <= 0:
            return
        style = timeline_style()
        lines: list[list[QLineF]] = []
        for _spacing, values in self.axis.tickValues(vx0, vx1, width)[:2]:
            lines.append([QLineF(sx * v + dx, top, sx * v + dx, bottom) for v in values])
        for level, batch in enumerate(lines):
            color = QColor(style.muted)
            color.setAlpha(70 if level == 0 else 30)
            p.setPen(color)
            p.drawLines(batch)
        p.setPen(Qt.PenStyle.NoPen)

    def _spans(self, p: QPainter, lay: Layout, model: TimelineModel, r0: int, r1: int,
               vx0: float, vx1: float, sx: float, dx: float, sy: float, dy: float) -> None:
        """Iteration and chunk rows: a muted bracket over the time their subtree covers."""
        style = timeline_style()
        color = QColor(style.muted)
        color.setAlpha(150)
        top, bottom = BAND[SUMMARY]
        for row in range(r0, r1 + 1):
            nid = lay.rows[row]
            if model.nodes[nid].kind not in (ITERATION, CHUNK_GROUP, GROUP):
                continue
            s, e = lay.span_start[nid], lay.span_end[nid]
            if not np.isfinite(s) or e < vx0 or s > vx1:
                continue
            if self.state.now is not None and model.running:
                e = max(e, min(self.state.now, vx1))
            x0, x1 = sx * max(s, vx0) + dx, sx * min(e, vx1) + dx
            ya, yb = sy * (row + top) + dy, sy * (row + bottom) + dy
            p.fillRect(QRectF(x0, min(ya, yb), max(1.0, x1 - x0), max(1.0, abs(yb - ya))), color)

    def _bars(self, p: QPainter, lay: Layout, r0: int, r1: int, vx0: float, vx1: float, sx: float,
              dx: float, sy: float, dy: float, left: float, right: float) -> int:
        st = self.state
        model = st.model
        assert model is not None
        index = lay.order[lay.row_first[r0]: lay.row_first[r1 + 1]]
        if not index.size:
            return 0
        starts = model.start[index]
        ends = st.ends(index)
        keep = (ends >= vx0) & (starts <= vx1)
        index, starts, ends = index[keep], starts[keep], ends[keep]
        if not index.size:
            return 0
        origin = math.floor(left) - 4
        x0 = np.clip(starts * sx + dx, left - 2, right + 2) - origin
        x1 = np.clip(ends * sx + dx, left - 2, right + 2) - origin
        px0 = np.floor(x0).astype(np.int64)
        px1 = np.maximum(np.ceil(x1).astype(np.int64), px0 + 1)
        rows = lay.bar_row[index].astype(np.int64)
        kinds = lay.bar_kind[index].astype(np.int64)
        colors = model.color[index].astype(np.int64)
        groups = ((rows - r0) * _NCOLORS + colors) * 3 + kinds
        big = int(right - left) + 16
        a = groups * big + px0
        b = groups * big + px1
        order = np.argsort(a, kind="stable")
        a, b = a[order], b[order]
        reach = np.maximum.accumulate(b)
        narrow = (b - a) <= 2
        new = np.ones(a.size, bool)
        # overlapping bars merge; touching ones too when too thin to tell apart
        new[1:] = a[1:] >= reach[:-1] + narrow[1:]
        firsts = np.flatnonzero(new)
        lasts = np.append(firsts[1:] - 1, a.size - 1)
        m_start = a[firsts]
        m_end = reach[lasts]
        m_group = m_start // big
        m_x = (m_start - m_group * big + origin).astype(np.float64)
        m_w = (m_end - m_start).astype(np.float64)
        m_w = np.where(m_w >= 4, m_w - 1, m_w)  # a pixel of air between wide neighbours
        m_kind = m_group % 3
        m_color = (m_group // 3) % _NCOLORS
        m_row = m_group // (3 * _NCOLORS) + r0
        tops = np.array([BAND[k][0] for k in (FULL, SUMMARY, FOLDED)])
        bottoms = np.array([BAND[k][1] for k in (FULL, SUMMARY, FOLDED)])
        ya = sy * (m_row + tops[m_kind]) + dy
        yb = sy * (m_row + bottoms[m_kind]) + dy
        m_y = np.minimum(ya, yb)
        m_h = np.maximum(1.0, np.abs(yb - ya))
        style = timeline_style()
        for color in np.unique(m_color):
            pick = m_color == color
            rects = [QRectF(x, y, w, h) for x, y, w, h in
                     zip(m_x[pick].tolist(), m_y[pick].tolist(), m_w[pick].tolist(), m_h[pick].tolist(),
                         strict=True)]
            p.setBrush(style.bars[int(color)])
            p.drawRects(rects)
        self._bar_labels(p, model, lay, index, x0 + origin, x1 + origin, sy, dy)
        return int(firsts.size)

    def _bar_labels(self, p: QPainter, model: TimelineModel, lay: Layout, index: np.ndarray,
                    x0: np.ndarray, x1: np.ndarray, sy: float, dy: float) -> None:
        wide = np.flatnonzero(((x1 - x0) >= LABEL_MIN_PX) & (lay.bar_kind[index] == FULL))
        if not wide.size or abs(sy) < 12:
            return
        style = timeline_style()
        p.setFont(self.font)
        for k in wide[:MAX_BAR_LABELS].tolist():
            i = int(index[k])
            item = model.items[i]
            text = f"paused: {item.step}" if isinstance(item, PauseSpan) else item.step
            if not isinstance(item, PauseSpan) and item.attempt > 1:
                text += f" (attempt {item.attempt})"
            row = int(lay.bar_row[i])
            ya, yb = sy * (row - 0.36) + dy, sy * (row + 0.36) + dy
            rect = QRectF(x0[k] + 4, min(ya, yb), x1[k] - x0[k] - 8, abs(yb - ya))
            p.setPen(style.bar_text[int(model.color[i])])
            p.drawText(rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                       self.metrics.elidedText(text, Qt.TextElideMode.ElideRight, rect.width()))
        p.setPen(Qt.PenStyle.NoPen)

    def _markers(self, p: QPainter, lay: Layout, r0: int, r1: int, vx0: float, vx1: float, sx: float,
                 dx: float, sy: float, dy: float) -> None:
        st = self.state
        st.refresh_markers()
        if not st.marker_x.size or lay.marker_row.size != st.marker_x.size:
            return
        rows = lay.marker_row
        keep = (rows >= r0) & (rows <= r1) & (st.marker_x >= vx0) & (st.marker_x <= vx1)
        if not keep.any():
            return
        xs = np.round(st.marker_x[keep] * sx + dx)
        kinds = st.marker_kind[keep].astype(np.int64)
        rows = rows[keep].astype(np.int64)
        # one glyph per kind, row and 3-pixel cell: thousands of retries stay a few glyphs
        cells = np.unique(np.stack([kinds, rows, (xs // 3).astype(np.int64)], axis=1), axis=0)
        style = timeline_style()
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        for kind in np.unique(cells[:, 0]):
            pick = cells[cells[:, 0] == kind]
            path = QPainterPath()
            name = MARKER_KINDS[int(kind)]
            for _, row, cell in pick.tolist():
                x = cell * 3 + 1.5
                y = sy * (row + BAND[FULL][0]) + dy
                _glyph(path, name, x, y)
            p.setPen(style.marker_outline)
            p.setBrush(style.markers[int(kind)])
            p.drawPath(path)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        p.setPen(Qt.PenStyle.NoPen)

    def _selection(self, p: QPainter, lay: Layout, r0: int, r1: int, sx: float, dx: float, sy: float,
                   dy: float) -> None:
        st = self.state
        i = st.selected
        if i < 0 or st.model is None or i >= lay.bar_row.size:
            return
        row = int(lay.bar_row[i])
        if not r0 <= row <= r1:
            return
        top, bottom = BAND[int(lay.bar_kind[i])]
        start = float(st.model.start[i])
        end = float(st.ends(np.array([i]))[0])
        x0, x1 = sx * start + dx, sx * end + dx
        ya, yb = sy * (row + top) + dy, sy * (row + bottom) + dy
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(timeline_style().selection)
        p.drawRect(QRectF(x0 - 2, min(ya, yb) - 2, max(2.0, x1 - x0) + 4, abs(yb - ya) + 4))
        p.setPen(Qt.PenStyle.NoPen)


def _glyph(path: QPainterPath, kind: str, x: float, y: float) -> None:
    r = MARKER_PX
    if kind == "retry":
        path.addEllipse(QPointF(x, y), r, r)
    elif kind == "route":
        path.addPolygon(QPolygonF([QPointF(x - r, y - r), QPointF(x + r, y), QPointF(x - r, y + r)]))
        path.closeSubpath()
    elif kind == "mock":
        path.addPolygon(QPolygonF([QPointF(x, y - r), QPointF(x + r, y), QPointF(x, y + r),
                                   QPointF(x - r, y)]))
        path.closeSubpath()
    elif kind == "pause":
        path.addRect(QRectF(x - r, y - r, r * 0.8, 2 * r))
        path.addRect(QRectF(x + r * 0.2, y - r, r * 0.8, 2 * r))
    elif kind == "edit":
        path.addPolygon(QPolygonF([QPointF(x - r, y - r), QPointF(x + r, y - r), QPointF(x, y + r)]))
        path.closeSubpath()
    else:
        path.addRect(QRectF(x - r * 0.8, y - r * 0.8, r * 1.6, r * 1.6))


class LaneLabels(pg.GraphicsWidget):
    """The lane names left of the bars, indented by nesting; click a group to fold it."""

    def __init__(self, state: ViewState, vb: TimelineViewBox, width: int = 200) -> None:
        super().__init__()
        self.state = state
        self.vb = vb
        self.toggled: Callable[[int], None] | None = None  # row
        self.activated: Callable[[int], None] | None = None  # row of a leaf lane
        self.setMinimumWidth(width)
        self.setMaximumWidth(width)
        self.setFlag(self.GraphicsItemFlag.ItemClipsToShape)
        # Panning time does not change the names: Qt repaints them only on update()
        self.setCacheMode(self.CacheMode.DeviceCoordinateCache)
        self.setAcceptHoverEvents(True)
        self.font = QFont()
        self.metrics = QFontMetricsF(self.font)
        vb.sigYRangeChanged.connect(lambda *_: self.update())
        vb.sigResized.connect(lambda *_: self.update())

    def _row_mapping(self) -> tuple[float, float]:
        """local y = a * row + b."""
        y0 = self.mapFromScene(self.vb.mapViewToScene(QPointF(0, 0))).y()
        y1 = self.mapFromScene(self.vb.mapViewToScene(QPointF(0, 1))).y()
        return y1 - y0, y0

    def row_at(self, y: float) -> int:
        a, b = self._row_mapping()
        if a == 0:
            return -1
        return round((y - b) / a)

    def paint(self, p: QPainter, *args: object) -> None:
        st = self.state
        lay, model = st.layout, st.model
        rect = self.boundingRect()
        style = timeline_style()
        p.fillRect(rect, style.base)
        if lay is None or model is None or not lay.rows:
            return
        a, b = self._row_mapping()
        r0, r1 = visible_rows(self.vb, len(lay.rows))
        p.setFont(self.font)
        selected_row = int(lay.bar_row[st.selected]) if 0 <= st.selected < lay.bar_row.size else -1
        highlight = QColor(style.accent)
        highlight.setAlpha(60)
        for row in range(r0, r1 + 1):
            node = model.nodes[lay.rows[row]]
            top = a * (row - 0.5) + b
            band = QRectF(0, min(top, top + a), rect.width(), abs(a))
            if row == selected_row:
                p.fillRect(band, highlight)
            elif row % 2:
                p.fillRect(band, style.stripe)
            x = 6 + 12 * lay.row_depth[row]
            cy = band.center().y()
            if node.children:
                p.setPen(Qt.PenStyle.NoPen)
                p.setBrush(style.muted)
                p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
                if lay.row_open[row]:
                    tri = [QPointF(x, cy - 2.5), QPointF(x + 8, cy - 2.5), QPointF(x + 4, cy + 3)]
                else:
                    tri = [QPointF(x + 1.5, cy - 4), QPointF(x + 7, cy), QPointF(x + 1.5, cy + 4)]
                p.drawPolygon(QPolygonF(tri))
                p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
            x += 12
            note = self._note(model, node, lay.row_open[row])
            text_rect = QRectF(x, band.top(), rect.width() - x - 4, band.height())
            label = self.metrics.elidedText(node.label, Qt.TextElideMode.ElideRight, text_rect.width())
            p.setPen(style.muted if node.kind in (ITERATION, CHUNK_GROUP) else style.text)
            p.drawText(text_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, label)
            used = self.metrics.horizontalAdvance(label) + 6
            if note and used < text_rect.width() - 20:
                p.setPen(style.muted)
                p.drawText(text_rect.adjusted(used, 0, 0, 0),
                           Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                           self.metrics.elidedText(note, Qt.TextElideMode.ElideRight,
                                                   text_rect.width() - used))

    @staticmethod
    def _note(model: TimelineModel, node: Node, is_open: bool) -> str:
        if node.kind == CHUNK_GROUP:
            return f"{len(node.by_iteration)} iterations"
        if model.is_loop(node.id):
            count = model.iterations(node.id)
            return f"{count} iterations" if count != 1 else "1 iteration"
        if node.runs > 1:
            return f"{node.runs} runs"
        return ""

    def mouseClickEvent(self, ev) -> None:  # type: ignore[no-untyped-def]
        if ev.button() != Qt.MouseButton.LeftButton:
            return
        ev.accept()
        lay = self.state.layout
        row = self.row_at(ev.pos().y())
        if lay is None or not 0 <= row < len(lay.rows) or self.state.model is None:
            return
        node = self.state.model.nodes[lay.rows[row]]
        if node.children:
            if self.toggled is not None:
                self.toggled(row)
        elif self.activated is not None:
            self.activated(row)

    def wheelEvent(self, ev: QGraphicsSceneWheelEvent) -> None:
        self.vb.scroll_rows(-ev.delta() / 120 * 3)
        ev.accept()

    def mouseDragEvent(self, ev) -> None:  # type: ignore[no-untyped-def]
        self.vb.mouseDragEvent(ev, axis=1)

    def hoverEvent(self, ev) -> None:  # type: ignore[no-untyped-def]
        if ev.isExit():
            self.setToolTip("")
            return
        lay, model = self.state.layout, self.state.model
        row = self.row_at(ev.pos().y())
        if lay is None or model is None or not 0 <= row < len(lay.rows):
            self.setToolTip("")
            return
        node = model.nodes[lay.rows[row]]
        if node.kind == ITERATION:
            tip = f"{node.path}: iteration {node.iteration}"
        elif node.kind == CHUNK_GROUP:
            tip = f"{node.path}: iterations {node.label[1:]}"
        else:
            tip = node.path or node.label
            if model.is_loop(node.id):
                tip += f" (loop, {model.iterations(node.id)} iterations)"
        if node.children:
            tip += "\nclick to " + ("collapse" if lay.row_open[row] else "expand")
        self.setToolTip(tip)
