"""The "Add mock" dialog: pipeline, step (a name or a path like ``fan-out/enrich``), mode,
delay and value. It stays open until the service has accepted the mock, showing the
service's refusal (an unknown step, say) next to the fields, so nothing typed is lost."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from app import theme
from app.asyncqt import describe, spawn
from app.debugger.json_edit import JsonEdit
from app.mocks.value_check import ERROR_TEMPLATE, MODE_HINTS, MODES, check_value
from app.run.http_input import InputError
from engine.service.errors import ServiceError
from engine.service.models import Mock, PipelineInfo

# (pipeline, step, mode, value, delay_ms) -> the saved mock
Submit = Callable[[str, str, str, Any, float], Awaitable[Mock]]


class MockAddDialog(QDialog):
    def __init__(self, pipelines: list[PipelineInfo], existing: list[Mock], submit: Submit,
                 pipeline: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("mockAddDialog")
        self.setWindowTitle("Add a step mock")
        self.pipelines = {p.name: p for p in pipelines}
        self.existing = {(m.pipeline, m.step) for m in existing}
        self.submit = submit
        self.saved: Mock | None = None
        self._busy = False

        self.pipeline = QComboBox(objectName="mockAddPipeline")
        self.pipeline.setEditable(True)
        self.pipeline.addItems(sorted(self.pipelines))
        if pipeline:
            self.pipeline.setCurrentText(pipeline)
        self.step = QComboBox(objectName="mockAddStep")
        self.step.setEditable(True)
        line = self.step.lineEdit()
        if line is not None:
            line.setPlaceholderText("a step name, or a path like fan-out/enrich")
        self.mode = QComboBox(objectName="mockAddMode")
        for mode in MODES:
            self.mode.addItem(mode, mode)
        self.delay = QDoubleSpinBox(objectName="mockAddDelay")
        self.delay.setRange(0, 3_600_000)
        self.delay.setSuffix(" ms")
        self.delay.setDecimals(0)
        self.hint = QLabel(objectName="mockAddHint")
        self.hint.setWordWrap(True)
        self.value = JsonEdit("value")
        self.value.setObjectName("mockAddValue")
        self.value.set_value({})
        self.note = QLabel(objectName="mockAddError")
        self.note.setWordWrap(True)
        self.note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        ok, cancel = QDialogButtonBox.StandardButton.Ok, QDialogButtonBox.StandardButton.Cancel
        buttons = QDialogButtonBox(ok | cancel)
        self.ok_button = buttons.button(ok)
        self.ok_button.setText("Add")
        self.ok_button.setObjectName("mockAddOk")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)

        form = QFormLayout()
        form.addRow("Pipeline", self.pipeline)
        form.addRow("Step", self.step)
        form.addRow("Mode", self.mode)
        form.addRow("Delay", self.delay)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.hint)
        layout.addWidget(self.value, 1)
        layout.addWidget(self.note)
        layout.addWidget(buttons)
        self.pipeline.currentTextChanged.connect(self._pipeline_changed)
        self.step.currentTextChanged.connect(self._target_changed)
        self.mode.currentIndexChanged.connect(self._mode_changed)
        self._pipeline_changed(self.pipeline.currentText())
        self._mode_changed()
        self.resize(520, 440)

    def _pipeline_changed(self, name: str) -> None:
        info = self.pipelines.get(name.strip())
        current = self.step.currentText()
        self.step.blockSignals(True)
        try:
            self.step.clear()
            if info is not None:
                self.step.addItems([str(s.get("name")) for s in info.steps if s.get("name")])
            self.step.setCurrentText(current)
        finally:
            self.step.blockSignals(False)
        self._target_changed()

    def _target_changed(self, *_args: object) -> None:
        key = (self.pipeline.currentText().strip(), self.step.currentText().strip())
        if key in self.existing:
            self._say(f"{key[0]}/{key[1]} already has a mock: adding replaces it.")
        else:
            self._say("")

    def _mode_changed(self) -> None:
        mode = str(self.mode.currentData())
        self.hint.setText(MODE_HINTS[mode])
        text = self.value.text().strip()
        if mode == "error" and text in ("", "{}"):
            self.value.set_value(ERROR_TEMPLATE)
        elif mode != "error" and text and _same(text, ERROR_TEMPLATE):
            self.value.set_value({})

    def _say(self, text: str, *, error: bool = False) -> None:
        self.note.setStyleSheet(f"color: {theme.colors().error};" if error else "")
        self.note.setText(text)

    def accept(self) -> None:
        if self._busy:
            return
        pipeline, step = self.pipeline.currentText().strip(), self.step.currentText().strip()
        if not pipeline or not step:
            self._say("Choose a pipeline and a step", error=True)
            return
        mode = str(self.mode.currentData())
        try:
            value = self.value.value()
            check_value(mode, value)
        except InputError as exc:
            self.value.show_error(exc.message)
            self.value.go_to_error()
            self._say(exc.message, error=True)
            return
        self._busy = True
        self.ok_button.setEnabled(False)
        self._say("Saving…")
        spawn(self._submit(pipeline, step, mode, value, self.delay.value()), what="Adding a mock")

    async def _submit(self, pipeline: str, step: str, mode: str, value: Any, delay: float) -> None:
        try:
            self.saved = await self.submit(pipeline, step, mode, value, delay)
        except ServiceError as exc:
            self._say(f"Not added: {describe(exc)}", error=True)
            return
        finally:
            self._busy = False
            self.ok_button.setEnabled(True)
        super().accept()


def _same(text: str, value: Any) -> bool:
    try:
        return bool(json.loads(text) == value)
    except ValueError:
        return False
