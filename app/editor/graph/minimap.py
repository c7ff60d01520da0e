"""A small overview of the whole graph with the main view's visible area; click or drag to go there.

The overview is rendered into a pixmap when the graph changes (at minimap scale every item
takes its cheapest level of detail), so following the main view while it pans or zooms
only paints that pixmap and a rectangle.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, QTimer
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPen, QPixmap
from PySide6.QtWidgets import QWidget

from app.editor.graph.view import PipelineView

MAX_W, MAX_H = 200, 150
PAD = 6.0


class Minimap(QWidget):
    def __init__(self, view: PipelineView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("graphMinimap")
        self.view = view
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Overview: click or drag to move the view")
        self._pixmap = QPixmap()
        self._source = QRectF()  # scene rect shown
        self._scale = 1.0
        self._offset = QPointF()
        self._timer = QTimer(self, singleShot=True, interval=60)
        self._timer.timeout.connect(self.render_now)
        self._frame_pen = QPen(QColor("#2f6feb"), 1.5)
        self._frame_fill = QColor(47, 111, 235, 40)
        self._border_pen = QPen(QColor(128, 128, 128, 160), 1.0)
        view.viewChanged.connect(self.update)
        self.resize(MAX_W, MAX_H)

    def refresh(self) -> None:
        """The graph changed: render the overview again (soon, once for a burst of changes)."""
        if self._pixmap.isNull():
            self.render_now()  # the first picture at once: nothing to coalesce yet
        else:
            self._timer.start()

    def sizeHint(self) -> QSize:
        return QSize(MAX_W, MAX_H)

    def render_now(self) -> None:
        self._timer.stop()
        scene = self.view.pipeline_scene
        source = scene.items_bounds()
        if source.isEmpty():
            self._pixmap = QPixmap()
            self._source = QRectF()
            self.update()
            return
        scale = min((MAX_W - 2 * PAD) / source.width(), (MAX_H - 2 * PAD) / source.height())
        w = max(40, int(source.width() * scale + 2 * PAD))
        h = max(30, int(source.height() * scale + 2 * PAD))
        self.resize(w, h)
        ratio = self.devicePixelRatioF()
        pixmap = QPixmap(int(w * ratio), int(h * ratio))
        pixmap.setDevicePixelRatio(ratio)
        pixmap.fill(scene.graph_style.background.color())
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        target = QRectF(PAD, PAD, source.width() * scale, source.height() * scale)
        scene.render(painter, target, source, Qt.AspectRatioMode.KeepAspectRatio)
        painter.end()
        self._pixmap = pixmap
        self._source = source
        self._scale = scale
        self._offset = QPointF(PAD, PAD)
        self.update()

    def to_scene(self, pos: QPointF) -> QPointF:
        return QPointF(
            self._source.x() + (pos.x() - self._offset.x()) / self._scale,
            self._source.y() + (pos.y() - self._offset.y()) / self._scale,
        )

    def to_map(self, rect: QRectF) -> QRectF:
        return QRectF(
            self._offset.x() + (rect.x() - self._source.x()) * self._scale,
            self._offset.y() + (rect.y() - self._source.y()) * self._scale,
            rect.width() * self._scale,
            rect.height() * self._scale,
        )

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        if not self._pixmap.isNull():
            painter.drawPixmap(0, 0, self._pixmap)
        painter.setPen(self._border_pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5))
        if not self._source.isEmpty():
            frame = self.to_map(self.view.visible_scene_rect()).intersected(QRectF(self.rect()))
            painter.setPen(self._frame_pen)
            painter.setBrush(self._frame_fill)
            painter.drawRect(frame)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self._go(event.position())
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._go(event.position())
        event.accept()

    def _go(self, pos: QPointF) -> None:
        if self._source.isEmpty():
            return
        self.view.centerOn(self.to_scene(pos))
        self.view.viewChanged.emit()
        self.view.userNavigated.emit()
