""""Send test event…": a CloudEvent's type, subject and data, sent through a source's intake.

The data is edited in a form generated from the source's event schema when it has one
(see :mod:`app.sources.event_form`), or as JSON. Before anything is sent the data is
checked: it must parse, and it must satisfy the schema; each problem names its field or
position, and nothing goes to the service until there are none. The delivery the service
made of it (started, dead-lettered, duplicate, filtered) is shown under the form, with a
button to open the execution or the dead-letter entry it became.
"""

from __future__ import annotations

from typing import Any

import jsonschema
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app import theme
from app.asyncqt import describe, spawn
from app.debugger.json_edit import JsonEdit
from app.executions.support import named
from app.panes import MessageLine
from app.run.http_input import InputError
from app.sources.event_form import EventForm, form_fits
from app.sources.sources_model import outcome_color, target_of
from engine.service.errors import ServiceError
from engine.service.models import SourceDelivery, SourceInfo, TestEvent
from engine.service.protocol import StudioService

MAX_PROBLEMS = 8  # schema problems listed at once (the rest are counted)


async def event_schema_of(service: StudioService, source: SourceInfo) -> dict[str, Any]:
    """The JSON Schema of ``source``'s event data: the one the service gives, else the latest
    registered version of the schema its config names (``schema: <type>``), else none."""
    if source.event_schema:
        return dict(source.event_schema)
    name = source.config.get("schema")
    if not isinstance(name, str) or not name:
        return {}
    known = [s for s in await service.list_schemas() if s.type == name]
    return dict(max(known, key=lambda s: s.version).schema_) if known else {}


def schema_problems(schema: dict[str, Any], data: Any) -> list[str]:
    """What keeps ``data`` from satisfying ``schema``, each with its path (empty: it does)."""
    if not schema:
        return []
    try:
        validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        validator = validator_class(schema)
        errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    except jsonschema.SchemaError as exc:  # the schema itself is broken: the service decides
        return [f"the event schema is not valid JSON Schema ({exc.message}); fix it in the registry"]
    return [f"{'/'.join(map(str, e.absolute_path)) or '(data)'}: {e.message}" for e in errors]


class TestEventDialog(QDialog):
    sent = Signal(object)  # the SourceDelivery the service made of the event
    openRequested = Signal(str, str)  # ("execution" | "dlq", id)

    def __init__(self, service: StudioService, source: SourceInfo, schema: dict[str, Any],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("testEventDialog")
        self.setWindowTitle(f"Send a test event to {source.name}")
        self.service = service
        self.source = source
        self.schema = schema
        self.sending = False
        self.sent_count = 0
        self.delivery: SourceDelivery | None = None  # the last one sent

        intro = QLabel(
            f"The event goes through <b>{source.name}</b>'s intake as if its transport had "
            f"delivered it (routing by type, the schema check, dedup by id) and starts "
            f"{', '.join(source.pipelines) or 'no pipeline'}. The source may be stopped.")
        intro.setWordWrap(True)
        self.type_edit = named(QLineEdit(), "testEventType")
        self.type_edit.setPlaceholderText("default: the type the first pipeline's trigger takes")
        self.subject_edit = named(QLineEdit(), "testEventSubject")
        self.subject_edit.setPlaceholderText("optional")
        self.id_edit = named(QLineEdit(), "testEventId")
        self.id_edit.setPlaceholderText("default: a new id (send the same id twice to see dedup)")
        fields = QFormLayout()
        fields.addRow("Type", self.type_edit)
        fields.addRow("Subject", self.subject_edit)
        fields.addRow("Event id", self.id_edit)

        self.json_edit = JsonEdit("data")
        self.json_edit.setObjectName("testEventJson")
        self.json_edit.set_value({})
        self.form = EventForm(schema) if form_fits(schema) else None
        self.tabs = named(QTabWidget(), "testEventTabs")
        if self.form is not None:
            self.tabs.addTab(self.form, "Form")
        self.tabs.addTab(self.json_edit, "JSON")
        self._shown = self.tabs.currentWidget()
        self.tabs.currentChanged.connect(self._tab_changed)
        schema_note = named(QLabel(), "testEventSchemaNote")
        schema_note.setWordWrap(True)
        schema_note.setStyleSheet(f"color: {theme.colors().muted};")
        schema_note.setText("Checked against the source's event schema before sending." if schema
                            else "This source names no event schema: any JSON data goes.")

        self.result_label = named(QLabel(), "testEventResult")
        self.result_label.setTextFormat(Qt.TextFormat.RichText)
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.open_button = named(QPushButton("Open"), "testEventOpen")
        self.open_button.hide()
        self.open_button.clicked.connect(self._open_result)
        result_row = QHBoxLayout()
        result_row.addWidget(self.result_label, 1)
        result_row.addWidget(self.open_button)
        self.message = MessageLine("testEventMessage")

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.send_button = buttons.addButton("Send", QDialogButtonBox.ButtonRole.ActionRole)
        self.send_button.setObjectName("testEventSend")
        self.send_button.setDefault(True)
        self.send_button.clicked.connect(self.send)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(fields)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(schema_note)
        layout.addLayout(result_row)
        layout.addWidget(self.message)
        layout.addWidget(buttons)
        self.resize(560, 520)

    # ------------------------------------------------------------------ the data

    def _tab_changed(self) -> None:
        """Carry the data across: form -> JSON always; JSON -> form only when it parses."""
        now = self.tabs.currentWidget()
        if self.form is None or now is self._shown:
            return
        if now is self.json_edit:
            data, _ = self.form.value()  # a row that does not parse yet stays out
            self.json_edit.set_value(data)
        else:
            try:
                self.form.load(self._json_data())
            except InputError as exc:
                self.message.say(f"{exc.message}; fix it before switching to the form", error=True)
                self.tabs.blockSignals(True)
                self.tabs.setCurrentWidget(self.json_edit)
                self.tabs.blockSignals(False)
                return
        self._shown = now

    def _json_data(self) -> Any:
        return None if not self.json_edit.text().strip() else self.json_edit.value()

    def data(self) -> tuple[Any, list[str]]:
        """The data to send and what is wrong with it (empty: it can go)."""
        if self.form is not None and self.tabs.currentWidget() is self.form:
            data, problems = self.form.value()
        else:
            try:
                data, problems = self._json_data(), []
            except InputError as exc:
                return None, [exc.message]
        if problems:
            return data, problems
        return data, schema_problems(self.schema, data)

    def test_event(self) -> tuple[TestEvent | None, list[str]]:
        data, problems = self.data()
        if problems:
            return None, problems
        try:
            return TestEvent(type=self.type_edit.text().strip() or None,
                             subject=self.subject_edit.text().strip() or None, data=data,
                             id=self.id_edit.text().strip() or None), []
        except ValueError as exc:  # pydantic: a type or id longer than the service takes
            return None, [_first_error(exc)]

    # ------------------------------------------------------------------ sending

    def send(self) -> None:
        """Check the event; send it only when nothing is wrong."""
        if self.sending:
            return
        event, problems = self.test_event()
        if event is None:
            more = f" (and {len(problems) - MAX_PROBLEMS} more)" if len(problems) > MAX_PROBLEMS else ""
            self.message.say("Not sent: " + "; ".join(problems[:MAX_PROBLEMS]) + more, error=True)
            return
        self.sending = True
        self.send_button.setEnabled(False)
        self.message.say("Sending…")
        spawn(self._send(event), what="Sending the test event")

    async def _send(self, event: TestEvent) -> None:
        try:
            delivery = await self.service.send_test_event(self.source.name, event)
        except ServiceError as exc:
            self.message.say(f"The service refused the event: {describe(exc)}", error=True)
            return
        finally:
            self.sending = False
            self.send_button.setEnabled(True)
        self.sent_count += 1
        self.delivery = delivery
        self._show_result(delivery)
        self.message.say(f"Sent event {delivery.event_id}")
        self.sent.emit(delivery)

    def _show_result(self, d: SourceDelivery) -> None:
        colour = outcome_color(d.outcome)
        outcome = d.outcome.replace("_", " ")
        shown = f"<b>{outcome}</b>"
        if colour is not None:
            shown = f"<span style='color:{colour.name()}'>{shown}</span>"
        parts = [f"Event <code>{d.event_id}</code>: {shown}"]
        if d.pipeline:
            parts.append(f"pipeline {d.pipeline}")
        if d.execution_id:
            parts.append(f"execution {d.execution_id[:12]}"
                         + (f" ({d.execution_status})" if d.execution_status else ""))
        if d.dlq_entry:
            parts.append(f"dead-letter entry {d.dlq_entry[:12]}")
        if d.outcome == "filtered":
            parts.append("no pipeline takes this type: nothing ran")
        if d.outcome == "duplicate":
            parts.append("this id was taken in before: nothing new ran")
        self.result_label.setText(" · ".join(parts))
        target = target_of(d)
        self.open_button.setVisible(target is not None)
        if target is not None:
            self.open_button.setText("Open dead-letter entry" if target[0] == "dlq" else "Open execution")

    def _open_result(self) -> None:
        target = target_of(self.delivery) if self.delivery is not None else None
        if target is not None:
            self.openRequested.emit(*target)


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        found = errors()
        if found:
            where = ".".join(map(str, found[0].get("loc", ()))) or "event"
            return f"{where}: {found[0].get('msg', exc)}"
    return str(exc).splitlines()[0]
