"""The replay dialog against the real embedded service: options, the plan preview, the run."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QPushButton, QTableWidget

from app.replay.replay_dialog import MOCK, REUSE, ReplayDialog
from engine.service.models import ExecutionFilter, RunOptions
from tests.app.support import finished, until
from tests.contract.legacy_store import rewrite_as_legacy

ORDER = {"sku": "AB-1", "qty": 2}


def plan_rows(dialog: ReplayDialog) -> list[tuple[str, str]]:
    table = dialog.findChild(QTableWidget, "replayPlan")
    return [(table.item(r, 0).text(), table.item(r, 1).text()) for r in range(table.rowCount())]


def executions(qloop, service) -> int:  # type: ignore[no-untyped-def]
    return len(qloop.run_until_complete(service.list_executions(ExecutionFilter(limit=1000))).items)


@pytest.fixture
def original(qloop, service) -> str:  # type: ignore[no-untyped-def]
    result = qloop.run_until_complete(service.run("create-order", ORDER))
    assert result.status == "completed"
    return result.execution_id


@pytest.fixture
def dialog(qapp, qtbot, qloop, service, original) -> Iterator[ReplayDialog]:  # type: ignore[no-untyped-def]
    quits = qapp.quitOnLastWindowClosed()
    qapp.setQuitOnLastWindowClosed(False)  # accept() hides the only window: the loop goes on
    dialog = ReplayDialog(service, original)
    qtbot.addWidget(dialog)
    dialog.show()
    qloop.run_until_complete(dialog.load())
    yield dialog
    qapp.setQuitOnLastWindowClosed(quits)


def wait_plan(qloop, dialog: ReplayDialog) -> None:  # type: ignore[no-untyped-def]
    """Until the debounced preview of the options shown has arrived (or was refused)."""
    status = dialog.findChild(QLabel, "replayPlanStatus")
    until(qloop, lambda: dialog.plan() is not None or (
        not dialog._timer.isActive() and status.text() not in ("Updating the plan…", "Loading…")))


def test_from_a_step_with_a_mock_previews_then_replays(qloop, service, original, dialog):
    replayed: list[tuple[str, str]] = []
    dialog.replayed.connect(lambda a, b: replayed.append((a, b)))
    run = dialog.findChild(QPushButton, "replayRun")
    assert dialog.plan() is not None and dialog.plan().mode == "exact"
    assert plan_rows(dialog) == [(s, "re-run") for s in
                                 ("request", "check", "price", "store", "reserve-stock", "respond")]
    assert run.isEnabled()
    start = dialog.findChild(QComboBox, "replayStart")
    assert [start.itemData(i) for i in range(start.count())] == [
        None, "request", "check", "price", "store", "reserve-stock", "respond"]
    before = executions(qloop, service)

    dialog.set_from_step("price")
    assert not run.isEnabled()  # the plan shown is not the plan of these options yet
    assert not dialog.findChild(QCheckBox, "replayEditInput").isEnabled()  # the original input
    wait_plan(qloop, dialog)
    assert dialog.plan().mode == "from_step"
    assert plan_rows(dialog)[:3] == [("request", "reused"), ("check", "reused"), ("price", "re-run")]

    dialog.set_step_mode("price", MOCK, {"unit_price": 1, "discount": 0, "total": 1.0})
    wait_plan(qloop, dialog)
    assert dict(plan_rows(dialog))["price"] == "mocked"
    assert "1 mocked" in dialog.findChild(QLabel, "replayPlanStatus").text()
    assert executions(qloop, service) == before  # previews ran nothing
    assert run.isEnabled()

    run.click()
    until(qloop, lambda: bool(replayed))
    (source, new_id), = replayed
    assert source == original and dialog.result() == dialog.DialogCode.Accepted
    summary = finished(qloop, service, new_id)
    assert summary.replay_of == original and summary.status == "completed"
    assert summary.output["body"]["total"] == 1.0
    timeline = qloop.run_until_complete(service.timeline(new_id))
    flags = {s.path: s.flags for s in timeline.steps}
    assert "reused" in flags["request"] and "mocked" in flags["price"]


def test_edited_input_errors_disable_replay_until_fixed(qloop, service, original, dialog):
    run = dialog.findChild(QPushButton, "replayRun")
    dialog.findChild(QCheckBox, "replayEditInput").setChecked(True)
    text = dialog.input.text_edit
    text.setPlainText('{"sku": "AB-1",\n "qty": 3,,}')  # typed: an edit
    wait_plan(qloop, dialog)
    status = dialog.findChild(QLabel, "replayPlanStatus").text()
    assert "line 2" in status and "column" in status
    assert dialog.plan() is None and not run.isEnabled()

    text.setPlainText('{"sku": "AB-1", "qty": 3}')
    wait_plan(qloop, dialog)
    plan = dialog.plan()
    assert plan is not None and plan.mode == "modified" and plan.payload == {"sku": "AB-1", "qty": 3}
    assert run.isEnabled()

    # turning editing off shows the original; back on, the edit is still there
    dialog.findChild(QCheckBox, "replayEditInput").setChecked(False)
    assert json.loads(dialog.input.text()) == ORDER
    dialog.findChild(QCheckBox, "replayEditInput").setChecked(True)
    assert json.loads(dialog.input.text()) == {"sku": "AB-1", "qty": 3}
    wait_plan(qloop, dialog)

    new_id = qloop.run_until_complete(dialog.replay())
    summary = finished(qloop, service, new_id)
    assert summary.trigger_payload == {"sku": "AB-1", "qty": 3}
    assert summary.output["body"]["total"] == 58.5
    started = qloop.run_until_complete(service.events(new_id, types=["execution.started"]))[0]
    assert started.data["replay"]["patch"] == [{"op": "replace", "path": "/qty", "value": 3}]


def test_recorded_outputs_mocks_and_refusals(qtbot, qloop, service, original, dialog):
    dialog.set_step_mode("store", REUSE)  # no second row in the orders table
    wait_plan(qloop, dialog)
    assert dialog.plan().mode == "modified" and dict(plan_rows(dialog))["store"] == "mocked"
    assert dialog.options().use_recorded_mocks == ["store"]

    # a mock starts from the recorded output
    dialog.set_step_mode("price", MOCK)
    until(qloop, lambda: dialog.mock_field("price").text() != "")
    assert json.loads(dialog.mock_field("price").text()) == {"unit_price": 19.5, "discount": 0, "total": 39}
    dialog.mock_field("price").setText("{oops")
    dialog.mock_field("price").textEdited.emit("{oops")
    wait_plan(qloop, dialog)
    assert "mock of price" in dialog.findChild(QLabel, "replayPlanStatus").text()
    assert not dialog.findChild(QPushButton, "replayRun").isEnabled()

    # the service's refusal is shown, not raised: an execution still paused cannot be replayed
    qloop.run_until_complete(service.set_breakpoint("create-order", "price"))
    paused = qloop.run_until_complete(service.run("create-order", ORDER, RunOptions(wait=False)))

    async def pause() -> None:
        while not await service.paused():
            await asyncio.sleep(0.01)

    qloop.run_until_complete(asyncio.wait_for(pause(), 30))
    other = ReplayDialog(service, paused.execution_id)
    qtbot.addWidget(other)
    qloop.run_until_complete(other.load())
    assert other.plan() is None and "still paused" in other.findChild(QLabel, "replayPlanStatus").text()
    assert not other.findChild(QPushButton, "replayRun").isEnabled()
    qloop.run_until_complete(service.resume(paused.execution_id, "abort"))


def test_unknown_execution_is_reported(qtbot, qloop, service):
    dialog = ReplayDialog(service, "nope")
    qtbot.addWidget(dialog)
    qloop.run_until_complete(dialog.load())
    assert "Cannot replay execution nope" in dialog.findChild(QLabel, "replayHeader").text()
    assert not dialog.findChild(QPushButton, "replayRun").isEnabled()


def test_open_for_loads_in_the_background_and_cleans_up(qapp, qloop, service, original):
    quits = qapp.quitOnLastWindowClosed()
    qapp.setQuitOnLastWindowClosed(False)
    dialog = ReplayDialog.open_for(service, original)
    assert dialog.isVisible() and dialog.plan() is None
    until(qloop, lambda: dialog.plan() is not None)
    gone: list[bool] = []
    dialog.destroyed.connect(lambda *_: gone.append(True))
    dialog.reject()
    until(qloop, lambda: bool(gone))
    qapp.setQuitOnLastWindowClosed(quits)


def test_recorded_outputs_of_an_execution_in_the_old_event_shape(qtbot, qloop, service, original, dialog,
                                                                  tmp_path):
    """Stores of 0.1.0 and earlier hold each output in a step.output event of its own."""
    old = qloop.run_until_complete(service.run("create-order", ORDER)).execution_id
    written = rewrite_as_legacy(f"sqlite:///{tmp_path / 'store.db'}", old)
    assert "step.output" in {kind for _s, kind, _d, _t in written}
    legacy = ReplayDialog(service, old)
    qtbot.addWidget(legacy)
    qloop.run_until_complete(legacy.load())
    recorded = qloop.run_until_complete(legacy.recorded_outputs())
    assert recorded == {d["path"]: d["output"] for _s, kind, d, _t in written if kind == "step.output"}
    current = qloop.run_until_complete(dialog.recorded_outputs())  # the same run in the new shape
    assert recorded.keys() == current.keys()
    assert recorded["price"] == current["price"] == {"unit_price": 19.5, "discount": 0, "total": 39}
    assert recorded["store"]["last_id"] == current["store"]["last_id"] + 1  # the second order
