"""The graph pane on real documents: drawing, drops, drags, re-wiring, diagnostics, broken YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QEvent, QMimeData, QPoint, QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication, QComboBox, QGraphicsView, QLabel, QWidget

from app.editor.document import PipelineDocument
from app.editor.graph.items import EdgeItem, GroupItem, NodeItem
from app.editor.graph.pane import GraphPane
from app.editor.graph.view import MIME_STEP_TYPE, PipelineView
from engine.service.models import DiagnosticInfo

TWO_PIPELINES = """pipelines:
  first:
    steps:
      - {name: a, type: step.set}
  second:
    trigger: {type: http, config: {method: POST, path: /x}}
    steps:
      - {name: b, type: step.set}
      - {name: gate, type: step.ff_gate, config: {flag: f, on_enabled: b, on_disabled: c}}
      - {name: c, type: step.log}
"""


@pytest.fixture
def open_pane(qtbot, workspace):  # type: ignore[no-untyped-def]
    def make(name: str = "routing.yaml", text: str | None = None) -> GraphPane:
        if text is None:
            document = PipelineDocument.load(workspace / name)
        else:
            document = PipelineDocument(text, workspace / name)
        pane = GraphPane(document)
        qtbot.addWidget(pane)
        pane.resize(1100, 1000)
        pane.show()
        QApplication.processEvents()
        return pane

    return make


def _view(pane: GraphPane) -> PipelineView:
    view = pane.findChild(PipelineView, "pipelineView")
    assert view is not None
    return view


def _point(view: PipelineView, x: float, y: float) -> QPoint:
    return view.mapFromScene(QPointF(x, y))


def _mouse(
    widget: QWidget,
    kind: QEvent.Type,
    pos: QPoint,
    buttons: Qt.MouseButton | None = None,
    button: Qt.MouseButton = Qt.MouseButton.LeftButton,
) -> None:
    """A mouse event as the platform sends it (to a view's viewport); ``buttons`` = held after it."""
    receiver = widget.viewport() if isinstance(widget, QGraphicsView) else widget
    held = button if buttons is None else buttons
    event = QMouseEvent(
        kind,
        QPointF(pos),
        QPointF(receiver.mapToGlobal(pos)),
        button if kind != QEvent.Type.MouseMove else Qt.MouseButton.NoButton,
        held,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(receiver, event)


def _drag(view: PipelineView, start: QPoint, end: QPoint) -> None:
    _mouse(view, QEvent.Type.MouseButtonPress, start)
    for k in range(1, 6):
        _mouse(view, QEvent.Type.MouseMove, start + (end - start) * k / 5)
    _mouse(view, QEvent.Type.MouseButtonRelease, end, Qt.MouseButton.NoButton)


def _drop_type(view: PipelineView, type_name: str, pos: QPoint) -> None:
    mime = QMimeData()
    mime.setData(MIME_STEP_TYPE, type_name.encode("utf-8"))
    actions = Qt.DropAction.CopyAction
    no_button, no_mod = Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier
    for event in (
        QDragEnterEvent(QPoint(pos), actions, mime, no_button, no_mod),
        QDragMoveEvent(QPoint(pos), actions, mime, no_button, no_mod),
    ):
        QApplication.sendEvent(view.viewport(), event)
        assert event.isAccepted()
    QApplication.sendEvent(view.viewport(), QDropEvent(QPointF(pos), actions, mime, no_button, no_mod))


def _names(document: PipelineDocument, *path: str | int) -> list[str]:
    return [step["name"] for step in document.value_at(path)]


def test_routing_nodes_groups_and_labelled_edges_match_the_outline(open_pane):
    pane = open_pane()
    document = pane.document()
    p = document.outline.pipelines["triage"]
    scene = pane.scene
    assert set(scene.steps) == set(p.nodes)
    queue = scene.steps["queue"]
    assert isinstance(queue, GroupItem)
    for child in p.nodes["queue"].children:
        assert queue.sceneBoundingRect().contains(scene.steps[child.id].sceneBoundingRect())
    assert isinstance(scene.steps["route"], NodeItem) and scene.steps["route"].port
    assert not scene.steps["classify"].port  # sequential steps have no output port
    edges = {(e.source, e.target, e.kind, e.label) for e in scene.edges}
    outline_edges = {(e.source, e.target, e.kind, e.label) for e in p.edges}
    assert outline_edges <= edges
    assert ("__start__", "classify", "start", "") in edges
    labelled = {e.label: e.kind for e in scene.edges if e.kind in ("route", "jump")}
    assert labelled == {
        "urgent": "route",
        "normal": "route",
        "default": "route",
        "then": "route",
        "merge_step": "jump",
    }
    pens = {e.kind: e.style.edge_pens[e.kind].style() for e in scene.edges}
    assert pens["next"] == Qt.PenStyle.SolidLine and pens["jump"] == Qt.PenStyle.DashLine


def test_fanout_groups_hold_their_children(open_pane):
    pane = open_pane("fanout.yaml")
    steps = pane.scene.steps
    assert isinstance(steps["fan-out"], GroupItem) and isinstance(steps["fan-out/enrich"], GroupItem)
    assert steps["fan-out"].sceneBoundingRect().contains(steps["fan-out/enrich"].sceneBoundingRect())
    for leaf in ("fan-out/enrich/score", "fan-out/enrich/fingerprint"):
        assert steps["fan-out/enrich"].sceneBoundingRect().contains(steps[leaf].sceneBoundingRect())
    assert pane.findChild(QComboBox, "pipelineSelector").isHidden()  # one pipeline: no selector


def test_dropping_a_type_inserts_between_the_nodes_and_undo_removes_it(open_pane, type_infos):
    pane = open_pane()
    pane.set_type_infos(type_infos)
    document = pane.document()
    original = document.text
    view = _view(pane)
    classify, route = pane.scene.steps["classify"].box, pane.scene.steps["route"].box
    selected: list[tuple[str, str]] = []
    pane.stepSelected.connect(lambda p, s: selected.append((p, s)))
    _drop_type(view, "step.log", _point(view, classify.cx, (classify.bottom + route.y) / 2))
    names = _names(document, "pipelines", "triage", "steps")
    assert names[:3] == ["classify", "log", "route"]
    inserted = document.value_at(("pipelines", "triage", "steps", 1))
    assert inserted["type"] == "step.log" and "message" in inserted["config"]  # the type's example config
    assert selected == [("triage", "log")] and pane.scene.steps["log"].isSelected()
    document.undo_stack.undo()
    assert document.text == original
    assert "log" not in pane.scene.steps


def test_dropping_into_a_branch_arm(open_pane):
    pane = open_pane()
    document = pane.document()
    view = _view(pane)
    billing = pane.scene.steps["queue/billing-queue"].box
    _drop_type(view, "step.set", _point(view, billing.cx, billing.bottom + 6))
    arm = ("pipelines", "triage", "steps", 5, "config", "branches", "billing")
    assert _names(document, *arm) == ["billing-queue", "set"]
    assert pane.scene.steps["queue/set"].isSelected()


def test_dragging_a_node_reorders_the_yaml(open_pane):
    pane = open_pane()
    document = pane.document()
    view = _view(pane)
    notify = pane.scene.steps["notify"].box
    classify, route = pane.scene.steps["classify"].box, pane.scene.steps["route"].box
    _drag(
        view, _point(view, notify.cx, notify.cy), _point(view, classify.cx, (classify.bottom + route.y) / 2)
    )
    assert _names(document, "pipelines", "triage", "steps")[:4] == [
        "classify",
        "notify",
        "route",
        "page-on-call",
    ]
    assert document.undo_stack.count() == 1
    assert pane.scene.steps["notify"].isSelected()
    # and into a composite's arm
    platform = pane.scene.steps["queue/platform-queue"].box
    auto = pane.scene.steps["auto-reply"].box
    _drag(view, _point(view, auto.cx, auto.cy), _point(view, platform.cx, platform.bottom + 6))
    assert _names(document, "pipelines", "triage", "steps", 5, "config", "branches", "platform") == [
        "platform-queue",
        "auto-reply",
    ]


def test_a_tiny_drag_selects_without_moving(open_pane):
    pane = open_pane()
    document = pane.document()
    view = _view(pane)
    selected: list[tuple[str, str]] = []
    pane.stepSelected.connect(lambda p, s: selected.append((p, s)))
    notify = pane.scene.steps["notify"].box
    start = _point(view, notify.cx, notify.cy)
    _drag(view, start, start + QPoint(1, 1))
    assert document.undo_stack.count() == 0
    assert selected == [("triage", "notify")]


def test_rewiring_a_route_edge_sets_the_yaml_value(open_pane):
    pane = open_pane()
    document = pane.document()
    view = _view(pane)
    urgent = next(e for e in pane.scene.edges if e.label == "urgent")
    auto = pane.scene.steps["auto-reply"].box
    _drag(view, view.mapFromScene(urgent.end) + QPoint(-1, 0), _point(view, auto.cx, auto.cy))
    path = ("pipelines", "triage", "steps", 1, "config", "routes", "urgent")
    assert document.value_at(path) == "auto-reply"
    assert document.undo_stack.count() == 1
    assert any(e.label == "urgent" and e.target == "auto-reply" for e in pane.scene.edges)
    # a step inside another composite's arm is out of reach: nothing changes, a hint says why
    billing = pane.scene.steps["queue/billing-queue"].box
    urgent = next(e for e in pane.scene.edges if e.label == "urgent")
    _drag(view, view.mapFromScene(urgent.end) + QPoint(-1, 0), _point(view, billing.cx, billing.cy))
    assert document.value_at(path) == "auto-reply" and document.undo_stack.count() == 1
    assert not pane.rewire("route", "urgent", "queue/billing-queue")
    assert "cannot route" in pane.findChild(QLabel, "graphHint").text()


def test_rewiring_from_the_output_port_with_one_choice(open_pane):
    pane = open_pane(
        text="""pipelines:
  p:
    steps:
      - {name: a, type: step.set}
      - {name: merge, type: step.branch, config: {field: x, branches: {one: [{name: in1, type: step.set}]}}}
      - {name: b, type: step.set}
      - {name: c, type: step.set}
"""
    )
    document = pane.document()
    view = _view(pane)
    branch = pane.scene.steps["merge"]
    assert isinstance(branch, GroupItem) and not pane.scene.edges_of("c")[1:]
    pane.toggle_collapsed("merge")  # a collapsed composite is a node with a port
    node = pane.scene.steps["merge"]
    assert isinstance(node, NodeItem) and node.port
    port = node.mapToScene(node.port_rect().center())
    c = pane.scene.steps["c"].box
    _drag(view, view.mapFromScene(port), _point(view, c.cx, c.cy))
    assert document.value_at(("pipelines", "p", "steps", 1, "config", "merge_step")) == "c"
    assert any(e.kind == "jump" and e.target == "c" and e.label == "merge_step" for e in pane.scene.edges)


def test_diagnostics_mark_the_innermost_node(open_pane, workspace):
    pane = open_pane()
    p = pane.document().outline.pipelines["triage"]
    file = str(workspace / "routing.yaml")
    pane.set_diagnostics(
        [
            DiagnosticInfo(file=file, line=p.nodes["notify"].line + 2, col=1, message="bad level"),
            DiagnosticInfo(file=file, line=p.nodes["queue/billing-queue"].line, col=1, message="no such key"),
            DiagnosticInfo(
                file=file, line=p.nodes["notify"].line, col=1, message="heads up", severity="warning"
            ),
            DiagnosticInfo(
                file=str(workspace / "fanout.yaml"), line=p.nodes["reply"].line, col=1, message="other"
            ),
        ]
    )
    notify = pane.scene.steps["notify"]
    assert notify.severity == "error" and [m for _, m in notify.problems] == ["bad level", "heads up"]
    assert "bad level" in notify.toolTip() and "heads up" in notify.toolTip()
    assert pane.scene.steps["queue/billing-queue"].severity == "error"
    assert pane.scene.steps["queue"].severity == "" and pane.scene.steps["reply"].severity == ""
    pane.set_collapsed("queue", True)  # a hidden step's problems show on its collapsed composite
    assert pane.scene.steps["queue"].problems == [("error", "no such key")]
    pane.set_diagnostics([])
    assert not any(item.problems for item in pane.scene.steps.values())


def test_collapse_state_survives_a_rebuild_and_the_chevron_toggles_it(open_pane):
    pane = open_pane()
    document = pane.document()
    view = _view(pane)
    queue = pane.scene.steps["queue"]
    toggle = queue.mapToScene(queue.toggle_rect().center())
    _mouse(view, QEvent.Type.MouseButtonPress, view.mapFromScene(toggle))
    _mouse(view, QEvent.Type.MouseButtonRelease, view.mapFromScene(toggle), Qt.MouseButton.NoButton)
    assert pane.collapsed_steps() == {"queue"}
    assert isinstance(pane.scene.steps["queue"], NodeItem) and "queue/billing-queue" not in pane.scene.steps
    pane.select_step("triage", "reply")
    document.set_value(("pipelines", "triage", "steps", 3, "config", "level"), "info")
    document.rename_step(("pipelines", "triage", "steps", 0), "classify-ticket")  # forces a new scene
    assert "classify-ticket" in pane.scene.steps
    assert isinstance(pane.scene.steps["queue"], NodeItem) and pane.scene.steps["queue"].collapsed
    assert pane.scene.selected_ids() == ["reply"]
    pane.toggle_collapsed("queue")
    assert isinstance(pane.scene.steps["queue"], GroupItem) and "queue/billing-queue" in pane.scene.steps


def test_broken_yaml_keeps_the_last_graph_and_shows_the_banner(open_pane):
    pane = open_pane()
    document = pane.document()
    view = _view(pane)
    before = set(pane.scene.steps)
    banner = pane.findChild(QLabel, "graphBanner")
    assert banner.isHidden()
    pos = document.text.index("      - name: notify")
    document.replace(pos, 0, "      - [unclosed\n")
    document.flush_outline()
    assert not document.outline.ok
    assert banner.isVisible() and "YAML error" in banner.text() and "line" in banner.text()
    assert set(pane.scene.steps) == before
    assert not view.editable
    classify = pane.scene.steps["classify"].box
    _drop_type_refused = QMimeData()
    _drop_type_refused.setData(MIME_STEP_TYPE, b"step.set")
    enter = QDragEnterEvent(
        QPoint(_point(view, classify.cx, classify.bottom + 5)),
        Qt.DropAction.CopyAction,
        _drop_type_refused,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(view.viewport(), enter)
    assert not enter.isAccepted()
    pane.select_step("triage", "notify")
    pane.delete_selected()
    assert "fix it in the text" in pane.findChild(QLabel, "graphHint").text()
    document.undo_stack.undo()
    document.flush_outline()
    assert banner.isHidden() and view.editable


def test_delete_and_duplicate_are_one_undo_command_each(open_pane, qtbot):
    pane = open_pane()
    document = pane.document()
    view = _view(pane)
    view.setFocus()
    pane.select_step("triage", "notify")
    pane.action("duplicate").trigger()
    assert _names(document, "pipelines", "triage", "steps")[3:5] == ["notify", "notify-2"]
    assert pane.scene.selected_ids() == ["notify-2"]
    pane.scene.steps["notify"].setSelected(True)
    pane.action("delete").trigger()
    names = _names(document, "pipelines", "triage", "steps")
    assert "notify" not in names and "notify-2" not in names
    assert document.undo_stack.count() == 2
    document.undo_stack.undo()
    assert _names(document, "pipelines", "triage", "steps")[3:5] == ["notify", "notify-2"]
    pane.select_step("triage", "queue")
    pane.action("delete").trigger()  # a composite goes with its arms
    assert "queue" not in _names(document, "pipelines", "triage", "steps")


def test_selection_signals_and_the_pipeline_selector(open_pane):
    pane = open_pane("two.yaml", TWO_PIPELINES)
    selector = pane.findChild(QComboBox, "pipelineSelector")
    assert not selector.isHidden() and selector.count() == 2
    assert pane.current_pipeline() == "first"
    seen: list[tuple[str, str]] = []
    pane.stepSelected.connect(lambda p, s: seen.append((p, s)))
    assert pane.select_step("second", "gate")
    assert pane.current_pipeline() == "second" and selector.currentText() == "second"
    assert pane.scene.selected_ids() == ["gate"] and seen == []  # no echo for programmatic selection
    assert pane.scene.start is not None and pane.scene.start.text == "http POST /x"
    jumps = {(e.label, e.target) for e in pane.scene.edges if e.kind == "jump"}
    assert jumps == {("on_enabled", "b"), ("on_disabled", "c")}
    view = _view(pane)
    b = pane.scene.steps["b"].box
    _mouse(view, QEvent.Type.MouseButtonPress, _point(view, b.cx, b.cy))
    _mouse(view, QEvent.Type.MouseButtonRelease, _point(view, b.cx, b.cy), Qt.MouseButton.NoButton)
    assert seen == [("second", "b")]
    empty = _point(view, b.right + 300, b.cy)
    _mouse(view, QEvent.Type.MouseButtonPress, empty)
    _mouse(view, QEvent.Type.MouseButtonRelease, empty, Qt.MouseButton.NoButton)
    assert seen[-1] == ("second", "")
    selector.setCurrentIndex(0)
    selector.activated.emit(0)
    assert pane.current_pipeline() == "first" and set(pane.scene.steps) == {"a"}


def test_zoom_fit_selection_minimap_and_far_zoom_overview(open_pane):
    pane = open_pane()
    view = _view(pane)
    pane.zoom_to_fit()
    bounds = pane.scene.items_bounds()
    assert view.visible_scene_rect().contains(bounds)
    pane.select_step("triage", "notify")
    pane.zoom_to_selection()
    notify = pane.scene.steps["notify"].sceneBoundingRect()
    assert view.visible_scene_rect().contains(notify) and view.zoom() > 1.0
    minimap = pane.minimap
    minimap.render_now()
    target = minimap.to_map(pane.scene.steps["reply"].sceneBoundingRect()).center()
    _mouse(minimap, QEvent.Type.MouseButtonPress, target.toPoint())
    assert view.visible_scene_rect().contains(pane.scene.steps["reply"].sceneBoundingRect().center())
    view.set_zoom(0.1)
    view.viewport().repaint()
    assert pane.scene.overview.isVisible() and pane.scene.steps["notify"].opacity() == 0.0
    view.set_zoom(1.0)
    view.viewport().repaint()
    assert not pane.scene.overview.isVisible() and pane.scene.steps["notify"].opacity() == 1.0


def test_insert_from_the_context_menu_goes_after_the_selection(open_pane, type_infos):
    pane = open_pane()
    pane.set_type_infos(type_infos)
    document = pane.document()
    pane.select_step("triage", "notify")
    menu = pane.context_menu("notify")
    titles = [a.text() for a in menu.actions()]
    assert {"Insert before", "Insert after", "Add compensation", "Duplicate step", "Delete step"} <= set(
        titles
    )
    after = next(a.menu() for a in menu.actions() if a.text() == "Insert after")
    data = next(a.menu() for a in after.actions() if a.text() == "data")
    next(a for a in data.actions() if a.text() == "step.jq").trigger()
    assert _names(document, "pipelines", "triage", "steps")[3:5] == ["notify", "jq"]
    pane.add_compensation("notify", "step.log")
    assert document.value_at(("pipelines", "triage", "steps", 3, "compensate", "name")) == "undo-notify"
    assert isinstance(pane.scene.steps["notify/undo-notify"], NodeItem)
    assert any(isinstance(e, EdgeItem) and e.kind == "compensate" for e in pane.scene.edges_of("notify"))


def test_pane_without_pipelines_and_type_infos_before_a_document(qtbot, type_infos, tmp_path: Path):
    pane = GraphPane()
    qtbot.addWidget(pane)
    pane.set_type_infos(type_infos)
    pane.set_document(PipelineDocument("name: empty\n", tmp_path / "e.yaml"))
    assert pane.current_pipeline() is None and pane.scene.steps == {}
    pane.document().set_text("pipelines:\n  p:\n    steps: []\n", "Add a pipeline")
    assert pane.current_pipeline() == "p"
    assert pane.insert_type("step.set") == ("pipelines", "p", "steps", 0)
    assert set(pane.scene.steps) == {"set"}


def test_keys_and_ctrl_wheel(open_pane, qtbot):
    pane = open_pane()
    document = pane.document()
    view = _view(pane)
    view.activateWindow()
    view.setFocus()
    pane.select_step("triage", "notify")
    qtbot.keyClick(view, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    assert "notify-2" in _names(document, "pipelines", "triage", "steps")
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert "notify-2" not in _names(document, "pipelines", "triage", "steps")
    assert document.undo_stack.count() == 2
    before = view.zoom()
    centre = view.viewport().rect().center()
    wheel = QWheelEvent(
        QPointF(centre),
        QPointF(view.viewport().mapToGlobal(centre)),
        QPoint(0, 0),
        QPoint(0, 120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.ControlModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(view.viewport(), wheel)
    assert view.zoom() == pytest.approx(before * 1.15)
    qtbot.keyClick(view, Qt.Key.Key_F)
    assert view.visible_scene_rect().contains(pane.scene.items_bounds())


def test_typing_in_a_config_keeps_the_items_and_a_type_change_relabels(open_pane):
    pane = open_pane()
    document = pane.document()
    item = pane.scene.steps["notify"]
    pane.select_step("triage", "notify")
    document.set_value(("pipelines", "triage", "steps", 3, "config", "message"), "changed")
    assert pane.scene.steps["notify"] is item and item.isSelected()
    document.set_value(("pipelines", "triage", "steps", 3, "type"), "step.set")
    assert pane.scene.steps["notify"] is item and item.type_name == "step.set"
    assert "step.set" in item.toolTip()


def test_route_submenu_wires_a_reference(open_pane):
    pane = open_pane()
    document = pane.document()
    menu = pane.context_menu("done-urgent")
    routes = {a.text(): a.menu() for a in menu.actions() if a.text().startswith("Route ")}
    assert set(routes) == {"Route then to", "Route default to", "Route else to"}
    else_menu = routes["Route else to"]
    next(a for a in else_menu.actions() if a.text() == "auto-reply").trigger()
    assert document.value_at(("pipelines", "triage", "steps", 4, "config", "else")) == "auto-reply"
    assert any(e.label == "else" and e.target == "auto-reply" for e in pane.scene.edges)


def test_dragging_the_background_pans_and_an_empty_pipeline_takes_drops(open_pane):
    pane = open_pane(
        "two.yaml",
        TWO_PIPELINES.replace("      - {name: a, type: step.set}\n", "      []\n").replace(
            "    steps:\n      []", "    steps: []"
        ),
    )
    document = pane.document()
    view = _view(pane)
    assert pane.current_pipeline() == "first" and pane.scene.steps == {}
    column = pane.scene.layout.slots[0].column
    _drop_type(view, "step.set", _point(view, column.cx, column.cy))
    assert _names(document, "pipelines", "first", "steps") == ["set"]
    view.set_zoom(2.0)
    before = view.visible_scene_rect().center()
    empty = _point(view, pane.scene.steps["set"].box.right + 150, pane.scene.steps["set"].box.cy)
    _drag(view, empty, empty + QPoint(-60, -40))
    after = view.visible_scene_rect().center()
    assert after.x() > before.x() and after.y() > before.y()
