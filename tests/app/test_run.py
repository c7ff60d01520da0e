"""The run dialog (input remembered per pipeline, JSON errors with their position, the http
request fields building the server's payload) and the output panel fed by run_pipeline
with the real service."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTreeWidget,
)
from starlette.requests import Request

from app.run.http_input import HttpFields, InputError, build_http_input
from app.run.output_panel import OutputPanel, run_pipeline
from app.run.run_dialog import RunDialog
from app.settings import Settings
from engine.server.http_trigger import trigger_payload
from engine.service.models import PipelineInfo, RunOptions


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(tmp_path / "studio.ini")


@pytest.fixture
def panel(qtbot) -> OutputPanel:
    widget = OutputPanel()
    qtbot.addWidget(widget)
    widget.show()
    return widget


def pipeline_info(qloop, service, name: str) -> PipelineInfo:
    return next(p for p in qloop.run_until_complete(service.list_pipelines()) if p.name == name)


def dialog_for(qtbot, info: PipelineInfo, settings: Settings | None) -> RunDialog:
    dialog = RunDialog(info, settings)
    qtbot.addWidget(dialog)
    return dialog


def server_payload(
    method: str, path: str, params: dict[str, str], query: bytes, headers: list[tuple[str, str]], body: str
) -> dict[str, Any]:
    """What engine/server/http_trigger.py builds for this request."""
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": quote(path).encode(),
        "query_string": query,
        "scheme": "http",
        "server": ("127.0.0.1", 8080),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
    }
    return trigger_payload(Request(scope), params, body.encode())


# ---------------------------------------------------------------------- the dialog


def test_input_is_remembered_per_pipeline(qtbot, qloop, service, settings):
    score = pipeline_info(qloop, service, "score-users")
    dialog = dialog_for(qtbot, score, settings)
    edit = dialog.findChild(QPlainTextEdit, "runInput")
    assert edit.toPlainText() == "{}"
    edit.setPlainText('{"users": [{"name": "ada"}]}')
    dialog.findChild(QCheckBox, "runNoBreakpoints").setChecked(True)
    value, options = dialog.value()
    assert value == {"users": [{"name": "ada"}]}
    assert options == RunOptions(wait=True, mocks=True, breakpoints=False)
    qtbot.mouseClick(dialog.findChild(QPushButton, "runButton"), Qt.MouseButton.LeftButton)
    assert dialog.result() == RunDialog.DialogCode.Accepted

    again = dialog_for(qtbot, score, Settings(settings.qsettings.fileName()))
    assert again.findChild(QPlainTextEdit, "runInput").toPlainText() == '{"users": [{"name": "ada"}]}'
    other = dialog_for(qtbot, pipeline_info(qloop, service, "triage"), settings)
    assert other.findChild(QPlainTextEdit, "runInput").toPlainText() == "{}"
    other.findChild(QPlainTextEdit, "runInput").setPlainText('{"half typed": ')
    other.reject()  # cancelled: what was typed is kept all the same
    assert settings.run_input("triage") == '{"half typed": '


def test_bad_json_shows_its_position_and_disables_run(qtbot, qloop, service, settings):
    dialog = dialog_for(qtbot, pipeline_info(qloop, service, "score-users"), settings)
    run = dialog.findChild(QPushButton, "runButton")
    dialog.findChild(QPlainTextEdit, "runInput").setPlainText('{"users": [\n  {"name": "ada",}\n]}')
    message = dialog.findChild(QLabel, "runInputError").text()
    assert "line 2, column 18" in message and not run.isEnabled()
    with pytest.raises(InputError) as refused:
        dialog.value()
    assert (refused.value.line, refused.value.col) == (2, 18)
    dialog.show()
    dialog.accept()  # Enter while invalid: the dialog stays
    assert dialog.isVisible() and dialog.result() != RunDialog.DialogCode.Accepted
    dialog.findChild(QPlainTextEdit, "runInput").setPlainText("NaN")
    assert "not valid JSON" in dialog.findChild(QLabel, "runInputError").text() and not run.isEnabled()
    dialog.findChild(QPlainTextEdit, "runInput").setPlainText("")
    assert run.isEnabled() and dialog.value()[0] is None  # empty: run without input


def test_http_fields_build_the_servers_payload(qtbot, settings):
    info = PipelineInfo(
        name="get-order",
        file="x.yaml",
        trigger={"type": "http", "config": {"method": "PUT", "path": "/orders/{id}/lines/{line}"}},
    )
    dialog = dialog_for(qtbot, info, settings)
    run = dialog.findChild(QPushButton, "runButton")
    assert dialog.findChild(QComboBox, "httpMethod").currentText() == "PUT"
    assert not run.isEnabled() and "fill in {id}" in dialog.findChild(QLabel, "runInputError").text()
    dialog.findChild(QLineEdit, "httpParam_id").setText("A 7")
    dialog.findChild(QLineEdit, "httpParam_line").setText("2")
    dialog.findChild(QLineEdit, "httpQuery").setText("tag=a&tag=b&one=1&empty=")
    dialog.add_header("X-Trace", "t1")
    dialog.add_header("x-trace", "t2")
    dialog.add_header("X-API-Key", "secret")  # the server never passes the key on
    body = dialog.findChild(QPlainTextEdit, "httpBody")
    body.setPlainText('{"qty": 2,\n "sku": }')
    assert "body: line 2, column 9" in dialog.findChild(QLabel, "runInputError").text()
    assert not run.isEnabled()
    body.setPlainText('{"qty": 2,\n "sku": "AB-1"}')
    assert run.isEnabled()
    value, _ = dialog.value()
    headers = [
        ("content-type", "application/json"),
        ("X-Trace", "t1"),
        ("x-trace", "t2"),
        ("X-API-Key", "secret"),
    ]
    expected = server_payload(
        "PUT",
        "/orders/A 7/lines/2",
        {"id": "A 7", "line": "2"},
        b"tag=a&tag=b&one=1&empty=",
        headers,
        '{"qty": 2,\n "sku": "AB-1"}',
    )
    assert value == expected
    assert value["headers"] == {"content-type": "application/json", "x-trace": "t1, t2"}
    assert json.loads(dialog.findChild(QPlainTextEdit, "runInput").toPlainText()) == expected

    dialog.findChild(QComboBox, "httpMethod").setCurrentText("GET")
    assert "405" in dialog.findChild(QLabel, "runInputError").text() and not run.isEnabled()
    dialog.findChild(QComboBox, "httpMethod").setCurrentText("PUT")
    dialog.done(RunDialog.DialogCode.Accepted)
    again = dialog_for(qtbot, info, settings)  # the request fields are remembered
    assert again.value()[0] == expected
    assert again.findChild(QTableWidget, "httpHeaders").rowCount() == 4


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("", '{"a": 1}'),
        ("", "not json"),
        ("text/plain", '{"a": 1}'),
        ("application/vnd.x+json", "[1, 2]"),
        ("application/json", "  "),
    ],
)
def test_bodies_are_decoded_as_the_server_decodes_them(content_type: str, text: str):
    headers = [("content-type", content_type)] if content_type else []
    fields = HttpFields(method="POST", headers=headers, body=text)
    built = build_http_input(fields, {"method": "POST", "path": "/in"})
    assert built == server_payload("POST", "/in", {}, b"", headers, text)


# ---------------------------------------------------------------------- runs in the output panel


def run_from_the_form(qtbot, qloop, service, settings, panel, pipeline: str, body: str):
    """Fill the run dialog's http body, run what it builds through run_pipeline."""
    dialog = dialog_for(qtbot, pipeline_info(qloop, service, pipeline), settings)
    dialog.findChild(QPlainTextEdit, "httpBody").setPlainText(body)
    value, options = dialog.value()
    return qloop.run_until_complete(run_pipeline(service, pipeline, value, options, panel))


def test_create_order_from_the_http_form_completes_with_its_response(
    qtbot, qloop, service, settings, panel: OutputPanel
):
    panel.resize(1000, 400)
    result = run_from_the_form(
        qtbot, qloop, service, settings, panel, "create-order", '{"sku": "AB-1", "qty": 2}'
    )
    assert result is not None and result.status == "completed", result
    runs = panel.findChild(QTreeWidget, "runsList")
    row = runs.topLevelItem(0)
    assert [row.text(c) for c in (0, 1, 3)] == ["create-order", "completed", result.execution_id]
    assert row.text(2).endswith(("ms", "s"))
    response = json.loads(panel.findChild(QPlainTextEdit, "runResponse").toPlainText())
    assert response["status"] == 201
    assert response["body"]["sku"] == "AB-1" and response["body"]["total"] == 39
    assert result.execution_id in panel.findChild(QLabel, "runHeading").text()
    qtbot.mouseClick(panel.findChild(QPushButton, "copyRunId"), Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == result.execution_id
    qtbot.mouseClick(panel.findChild(QPushButton, "copyRunOutput"), Qt.MouseButton.LeftButton)
    assert json.loads(QGuiApplication.clipboard().text()) == response
    with qtbot.waitSignal(panel.executionRequested) as requested:  # the id is a link
        at = QPoint(runs.header().sectionPosition(3) + 5, runs.visualItemRect(row).center().y())
        qtbot.mouseClick(runs.viewport(), Qt.MouseButton.LeftButton, pos=at)
    assert requested.args == [result.execution_id]


def test_failed_run_shows_the_error_message_newest_first(qtbot, qloop, service, settings, panel):
    # a plain input (as `wfstudio run --input` gives it) first, then the form's request
    qloop.run_until_complete(run_pipeline(service, "create-order", {"sku": "AB-1", "qty": 2}, None, panel))
    result = run_from_the_form(
        qtbot, qloop, service, settings, panel, "create-order", '{"sku": "AB-1", "qty": 0}'
    )
    assert result is not None and result.status == "failed"
    assert [e.status for e in panel.entries()] == ["failed", "completed"]  # newest first
    message = panel.findChild(QLabel, "runMessage")
    assert message.isVisible() and message.text().startswith("check: validation failed")
    assert "minimum of 1" in message.text()
    assert json.loads(panel.findChild(QPlainTextEdit, "runError").toPlainText())["step"] == "check"
    assert panel.findChild(QTreeWidget, "runsList").topLevelItem(0).text(1) == "failed"


def test_a_service_error_is_a_message_not_a_traceback(qloop, service, panel: OutputPanel):
    result = qloop.run_until_complete(run_pipeline(service, "no-such-pipeline", {}, RunOptions(), panel))
    assert result is None
    entry = panel.entries()[0]
    assert entry.status == "error" and "no-such-pipeline" in entry.message
    assert "Traceback" not in entry.message
    assert panel.findChild(QLabel, "runMessage").text() == entry.message


def test_a_run_not_waited_for_is_followed_to_its_end(qloop, service, panel: OutputPanel):
    result = qloop.run_until_complete(
        run_pipeline(
            service,
            "score-users",
            {"users": [{"name": "ada", "orders": 2, "age": 30, "email": "a@x"}]},
            RunOptions(wait=False),
            panel,
        )
    )
    assert result is not None and result.status == "completed"
    assert result.output["ranking"] == ["ADA"] and panel.entries()[0].status == "completed"


HTTP_PIPELINE = """\
pipelines:
  echo-order:
    trigger: {type: http, config: {method: POST, path: "/shops/{shop}/orders"}}
    steps:
      - name: check
        type: step.validate
        config: {required_fields: [body.sku, body.qty]}
      - name: answer
        type: step.json_response
        config:
          status: 201
          body: {shop: "{{ .trigger.path_params.shop }}", sku: "{{ .trigger.body.sku }}", qty: "{{ .trigger.body.qty }}"}
"""


def test_a_request_from_the_dialog_runs_as_behind_the_server(
    qtbot, qloop, service, workspace, settings, panel
):
    qloop.run_until_complete(service.put_definition(HTTP_PIPELINE, str(workspace / "echo.yaml")))
    dialog = dialog_for(qtbot, pipeline_info(qloop, service, "echo-order"), settings)
    dialog.findChild(QLineEdit, "httpParam_shop").setText("north")
    dialog.findChild(QPlainTextEdit, "httpBody").setPlainText('{"sku": "AB-1", "qty": 2}')
    value, options = dialog.value()
    result = qloop.run_until_complete(run_pipeline(service, "echo-order", value, options, panel))
    assert result is not None and result.status == "completed", result
    response = json.loads(panel.findChild(QPlainTextEdit, "runResponse").toPlainText())
    assert response == {"status": 201, "headers": {}, "body": {"shop": "north", "sku": "AB-1", "qty": 2}}

    dialog.findChild(QPlainTextEdit, "httpBody").setPlainText('{"sku": "AB-1"}')
    value, options = dialog.value()
    failed = qloop.run_until_complete(run_pipeline(service, "echo-order", value, options, panel))
    assert failed is not None and failed.status == "failed"
    assert "body.qty" in panel.findChild(QLabel, "runMessage").text()
