"""The Executions panel against the real embedded service: paging, filters, live rows, selection.

Each test is one coroutine on the qasync loop (qasync runs a last round of Qt events after
``run_until_complete`` with no running loop, which live subscriptions must not meet mid-test).
"""

from __future__ import annotations

import time

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import QComboBox, QLineEdit, QTableView

from app import asyncqt
from app.executions import executions_panel as panel_module
from app.executions.executions_panel import ExecutionsPanel
from app.executions.list_model import ID_ROLE, PIPELINE, REPLAY_OF, STATUS
from app.selection import SelectionHub
from engine.service.models import ReplayOptions, RunOptions
from tests.app.support import eventually

TRIAGE = {"id": "T-1", "severity": 9, "product": "billing"}
ORDER = {"sku": "AB-1", "qty": 2}


def make_panel(qtbot, service) -> tuple[ExecutionsPanel, SelectionHub]:  # type: ignore[no-untyped-def]
    hub = SelectionHub()
    panel = ExecutionsPanel(hub)
    qtbot.addWidget(panel)
    panel.resize(900, 400)
    panel.show()
    panel.set_service(service)
    return panel, hub


def rows(panel: ExecutionsPanel) -> list[str]:
    model = panel.model
    return [model.index(r, 0).data(ID_ROLE) for r in range(model.rowCount())]


def column(panel: ExecutionsPanel, col: int) -> list[str]:
    model = panel.model
    return [model.index(r, col).data() for r in range(model.rowCount())]


def choose(combo: QComboBox, data: object) -> None:
    index = combo.findData(data)
    assert index >= 0, data
    combo.setCurrentIndex(index)


def test_pages_through_cursors_and_filters_reload(qtbot, qloop, service, monkeypatch):
    monkeypatch.setattr(panel_module, "FIRST_PAGE", 2)
    monkeypatch.setattr(panel_module, "NEXT_PAGE", 2)

    async def scenario() -> None:
        ids = [(await service.run("triage", TRIAGE)).execution_id for _ in range(3)]
        ids += [(await service.run("create-order", ORDER)).execution_id for _ in range(2)]
        panel, _ = make_panel(qtbot, service)
        model = panel.model
        pages: list[int] = []
        model.modelReset.connect(lambda: pages.append(model.rowCount()))
        model.rowsInserted.connect(lambda _parent, first, last: pages.append(last - first + 1))
        # The view asks for the next page while its viewport has room for more rows.
        await eventually(lambda: model.rowCount() == 5 and not model.canFetchMore(QModelIndex()))
        assert rows(panel) == ids[::-1]  # newest first
        assert pages == [2, 2, 1]
        assert panel.findChild(QTableView, "executionsView").model() is model

        pipeline = panel.findChild(QComboBox, "filterPipeline")
        await eventually(lambda: pipeline.findData("triage") >= 0)  # the service's pipelines
        choose(pipeline, "triage")
        await eventually(lambda: set(column(panel, PIPELINE)) == {"triage"} and model.rowCount() == 3)
        assert sorted(rows(panel)) == sorted(ids[:3])

        status = panel.findChild(QComboBox, "filterStatus")
        choose(status, "failed")
        await eventually(lambda: model.rowCount() == 0)
        choose(status, "completed")
        await eventually(lambda: model.rowCount() == 3)

        search = panel.findChild(QLineEdit, "filterText")
        choose(pipeline, None)
        search.setText(ids[4][:10].upper())  # case-insensitive, after a short pause in typing
        await eventually(lambda: rows(panel) == [ids[4]])

        since = panel.findChild(QComboBox, "filterSince")
        before = time.time()
        since.setCurrentIndex(0)  # last 15 minutes: the service gets a lower bound
        bound = panel.current_filter().since
        assert before - 900 - 1 <= bound <= time.time() - 900 + 1  # 1 s: clock rounding only
        await eventually(lambda: rows(panel) == [ids[4]])
        search.clear()
        await eventually(lambda: model.rowCount() == 5)
        panel.stop()

    qloop.run_until_complete(scenario())


def test_live_runs_are_inserted_and_updated_without_a_reset(qtbot, qloop, service):
    async def scenario() -> None:
        first = (await service.run("triage", TRIAGE)).execution_id
        panel, hub = make_panel(qtbot, service)
        model = panel.model
        await eventually(lambda: model.rowCount() == 1)
        view = panel.findChild(QTableView, "executionsView")
        view.selectRow(0)
        assert hub.execution_id == first
        resets: list[int] = []
        model.modelReset.connect(lambda: resets.append(1))

        # A paused run shows as paused, then completed once resumed.
        await service.set_breakpoint("triage", "route")
        started = await service.run("triage", TRIAGE, RunOptions(wait=False))
        await eventually(lambda: model.rowCount() == 2)
        assert rows(panel)[0] == started.execution_id
        await eventually(lambda: model.index(0, STATUS).data() == "paused")
        await service.resume(started.execution_id)
        await eventually(lambda: model.index(0, STATUS).data() == "completed")
        assert model.execution(0).duration_ms is not None

        # A burst of runs lands as inserts at the top, newest first.
        burst = [(await service.run("create-order", ORDER)).execution_id for _ in range(5)]
        await eventually(lambda: model.rowCount() == 7)
        assert rows(panel)[:5] == burst[::-1]
        await eventually(lambda: column(panel, STATUS)[:5] == ["completed"] * 5)
        assert resets == []
        assert panel.selected_id() == first and hub.execution_id == first
        panel.stop()

    qloop.run_until_complete(scenario())


def test_live_runs_respect_the_filter(qtbot, qloop, service):
    async def scenario() -> None:
        panel, _ = make_panel(qtbot, service)
        pipeline = panel.findChild(QComboBox, "filterPipeline")
        await eventually(lambda: pipeline.findData("triage") >= 0)
        choose(pipeline, "triage")
        await eventually(lambda: asyncqt.pending() == 0)  # the filtered reload is in
        await service.run("create-order", ORDER)
        kept = (await service.run("triage", TRIAGE)).execution_id
        await eventually(lambda: rows(panel) == [kept])
        # Live events arrive in order: the other run's were judged before ``kept`` showed.
        await eventually(lambda: asyncqt.pending() == 0 and not panel._flush_timer.isActive())
        assert rows(panel) == [kept]
        panel.stop()

    qloop.run_until_complete(scenario())


def test_selecting_rows_and_links_drives_the_hub(qtbot, qloop, service):
    async def scenario() -> None:
        original = (await service.run("triage", TRIAGE)).execution_id
        replay = await service.replay(original, ReplayOptions(breakpoints=False))
        panel, hub = make_panel(qtbot, service)
        model = panel.model
        await eventually(lambda: model.rowCount() == 2)
        assert rows(panel) == [replay.execution_id, original]
        view = panel.findChild(QTableView, "executionsView")

        def click(row: int, col: int) -> None:
            rect = view.visualRect(model.index(row, col))
            qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())

        click(1, STATUS)
        assert hub.execution_id == original
        click(0, PIPELINE)
        assert hub.execution_id == replay.execution_id
        assert model.index(0, REPLAY_OF).data() == original[:8]
        click(0, REPLAY_OF)  # the replay-of link selects the original
        assert hub.execution_id == original
        assert panel.selected_id() == original

        hub.select_execution(replay.execution_id)  # another pane chooses: the row follows
        assert panel.selected_id() == replay.execution_id
        hub.select_execution("not-listed")
        assert panel.selected_id() == ""
        panel.stop()

    qloop.run_until_complete(scenario())
