"""The scene's items: step nodes, composite (group) boxes, edges, the trigger and drag feedback.

Every item paints from geometry and text prepared when it is made (``QStaticText``, rects,
paths) and from the shared :class:`GraphStyle`, so painting a frame allocates nothing.
Level of detail: below ``LOD_SHAPES`` a node is a filled rectangle and an edge a hairline;
below ``LOD_TEXT`` the text is skipped. Items take no mouse events: the view decides what a
press means (select, drag to reorder, re-wire, pan).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import (
    QPainter,
    QPainterPath,
    QPainterPathStroker,
    QPicture,
    QPolygonF,
    QStaticText,
    QTransform,
)
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from app.editor.graph.layout import (
    GROUP_HEADER,
    SLOT_LABEL_H,
    Box,
    EdgeRoute,
    SlotBox,
)
from app.editor.graph.style import GraphStyle, badge_rects, draw_badge

LOD_SHAPES = 0.3  # below: flat rectangles and hairlines
LOD_TEXT = 0.5  # below: no text
RADIUS = 8.0
ARROW = 9.0
TOGGLE_W = 26.0  # the collapse/expand chevron's hot zone at a composite's right edge
PORT_R = 5.0

Z_GROUP = 0.0  # + depth: inner composites above outer ones
Z_EDGE = 50.0
Z_NODE = 100.0
Z_FEEDBACK = 1000.0

Problems = list[tuple[str, str]]  # (severity, message)
BP_R = 7.0  # radius of a breakpoint dot (centred on the node's left edge)
INNER_R = 4.5  # the dot of breakpoints hidden inside a collapsed composite


@dataclass(frozen=True, slots=True)
class Marks:
    """What the debugger shows on one drawn step; items without any keep ``marks`` None."""

    breakpoint: tuple[bool, str] | None = None  # the step's own: (enabled, jq condition or "")
    inner: int = 0  # breakpoints on steps hidden inside this (collapsed) composite
    paused_at: str = ""  # the step where a run is paused: this one, or one hidden inside it


# QStaticText.prepare() takes the transform first; one shared identity serves every text.
IDENTITY = QTransform()


def _static(text: str, font_metrics_width: float, metrics, font) -> QStaticText:  # type: ignore[no-untyped-def]
    elided = metrics.elidedText(text, Qt.TextElideMode.ElideRight, font_metrics_width)
    static = QStaticText(elided)
    static.setTextFormat(Qt.TextFormat.PlainText)
    static.prepare(IDENTITY, font)
    return static


class StepItem(QGraphicsItem):
    """What nodes and composites share: a step id, a box, problems, debugger marks and a tooltip."""

    marks: Marks | None = None  # a class default: unmarked items (nearly all) pay one lookup a frame

    def __init__(
        self, step_id: str, box: Box, name: str, type_name: str, category: str, style: GraphStyle
    ) -> None:
        super().__init__()
        self.step_id = step_id
        self.name = name
        self.type_name = type_name
        self.category = category
        self.style = style
        self.problems: Problems = []
        self.severity = ""  # "", "warning" or "error"
        self.hot = False  # the target under a re-wiring drag
        self.setPos(box.x, box.y)
        self.rect = QRectF(0, 0, box.w, box.h)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable, True)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self._badge_text = QStaticText()
        self._problem_rect = QRectF(box.w - 10, -8, 18, 18)
        self._update_tooltip()

    @property
    def box(self) -> Box:
        pos = self.pos()
        return Box(pos.x(), pos.y(), self.rect.width(), self.rect.height())

    def set_problems(self, problems: Problems) -> None:
        if problems == self.problems:
            return
        self.problems = list(problems)
        self.severity = ("error" if any(s == "error" for s, _ in problems) else "warning") if problems else ""
        self._badge_text = QStaticText(str(len(problems)))
        self._badge_text.prepare(IDENTITY, self.style.badge_font)
        self._update_tooltip()
        self.update()

    def relabel(self, name: str, type_name: str, category: str) -> None:
        if (name, type_name, category) == (self.name, self.type_name, self.category):
            return
        self.name, self.type_name, self.category = name, type_name, category
        self.prepare()
        self._update_tooltip()
        self.update()

    def set_hot(self, hot: bool) -> None:
        if hot != self.hot:
            self.hot = hot
            self.update()

    def set_marks(self, marks: Marks | None) -> None:
        """Breakpoint dot and paused highlight (None: neither)."""
        if marks is not None and marks == Marks():
            marks = None
        if marks == self.marks:
            return
        if (marks is None) != (self.marks is None):
            self.prepareGeometryChange()  # the dot sticks out to the left
        self.marks = marks
        self._update_tooltip()
        self.update()

    def set_style(self, style: GraphStyle) -> None:
        self.style = style
        self.prepare()
        self.update()

    def prepare(self) -> None:
        """Make the texts and rects painting uses; again after a theme change."""

    def toggle_rect(self) -> QRectF | None:
        """Item rect of the collapse/expand chevron; None when the step is not a composite."""
        return None

    def boundingRect(self) -> QRectF:
        if self.marks is None:
            return self.rect.adjusted(-4, -10, 10, 8)
        return self.rect.adjusted(-BP_R - 4, -12, 10, 8)

    def _update_tooltip(self) -> None:
        lines = [f"<b>{_html(self.name)}</b> &nbsp;<span style='color:gray'>{_html(self.type_name)}</span>"]
        marks = self.marks
        if marks is not None:
            if marks.paused_at:
                where = "" if marks.paused_at == self.step_id else f" at {_html(marks.paused_at)} (inside)"
                lines.append(f"<span style='color:#b45309'>⏸ <b>Paused</b>{where}</span>")
            if marks.breakpoint is not None:
                enabled, condition = marks.breakpoint
                state = "Breakpoint" if enabled else "Breakpoint (disabled)"
                when = f" when <code>{_html(condition)}</code>" if condition else ""
                lines.append(f"<span style='color:#c41200'>●</span> {state}{when}")
            if marks.inner:
                s = "s" if marks.inner != 1 else ""
                lines.append(f"<span style='color:#c41200'>●</span> {marks.inner} breakpoint{s} inside")
        for severity, message in self.problems:
            lines.append(f"{'⛔' if severity == 'error' else '⚠'} {_html(message)}")
        self.setToolTip("<br>".join(lines))

    def _paint_marks(
        self, painter: QPainter, marks: Marks, border: QRectF, radius: float, cy: float, low: bool
    ) -> None:
        """The paused border and badge over ``border``, and the breakpoint dot at (0, ``cy``)."""
        s = self.style
        painter.setBrush(Qt.BrushStyle.NoBrush)
        if marks.paused_at:
            if low:
                painter.setPen(s.low_paused_pen)
                painter.drawRect(border)
            else:
                if self.isSelected():
                    painter.setPen(s.paused_ring_pen)
                    painter.drawRoundedRect(border.adjusted(-4, -4, 4, 4), radius + 4, radius + 4)
                painter.setPen(s.paused_pen)
                painter.drawRoundedRect(border, radius, radius)
                size = s.paused_text.size()
                h = size.height() + 2
                badge = QRectF(BP_R + 8, -h / 2 - 1, size.width() + 10, h)  # astride the top border
                painter.setPen(Qt.PenStyle.NoPen)
                painter.setBrush(s.paused_brush)
                painter.drawRoundedRect(badge, badge.height() / 2, badge.height() / 2)
                painter.setPen(s.paused_text_pen)
                painter.setFont(s.badge_font)
                painter.drawStaticText(QPointF(badge.x() + 5, badge.y() + 1), s.paused_text)
        if marks.breakpoint is not None:
            enabled, condition = marks.breakpoint
            centre = QPointF(0, cy)
            if low:
                painter.setPen(Qt.PenStyle.NoPen)
                painter.setBrush(s.breakpoint_brush if enabled else s.node_brush)
                painter.drawRect(QRectF(-BP_R, cy - BP_R, 2 * BP_R, 2 * BP_R))
                return
            if enabled:
                painter.setPen(s.breakpoint_gap_pen)
                painter.setBrush(s.breakpoint_brush)
            else:  # hollow
                painter.setPen(s.breakpoint_pen)
                painter.setBrush(s.node_brush)
            painter.drawEllipse(centre, BP_R, BP_R)
            if condition:
                painter.setPen(s.breakpoint_text_pen if enabled else s.breakpoint_mark_pen)
                painter.setFont(s.badge_font)
                size = s.condition_text.size()
                painter.drawStaticText(QPointF(-size.width() / 2, cy - size.height() / 2), s.condition_text)
        elif marks.inner:
            painter.setPen(s.breakpoint_gap_pen)
            painter.setBrush(s.breakpoint_brush)
            painter.drawEllipse(QPointF(0, cy), INNER_R, INNER_R)

    def _border_pen(self, low: bool):  # type: ignore[no-untyped-def]
        s = self.style
        if self.hot or self.isSelected():
            return s.low_selected_pen if low else s.selected_pen
        if self.severity == "error":
            return s.low_error_pen if low else s.error_pen
        if self.severity == "warning":
            return s.low_warning_pen if low else s.warning_pen
        return None

    def _paint_problem_badge(self, painter: QPainter) -> None:
        if not self.severity:
            return
        s = self.style
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(s.error_brush if self.severity == "error" else s.warning_brush)
        painter.drawEllipse(self._problem_rect)
        painter.setPen(s.badge_text_pen)
        painter.setFont(s.badge_font)
        size = self._badge_text.size()
        painter.drawStaticText(
            QPointF(
                self._problem_rect.center().x() - size.width() / 2,
                self._problem_rect.center().y() - size.height() / 2,
            ),
            self._badge_text,
        )


class NodeItem(StepItem):
    """A step: rounded box with a category badge, its name and type.

    ``hidden_steps`` > 0 marks a collapsed composite (drawn as a stack with a chevron);
    ``compact`` is a compensation step drawn small beside its step.
    """

    def __init__(
        self,
        step_id: str,
        box: Box,
        name: str,
        type_name: str,
        category: str,
        style: GraphStyle,
        *,
        hidden_steps: int = 0,
        compact: bool = False,
        port: bool = False,
    ) -> None:
        self.hidden_steps = hidden_steps
        self.compact = compact
        self.port = port
        super().__init__(step_id, box, name, type_name, category, style)
        self.setZValue(Z_NODE)
        self.prepare()

    @property
    def collapsed(self) -> bool:
        return self.hidden_steps > 0

    def prepare(self) -> None:
        s = self.style
        w, h = self.rect.width(), self.rect.height()
        badge = 22.0 if self.compact else 26.0
        self._badge = badge_rects(8.0, h / 2, badge)
        text_x = 8.0 + badge + 8.0
        text_w = w - text_x - (TOGGLE_W if self.collapsed else 8.0)
        self._text_w = text_w
        self._name: QStaticText | None = None  # made on the first detailed paint: most never are
        name_h = s.name_metrics.height()
        type_h = s.type_metrics.height()
        top = (h - name_h - type_h - 2) / 2
        self._name_pos = QPointF(text_x, top)
        self._type_pos = QPointF(text_x, top + name_h + 2)
        self._stack = self.rect.translated(4, 4)
        self._chevron_pos = QPointF(w - TOGGLE_W + 8, (h - name_h) / 2)
        self._port = QRectF(w / 2 - PORT_R, h - PORT_R, PORT_R * 2, PORT_R * 2)

    def _make_texts(self) -> QStaticText:
        s = self.style
        kind = self.type_name
        if self.collapsed:
            kind = f"{kind} · {self.hidden_steps} step{'s' if self.hidden_steps != 1 else ''}"
        self._type = _static(kind, self._text_w, s.type_metrics, s.type_font)
        self._chevron = _static("▸", TOGGLE_W, s.name_metrics, s.name_font)
        self._name = _static(self.name, self._text_w, s.name_metrics, s.name_font)
        return self._name

    def toggle_rect(self) -> QRectF | None:
        if not self.collapsed:
            return None
        return QRectF(self.rect.right() - TOGGLE_W, 0, TOGGLE_W, self.rect.height())

    def port_rect(self) -> QRectF | None:
        """The output port (item coordinates): drag from it to set where this step routes."""
        return self._port.adjusted(-4, -4, 4, 4) if self.port else None

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        s = self.style
        lod = QStyleOptionGraphicsItem.levelOfDetailFromTransform(painter.worldTransform())
        if lod < LOD_SHAPES:
            pen = self._border_pen(True)
            painter.setPen(pen if pen is not None else Qt.PenStyle.NoPen)
            painter.setBrush(s.category(self.category)[2])
            painter.drawRect(self.rect)
            if self.marks is not None:
                self._paint_marks(painter, self.marks, self.rect, RADIUS, self.rect.height() / 2, True)
            return
        pen = self._border_pen(False)
        if self.collapsed:
            painter.setPen(s.node_pen)
            painter.setBrush(s.node_brush)
            painter.drawRoundedRect(self._stack, RADIUS, RADIUS)
        painter.setPen(pen if pen is not None else s.compensate_pen if self.compact else s.node_pen)
        painter.setBrush(s.node_brush)
        painter.drawRoundedRect(self.rect, RADIUS, RADIUS)
        draw_badge(painter, s, self.category, *self._badge)
        if lod >= LOD_TEXT:
            name = self._name or self._make_texts()
            painter.setPen(s.text_pen)
            painter.setFont(s.name_font)
            painter.drawStaticText(self._name_pos, name)
            if self.collapsed:
                painter.drawStaticText(self._chevron_pos, self._chevron)
            painter.setPen(s.muted_pen)
            painter.setFont(s.type_font)
            painter.drawStaticText(self._type_pos, self._type)
        if self.port:
            painter.setPen(s.node_pen)
            painter.setBrush(s.port_brush)
            painter.drawEllipse(self._port)
        self._paint_problem_badge(painter)
        if self.marks is not None:
            self._paint_marks(painter, self.marks, self.rect, RADIUS, self.rect.height() / 2, False)


class GroupItem(StepItem):
    """An expanded composite: a header (badge, name, type, chevron) over its lists side by side.

    Only the header is hit by clicks (``shape``), so dragging its empty body pans the view.
    """

    def __init__(
        self,
        step_id: str,
        box: Box,
        name: str,
        type_name: str,
        category: str,
        style: GraphStyle,
        slots: list[SlotBox],
        depth: int,
    ) -> None:
        self.slots = slots
        super().__init__(step_id, box, name, type_name, category, style)
        self.setZValue(Z_GROUP + depth)
        self.prepare()

    def prepare(self) -> None:
        s = self.style
        w = self.rect.width()
        self._header = QRectF(0, 0, w, GROUP_HEADER)
        self._badge = badge_rects(10.0, GROUP_HEADER / 2, 26.0)
        text_x = 44.0
        text_w = w - text_x - TOGGLE_W - 4
        name_h = s.name_metrics.height()
        type_h = s.type_metrics.height()
        top = (GROUP_HEADER - name_h - type_h - 2) / 2
        self._name = _static(self.name, text_w, s.name_metrics, s.name_font)
        self._type = _static(self.type_name, text_w, s.type_metrics, s.type_font)
        self._name_pos = QPointF(text_x, top)
        self._type_pos = QPointF(text_x, top + name_h + 2)
        self._chevron = _static("▾", TOGGLE_W, s.name_metrics, s.name_font)
        self._chevron_pos = QPointF(w - TOGGLE_W + 6, (GROUP_HEADER - name_h) / 2)
        origin = self.pos()
        self._labels: list[tuple[QPointF, QStaticText]] = []
        self._empty: list[tuple[QRectF, QPointF]] = []
        self._drop_text = _static("drop steps here", 180, s.type_metrics, s.type_font)
        drop_size = self._drop_text.size()
        for slot in self.slots:
            col = slot.column
            if slot.label:
                text = _static(slot.label, max(col.w, 40.0), s.label_metrics, s.label_font)
                size = text.size()
                top = col.y - origin.y() - SLOT_LABEL_H + (SLOT_LABEL_H - size.height()) / 2
                self._labels.append((QPointF(col.x - origin.x() + 4, top), text))
            if not slot.children:
                rect = QRectF(col.x - origin.x(), col.y - origin.y(), col.w, col.h)
                self._empty.append(
                    (
                        rect,
                        QPointF(
                            rect.center().x() - drop_size.width() / 2,
                            rect.center().y() - drop_size.height() / 2,
                        ),
                    )
                )

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        path.addRect(self._header)
        return path

    def toggle_rect(self) -> QRectF | None:
        return QRectF(self.rect.right() - TOGGLE_W, 0, TOGGLE_W, GROUP_HEADER)

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        s = self.style
        lod = QStyleOptionGraphicsItem.levelOfDetailFromTransform(painter.worldTransform())
        _, _, light, border, body = s.category(self.category)
        low = lod < LOD_SHAPES
        pen = self._border_pen(low)
        painter.setPen(pen if pen is not None else border)
        painter.setBrush(body)
        if low:
            painter.drawRect(self.rect)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(light)
            painter.drawRect(self._header)
            if self.marks is not None:
                self._paint_marks(painter, self.marks, self.rect, RADIUS + 2, GROUP_HEADER / 2, True)
            return
        painter.drawRoundedRect(self.rect, RADIUS + 2, RADIUS + 2)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(light)
        painter.drawRoundedRect(self._header.adjusted(1.5, 1.5, -1.5, 0), RADIUS, RADIUS)
        draw_badge(painter, s, self.category, *self._badge)
        if lod >= LOD_TEXT:
            painter.setPen(s.text_pen)
            painter.setFont(s.name_font)
            painter.drawStaticText(self._name_pos, self._name)
            painter.drawStaticText(self._chevron_pos, self._chevron)
            painter.setPen(s.muted_pen)
            painter.setFont(s.type_font)
            painter.drawStaticText(self._type_pos, self._type)
            painter.setFont(s.label_font)
            for pos, text in self._labels:
                painter.drawStaticText(pos, text)
        for rect, text_pos in self._empty:
            painter.setPen(s.placeholder_pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(rect, RADIUS, RADIUS)
            if lod >= LOD_TEXT:
                painter.setPen(s.muted_pen)
                painter.setFont(s.type_font)
                painter.drawStaticText(text_pos, self._drop_text)
        self._paint_problem_badge(painter)
        if self.marks is not None:
            self._paint_marks(painter, self.marks, self.rect, RADIUS + 2, GROUP_HEADER / 2, False)


class ListItem(QGraphicsItem):
    """A pipeline-level list's caption ("compensation ...") and, when empty, its drop placeholder."""

    def __init__(self, slot: SlotBox, style: GraphStyle) -> None:
        super().__init__()
        self.slot = slot
        self.style = style
        self.setZValue(Z_GROUP - 1)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        col = slot.column
        self._column = QRectF(col.x, col.y, col.w, col.h)
        self._bounds = self._column.adjusted(-4, -SLOT_LABEL_H - 4, 4, 4)
        self.prepare()

    def prepare(self) -> None:
        s = self.style
        label = self.slot.label
        self._label = _static(label, 400, s.label_metrics, s.label_font) if label else None
        self._label_pos = QPointF(self._column.x(), self._column.y() - SLOT_LABEL_H + 3)
        self._drop = _static("drop steps here", 180, s.type_metrics, s.type_font)
        size = self._drop.size()
        self._drop_pos = QPointF(
            self._column.center().x() - size.width() / 2, self._column.center().y() - size.height() / 2
        )
        if self._label is not None:
            self._bounds = self._bounds.united(QRectF(self._label_pos, self._label.size()))

    def set_style(self, style: GraphStyle) -> None:
        self.style = style
        self.prepare()
        self.update()

    def boundingRect(self) -> QRectF:
        return self._bounds

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        s = self.style
        lod = QStyleOptionGraphicsItem.levelOfDetailFromTransform(painter.worldTransform())
        if self._label is not None and lod >= LOD_TEXT:
            painter.setPen(s.muted_pen)
            painter.setFont(s.label_font)
            painter.drawStaticText(self._label_pos, self._label)
        if not self.slot.children:
            painter.setPen(s.placeholder_pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(self._column, RADIUS, RADIUS)
            if lod >= LOD_TEXT:
                painter.setPen(s.muted_pen)
                painter.setFont(s.type_font)
                painter.drawStaticText(self._drop_pos, self._drop)


class OverviewItem(QGraphicsItem):
    """The whole graph as one recorded picture, drawn instead of the items when zoomed far out.

    Thousands of items each painting a rectangle cost a Python call apiece per frame; played
    back from a QPicture the same drawing is one call. Selection and problems are drawn live
    on top (they are few). The scene records the picture when it is first needed.
    """

    def __init__(self, bounds: QRectF, style: GraphStyle) -> None:
        super().__init__()
        self.style = style
        self.picture = QPicture()
        self.bounds = bounds.adjusted(-8, -8, 8, 8)
        # (scene rect, "selected" | "error" | "warning" | "paused" | "breakpoint" | "breakpoint_off")
        self.emphasis: list[tuple[QRectF, str]] = []
        self.setZValue(Z_NODE + 1)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.hide()

    def record(
        self,
        groups: list[tuple[QRectF, str]],
        nodes: list[tuple[QRectF, str]],
        edges: list[tuple[QPainterPath, str]],
        start: QRectF | None,
    ) -> None:
        s = self.style
        picture = QPicture()
        painter = QPainter(picture)
        for rect, category in groups:  # outer before inner
            body = s.category(category)[4]
            painter.setPen(s.edge_low_pens["next"])
            painter.setBrush(body)
            painter.drawRect(rect)
        for path, kind in edges:
            painter.setPen(s.edge_low_pens[kind])
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawPath(path)
        painter.setPen(Qt.PenStyle.NoPen)
        for rect, category in nodes:
            painter.setBrush(s.category(category)[2])
            painter.drawRect(rect)
        if start is not None:
            painter.setBrush(s.trigger_brush)
            painter.drawRect(start)
        painter.end()
        self.picture = picture
        self.update()

    def boundingRect(self) -> QRectF:
        return self.bounds

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        painter.drawPicture(0, 0, self.picture)
        if self.emphasis:
            s = self.style
            painter.setBrush(Qt.BrushStyle.NoBrush)
            for rect, kind in self.emphasis:
                if kind.startswith("breakpoint"):  # a round dot of fixed screen size at the left edge
                    painter.setPen(s.low_breakpoint_pen if kind == "breakpoint" else s.low_breakpoint_off_pen)
                    painter.drawPoint(QPointF(rect.left(), rect.center().y()))
                    continue
                painter.setPen(
                    s.low_selected_pen
                    if kind == "selected"
                    else s.low_error_pen
                    if kind == "error"
                    else s.low_paused_pen
                    if kind == "paused"
                    else s.low_warning_pen
                )
                painter.drawRect(rect)


class StartItem(QGraphicsItem):
    """The pipeline's trigger, on top of the first step."""

    def __init__(self, box: Box, text: str, style: GraphStyle) -> None:
        super().__init__()
        self.text = text
        self.style = style
        self.setPos(box.x, box.y)
        self.rect = QRectF(0, 0, box.w, box.h)
        self.setZValue(Z_NODE)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.setToolTip(f"Trigger: {text}")
        self.prepare()

    def prepare(self) -> None:
        s = self.style
        self._text = _static(f"▶  {self.text}", self.rect.width() - 20, s.name_metrics, s.name_font)
        size = self._text.size()
        self._text_pos = QPointF(
            (self.rect.width() - size.width()) / 2, (self.rect.height() - size.height()) / 2
        )

    def set_style(self, style: GraphStyle) -> None:
        self.style = style
        self.prepare()
        self.update()

    def relabel(self, text: str) -> None:
        if text != self.text:
            self.text = text
            self.setToolTip(f"Trigger: {text}")
            self.prepare()
            self.update()

    def boundingRect(self) -> QRectF:
        return self.rect.adjusted(-2, -2, 2, 2)

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        s = self.style
        painter.setPen(s.trigger_pen)
        painter.setBrush(s.trigger_brush)
        radius = self.rect.height() / 2
        painter.drawRoundedRect(self.rect, radius, radius)
        lod = QStyleOptionGraphicsItem.levelOfDetailFromTransform(painter.worldTransform())
        if lod >= LOD_TEXT:
            painter.setPen(s.text_pen)
            painter.setFont(s.name_font)
            painter.drawStaticText(self._text_pos, self._text)


class EdgeItem(QGraphicsItem):
    """One edge: a polyline with rounded corners and an arrow; routes and jumps carry a label.

    Pens by kind: next solid grey, route solid blue (labelled), branch violet, jump dashed,
    compensate dotted. Route and jump edges can be re-wired by dragging their arrow end.
    """

    def __init__(self, route: EdgeRoute, style: GraphStyle) -> None:
        super().__init__()
        self.route = route
        self.style = style
        self.hot = False
        self.setZValue(Z_EDGE)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self._shape: QPainterPath | None = None
        self._build_path()
        self.prepare()
        if self.rewirable:
            self.setToolTip(
                f"{route.label} → {route.target.rsplit('/', 1)[-1]}"
                " (drag the arrow end onto another step to re-wire)"
            )

    @property
    def source(self) -> str:
        return self.route.source

    @property
    def target(self) -> str:
        return self.route.target

    @property
    def kind(self) -> str:
        return self.route.kind

    @property
    def label(self) -> str:
        return self.route.label

    @property
    def rewirable(self) -> bool:
        return self.route.kind in ("route", "jump")

    @property
    def end(self) -> QPointF:
        x, y = self.route.points[-1]
        return QPointF(x, y)

    @property
    def start(self) -> QPointF:
        x, y = self.route.points[0]
        return QPointF(x, y)

    def set_hot(self, hot: bool) -> None:
        if hot != self.hot:
            self.hot = hot
            self.update()

    def set_style(self, style: GraphStyle) -> None:
        self.prepareGeometryChange()
        self.style = style
        self.prepare()
        self.update()

    def _build_path(self) -> None:
        points = [QPointF(x, y) for x, y in self.route.points]
        path = QPainterPath(points[0])
        tip = points[-1]
        before = points[-2]
        dx, dy = tip.x() - before.x(), tip.y() - before.y()
        length = math.hypot(dx, dy) or 1.0
        ux, uy = dx / length, dy / length
        base = QPointF(tip.x() - ux * ARROW, tip.y() - uy * ARROW)
        inner = [*points[:-1], base]
        for index in range(1, len(inner) - 1):
            prev, corner, nxt = inner[index - 1], inner[index], inner[index + 1]
            r = min(8.0, _dist(prev, corner) / 2, _dist(corner, nxt) / 2)
            path.lineTo(_towards(corner, prev, r))
            path.quadTo(corner, _towards(corner, nxt, r))
        path.lineTo(base)
        self.path = path
        self.arrow = QPolygonF(
            [
                tip,
                QPointF(base.x() - uy * 4.5, base.y() + ux * 4.5),
                QPointF(base.x() + uy * 4.5, base.y() - ux * 4.5),
            ]
        )

    def prepare(self) -> None:
        s = self.style
        self._label: QStaticText | None = None
        self._label_rect = QRectF()
        if self.route.label and self.route.label_at is not None:
            self._label = _static(self.route.label, 160, s.label_metrics, s.label_font)
            size = self._label.size()
            x, y = self.route.label_at
            self._label_rect = QRectF(
                x - size.width() - 8, y - size.height() / 2 - 2, size.width() + 8, size.height() + 4
            )
            self._label_pos = QPointF(self._label_rect.x() + 4, self._label_rect.y() + 2)
        self._bounds = self.path.boundingRect().united(self.arrow.boundingRect()).adjusted(-4, -4, 4, 4)
        if self._label is not None:
            self._bounds = self._bounds.united(self._label_rect)

    def boundingRect(self) -> QRectF:
        return self._bounds

    def shape(self) -> QPainterPath:
        if not self.rewirable:
            return QPainterPath()  # only route/jump edges take clicks
        if self._shape is None:
            stroker = QPainterPathStroker()
            stroker.setWidth(10.0)
            self._shape = stroker.createStroke(self.path)
            self._shape.addPolygon(self.arrow)
            if self._label is not None:
                self._shape.addRect(self._label_rect)
        return self._shape

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        s = self.style
        kind = self.route.kind
        lod = QStyleOptionGraphicsItem.levelOfDetailFromTransform(painter.worldTransform())
        if lod < LOD_SHAPES:
            painter.setPen(s.edge_low_pens[kind])
            painter.drawPath(self.path)
            return
        painter.setPen(s.edge_hot_pens[kind] if self.hot else s.edge_pens[kind])
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(self.path)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(s.edge_brushes[kind])
        painter.drawPolygon(self.arrow)
        if self._label is not None and lod >= LOD_TEXT:
            painter.setBrush(s.label_brush)
            painter.drawRoundedRect(self._label_rect, 4, 4)
            painter.setPen(s.edge_pens[kind])
            painter.setFont(s.label_font)
            painter.drawStaticText(self._label_pos, self._label)


class InsertMarker(QGraphicsItem):
    """Where a dropped or dragged step would go: a bar between two nodes."""

    def __init__(self, style: GraphStyle) -> None:
        super().__init__()
        self.style = style
        self.setZValue(Z_FEEDBACK)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self._line = QRectF()
        self.hide()

    def show_at(self, x0: float, x1: float, y: float) -> None:
        self.prepareGeometryChange()
        self.setPos(0, 0)
        self._line = QRectF(x0, y - 1.5, x1 - x0, 3.0)
        self.show()

    def boundingRect(self) -> QRectF:
        return self._line.adjusted(-6, -6, 6, 6)

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self.style.marker_brush)
        painter.drawRoundedRect(self._line, 1.5, 1.5)
        r = 4.5
        y = self._line.center().y()
        painter.drawEllipse(QPointF(self._line.left(), y), r, r)
        painter.drawEllipse(QPointF(self._line.right(), y), r, r)


class GhostItem(QGraphicsItem):
    """The outline of a step being dragged, following the cursor."""

    def __init__(self, style: GraphStyle) -> None:
        super().__init__()
        self.style = style
        self.setZValue(Z_FEEDBACK)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.rect = QRectF()
        self.hide()

    def set_size(self, w: float, h: float) -> None:
        self.prepareGeometryChange()
        self.rect = QRectF(0, 0, w, h)

    def boundingRect(self) -> QRectF:
        return self.rect.adjusted(-2, -2, 2, 2)

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        painter.setPen(self.style.ghost_pen)
        painter.setBrush(self.style.ghost_brush)
        painter.drawRoundedRect(self.rect, RADIUS, RADIUS)


class WireItem(QGraphicsItem):
    """The rubber wire while re-wiring: from the edge's source to the cursor."""

    def __init__(self, style: GraphStyle) -> None:
        super().__init__()
        self.style = style
        self.kind = "route"
        self.setZValue(Z_FEEDBACK)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self._a = QPointF()
        self._b = QPointF()
        self.hide()

    def set_ends(self, a: QPointF, b: QPointF) -> None:
        self.prepareGeometryChange()
        self._a, self._b = QPointF(a), QPointF(b)

    def boundingRect(self) -> QRectF:
        return QRectF(self._a, self._b).normalized().adjusted(-6, -6, 6, 6)

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        painter.setPen(self.style.edge_hot_pens.get(self.kind, self.style.marker_pen))
        painter.drawLine(self._a, self._b)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self.style.marker_brush)
        painter.drawEllipse(self._b, 4.0, 4.0)


def trigger_text(trigger: dict[str, object]) -> str:
    """One line for the start node: "manual", "http POST /orders", "schedule */5 * * * *"."""
    kind = str(trigger.get("type") or "manual")
    config = trigger.get("config")
    config = config if isinstance(config, dict) else {}
    if kind == "http":
        return f"http {config.get('method', 'GET')} {config.get('path', '/')}".strip()
    if kind == "schedule" and config.get("cron"):
        return f"schedule {config['cron']}"
    if kind == "event":
        what = config.get("type") or config.get("connector")
        return f"event {what}" if what else "event"
    return kind


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _dist(a: QPointF, b: QPointF) -> float:
    return math.hypot(a.x() - b.x(), a.y() - b.y())


def _towards(a: QPointF, b: QPointF, r: float) -> QPointF:
    d = _dist(a, b) or 1.0
    return QPointF(a.x() + (b.x() - a.x()) * r / d, a.y() + (b.y() - a.y()) * r / d)
