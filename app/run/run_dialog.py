"""The run dialog: a pipeline's trigger input and the run options.

Most triggers take the input as JSON typed in ``runInput``. An ``http`` trigger gets request
fields instead (method, path parameters, query, headers, body) and ``runInput`` shows,
read-only, the input they make: the same dict the hosted server builds for that request
(app/run/http_input.py), so the pipeline behaves as it would behind the server.

Everything is validated as it is typed: an error names the field and, for JSON, the line
and column, and disables Run. What was typed is remembered per pipeline in Settings when
the dialog closes, whichever way, so nothing typed is lost. The first time a pipeline is
run the input comes from the workspace's samples (app/run/samples.py) when it has one, so
the first run works; the Sample list fills in any of them (undoably) later.
"""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase, QTextCursor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.run.http_input import (
    METHODS,
    HttpFields,
    InputError,
    build_http_input,
    parse_json,
    path_params,
)
from app.run.samples import Sample
from app.settings import Settings
from engine.service.models import PipelineInfo, RunOptions


def _mono(widget: QPlainTextEdit) -> QPlainTextEdit:
    widget.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
    widget.setTabChangesFocus(True)
    return widget


def _replace_text(edit: QPlainTextEdit, text: str) -> None:
    """Replace the whole text as one edit: Ctrl+Z brings back what was there."""
    cursor = QTextCursor(edit.document())
    cursor.select(QTextCursor.SelectionType.Document)
    cursor.insertText(text)


class RunDialog(QDialog):
    def __init__(
        self, pipeline: PipelineInfo, settings: Settings | None = None, parent: QWidget | None = None,
        samples: list[Sample] | None = None,
    ):
        """``samples``: this pipeline's sample inputs (``samples_for``), the first one first."""
        super().__init__(parent)
        self.setObjectName("runDialog")
        self.setWindowTitle(f"Run {pipeline.name}")
        self.pipeline = pipeline
        self.settings = settings
        trigger = pipeline.trigger or {}
        self.trigger_type = str(trigger.get("type") or "manual")
        config = trigger.get("config")
        self.trigger_config: dict[str, Any] = config if isinstance(config, dict) else {}
        self.is_http = self.trigger_type == "http"
        self._input: Any = None
        self._error: InputError | None = None
        self.samples = list(samples or [])

        layout = QVBoxLayout(self)
        heading = QLabel(self._heading(), self)
        heading.setObjectName("runHeading")
        heading.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(heading)

        self.sample_combo = QComboBox(self)
        self.sample_combo.setObjectName("runSample")
        self.sample_combo.addItems([s.title for s in self.samples])
        self.sample_combo.setPlaceholderText("Fill in a sample input…")
        self.sample_combo.setToolTip("Sample inputs from the workspace's samples.json")
        self.sample_combo.activated.connect(self.use_sample)
        if self.samples:
            row = QHBoxLayout()
            row.addWidget(QLabel("Sample:", self))
            row.addWidget(self.sample_combo, 1)
            layout.addLayout(row)
        else:
            self.sample_combo.hide()

        self.input_edit = _mono(QPlainTextEdit(self))
        self.input_edit.setObjectName("runInput")
        if self.is_http:
            layout.addWidget(self._build_http())
            self.input_edit.setReadOnly(True)
            self.input_edit.setToolTip("The trigger input this request gives the pipeline")
            layout.addWidget(QLabel("Trigger input (as the server builds it):", self))
        else:
            remembered = settings.run_input(pipeline.name) if settings else None
            if remembered is None and self.samples:
                remembered = json.dumps(self.samples[0].input, indent=2, ensure_ascii=False)
                self.sample_combo.setCurrentIndex(0)
            else:
                self.sample_combo.setCurrentIndex(-1)
            self.input_edit.setPlainText(remembered if remembered is not None else "{}")
            self.input_edit.setPlaceholderText("Trigger input as JSON; empty runs without input")
            layout.addWidget(QLabel("Trigger input (JSON):", self))
            self.input_edit.textChanged.connect(self._revalidate)
        layout.addWidget(self.input_edit, 1)

        self.error_label = QLabel(self)
        self.error_label.setObjectName("runInputError")
        self.error_label.setTextFormat(Qt.TextFormat.PlainText)
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #c62828;")
        layout.addWidget(self.error_label)

        options = QGroupBox("Options", self)
        row = QHBoxLayout(options)
        self.wait_box = QCheckBox("Wait for completion", options)
        self.wait_box.setObjectName("runWait")
        self.wait_box.setChecked(True)
        self.no_breakpoints_box = QCheckBox("Don't stop at breakpoints", options)
        self.no_breakpoints_box.setObjectName("runNoBreakpoints")
        self.mocks_box = QCheckBox("Use mocks", options)
        self.mocks_box.setObjectName("runMocks")
        self.mocks_box.setChecked(True)
        for box in (self.wait_box, self.no_breakpoints_box, self.mocks_box):
            row.addWidget(box)
        row.addStretch(1)
        layout.addWidget(options)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.run_button = self.buttons.addButton("Run", QDialogButtonBox.ButtonRole.AcceptRole)
        self.run_button.setObjectName("runButton")
        self.run_button.setDefault(True)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.resize(560, 560 if self.is_http else 360)
        self._revalidate()

    def _heading(self) -> str:
        if self.is_http:
            method = str(self.trigger_config.get("method", "")).upper()
            return f"{self.pipeline.name}: http trigger {method} {self.trigger_config.get('path', '')}"
        return f"{self.pipeline.name}: {self.trigger_type} trigger"

    # ------------------------------------------------------------------ http fields

    def _build_http(self) -> QWidget:
        remembered = self.settings.http_fields(self.pipeline.name) if self.settings else None
        fields = HttpFields.from_dict(remembered) if remembered else HttpFields()
        self.sample_combo.setCurrentIndex(-1)
        if not remembered:
            fields.method = str(self.trigger_config.get("method") or "POST").upper()
            if self.samples:  # a sample is what the request carries: its body
                fields.body = json.dumps(self.samples[0].input, indent=2, ensure_ascii=False)
                self.sample_combo.setCurrentIndex(0)
        box = QGroupBox("Request", self)
        form = QFormLayout(box)

        self.method_combo = QComboBox(box)
        self.method_combo.setObjectName("httpMethod")
        self.method_combo.addItems(METHODS)
        self.method_combo.setCurrentText(fields.method.upper())
        self.method_combo.currentTextChanged.connect(self._revalidate)
        form.addRow("Method", self.method_combo)

        template = str(self.trigger_config.get("path", ""))
        self.path_label = QLabel(box)
        self.path_label.setObjectName("httpPath")
        self.path_label.setTextFormat(Qt.TextFormat.PlainText)
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("Path", self.path_label)
        self.param_edits: dict[str, QLineEdit] = {}
        for name in path_params(template):
            edit = QLineEdit(fields.params.get(name, ""), box)
            edit.setObjectName(f"httpParam_{name}")
            edit.setPlaceholderText(f"value of {{{name}}}")
            edit.textChanged.connect(self._revalidate)
            self.param_edits[name] = edit
            form.addRow(f"  {{{name}}}", edit)

        self.query_edit = QLineEdit(fields.query, box)
        self.query_edit.setObjectName("httpQuery")
        self.query_edit.setPlaceholderText("a=1&b=2 (repeat a name for a list)")
        self.query_edit.textChanged.connect(self._revalidate)
        form.addRow("Query", self.query_edit)

        self.headers_table = QTableWidget(0, 2, box)
        self.headers_table.setObjectName("httpHeaders")
        self.headers_table.setHorizontalHeaderLabels(["Header", "Value"])
        self.headers_table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.headers_table.verticalHeader().hide()
        self.headers_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.headers_table.setMaximumHeight(120)
        for name, value in fields.headers:
            self.add_header(name, value)
        self.headers_table.itemChanged.connect(self._revalidate)
        add = QPushButton("Add", box)
        add.setObjectName("httpAddHeader")
        add.clicked.connect(lambda: self._add_and_edit_header())
        remove = QPushButton("Remove", box)
        remove.setObjectName("httpRemoveHeader")
        remove.clicked.connect(self._remove_header)
        buttons = QVBoxLayout()
        buttons.addWidget(add)
        buttons.addWidget(remove)
        buttons.addStretch(1)
        headers_row = QHBoxLayout()
        headers_row.addWidget(self.headers_table, 1)
        headers_row.addLayout(buttons)
        form.addRow("Headers", headers_row)

        self.body_edit = _mono(QPlainTextEdit(box))
        self.body_edit.setObjectName("httpBody")
        self.body_edit.setPlainText(fields.body)
        self.body_edit.setPlaceholderText("Request body: JSON (with a JSON content-type) or text")
        self.body_edit.textChanged.connect(self._revalidate)
        form.addRow("Body", self.body_edit)
        return box

    def add_header(self, name: str, value: str) -> None:
        row = self.headers_table.rowCount()
        self.headers_table.insertRow(row)
        self.headers_table.setItem(row, 0, QTableWidgetItem(name))
        self.headers_table.setItem(row, 1, QTableWidgetItem(value))
        self._revalidate()

    def _add_and_edit_header(self) -> None:
        self.add_header("", "")
        row = self.headers_table.rowCount() - 1
        self.headers_table.setCurrentCell(row, 0)
        self.headers_table.editItem(self.headers_table.item(row, 0))

    def _remove_header(self) -> None:
        rows = sorted({i.row() for i in self.headers_table.selectedIndexes()}, reverse=True)
        if not rows and self.headers_table.currentRow() >= 0:
            rows = [self.headers_table.currentRow()]
        for row in rows:
            self.headers_table.removeRow(row)
        self._revalidate()

    def http_fields(self) -> HttpFields:
        headers = []
        for row in range(self.headers_table.rowCount()):
            name, value = self.headers_table.item(row, 0), self.headers_table.item(row, 1)
            headers.append((name.text() if name else "", value.text() if value else ""))
        return HttpFields(
            method=self.method_combo.currentText(),
            params={n: e.text() for n, e in self.param_edits.items()},
            query=self.query_edit.text(),
            headers=headers,
            body=self.body_edit.toPlainText(),
        )

    def use_sample(self, index: int) -> None:
        """Fill in sample ``index``: the input, or for an http trigger the request body."""
        if not 0 <= index < len(self.samples):
            return
        text = json.dumps(self.samples[index].input, indent=2, ensure_ascii=False)
        _replace_text(self.body_edit if self.is_http else self.input_edit, text)
        self.sample_combo.setCurrentIndex(index)

    # ------------------------------------------------------------------ validation and result

    def _revalidate(self) -> None:
        if not hasattr(self, "run_button"):
            return  # still building the widgets
        try:
            if self.is_http:
                value = build_http_input(self.http_fields(), self.trigger_config)
                self.path_label.setText(f"{self.trigger_config.get('path', '')}  →  {value['path']}")
                preview = json.dumps(value, indent=2, ensure_ascii=False)
                if self.input_edit.toPlainText() != preview:
                    self.input_edit.setPlainText(preview)
            else:
                text = self.input_edit.toPlainText()
                value = parse_json(text, "input") if text.strip() else None
        except InputError as exc:
            self._error = exc
            self._input = None
            self.error_label.setText(exc.message)
            self.run_button.setEnabled(False)
            return
        self._error = None
        self._input = value
        self.error_label.clear()
        self.run_button.setEnabled(True)

    def error(self) -> InputError | None:
        """Why the input cannot be run now (None: it can)."""
        return self._error

    def options(self) -> RunOptions:
        return RunOptions(
            wait=self.wait_box.isChecked(),
            mocks=self.mocks_box.isChecked(),
            breakpoints=not self.no_breakpoints_box.isChecked(),
        )

    def value(self) -> tuple[Any, RunOptions]:
        """(trigger input, options); InputError when the input is not valid."""
        if self._error is not None:
            raise self._error
        return self._input, self.options()

    def remember(self) -> None:
        """Keep what was typed for this pipeline (also when it does not parse yet)."""
        if self.settings is None:
            return
        if self.is_http:
            self.settings.set_http_fields(self.pipeline.name, self.http_fields().to_dict())
        else:
            self.settings.set_run_input(self.pipeline.name, self.input_edit.toPlainText())

    def accept(self) -> None:
        if self._error is not None:  # Enter in a field while the input is invalid
            return
        super().accept()

    def done(self, result: int) -> None:
        self.remember()
        super().done(result)
