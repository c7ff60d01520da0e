"""The Problems panel fed with the service's real diagnostics: rows per file, counts,
filtering and the jump to the right line."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QLineEdit, QTableView

from app.workspace.problems import ProblemsPanel


def broken_orders(workspace: Path) -> str:
    text = (workspace / "orders.yaml").read_text()
    text = text.replace(
        'type: step.db_exec\n        config:\n          database: db\n          query: "INSERT',
        'type: step.db_exce\n        config:\n          database: db\n          query: "INSERT',
    )
    return "colour: red\n" + text  # an unknown top-level key: a warning


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.fixture
def panel(qtbot) -> ProblemsPanel:
    widget = ProblemsPanel()
    qtbot.addWidget(widget)
    widget.show()
    return widget


def test_rows_per_file_and_counts(qtbot, qloop, service, workspace, panel: ProblemsPanel):
    orders = str(workspace / "orders.yaml")
    routing = str(workspace / "routing.yaml")
    diagnostics = qloop.run_until_complete(service.validate(broken_orders(workspace), orders))
    assert {d.severity for d in diagnostics} == {"error", "warning"}
    with qtbot.waitSignal(panel.countsChanged) as counts:
        panel.set_problems(orders, diagnostics)
    errors = sum(d.severity == "error" for d in diagnostics)
    assert counts.args == [errors, len(diagnostics) - errors]
    bad_routing = (workspace / "routing.yaml").read_text().replace("type: step.", "type: stp.", 1)
    panel.set_problems(routing, qloop.run_until_complete(service.validate(bad_routing, routing)))
    view = panel.findChild(QTableView, "problemsView")
    assert view.model().rowCount() == len(diagnostics) + 1
    shown = [(p.file, p.line, p.col) for p in panel.visible_problems()]
    assert shown == sorted(shown) and {f for f, _, _ in shown} == {orders, routing}  # by position
    view.sortByColumn(1, Qt.SortOrder.DescendingOrder)  # a click on the Message header
    messages = [p.message.lower() for p in panel.visible_problems()]
    assert messages == sorted(messages, reverse=True) and messages != [
        p.message.lower() for p in sorted(panel.visible_problems(), key=lambda p: (p.file, p.line))
    ]

    fixed = qloop.run_until_complete(service.validate((workspace / "orders.yaml").read_text(), orders))
    with qtbot.waitSignal(panel.countsChanged) as counts:
        panel.set_problems(orders, fixed)  # replaces that file's rows only
    assert counts.args == [1, 0]
    assert [p.file for p in panel.visible_problems()] == [routing]
    with qtbot.waitSignal(panel.countsChanged) as counts:
        panel.clear(routing)
    assert counts.args == [0, 0] and view.model().rowCount() == 0


def test_filter_by_text_and_errors_only(qloop, service, workspace, panel: ProblemsPanel):
    orders = str(workspace / "orders.yaml")
    panel.set_problems(orders, qloop.run_until_complete(service.validate(broken_orders(workspace), orders)))
    total = len(panel.visible_problems())
    panel.findChild(QCheckBox, "problemsErrorsOnly").setChecked(True)
    assert panel.visible_problems() and all(p.severity == "error" for p in panel.visible_problems())
    assert len(panel.visible_problems()) < total
    panel.findChild(QCheckBox, "problemsErrorsOnly").setChecked(False)
    panel.findChild(QLineEdit, "problemsFilter").setText("UNKNOWN STEP TYPE")
    assert [p.message for p in panel.visible_problems()] == [
        "unknown step type 'step.db_exce' (did you mean 'step.db_exec'?)"
    ]
    panel.findChild(QLineEdit, "problemsFilter").setText("routing.yaml")  # file names match too
    assert panel.visible_problems() == []


def test_enter_on_a_row_jumps_to_its_line(qtbot, qloop, service, workspace, panel: ProblemsPanel):
    orders = str(workspace / "orders.yaml")
    text = broken_orders(workspace)
    panel.set_problems(orders, qloop.run_until_complete(service.validate(text, orders)))
    panel.findChild(QLineEdit, "problemsFilter").setText("unknown step type")
    view = panel.findChild(QTableView, "problemsView")
    view.setFocus()
    view.setCurrentIndex(view.model().index(0, 1))
    with qtbot.waitSignal(panel.jumpRequested) as jump:
        qtbot.keyClick(view, Qt.Key.Key_Return)
    file, line, col = jump.args
    assert file == orders and line == line_of(text, "type: step.db_exce")
    assert text.splitlines()[line - 1][col - 1 :].startswith("step.db_exce")
