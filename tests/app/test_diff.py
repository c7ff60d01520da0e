"""The diff pane against the real embedded service: originals and their replays, side by side."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QPushButton, QTableView, QTableWidget

from app import theme
from app.replay.diff_pane import DIVERGENCE_MARK, KIND_ROLE, ROUTE_A, ROUTE_B, STATUS_B, STEP, DiffPane
from app.selection import SelectionHub
from engine.service.models import ReplayOptions

ORDER = {"sku": "AB-1", "qty": 2}
TICKET = {"id": "T-1", "severity": 9, "product": "billing"}


@pytest.fixture
def pane(qtbot, service) -> DiffPane:  # type: ignore[no-untyped-def]
    pane = DiffPane(SelectionHub())
    qtbot.addWidget(pane)
    pane.show()
    pane.set_service(service)
    return pane


def rows(pane: DiffPane) -> dict[str, int]:
    model = pane.model
    return {step.path: row for row, step in enumerate(model.steps)}


def text(pane: DiffPane, row: int, column: int) -> str:
    return pane.model.index(row, column).data()


def changes(pane: DiffPane) -> list[tuple[str, str, str, str]]:
    table = pane.findChild(QTableWidget, "diffChanges")
    return [tuple(table.item(r, c).text() for c in range(4)) for r in range(table.rowCount())]  # type: ignore[misc]


def test_replay_from_a_step_diverges_at_the_mocked_step(qloop, service, pane):
    original = qloop.run_until_complete(service.run("create-order", ORDER)).execution_id
    replay = qloop.run_until_complete(service.replay(original, ReplayOptions(
        mode="from_step", from_step="price", mocks={"price": {"unit_price": 1, "discount": 0, "total": 1.0}})))
    diff = qloop.run_until_complete(pane.compare_with_original(replay.execution_id))
    assert diff is not None and (diff.a, diff.b) == (original, replay.execution_id)
    assert diff.first_divergence is not None and diff.first_divergence.path == "price"

    at = rows(pane)
    assert list(at) == ["request", "check", "price", "store", "reserve-stock", "respond"]
    assert text(pane, at["price"], STEP) == DIVERGENCE_MARK + "price"
    assert text(pane, at["request"], STEP) == "request"  # reused with the same output: not a difference
    assert text(pane, at["request"], STATUS_B) == "completed · reused"
    assert text(pane, at["price"], STATUS_B) == "completed · mocked"
    assert pane.model.index(at["request"], 0).data(KIND_ROLE) == "same"
    assert pane.model.index(at["price"], 0).data(KIND_ROLE) == "changed"
    assert pane.model.index(at["request"], 0).data(Qt.ItemDataRole.BackgroundRole) is None
    assert pane.model.index(at["price"], 0).data(Qt.ItemDataRole.BackgroundRole) is not None
    assert "first divergence at <b>price</b>" in pane.findChild(QLabel, "diffSummary").text()
    assert not pane.findChild(QLabel, "diffDefinition").isVisibleTo(pane)

    jump = pane.findChild(QPushButton, "jumpToDivergence")
    assert jump.isEnabled()
    selected: list[tuple[str, str, str]] = []
    pane.stepSelected.connect(lambda a, b, path: selected.append((a, b, path)))
    jump.click()
    assert pane.selected_step().path == "price"
    assert pane.findChild(QTableView, "diffTable").selectionModel().selectedRows()[0].row() == at["price"]
    assert selected == [(original, replay.execution_id, "price")]
    assert ("output", "/unit_price", "19.5", "1") in changes(pane)
    assert ("output", "/total", "39", "1.0") in changes(pane)

    pane.findChild(QTableView, "diffTable").clearSelection()  # back to the execution's changes
    assert ("output", "/body/total", "39", "1.0") in changes(pane)


def test_route_differences_are_marked(qloop, service, pane):
    original = qloop.run_until_complete(service.run("triage", TICKET)).execution_id
    replay = qloop.run_until_complete(service.replay(original, ReplayOptions(
        mode="modified", patch=[{"op": "replace", "path": "/severity", "value": 5}]))).execution_id
    diff = qloop.run_until_complete(pane.compare(original, replay))
    assert diff is not None and diff.first_divergence.path == "classify"
    at = rows(pane)
    assert (text(pane, at["route"], ROUTE_A), text(pane, at["route"], ROUTE_B)) == ("page-on-call", "queue")
    error = QColor(theme.colors().error)
    for column in (ROUTE_A, ROUTE_B):
        assert pane.model.index(at["route"], column).data(Qt.ItemDataRole.ForegroundRole).color() == error
    assert pane.model.index(at["classify"], ROUTE_A).data(Qt.ItemDataRole.ForegroundRole) is None
    assert pane.model.index(at["page-on-call"], 0).data(KIND_ROLE) == "only_a"
    assert pane.model.index(at["queue"], 0).data(KIND_ROLE) == "only_b"
    assert text(pane, at["queue"], STATUS_B - 1) == "—"  # status A of a step only B ran
    assert ("trigger", "/severity", "9", "5") in changes(pane)

    pane.select_row(at["classify"])
    assert ("output", "/priority", '"urgent"', '"normal"') in changes(pane)
    pane.select_row(at["page-on-call"])
    assert pane.findChild(QLabel, "diffChangesTitle").text() == "page-on-call ran only in A"


def test_a_changed_definition_is_named(qloop, service, workspace, pane):
    original = qloop.run_until_complete(service.run("create-order", ORDER)).execution_id
    path = workspace / "orders.yaml"
    source = path.read_text()
    assert "unit_price: 19.5" in source
    qloop.run_until_complete(service.put_definition(source.replace("unit_price: 19.5", "unit_price: 20"),
                                                    str(path)))
    replay = qloop.run_until_complete(service.replay(original, ReplayOptions(
        mode="modified", use_current_definition=True))).execution_id
    diff = qloop.run_until_complete(pane.compare_with_original(replay))
    assert diff is not None and diff.definition_changed
    note = pane.findChild(QLabel, "diffDefinition")
    assert note.isVisibleTo(pane) and "Definition changed" in note.text()
    show = pane.findChild(QPushButton, "diffShowDefinition")
    show.click()
    source_diff = pane.findChild(type(pane.definition_text), "diffDefinitionText")
    assert source_diff.isVisibleTo(pane)
    assert any(line.startswith("+") and line.strip().endswith("unit_price: 20")
               for line in source_diff.toPlainText().splitlines())
    assert diff.first_divergence.path == "price"


def test_what_cannot_be_compared_is_said(qloop, service, pane):
    original = qloop.run_until_complete(service.run("create-order", ORDER)).execution_id
    assert qloop.run_until_complete(pane.compare_with_original(original)) is None
    header = pane.findChild(QLabel, "diffHeader")
    assert "is not a replay" in header.text()
    assert qloop.run_until_complete(pane.compare(original, "missing")) is None
    assert "Cannot compare" in header.text() and "missing" in header.text()
    assert pane.model.rowCount() == 0 and not pane.findChild(QPushButton, "jumpToDivergence").isEnabled()
