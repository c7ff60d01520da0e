"""The graph pane's debugger side: breakpoint requests (menu, F9, condition dialog), breakpoint
dots, the paused highlight, and that all of it survives rebuilds of the scene."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPointF, Qt, QTimer
from PySide6.QtGui import QAction, QColor, QImage, QKeySequence
from PySide6.QtWidgets import QApplication, QInputDialog, QLineEdit, QVBoxLayout, QWidget

from app.editor.document import PipelineDocument
from app.editor.graph.items import BP_R, GROUP_HEADER, GroupItem, Marks, StepItem
from app.editor.graph.pane import GraphPane
from app.editor.graph.view import PipelineView

PIPELINE = "score-users"


@pytest.fixture
def pane(qtbot, workspace) -> GraphPane:  # type: ignore[no-untyped-def]
    pane = GraphPane(PipelineDocument.load(workspace / "fanout.yaml"))
    qtbot.addWidget(pane)
    pane.resize(1000, 900)
    pane.show()
    QApplication.processEvents()
    return pane


def _requests(pane: GraphPane) -> list[tuple[str, str, str]]:
    seen: list[tuple[str, str, str]] = []
    pane.breakpointToggleRequested.connect(lambda p, s, c: seen.append((p, s, c)))
    return seen


def _menu_action(pane: GraphPane, step_id: str, name: str) -> QAction:
    menu = pane.context_menu(step_id)
    return next(a for a in menu.actions() if a.objectName() == name)


def _dot_centre(item: StepItem) -> QPointF:
    cy = GROUP_HEADER / 2 if isinstance(item, GroupItem) else item.rect.height() / 2
    return item.mapToScene(QPointF(0, cy))


def _pixel(pane: GraphPane, scene_point: QPointF, image: QImage | None = None) -> QColor:
    image = image if image is not None else pane.view.viewport().grab().toImage()
    return image.pixelColor(pane.view.mapFromScene(scene_point))


def _close(a: QColor, b: QColor, tolerance: int = 40) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a.getRgb()[:3], b.getRgb()[:3], strict=True))


def test_menu_entries_and_f9_request_breakpoints_with_step_paths(pane, qtbot):
    seen = _requests(pane)
    _menu_action(pane, "fan-out/row", "graphMenu_toggleBreakpoint").trigger()
    _menu_action(pane, "fan-out/enrich/score", "graphMenu_toggleBreakpoint").trigger()
    assert seen == [(PIPELINE, "fan-out/row", ""), (PIPELINE, "fan-out/enrich/score", "")]
    assert pane.context_menu("").findChild(QAction, "graphMenu_toggleBreakpoint") is None  # background
    view = pane.view
    view.activateWindow()
    view.setFocus()
    pane.select_step(PIPELINE, "fan-out/enrich/fingerprint")
    qtbot.keyClick(view, Qt.Key.Key_F9)
    assert seen[-1] == (PIPELINE, "fan-out/enrich/fingerprint", "")
    pane.scene.clearSelection()
    qtbot.keyClick(view, Qt.Key.Key_F9)
    assert len(seen) == 3 and "Select a step" in pane.hint.text()
    pane.request_breakpoint("fan-in", "  .total > 100 ")
    assert seen[-1] == (PIPELINE, "fan-in", ".total > 100")


def test_f9_in_the_graph_wins_over_a_window_wide_f9(qtbot, workspace):
    # The main window has its own F9 action; the graph must not make the key ambiguous.
    host = QWidget()
    qtbot.addWidget(host)
    window_hits: list[bool] = []
    window_f9 = QAction("Toggle Breakpoint", host)
    window_f9.setShortcut(QKeySequence("F9"))
    window_f9.triggered.connect(lambda: window_hits.append(True))
    host.addAction(window_f9)
    other = QLineEdit()
    pane = GraphPane(PipelineDocument.load(workspace / "fanout.yaml"))
    layout = QVBoxLayout(host)
    layout.addWidget(other)
    layout.addWidget(pane)
    host.resize(900, 800)
    host.show()
    host.activateWindow()
    QApplication.processEvents()
    seen = _requests(pane)
    pane.view.setFocus()
    pane.select_step(PIPELINE, "fan-in")
    qtbot.keyClick(pane.view, Qt.Key.Key_F9)
    assert seen == [(PIPELINE, "fan-in", "")] and window_hits == []
    other.setFocus()
    qtbot.keyClick(other, Qt.Key.Key_F9)
    assert window_hits == [True] and len(seen) == 1


def test_condition_dialog_is_prefilled_and_requests_the_condition(pane):
    seen = _requests(pane)
    pane.set_breakpoints(PIPELINE, {"fan-out/row": (True, ".user.age > 30")})
    prompts: list[str] = []

    def answer(text: str | None) -> None:
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, QInputDialog)
        prompts.append(dialog.textValue())
        if text is None:
            dialog.reject()
        else:
            dialog.setTextValue(text)
            dialog.accept()

    action = _menu_action(pane, "fan-out/row", "graphMenu_conditionalBreakpoint")
    assert action.text() == "Edit breakpoint condition…"
    QTimer.singleShot(0, lambda: answer(".user.age > 40"))
    action.trigger()
    QTimer.singleShot(0, lambda: answer(None))  # cancelled: nothing requested
    pane.ask_breakpoint_condition("fan-in")
    assert prompts == [".user.age > 30", ""]
    assert seen == [(PIPELINE, "fan-out/row", ".user.age > 40")]
    assert (
        _menu_action(pane, "fan-in", "graphMenu_conditionalBreakpoint").text() == "Breakpoint with condition…"
    )


def test_breakpoint_dots_are_drawn_and_survive_a_rebuild(pane):
    document = pane.document()
    pane.set_breakpoints(
        PIPELINE,
        {"fan-out/row": (True, ""), "fan-in": (False, ""), "out": (True, ".total > 10"), "gone": (True, "")},
    )
    steps = pane.scene.steps
    assert steps["fan-out/row"].marks == Marks(breakpoint=(True, ""))
    assert steps["fan-in"].marks == Marks(breakpoint=(False, ""))
    assert steps["out"].marks == Marks(breakpoint=(True, ".total > 10"))
    unmarked = set(steps) - {"fan-out/row", "fan-in", "out"}
    assert unmarked and all(steps[i].marks is None for i in unmarked)
    assert ".total &gt; 10" in steps["out"].toolTip() and "Breakpoint" in steps["out"].toolTip()
    assert "disabled" in steps["fan-in"].toolTip()
    assert _menu_action(pane, "fan-out/row", "graphMenu_toggleBreakpoint").isChecked()
    assert not _menu_action(pane, "fan-out", "graphMenu_toggleBreakpoint").isChecked()

    view = pane.view
    view.set_zoom(1.0)
    red = steps["out"].style.breakpoint_color
    row, fan_in, score = steps["fan-out/row"], steps["fan-in"], steps["fan-out/enrich/score"]
    view.centerOn(row.sceneBoundingRect().center())
    assert _close(_pixel(pane, _dot_centre(row)), red)  # filled
    assert not _close(_pixel(pane, _dot_centre(score) + QPointF(-4, 0)), red)  # no dot without a breakpoint
    view.centerOn(fan_in.sceneBoundingRect().center())
    image = view.viewport().grab().toImage()
    hollow = _dot_centre(fan_in)
    assert not _close(_pixel(pane, hollow, image), red)  # hollow inside...
    assert _close(_pixel(pane, hollow + QPointF(-BP_R, 0), image), red)  # ...with a red ring

    document.rename_step(document.outline.pipelines[PIPELINE].nodes["fan-in"].path, "fold")  # a new scene
    assert "fold" in pane.scene.steps and "fan-in" not in pane.scene.steps
    assert pane.scene.steps["fan-out/row"] is not row  # the items were made again...
    assert pane.scene.steps["fan-out/row"].marks == Marks(breakpoint=(True, ""))  # ...with their marks
    assert pane.scene.steps["fold"].marks is None
    assert _close(_pixel(pane, _dot_centre(pane.scene.steps["fan-out/row"])), red)

    pane.set_collapsed("fan-out", True)  # hidden breakpoints show as one small dot on the composite
    assert pane.scene.steps["fan-out"].marks == Marks(inner=1)
    assert "1 breakpoint inside" in pane.scene.steps["fan-out"].toolTip()
    pane.set_collapsed("fan-out", False)
    pane.set_breakpoints(PIPELINE, {})
    assert all(item.marks is None for item in pane.scene.steps.values())
    assert pane.breakpoints(PIPELINE) == {}


def test_breakpoints_of_another_pipeline_wait_for_it(qtbot, workspace):
    text = """pipelines:
  first:
    steps:
      - {name: a, type: step.set}
  second:
    steps:
      - {name: b, type: step.set}
"""
    pane = GraphPane(PipelineDocument(text, workspace / "two.yaml"))
    qtbot.addWidget(pane)
    pane.set_breakpoints("second", {"b": (True, "")})
    assert pane.current_pipeline() == "first" and pane.scene.steps["a"].marks is None
    pane.set_pipeline("second")
    assert pane.scene.steps["b"].marks == Marks(breakpoint=(True, ""))


def test_paused_highlight_reveals_and_clears_without_a_selection_signal(pane):
    selected: list[tuple[str, str]] = []
    pane.stepSelected.connect(lambda p, s: selected.append((p, s)))
    view = pane.view
    out = pane.scene.steps["out"]
    view.set_zoom(2.0)
    view.centerOn(pane.scene.steps["fan-out"].sceneBoundingRect().topLeft())
    assert not view.visible_scene_rect().contains(out.sceneBoundingRect())

    assert pane.set_paused(PIPELINE, "out")
    assert out.marks == Marks(paused_at="out") and out.isSelected()
    assert view.visible_scene_rect().contains(out.sceneBoundingRect())  # centred
    assert selected == [] and "Paused" in out.toolTip()
    style = out.style
    top = out.mapToScene(QPointF(out.rect.width() * 0.75, 0))  # the amber border, right of the badge
    assert _close(_pixel(pane, top), style.paused_color)
    badge = out.mapToScene(QPointF(BP_R + 12, -4))  # the "paused" badge above the left of the border
    assert _close(_pixel(pane, badge), style.paused_color, 60)

    pane.document().set_value(("pipelines", PIPELINE, "steps", 1, "config", "expression"), ".")
    pane.auto_layout()  # a forced rebuild keeps the highlight
    assert pane.scene.steps["out"].marks == Marks(paused_at="out")

    pane.set_paused("another-pipeline", None)  # other pipelines' pauses are theirs
    assert pane.scene.steps["out"].marks == Marks(paused_at="out")
    pane.set_paused(PIPELINE, None)
    assert pane.scene.steps["out"].marks is None and pane.paused_step(PIPELINE) is None
    assert not _close(
        _pixel(pane, pane.scene.steps["out"].mapToScene(QPointF(out.rect.width() * 0.75, 0))),
        style.paused_color,
    )
    assert selected == []


def test_a_pause_inside_a_collapsed_composite_expands_it(pane):
    pane.set_breakpoints(PIPELINE, {"fan-out/enrich/score": (True, "")})
    pane.set_collapsed("fan-out", True)
    assert pane.collapsed_steps() == {"fan-out"}
    assert pane.set_paused(PIPELINE, "fan-out/enrich/score")
    assert pane.collapsed_steps() == set()
    score = pane.scene.steps["fan-out/enrich/score"]
    assert score.marks == Marks(breakpoint=(True, ""), paused_at="fan-out/enrich/score")
    assert pane.scene.selected_ids() == ["fan-out/enrich/score"]
    pane.set_collapsed("fan-out", True)  # collapsed again by the user: the composite carries the marks
    fan_out = pane.scene.steps["fan-out"]
    assert fan_out.marks == Marks(inner=1, paused_at="fan-out/enrich/score")
    assert "Paused</b> at fan-out/enrich/score" in fan_out.toolTip()
    assert pane.set_paused(PIPELINE, "fan-out/enrich/score")  # the same pause: no reveal
    assert pane.collapsed_steps() == {"fan-out"}
    assert pane.reveal_paused()  # asked for: revealed again
    assert pane.collapsed_steps() == set()


def test_far_zoom_overview_shows_the_marks(pane):
    pane.set_breakpoints(PIPELINE, {"fan-in": (True, "")})
    pane.set_paused(PIPELINE, "out")
    view: PipelineView = pane.view
    view.set_zoom(0.1)
    view.viewport().repaint()
    assert pane.scene.overview.isVisible()
    kinds = {kind for _, kind in pane.scene.overview.emphasis}
    assert {"breakpoint", "paused"} <= kinds
    image = view.viewport().grab().toImage()
    fan_in = pane.scene.steps["fan-in"]
    dot = fan_in.mapToScene(QPointF(0, fan_in.rect.height() / 2))
    assert _close(_pixel(pane, dot, image), fan_in.style.breakpoint_color, 60)
