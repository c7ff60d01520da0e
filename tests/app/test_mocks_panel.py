"""The Mocks panel against the real embedded service (the example workspace): add, edit with
JSON checks, switch mode, enable/disable, keep unsaved edits, remove and clear, each time
checking what ``service.list_mocks`` says and, for a few, what a run does."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QToolButton,
    QWidget,
)

from app.mocks.add_dialog import MockAddDialog
from app.mocks.mocks_model import ENABLED, STEP
from app.mocks.mocks_panel import MocksPanel
from app.selection import SelectionHub
from tests.app.support import settle

TICKET = {"id": "T-9", "severity": 9, "product": "billing"}


def make_panel(qtbot, service, loop) -> MocksPanel:  # type: ignore[no-untyped-def]
    panel = MocksPanel(SelectionHub())
    qtbot.addWidget(panel)
    panel.resize(900, 600)
    panel.show()
    panel.set_service(service)
    settle(loop)
    return panel


def value_editor(panel: MocksPanel) -> QPlainTextEdit:
    return panel.findChild(QWidget, "mockValue").findChild(QPlainTextEdit, "jsonText")


def mocks(loop, service) -> list[tuple[str, str, str, object, object, bool]]:  # type: ignore[no-untyped-def]
    return [(m.pipeline, m.step, m.mode, m.output, m.error, m.enabled)
            for m in loop.run_until_complete(service.list_mocks())]


def test_add_edit_switch_mode_disable_and_remove(qtbot, qloop, service) -> None:  # type: ignore[no-untyped-def]
    panel = make_panel(qtbot, service, qloop)
    assert panel.model.rowCount() == 0
    assert not panel.findChild(QPushButton, "mocksClear").isEnabled()

    # Add through the dialog: the step list comes from the pipeline; a bad step is refused in place.
    panel.findChild(QPushButton, "mocksAdd").click()
    dialog = panel.findChild(MockAddDialog, "mockAddDialog")
    dialog.findChild(QComboBox, "mockAddPipeline").setCurrentText("triage")
    step = dialog.findChild(QComboBox, "mockAddStep")
    assert [step.itemText(i) for i in range(step.count())][:2] == ["classify", "route"]
    step.setCurrentText("nope")
    dialog.findChild(QWidget, "mockAddValue").findChild(QPlainTextEdit, "jsonText").setPlainText(
        '{"priority": "low"}')
    dialog.findChild(QPushButton, "mockAddOk").click()
    settle(qloop)
    assert dialog.isVisible()
    assert "has no step 'nope'" in dialog.findChild(QLabel, "mockAddError").text()
    step.setCurrentText("classify")
    accepted: list[bool] = []
    dialog.accepted.connect(lambda: accepted.append(True))
    dialog.findChild(QPushButton, "mockAddOk").click()
    settle(qloop)
    assert accepted == [True]
    assert mocks(qloop, service) == [("triage", "classify", "fixed", {"priority": "low"}, None, True)]
    assert panel.selected_ids() == [panel.model.item(0).id]  # the new mock opens in the editor
    assert json.loads(value_editor(panel).toPlainText()) == {"priority": "low"}

    run = qloop.run_until_complete(service.run("triage", TICKET))
    assert run.output["priority"] == "low"  # the mock answered instead of the step

    # Edit: text that is not JSON is refused with its place, and the caret goes there.
    editor = value_editor(panel)
    editor.setPlainText('{\n  "priority": \n}')
    save = panel.findChild(QPushButton, "mockSave")
    assert save.isEnabled()
    save.click()
    settle(qloop)
    message = panel.findChild(QLabel, "mocksMessage").text()
    assert message.startswith("Not saved: value: line 3, column 1")
    assert editor.textCursor().blockNumber() == 2
    assert mocks(qloop, service)[0][3] == {"priority": "low"}
    editor.setPlainText('{"priority": "normal"}')
    save.click()
    settle(qloop)
    assert mocks(qloop, service) == [("triage", "classify", "fixed", {"priority": "normal"}, None, True)]
    assert not save.isEnabled()  # nothing left to save

    # Mode "error": the untouched value becomes an error template; a bad error is refused.
    mode = panel.findChild(QComboBox, "mockMode")
    mode.setCurrentIndex(mode.findData("error"))
    assert json.loads(editor.toPlainText()) == {"message": "mocked failure"}
    editor.setPlainText('{"status": 504}')
    save.click()
    settle(qloop)
    assert 'needs an object with a "message"' in panel.findChild(QLabel, "mocksMessage").text()
    editor.setPlainText('{"message": "gateway timeout", "status": 504}')
    save.click()
    settle(qloop)
    assert mocks(qloop, service) == [("triage", "classify", "error", {"priority": "normal"},
                                      {"message": "gateway timeout", "status": 504}, True)]
    failed = qloop.run_until_complete(service.run("triage", TICKET))
    assert failed.status == "failed" and "gateway timeout" in json.dumps(failed.error)

    # The checkbox turns it off (the step runs for real again), then on.
    check = panel.model.index(0, ENABLED)
    assert check.data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Checked
    panel.model.setData(check, Qt.CheckState.Unchecked.value, Qt.ItemDataRole.CheckStateRole)
    settle(qloop)
    assert mocks(qloop, service)[0][5] is False
    assert panel.model.index(0, ENABLED).data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Unchecked
    real = qloop.run_until_complete(service.run("triage", TICKET))
    assert real.status == "completed" and real.output["priority"] == "urgent"
    panel.model.setData(check, Qt.CheckState.Checked.value, Qt.ItemDataRole.CheckStateRole)
    settle(qloop)
    assert mocks(qloop, service)[0][5] is True

    panel.findChild(QPushButton, "mocksRemove").click()
    settle(qloop)
    assert mocks(qloop, service) == []
    assert panel.model.rowCount() == 0


def test_unsaved_edits_survive_switching_and_clear_asks_first(qtbot, qloop, service) -> None:  # type: ignore[no-untyped-def]
    for pipeline, step, output in (("triage", "classify", {"priority": "low"}),
                                   ("triage", "auto-reply", {"handled_by": "nobody"}),
                                   ("score-users", "fan-in", {"rows": []})):
        qloop.run_until_complete(service.set_mock(pipeline, step, output=output))
    panel = make_panel(qtbot, service, qloop)
    assert panel.model.rowCount() == 3
    ids = {(m.pipeline, m.step): m.id for m in panel.model.items()}

    panel.select([ids[("triage", "classify")]])
    value_editor(panel).setPlainText('{"priority": "half-typed"')
    panel.select([ids[("triage", "auto-reply")]])
    row = panel.model.row_of(ids[("triage", "classify")])
    assert panel.model.index(row, STEP).data() == "classify ✎"
    assert json.loads(value_editor(panel).toPlainText()) == {"handled_by": "nobody"}
    panel.findChild(QToolButton, "mocksRefresh").click()  # a reload keeps the draft too
    settle(qloop)
    panel.select([ids[("triage", "classify")]])
    assert value_editor(panel).toPlainText() == '{"priority": "half-typed"'
    panel.findChild(QPushButton, "mockRevert").click()
    assert json.loads(value_editor(panel).toPlainText()) == {"priority": "low"}
    assert panel.model.index(row, STEP).data() == "classify"

    pipelines = panel.findChild(QComboBox, "mocksFilterPipeline")
    pipelines.setCurrentIndex(pipelines.findData("triage"))
    settle(qloop)
    assert sorted(m.step for m in panel.model.items()) == ["auto-reply", "classify"]

    panel.findChild(QPushButton, "mocksClear").click()
    box = panel.findChild(QMessageBox, "mocksClearConfirm")
    assert "every mock of pipeline 'triage'" in box.text()
    box.button(QMessageBox.StandardButton.Cancel).click()
    settle(qloop)
    assert len(mocks(qloop, service)) == 3
    panel.findChild(QPushButton, "mocksClear").click()
    box = next(b for b in panel.findChildren(QMessageBox, "mocksClearConfirm") if b.isVisible())
    box.button(QMessageBox.StandardButton.Yes).click()
    settle(qloop)
    assert mocks(qloop, service) == [("score-users", "fan-in", "fixed", {"rows": []}, None, True)]
    assert panel.model.rowCount() == 0
    assert panel.findChild(QLabel, "mocksMessage").text() == "Removed 2 mocks"
