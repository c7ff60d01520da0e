"""The Inspector (lazy JSON tree, copy, mock from output) and the raw event list, on real runs.

Each test is one coroutine on the qasync loop (see test_executions_panel.py for why).
"""

from __future__ import annotations

import json

from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt
from PySide6.QtGui import QAction, QGuiApplication
from PySide6.QtWidgets import QComboBox, QLabel, QTableView, QTreeView

from app.executions import event_list as event_list_module
from app.executions import inspector as inspector_module
from app.executions.event_list import EVENT_ROLE, EventList
from app.executions.inspector import Inspector, StepRunRecord
from app.executions.json_tree import PAGE, PREVIEW, TOOLTIP, JsonTreeModel
from app.selection import SelectionHub
from engine.service.models import RunOptions
from tests.app.support import eventually
from tests.contract.legacy_store import rewrite_as_legacy

TRIAGE = {"id": "T-1", "severity": 9, "product": "billing"}
USERS = {"users": [{"name": "ada", "orders": 2, "age": 30, "email": "a@x"},
                   {"name": "bob", "orders": 1, "age": 17, "email": "b@x"}]}


def make_inspector(qtbot, service, hub: SelectionHub) -> Inspector:  # type: ignore[no-untyped-def]
    inspector = Inspector(hub)
    qtbot.addWidget(inspector)
    inspector.resize(700, 500)
    inspector.show()
    inspector.set_service(service)
    return inspector


def top_keys(model: JsonTreeModel) -> list[str]:
    return [model.index(r, 0).data() for r in range(model.rowCount())]


def child(model: JsonTreeModel, parent: QModelIndex, key: str) -> QModelIndex:
    if model.canFetchMore(parent):
        model.fetchMore(parent)
    for row in range(model.rowCount(parent)):
        index = model.index(row, 0, parent)
        if index.data() == key:
            return index
    raise AssertionError(f"no {key!r} under {parent.data()!r}")


def status_text(widget) -> str:  # type: ignore[no-untyped-def]
    return widget.findChild(QLabel, "inspectorStatus").text()


async def first_run(service, execution_id: str, path: str):  # type: ignore[no-untyped-def]
    timeline = await service.timeline(execution_id)
    return next(r for r in timeline.steps if r.path == path)


def test_inspector_shows_the_selected_step_run_and_the_execution(qtbot, qloop, service, monkeypatch):
    monkeypatch.setattr(inspector_module, "PAGE", 5)  # the step's events span several reads

    async def scenario() -> None:
        result = await service.run("score-users", USERS)
        eid = result.execution_id
        hub = SelectionHub()
        inspector = make_inspector(qtbot, service, hub)
        model = inspector.findChild(QTreeView, "inspectorTree").model()

        fan_out = await first_run(service, eid, "fan-out")
        hub.select_step_run(eid, "fan-out", fan_out.seq)
        await eventually(lambda: "events" in top_keys(model))
        assert top_keys(model) == ["input", "output", "events"]
        results = model.value()["output"]["results"]
        assert [(r["name"], r["score"]) for r in results] == [("ADA", 23), ("BOB", 11)]
        # Only the fan-out run's own events, not its iterations' sub-steps.
        events = model.value()["events"]
        assert [e["type"] for e in events.values()] == ["step.started", "step.completed"]
        assert all(e["data"]["path"] == "fan-out" for e in events.values())
        assert "fan-out" in inspector.findChild(QLabel, "inspectorTitle").text()

        # An iteration of a loop step: the one that was selected, by its start seq.
        rows = [r for r in (await service.timeline(eid)).steps if r.path == "fan-out/row"]
        hub.select_step_run(eid, "fan-out/row", rows[1].seq)
        await eventually(lambda: model.value().get("output", {}).get("name") == "BOB")
        assert "iteration 1" in inspector.findChild(QLabel, "inspectorTitle").text()

        hub.select_step_run(eid, "fan-in", 0)  # by path only (an editor node): its first run
        await eventually(lambda: model.value().get("output", {}).get("total") == 34)
        assert inspector.seq == (await first_run(service, eid, "fan-in")).seq

        hub.select_step_run(eid, "", 0)  # no step: the execution's trigger, output and error
        await eventually(lambda: top_keys(model) == ["trigger", "output"])
        assert model.value()["trigger"] == USERS
        assert model.value()["output"] == result.output
        assert not inspector.findChild(QAction, "mockFromOutput").isEnabled()

    qloop.run_until_complete(scenario())


def test_a_large_output_is_paged_lazily_and_copied_as_json(qtbot, qloop, service):
    items = [{"n": i, "label": f"item {i}"} for i in range(1000)]

    async def scenario() -> None:
        await service.set_mock("triage", "classify", output={"priority": "low", "items": items})
        eid = (await service.run("triage", TRIAGE)).execution_id
        hub = SelectionHub()
        inspector = make_inspector(qtbot, service, hub)
        tree = inspector.findChild(QTreeView, "inspectorTree")
        model = tree.model()
        classify = await first_run(service, eid, "classify")
        hub.select_step_run(eid, "classify", classify.seq)
        await eventually(lambda: "output" in top_keys(model))

        output = child(model, QModelIndex(), "output")
        listed = child(model, output, "items")
        assert model.rowCount(listed) == 0 and model.canFetchMore(listed)  # nothing made yet
        assert model.hasChildren(listed)
        model.fetchMore(listed)
        assert model.rowCount(listed) == PAGE + 1  # a page and the "more" row
        more = model.index(PAGE, 0, listed)
        assert more.data() == f"… {1000 - PAGE:,} more"
        assert model.fetch_next_page(more) == PAGE
        assert model.rowCount(listed) == 2 * PAGE + 1
        assert model.index(2 * PAGE - 1, 1, listed).data().startswith('{"n": 399')
        # Expanding the "more" row in the view loads the next page the same way.
        tree.expand(model.index(2 * PAGE, 0, listed))
        await eventually(lambda: model.rowCount(listed) == 3 * PAGE + 1)
        assert model.rowCount(child(model, listed, "[0]")) == 0  # items stay unexpanded

        # Copy as JSON: the selected subtree, complete and valid.
        tree.selectionModel().setCurrentIndex(
            listed, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        QGuiApplication.clipboard().clear()
        inspector.findChild(QAction, "copyJson").trigger()
        assert json.loads(QGuiApplication.clipboard().text()) == items
        tree.selectionModel().clearSelection()
        tree.setCurrentIndex(QModelIndex())
        inspector.findChild(QAction, "copyJson").trigger()  # nothing selected: everything shown
        copied = json.loads(QGuiApplication.clipboard().text())
        assert copied["output"] == {"priority": "low", "items": items}
        assert [e["type"] for e in copied["events"].values()][:2] == ["step.started", "step.mocked"]

    qloop.run_until_complete(scenario())


def test_long_strings_are_cut_in_the_view_and_whole_in_the_copy(qtbot, qloop, service):
    long_id = "x" * 100_000

    async def scenario() -> None:
        eid = (await service.run("triage", {**TRIAGE, "id": long_id})).execution_id
        hub = SelectionHub()
        inspector = make_inspector(qtbot, service, hub)
        tree = inspector.findChild(QTreeView, "inspectorTree")
        model = tree.model()
        hub.select_execution(eid)
        await eventually(lambda: "trigger" in top_keys(model))
        cell = child(model, child(model, QModelIndex(), "trigger"), "id")
        shown = cell.siblingAtColumn(1).data()
        assert len(shown) < PREVIEW + 30 and "100,000 chars" in shown
        assert len(cell.siblingAtColumn(1).data(Qt.ItemDataRole.ToolTipRole)) < TOOLTIP + 100
        tree.setCurrentIndex(cell)
        inspector.findChild(QAction, "copyJson").trigger()
        assert json.loads(QGuiApplication.clipboard().text()) == long_id

    qloop.run_until_complete(scenario())


def test_turning_an_output_into_a_mock(qtbot, qloop, service):
    async def scenario() -> None:
        eid = (await service.run("triage", TRIAGE)).execution_id
        hub = SelectionHub()
        inspector = make_inspector(qtbot, service, hub)
        model = inspector.findChild(QTreeView, "inspectorTree").model()
        make_mock = inspector.findChild(QAction, "mockFromOutput")
        classify = await first_run(service, eid, "classify")
        hub.select_step_run(eid, "classify", classify.seq)
        await eventually(make_mock.isEnabled)
        assert await service.list_mocks() == []
        make_mock.trigger()
        await eventually(lambda: "Mock created" in status_text(inspector))
        mocks = await service.list_mocks("triage")
        assert [(m.step, m.mode, m.output, m.source_execution_id) for m in mocks] == [
            ("classify", "recorded", model.value()["output"], eid)]

    qloop.run_until_complete(scenario())


def make_event_list(qtbot, service, hub: SelectionHub) -> EventList:  # type: ignore[no-untyped-def]
    events = EventList(hub)
    qtbot.addWidget(events)
    events.resize(800, 250)
    events.show()
    events.set_service(service)
    return events


def shown_events(events: EventList) -> list:  # type: ignore[type-arg]
    model = events.model
    return [model.index(r, 0).data(EVENT_ROLE) for r in range(model.rowCount())]


def test_event_list_pages_filters_by_type_and_selects_step_runs(qtbot, qloop, service, monkeypatch):
    monkeypatch.setattr(event_list_module, "PAGE", 4)

    async def scenario() -> None:
        eid = (await service.run("triage", TRIAGE)).execution_id
        stored = await service.events(eid)
        hub = SelectionHub()
        events = make_event_list(qtbot, service, hub)
        inspector = make_inspector(qtbot, service, hub)
        table = events.findChild(QTableView, "eventTable")
        hub.select_execution(eid)
        await eventually(lambda: events.model.rowCount() > 0 and not events.model.loading)
        assert events.model.rowCount() < len(stored)  # read by pages of 4 ...
        while events.model.canFetchMore(QModelIndex()):  # ... as the view scrolls down
            table.scrollToBottom()
            events.model.fetchMore(QModelIndex())
            await eventually(lambda: not events.model.loading)
        assert [e.seq for e in shown_events(events)] == [e.seq for e in stored]

        types = events.findChild(QComboBox, "eventTypeFilter")
        assert {types.itemData(i) for i in range(types.count())} == {None} | {e.type for e in stored}
        types.setCurrentIndex(types.findData("step.completed"))
        outputs = [e.seq for e in stored if e.type == "step.completed"]
        await eventually(lambda: [e.seq for e in shown_events(events)] == outputs and events.model.exhausted)

        # Selecting an event selects its step run: its path and the seq of its start.
        row = next(r for r, e in enumerate(shown_events(events)) if e.data["path"] == "route")
        table.selectRow(row)
        route = await first_run(service, eid, "route")
        assert (hub.execution_id, hub.step_path, hub.seq) == (eid, "route", route.seq)
        await eventually(lambda: inspector.run is not None and inspector.run.path == "route"
                    and "output" in top_keys(inspector.model))

        types.setCurrentIndex(types.findData(None))
        await eventually(lambda: events.model.rowCount() > 0 and not events.model.loading)
        reply = await first_run(service, eid, "reply")
        assert events.model.row_of_seq(reply.seq) < 0  # not read yet
        # A step run chosen elsewhere selects its step.started row here, reading up to it.
        hub.select_step_run(eid, "reply", reply.seq)
        await eventually(lambda: events.selected_event() is not None)
        selected = events.selected_event()
        assert (selected.type, selected.seq) == ("step.started", reply.seq)

    qloop.run_until_complete(scenario())


def test_event_list_follows_a_running_execution(qtbot, qloop, service):
    async def scenario() -> None:
        await service.set_breakpoint("triage", "route")
        started = await service.run("triage", TRIAGE, RunOptions(wait=False))
        eid = started.execution_id
        hub = SelectionHub()
        events = make_event_list(qtbot, service, hub)
        inspector = make_inspector(qtbot, service, hub)
        hub.select_execution(eid)
        await eventually(lambda: any(e.type == "debug.paused" for e in shown_events(events)))
        count = len(shown_events(events))
        assert inspector.model.value() == {"trigger": TRIAGE, "output": None}
        await service.resume(eid)
        await eventually(lambda: shown_events(events)[-1].type == "execution.completed")
        # The inspector showing the execution picks up its output when it ends.
        await eventually(lambda: (inspector.model.value()["output"] or {}).get("priority") == "urgent")
        seqs = [e.seq for e in shown_events(events)]
        assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) > count  # no gap, no repeat
        assert seqs == [e.seq for e in await service.events(eid)]

    qloop.run_until_complete(scenario())


async def read_run(service, execution_id: str, seq: int, path: str) -> StepRunRecord:  # type: ignore[no-untyped-def]
    """A step run as the Inspector reads it: from its start forward until it ends."""
    record = StepRunRecord(path, seq)
    for event in await service.events(execution_id, after_seq=seq - 1):
        if record.belongs(event):
            record.take(event)
            if record.ended:
                break
    return record


def test_an_execution_in_the_old_event_shape_inspects_the_same(qtbot, qloop, service, tmp_path):
    """Stores of 0.1.0 and earlier hold step.input / step.output events of their own."""

    async def scenario() -> None:
        await service.set_mock("triage", "classify", output={"priority": "low"})
        for pipeline, payload in (("triage", TRIAGE), ("score-users", USERS)):
            new = (await service.run(pipeline, payload)).execution_id
            old = (await service.run(pipeline, payload)).execution_id
            written = rewrite_as_legacy(f"sqlite:///{tmp_path / 'store.db'}", old)
            assert "step.input" in {kind for _s, kind, _d, _t in written}
            runs_new, runs_old = (await service.timeline(new)).steps, (await service.timeline(old)).steps
            assert [r.path for r in runs_new] == [r.path for r in runs_old]
            for run_new, run_old in zip(runs_new, runs_old, strict=True):
                a = await read_run(service, new, run_new.seq, run_new.path)
                b = await read_run(service, old, run_old.seq, run_old.path)
                assert (b.input, b.output, b.error, b.status, b.flags()) == (
                    a.input, a.output, a.error, a.status, a.flags()), run_new.path
                assert b.input is not inspector_module._MISSING or run_new.status == "skipped"
                assert [e.type for e in b.events if e.type not in ("step.input", "step.output")] == [
                    e.type for e in a.events]

        # and in the widget: the selected run's input and output, with the old events listed
        hub = SelectionHub()
        inspector = make_inspector(qtbot, service, hub)
        model = inspector.findChild(QTreeView, "inspectorTree").model()
        fan_out = next(r for r in (await service.timeline(old)).steps if r.path == "fan-out")
        hub.select_step_run(old, "fan-out", fan_out.seq)
        await eventually(lambda: "events" in top_keys(model))
        assert top_keys(model) == ["input", "output", "events"]
        assert [(r["name"], r["score"]) for r in model.value()["output"]["results"]] == [
            ("ADA", 23), ("BOB", 11)]
        assert [e["type"] for e in model.value()["events"].values()] == [
            "step.started", "step.input", "step.output", "step.completed"]

    qloop.run_until_complete(scenario())
