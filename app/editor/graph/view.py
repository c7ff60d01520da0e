"""The canvas: pan, zoom, select, and the drag gestures that edit the pipeline.

The view only turns gestures into requests (signals); :class:`GraphPane` carries them out
on the document. Gestures with the left button:

- on a node: select (Ctrl toggles); drag it to another place in a list to reorder it (an
  insertion bar shows where it goes, inside composites too);
- on the arrow end of a route/jump edge, or on a node's output port: drag onto another node
  to re-wire (the wire follows the cursor);
- on the chevron of a composite (or double-click its header): collapse/expand;
- on the background: pan (so does the middle button anywhere). Ctrl+wheel zooms at the cursor.

Drops of "application/x-wfstudio-step-type" (a UTF-8 step type name) insert that type at
the insertion bar.
"""

from __future__ import annotations

from enum import Enum, auto

from PySide6.QtCore import QEvent, QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QContextMenuEvent,
    QDragEnterEvent,
    QDragLeaveEvent,
    QDragMoveEvent,
    QDropEvent,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QApplication, QGraphicsView, QWidget

from app.editor.graph.items import EdgeItem, GroupItem, NodeItem, StepItem
from app.editor.graph.layout import Insertion
from app.editor.graph.scene import PipelineScene

MIME_STEP_TYPE = "application/x-wfstudio-step-type"
MIN_ZOOM = 0.03
MAX_ZOOM = 3.0
FIT_MAX_ZOOM = 1.25  # zoom to fit never blows a small graph up beyond this
HANDLE_PX = 12.0  # how close (screen pixels) to an edge's arrow a press starts re-wiring


class _Mode(Enum):
    NONE = auto()
    PAN = auto()
    PRESS = auto()  # pressed on a node; a drag beyond the threshold starts MOVE
    MOVE = auto()
    WIRE = auto()


class PipelineView(QGraphicsView):
    typeDropped = Signal(str, object, int)  # type name, list YAML path, index
    moveRequested = Signal(str, object, int)  # step id, list YAML path, index before the move
    rewireRequested = Signal(str, str, str, QPoint)  # source, edge label ("" = port), target, global pos
    toggleRequested = Signal(str)  # composite step id
    contextMenuRequested = Signal(str, QPoint)  # step id or "", global pos
    hintRequested = Signal(str)  # a one-line explanation for the user
    viewChanged = Signal()  # scrolled or zoomed: the minimap follows
    userNavigated = Signal()  # the user panned or zoomed (the pane stops fitting on resize)

    def __init__(self, scene: PipelineScene, parent: QWidget | None = None) -> None:
        super().__init__(scene, parent)
        self.setObjectName("pipelineView")
        self.pipeline_scene = scene
        self.editable = True
        self.setRenderHints(
            QPainter.RenderHint.Antialiasing
            | QPainter.RenderHint.TextAntialiasing
            | QPainter.RenderHint.SmoothPixmapTransform
        )
        # Smart updates repaint the few changed rects; scrolling moves pixels and paints the strip.
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setCacheMode(QGraphicsView.CacheModeFlag.CacheBackground)
        # Every item sets the painter state it uses, so the view needn't save/restore it per item.
        self.setOptimizationFlag(QGraphicsView.OptimizationFlag.DontSavePainterState, True)
        self.setOptimizationFlag(QGraphicsView.OptimizationFlag.DontAdjustForAntialiasing, True)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setDragMode(QGraphicsView.DragMode.NoDrag)
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.viewport().setMouseTracking(True)
        self._mode = _Mode.NONE
        self._press_pos = QPoint()
        self._last_pos = QPoint()
        self._press_item: StepItem | None = None
        self._grab = QPointF()
        self._wire_source = ""
        self._wire_label = ""
        self._wire_edge: EdgeItem | None = None
        self._hot_edge: EdgeItem | None = None
        self._hot_target: StepItem | None = None
        self._insertion: Insertion | None = None
        self.horizontalScrollBar().valueChanged.connect(self.viewChanged)
        self.verticalScrollBar().valueChanged.connect(self.viewChanged)

    # ------------------------------------------------------------------ zoom

    def zoom(self) -> float:
        return self.transform().m11()

    def set_zoom(self, scale: float, anchor: QPointF | None = None) -> None:
        """Zoom to ``scale`` keeping ``anchor`` (scene point; default: the view centre) in place."""
        scale = max(MIN_ZOOM, min(MAX_ZOOM, scale))
        factor = scale / self.zoom()
        if abs(factor - 1.0) < 1e-6:
            return
        if anchor is None:
            anchor = self.mapToScene(self.viewport().rect().center())
        before = self.mapFromScene(anchor)
        old = self.transformationAnchor()
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.scale(factor, factor)
        after = self.mapFromScene(anchor)
        delta = after - before
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() + delta.x())
        self.verticalScrollBar().setValue(self.verticalScrollBar().value() + delta.y())
        self.setTransformationAnchor(old)
        self.viewChanged.emit()

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        self.set_zoom(self.zoom() * factor, anchor)

    def fit_rect(self, rect: QRectF, max_zoom: float = FIT_MAX_ZOOM) -> None:
        """Show ``rect`` whole (with a margin), never zooming in beyond ``max_zoom``."""
        if rect.isEmpty() or self.viewport().width() < 10 or self.viewport().height() < 10:
            return
        margin = 24.0 / max(self.zoom(), 0.01)
        rect = rect.adjusted(-margin, -margin, margin, margin)
        self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        if self.zoom() > max_zoom:
            self.set_zoom(max_zoom, rect.center())
        if self.zoom() < MIN_ZOOM:
            self.set_zoom(MIN_ZOOM, rect.center())
        self.centerOn(rect.center())
        self.viewChanged.emit()

    def visible_scene_rect(self) -> QRectF:
        return self.mapToScene(self.viewport().rect()).boundingRect()

    def paintEvent(self, event: QPaintEvent) -> None:
        # Far out, one recorded picture stands in for the items (whatever changed the zoom).
        self.pipeline_scene.set_overview(self.pipeline_scene.overview_level(self.zoom()))
        super().paintEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            steps = event.angleDelta().y() / 120.0
            if steps:
                self.zoom_by(1.15**steps, self.mapToScene(event.position().toPoint()))
                self.userNavigated.emit()
            event.accept()
            return
        super().wheelEvent(event)
        self.userNavigated.emit()

    # ------------------------------------------------------------------ mouse

    def mousePressEvent(self, event: QMouseEvent) -> None:
        pos = event.position().toPoint()
        self._press_pos = self._last_pos = pos
        if event.button() == Qt.MouseButton.MiddleButton:
            self._begin_pan()
            event.accept()
            return
        if event.button() != Qt.MouseButton.LeftButton:
            super().mousePressEvent(event)
            return
        scene = self.pipeline_scene
        at = self.mapToScene(pos)
        if self.editable:
            edge = scene.edge_end_at(at, HANDLE_PX / max(self.zoom(), 0.01))
            if edge is not None:
                self._begin_wire(edge.source, edge.label, edge.start, edge)
                event.accept()
                return
        item = scene.step_item_at(at)
        if item is not None:
            toggle = item.toggle_rect()
            if toggle is not None and toggle.contains(item.mapFromScene(at)):
                self.toggleRequested.emit(item.step_id)
                event.accept()
                return
            port = scene.port_at(at)
            if self.editable and port is not None:
                rect = port.port_rect()
                assert rect is not None
                self._begin_wire(port.step_id, "", port.mapToScene(rect.center()), None)
                event.accept()
                return
            self._mode = _Mode.PRESS
            self._press_item = item  # before the selection changes: the pane asks which one is current
            if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
                item.setSelected(not item.isSelected())
            elif not item.isSelected():
                scene.blockSignals(True)  # one selectionChanged for "clear, then select this"
                scene.clearSelection()
                scene.blockSignals(False)
                item.setSelected(True)
            self._grab = item.mapFromScene(at)
            event.accept()
            return
        if not event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            scene.clearSelection()
        self._begin_pan()
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pos = event.position().toPoint()
        at = self.mapToScene(pos)
        if self._mode == _Mode.PAN:
            delta = pos - self._last_pos
            if not delta.isNull():
                self.userNavigated.emit()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - delta.x())
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - delta.y())
        elif self._mode == _Mode.PRESS:
            if (pos - self._press_pos).manhattanLength() >= QApplication.startDragDistance():
                self._begin_move(at)
        elif self._mode == _Mode.MOVE:
            self._update_move(at)
        elif self._mode == _Mode.WIRE:
            self._update_wire(at)
        else:
            self._hover(at)
        self._last_pos = pos
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        at = self.mapToScene(event.position().toPoint())
        mode, self._mode = self._mode, _Mode.NONE
        if mode == _Mode.PAN:
            self.viewport().unsetCursor()
        elif mode == _Mode.MOVE:
            self._finish_move(at, event.globalPosition().toPoint())
        elif mode == _Mode.WIRE:
            self._finish_wire(at, event.globalPosition().toPoint())
        self._press_item = None
        event.accept()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        item = self.pipeline_scene.step_item_at(self.mapToScene(event.position().toPoint()))
        if isinstance(item, GroupItem) or (isinstance(item, NodeItem) and item.collapsed):
            self.toggleRequested.emit(item.step_id)
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape and self._mode != _Mode.NONE:
            self.cancel_gesture()
            event.accept()
            return
        super().keyPressEvent(event)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        item = self.pipeline_scene.step_item_at(self.mapToScene(event.pos()))
        if item is not None and not item.isSelected():
            self.pipeline_scene.clearSelection()
            item.setSelected(True)
        self.contextMenuRequested.emit(item.step_id if item is not None else "", event.globalPos())
        event.accept()

    def leaveEvent(self, event: QEvent) -> None:
        self._set_hot_edge(None)
        super().leaveEvent(event)

    def cancel_gesture(self) -> None:
        scene = self.pipeline_scene
        scene.marker.hide()
        scene.ghost.hide()
        scene.wire.hide()
        self._set_hot_edge(None)
        self._set_hot_target(None)
        if self._press_item is not None:
            self._press_item.setOpacity(scene.base_opacity)
        self._press_item = None
        self._mode = _Mode.NONE
        self.viewport().unsetCursor()

    # -- pan

    def _begin_pan(self) -> None:
        self._mode = _Mode.PAN
        self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)

    # -- move a node

    def _begin_move(self, at: QPointF) -> None:
        item = self._press_item
        self._mode = _Mode.NONE
        if item is None or not self.editable:
            return
        if not self._movable(item):
            self.hintRequested.emit("A compensation step stays attached to its step; it cannot be moved.")
            return
        self._mode = _Mode.MOVE
        ghost = self.pipeline_scene.ghost
        ghost.set_size(item.rect.width(), min(item.rect.height(), 120.0))
        item.setOpacity(0.45)
        ghost.show()
        self.viewport().setCursor(Qt.CursorShape.DragMoveCursor)
        self._update_move(at)

    def _movable(self, item: StepItem) -> bool:
        p = self.pipeline_scene.pipeline
        node = p.nodes.get(item.step_id) if p is not None else None
        return node is not None and bool(node.path) and isinstance(node.path[-1], int)

    def _update_move(self, at: QPointF) -> None:
        scene = self.pipeline_scene
        scene.ghost.setPos(at - self._grab)
        self._insertion = self._move_target(at)
        if self._insertion is None:
            scene.marker.hide()
        else:
            ins = self._insertion
            scene.marker.show_at(ins.x0, ins.x1, ins.y)
        self.ensureVisible(QRectF(at.x() - 2, at.y() - 2, 4, 4), 30, 30)

    def _move_target(self, at: QPointF) -> Insertion | None:
        """Where the dragged step would land; None inside itself or where it already is."""
        scene = self.pipeline_scene
        item = self._press_item
        if scene.layout is None or scene.pipeline is None or item is None:
            return None
        ins = scene.layout.insertion_at(at.x(), at.y())
        if ins is None or ins.slot.list_path is None:
            return None
        path = scene.pipeline.nodes[item.step_id].path
        list_path = ins.slot.list_path
        if list_path[: len(path)] == path:
            return None
        if list_path == path[:-1] and ins.index in (path[-1], int(path[-1]) + 1):
            return None
        return ins

    def _finish_move(self, at: QPointF, global_pos: QPoint) -> None:
        scene = self.pipeline_scene
        item = self._press_item
        ins = self._move_target(at)
        scene.marker.hide()
        scene.ghost.hide()
        self.viewport().unsetCursor()
        if item is not None:
            item.setOpacity(scene.base_opacity)
            if ins is not None and ins.slot.list_path is not None:
                self.moveRequested.emit(item.step_id, ins.slot.list_path, ins.index)

    # -- re-wire

    def _begin_wire(self, source: str, label: str, origin: QPointF, edge: EdgeItem | None) -> None:
        self._mode = _Mode.WIRE
        self._wire_source = source
        self._wire_label = label
        self._wire_edge = edge
        wire = self.pipeline_scene.wire
        wire.kind = edge.kind if edge is not None else "route"
        wire.set_ends(origin, origin)
        wire.show()
        if edge is not None:
            edge.setOpacity(0.35)
        self.viewport().setCursor(Qt.CursorShape.CrossCursor)

    def _update_wire(self, at: QPointF) -> None:
        wire = self.pipeline_scene.wire
        wire.set_ends(self._wire_origin(), at)
        target = self.pipeline_scene.target_at(at)
        if target is not None and not self.pipeline_scene.can_reach(self._wire_source, target.step_id):
            target = None
        self._set_hot_target(target)
        self.ensureVisible(QRectF(at.x() - 2, at.y() - 2, 4, 4), 30, 30)

    def _wire_origin(self) -> QPointF:
        edge = self._wire_edge
        if edge is not None:
            return edge.start
        item = self.pipeline_scene.steps.get(self._wire_source)
        if isinstance(item, NodeItem) and item.port_rect() is not None:
            return item.mapToScene(item.port_rect().center())  # type: ignore[union-attr]
        return QPointF()

    def _finish_wire(self, at: QPointF, global_pos: QPoint) -> None:
        scene = self.pipeline_scene
        scene.wire.hide()
        if self._wire_edge is not None:
            self._wire_edge.setOpacity(scene.base_opacity)
        self._set_hot_target(None)
        self.viewport().unsetCursor()
        target = scene.target_at(at)
        if target is None:
            return
        if self._wire_edge is not None and target.step_id == self._wire_edge.target:
            return
        self.rewireRequested.emit(self._wire_source, self._wire_label, target.step_id, global_pos)

    def _set_hot_target(self, item: StepItem | None) -> None:
        if item is self._hot_target:
            return
        if self._hot_target is not None and self._hot_target.scene() is not None:
            self._hot_target.set_hot(False)
        self._hot_target = item
        if item is not None:
            item.set_hot(True)

    # -- hover feedback: re-wirable edge ends

    def _hover(self, at: QPointF) -> None:
        edge = None
        if self.editable:
            edge = self.pipeline_scene.edge_end_at(at, HANDLE_PX / max(self.zoom(), 0.01))
            if edge is None and self.pipeline_scene.port_at(at) is not None:
                self.viewport().setCursor(Qt.CursorShape.CrossCursor)
                self._set_hot_edge(None)
                return
        self._set_hot_edge(edge)
        if edge is not None:
            self.viewport().setCursor(Qt.CursorShape.CrossCursor)
        else:
            self.viewport().unsetCursor()

    def _set_hot_edge(self, edge: EdgeItem | None) -> None:
        if edge is self._hot_edge:
            return
        if self._hot_edge is not None and self._hot_edge.scene() is not None:
            self._hot_edge.set_hot(False)
        self._hot_edge = edge
        if edge is not None:
            edge.set_hot(True)

    def forget_items(self) -> None:
        """The scene was rebuilt: drop references to its old items."""
        self._hot_edge = None
        self._hot_target = None
        self._wire_edge = None
        if self._mode in (_Mode.MOVE, _Mode.WIRE, _Mode.PRESS):
            self._mode = _Mode.NONE
        self._press_item = None

    # ------------------------------------------------------------------ drops from the palette

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasFormat(MIME_STEP_TYPE) and self.editable and self.pipeline_scene.layout:
            event.acceptProposedAction()
            self._show_drop(event.position())
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if event.mimeData().hasFormat(MIME_STEP_TYPE) and self.editable and self.pipeline_scene.layout:
            event.acceptProposedAction()
            self._show_drop(event.position())
        else:
            event.ignore()

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:
        self.pipeline_scene.marker.hide()
        event.accept()

    def dropEvent(self, event: QDropEvent) -> None:
        scene = self.pipeline_scene
        scene.marker.hide()
        mime = event.mimeData()
        if not mime.hasFormat(MIME_STEP_TYPE) or not self.editable or scene.layout is None:
            event.ignore()
            return
        type_name = bytes(mime.data(MIME_STEP_TYPE).data()).decode("utf-8", "replace").strip()
        at = self.mapToScene(event.position().toPoint())
        ins = scene.layout.insertion_at(at.x(), at.y())
        if not type_name or ins is None or ins.slot.list_path is None:
            event.ignore()
            return
        event.acceptProposedAction()
        self.typeDropped.emit(type_name, ins.slot.list_path, ins.index)

    def _show_drop(self, pos: QPointF) -> None:
        scene = self.pipeline_scene
        at = self.mapToScene(pos.toPoint())
        ins = scene.layout.insertion_at(at.x(), at.y()) if scene.layout is not None else None
        if ins is None or ins.slot.list_path is None:
            scene.marker.hide()
        else:
            scene.marker.show_at(ins.x0, ins.x1, ins.y)
