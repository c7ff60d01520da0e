"""Debugging in the studio window: breakpoint on a node, pause, edit, step, continue; replay
and diff; retry from the dead-letter queue; the same panes against a real server.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication, QPushButton

from app.executions.timeline_style import MARKER_KINDS
from app.settings import Settings
from app.shell.main_window import MainWindow
from engine.client import RemoteService
from engine.service.errors import Conflict
from engine.service.models import RunOptions
from tests.app.support import LoopbackServer, free_port, settle, until


@pytest.fixture(autouse=True)
def _no_quote_service(monkeypatch: pytest.MonkeyPatch) -> None:
    # nothing listens on the discard port: fetch-quote fails and dead-letters
    monkeypatch.setenv("SAMPLE_API_URL", "http://127.0.0.1:9")


@pytest.fixture
def window(qloop, service, workspace: Path, tmp_path: Path) -> Iterator[MainWindow]:
    win = MainWindow(Settings(tmp_path / "settings.ini"), workspace)
    qloop.run_until_complete(win.adopt_service(service, "Embedded"))
    win.resize(1400, 900)
    win.show()
    yield win
    settle(qloop)
    for editor in win.editors():
        editor.document.undo_stack.setClean()
    win.close()
    win.deleteLater()


def _action(window: MainWindow, name: str):  # type: ignore[no-untyped-def]
    return next(a for a in window.actions() if a.objectName() == name)


def test_breakpoint_on_a_node_pause_edit_step_over_continue(window: MainWindow, workspace: Path, qloop):
    editor = window.open_file(workspace / "orders.yaml")
    assert editor is not None
    editor.graph.request_breakpoint("price")  # the node's context menu / F9
    until(qloop, lambda: editor.graph.breakpoints("create-order").get("price") is not None)
    assert [b.step for b in window.breakpoints.breakpoints("create-order")] == ["price"]

    service = window.backend.service
    started = qloop.run_until_complete(service.run("create-order", {"sku": "AB-1", "qty": 2},
                                                   RunOptions(wait=False)))
    until(qloop, lambda: editor.graph.paused_step("create-order") == "price")
    until(qloop, lambda: window.debugger.paused_panel.current() is not None)
    assert window.debugger.paused_panel.current().execution_id == started.execution_id

    # edit the context: 5 instead of 2; the edit goes out as a patch on resume
    context = json.loads(window.debugger.context_editor.text())
    context["current"]["qty"] = 5
    window.debugger.context_editor.set_text(json.dumps(context, indent=2))
    _action(window, "actionStepOver").trigger()
    until(qloop, lambda: editor.graph.paused_step("create-order") == "store")
    _action(window, "actionContinue").trigger()
    result = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        result = qloop.run_until_complete(service.get_execution(started.execution_id))
        if result.status not in ("running", "paused"):
            break
        settle(qloop)
    assert result is not None and result.status == "completed"
    assert result.output["body"]["total"] == 97.5  # priced with the edited quantity
    events = qloop.run_until_complete(service.events(started.execution_id))
    patches = [e for e in events if e.type == "debug.context_patched"]
    assert patches and patches[0].data["patch"] == [{"op": "replace", "path": "/current/qty", "value": 5}]
    until(qloop, lambda: editor.graph.paused_step("create-order") is None)

    # the timeline shows the pause and the edit
    window.open_execution(started.execution_id)
    until(qloop, lambda: window.timeline.model is not None
          and window.timeline.execution_id == started.execution_id and not window.timeline.loading)
    kinds = {MARKER_KINDS[m.kind] for m in window.timeline.model.markers}
    assert {"pause", "edit"} <= kinds


def test_replay_from_a_step_shows_the_first_divergence(window: MainWindow, qloop):
    service = window.backend.service
    original = qloop.run_until_complete(service.run("create-order", {"sku": "AB-1", "qty": 2}))
    window.open_execution(original.execution_id)
    window.replay_selected()
    dialog = None

    def opened() -> bool:
        nonlocal dialog
        dialog = next((w for w in QApplication.topLevelWidgets()
                       if w.objectName() == "replayDialog" and w.isVisible()), None)
        return dialog is not None and dialog.findChild(QPushButton, "replayRun").isEnabled()

    until(qloop, opened)
    dialog.set_from_step("price")
    dialog.set_step_mode("price", "mock", {"unit_price": 19.5, "discount": 0, "total": 1.0})
    until(qloop, lambda: dialog.plan() is not None and dialog.findChild(QPushButton, "replayRun").isEnabled())
    dialog.findChild(QPushButton, "replayRun").click()
    until(qloop, lambda: window.diff.diff() is not None)
    diff = window.diff.diff()
    assert diff.a == original.execution_id
    assert diff.first_divergence is not None and diff.first_divergence.path == "price"
    assert window.hub.execution_id == diff.b  # the new execution is the selected one


def test_retry_a_dead_letter_from_the_panel(window: MainWindow, qloop):
    service = window.backend.service
    failed = qloop.run_until_complete(service.run("fetch-quote", {"sku": "ABC-1"}))
    assert failed.status == "failed"
    window.docks["Dead Letters"].raise_()
    window.dlq.refresh()
    until(qloop, lambda: window.dlq.model.rowCount() == 1)
    entry = qloop.run_until_complete(service.list_dlq())[0]
    # the quote service is still down: answer the step with a mock, then retry the entry
    qloop.run_until_complete(service.set_mock("fetch-quote", "quote",
                                              output={"status_code": 200, "body": {"price": 9.5, "attempt": 1}}))
    window.dlq.select([entry.id])
    window.dlq.retry_selected()
    until(qloop, lambda: not window.dlq.busy, timeout=20)
    assert qloop.run_until_complete(service.get_dlq(entry.id)).status == "resolved"
    progress = window.dlq.progress
    assert progress.value() == progress.maximum() > 0


@pytest.fixture
def server(tmp_path: Path, workspace: Path) -> Iterator[tuple[str, str]]:
    """The real hosted server on loopback serving orders.yaml, and an admin key; (url, key)."""
    from engine.server import KeyStore
    from engine.store.store import Store

    store_url = f"sqlite:///{tmp_path / 'server.db'}"
    with Store.open(store_url) as store:
        _, secret = KeyStore(store).create("studio", scopes=["admin"])
    live = LoopbackServer(free_port(), store_url, [workspace / "orders.yaml"]).start()
    try:
        yield live.url, secret
    finally:
        live.stop()


def test_every_pane_works_against_a_remote_server(qloop, server, workspace: Path, tmp_path: Path):
    url, key = server
    remote = RemoteService(url, key)
    window = MainWindow(Settings(tmp_path / "remote.ini"), workspace)
    try:
        qloop.run_until_complete(window.adopt_service(remote, "team server"))
        window.show()
        assert not window.backend.embedded
        assert window.backend_label.text().startswith("team server · engine ")
        run = qloop.run_until_complete(remote.run("create-order", {"sku": "AB-1", "qty": 2}))
        assert run.status == "completed"
        window.executions.refresh()
        until(qloop, lambda: window.executions.model.rowCount() >= 1)
        window.open_execution(run.execution_id)
        until(qloop, lambda: window.timeline.model is not None
              and window.timeline.execution_id == run.execution_id and not window.timeline.loading)
        assert {lane.label for lane in window.timeline.lanes()} >= {"check", "price", "store"}
        # a saved file is validated by the server, not deployed; the palette lists its step types
        assert window.palette.item_for("step.set") is not None
    finally:
        settle(qloop)
        window.close()
        window.deleteLater()
        qloop.run_until_complete(remote.aclose())


def test_a_remote_pause_opens_the_workspace_file_the_server_names(qloop, server, workspace: Path,
                                                                   tmp_path: Path):
    """The server names its files relative to their folder, never by its own paths; the
    studio finds the paused pipeline's file by that name in its workspace and opens it."""
    url, key = server
    remote = RemoteService(url, key)
    window = MainWindow(Settings(tmp_path / "pause.ini"), workspace)
    started = None
    try:
        qloop.run_until_complete(window.adopt_service(remote, "team server"))
        window.show()
        infos = qloop.run_until_complete(remote.list_pipelines())
        assert {p.file for p in infos} == {"orders.yaml"}
        for editor in window.editors():  # nothing of orders.yaml open yet
            assert editor.document.path != workspace / "orders.yaml"
        qloop.run_until_complete(remote.set_breakpoint("create-order", "price"))
        started = qloop.run_until_complete(remote.run("create-order", {"sku": "AB-1", "qty": 2},
                                                      RunOptions(wait=False)))

        def opened() -> bool:
            return any(e.document.path == workspace / "orders.yaml"
                       and e.graph.paused_step("create-order") == "price" for e in window.editors())

        until(qloop, opened, timeout=30)
    finally:
        if started is not None:
            with contextlib.suppress(Conflict):  # already gone if the test failed early
                qloop.run_until_complete(remote.resume(started.execution_id))
        settle(qloop)
        window.close()
        window.deleteLater()
        qloop.run_until_complete(remote.aclose())


def test_a_step_run_chosen_anywhere_selects_its_node_in_the_editor(window: MainWindow, workspace: Path,
                                                                    qloop):
    editor = window.open_file(workspace / "fanout.yaml")
    assert editor is not None
    service = window.backend.service
    users = [{"name": "ada", "email": "a@x", "orders": 7, "age": 36}]
    run = qloop.run_until_complete(service.run("score-users", {"users": users}))
    window.open_execution(run.execution_id)
    until(qloop, lambda: window.timeline.model is not None and not window.timeline.loading)
    window.hub.select_step_run(run.execution_id, "fan-out/row", 0)  # as a timeline bar click does
    until(qloop, lambda: editor.graph.selected_steps() == ["fan-out/row"])
    until(qloop, lambda: window.inspector.run is not None and window.inspector.run.path == "fan-out/row")


def test_a_dead_letter_opens_its_failed_execution(window: MainWindow, qloop):
    failed = qloop.run_until_complete(window.backend.service.run("fetch-quote", {"sku": "ABC-1"}))
    window.dlq.refresh()
    until(qloop, lambda: window.dlq.model.rowCount() == 1)
    window.dlq.open_execution(failed.execution_id)
    until(qloop, lambda: window.timeline.execution_id == failed.execution_id and not window.timeline.loading)
    assert window.hub.execution_id == failed.execution_id
    assert any(lane.label == "quote" for lane in window.timeline.lanes())


def test_switching_profiles_moves_every_pane_to_the_server(qloop, server, workspace: Path, tmp_path: Path):
    from app.connections.connection_manager import ConnectionManager
    from app.connections.profiles import Profile, ProfileStore
    from app.connections.secrets import SecretStore

    url, key = server
    manager = ConnectionManager(ProfileStore(tmp_path / "profiles.json"),
                                SecretStore(tmp_path / "secrets.json", backend=None))
    window = MainWindow(Settings(tmp_path / "switch.ini"), workspace, connections=manager)
    try:
        window.show()
        local = Profile(name="Local", kind="embedded", store=f"sqlite:///{tmp_path / 'local.db'}")
        qloop.run_until_complete(manager.connect(local))
        until(qloop, lambda: window.backend is not None and window.backend.embedded)
        manager.save_profile(Profile(name="Team", kind="remote", url=url), api_key=key)
        remote_run = None

        async def switch() -> None:
            nonlocal remote_run
            service = await manager.connect(manager.store.get("Team"))
            remote_run = await service.run("create-order", {"sku": "AB-1", "qty": 2})

        qloop.run_until_complete(switch())
        until(qloop, lambda: window.backend is not None and not window.backend.embedded)
        assert window.connection_status is not None and "Team" in window.connection_status.text()
        window.executions.refresh()
        until(qloop, lambda: window.executions.model.rowCount() == 1)  # the server's run, not the local ones
        assert window.executions.model.execution(0).id == remote_run.execution_id
    finally:
        settle(qloop)
        window.close()
        window.deleteLater()
        qloop.run_until_complete(manager.close())
