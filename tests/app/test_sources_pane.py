"""The Sources pane against the real embedded service, with a pipeline file whose
``source.redis_streams`` connector reads a stream of its own on the machine's Redis.

Test events go through the source's intake with the source stopped (no Redis traffic): the
form checks the data against the schema before anything is sent, deliveries and counters
show up, and double-clicking a delivery opens its execution in the window's timeline (or
its dead-letter entry in the DLQ pane). With the source started, entries XADDed to the
stream move its counters and its lag plot gets samples.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QLineEdit, QWidget

from app.backend import Backend
from app.selection import SelectionHub
from app.settings import Settings
from app.shell.main_window import MainWindow
from app.sources.sources_model import DELIVERY_ROLE, ERROR, EXECUTION, NAME, STATE
from app.sources.sources_pane import SourcesPane
from app.sources.test_event_dialog import TestEventDialog as EventDialog  # (not Test*: pytest)
from engine.service.models import SourceDelivery
from engine.service.models import TestEvent as Sent  # (not named Test*: pytest would collect it)
from tests.app.support import LoopbackServer, free_port, settle, until

REDIS_URL = "redis://127.0.0.1:6379/0"

SOURCE_FILE = """\
schemas:
  order.created:
    type: object
    required: [id]
    properties:
      id: {{type: string}}
      qty: {{type: integer, minimum: 1}}
      rush: {{type: boolean}}
connectors:
  - name: orders
    type: source.redis_streams
    config: {{url: "{url}", stream: "{stream}", group: wfstudio, schema: order.created, batch: 5,
              block_ms: 200}}
pipelines:
  take_order:
    record: full
    trigger: {{type: event, config: {{connector: orders, type: order.created}}}}
    steps:
      - {{name: total, type: step.set, config: {{values: {{total: "{{{{ .data.qty * 10 }}}}"}}}}}}
"""


@pytest.fixture
def stream() -> Iterator[str]:
    """A stream of this test's own, deleted afterwards."""
    name = f"wfstudio-sources-pane-{uuid.uuid4().hex[:12]}"
    yield name
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.delete(name)
    finally:
        client.close()


@pytest.fixture
def source_file(qloop, service, workspace: Path, stream: str) -> Path:  # type: ignore[no-untyped-def]
    file = workspace / "sources.yaml"
    file.write_text(SOURCE_FILE.format(url=REDIS_URL, stream=stream))
    qloop.run_until_complete(service.load_file(file))
    return file


def make_pane(qtbot, service, loop) -> tuple[SourcesPane, SelectionHub]:  # type: ignore[no-untyped-def]
    hub = SelectionHub()
    pane = SourcesPane(hub)
    qtbot.addWidget(pane)
    pane.resize(1200, 600)
    pane.show()
    pane.set_service(service)
    until(loop, lambda: pane.loads > 0 and pane.model.rowCount() > 0)
    settle(loop)
    return pane, hub


def cell(pane: SourcesPane, column: int) -> str:
    return str(pane.model.index(pane.model.row_of("orders"), column).data())


def counter(pane: SourcesPane, field: str) -> float:
    """A counter of the listed source (-1: not listed, or a lag not reported yet)."""
    info = pane.model.by_name("orders")
    value = None if info is None else getattr(info, field)
    return -1 if value is None else float(value)


def open_dialog(pane: SourcesPane, loop) -> EventDialog:  # type: ignore[no-untyped-def]
    pane.test_button.click()
    until(loop, lambda: pane.dialog is not None and pane.dialog.isVisible())
    assert pane.dialog is not None
    return pane.dialog


def deliveries(service, loop) -> list[SourceDelivery]:  # type: ignore[no-untyped-def]
    return list(loop.run_until_complete(service.source_deliveries("orders")))


def test_the_table_shows_the_source_and_a_test_event_form_checks_before_sending(
        qtbot, qloop, service, source_file: Path) -> None:
    pane, hub = make_pane(qtbot, service, qloop)
    assert pane.selected_name() == "orders"  # the first source is selected from the start
    assert (cell(pane, NAME), cell(pane, STATE)) == ("orders", "stopped")
    assert pane.model.index(0, STATE).data(Qt.ItemDataRole.ToolTipRole).startswith("Not reading")
    assert "take_order" in pane.detail_title.text()
    assert pane.start_button.isEnabled() and not pane.stop_button.isEnabled()
    assert pane.test_button.isEnabled()

    dialog = open_dialog(pane, qloop)
    # the form is generated from the schema the file registers for the source
    assert dialog.form is not None and set(dialog.form.editors) == {"id", "qty", "rush"}
    assert isinstance(dialog.form.editors["rush"], QCheckBox)

    # bad JSON: a message naming the position, nothing sent
    dialog.tabs.setCurrentWidget(dialog.json_edit)
    dialog.json_edit.set_text('{"id": "A-1", "qty": }')
    dialog.send_button.click()
    assert "line 1" in dialog.message.text() and dialog.message.text().startswith("Not sent")
    # switching to the form refuses while the JSON does not parse
    dialog.tabs.setCurrentWidget(dialog.form)
    assert dialog.tabs.currentWidget() is dialog.json_edit
    # JSON that breaks the schema: each problem named, nothing sent
    dialog.json_edit.set_text('{"qty": 0}')
    dialog.send_button.click()
    text = dialog.message.text()
    assert "'id' is a required property" in text and "qty: 0 is less than the minimum of 1" in text
    # a form field that is not a number
    dialog.tabs.setCurrentWidget(dialog.form)
    qty = dialog.form.editors["qty"]
    assert isinstance(qty, QLineEdit) and qty.text() == "0"  # carried over from the JSON
    qty.setText("three")
    dialog.send_button.click()
    assert "qty: 'three' is not a whole number" in dialog.message.text()
    settle(qloop)
    assert dialog.sent_count == 0 and deliveries(service, qloop) == []
    assert counter(pane, "delivered") == 0

    # a valid event from the form: sent, its delivery shown, the pane's table follows
    id_field = dialog.form.editors["id"]
    assert isinstance(id_field, QLineEdit)
    id_field.setText("A-1")
    qty.setText("3")
    dialog.id_edit.setText("evt-form-1")
    dialog.send_button.click()
    until(qloop, lambda: dialog.delivery is not None)
    delivery = dialog.delivery
    assert delivery is not None
    assert (delivery.event_id, delivery.outcome, delivery.pipeline) == ("evt-form-1", "started", "take_order")
    assert delivery.execution_id and "started" in dialog.result_label.text()
    assert dialog.open_button.isVisible() and dialog.open_button.text() == "Open execution"
    until(qloop, lambda: counter(pane, "delivered") == 1 and counter(pane, "started") == 1)
    until(qloop, lambda: pane.deliveries.rowCount() == 1
          and pane.deliveries.items()[0].execution_status == "completed")
    row = pane.deliveries.items()[0]
    assert (row.event_id, row.type, row.execution_id) == ("evt-form-1", "order.created", delivery.execution_id)

    # the same id again is a duplicate: nothing new starts
    dialog.send_button.click()
    until(qloop, lambda: dialog.sent_count == 2)
    assert dialog.delivery is not None and dialog.delivery.outcome == "duplicate"
    until(qloop, lambda: counter(pane, "redelivered") == 1)
    assert counter(pane, "started") == 1

    # "Open execution" in the dialog selects the execution everywhere
    opened: list[str] = []
    pane.openExecution.connect(opened.append)
    dialog.open_button.click()
    assert opened == [delivery.execution_id] and hub.execution_id == delivery.execution_id
    dialog.close()
    settle(qloop)


def test_service_errors_are_shown_in_the_dialog_not_raised(qtbot, qloop, service, source_file: Path) -> None:
    pane, _ = make_pane(qtbot, service, qloop)
    dialog = open_dialog(pane, qloop)
    dialog.tabs.setCurrentWidget(dialog.json_edit)
    dialog.json_edit.set_text('{"id": "A-2"}')
    dialog.type_edit.setText("x" * 201)  # longer than the service takes: refused before sending
    dialog.send_button.click()
    assert "type" in dialog.message.text() and "200" in dialog.message.text()
    # the source goes away (its file is unloaded): the service's refusals are the messages
    dialog.type_edit.setText("")
    pane.hide()  # no refresh meanwhile: the pane still lists the source
    qloop.run_until_complete(service.unload_file(source_file))
    pane.set_running(True)
    until(qloop, lambda: not pane.busy)
    assert pane.message.text().startswith("Could not start orders: no source named 'orders'")
    assert pane.message.styleSheet()  # shown as an error
    pane.show()
    dialog.send_button.click()
    until(qloop, lambda: not dialog.sending)
    assert dialog.message.text().startswith("The service refused the event: no source named 'orders'")
    assert dialog.sent_count == 0
    # and the pane's table empties on its next read, saying what a source is
    until(qloop, lambda: pane.model.rowCount() == 0)
    assert "No sources" in pane.summary.text()
    assert not pane.test_button.isEnabled()
    dialog.close()
    settle(qloop)


@pytest.fixture
def window(qtbot, qloop, service, workspace: Path, tmp_path: Path, source_file: Path  # type: ignore[no-untyped-def]
           ) -> Iterator[MainWindow]:
    win = MainWindow(Settings(str(tmp_path / "settings.ini")), workspace)
    backend = Backend(service, "Embedded")
    qloop.run_until_complete(backend.refresh_info())
    win.set_backend(backend)
    win.resize(1400, 900)
    win.show()
    yield win
    settle(qloop)
    win.close()
    win.deleteLater()


def test_double_clicking_a_delivery_opens_its_execution_or_dead_letter(window: MainWindow, qtbot, qloop,
                                                                        service) -> None:
    assert any(a.objectName() == "actionShowSources" for a in window.actions())  # in the palette
    window.act_sources.trigger()
    pane = window.sources
    until(qloop, lambda: pane.isVisible() and pane.model.rowCount() == 1 and pane.selected_name() == "orders")
    started = qloop.run_until_complete(service.send_test_event("orders", Sent(data={"id": "B-1", "qty": 2})))
    lettered = qloop.run_until_complete(service.send_test_event("orders", Sent(data={"qty": 2})))
    assert started.outcome == "started" and lettered.outcome == "dead_lettered" and lettered.dlq_entry
    until(qloop, lambda: pane.deliveries.rowCount() == 2 and counter(pane, "dead_lettered") == 1)
    rows = {pane.deliveries.index(r, 0).data(DELIVERY_ROLE).event_id: r for r in range(2)}

    # the started one: the timeline shows its execution
    index = pane.deliveries.index(rows[started.event_id], EXECUTION)
    view = pane.deliveries_view
    rect = view.visualRect(index)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())  # a double-click's press
    qtbot.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    until(qloop, lambda: window.timeline.execution_id == started.execution_id)
    assert window.hub.execution_id == started.execution_id
    assert window.timeline.isVisible()

    # the dead-lettered one: the DLQ pane, its entry selected
    window.show_sources()
    until(qloop, lambda: pane.isVisible())
    index = pane.deliveries.index(rows[lettered.event_id], EXECUTION)
    assert str(index.data()).startswith("DLQ ")
    rect = view.visualRect(index)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())  # a double-click's press
    qtbot.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    until(qloop, lambda: window.dlq.selected_ids() == [lettered.dlq_entry])
    assert window.dlq.isVisible()
    assert window.dlq.shown_entry is not None and window.dlq.shown_entry.id == lettered.dlq_entry


def test_start_stop_and_entries_from_redis_move_the_counters_and_the_plot(
        qtbot, qloop, service, source_file: Path, stream: str) -> None:
    import redis

    pane, _ = make_pane(qtbot, service, qloop)
    assert pane.lag_plot is not None and pane.lag_plot.points == 0  # no lag is reported while stopped
    pane.start_button.click()
    until(qloop, lambda: cell(pane, STATE) in ("running", "lagging"))
    until(qloop, lambda: not pane.start_button.isEnabled() and pane.stop_button.isEnabled())
    assert "started" in pane.message.text()

    client = redis.Redis.from_url(REDIS_URL)
    try:
        for n in range(30):
            client.xadd(stream, {"type": "order.created", "data": f'{{"id": "R-{n}", "qty": {n + 1}}}',
                                 "id": f"redis-{n}"})
    finally:
        client.close()
    until(qloop, lambda: counter(pane, "acknowledged") == 30 and counter(pane, "started") == 30, timeout=60)
    until(qloop, lambda: counter(pane, "in_flight") == 0 and counter(pane, "lag") == 0, timeout=60)
    assert cell(pane, 4) == "30"  # Delivered
    # the plot follows the lag the source reports, sample by sample
    until(qloop, lambda: pane.lag_plot is not None and pane.lag_plot.points >= 2)
    assert "Lag" in pane.lag_plot.caption.text()
    until(qloop, lambda: pane.deliveries.rowCount() == 30)
    assert {d.event_id for d in pane.deliveries.items()} == {f"redis-{n}" for n in range(30)}

    pane.stop_button.click()
    until(qloop, lambda: cell(pane, STATE) == "stopped" and pane.start_button.isEnabled())
    assert not pane.stop_button.isEnabled()
    settle(qloop)


def test_hidden_the_pane_reads_nothing(qtbot, qloop, service, source_file: Path) -> None:
    pane, _ = make_pane(qtbot, service, qloop)
    until(qloop, lambda: pane.loads >= 2)  # the timer reads while visible
    pane.hide()
    settle(qloop)
    loads = pane.loads
    assert not pane._timer.isActive()
    holder = QWidget()
    qtbot.addWidget(holder)
    pane.show()  # shown again: read at once
    until(qloop, lambda: pane.loads > loads)


@pytest.fixture
def server(tmp_path: Path, workspace: Path, stream: str) -> Iterator[tuple[str, str]]:
    """The real hosted server on loopback serving the source file, and an admin key."""
    from engine.server import KeyStore
    from engine.store.store import Store

    file = workspace / "sources.yaml"
    file.write_text(SOURCE_FILE.format(url=REDIS_URL, stream=stream))
    store_url = f"sqlite:///{tmp_path / 'server.db'}"
    with Store.open(store_url) as store:
        _, secret = KeyStore(store).create("studio", scopes=["admin"])
    live = LoopbackServer(free_port(), store_url, [file]).start()
    try:
        yield live.url, secret
    finally:
        live.stop()


def test_the_pane_works_against_a_remote_server(qtbot, qloop, server: tuple[str, str]) -> None:
    from engine.client import RemoteService

    url, key = server
    remote = RemoteService(url, key)
    try:
        pane, _ = make_pane(qtbot, remote, qloop)
        assert (cell(pane, NAME), cell(pane, STATE)) == ("orders", "stopped")
        dialog = open_dialog(pane, qloop)
        assert dialog.form is not None  # the schema came from the server's registry
        dialog.tabs.setCurrentWidget(dialog.json_edit)
        dialog.json_edit.set_text('{"id": "C-1", "qty": 4}')
        dialog.send_button.click()
        until(qloop, lambda: dialog.delivery is not None)
        assert dialog.delivery is not None and dialog.delivery.outcome == "started"
        until(qloop, lambda: [d.event_id for d in pane.deliveries.items()] == [dialog.delivery.event_id])
        dialog.close()
        pane.start_button.click()
        until(qloop, lambda: cell(pane, STATE) in ("running", "lagging") and pane.stop_button.isEnabled())
        pane.stop_button.click()
        until(qloop, lambda: cell(pane, STATE) == "stopped" and pane.start_button.isEnabled())
        settle(qloop)
    finally:
        qloop.run_until_complete(remote.aclose())


UNREACHABLE_FILE = """\
connectors:
  - name: feed
    type: source.redis_streams
    config: {url: "redis://127.0.0.1:1/0", stream: nowhere, block_ms: 200}
pipelines:
  take_feed:
    trigger: {type: event, config: {connector: feed}}
    steps:
      - {name: keep, type: step.set, config: {values: {kept: true}}}
"""


def test_a_failing_source_shows_its_badge_and_its_whole_error(qtbot, qloop, service, workspace: Path) -> None:
    file = workspace / "feed.yaml"
    file.write_text(UNREACHABLE_FILE)  # nothing listens on port 1: the transport fails
    qloop.run_until_complete(service.load_file(file))
    pane, _ = make_pane(qtbot, service, qloop)
    pane.select("feed")
    pane.start_button.click()
    row = lambda: pane.model.row_of("feed")  # noqa: E731
    until(qloop, lambda: pane.model.index(row(), STATE).data() == "failing")
    error = pane.model.index(row(), ERROR).data(Qt.ItemDataRole.ToolTipRole)
    assert "unreachable" in error and "127.0.0.1:1" in error
    until(qloop, lambda: pane.detail_error.isVisible() and "unreachable" in pane.detail_error.text())
    assert "failing" in pane.summary.text()
    pane.stop_button.click()
    until(qloop, lambda: pane.model.index(row(), STATE).data() == "stopped")
    settle(qloop)
