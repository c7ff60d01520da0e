"""The property panel: widgets generated from step schemas, edits through the document, undo."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QLineEdit, QListWidget, QTableWidget, QWidget

from app.editor.document import PipelineDocument
from app.editor.form_fields import CommitTextEdit
from app.editor.jq_field import JqField, check_text
from app.editor.outline import type_shapes
from app.editor.properties import PropertyPanel
from engine.service.models import DiagnosticInfo

EXTRA = """\
name: extra
modules:
  - {name: api, type: http.client, config: {base_url: "http://127.0.0.1:9"}}
pipelines:
  calls:
    steps:
      - name: start
        type: step.set
        config: {values: {user_id: 7}}
      - name: call
        type: step.http_call
        # the call itself
        config:
          url: "https://example.com/users/{{ .user_id }}"
          method: GET
          headers: {X-Trace: abc}
          client: api
          timeout: "5"
      - name: parse
        type: step.request_parse
        config: {headers: [x-a, x-b]}
      - name: wrong
        type: step.http_call
        config: {url: [not, a, string]}
      - name: odd
        type: step.not_installed
        config: {a: 1}
"""


@pytest.fixture
def shapes(type_infos):
    return type_shapes(type_infos)


@pytest.fixture
def panel(qtbot, type_infos) -> PropertyPanel:
    widget = PropertyPanel()
    qtbot.addWidget(widget)
    widget.set_type_infos(type_infos)
    widget.resize(460, 900)
    widget.show()
    qtbot.waitExposed(widget)
    widget.activateWindow()
    return widget


def open_doc(workspace: Path, name: str, shapes) -> PipelineDocument:
    return PipelineDocument.load(workspace / name, shapes)


def extra_doc(tmp_path: Path, shapes) -> PipelineDocument:
    path = tmp_path / "extra.yaml"
    path.write_text(EXTRA)
    return PipelineDocument.load(path, shapes)


def at(doc: PipelineDocument, pipeline: str, step: str, *keys: str | int) -> tuple[str | int, ...]:
    """The YAML path of a step's key, from the outline (files change; indexes are not hard-coded)."""
    doc.flush_outline()
    return (*doc.last_good.pipelines[pipeline].nodes[step].path, *keys)


def widget(panel: PropertyPanel, path: str) -> QWidget:
    found = panel.findChild(QWidget, f"field:{path}")
    assert found is not None, f"no field {path}"
    return found


def error_of(panel: PropertyPanel, path: str) -> str:
    label = panel.findChild(QLabel, f"error:{path}")
    return label.text() if label is not None and label.isVisibleTo(panel) else ""


def commit_line(qtbot, edit: QLineEdit, text: str) -> None:
    edit.setFocus()
    edit.selectAll()
    qtbot.keyClicks(edit, text)
    QTest.keyClick(edit, Qt.Key.Key_Return)


def test_step_set_values_table_edits_one_value_and_undo_restores(qtbot, panel, workspace, shapes):
    doc = open_doc(workspace, "orders.yaml", shapes)
    original = doc.text
    panel.show_step(doc, "create-order", "price")
    assert panel.findChild(QLineEdit, "stepName").text() == "price"
    assert "step.set" in panel.findChild(QLabel, "stepType").text()
    assert "*" in panel.findChild(QLabel, "label:config.values").text()  # values is required
    table = panel.findChild(QTableWidget, "table:config.values")
    rows = {table.item(r, 0).text(): table.item(r, 1).text() for r in range(table.rowCount())}
    assert rows["unit_price"] == "19.5"
    assert rows["total"].startswith("{{ .qty * 19.5")

    table.item(0, 1).setText("21")  # unit_price
    assert doc.value_at(at(doc, "create-order", "price", "config", "values", "unit_price")) == 21
    assert "unit_price: 21\n" in doc.text
    assert doc.text.replace("unit_price: 21\n", "unit_price: 19.5\n") == original  # nothing else moved
    assert doc.undo_stack.count() == 1
    doc.undo_stack.undo()
    assert doc.text == original
    qtbot.waitUntil(lambda: table.item(0, 1).text() == "19.5")

    table.item(0, 0).setText("price_each")  # renaming a key keeps its place: one command
    assert doc.undo_stack.count() == 1
    values = doc.value_at(at(doc, "create-order", "price", "config", "values"))
    assert list(values) == ["price_each", "discount", "total"]
    doc.undo_stack.undo()
    assert doc.text == original


def test_http_call_fields_and_enum_combo(qtbot, panel, tmp_path, shapes):
    doc = extra_doc(tmp_path, shapes)
    original = doc.text
    panel.show_step(doc, "calls", "call")
    url = widget(panel, "config.url")
    assert isinstance(url, JqField)
    assert url.text() == "https://example.com/users/{{ .user_id }}"
    assert "*" in panel.findChild(QLabel, "label:config.url").text()
    assert isinstance(widget(panel, "config.error_on_status"), QCheckBox)
    assert panel.findChild(QTableWidget, "table:config.headers").item(0, 0).text() == "X-Trace"
    client = widget(panel, "config.client")
    assert isinstance(client, QComboBox) and client.currentText() == "api"
    assert [client.itemText(i) for i in range(client.count())] == ["api"]  # modules of the file
    timeout = widget(panel, "config.timeout")
    assert isinstance(timeout, JqField) and "(default)" not in timeout.placeholderText()

    method = widget(panel, "config.method")
    assert isinstance(method, QComboBox)
    options = [method.itemText(i) for i in range(method.count())]
    assert options == ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    assert method.currentText() == "GET"
    method.activated.emit(options.index("PUT"))  # what a user's pick emits
    method.setCurrentIndex(options.index("PUT"))
    assert "method: PUT\n" in doc.text
    assert "        # the call itself\n" in doc.text  # comments survive the edit
    doc.undo_stack.undo()
    assert doc.text == original
    assert widget(panel, "config.method").currentText() == "GET"

    box = widget(panel, "config.error_on_status")
    assert box.isChecked() and "default" in box.text()  # unset: shows the schema default
    box.click()
    assert doc.value_at(at(doc, "calls", "call", "config", "error_on_status")) is False
    doc.undo_stack.undo()
    assert doc.text == original


def test_typed_field_takes_numbers_and_templates_but_not_words(qtbot, panel, workspace, shapes):
    doc = open_doc(workspace, "orders.yaml", shapes)
    original = doc.text
    panel.show_step(doc, "create-order", "store")
    attempts = widget(panel, "retry.max_attempts")  # nested group of the step-level retry
    assert isinstance(attempts, JqField) and attempts.text() == "3"
    assert panel.findChild(QWidget, "field:retry").isVisibleTo(panel)

    commit_line(qtbot, attempts, "5")
    assert doc.value_at(at(doc, "create-order", "store", "retry", "max_attempts")) == 5
    assert "retry: {max_attempts: 5, initial_delay: 100ms}" in doc.text

    commit_line(qtbot, attempts, "lots")
    assert "whole number" in error_of(panel, "retry.max_attempts")
    assert attempts.text() == "lots"  # the text stays for the user to fix
    assert doc.value_at(at(doc, "create-order", "store", "retry", "max_attempts")) == 5

    commit_line(qtbot, attempts, "{{ .tries }}")
    assert error_of(panel, "retry.max_attempts") == ""
    assert doc.value_at(at(doc, "create-order", "store", "retry", "max_attempts")) == "{{ .tries }}"

    attempts.setFocus()
    attempts.clear()
    QTest.keyClick(attempts, Qt.Key.Key_Return)  # cleared: the key goes, the default applies
    assert "max_attempts" not in doc.value_at(at(doc, "create-order", "store", "retry"))
    while doc.undo_stack.canUndo():
        doc.undo_stack.undo()
    assert doc.text == original


def test_validate_schema_in_raw_yaml_applies_and_rejects_bad_yaml(qtbot, panel, workspace, shapes):
    doc = open_doc(workspace, "orders.yaml", shapes)
    original = doc.text
    panel.show_step(doc, "create-order", "check")
    strategy = widget(panel, "config.strategy")
    assert isinstance(strategy, QComboBox) and strategy.currentText() == "json_schema"
    assert isinstance(panel.findChild(QListWidget, "list:config.required_fields"), QListWidget)
    raw = widget(panel, "config.schema")
    assert isinstance(raw, CommitTextEdit)
    assert raw.toPlainText().startswith("type: object\nrequired:\n  - sku\n  - qty\nproperties:")

    raw.setFocus()
    raw.setPlainText("type: object\nrequired: [sku\n")
    QTest.keyClick(raw, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert "YAML error" in error_of(panel, "config.schema")
    assert doc.text == original  # nothing applied
    assert raw.toPlainText() == "type: object\nrequired: [sku\n"  # and nothing lost

    raw.setPlainText("type: object\nrequired: [sku]\n")
    QTest.keyClick(raw, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert error_of(panel, "config.schema") == ""
    schema_path = at(doc, "create-order", "check", "config", "schema")
    assert doc.value_at(schema_path) == {"type": "object", "required": ["sku"]}
    assert doc.undo_stack.count() == 1
    doc.undo_stack.undo()
    assert doc.text == original


def test_scalar_list_edits_commit_the_whole_list(qtbot, panel, tmp_path, shapes):
    doc = extra_doc(tmp_path, shapes)
    original = doc.text
    panel.show_step(doc, "calls", "parse")
    headers = panel.findChild(QListWidget, "list:config.headers")
    assert [headers.item(i).text() for i in range(headers.count())] == ["x-a", "x-b"]
    headers.item(1).setText("x-c")
    assert doc.value_at(at(doc, "calls", "parse", "config", "headers")) == ["x-a", "x-c"]
    doc.undo_stack.undo()
    assert doc.text == original


def test_conditional_shows_jq_fields_step_choices_and_a_route_table(qtbot, panel, workspace, shapes):
    doc = open_doc(workspace, "routing.yaml", shapes)
    panel.show_step(doc, "triage", "route")
    field = widget(panel, "config.field")
    assert isinstance(field, JqField) and field.text() == "{{ .priority }}"
    default = widget(panel, "config.default")
    assert isinstance(default, QComboBox) and default.isEditable()
    assert default.currentText() == "auto-reply"
    choices = {default.itemText(i) for i in range(default.count())}
    assert {"page-on-call", "queue", "reply", "classify"} <= choices
    routes = panel.findChild(QTableWidget, "table:config.routes")
    assert {routes.item(r, 0).text(): routes.item(r, 1).text() for r in range(routes.rowCount())} == {
        "urgent": "page-on-call", "normal": "queue"}
    assert widget(panel, "config.if").mode == "program"  # a program key of step.conditional
    assert widget(panel, "if").mode == "program"  # the step-level condition

    default.setFocus()
    default.lineEdit().selectAll()
    qtbot.keyClicks(default.lineEdit(), "nowhere")
    QTest.keyClick(default.lineEdit(), Qt.Key.Key_Return)
    assert doc.value_at(at(doc, "triage", "route", "config", "default")) == "nowhere"
    assert "no step named 'nowhere'" in error_of(panel, "config.default")


def test_bad_jq_shows_the_error_without_blocking_typing(qtbot, panel, tmp_path, shapes):
    doc = extra_doc(tmp_path, shapes)
    panel.show_step(doc, "calls", "call")
    url = widget(panel, "config.url")
    url.setFocus()
    url.end(False)
    qtbot.keyClicks(url, "/{{ .a | }}")
    assert url.text() == "https://example.com/users/{{ .user_id }}/{{ .a | }}"
    assert "syntax error" in url.error()
    assert "syntax error" in error_of(panel, "config.url")
    assert url.property("error") is True
    qtbot.keyClicks(url, "x")  # still typing
    assert url.text().endswith("}}x")
    url.backspace()
    url.setText(url.text().replace("{{ .a | }}", "{{ .a | length }}"))
    assert url.error() == "" and error_of(panel, "config.url") == ""

    assert check_text("{{ .steps.get-user.row }}") is None  # a hyphenated path is a lookup
    assert check_text("{{ .name | upper }}") is None  # prelude helpers compile
    assert "never closed" in check_text("{{ .qty")
    assert check_text(".qty >", "program") is not None
    assert check_text(".qty > 1", "program") is None


def test_completion_offers_steps_and_context_keys(qtbot, panel, workspace, shapes):
    doc = open_doc(workspace, "orders.yaml", shapes)
    panel.show_step(doc, "create-order", "respond")
    body_if = widget(panel, "if")
    keys = set(body_if.completions())
    assert {".steps.check", ".steps.price", ".steps.store", ".steps.price.total"} <= keys
    assert {".trigger", ".meta", ".env", ".qty", ".sku", ".total", ".discount"} <= keys  # seen + set

    body_if.setFocus()
    qtbot.keyClicks(body_if, "{{ .steps.pr")
    qtbot.waitUntil(body_if.completer_popup_visible)
    popup = body_if._completer.popup()
    QTest.keyClick(popup, Qt.Key.Key_Return)
    assert body_if.text() == "{{ .steps.price"
    qtbot.keyClicks(body_if, ".total > 1 }}")
    QTest.keyClick(body_if, Qt.Key.Key_Return)
    assert doc.value_at(at(doc, "create-order", "respond", "if")) == "{{ .steps.price.total > 1 }}"


def test_refresh_keeps_the_caret_and_follows_outside_edits(qtbot, panel, tmp_path, shapes):
    doc = extra_doc(tmp_path, shapes)
    panel.show_step(doc, "calls", "call")
    url = widget(panel, "config.url")
    url.setFocus()
    url.setCursorPosition(8)
    QTest.keyClick(url, Qt.Key.Key_Return)  # unchanged: no command
    timeout = widget(panel, "config.timeout")
    timeout.setFocus()
    QTest.keyClick(timeout, Qt.Key.Key_Return)  # a quoted "5" is not rewritten as 5 by leaving it
    url.setFocus()
    assert doc.undo_stack.count() == 0
    qtbot.keyClicks(url, "www.")
    QTest.keyClick(url, Qt.Key.Key_Return)
    assert doc.value_at(at(doc, "calls", "call", "config", "url")).startswith("https://www.example")
    assert widget(panel, "config.url") is url and url.hasFocus()
    assert url.cursorPosition() == 12

    doc.set_value(at(doc, "calls", "call", "config", "client"), "other")  # e.g. from the YAML view
    doc.flush_outline()
    assert widget(panel, "config.client").currentText() == "other"
    assert url.cursorPosition() == 12


def test_rename_from_the_header_updates_references(qtbot, panel, workspace, shapes):
    doc = open_doc(workspace, "routing.yaml", shapes)
    panel.show_step(doc, "triage", "queue")
    name = panel.findChild(QLineEdit, "stepName")
    with qtbot.waitSignal(panel.currentStepChanged) as blocker:
        commit_line(qtbot, name, "queue-it")
    assert blocker.args == ["triage", "queue-it"]
    assert "routes: {urgent: page-on-call, normal: queue-it}" in doc.text
    assert panel.current() == ("triage", "queue-it")
    commit_line(qtbot, name, "bad name!")
    assert panel.findChild(QLabel, "stepNameError").isVisibleTo(panel)
    assert "name: queue-it" in doc.text


def test_problems_of_the_step_are_listed(qtbot, panel, workspace, shapes):
    doc = open_doc(workspace, "orders.yaml", shapes)
    panel.show_step(doc, "create-order", "price")
    node = doc.outline.pipelines["create-order"].nodes["price"]
    other = doc.outline.pipelines["create-order"].nodes["respond"]
    file = str(workspace / "orders.yaml")
    panel.set_diagnostics([
        DiagnosticInfo(file=file, line=node.line + 2, col=7, message="bad values here"),
        DiagnosticInfo(file=file, line=other.line, col=7, message="someone else's problem"),
        DiagnosticInfo(file=str(workspace / "routing.yaml"), line=node.line, col=1, message="other file"),
    ])
    problems = panel.findChild(QListWidget, "stepProblems")
    assert problems.isVisibleTo(panel)
    assert [problems.item(i).text() for i in range(problems.count())] == [
        f"line {node.line + 2}: bad values here"]
    with qtbot.waitSignal(panel.problemActivated) as blocker:
        problems.itemClicked.emit(problems.item(0))
    assert blocker.args == [node.line + 2, 7]


def test_wrong_types_and_broken_text_never_crash(qtbot, panel, tmp_path, shapes):
    doc = extra_doc(tmp_path, shapes)
    panel.show_step(doc, "calls", "wrong")
    raw = widget(panel, "config.url")  # a list where a string belongs: raw YAML
    assert isinstance(raw, CommitTextEdit)
    assert raw.toPlainText() == "- not\n- a\n- string"

    doc.replace(0, 0, "pipelines: [\n")  # the text stops parsing
    doc.flush_outline()
    banner = panel.findChild(QLabel, "panelBanner")
    assert banner.isVisibleTo(panel) and "does not parse" in banner.text()
    assert widget(panel, "config.url").toPlainText() == "- not\n- a\n- string"  # last good version
    doc.undo_stack.undo()
    doc.flush_outline()
    assert not banner.isVisibleTo(panel)

    panel.show_step(doc, "calls", "odd")  # no schema: the whole config as YAML, keys can be added
    assert "not_installed" in panel.findChild(QLabel, "stepDescription").text()
    config = widget(panel, "config")
    assert isinstance(config, CommitTextEdit) and config.toPlainText() == "a: 1"
    config.setFocus()
    config.setPlainText("a: 2\nb: [x]\n")
    widget(panel, "if").setFocus()  # leaving the editor applies it
    assert doc.value_at(at(doc, "calls", "odd", "config")) == {"a": 2, "b": ["x"]}

    panel.show_step(doc, "calls", "gone")
    placeholder = panel.findChild(QLabel, "panelPlaceholder")
    assert placeholder.isVisibleTo(panel) and "no longer" in placeholder.text()
    panel.show_step(doc, "calls", None)
    assert "Select a step" in placeholder.text()


def test_editor_choice_and_coercion_rules():
    from app.editor.form_values import MISSING, choose_kind, coerce

    text, number = {"type": "string"}, {"type": "integer"}
    assert choose_kind(text, MISSING) == "text"
    assert choose_kind(number, "{{ .n }}") == "text"  # a template fits any type
    assert choose_kind({"type": "boolean"}, MISSING) == "bool"
    assert choose_kind({"type": "boolean"}, "{{ .flag }}") == "text"
    assert choose_kind({"enum": ["a", "b"]}, "a") == "enum"
    assert choose_kind({"type": "object", "properties": {"x": text}}, {"x": "1"}) == "object"
    assert choose_kind({"type": "object", "properties": {"x": text}}, {"y": "1"}) == "raw"  # unknown key
    assert choose_kind({"type": "object"}, {"a": 1, "b": "x"}) == "map"
    assert choose_kind({"type": "object"}, {"a": {"nested": 1}}) == "raw"
    assert choose_kind({"type": "array", "items": text}, ["a"]) == "list"
    assert choose_kind({"type": "array", "items": {"type": "object"}}, []) == "raw"
    assert choose_kind({"type": "object"}, "not a map") == "raw"  # wrong type
    assert choose_kind({"anyOf": [text, number]}, {"a": 1}) == "raw"  # no simple form
    assert choose_kind({}, "line one\nline two") == "text_area"
    assert choose_kind({}, MISSING, "substeps") == "substeps"

    assert coerce("5", {"integer"}) == 5
    assert coerce("5", {"string", "number"}) == 5
    assert coerce("5s", {"string", "number"}) == "5s"
    assert coerce("42", {"string"}) == "42"
    assert coerce("{{ .n }}", {"integer"}) == "{{ .n }}"
    assert coerce("[a, b]", {"array"}) == ["a", "b"]
    assert coerce("true", {"boolean"}) is True
    with pytest.raises(ValueError, match="whole number"):
        coerce("2.5", {"integer"})
    with pytest.raises(ValueError, match="a number"):
        coerce("many", {"number"})
