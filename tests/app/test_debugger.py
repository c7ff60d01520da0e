"""The debugger panes against the real embedded service: breakpoints, pauses, edits, resumes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QPushButton, QTableWidget

from app import asyncqt
from app.debugger.breakpoints_panel import BreakpointsPanel
from app.debugger.context_editor import ContextEditor, ContextError, context_patch
from app.debugger.json_edit import TREE_PAGE, JsonTree
from app.debugger.pane import DebuggerPane
from app.debugger.paused_panel import PausedPanel
from app.editor.jq_field import JqField
from app.selection import SelectionHub
from engine.service.models import RunOptions
from tests.app.support import finished, until

ORDER = {"sku": "AB-1", "qty": 2}


def settle(loop: asyncio.AbstractEventLoop) -> None:
    """Until every task the widgets spawned has finished (live-event followers never do)."""
    until(loop, lambda: all(t.get_coro().__qualname__ == "EventFollower._run"
                            for t in asyncqt._tasks))


@pytest.fixture
def hub() -> SelectionHub:
    return SelectionHub()


@pytest.fixture
def pane(qtbot, qloop, service, hub) -> DebuggerPane:  # type: ignore[no-untyped-def]
    pane = DebuggerPane(hub)
    qtbot.addWidget(pane)
    pane.show()
    pane.set_service(service)
    until(qloop, lambda: pane.paused_panel._follower.following())
    settle(qloop)
    yield pane
    pane.shutdown()


def start(qloop, service, pipeline: str = "create-order", payload: Any = ORDER) -> str:  # type: ignore[no-untyped-def]
    return qloop.run_until_complete(service.run(pipeline, payload, RunOptions(wait=False))).execution_id


def action(pane: DebuggerPane, name: str) -> QAction:
    found = pane.findChild(QAction, name)
    assert found is not None, name
    return found


def test_pause_edit_step_over_continue(qloop, service, pane, hub):
    qloop.run_until_complete(service.set_breakpoint("create-order", "price"))
    paused_at: list[tuple[str, str]] = []
    panel = pane.findChild(PausedPanel, "pausedPanel")
    panel.pausedAt.connect(lambda p, s: paused_at.append((p, s)))
    assert not action(pane, "actionContinue").isEnabled()

    execution_id = start(qloop, service)
    until(qloop, lambda: panel.current() is not None)  # the live stream brought the pause
    current = panel.current()
    assert (current.execution_id, current.path, current.reason) == (execution_id, "price", "breakpoint")
    assert paused_at == [("create-order", "price")]
    assert (hub.execution_id, hub.step_path) == (execution_id, "price")
    table = panel.findChild(QTableWidget, "pausedTable")
    assert table.rowCount() == 1 and table.item(0, 1).text() == "price"
    for name in ("actionContinue", "actionStepOver", "actionSkip", "actionAbort"):
        assert action(pane, name).isEnabled()
    assert action(pane, "actionStepOver").shortcut().toString() == "F10"
    assert pane.findChild(object, "debugToolbar") is not None

    editor = pane.findChild(ContextEditor, "contextEditor")
    shown = json.loads(editor.text())
    assert shown["current"] == ORDER and shown["trigger"] == ORDER
    shown["current"]["qty"] = 5
    editor.set_text(json.dumps(shown, indent=2))
    assert editor.is_modified()

    action(pane, "actionStepOver").trigger()
    until(qloop, lambda: panel.current() is not None and panel.current().path == "store")
    assert panel.current().reason == "step_over"
    assert paused_at[-1] == ("create-order", "store")
    assert not editor.is_modified()  # a new pause shows its own context
    assert json.loads(editor.text())["steps"]["price"]["total"] == 97.5

    action(pane, "actionContinue").trigger()
    summary = finished(qloop, service, execution_id)
    assert summary.status == "completed"
    assert summary.output["body"]["total"] == 97.5  # 5 x 19.5: the edit reached the step
    events = qloop.run_until_complete(service.events(execution_id))
    patched = [e for e in events if e.type == "debug.context_patched"]
    assert [e.data["patch"] for e in patched] == [[{"op": "replace", "path": "/current/qty", "value": 5}]]
    actions = [e.data["action"] for e in events if e.type == "debug.resumed"]
    assert actions == ["step_over", "continue"]
    until(qloop, lambda: panel.current() is None)
    assert not action(pane, "actionContinue").isEnabled()


def test_abort_ends_the_run_and_clears_the_pause(qloop, service, pane):
    qloop.run_until_complete(service.set_breakpoint("create-order", "store"))
    execution_id = start(qloop, service)
    panel = pane.paused_panel
    until(qloop, lambda: panel.current() is not None)
    pane.context_editor.set_text("{ not json")  # edits are irrelevant to an abort
    action(pane, "actionAbort").trigger()
    summary = finished(qloop, service, execution_id)
    assert summary.status not in ("completed", "running", "paused")
    events = qloop.run_until_complete(service.events(execution_id))
    assert [e.data["action"] for e in events if e.type == "debug.resumed"] == ["abort"]
    assert not any(e.type == "step.started" and e.data["step"] == "store" for e in events)
    until(qloop, lambda: panel.current() is None and not panel.paused_executions())


def test_bad_edits_are_refused_and_kept(qloop, service, pane):
    qloop.run_until_complete(service.set_breakpoint("create-order", "price"))
    execution_id = start(qloop, service)
    panel, editor = pane.paused_panel, pane.context_editor
    until(qloop, lambda: panel.current() is not None)
    good = json.loads(editor.text())

    editor.set_text('{\n  "current": {"qty": 3,}\n}')
    error_label = editor.findChild(QLabel, "jsonError")
    assert "line 2" in editor.json.error() and "column" in editor.json.error()
    assert qloop.run_until_complete(pane.debug_actions.resume("continue")) is False
    assert "line 2" in error_label.text() and error_label.isVisibleTo(editor)
    assert editor.text() == '{\n  "current": {"qty": 3,}\n}'  # nothing lost

    changed = json.loads(json.dumps(good))
    changed["trigger"]["qty"] = 99
    editor.set_text(json.dumps(changed))
    assert qloop.run_until_complete(pane.debug_actions.resume("continue")) is False
    assert "read-only" in error_label.text()
    assert panel.current() is not None and panel.current().execution_id == execution_id

    editor.findChild(QPushButton, "revertContext").click()
    assert json.loads(editor.text()) == good and not editor.is_modified()
    action(pane, "actionContinue").trigger()
    assert finished(qloop, service, execution_id).output["body"]["total"] == 39.0


def test_context_patch_covers_current_and_steps_only():
    original = {"current": {"a": 1}, "steps": {"s": {"x": 1}}, "trigger": {"t": 1}, "meta": {}}
    edited = {"current": {"a": 2, "b": [1]}, "steps": {"s": {}}, "trigger": {"t": 1}, "meta": {}}
    patch = context_patch(original, edited)
    import jsonpatch

    doc = {"current": original["current"], "steps": original["steps"]}
    assert jsonpatch.apply_patch(doc, patch) == {"current": edited["current"], "steps": edited["steps"]}
    with pytest.raises(ContextError, match="unknown top-level key"):
        context_patch(original, {**edited, "extra": 1})
    with pytest.raises(ContextError, match="must stay a JSON object"):
        context_patch(original, {**edited, "current": [1]})


def test_several_paused_executions_one_after_another(qloop, service, pane, hub):
    qloop.run_until_complete(service.set_breakpoint("create-order", "price"))
    panel = pane.paused_panel
    first = start(qloop, service)
    until(qloop, lambda: panel.current() is not None)
    second = start(qloop, service, payload={"sku": "CD-2", "qty": 1})
    until(qloop, lambda: len(panel.paused_executions()) == 2)
    assert panel.current().execution_id == first  # the current pause stays current

    # choosing the other one in the executions list makes it current, edits stay per pause
    pane.context_editor.set_text(pane.context_editor.text().replace('"qty": 2', '"qty": 4', 1))
    hub.select_execution(second)
    assert panel.current().execution_id == second
    assert not pane.context_editor.is_modified()
    assert panel.select(first) and pane.context_editor.is_modified()

    action(pane, "actionContinue").trigger()
    until(qloop, lambda: panel.current() is not None and panel.current().execution_id == second)
    assert finished(qloop, service, first).output["body"]["total"] == 78.0  # 4 x 19.5
    action(pane, "actionContinue").trigger()
    assert finished(qloop, service, second).status == "completed"
    until(qloop, lambda: panel.current() is None)


@pytest.fixture
def breakpoints(qtbot, qloop, service, hub) -> BreakpointsPanel:  # type: ignore[no-untyped-def]
    panel = BreakpointsPanel(hub)
    qtbot.addWidget(panel)
    panel.show()
    panel.set_service(service)
    until(qloop, lambda: panel.findChild(QComboBox, "bpPipeline").count() > 0)
    settle(qloop)
    yield panel
    panel.shutdown()


def test_breakpoint_conditions(qloop, service, breakpoints, pane):
    pipeline = breakpoints.findChild(QComboBox, "bpPipeline")
    pipeline.setCurrentText("create-order")
    step = breakpoints.findChild(QComboBox, "bpStep")
    assert [step.itemText(i) for i in range(step.count())][:3] == ["request", "check", "price"]
    step.setCurrentText("price")
    condition = breakpoints.findChild(JqField, "bpCondition")
    add = breakpoints.findChild(QPushButton, "bpAdd")
    condition.setText(".qty >")
    assert not add.isEnabled() and condition.error()
    condition.setText(".qty > 5")
    assert add.isEnabled()
    add.click()
    until(qloop, lambda: len(breakpoints.breakpoints()) == 1)
    bp = breakpoints.breakpoints()[0]
    assert (bp.pipeline, bp.step, bp.condition) == ("create-order", "price", ".qty > 5")
    assert condition.text() == ""

    small = start(qloop, service)  # qty 2: the condition does not hold, no pause
    assert finished(qloop, service, small).status == "completed"
    big = start(qloop, service, payload={"sku": "AB-1", "qty": 6})
    until(qloop, lambda: pane.paused_panel.current() is not None)
    assert pane.paused_panel.current().execution_id == big
    table = breakpoints.findChild(QTableWidget, "bpTable")
    until(qloop, lambda: table.item(0, 4) is not None and table.item(0, 4).text() == "1")  # hit count, live
    action(pane, "actionContinue").trigger()
    assert finished(qloop, service, big).status == "completed"

    # a template condition works too; an unknown step is refused with the service's message
    assert qloop.run_until_complete(breakpoints.add_breakpoint("create-order", "nope")) is None
    error = breakpoints.findChild(QLabel, "bpError")
    assert "no step 'nope'" in error.text() and error.isVisibleTo(breakpoints)
    assert qloop.run_until_complete(
        breakpoints.add_breakpoint("create-order", "store", "{{ .qty > 1 }}")) is not None


def test_toggle_enable_remove_and_pause_new_runs(qloop, service, breakpoints, pane):
    changes: list[list[Any]] = []
    breakpoints.breakpointsChanged.connect(changes.append)
    bp = qloop.run_until_complete(breakpoints.toggle_breakpoint("triage", "classify"))
    assert bp is not None and [b.step for b in changes[-1]] == ["classify"]
    assert qloop.run_until_complete(breakpoints.toggle_breakpoint("triage", "classify")) is None
    assert changes[-1] == [] and qloop.run_until_complete(service.list_breakpoints()) == []

    qloop.run_until_complete(breakpoints.toggle_breakpoint("triage", "route"))
    table = breakpoints.findChild(QTableWidget, "bpTable")
    table.item(0, 0).setCheckState(Qt.CheckState.Unchecked)  # the "On" checkbox
    until(qloop, lambda: not breakpoints.breakpoints()[0].enabled)
    assert qloop.run_until_complete(service.list_breakpoints())[0].enabled is False
    ticket = {"id": "T-1", "severity": 9, "product": "billing"}
    execution_id = start(qloop, service, "triage", ticket)
    assert finished(qloop, service, execution_id).status == "completed"  # disabled: no stop

    # editing the condition cell replaces the breakpoint (still disabled)
    table.item(0, 3).setText(".severity > 5")
    until(qloop, lambda: breakpoints.breakpoints()[0].condition == ".severity > 5")
    assert breakpoints.breakpoints()[0].enabled is False and len(breakpoints.breakpoints()) == 1

    table.selectRow(0)
    breakpoints.findChild(QPushButton, "bpRemove").click()
    until(qloop, lambda: not breakpoints.breakpoints())

    breakpoints.findChild(QComboBox, "bpPipeline").setCurrentText("triage")
    breakpoints.findChild(QCheckBox, "bpPauseNew").setChecked(True)
    until(qloop, lambda: "triage" in breakpoints.pausing_new_runs())
    execution_id = start(qloop, service, "triage", ticket)
    until(qloop, lambda: pane.paused_panel.current() is not None)
    assert (pane.paused_panel.current().path, pane.paused_panel.current().reason) == ("classify", "pause")
    breakpoints.findChild(QCheckBox, "bpPauseNew").setChecked(False)
    settle(qloop)
    action(pane, "actionContinue").trigger()
    assert finished(qloop, service, execution_id).output["handled_by"] == "on-call"


def test_json_tree_pages_large_values(qtbot):
    tree = JsonTree()
    qtbot.addWidget(tree)
    tree.set_value({"current": {"rows": list(range(450))}, "meta": {}})
    current = tree.topLevelItem(0)
    assert (current.text(0), current.text(1)) == ("current", "{…} 1 keys")
    rows = current.child(0)
    tree.expandItem(rows)  # children are built on first expansion
    assert rows.childCount() == TREE_PAGE + 1
    more = rows.child(TREE_PAGE)
    assert more.text(0) == "… 250 more"
    tree.itemDoubleClicked.emit(more, 0)
    assert rows.childCount() == 2 * TREE_PAGE + 1 and rows.child(2 * TREE_PAGE).text(0) == "… 50 more"
    assert rows.child(399).text(1) == "399"


def test_skip_does_not_run_the_step(qloop, service, pane):
    qloop.run_until_complete(service.set_breakpoint("create-order", "store"))
    execution_id = start(qloop, service)
    until(qloop, lambda: pane.paused_panel.current() is not None)
    assert action(pane, "actionSkip").shortcut().toString() == "F11"
    action(pane, "actionSkip").trigger()
    summary = finished(qloop, service, execution_id)
    assert summary.status == "completed" and summary.output["body"]["order_id"] is None
    events = qloop.run_until_complete(service.events(execution_id))
    assert {"step": "store", "path": "store", "reason": "debugger"}.items() <= next(
        e.data for e in events if e.type == "step.skipped" and e.data["step"] == "store").items()
    assert not any(e.type == "step.started" and e.data["step"] == "store" for e in events)
