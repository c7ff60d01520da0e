"""Automatic layout of one pipeline: plain Python, no Qt, linear in the number of steps.

A pipeline is an ordered list and its order is what runs, so the layout is layered top-down
by list position: each step list (the pipeline's ``steps``, a composite's ``steps``, a branch
arm, a circuit breaker's ``fallback``) is a column of nodes on one axis, a composite is a
box holding its lists side by side, a step's ``compensate`` hangs to the right of it and the
trigger sits on top. Jumps (conditional routes, ``merge_step``, ``ff_gate`` targets) run in
lanes to the left of the column that holds both ends; overlapping spans get separate lanes.
Keeping the list order on screen is what makes "drop between these two nodes" and "drag to
reorder" mean exactly what the YAML will say.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial

from app.editor.outline import PipelineOutline, StepNode, TypeShape, YamlPath

START = "__start__"  # id of the trigger node

NODE_W, NODE_H = 200.0, 56.0
COMP_W, COMP_H = 170.0, 44.0
COMP_GAP = 32.0  # node -> its compensation
START_W, START_H = 200.0, 34.0
V_GAP = 36.0  # between the nodes of a column
GROUP_HEADER = 46.0
GROUP_PAD = 14.0
SLOT_LABEL_H = 22.0  # band above a labelled list inside a composite
SLOT_GAP = 28.0
EMPTY_H = 40.0  # placeholder of an empty list
LANE_W = 16.0
LANE_MARGIN = 20.0
COLUMN_GAP = 80.0  # main column -> the pipeline's compensation list
LANE_KINDS = ("route", "jump")


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    def contains(self, px: float, py: float) -> bool:
        return self.x <= px <= self.right and self.y <= py <= self.bottom

    def united(self, other: Box) -> Box:
        x, y = min(self.x, other.x), min(self.y, other.y)
        return Box(x, y, max(self.right, other.right) - x, max(self.bottom, other.bottom) - y)


@dataclass(frozen=True)
class SlotBox:
    """One step list on screen: a drop target and the frame of a composite's arm."""

    owner: str | None  # composite step id; None for the pipeline's own lists
    slot: str  # "steps", "branches.gold", "default", "fallback", "compensation"
    label: str  # "" when the list is drawn without a caption
    box: Box  # the area that takes drops (for a composite: the arm's share of its body)
    column: Box  # the nodes' column itself
    list_path: YamlPath | None  # None: not a list (a "single" sub-step)
    children: tuple[str, ...]  # step ids in list order
    indexes: tuple[int, ...]  # each child's index in the YAML list
    depth: int


@dataclass(frozen=True)
class EdgeRoute:
    source: str
    target: str
    kind: str  # start | next | route | jump | branch | compensate
    label: str
    points: tuple[tuple[float, float], ...]
    label_at: tuple[float, float] | None  # right end of the label; None: not drawn on the edge


@dataclass(frozen=True)
class Insertion:
    slot: SlotBox
    index: int  # index in the YAML list
    y: float  # where to draw the insertion marker
    x0: float
    x1: float


@dataclass
class GraphLayout:
    boxes: dict[str, Box]  # every visible step (and START) -> its box
    groups: dict[str, bool]  # visible composite step id -> collapsed
    slots: list[SlotBox]
    edges: list[EdgeRoute]
    bounds: Box
    depth: dict[str, int] = field(default_factory=dict)  # nesting depth of each visible step

    def slot_at(self, x: float, y: float) -> SlotBox | None:
        """The innermost list whose area holds the point; the top-level list otherwise."""
        best: SlotBox | None = None
        for slot in self.slots:
            inside = slot.list_path is not None and slot.box.contains(x, y)
            if inside and (best is None or slot.depth > best.depth):
                best = slot
        if best is not None:
            return best
        top = [s for s in self.slots if s.owner is None and s.list_path is not None]
        comp = next((s for s in top if s.slot == "compensation"), None)
        if comp is not None and x >= comp.box.x:
            return comp
        return next((s for s in top if s.slot == "steps"), None)

    def insertion_at(self, x: float, y: float) -> Insertion | None:
        """Where a step dropped at (x, y) goes: between the two nodes around the point."""
        slot = self.slot_at(x, y)
        if slot is None:
            return None
        col = slot.column
        if not slot.children:
            return Insertion(slot, 0, col.cy, col.x, col.right)
        boxes = [self.boxes[c] for c in slot.children]
        pos = sum(1 for b in boxes if b.cy < y)
        if pos == 0:
            marker = boxes[0].y - V_GAP / 2
            index = slot.indexes[0]
        elif pos == len(boxes):
            marker = boxes[-1].bottom + V_GAP / 2
            index = slot.indexes[-1] + 1
        else:
            marker = (boxes[pos - 1].bottom + boxes[pos].y) / 2
            index = slot.indexes[pos]
        x0 = min(b.x for b in boxes)
        x1 = max(b.right for b in boxes)
        return Insertion(slot, index, marker, x0, x1)


def layout_pipeline(
    p: PipelineOutline, shapes: Mapping[str, TypeShape], collapsed: Collection[str] = ()
) -> GraphLayout:
    """Place every visible step of ``p``; steps inside a collapsed composite are not placed."""
    return _Layout(p, shapes, frozenset(collapsed)).run()


def is_composite(node: StepNode, shapes: Mapping[str, TypeShape]) -> bool:
    """A step drawn as a box of sub-step lists (its type has sub-step slots, or it has children)."""
    if node.slot == "compensate":
        return False
    shape = shapes.get(node.type)
    return bool(node.children) or (shape is not None and bool(shape.substep_keys))


def count_steps(node: StepNode) -> int:
    """How many steps ``node`` holds, at any depth (shown on a collapsed composite)."""
    return sum(1 + count_steps(child) for child in node.children)


def visible_ancestor(step_id: str, p: PipelineOutline, boxes: Collection[str]) -> str | None:
    """``step_id`` itself when it is drawn, else the nearest drawn (collapsed) ancestor."""
    current: str | None = step_id
    while current is not None and current not in boxes:
        node = p.nodes.get(current)
        current = node.parent if node is not None else None
    return current


# ------------------------------------------------------------------------------- internals

ColKey = tuple[str, str]  # (owner id or "", slot)


@dataclass
class _Column:
    key: ColKey
    owner: str | None
    slot: str
    label: str
    list_path: YamlPath | None
    nodes: list[StepNode]
    depth: int
    lanes: int = 0
    half_left: float = NODE_W / 2
    half_right: float = NODE_W / 2
    height: float = EMPTY_H
    x: float = 0.0
    y: float = 0.0
    axis: float = 0.0

    @property
    def lanes_w(self) -> float:
        return LANE_MARGIN + self.lanes * LANE_W if self.lanes else 0.0

    @property
    def width(self) -> float:
        return self.lanes_w + self.half_left + self.half_right


@dataclass
class _LaneEdge:
    source: str  # visible ids
    target: str
    kind: str
    label: str
    column: _Column | None
    lo: int = 0
    hi: int = 0
    lane: int = 0


class _Layout:
    def __init__(self, p: PipelineOutline, shapes: Mapping[str, TypeShape], collapsed: frozenset[str]):
        self.p = p
        self.shapes = shapes
        self.collapsed = collapsed
        self.columns: list[_Column] = []
        self.group_columns: dict[str, list[_Column]] = {}  # expanded composites
        self.groups: dict[str, bool] = {}
        self.visible: dict[str, StepNode] = {}
        self.chain: dict[str, tuple[tuple[_Column, int], ...]] = {}
        self.depth: dict[str, int] = {}
        self.size: dict[str, tuple[float, float]] = {}
        self.boxes: dict[str, Box] = {}

    def run(self) -> GraphLayout:
        p = self.p
        main = self._column(("", "steps"), None, "steps", "", (*p.path, "steps"), p.steps, 0, ())
        comp = None
        if p.compensation:
            comp = self._column(
                ("", "compensation"),
                None,
                "compensation",
                "compensation (runs in reverse on failure)",
                (*p.path, "compensation"),
                p.compensation,
                0,
                (),
            )
        lane_edges = self._lane_edges()
        for column in reversed(self.columns):  # inner columns first: a composite's size needs them
            self._measure_column(column)
        self.boxes[START] = Box(0.0, 0.0, START_W, START_H)
        self._place_column(main, 0.0, START_H + V_GAP, main.width)
        shift = main.axis - START_W / 2
        self.boxes[START] = Box(shift, 0.0, START_W, START_H)
        right = main.x + main.width
        for box in self.boxes.values():
            right = max(right, box.right)
        if comp is not None:
            self._place_column(comp, right + COLUMN_GAP, START_H + V_GAP + SLOT_LABEL_H, comp.width)
        slots = self._slot_boxes(main, comp)
        edges = self._edges(lane_edges)
        bounds = self.boxes[START]
        for box in self.boxes.values():
            bounds = bounds.united(box)
        for column in self.columns:
            bounds = bounds.united(Box(column.x, column.y, column.width, column.height))
        return GraphLayout(self.boxes, self.groups, slots, edges, bounds, self.depth)

    # -- structure

    def _column(
        self,
        key: ColKey,
        owner: str | None,
        slot: str,
        label: str,
        list_path: YamlPath | None,
        nodes: list[StepNode],
        depth: int,
        chain: tuple[tuple[_Column, int], ...],
    ) -> _Column:
        column = _Column(key, owner, slot, label, list_path, list(nodes), depth)
        self.columns.append(column)
        for index, node in enumerate(nodes):
            self._visit(node, depth, (*chain, (column, index)))
        return column

    def _visit(self, node: StepNode, depth: int, chain: tuple[tuple[_Column, int], ...]) -> None:
        self.visible[node.id] = node
        self.chain[node.id] = chain
        self.depth[node.id] = depth
        if node.compensate is not None:
            comp = node.compensate
            self.visible[comp.id] = comp
            self.chain[comp.id] = chain
            self.depth[comp.id] = depth
        if not is_composite(node, self.shapes):
            return
        collapsed = node.id in self.collapsed
        self.groups[node.id] = collapsed
        if collapsed:
            return
        lists = self._slots_of(node)
        labelled = len(lists) > 1 or any("." in s for s, _, _ in lists)
        columns = []
        for slot, children, list_path in lists:
            label = slot.split(".", 1)[1] if "." in slot else slot
            columns.append(
                self._column(
                    (node.id, slot),
                    node.id,
                    slot,
                    label if labelled else "",
                    list_path,
                    children,
                    depth + 1,
                    chain,
                )
            )
        self.group_columns[node.id] = columns

    def _slots_of(self, node: StepNode) -> list[tuple[str, list[StepNode], YamlPath | None]]:
        """The composite's lists in the type's order: (slot, children, YAML path of the list)."""
        by_slot: dict[str, list[StepNode]] = {}
        for child in node.children:
            by_slot.setdefault(child.slot, []).append(child)
        shape = self.shapes.get(node.type)
        order: list[tuple[str, str]] = []  # (slot, kind)
        for key, kind in shape.substep_keys.items() if shape is not None else ():
            if kind == "map":
                order += [(s, "list") for s in by_slot if s.startswith(f"{key}.")]
            else:
                order.append((key, kind))
        known = {s for s, _ in order}
        order += [(s, "list") for s in by_slot if s not in known]
        out: list[tuple[str, list[StepNode], YamlPath | None]] = []
        for slot, kind in order:
            children = by_slot.get(slot, [])
            if kind == "single":
                out.append((slot, children, None))
            else:
                out.append((slot, children, (*node.path, "config", *slot.split(".", 1))))
        return out

    def _lane_edges(self) -> list[_LaneEdge]:
        """Route/jump edges between drawn steps, each given the column that holds both ends."""
        out: list[_LaneEdge] = []
        for edge in self.p.edges:
            if edge.kind not in LANE_KINDS:
                continue
            s = visible_ancestor(edge.source, self.p, self.visible)
            t = visible_ancestor(edge.target, self.p, self.visible)
            if s is None or t is None or (s == t and edge.source != edge.target):
                continue
            lane = _LaneEdge(s, t, edge.kind, edge.label, None)
            cs, ct = self.chain[s], self.chain[t]
            for (col_s, i_s), (col_t, i_t) in zip(cs, ct, strict=False):
                if col_s is not col_t:
                    break
                lane.column, lane.lo, lane.hi = col_s, min(i_s, i_t), max(i_s, i_t)
                if i_s != i_t:
                    break
            out.append(lane)
        by_column: dict[int, list[_LaneEdge]] = {}
        for lane in out:
            if lane.column is not None:
                by_column.setdefault(id(lane.column), []).append(lane)
        for lanes in by_column.values():
            _assign_lanes(lanes)
            lanes[0].column.lanes = max(e.lane for e in lanes) + 1  # type: ignore[union-attr]
        return out

    # -- geometry

    def _measure_column(self, column: _Column) -> None:
        if not column.nodes:
            column.half_left = column.half_right = NODE_W / 2
            column.height = EMPTY_H
            return
        left = right = height = 0.0
        for node in column.nodes:
            w, h = self._measure_node(node)
            extra = COMP_GAP + COMP_W if node.compensate is not None else 0.0
            left = max(left, w / 2)
            right = max(right, w / 2 + extra)
            height += h
        column.half_left, column.half_right = left, right
        column.height = height + V_GAP * (len(column.nodes) - 1)

    def _measure_node(self, node: StepNode) -> tuple[float, float]:
        columns = self.group_columns.get(node.id)
        if columns is None:
            size = (NODE_W, NODE_H)
        else:
            band = SLOT_LABEL_H if any(c.label for c in columns) else 0.0
            inner = sum(c.width for c in columns) + SLOT_GAP * (len(columns) - 1)
            tallest = max((c.height for c in columns), default=EMPTY_H)
            size = (max(NODE_W + 40.0, inner + 2 * GROUP_PAD), GROUP_HEADER + band + tallest + GROUP_PAD)
        self.size[node.id] = size
        return size

    def _place_column(self, column: _Column, x: float, y: float, width: float) -> None:
        column.x = x + (width - column.width) / 2
        column.y = y
        column.axis = column.x + column.lanes_w + column.half_left
        top = y
        for node in column.nodes:
            w, h = self.size[node.id]
            box = Box(column.axis - w / 2, top, w, h)
            self.boxes[node.id] = box
            if node.compensate is not None:
                ch = min(h, NODE_H)
                self.boxes[node.compensate.id] = Box(
                    box.right + COMP_GAP, top + (ch - COMP_H) / 2, COMP_W, COMP_H
                )
            columns = self.group_columns.get(node.id)
            if columns:
                band = SLOT_LABEL_H if any(c.label for c in columns) else 0.0
                inner = sum(c.width for c in columns) + SLOT_GAP * (len(columns) - 1)
                cx = box.x + (w - inner) / 2
                for inner_col in columns:
                    self._place_column(inner_col, cx, top + GROUP_HEADER + band, inner_col.width)
                    cx += inner_col.width + SLOT_GAP
            top += h + V_GAP

    def _slot_boxes(self, main: _Column, comp: _Column | None) -> list[SlotBox]:
        out = [self._slot_box(main, Box(main.x, main.y - V_GAP / 2, main.width, main.height + V_GAP))]
        if comp is not None:
            out.append(
                self._slot_box(
                    comp,
                    Box(comp.x, comp.y - SLOT_LABEL_H, comp.width, comp.height + SLOT_LABEL_H + V_GAP / 2),
                )
            )
        for owner, columns in self.group_columns.items():
            group = self.boxes[owner]
            body_top = group.y + GROUP_HEADER
            for index, column in enumerate(columns):
                left = group.x if index == 0 else column.x - SLOT_GAP / 2
                right = group.right if index == len(columns) - 1 else column.x + column.width + SLOT_GAP / 2
                out.append(self._slot_box(column, Box(left, body_top, right - left, group.bottom - body_top)))
        return out

    def _slot_box(self, column: _Column, area: Box) -> SlotBox:
        height = column.height if column.nodes else EMPTY_H
        col_box = Box(column.axis - column.half_left, column.y, column.half_left * 2, height)
        return SlotBox(
            column.owner,
            column.slot,
            column.label,
            area,
            col_box,
            column.list_path,
            tuple(n.id for n in column.nodes),
            tuple(_list_index(n) for n in column.nodes),
            column.depth,
        )

    def _edges(self, lane_edges: Iterable[_LaneEdge]) -> list[EdgeRoute]:
        out: list[EdgeRoute] = []
        first = self.p.steps[0].id if self.p.steps else None
        start = self.boxes[START]
        if first is not None:
            box = self.boxes[first]
            out.append(
                EdgeRoute(START, first, "start", "", ((start.cx, start.bottom), (box.cx, box.y)), None)
            )
        for edge in self.p.edges:
            if edge.kind in LANE_KINDS or edge.source not in self.boxes or edge.target not in self.boxes:
                continue
            s, t = self.boxes[edge.source], self.boxes[edge.target]
            if edge.kind == "next":
                out.append(
                    EdgeRoute(
                        edge.source, edge.target, "next", edge.label, ((s.cx, s.bottom), (t.cx, t.y)), None
                    )
                )
            elif edge.kind == "compensate":
                y = t.cy
                out.append(
                    EdgeRoute(edge.source, edge.target, "compensate", "", ((s.right, y), (t.x, y)), None)
                )
            elif edge.kind == "branch":
                top = s.y + GROUP_HEADER
                out.append(
                    EdgeRoute(
                        edge.source, edge.target, "branch", edge.label, ((t.cx, top), (t.cx, t.y)), None
                    )
                )
        out += self._lane_routes(list(lane_edges))
        return out

    def _lane_routes(self, lanes: list[_LaneEdge]) -> list[EdgeRoute]:
        xs = {id(lane): self._lane_x(lane) for lane in lanes}
        outgoing: dict[str, list[_LaneEdge]] = {}
        incoming: dict[str, list[_LaneEdge]] = {}
        for lane in lanes:
            outgoing.setdefault(lane.source, []).append(lane)
            incoming.setdefault(lane.target, []).append(lane)

        # Order the ends along a node's side so that horizontal stubs do not cross other lanes:
        # leaving, upward edges first (inner lanes on top), then downward ones (outer lanes on top);
        # entering, edges from above first (inner on top), then those from below (outer on top).
        def down(lane: _LaneEdge) -> bool:
            return self.boxes[lane.target].y > self.boxes[lane.source].y

        def order(lane: _LaneEdge, leaving: bool) -> tuple[int, float]:
            first = not down(lane) if leaving else down(lane)
            x = xs[id(lane)] or 0.0
            return (0, -x) if first else (1, x)

        slot_of: dict[tuple[int, bool], tuple[int, int]] = {}
        for ends, leaving in ((outgoing, True), (incoming, False)):
            for group in ends.values():
                group.sort(key=partial(_flip_order, order, leaving))
                for index, lane in enumerate(group):
                    slot_of[(id(lane), leaving)] = (index, len(group))
        out = []
        for lane in lanes:
            s, t = self.boxes[lane.source], self.boxes[lane.target]
            sy = _port_y(s, *slot_of[(id(lane), True)], lane.source in self.group_columns)
            ty = _port_y(t, *slot_of[(id(lane), False)], lane.target in self.group_columns)
            if lane.source == lane.target:  # a self loop: out and back in on the same side
                sy, ty = s.y + s.h * 0.3, s.y + s.h * 0.7
            lane_x = xs[id(lane)]
            if lane_x is None:  # no common list (pipeline compensation <-> steps): straight
                points: tuple[tuple[float, float], ...] = ((s.x, sy), (t.x, ty))
                label_at = ((s.x + t.x) / 2, (sy + ty) / 2)
            else:
                points = ((s.x, sy), (lane_x, sy), (lane_x, ty), (t.x, ty))
                label_at = (lane_x - 4.0, (sy + ty) / 2)
            out.append(EdgeRoute(lane.source, lane.target, lane.kind, lane.label, points, label_at))
        return out

    def _lane_x(self, lane: _LaneEdge) -> float | None:
        column = lane.column
        if column is None:
            return None
        return column.axis - column.half_left - LANE_MARGIN - lane.lane * LANE_W


def _flip_order(
    order: Callable[[_LaneEdge, bool], tuple[int, float]], leaving: bool, lane: _LaneEdge
) -> tuple[int, float]:
    return order(lane, leaving)


def _port_y(box: Box, index: int, count: int, group: bool) -> float:
    """Spread the lane edges leaving/entering one node over its side (a composite: its header)."""
    height = GROUP_HEADER if group else box.h
    return box.y + height * (index + 1) / (count + 1)


def _assign_lanes(lanes: list[_LaneEdge]) -> None:
    """Interval colouring: short spans nearest the nodes, overlapping spans on separate lanes."""
    taken: list[list[tuple[int, int]]] = []
    for lane in sorted(lanes, key=lambda e: (e.hi - e.lo, e.lo)):
        for index, spans in enumerate(taken):
            if all(lane.hi < lo or lane.lo > hi for lo, hi in spans):
                spans.append((lane.lo, lane.hi))
                lane.lane = index
                break
        else:
            taken.append([(lane.lo, lane.hi)])
            lane.lane = len(taken) - 1


def _list_index(node: StepNode) -> int:
    last = node.path[-1] if node.path else 0
    return last if isinstance(last, int) else 0
