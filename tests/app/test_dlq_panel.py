"""The DLQ panel against the real embedded service, with a pipeline of its own that fails
into the dead-letter queue: list, filter, inspect, open, retry (plain and with changes),
resolve, discard and purge, all through the panel's widgets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QTableView,
    QTabWidget,
    QWidget,
)

from app.dlq.dlq_model import EXECUTION, ID_ROLE
from app.dlq.dlq_panel import DlqPanel
from app.dlq.retry_dialog import DlqRetryDialog
from app.selection import SelectionHub
from engine.service.models import DlqFilter
from tests.app.support import settle

PIPELINES = """
pipelines:
  fragile:
    dlq: {max_retries: 2}
    record: full
    steps:
      - {name: check, type: step.fail, if: "{{ .fail }}", config: {message: refused}}
      - {name: ok, type: step.set, config: {values: {ok: true}}}
  picky:
    dlq: true
    record: full
    steps:
      - {name: gate, type: step.fail, config: {message: picky says no}}
"""
ORDERS = ("A-1", "A-2", "A-3", "A-4")


@pytest.fixture
def dead_letters(qloop, service, tmp_path: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Failed runs of our own pipelines: order -> entry id (plus "picky")."""
    file = tmp_path / "dlq.yaml"
    file.write_text(PIPELINES)
    qloop.run_until_complete(service.load_file(file))
    for order in ORDERS:
        result = qloop.run_until_complete(service.run("fragile", {"fail": True, "order": order}))
        assert result.status == "failed"
    qloop.run_until_complete(service.run("picky", {"order": "P-1"}))
    entries = qloop.run_until_complete(service.list_dlq())
    ids = {e.payload["order"]: e.id for e in entries}
    assert sorted(ids) == [*ORDERS, "P-1"]
    return ids


def make_panel(qtbot, service, loop) -> tuple[DlqPanel, SelectionHub]:  # type: ignore[no-untyped-def]
    hub = SelectionHub()
    panel = DlqPanel(hub)
    qtbot.addWidget(panel)
    panel.resize(1000, 500)
    panel.show()
    panel.set_service(service)
    settle(loop)
    return panel, hub


def shown_orders(panel: DlqPanel) -> list[str]:
    proxy = panel.proxy
    ids = [proxy.index(r, 0).data(ID_ROLE) for r in range(proxy.rowCount())]
    return sorted(panel.model.by_id(i).payload["order"] for i in ids)  # type: ignore[union-attr]


def choose(combo: QComboBox, data: object) -> None:
    index = combo.findData(data)
    assert index >= 0, data
    combo.setCurrentIndex(index)


def test_lists_filters_inspects_and_opens_the_failed_execution(qtbot, qloop, service, dead_letters) -> None:  # type: ignore[no-untyped-def]
    panel, hub = make_panel(qtbot, service, qloop)
    assert panel.findChild(QTableView, "dlqView").model() is panel.proxy
    assert shown_orders(panel) == [*ORDERS, "P-1"]
    stats = panel.findChild(QLabel, "dlqStats").text()
    assert "Pending <b>5</b>" in stats and "Total <b>5</b>" in stats

    choose(panel.findChild(QComboBox, "dlqFilterPipeline"), "picky")
    settle(qloop)
    assert shown_orders(panel) == ["P-1"]
    choose(panel.findChild(QComboBox, "dlqFilterPipeline"), None)
    settle(qloop)
    choose(panel.findChild(QComboBox, "dlqFilterStatus"), "resolved")
    settle(qloop)
    assert shown_orders(panel) == []
    choose(panel.findChild(QComboBox, "dlqFilterStatus"), None)
    settle(qloop)
    assert len(shown_orders(panel)) == 5

    search = panel.findChild(QLineEdit, "dlqFilterText")
    search.setText("a-3")  # case-insensitive, over the payload too
    assert shown_orders(panel) == ["A-3"]
    search.setText("picky says")
    assert shown_orders(panel) == ["P-1"]
    search.clear()

    entry_id = dead_letters["A-2"]
    panel.select([entry_id])
    settle(qloop)
    entry = qloop.run_until_complete(service.get_dlq(entry_id))
    assert panel.detail_model.value() == {
        "error": {"message": entry.error, "type": entry.error_type, "step": entry.step},
        "payload": {"fail": True, "order": "A-2"}}
    assert "refused" in (entry.error or "")
    title = panel.findChild(QLabel, "dlqDetailTitle").text()
    assert "fragile" in title and "0/2 retries" in title and entry_id in title

    opened: list[str] = []
    panel.openExecution.connect(opened.append)
    view = panel.findChild(QTableView, "dlqView")
    row = panel.proxy.mapFromSource(panel.model.index(panel.model.row_of(entry_id), EXECUTION))
    view.doubleClicked.emit(row)
    assert opened == [entry.execution_id]
    assert hub.execution_id == entry.execution_id
    failed = qloop.run_until_complete(service.get_execution(entry.execution_id or ""))
    assert failed.status == "failed" and failed.trigger_payload == {"fail": True, "order": "A-2"}
    panel.findChild(QPushButton, "dlqOpenExecution").click()
    assert opened == [entry.execution_id] * 2


def test_retry_many_with_progress_and_one_with_an_edited_payload(qtbot, qloop, service, dead_letters) -> None:  # type: ignore[no-untyped-def]
    panel, _hub = make_panel(qtbot, service, qloop)
    progress = panel.findChild(QProgressBar, "dlqProgress")
    seen: list[tuple[int, int]] = []
    progress.valueChanged.connect(lambda value: seen.append((value, progress.maximum())))

    # Two entries, as they are: they fail again and stay pending with one retry counted.
    panel.select([dead_letters["A-1"], dead_letters["A-2"]])
    assert panel.selected_ids() == sorted([dead_letters["A-1"], dead_letters["A-2"]],
                                          key=lambda i: panel.proxy.mapFromSource(
                                              panel.model.index(panel.model.row_of(i), 0)).row())
    panel.findChild(QPushButton, "dlqRetry").click()
    assert panel.busy and progress.isVisible()
    settle(qloop)
    assert progress.value() == progress.maximum() == 2  # 100 %
    assert (1, 2) in seen  # a step in between, from the service's callback
    assert [r.status for r in panel.last_results] == ["failed", "failed"]
    assert panel.findChild(QLabel, "dlqMessage").text().startswith("Retried 2: 2 failed")
    for order in ("A-1", "A-2"):
        entry = qloop.run_until_complete(service.get_dlq(dead_letters[order]))
        assert (entry.status, entry.retry_count) == ("pending", 1)

    # One entry with its payload edited in the dialog: the retry succeeds and resolves it.
    panel.select([dead_letters["A-3"]])
    settle(qloop)
    panel.findChild(QPushButton, "dlqRetryPatch").click()
    dialog = panel.findChild(DlqRetryDialog, "dlqRetryDialog")
    assert dialog is not None and dialog.isVisible()
    assert dialog.findChild(QTabWidget, "dlqRetryTabs").currentWidget().objectName() == "dlqPayloadEdit"
    editor = dialog.findChild(QWidget, "dlqPayloadEdit").findChild(QPlainTextEdit, "jsonText")
    assert json.loads(editor.toPlainText()) == {"fail": True, "order": "A-3"}
    editor.setPlainText('{"fail": false,\n "order": ')  # not JSON yet: refused with its place
    dialog.findChild(QPushButton, "dlqRetryOk").click()
    assert dialog.isVisible()
    assert "line 2, column" in dialog.findChild(QLabel, "dlqRetryMessage").text()
    assert editor.textCursor().blockNumber() == 1  # the caret went to the error
    editor.setPlainText('{"fail": false, "order": "A-3"}')
    dialog.findChild(QPushButton, "dlqRetryOk").click()
    settle(qloop)
    assert [r.status for r in panel.last_results] == ["completed"]
    entry = qloop.run_until_complete(service.get_dlq(dead_letters["A-3"]))
    assert entry.status == "resolved" and entry.payload == {"fail": True, "order": "A-3"}
    retried = qloop.run_until_complete(service.get_execution(entry.last_retry_id or ""))
    assert retried.trigger_payload == {"fail": False, "order": "A-3"}
    assert progress.value() == progress.maximum() == 1
    assert shown_orders(panel) == ["A-1", "A-2", "A-4", "P-1"]  # resolved: gone from "pending"


def test_a_patch_that_does_not_apply_retries_nothing(qtbot, qloop, service, dead_letters) -> None:  # type: ignore[no-untyped-def]
    panel, _hub = make_panel(qtbot, service, qloop)
    panel.select([dead_letters["A-1"], dead_letters["P-1"]])
    panel.findChild(QPushButton, "dlqRetryPatch").click()
    dialog = panel.findChild(DlqRetryDialog, "dlqRetryDialog")
    tabs = dialog.findChild(QTabWidget, "dlqRetryTabs")
    assert tabs.count() == 1  # many entries: one patch for all
    assert tabs.currentWidget().objectName() == "dlqPatchEdit"
    editor = tabs.currentWidget().findChild(QPlainTextEdit, "jsonText")
    editor.setPlainText('[{"op": "remove", "path": "/fail"}]')  # P-1 has no "fail"
    dialog.findChild(QPushButton, "dlqRetryOk").click()
    settle(qloop)
    message = panel.findChild(QLabel, "dlqMessage").text()
    assert message.startswith("Nothing was retried") and "does not apply" in message
    entries = qloop.run_until_complete(service.list_dlq(DlqFilter(status="pending")))
    assert all(e.retry_count == 0 for e in entries) and len(entries) == 5


def test_resolve_discard_and_purge_with_confirmation(qtbot, qloop, service, dead_letters) -> None:  # type: ignore[no-untyped-def]
    panel, _hub = make_panel(qtbot, service, qloop)
    panel.select([dead_letters["A-1"]])
    panel.findChild(QPushButton, "dlqResolve").click()
    settle(qloop)
    panel.select([dead_letters["A-2"], dead_letters["P-1"]])
    panel.findChild(QPushButton, "dlqDiscard").click()
    settle(qloop)
    assert panel.findChild(QLabel, "dlqMessage").text() == "2 entries discarded"
    status = {e.payload["order"]: e.status for e in qloop.run_until_complete(service.list_dlq())}
    assert status == {"A-1": "resolved", "A-2": "discarded", "P-1": "discarded", "A-3": "pending",
                      "A-4": "pending"}
    stats = panel.findChild(QLabel, "dlqStats").text()
    assert "Resolved <b>1</b>" in stats and "Discarded <b>2</b>" in stats and "Pending <b>2</b>" in stats

    # Purging entries older than 7 days keeps these; cancelling the question does nothing.
    panel.findChild(QPushButton, "dlqPurge").click()
    box = panel.findChild(QMessageBox, "dlqPurgeConfirm")
    assert "older than 7 days" in box.text() and "Pending and retrying entries are kept" in box.text()
    box.button(QMessageBox.StandardButton.Cancel).click()
    settle(qloop)
    assert len(qloop.run_until_complete(service.list_dlq())) == 5

    choose(panel.findChild(QComboBox, "dlqPurgeAge"), 0.0)
    panel.findChild(QPushButton, "dlqPurge").click()
    box = next(b for b in panel.findChildren(QMessageBox, "dlqPurgeConfirm") if b.isVisible())
    box.button(QMessageBox.StandardButton.Yes).click()
    settle(qloop)
    assert panel.findChild(QLabel, "dlqMessage").text() == "Purged 3 entries"
    left = qloop.run_until_complete(service.list_dlq())
    assert sorted(e.payload["order"] for e in left) == ["A-3", "A-4"]
    assert "Total <b>2</b>" in panel.findChild(QLabel, "dlqStats").text()


def test_no_service_and_actions_follow_the_selection(qtbot, qloop, service, dead_letters) -> None:  # type: ignore[no-untyped-def]
    panel = DlqPanel(SelectionHub())
    qtbot.addWidget(panel)
    retry = panel.findChild(QPushButton, "dlqRetry")
    assert not retry.isEnabled() and not panel.findChild(QPushButton, "dlqPurge").isEnabled()
    panel.set_service(service)
    settle(qloop)
    assert not retry.isEnabled()  # nothing selected
    panel.select([dead_letters["A-4"]])
    assert retry.isEnabled()
    view = panel.findChild(QTableView, "dlqView")
    assert view.selectionBehavior() == view.SelectionBehavior.SelectRows
    assert panel.proxy.sortRole() == Qt.ItemDataRole.UserRole + 2
    panel.set_service(None)
    assert panel.model.rowCount() == 0 and not retry.isEnabled()
