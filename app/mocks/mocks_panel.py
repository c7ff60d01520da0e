"""The Mocks panel: every step mock of the service, edited in place.

The table lists the mocks (of one pipeline or all); its checkbox turns a mock on or off.
Selecting a mock opens it in the editor below: mode, delay and the value as JSON (the
output, or the error for an error mock), checked as typed, with the caret sent to the
first mistake when saving. Edits not saved yet are kept per mock (the row is marked ✎)
when another mock is selected, so switching never loses typing. Add, remove and clear all
(which asks first) complete the set. All service calls run on the qasync loop.
"""

from __future__ import annotations

from typing import Any, Final

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.asyncqt import describe, spawn
from app.debugger.json_edit import JsonEdit
from app.icons import icon
from app.mocks.add_dialog import MockAddDialog
from app.mocks.mocks_model import (
    DELAY,
    ENABLED,
    HITS,
    ID_ROLE,
    MODE,
    PIPELINE,
    STEP,
    VALUE,
    MocksModel,
    mock_value,
)
from app.mocks.value_check import ERROR_TEMPLATE, MODE_HINTS, MODES, check_value
from app.panes import MessageLine, confirm, merge_names, select_rows, selected_ids, setup_table
from app.run.http_input import InputError
from app.selection import SelectionHub
from app.stale import Generation, Token
from engine.service.errors import ServiceError
from engine.service.models import Mock, MockMode
from engine.service.protocol import StudioService

COLUMN_WIDTHS: Final = {ENABLED: 36, PIPELINE: 130, STEP: 140, MODE: 70, VALUE: 260, DELAY: 70, HITS: 50}


class _Draft:
    """Unsaved editor state of one mock."""

    __slots__ = ("delay", "mode", "text")

    def __init__(self, mode: str, delay: float, text: str):
        self.mode, self.delay, self.text = mode, delay, text


class MocksPanel(QWidget):
    mocksChanged = Signal()  # a mock was added, changed or removed here
    statusMessage = Signal(str)

    def __init__(self, hub: SelectionHub, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("mocksPanel")
        self.hub = hub
        self.service: StudioService | None = None
        self._generation = Generation()
        self._pipelines: list[Any] = []  # PipelineInfo of the service, for the add dialog
        self._drafts: dict[str, _Draft] = {}
        self._editing: str | None = None  # the mock id the editor shows
        self._loading = False
        self.model = MocksModel(self)
        self.model.enabledToggled.connect(self.set_enabled)
        self._build()

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        self.pipeline_filter = QComboBox(objectName="mocksFilterPipeline")
        self.pipeline_filter.addItem("All pipelines", None)
        self.pipeline_filter.setMinimumContentsLength(14)
        self.pipeline_filter.currentIndexChanged.connect(self.refresh)
        refresh = QToolButton(objectName="mocksRefresh")
        refresh.setIcon(icon("reset"))
        refresh.setToolTip("Reload the mocks")
        refresh.clicked.connect(self.refresh)
        self.add_button = QPushButton("Add…", objectName="mocksAdd")
        self.add_button.setIcon(icon("add"))
        self.add_button.clicked.connect(self.open_add_dialog)
        self.remove_button = QPushButton("Remove", objectName="mocksRemove")
        self.remove_button.setIcon(icon("remove"))
        self.remove_button.clicked.connect(self.remove_selected)
        self.clear_button = QPushButton("Clear all…", objectName="mocksClear")
        self.clear_button.setIcon(icon("delete"))
        self.clear_button.clicked.connect(self.ask_clear)
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 4, 4, 0)
        bar.addWidget(self.pipeline_filter)
        bar.addWidget(refresh)
        bar.addStretch(1)
        for button in (self.add_button, self.remove_button, self.clear_button):
            bar.addWidget(button)

        view = self.view = setup_table(QTableView(objectName="mocksView"), self.model, COLUMN_WIDTHS)
        view.selectionModel().selectionChanged.connect(self._selection_changed)

        editor = self.editor = QWidget(objectName="mockEditor")
        self.title = QLabel("Select a mock to edit it", objectName="mockTitle")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.mode = QComboBox(objectName="mockMode")
        for m in MODES:
            self.mode.addItem(m, m)
        self.delay = QDoubleSpinBox(objectName="mockDelay")
        self.delay.setRange(0, 3_600_000)
        self.delay.setDecimals(0)
        self.delay.setSuffix(" ms")
        self.hint = QLabel(objectName="mockHint")
        self.hint.setWordWrap(True)
        self.value = JsonEdit("value")
        self.value.setObjectName("mockValue")
        self.save_button = QPushButton("Save", objectName="mockSave")
        self.save_button.clicked.connect(self.save_current)
        self.revert_button = QPushButton("Revert", objectName="mockRevert")
        self.revert_button.clicked.connect(self.revert_current)
        self.mode.currentIndexChanged.connect(self._mode_changed)
        self.delay.valueChanged.connect(self._edited)
        self.value.edited.connect(self._edited)
        row = QHBoxLayout()
        row.addWidget(QLabel("Mode"))
        row.addWidget(self.mode)
        row.addWidget(QLabel("Delay"))
        row.addWidget(self.delay)
        row.addStretch(1)
        row.addWidget(self.revert_button)
        row.addWidget(self.save_button)
        editor_layout = QVBoxLayout(editor)
        editor_layout.setContentsMargins(4, 0, 4, 0)
        editor_layout.addWidget(self.title)
        editor_layout.addLayout(row)
        editor_layout.addWidget(self.hint)
        editor_layout.addWidget(self.value, 1)

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(view)
        splitter.addWidget(editor)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)
        self.message = MessageLine("mocksMessage")
        self.message.said.connect(self.statusMessage)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(bar)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.message)
        self._show_editor(None)
        self._update_actions()

    # ------------------------------------------------------------------ service

    def set_service(self, service: StudioService | None) -> None:
        """Show ``service``'s mocks (None: nothing). Unsaved edits belong to the old service."""
        self.service = service
        self._generation.invalidate()
        self._drafts.clear()
        self.model.reset([])
        self._show_editor(None)
        self.message.say("")
        if service is not None:
            spawn(self._load_pipelines(service), what="Listing pipelines")
            self.refresh()
        self._update_actions()

    def refresh(self) -> None:
        if self.service is None:
            return
        spawn(self._load(self.service, self._generation.next()), what="Listing mocks")

    async def _load(self, service: StudioService, generation: Token) -> None:
        try:
            mocks = await service.list_mocks(self.pipeline_filter.currentData())
        except ServiceError as exc:
            if self._generation.is_current(generation):
                self.message.say(f"Could not list the mocks: {describe(exc)}", error=True)
            return
        if not self._generation.is_current(generation) or service is not self.service:
            return
        self._stash()
        selected = self.selected_ids()
        self.model.reset(mocks)
        known = {m.id for m in mocks}
        for gone in set(self._drafts) - known:  # removed elsewhere: its draft has nowhere to go
            del self._drafts[gone]
        self.model.set_drafts(set(self._drafts))
        merge_names(self.pipeline_filter, {m.pipeline for m in mocks})
        self.select([i for i in selected if i in known])
        ids = self.selected_ids()
        # The editor shows the fresh mock (hit count, …), or its draft when one is kept.
        self._show_editor(self.model.by_id(ids[0]) if len(ids) == 1 else None)
        self._update_actions()

    async def _load_pipelines(self, service: StudioService) -> None:
        pipelines = await service.list_pipelines()
        if service is self.service:
            self._pipelines = pipelines
            merge_names(self.pipeline_filter, {p.name for p in pipelines})

    # ------------------------------------------------------------------ selection

    def selected_ids(self) -> list[str]:
        return selected_ids(self.view, ID_ROLE)

    def select(self, mock_ids: list[str]) -> None:
        select_rows(self.view, (self.model.index(self.model.row_of(i), 0) for i in mock_ids))

    def _selection_changed(self) -> None:
        ids = self.selected_ids()
        mock = self.model.by_id(ids[0]) if len(ids) == 1 else None
        if mock is None or mock.id != self._editing:
            self._stash()
            self._show_editor(mock)
        self._update_actions()

    def _update_actions(self) -> None:
        has = self.service is not None
        self.add_button.setEnabled(has)
        self.remove_button.setEnabled(has and bool(self.selected_ids()))
        self.clear_button.setEnabled(has and self.model.rowCount() > 0)

    # ------------------------------------------------------------------ the editor

    def _show_editor(self, mock: Mock | None) -> None:
        self._editing = mock.id if mock else None
        self._loading = True
        try:
            if mock is None:
                self.title.setText("Select a mock to edit it")
                self.value.clear()
                self.mode.setCurrentIndex(0)
                self.delay.setValue(0)
            else:
                draft = self._drafts.get(mock.id)
                origin = mock.source_execution_id
                source = f" · recorded from {origin[:12]}" if origin else ""
                self.title.setText(f"<b>{mock.pipeline}</b> / {mock.step} · {mock.hit_count} hits{source}")
                self.mode.setCurrentIndex(max(0, self.mode.findData(draft.mode if draft else mock.mode)))
                self.delay.setValue(draft.delay if draft else mock.delay_ms)
                if draft:
                    self.value.set_text(draft.text)
                else:
                    self.value.set_value(mock_value(mock))
        finally:
            self._loading = False
        self.hint.setText(MODE_HINTS[str(self.mode.currentData())] if mock else "")
        self.editor.setEnabled(mock is not None)
        self._update_editor_state()

    def _current_mock(self) -> Mock | None:
        return self.model.by_id(self._editing) if self._editing else None

    def _is_dirty(self) -> bool:
        mock = self._current_mock()
        if mock is None:
            return False
        if str(self.mode.currentData()) != mock.mode or self.delay.value() != mock.delay_ms:
            return True
        try:
            return bool(self.value.value() != mock_value(mock))
        except InputError:
            return True

    def _stash(self) -> None:
        """Keep the editor's unsaved edits of the mock it shows."""
        if self._editing is None or self._loading:
            return
        if self._is_dirty():
            self._drafts[self._editing] = _Draft(str(self.mode.currentData()), self.delay.value(),
                                                 self.value.text())
        else:
            self._drafts.pop(self._editing, None)
        self.model.set_drafts(set(self._drafts))

    def _edited(self, *_args: object) -> None:
        if not self._loading:
            self._stash()
            self._update_editor_state()

    def _mode_changed(self) -> None:
        mode = str(self.mode.currentData())
        self.hint.setText(MODE_HINTS[mode])
        mock = self._current_mock()
        if self._loading or mock is None:
            return
        # An untouched value follows the mode: the error for an error mock, else the output.
        try:
            untouched = self.value.value() in (mock_value(mock), mock.output, mock.error, ERROR_TEMPLATE)
        except InputError:
            untouched = False
        if untouched:
            self._loading = True
            try:
                if mode == "error":
                    self.value.set_value(mock.error or ERROR_TEMPLATE)
                else:
                    self.value.set_value(mock.output)
            finally:
                self._loading = False
        self._edited()

    def _update_editor_state(self) -> None:
        dirty = self._is_dirty()
        self.save_button.setEnabled(dirty)
        self.revert_button.setEnabled(dirty)

    def revert_current(self) -> None:
        mock = self._current_mock()
        if mock is not None:
            self._drafts.pop(mock.id, None)
            self.model.set_drafts(set(self._drafts))
            self._show_editor(mock)

    def save_current(self) -> None:
        """Check the editor's value for its mode and save it (the mock keeps its on/off state)."""
        mock = self._current_mock()
        if mock is None or self.service is None:
            return
        mode = str(self.mode.currentData())
        try:
            value = self.value.value()
            check_value(mode, value)
        except InputError as exc:
            self.value.show_error(exc.message)
            self.value.go_to_error()
            self.message.say(f"Not saved: {exc.message}", error=True)
            return
        self._stash()
        spawn(self._save(self.service, mock, mode, value, self.delay.value()), what="Saving the mock")

    async def _save(self, service: StudioService, mock: Mock, mode: str, value: Any, delay: float) -> None:
        try:
            saved = await self._set(service, mock.pipeline, mock.step, mode, value, delay, mock.enabled,
                                    keep_output=mock.output)
        except ServiceError as exc:
            self.value.show_error(describe(exc))
            self.message.say(f"Not saved: {describe(exc)}", error=True)
            return
        if service is not self.service:
            return
        self._drafts.pop(saved.id, None)
        self.model.set_drafts(set(self._drafts))
        self.model.replace(saved)
        if self._editing == saved.id:
            self._show_editor(saved)
        self.message.say(f"Saved the mock of {saved.pipeline}/{saved.step}")
        self.mocksChanged.emit()

    @staticmethod
    async def _set(service: StudioService, pipeline: str, step: str, mode: str, value: Any, delay: float,
                   enabled: bool, keep_output: Any = None) -> Mock:
        m: MockMode = "error" if mode == "error" else "recorded" if mode == "recorded" else "fixed"
        if m == "error":
            return await service.set_mock(pipeline, step, mode=m, output=keep_output, error=value,
                                          delay_ms=delay, enabled=enabled)
        return await service.set_mock(pipeline, step, mode=m, output=value, delay_ms=delay, enabled=enabled)

    # ------------------------------------------------------------------ on / off, add, remove, clear

    def set_enabled(self, mock_id: str, enabled: bool) -> None:
        mock = self.model.by_id(mock_id)
        if mock is None or self.service is None:
            return
        spawn(self._toggle(self.service, mock, enabled), what="Switching the mock")

    async def _toggle(self, service: StudioService, mock: Mock, enabled: bool) -> None:
        try:
            saved = await service.set_mock(mock.pipeline, mock.step, mode=mock.mode, output=mock.output,
                                           error=mock.error, delay_ms=mock.delay_ms, enabled=enabled)
        except ServiceError as exc:
            self.message.say(f"Could not switch the mock {'on' if enabled else 'off'}: {describe(exc)}",
                             error=True)
            return
        if service is self.service:
            self.model.replace(saved)
            self.message.say(f"Mock of {saved.pipeline}/{saved.step} {'on' if saved.enabled else 'off'}")
            self.mocksChanged.emit()

    def open_add_dialog(self) -> None:
        service = self.service
        if service is None:
            return

        async def submit(pipeline: str, step: str, mode: str, value: Any, delay: float) -> Mock:
            return await self._set(service, pipeline, step, mode, value, delay, True)

        dialog = MockAddDialog(self._pipelines, self.model.items(), submit,
                               self.pipeline_filter.currentData(), self)
        # Deleted when answered (not WA_DeleteOnClose: deleting such a window after its answer hid
        # its parent crashes PySide).
        dialog.finished.connect(dialog.deleteLater)
        dialog.accepted.connect(lambda: self._added(dialog.saved))
        dialog.open()

    def _added(self, mock: Mock | None) -> None:
        if mock is None:
            return
        self.message.say(f"Added a mock of {mock.pipeline}/{mock.step}")
        self.mocksChanged.emit()
        generation = self._generation.next()
        if self.service is not None:
            spawn(self._load_then_select(self.service, generation, mock.id), what="Listing mocks")

    async def _load_then_select(self, service: StudioService, generation: Token, mock_id: str) -> None:
        await self._load(service, generation)
        if self._generation.is_current(generation):
            self.select([mock_id])

    def remove_selected(self) -> None:
        ids = self.selected_ids()
        if self.service is not None and ids:
            spawn(self._remove(self.service, ids), what="Removing mocks")

    async def _remove(self, service: StudioService, ids: list[str]) -> None:
        removed, problems = 0, []
        for mock_id in ids:
            try:
                await service.remove_mock(mock_id)
            except ServiceError as exc:
                problems.append(describe(exc))
                continue
            removed += 1
            self._drafts.pop(mock_id, None)
        text = f"Removed {removed} mock{'s' if removed != 1 else ''}"
        self.message.say(text + (f"; {problems[0]}" if problems else ""), error=bool(problems))
        self.mocksChanged.emit()
        if service is self.service:
            self.refresh()

    def ask_clear(self) -> None:
        if self.service is None:
            return
        pipeline = self.pipeline_filter.currentData()
        what = f"every mock of pipeline {pipeline!r}" if pipeline else "every mock of every pipeline"

        def clear() -> None:
            if self.service is not None:
                spawn(self._clear(self.service, pipeline), what="Clearing mocks")

        confirm(self, "mocksClearConfirm", "Clear mocks", f"Remove {what}? Steps will run for real again.",
                "Clear", clear)

    async def _clear(self, service: StudioService, pipeline: str | None) -> None:
        try:
            count = await service.clear_mocks(pipeline)
        except ServiceError as exc:
            self.message.say(f"Nothing was cleared: {describe(exc)}", error=True)
            return
        self.message.say(f"Removed {count} mock{'s' if count != 1 else ''}")
        self.mocksChanged.emit()
        if service is self.service:
            self.refresh()

