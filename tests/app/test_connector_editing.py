"""Editing a file's ``connectors:`` in the studio: the list under the graph, the connector form
in the Properties dock (from the type's config schema), add and delete, undo, text edits
followed by the form, an unknown type, and emit steps offered the file's sinks.

Real widgets offscreen, the real LocalService (its ``connector_types()`` and validator), real
files in a copy of the example workspace.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QStandardItemModel
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QComboBox, QLabel, QLineEdit, QPlainTextEdit, QWidget

from app.backend import Backend
from app.editor.connector_panel import ConnectorPanel
from app.editor.connectors_list import ConnectorsList
from app.editor.document import PipelineDocument
from app.editor.outline import type_shapes
from app.editor.pipeline_editor import PipelineEditor
from app.editor.properties import PropertyPanel
from app.settings import Settings
from app.shell.main_window import MainWindow
from engine.service.models import ConnectorTypeInfo
from tests.app.support import settle, until

SHOP = """\
name: shop
connectors:
  - name: orders
    type: source.redis_streams
    description: Orders from the shop
    config:
      url: "redis://127.0.0.1:6379/0"
      stream: orders
      group: wfstudio
  - name: notify
    type: sink.webhook
    config:
      url: https://example.com/hooks/orders
      secret: "${HOOK_SECRET:-dev-only}"
pipelines:
  handle:
    trigger: {type: event, config: {connector: orders, type: order.created}}
    steps:
      - name: tell
        type: step.emit
        config: {connector: notify, type: order.seen}
"""

PLAIN = """\
name: plain
pipelines:
  hello:
    steps:
      - {name: greet, type: step.set, config: {values: {hello: world}}}
"""


@pytest.fixture
def connector_infos(qloop, service) -> list[ConnectorTypeInfo]:
    return qloop.run_until_complete(service.connector_types())


@pytest.fixture
def shop(workspace: Path) -> Path:
    path = workspace / "shop.yaml"
    path.write_text(SHOP, encoding="utf-8")
    return path


@pytest.fixture
def document(shop: Path, type_infos) -> PipelineDocument:
    return PipelineDocument.load(shop, type_shapes(type_infos))


@pytest.fixture
def panel(qtbot, connector_infos) -> ConnectorPanel:
    widget = ConnectorPanel()
    qtbot.addWidget(widget)
    widget.set_connector_types(connector_infos)
    widget.resize(460, 900)
    widget.show()
    qtbot.waitExposed(widget)
    widget.activateWindow()
    return widget


@pytest.fixture
def window(qtbot, qloop, service, workspace: Path, shop: Path, tmp_path: Path) -> Iterator[MainWindow]:
    win = MainWindow(Settings(tmp_path / "settings.ini"), workspace)
    backend = Backend(service, "Embedded")
    qloop.run_until_complete(backend.refresh_info())
    win.set_backend(backend)
    qloop.run_until_complete(backend.load_workspace(workspace))
    win.resize(1400, 900)
    win.show()
    yield win
    settle(qloop)
    for editor in win.editors():
        editor.document.undo_stack.setClean()
    win.close()
    win.deleteLater()


def field(owner: QWidget, path: str) -> QWidget:
    found = owner.findChild(QWidget, f"field:{path}")
    assert found is not None, f"no field {path}"
    return found


def commit_line(qtbot, edit: QLineEdit, text: str) -> None:
    edit.setFocus()
    edit.selectAll()
    qtbot.keyClicks(edit, text)
    QTest.keyClick(edit, Qt.Key.Key_Return)


def click_row(qtbot, connectors: ConnectorsList, name: str) -> None:
    tree = connectors.tree
    item = next(tree.topLevelItem(i) for i in range(tree.topLevelItemCount())
                if tree.topLevelItem(i).text(0) == name)
    rect = tree.visualItemRect(item)
    qtbot.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center() + QPoint(2, 0))


# -- the list and the form, in the window --------------------------------------------------


def test_the_list_shows_the_files_connectors_and_a_click_shows_the_schema_form(window, shop, qtbot, qloop):
    editor = window.open_file(shop)
    assert isinstance(editor, PipelineEditor)
    connectors = editor.connectors
    assert connectors.names() == ["orders", "notify"]
    rows = [[connectors.tree.topLevelItem(i).text(c) for c in range(3)] for i in range(2)]
    assert rows == [["orders", "source", "source.redis_streams"], ["notify", "sink", "sink.webhook"]]
    assert "Connectors" in connectors.title.text() and "(2)" in connectors.title.text()

    click_row(qtbot, connectors, "orders")
    panel = window.connector_panel
    until(qloop, lambda: window.property_stack.currentWidget() is panel)
    assert panel.findChild(QLineEdit, "connectorName").text() == "orders"
    assert panel.findChild(QComboBox, "connectorType").currentData() == "source.redis_streams"
    assert panel.findChild(QLabel, "connectorKind").text().startswith("source")
    assert "Redis" in panel.findChild(QLabel, "connectorTypeNote").text()  # the type's description
    # the config form has the schema's keys, the required ones starred, the file's values in it
    for key in ("url", "stream", "group", "consumer", "batch", "block_ms", "max_in_flight"):
        field(panel, f"config.{key}")
    assert "*" in panel.findChild(QLabel, "label:config.stream").text()
    assert field(panel, "config.stream").text() == "orders"
    assert field(panel, "description").text() == "Orders from the shop"
    # the text cursor went to the connector, like a step selected in the graph
    assert editor.yaml.current_line() == 3

    click_row(qtbot, connectors, "notify")
    until(qloop, lambda: panel.current() == "notify")
    secret = field(panel, "config.secret")
    assert isinstance(secret, QLineEdit)
    assert secret.echoMode() == QLineEdit.EchoMode.PasswordEchoOnEdit  # a secret key: masked
    assert secret.text() == "${HOOK_SECRET:-dev-only}"
    assert field(panel, "config.url").echoMode() == QLineEdit.EchoMode.Normal
    assert "secret" in panel.findChild(QLabel, "connectorConfigNote").text()

    # selecting a step brings the step's form back
    editor.select_step("handle", "tell")
    until(qloop, lambda: window.property_stack.currentWidget() is window.properties)
    assert connectors.selected() == ""


def test_the_text_cursor_on_a_connector_selects_it(window, shop, qloop):
    editor = window.open_file(shop)
    assert editor is not None
    editor.go_to(10, 5)  # the first line of `notify`, where the end mark of `orders` sits too
    until(qloop, lambda: window.connector_panel.current() == "notify")
    assert [c.end_line for c in editor.document.outline.connectors] == [9, 14]
    assert editor.connectors.selected() == "notify"
    assert window.property_stack.currentWidget() is window.connector_panel


def test_an_unknown_type_says_so_and_the_validator_error_is_listed(window, workspace, qloop, qtbot):
    path = workspace / "odd.yaml"
    path.write_text(SHOP.replace("type: source.redis_streams", "type: source.redis_streamz"), encoding="utf-8")
    editor = window.open_file(path)
    assert editor is not None
    assert [editor.connectors.tree.topLevelItem(0).text(c) for c in range(3)] == \
        ["orders", "unknown", "source.redis_streamz"]
    click_row(qtbot, editor.connectors, "orders")
    panel = window.connector_panel
    until(qloop, lambda: panel.current() == "orders")
    note = panel.findChild(QLabel, "connectorTypeNote").text()
    assert "Unknown connector type 'source.redis_streamz'" in note and "edited as YAML" in note
    assert panel.findChild(QComboBox, "connectorType").currentText() == "source.redis_streamz (unknown)"
    raw = field(panel, "config")  # no schema: the whole config as YAML, still editable
    assert isinstance(raw, QPlainTextEdit) and "stream: orders" in raw.toPlainText()
    until(qloop, lambda: any("unknown connector type 'source.redis_streamz'" in p.message
                             for p in window.problems.visible_problems()))
    until(qloop, lambda: any("unknown connector type" in text for text in panel.problems()))
    problem = next(p for p in window.problems.visible_problems() if "redis_streamz" in p.message)
    assert problem.line == 4  # at the connector's type
    click_row(qtbot, editor.connectors, "notify")
    until(qloop, lambda: panel.current() == "notify")
    assert panel.problems() == []  # each connector lists its own problems only


# -- edits through the document -----------------------------------------------------------


def test_editing_a_config_value_changes_the_yaml_and_undo_restores_it(panel, document, qtbot):
    original = document.text
    panel.show_connector(document, "orders")
    commit_line(qtbot, field(panel, "config.stream"), "orders-v2")
    assert document.value_at(("connectors", 0, "config", "stream")) == "orders-v2"
    assert document.text == original.replace("stream: orders\n", "stream: orders-v2\n")
    commit_line(qtbot, field(panel, "config.batch"), "50")  # an integer key takes a number
    assert document.value_at(("connectors", 0, "config", "batch")) == 50
    assert document.undo_stack.count() == 2  # one command per committed field
    document.undo_stack.undo()
    document.undo_stack.undo()
    assert document.text == original
    qtbot.waitUntil(lambda: field(panel, "config.stream").text() == "orders")


def test_a_wrong_value_is_refused_in_the_field_and_nothing_is_written(panel, document, qtbot):
    original = document.text
    panel.show_connector(document, "orders")
    commit_line(qtbot, field(panel, "config.batch"), "lots")
    assert "expected a whole number" in panel.findChild(QLabel, "error:config.batch").text()
    assert document.text == original


def test_renaming_a_connector_renames_the_trigger_and_emit_references_in_one_command(panel, document, qtbot):
    panel.show_connector(document, "notify")
    commit_line(qtbot, panel.findChild(QLineEdit, "connectorName"), "alerts")
    assert document.value_at(("connectors", 1, "name")) == "alerts"
    assert document.text == SHOP.replace("name: notify", "name: alerts").replace("connector: notify",
                                                                                  "connector: alerts")
    assert panel.current() == "alerts"
    panel.show_connector(document, "orders")
    commit_line(qtbot, panel.findChild(QLineEdit, "connectorName"), "shop-orders")
    assert document.value_at(("pipelines", "handle", "trigger", "config", "connector")) == "shop-orders"
    assert document.undo_stack.count() == 2
    commit_line(qtbot, panel.findChild(QLineEdit, "connectorName"), "alerts")  # taken: refused
    assert "already named 'alerts'" in panel.findChild(QLabel, "connectorNameError").text()
    assert document.undo_stack.count() == 2
    document.undo_stack.undo()
    assert document.value_at(("pipelines", "handle", "trigger", "config", "connector")) == "orders"


def test_the_type_combo_groups_sources_and_sinks_and_changes_the_type(panel, document, qtbot):
    panel.show_connector(document, "notify")
    combo = panel.findChild(QComboBox, "connectorType")
    texts = [combo.itemText(i) for i in range(combo.count())]
    assert texts.index("Sources") < texts.index("  source.webhook") < texts.index("Sinks") \
        < texts.index("  sink.webhook")
    model = combo.model()
    assert isinstance(model, QStandardItemModel) and not model.item(texts.index("Sinks")).isEnabled()
    combo.activated.emit(combo.findData("sink.redis_streams"))
    assert document.value_at(("connectors", 1, "type")) == "sink.redis_streams"
    # the form follows the new schema; keys that type does not know are marked, not lost
    qtbot.waitUntil(lambda: panel.findChild(QWidget, "field:config.maxlen") is not None)
    assert "(unknown)" in panel.findChild(QLabel, "label:config.secret").text()
    document.undo_stack.undo()
    assert document.value_at(("connectors", 1, "type")) == "sink.webhook"


def test_a_text_edit_updates_the_form(panel, document, qtbot):
    panel.show_connector(document, "orders")
    at = document.text.index("stream: orders") + len("stream: orders")
    document.replace(at, 0, "-typed", typing=True)
    qtbot.waitUntil(lambda: field(panel, "config.stream").text() == "orders-typed")
    # a key added in the text shows up; renaming in the text is followed
    at = document.text.index("    config:\n      url")
    document.replace(at, 0, "    description: x\n")
    at = document.text.index("name: orders") + len("name: orders")
    document.replace(at, 0, "-v2")
    qtbot.waitUntil(lambda: panel.current() == "orders-v2")
    assert panel.findChild(QLineEdit, "connectorName").text() == "orders-v2"
    # a broken text leaves the last good form, disabled, with the reason
    document.replace(0, 0, "[oops\n")
    banner = panel.findChild(QLabel, "connectorBanner")
    qtbot.waitUntil(lambda: banner.isVisible() and "does not parse" in banner.text())
    assert field(panel, "config.stream").text() == "orders-typed"


def test_adding_from_the_type_menu_and_deleting(qtbot, document, connector_infos):
    connectors = ConnectorsList(document)
    qtbot.addWidget(connectors)
    connectors.set_connector_types(connector_infos)
    picked: list[str] = []
    connectors.connectorSelected.connect(picked.append)
    titles = [a.text() for a in connectors.add_menu.actions()]
    assert titles.index("Sources") < titles.index("source.sqs") < titles.index("Sinks") < titles.index("sink.sqs")
    action = next(a for a in connectors.add_menu.actions() if a.text() == "sink.redis_streams")
    action.trigger()
    example = next(i.example for i in connector_infos if i.name == "sink.redis_streams")
    assert document.value_at(("connectors", 2)) == {"name": "redis-streams", "type": "sink.redis_streams",
                                                    "config": example}
    assert connectors.names() == ["orders", "notify", "redis-streams"]
    assert connectors.selected() == "redis-streams" and picked == ["redis-streams"]
    assert document.undo_stack.undoText() == "Add connector redis-streams"
    connectors.add_connector("sink.redis_streams")  # again: a unique name
    assert connectors.names()[-1] == "redis-streams-2"

    connectors.select("notify")
    connectors.delete_selected()
    assert connectors.names() == ["orders", "redis-streams", "redis-streams-2"]
    assert document.undo_stack.undoText() == "Delete connector notify"
    assert picked[-1] == ""
    document.undo_stack.undo()
    assert connectors.names() == ["orders", "notify", "redis-streams", "redis-streams-2"]


def test_the_first_connector_goes_before_pipelines_and_the_file_validates(qtbot, qloop, service, workspace,
                                                                           type_infos, connector_infos):
    path = workspace / "plain.yaml"
    path.write_text(PLAIN, encoding="utf-8")
    document = PipelineDocument.load(path, type_shapes(type_infos))
    connectors = ConnectorsList(document)
    qtbot.addWidget(connectors)
    connectors.set_connector_types(connector_infos)
    assert connectors.names() == [] and connectors.empty.isVisibleTo(connectors)
    assert connectors.add_connector("sink.redis_streams") == "redis-streams"
    text = document.text
    assert text.index("connectors:\n") < text.index("pipelines:\n")
    assert "  - name: redis-streams\n    type: sink.redis_streams\n" in text
    diagnostics = qloop.run_until_complete(service.validate(text, str(path)))
    assert [d for d in diagnostics if d.severity == "error"] == []
    connectors.select("redis-streams")
    connectors.delete_selected()  # the last one: the key goes too
    assert document.text == PLAIN
    document.undo_stack.undo()
    document.undo_stack.undo()
    assert document.text == PLAIN


def test_an_emit_step_offers_the_files_sinks_for_its_connector(qtbot, document, type_infos, connector_infos):
    steps = PropertyPanel()
    qtbot.addWidget(steps)
    steps.set_type_infos(type_infos)
    steps.set_connector_types(connector_infos)
    steps.show_step(document, "handle", "tell")
    combo = field(steps, "config.connector")
    assert isinstance(combo, QComboBox)
    assert [combo.itemText(i) for i in range(combo.count())] == ["notify"]  # sinks only
    assert combo.currentText() == "notify"
    # a sink added to the file is offered at once
    connectors = ConnectorsList(document)
    qtbot.addWidget(connectors)
    connectors.set_connector_types(connector_infos)
    connectors.add_connector("sink.rabbitmq")
    qtbot.waitUntil(lambda: [combo.itemText(i) for i in range(combo.count())] == ["notify", "rabbitmq"])
    combo.setFocus()
    combo.setCurrentIndex(1)
    combo.activated.emit(1)
    assert document.value_at(("pipelines", "handle", "steps", 0, "config", "connector")) == "rabbitmq"


def test_the_list_is_one_line_until_the_file_has_connectors(qtbot, workspace, type_infos, connector_infos):
    path = workspace / "plain.yaml"
    path.write_text(PLAIN, encoding="utf-8")
    editor = PipelineEditor(PipelineDocument.load(path, type_shapes(type_infos)), type_infos)
    qtbot.addWidget(editor)
    editor.set_connector_types(connector_infos)
    editor.resize(1000, 700)
    editor.show()
    qtbot.waitExposed(editor)
    connectors = editor.connectors
    assert connectors.height() <= connectors.add_button.sizeHint().height() + 8  # the graph keeps the room
    connectors.add_connector("source.schedule")
    connectors.add_connector("sink.webhook")
    qtbot.waitUntil(lambda: editor.graph_column.sizes()[1] >= connectors.preferred_height())
    assert connectors.tree.isVisible() and connectors.names() == ["schedule", "webhook"]
    editor.document.undo_stack.undo()
    editor.document.undo_stack.undo()
    qtbot.waitUntil(lambda: connectors.height() <= connectors.add_button.sizeHint().height() + 8)
