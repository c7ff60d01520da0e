"""The Replay dialog: choose how to re-run a recorded execution, see the plan, then run it.

What can be chosen maps onto ``ReplayOptions`` (events-and-store.md §4):

- start point: the trigger (every step runs) or a top-level step of the original's
  timeline (mode ``from_step``: the steps before it reuse their recorded outputs);
- definition: the snapshot the original ran, or the current file;
- input: the original trigger payload, or an edited copy sent as an RFC 6902 patch of
  it (mode ``modified``). The service replays the original payload from a step (the
  reused outputs already carry it), so the input is not editable then;
- per step: run it, answer it with its recorded output, or with a JSON value.

Every change asks the service for the plan (debounced; nothing runs) and the table shows
which steps would be reused, mocked or re-run. Replay is enabled only while the plan shown
is the plan of the options shown, so nothing runs that was not previewed. The replay is
started without waiting for it (it may stop at breakpoints); ``replayed`` gives its id.
"""

from __future__ import annotations

import json
from typing import Any

import jsonpatch
import shiboken6
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFontDatabase
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app import asyncqt, theme
from app.debugger.json_edit import JsonEdit, compact
from app.run.http_input import InputError, parse_json
from app.stale import Generation
from engine.service.errors import ServiceError
from engine.service.models import (
    OUTPUT_EVENTS,
    ExecutionSummary,
    ReplayOptions,
    ReplayPlan,
    StepRun,
    carries_output,
)
from engine.service.protocol import StudioService

PLAN_DELAY_MS = 250
RUN, REUSE, MOCK = "run", "reuse", "mock"
STEP_MODES = ((RUN, "Run"), (REUSE, "Reuse recorded output"), (MOCK, "Mock with JSON"))
ACTION_TEXT = {"reuse": "reused", "mock": "mocked", "run": "re-run", "skip": "skipped"}
OUTPUT_PAGE = 1000


class OptionsError(ValueError):
    """The options as entered cannot be sent (a JSON field does not parse)."""


class ReplayDialog(QDialog):
    replayed = Signal(str, str)  # (original execution id, new execution id)
    planChanged = Signal(object)  # ReplayPlan | None, after each preview

    def __init__(self, service: StudioService, execution_id: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("replayDialog")
        self.setWindowTitle("Replay execution")
        self.resize(860, 640)
        self.service = service
        self.execution_id = execution_id
        self.original: ExecutionSummary | None = None
        self.steps: list[StepRun] = []  # top-level step runs of the original, first run of each
        self._plan: ReplayPlan | None = None
        self._plan_key: str | None = None  # the options the plan shown was made for
        self._generation = Generation()
        self._edited_input: str | None = None  # the edit, kept while "original" is shown
        self._outputs: dict[str, Any] | None = None  # recorded outputs, loaded when first needed
        self._loading = True
        self._error = ""  # why the options cannot be replayed (bad JSON, refused by the service)

        self.header = QLabel(objectName="replayHeader")
        self.header.setWordWrap(True)
        self.start = QComboBox(objectName="replayStart")
        self.definition = QComboBox(objectName="replayDefinition")
        self.definition.addItem("Original snapshot (what the original ran)", False)
        self.definition.addItem("Current file", True)
        self.breakpoints = QCheckBox("Stop at breakpoints", objectName="replayBreakpoints")
        self.breakpoints.setChecked(True)
        form = QFormLayout()
        form.addRow("Start at", self.start)
        form.addRow("Definition", self.definition)
        form.addRow("", self.breakpoints)

        self.edit_input = QCheckBox("Edit the input", objectName="replayEditInput")
        self.input = JsonEdit("input")
        self.input.setObjectName("replayInput")
        self.input.set_read_only(True)
        self.input_note = QLabel(objectName="replayInputNote")
        self.input_note.setWordWrap(True)
        input_box = QGroupBox("Input (trigger payload)")
        input_layout = QVBoxLayout(input_box)
        input_layout.addWidget(self.edit_input)
        input_layout.addWidget(self.input, 1)
        input_layout.addWidget(self.input_note)

        self.mocks = QTableWidget(0, 3, objectName="replayMocks")
        self.mocks.setHorizontalHeaderLabels(["Step", "Mode", "Mock output (JSON)"])
        self.mocks.verticalHeader().hide()
        self.mocks.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.mocks.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.mocks.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        mocks_box = QGroupBox("Steps")
        QVBoxLayout(mocks_box).addWidget(self.mocks)

        self.plan_table = QTableWidget(0, 3, objectName="replayPlan")
        self.plan_table.setHorizontalHeaderLabels(["Step", "Action", "Why"])
        self.plan_table.verticalHeader().hide()
        self.plan_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.plan_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.plan_table.horizontalHeader().setStretchLastSection(True)
        self.plan_status = QLabel(objectName="replayPlanStatus")
        self.plan_status.setWordWrap(True)
        plan_box = QGroupBox("Plan (nothing has run yet)")
        plan_layout = QVBoxLayout(plan_box)
        plan_layout.addWidget(self.plan_table, 1)
        plan_layout.addWidget(self.plan_status)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addLayout(form)
        left_layout.addWidget(input_box, 1)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(mocks_box)
        right.addWidget(plan_box)
        body = QSplitter(Qt.Orientation.Horizontal)
        body.addWidget(left)
        body.addWidget(right)
        body.setStretchFactor(1, 1)

        self.buttons = QDialogButtonBox()
        self.run_button = QPushButton("Replay", objectName="replayRun")
        self.run_button.setDefault(True)
        self.buttons.addButton(self.run_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.buttons.rejected.connect(self.reject)
        self.run_button.clicked.connect(lambda: asyncqt.spawn(self.replay(), what="The replay"))
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addWidget(body, 1)
        layout.addWidget(self.buttons)

        self._timer = QTimer(self, singleShot=True, interval=PLAN_DELAY_MS)
        self._timer.timeout.connect(lambda: asyncqt.spawn(self.refresh_plan(), what="The replay plan"))
        self.start.currentIndexChanged.connect(self._start_changed)
        self.definition.currentIndexChanged.connect(self._changed)
        self.breakpoints.toggled.connect(self._changed)
        self.edit_input.toggled.connect(self._edit_input_toggled)
        self.input.edited.connect(self._changed)
        self.header.setText(f"Loading execution {execution_id}…")
        self._show_plan_state()

    @classmethod
    def open_for(cls, service: StudioService, execution_id: str,
                 parent: QWidget | None = None) -> ReplayDialog:
        """Open the dialog window-modally for ``execution_id``; it loads in the background and
        deletes itself when closed. Connect ``replayed`` to open the new execution."""
        dialog = cls(service, execution_id, parent)
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()
        asyncqt.spawn(dialog.load(), what="Loading the execution to replay")
        return dialog

    def _alive(self) -> bool:
        return shiboken6.isValid(self)  # closed (and deleted) while a call was awaited

    # -- loading -----------------------------------------------------------------------
    async def load(self) -> None:
        """Read the original and its timeline, fill the choices, preview the exact replay."""
        try:
            timeline = await self.service.timeline(self.execution_id)
        except ServiceError as exc:
            if not self._alive():
                return
            self.header.setText(f"Cannot replay execution {self.execution_id}: {exc}")
            self._loading = False
            self._show_plan_state()
            return
        if not self._alive():
            return
        self.original = original = timeline.execution
        seen: set[str] = set()
        self.steps = []
        for run in timeline.steps:
            if "/" not in run.path and run.path not in seen:
                seen.add(run.path)
                self.steps.append(run)
        self.header.setText(
            f"Replay <b>{original.pipeline}</b> execution <code>{original.id[:12]}</code> "
            f"({original.status}, {original.trigger_type}). The original is never changed: "
            "the replay is a new execution linked to it.")
        self.definition.setItemText(0, f"Original snapshot ({original.definition_hash[:10] or 'unknown'})")
        self.start.blockSignals(True)
        self.start.addItem("Trigger: run every step", None)
        for run in self.steps:
            self.start.addItem(f"Step {run.path} ({run.status})", run.path)
        self.start.blockSignals(False)
        self.input.set_value(original.trigger_payload)
        self._fill_mocks()
        self._loading = False
        self._start_changed()
        await self.refresh_plan()

    def _fill_mocks(self) -> None:
        self.mocks.setRowCount(len(self.steps))
        for row, run in enumerate(self.steps):
            name = QTableWidgetItem(run.path)
            name.setFlags(Qt.ItemFlag.ItemIsEnabled)
            name.setToolTip(f"{run.type}: {run.status} in the original")
            self.mocks.setItem(row, 0, name)
            mode = QComboBox()
            mode.setObjectName(f"replayMode:{run.path}")
            for key, text in STEP_MODES:
                mode.addItem(text, key)
            mode.currentIndexChanged.connect(lambda _i, r=row: self._mode_changed(r))
            self.mocks.setCellWidget(row, 1, mode)
            value = QLineEdit()
            value.setObjectName(f"replayMock:{run.path}")
            value.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
            value.setEnabled(False)
            value.setPlaceholderText("the step's output as JSON")
            value.textEdited.connect(lambda _t, r=row: self._mock_edited(r))
            self.mocks.setCellWidget(row, 2, value)

    # -- reading the choices -----------------------------------------------------------
    def from_step(self) -> str | None:
        return self.start.currentData()

    def set_from_step(self, step: str | None) -> None:
        """Choose the start point (None: the trigger)."""
        index = self.start.findData(step) if step is not None else 0
        if index < 0:
            raise ValueError(f"step {step!r} did not run in the original")
        self.start.setCurrentIndex(index)

    def mode_combo(self, step: str) -> QComboBox:
        return self.mocks.cellWidget(self._row(step), 1)  # type: ignore[return-value]

    def mock_field(self, step: str) -> QLineEdit:
        return self.mocks.cellWidget(self._row(step), 2)  # type: ignore[return-value]

    def set_step_mode(self, step: str, mode: str, output: Any = None) -> None:
        """Run, reuse or mock ``step`` (with ``output`` as the mock's JSON when given)."""
        combo = self.mode_combo(step)
        combo.setCurrentIndex(combo.findData(mode))
        if output is not None:
            self.mock_field(step).setText(json.dumps(output))
            self._mock_edited(self._row(step))

    def _row(self, step: str) -> int:
        for row, run in enumerate(self.steps):
            if run.path == step:
                return row
        raise KeyError(step)

    def options(self, wait: bool = False) -> ReplayOptions:
        """The ReplayOptions the dialog shows; OptionsError when a JSON field does not parse."""
        if self.original is None:
            raise OptionsError("the original execution is not loaded")
        mocks: dict[str, Any] = {}
        recorded: list[str] = []
        for row, run in enumerate(self.steps):
            mode = self.mocks.cellWidget(row, 1).currentData()  # type: ignore[union-attr]
            if mode == REUSE:
                recorded.append(run.path)
            elif mode == MOCK:
                text = self.mocks.cellWidget(row, 2).text()  # type: ignore[union-attr]
                try:
                    mocks[run.path] = parse_json(text or "null", f"mock of {run.path}")
                except InputError as exc:
                    raise OptionsError(exc.message) from None
        current_definition = bool(self.definition.currentData())
        start = self.from_step()
        patch: list[dict[str, Any]] = []
        if start is None and self.edit_input.isChecked():
            try:
                edited = self.input.value()
            except InputError as exc:
                raise OptionsError(exc.message) from None
            patch = list(jsonpatch.make_patch(self.original.trigger_payload, edited).patch)
        if start is not None:
            mode = "from_step"
        elif patch or mocks or recorded or current_definition:
            mode = "modified"
        else:
            mode = "exact"
        return ReplayOptions(mode=mode, from_step=start, patch=patch or None,
                             use_current_definition=current_definition, mocks=mocks,
                             use_recorded_mocks=recorded, breakpoints=self.breakpoints.isChecked(),
                             wait=wait)

    # -- the plan ----------------------------------------------------------------------
    def plan(self) -> ReplayPlan | None:
        """The plan shown, when it is the plan of the options shown."""
        return self._plan if self._plan_is_current() else None

    async def refresh_plan(self) -> ReplayPlan | None:
        """Ask the service for the plan of the options as they are now (nothing runs)."""
        self._timer.stop()
        if self.original is None:
            return None
        generation = self._generation.next()
        try:
            options = self.options()
        except OptionsError as exc:
            self._set_plan(None, None, str(exc))
            return None
        key = options.model_dump_json()
        try:
            plan = await self.service.replay_plan(self.execution_id, options)
        except ServiceError as exc:
            if self._alive() and self._generation.is_current(generation):
                self._set_plan(None, None, str(exc))
            return None
        if not self._alive() or not self._generation.is_current(generation):
            return None  # the options changed while it was computed: a newer request follows
        self._set_plan(plan, key, "")
        return plan

    def _set_plan(self, plan: ReplayPlan | None, key: str | None, error: str) -> None:
        self._plan, self._plan_key = plan, key
        c = theme.colors()
        colours = {"reuse": c.accent, "mock": c.warning, "run": c.ok, "skip": c.muted}
        steps = plan.steps if plan is not None else []
        self.plan_table.setRowCount(len(steps))
        for row, step in enumerate(steps):
            action = QTableWidgetItem(ACTION_TEXT.get(step.action, step.action))
            action.setForeground(QBrush(QColor(colours.get(step.action, c.text))))
            action.setData(Qt.ItemDataRole.UserRole, step.action)
            for column, item in enumerate((QTableWidgetItem(step.path), action,
                                           QTableWidgetItem(step.reason))):
                self.plan_table.setItem(row, column, item)
        self._error = error
        self._show_plan_state()
        self.planChanged.emit(plan)

    def _plan_is_current(self) -> bool:
        if self._plan is None or self._plan_key is None or self._timer.isActive():
            return False
        try:
            return self.options().model_dump_json() == self._plan_key
        except OptionsError:
            return False

    def _show_plan_state(self) -> None:
        c = theme.colors()
        error = self._error
        if self._loading:
            text, colour = "Loading…", c.muted
        elif error:
            text, colour = error, c.error
        elif self._plan is None or self._timer.isActive():
            text, colour = "Updating the plan…", c.muted
        else:
            counts: dict[str, int] = {}
            for step in self._plan.steps:
                counts[step.action] = counts.get(step.action, 0) + 1
            parts = [f"{n} {ACTION_TEXT.get(a, a)}" for a, n in counts.items()]
            text = f"{self._plan.mode} replay: {', '.join(parts) or 'no steps'}"
            if self._plan.definition_changed:
                text += f"; runs a changed definition ({self._plan.definition_hash[:10]})"
            colour = c.text
        self.plan_status.setText(text)
        self.plan_status.setStyleSheet(f"color: {colour};")
        self.run_button.setEnabled(self._plan_is_current() and not error)

    def _changed(self, *_args: object) -> None:
        if self._loading:
            return
        self._error = ""
        self._timer.start()
        self._show_plan_state()

    # -- reacting to the choices -------------------------------------------------------
    def _start_changed(self, _index: int = -1) -> None:
        from_step = self.from_step() is not None
        self.edit_input.setEnabled(not from_step)
        self.input.set_read_only(from_step or not self.edit_input.isChecked())
        self.input_note.setText(
            "From a step, the original input is replayed: the steps before it reuse their "
            "recorded outputs, which already carry it." if from_step else
            "The edited input is sent as a JSON Patch of the original." if self.edit_input.isChecked()
            else "The original input is replayed.")
        self._changed()

    def _edit_input_toggled(self, on: bool) -> None:
        if self.original is None:
            return
        if on:
            self.input.set_text(self._edited_input if self._edited_input is not None
                                else self.input.text())
        else:
            self._edited_input = self.input.text()  # kept for when editing is turned back on
            self.input.set_value(self.original.trigger_payload)
        self._start_changed()

    def _mode_changed(self, row: int) -> None:
        mode = self.mocks.cellWidget(row, 1).currentData()  # type: ignore[union-attr]
        field: QLineEdit = self.mocks.cellWidget(row, 2)  # type: ignore[assignment]
        field.setEnabled(mode == MOCK)
        if mode == MOCK and not field.text():
            asyncqt.spawn(self._prefill(row), what="Reading recorded outputs")
        self._changed()

    async def _prefill(self, row: int) -> None:
        """Start a mock from the step's recorded output (the usual starting point)."""
        outputs = await self.recorded_outputs()
        if not self._alive():
            return
        field: QLineEdit = self.mocks.cellWidget(row, 2)  # type: ignore[assignment]
        path = self.steps[row].path
        if not field.text() and path in outputs:
            field.setText(compact(outputs[path], 1_000_000))
            self._mock_edited(row)

    async def recorded_outputs(self) -> dict[str, Any]:
        """The last recorded output per step path of the original (read once, in pages)."""
        if self._outputs is None:
            outputs: dict[str, Any] = {}
            after = 0
            while True:
                # step.completed carries the output; stores of 0.1.0 and earlier: step.output
                page = await self.service.events(self.execution_id, after_seq=after,
                                                 types=list(OUTPUT_EVENTS), limit=OUTPUT_PAGE)
                for event in page:
                    if carries_output(event.type, event.data):
                        outputs[str(event.data.get("path") or event.data.get("step"))] = event.data["output"]
                if len(page) < OUTPUT_PAGE:
                    break
                after = page[-1].seq
            self._outputs = outputs
        return self._outputs

    def _mock_edited(self, row: int) -> None:
        field: QLineEdit = self.mocks.cellWidget(row, 2)  # type: ignore[assignment]
        try:
            parse_json(field.text() or "null")
            field.setStyleSheet("")
            field.setToolTip("")
        except InputError as exc:
            field.setStyleSheet(f"QLineEdit {{ border: 1px solid {theme.colors().error}; }}")
            field.setToolTip(exc.message)
        self._changed()

    # -- running -----------------------------------------------------------------------
    async def replay(self) -> str | None:
        """Start the previewed replay; the new execution's id (None when it was refused)."""
        if not self._plan_is_current():
            return None
        options = self.options(wait=False)
        self.run_button.setEnabled(False)
        try:
            result = await self.service.replay(self.execution_id, options)
        except ServiceError as exc:
            if self._alive():
                self._error = str(exc)
                self._show_plan_state()
            return None
        if not self._alive():
            return result.execution_id  # started; the dialog was closed meanwhile
        self.replayed.emit(self.execution_id, result.execution_id)
        self.accept()
        return result.execution_id

