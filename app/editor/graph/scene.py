"""The scene of one pipeline: items made from a :class:`GraphLayout`, looked up by step id.

Items are flat (no parent items) at their layout's scene positions, indexed by a BSP tree;
the scene rect is the layout's bounds plus a margin so the view can pan past the edges.
"""

from __future__ import annotations

from collections.abc import Mapping

from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QPainterPath
from PySide6.QtWidgets import QGraphicsScene, QGraphicsSimpleTextItem

from app.editor.graph.catalog import TypeCatalog
from app.editor.graph.items import (
    LOD_SHAPES,
    EdgeItem,
    GhostItem,
    GroupItem,
    InsertMarker,
    ListItem,
    Marks,
    NodeItem,
    OverviewItem,
    Problems,
    StartItem,
    StepItem,
    WireItem,
    trigger_text,
)
from app.editor.graph.layout import START, GraphLayout, count_steps
from app.editor.graph.style import GraphStyle
from app.editor.outline import PipelineOutline, scope_names

MARGIN = 400.0


class PipelineScene(QGraphicsScene):
    def __init__(self, parent=None) -> None:  # type: ignore[no-untyped-def]
        super().__init__(parent)
        self.setItemIndexMethod(QGraphicsScene.ItemIndexMethod.BspTreeIndex)
        self.graph_style = GraphStyle()
        self.setBackgroundBrush(self.graph_style.background)
        self.pipeline: PipelineOutline | None = None
        self.layout: GraphLayout | None = None
        self.steps: dict[str, StepItem] = {}
        self.marked: dict[str, StepItem] = {}  # the steps carrying debugger marks
        self.edges: list[EdgeItem] = []
        self.start: StartItem | None = None
        self._bounds = QRectF()
        self.overview = OverviewItem(QRectF(), self.graph_style)
        self._overview_on = False
        self._overview_dirty = True
        self._make_feedback()
        self.selectionChanged.connect(self._update_emphasis)

    # -- building

    def build(
        self,
        pipeline: PipelineOutline,
        layout: GraphLayout,
        catalog: TypeCatalog,
        problems: Mapping[str, Problems],
    ) -> None:
        """Replace every item by the ones of ``layout``."""
        self.clear()
        self._make_feedback()
        self.pipeline = pipeline
        self.layout = layout
        self.steps = {}
        self.marked = {}
        self.edges = []
        style = self.graph_style
        slots_by_owner: dict[str, list] = {}
        for slot in layout.slots:
            if slot.owner is not None:
                slots_by_owner.setdefault(slot.owner, []).append(slot)
        for step_id, box in layout.boxes.items():
            if step_id == START:
                self.start = StartItem(box, trigger_text(pipeline.trigger), style)
                self.addItem(self.start)
                continue
            node = pipeline.nodes[step_id]
            category = catalog.category(node.type)
            item: StepItem
            if layout.groups.get(step_id) is False:
                item = GroupItem(
                    step_id,
                    box,
                    node.name,
                    node.type,
                    category,
                    style,
                    slots_by_owner.get(step_id, []),
                    layout.depth.get(step_id, 0),
                )
            else:
                hidden = count_steps(node) if layout.groups.get(step_id) else 0
                item = NodeItem(
                    step_id,
                    box,
                    node.name,
                    node.type,
                    category,
                    style,
                    hidden_steps=hidden,
                    compact=node.slot == "compensate",
                    port=bool(catalog.step_refs(node.type)),
                )
            item.set_problems(problems.get(step_id, []))
            self.addItem(item)
            self.steps[step_id] = item
        lists = [
            ListItem(slot, style)
            for slot in layout.slots
            if slot.owner is None and (slot.label or not slot.children)
        ]
        for list_item in lists:
            self.addItem(list_item)
        for route in layout.edges:
            edge = EdgeItem(route, style)
            self.addItem(edge)
            self.edges.append(edge)
        b = layout.bounds
        bounds = QRectF(b.x, b.y, b.w, b.h)
        for extra in [*self.edges, *lists]:  # labels stick out of the layout's boxes
            bounds = bounds.united(extra.boundingRect())
        self._bounds = bounds
        self.overview = OverviewItem(QRectF(b.x, b.y, b.w, b.h), style)
        self.addItem(self.overview)
        self._overview_dirty = True
        if self._overview_on:
            self._overview_on = False
            self.set_overview(True)
        self.setSceneRect(bounds.adjusted(-MARGIN, -MARGIN, MARGIN, MARGIN))

    # -- far zoom: one picture instead of thousands of items

    @property
    def base_opacity(self) -> float:
        """Opacity of the step and edge items: 0 while the overview picture stands in for them."""
        return 0.0 if self._overview_on else 1.0

    def set_overview(self, on: bool) -> None:
        """Draw the recorded overview instead of the items (below the shapes level of detail)."""
        if on == self._overview_on:
            return
        self._overview_on = on
        if on and self._overview_dirty:
            self._record_overview()
        opacity = self.base_opacity
        for item in self._detail_items():
            item.setOpacity(opacity)
        self.overview.setVisible(on)
        self._update_emphasis()

    def overview_level(self, zoom: float) -> bool:
        return zoom < LOD_SHAPES

    def _detail_items(self) -> list:
        out: list = [*self.steps.values(), *self.edges]
        if self.start is not None:
            out.append(self.start)
        return out

    def _record_overview(self) -> None:
        layout = self.layout
        groups: list[tuple[QRectF, str]] = []
        nodes: list[tuple[QRectF, str]] = []
        for item in sorted(self.steps.values(), key=lambda i: i.zValue()):
            rect = item.rect.translated(item.pos())
            (groups if isinstance(item, GroupItem) else nodes).append((rect, item.category))
        edges: list[tuple[QPainterPath, str]] = [(edge.path, edge.kind) for edge in self.edges]
        start = self.start.rect.translated(self.start.pos()) if self.start is not None else None
        if layout is not None:
            self.overview.record(groups, nodes, edges, start)
        self._overview_dirty = False

    def _update_emphasis(self) -> None:
        if not self._overview_on:
            return
        emphasis = []
        for item in self.steps.values():
            kind = "selected" if item.isSelected() else item.severity
            if kind:
                emphasis.append((item.rect.translated(item.pos()), kind))
        for item in self.marked.values():
            marks = item.marks
            if marks is None:
                continue
            rect = item.rect.translated(item.pos())
            if marks.paused_at:
                emphasis.append((rect, "paused"))
            if marks.inner or (marks.breakpoint is not None and marks.breakpoint[0]):
                emphasis.append((rect, "breakpoint"))
            elif marks.breakpoint is not None:
                emphasis.append((rect, "breakpoint_off"))
        self.overview.emphasis = emphasis
        self.overview.update()

    # -- debugger marks

    def set_marks(self, marks: Mapping[str, Marks]) -> bool:
        """Mark the drawn steps in ``marks`` (by step id) and unmark the ones marked before;
        False when there was nothing to do. Only marked items are visited."""
        if not marks and not self.marked:
            return False
        for step_id, item in self.marked.items():
            if step_id not in marks:
                item.set_marks(None)
        marked: dict[str, StepItem] = {}
        for step_id, mark in marks.items():
            found = self.steps.get(step_id)
            if found is not None:
                found.set_marks(mark)
                marked[step_id] = found
        self.marked = marked
        self._update_emphasis()
        return True

    def relabel(self, pipeline: PipelineOutline, catalog: TypeCatalog) -> None:
        """The same layout for a newer outline: take it and update names, types and the trigger."""
        self.pipeline = pipeline
        for step_id, item in self.steps.items():
            node = pipeline.nodes.get(step_id)
            if node is not None:
                item.relabel(node.name, node.type, catalog.category(node.type))
        if self.start is not None:
            self.start.relabel(trigger_text(pipeline.trigger))
        self._overview_dirty = True
        if self._overview_on:
            self._record_overview()

    def show_message(self, text: str) -> None:
        """An empty scene with one line of text (a file without pipelines)."""
        self.clear()
        self._make_feedback()
        self.pipeline = None
        self.layout = None
        self.steps = {}
        self.marked = {}
        self.edges = []
        self.start = None
        self.overview = OverviewItem(QRectF(), self.graph_style)
        item = QGraphicsSimpleTextItem(text)
        item.setBrush(self.graph_style.muted)
        self.addItem(item)
        self.setSceneRect(item.boundingRect().adjusted(-MARGIN, -MARGIN, MARGIN, MARGIN))

    def set_problems(self, problems: Mapping[str, Problems]) -> None:
        for step_id, item in self.steps.items():
            item.set_problems(problems.get(step_id, []))
        self._update_emphasis()

    def set_style(self, style: GraphStyle) -> None:
        self.graph_style = style
        self.setBackgroundBrush(style.background)
        for item in self.items():
            setter = getattr(item, "set_style", None)
            if setter is not None:
                setter(style)
            elif hasattr(item, "style"):
                item.style = style  # type: ignore[attr-defined]
        self._overview_dirty = True
        if self._overview_on:
            self._record_overview()

    def items_bounds(self) -> QRectF:
        """The drawn graph (the layout's bounds), without the panning margin."""
        if self.layout is None:
            return self.itemsBoundingRect()
        return QRectF(self._bounds)

    # -- lookups

    def step_item_at(self, pos: QPointF) -> StepItem | None:
        """The top-most node or composite header under ``pos``."""
        for item in self.items(pos):
            if isinstance(item, StepItem):
                return item
        return None

    def target_at(self, pos: QPointF) -> StepItem | None:
        """A step to wire to: the node under ``pos``, else the innermost composite around it."""
        item = self.step_item_at(pos)
        if item is not None or self.layout is None:
            return item
        best: StepItem | None = None
        best_depth = -1
        for step_id in self.layout.groups:
            box = self.layout.boxes.get(step_id)
            if box is not None and box.contains(pos.x(), pos.y()):
                depth = self.layout.depth.get(step_id, 0)
                if depth > best_depth:
                    best, best_depth = self.steps.get(step_id), depth
        return best

    def edge_end_at(self, pos: QPointF, tolerance: float) -> EdgeItem | None:
        """A re-wirable edge whose arrow end is within ``tolerance`` (scene units) of ``pos``."""
        area = QRectF(pos.x() - tolerance, pos.y() - tolerance, 2 * tolerance, 2 * tolerance)
        best: EdgeItem | None = None
        best_d = tolerance * tolerance
        for item in self.items(area):
            if isinstance(item, EdgeItem) and item.rewirable:
                end = item.end
                d = (end.x() - pos.x()) ** 2 + (end.y() - pos.y()) ** 2
                if d <= best_d:
                    best, best_d = item, d
        return best

    def port_at(self, pos: QPointF) -> NodeItem | None:
        item = self.step_item_at(pos)
        if isinstance(item, NodeItem):
            rect = item.port_rect()
            if rect is not None and rect.contains(item.mapFromScene(pos)):
                return item
        return None

    def edges_of(self, step_id: str) -> list[EdgeItem]:
        return [e for e in self.edges if e.source == step_id or e.target == step_id]

    def selected_ids(self) -> list[str]:
        return [item.step_id for item in self.selectedItems() if isinstance(item, StepItem)]

    def can_reach(self, source_id: str, target_id: str) -> bool:
        """Whether a reference in ``source_id`` may name ``target_id`` (its siblings or the top level)."""
        p = self.pipeline
        if p is None or source_id not in p.nodes or target_id not in p.nodes:
            return False
        target = p.nodes[target_id]
        return scope_names(p, p.nodes[source_id]).get(target.name) == target_id

    # -- feedback items (made again after every clear())

    def _make_feedback(self) -> None:
        self.marker = InsertMarker(self.graph_style)
        self.ghost = GhostItem(self.graph_style)
        self.wire = WireItem(self.graph_style)
        for item in (self.marker, self.ghost, self.wire):
            self.addItem(item)
