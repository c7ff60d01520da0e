"""The studio's main window: docks around a tab per open file, menus, palette, status bar.

The window owns no data of its own: documents hold the text, the backend holds the
service, panels observe them. What it does is route: a selection to the property panel, a
save to the backend, a diagnostic to the problems panel and the editor, a run to the
output panel.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app import asyncqt, theme
from app.backend import Backend
from app.connections.connection_dialog import ConnectionDialog
from app.connections.connection_manager import ConnectionManager
from app.connections.profiles import Profile
from app.connections.status import ConnectionStatus
from app.debugger.breakpoints_panel import BreakpointsPanel
from app.debugger.pane import DebuggerPane
from app.dlq.dlq_panel import DlqPanel
from app.editor.connector_panel import ConnectorPanel
from app.editor.outline import TypeShape, type_shapes
from app.editor.palette import StepPalette
from app.editor.pipeline_editor import PipelineEditor
from app.editor.properties import PropertyPanel
from app.executions.event_list import EventList
from app.executions.executions_panel import ExecutionsPanel
from app.executions.inspector import Inspector
from app.icons import icon
from app.mocks.mocks_panel import MocksPanel
from app.replay.diff_pane import DiffPane
from app.replay.replay_dialog import ReplayDialog
from app.run.output_panel import OutputPanel, run_pipeline
from app.run.run_dialog import RunDialog
from app.run.samples import first_file, load_samples, samples_for
from app.selection import SelectionHub
from app.settings import Settings
from app.shell.command_palette import CommandPalette
from app.shell.editor_area import EditorArea
from app.shell.geometry import fit_to_screen
from app.shell.welcome import WelcomeStrip
from app.sources.sources_pane import SourcesPane
from app.workspace.problems import ProblemsPanel
from app.workspace.tree import WorkspaceTree
from app.workspace.watcher import FileWatcher
from engine import __version__
from engine.service.models import Breakpoint, DiagnosticInfo
from engine.service.protocol import StudioService

if TYPE_CHECKING:
    from app.executions.timeline import TimelinePane


class MainWindow(QMainWindow):
    backendReady = Signal()

    def __init__(self, settings: Settings, workspace: Path, parent: QWidget | None = None, *,
                 connections: ConnectionManager | None = None) -> None:
        super().__init__(parent)
        self.connections = connections  # None: the backend is set by whoever made the window
        self.setObjectName("mainWindow")
        self.setWindowIcon(icon("wfstudio"))
        self.settings = settings
        self.workspace = workspace
        self.backend: Backend | None = None
        self._fit_on_show = False  # restore_state() fits the window again once its frame is known
        self._center = False
        self._problem_files: dict[str, list[DiagnosticInfo]] = {}

        self.tabs = EditorArea()
        self.undo_group = self.tabs.undo_group
        self.tabs.editorOpened.connect(self._editor_opened)
        self.tabs.editorChanged.connect(self._editor_changed)
        self.tabs.fileSaved.connect(self._file_saved)
        self.tabs.fileGone.connect(self._file_gone)
        self.tabs.openFilesChanged.connect(self._remember_open_files)
        self.tabs.failed.connect(self._show_error)
        self.tabs.status.connect(lambda text: self.statusBar().showMessage(text, 4000))
        self.welcome = WelcomeStrip()  # first start only: what to try, until dismissed
        self.welcome.setVisible(not settings.welcome_dismissed())
        self.welcome.dismissed.connect(settings.set_welcome_dismissed)
        self.welcome.actionRequested.connect(self._trigger_named)
        central = QWidget(objectName="centralArea")
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.welcome)
        column.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        self.tree = WorkspaceTree()
        self.palette = StepPalette()
        self.properties = PropertyPanel()
        self.connector_panel = ConnectorPanel()
        # The Properties dock shows the selected step or the selected connector.
        self.property_stack = QStackedWidget(objectName="propertyStack")
        self.property_stack.addWidget(self.properties)
        self.property_stack.addWidget(self.connector_panel)
        self.problems = ProblemsPanel()
        self.output = OutputPanel()
        self.hub = SelectionHub(self)
        self.executions = ExecutionsPanel(self.hub)
        self._timeline: TimelinePane | None = None  # built just after the window shows (pyqtgraph)
        self.inspector = Inspector(self.hub)
        self.events = EventList(self.hub)
        self.debugger = DebuggerPane(self.hub)
        self.breakpoints = BreakpointsPanel(self.hub)
        self.dlq = DlqPanel(self.hub)
        self.mocks = MocksPanel(self.hub)
        self.diff = DiffPane(self.hub)
        self.sources = SourcesPane(self.hub)
        self._service_panes: list[QWidget] = [self.executions, self.inspector, self.events, self.debugger,
                                              self.breakpoints, self.dlq, self.mocks, self.diff,
                                              self.sources]
        self.docks: dict[str, QDockWidget] = {}
        self._dock("Workspace", self.tree, Qt.DockWidgetArea.LeftDockWidgetArea)
        self._dock("Steps", self.palette, Qt.DockWidgetArea.LeftDockWidgetArea)
        self._dock("Properties", self.property_stack, Qt.DockWidgetArea.RightDockWidgetArea)
        self._dock("Problems", self.problems, Qt.DockWidgetArea.BottomDockWidgetArea)
        self._dock("Output", self.output, Qt.DockWidgetArea.BottomDockWidgetArea)
        self._dock("Executions", self.executions, Qt.DockWidgetArea.BottomDockWidgetArea)
        self._dock("Timeline", QLabel("Loading the timeline…", alignment=Qt.AlignmentFlag.AlignCenter),
                   Qt.DockWidgetArea.BottomDockWidgetArea)
        QTimer.singleShot(0, lambda: self.timeline)
        self._dock("Events", self.events, Qt.DockWidgetArea.BottomDockWidgetArea)
        self._dock("Inspector", self.inspector, Qt.DockWidgetArea.RightDockWidgetArea)
        self._dock("Debugger", self.debugger, Qt.DockWidgetArea.RightDockWidgetArea)
        self._dock("Breakpoints", self.breakpoints, Qt.DockWidgetArea.BottomDockWidgetArea)
        self._dock("Dead Letters", self.dlq, Qt.DockWidgetArea.BottomDockWidgetArea)
        self._dock("Mocks", self.mocks, Qt.DockWidgetArea.BottomDockWidgetArea)
        self._dock("Diff", self.diff, Qt.DockWidgetArea.BottomDockWidgetArea)
        self._dock("Sources", self.sources, Qt.DockWidgetArea.BottomDockWidgetArea)
        for name in ("Output", "Executions", "Timeline", "Events", "Breakpoints", "Dead Letters", "Mocks",
                     "Diff", "Sources"):
            self.tabifyDockWidget(self.docks["Problems"], self.docks[name])
        self.tabifyDockWidget(self.docks["Properties"], self.docks["Inspector"])
        self.tabifyDockWidget(self.docks["Properties"], self.docks["Debugger"])
        self.docks["Problems"].raise_()
        self.docks["Properties"].raise_()
        self.resizeDocks([self.docks["Workspace"], self.docks["Properties"]], [240, 400],
                         Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["Problems"]], [240], Qt.Orientation.Vertical)

        self.backend_label = QLabel("Connecting…", objectName="backendLabel")
        self.connection_status = ConnectionStatus(connections) if connections is not None else None
        self.problem_label = QLabel("", objectName="problemCounts")
        self.cursor_label = QLabel("", objectName="cursorLabel")
        self.statusBar().addPermanentWidget(self.cursor_label)
        self.statusBar().addPermanentWidget(self.problem_label)
        self.statusBar().addPermanentWidget(self.backend_label)
        if self.connection_status is not None:  # it names the profile and the engine version
            self.backend_label.hide()
            self.statusBar().addPermanentWidget(self.connection_status)
            self.connection_status.manageRequested.connect(self.show_connections)

        self._build_actions()
        self.tree.set_root(workspace)
        self.tree.openRequested.connect(self.open_file)
        self.tree.fileRenamed.connect(self._file_renamed)
        self.tree.fileDeleted.connect(self.tabs.file_deleted)
        self.problems.jumpRequested.connect(self.jump_to)
        self.problems.countsChanged.connect(self._counts_changed)
        self.palette.insertRequested.connect(self.insert_step_type)
        self.properties.currentStepChanged.connect(self._panel_moved)
        self.properties.problemActivated.connect(
            lambda line, col: (e := self.current_editor()) is not None and e.go_to(line, col))
        self.connector_panel.problemActivated.connect(
            lambda line, col: (e := self.current_editor()) is not None and e.go_to(line, col))
        self.connector_panel.currentConnectorChanged.connect(
            lambda name: (e := self.current_editor()) is not None and e.connectors.select(name))
        asyncqt.errors.reported.connect(self._show_error)
        self.output.executionRequested.connect(self.open_execution)
        self.dlq.openExecution.connect(self.open_execution)
        self.sources.openExecution.connect(self.open_execution)
        self.sources.openDlqEntry.connect(self.open_dlq_entry)
        self.debugger.debug_actions.add_to(self)
        self.debugger.paused_panel.pausedAt.connect(self._paused_at)
        self.debugger.paused_panel.pausedChanged.connect(self._paused_changed)
        self.breakpoints.breakpointsChanged.connect(self._breakpoints_changed)
        if connections is not None:
            connections.connected.connect(self._connected)
            connections.reconnected.connect(self._reconnected)
        self.hub.stepRunSelected.connect(self._step_run_selected)
        for pane in (self.executions, self.inspector, self.events, self.dlq, self.mocks, self.sources):
            pane.statusMessage.connect(lambda text: self.statusBar().showMessage(text, 5000))
        self._editor_changed()
        self._counts_changed(0, 0)

    # ------------------------------------------------------------------ building

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> None:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock{title}")
        widget.setMinimumSize(120, 60)  # a dock may be squeezed; its content must not size the window
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        self.docks[title] = dock

    def _action(self, text: str, slot: object, shortcut: QKeySequence | str | None = None,
                icon_name: str = "", name: str = "") -> QAction:
        action = QAction(text, self)
        if name:
            action.setObjectName(name)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        if icon_name:
            action.setIcon(icon(icon_name))
        action.triggered.connect(slot)  # type: ignore[arg-type]
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        a = self._action
        S = QKeySequence.StandardKey
        self.act_new = a("&New Pipeline File…", self.new_file_dialog, S.New, "new-file", "actionNew")
        self.act_open = a("&Open Folder…", self.open_folder_dialog, "Ctrl+Shift+O", "open-folder",
                          "actionOpenFolder")
        self.act_save = a("&Save", self.save_current, S.Save, "save", "actionSave")
        self.act_save_all = a("Save A&ll", self.tabs.save_all, "Ctrl+Alt+S", "", "actionSaveAll")
        self.act_close = a("&Close Tab", lambda: self.close_tab(self.tabs.currentIndex()), S.Close,
                           "", "actionCloseTab")
        self.act_quit = a("&Quit", self.close, S.Quit, "", "actionQuit")
        self.act_undo = self.undo_group.createUndoAction(self, "&Undo")
        self.act_undo.setShortcut(S.Undo)
        self.act_undo.setIcon(icon("undo"))
        self.act_redo = self.undo_group.createRedoAction(self, "&Redo")
        self.act_redo.setShortcuts([QKeySequence(S.Redo), QKeySequence("Ctrl+Y")])
        self.act_redo.setIcon(icon("redo"))
        self.act_palette = a("Command &Palette…", self.show_command_palette, "Ctrl+Shift+P", "search",
                             "actionCommandPalette")
        self.act_run = a("&Run Pipeline…", self.run_current, "Ctrl+R", "run", "actionRun")
        self.act_run.setIconText("Run")  # the toolbar's one labelled button: the first thing to try
        self.act_validate = a("&Validate", self.validate_current, "Ctrl+Shift+V", "validate",
                              "actionValidate")
        # no shortcut here: the graph owns F (a second F action would make the key ambiguous)
        self.act_fit = a("Zoom to &Fit", lambda: self._graph_call("zoom_to_fit"), None, "zoom-fit",
                         "actionZoomFit")
        self.act_layout = a("Auto &Layout", lambda: self._graph_call("auto_layout"), "Ctrl+L", "layout",
                            "actionAutoLayout")
        self.act_theme = a("Toggle &Dark Theme", self.toggle_theme, "Ctrl+Shift+T", "theme",
                           "actionTheme")
        self.act_goto = a("&Go to Step…", self.go_to_step_dialog, "Ctrl+P", "", "actionGoToStep")
        self.act_breakpoint = a("Toggle &Breakpoint", self.toggle_breakpoint_here, "F9", "",
                                "actionToggleBreakpoint")
        self.act_replay = a("Re&play Execution…", self.replay_selected, "Ctrl+Shift+R", "", "actionReplay")
        self.act_compare = a("&Compare with Original", self.compare_with_original, "", "",
                             "actionCompareOriginal")
        self.act_connections = a("&Connections…", self.show_connections, "", "settings", "actionConnections")
        self.act_sources = a("Show &Sources", self.show_sources, "", "", "actionShowSources")
        for action in (self.act_undo, self.act_redo):
            self.addAction(action)

        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        for action in (self.act_new, self.act_open, None, self.act_save, self.act_save_all, None,
                       self.act_close, self.act_quit):
            file_menu.addSeparator() if action is None else file_menu.addAction(action)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        edit_menu = bar.addMenu("&Edit")
        edit_menu.addAction(self.act_undo)
        edit_menu.addAction(self.act_redo)
        edit_menu.addSeparator()
        edit_menu.addAction(self.act_goto)
        view_menu = bar.addMenu("&View")
        view_menu.addAction(self.act_palette)
        view_menu.addAction(self.act_fit)
        view_menu.addAction(self.act_layout)
        view_menu.addAction(self.act_theme)
        view_menu.addAction(self.act_sources)
        view_menu.addSeparator()
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())
        run_menu = bar.addMenu("&Run")
        run_menu.addAction(self.act_run)
        run_menu.addAction(self.act_validate)
        run_menu.addSeparator()
        run_menu.addAction(self.act_breakpoint)
        run_menu.addActions(list(self.debugger.debug_actions.actions.values()))
        run_menu.addSeparator()
        run_menu.addAction(self.act_replay)
        run_menu.addAction(self.act_compare)
        file_menu.insertAction(self.act_quit, self.act_connections)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self._action("&About Workflow Studio", self.about, None, "wfstudio",
                                         "actionAbout"))

        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("mainToolbar")
        toolbar.setMovable(False)
        for action in (self.act_new, self.act_save, None, self.act_undo, self.act_redo, None,
                       self.act_run, self.act_validate, None, self.act_fit, self.act_layout):
            if action is None:
                toolbar.addSeparator()
                continue
            toolbar.addAction(action)
            if action not in (self.act_undo, self.act_redo):  # those name what they undo, live
                keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
                action.setToolTip(f"{action.iconText()} ({keys})" if keys else action.iconText())
        run_button = toolbar.widgetForAction(self.act_run)
        if isinstance(run_button, QToolButton):
            run_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.main_toolbar = toolbar
        # after the main actions, and shown only while a run is paused (the usual debug toolbar)
        self.debugger.debug_actions.toolbar.setMovable(False)
        self.addToolBar(self.debugger.debug_actions.toolbar)

    @property
    def timeline(self) -> TimelinePane:
        """The timeline pane, built on first use: pyqtgraph and numpy cost a quarter of a
        second to import, which the window does not wait for."""
        if self._timeline is None:
            from app.executions.timeline import TimelinePane

            self._timeline = TimelinePane(self.hub)
            self._timeline.setMinimumSize(120, 60)
            self.docks["Timeline"].setWidget(self._timeline)
            self._service_panes.append(self._timeline)
            if self.backend is not None:
                self._timeline.set_service(self.backend.service)
        return self._timeline

    @property
    def service_panes(self) -> list[QWidget]:
        return list(self._service_panes)

    # ------------------------------------------------------------------ backend

    def set_backend(self, backend: Backend) -> None:
        """Connect every pane to ``backend`` (the embedded engine or a remote server)."""
        if self.backend is not None:
            self.backend.diagnosticsChanged.disconnect(self._diagnostics)
        self.backend = backend
        backend.diagnosticsChanged.connect(self._diagnostics)
        for pane in self.service_panes:
            pane.set_service(backend.service)
        infos = backend.type_infos
        self.palette.set_type_infos(infos)
        self.properties.set_type_infos(infos)
        self.connector_panel.set_connector_types(backend.connector_infos)
        self.properties.set_connector_types(backend.connector_infos)
        shapes = self.shapes()
        for editor in self.editors():
            editor.document.set_shapes(shapes)
            editor.set_type_infos(infos)
            editor.set_connector_types(backend.connector_infos)
        version = backend.version
        where = version.store if version and version.store else ""
        self.backend_label.setText(f"{backend.label} · engine {version.engine_version if version else '?'}")
        self.backend_label.setToolTip(f"Store: {where}" if where else backend.label)
        self.backendReady.emit()

    def shapes(self) -> dict[str, TypeShape]:
        infos = self.backend.type_infos if self.backend else []
        return type_shapes(infos)

    # ------------------------------------------------------------------ tabs and files

    @property
    def watcher(self) -> FileWatcher:
        return self.tabs.watcher

    def editors(self) -> list[PipelineEditor]:
        return self.tabs.editors()

    def current_editor(self) -> PipelineEditor | None:
        return self.tabs.current_editor()

    def editor_for(self, path: Path) -> PipelineEditor | None:
        return self.tabs.editor_for(path)

    def open_file(self, path: Path) -> PipelineEditor | None:
        return self.tabs.open_file(path, self.shapes(), self.backend.type_infos if self.backend else [])

    def close_tab(self, index: int) -> bool:
        return self.tabs.close_tab(index)

    def save_editor(self, editor: PipelineEditor) -> bool:
        return self.tabs.save_editor(editor)

    def save_current(self) -> None:
        editor = self.current_editor()
        if editor is not None:
            self.save_editor(editor)

    def _editor_opened(self, editor: PipelineEditor) -> None:
        """Route a new tab's signals and give it what the window knows."""
        editor.stepSelected.connect(self._step_selected)
        editor.connectorSelected.connect(self._connector_selected)
        editor.set_connector_types(self.backend.connector_infos if self.backend else [])
        editor.graph.breakpointToggleRequested.connect(self._toggle_breakpoint)
        editor.validateRequested.connect(lambda e=editor: self.validate_editor(e))
        editor.yaml.cursorLineChanged.connect(lambda line: self.cursor_label.setText(f"Ln {line}"))
        if editor.path is not None:
            editor.set_diagnostics(self._problem_files.get(str(editor.path), []))
        self._breakpoints_changed(self.breakpoints.breakpoints())
        self.validate_editor(editor)

    def _editor_changed(self) -> None:
        editor = self.current_editor()
        if editor is not None:
            self.cursor_label.setText(f"Ln {editor.yaml.current_line()}")
            self.properties.show_step(editor.document, editor.current_pipeline() or "", None)
        else:
            self.properties.show_step(None, "", None)
        self.connector_panel.show_connector(None, None)
        self.property_stack.setCurrentWidget(self.properties)
        name = editor.path.name if editor and editor.path else ""
        mark = "*" if editor and editor.document.is_modified() else ""
        self.setWindowTitle(" — ".join(p for p in (f"{name}{mark}", self.workspace.name,
                                                    "Workflow Studio") if p))

    def _file_saved(self, path: Path, text: str) -> None:
        if self.backend is not None:
            asyncqt.spawn(self.backend.sync_file(path, text), what="Loading the file")

    def _file_gone(self, path: Path) -> None:
        self.problems.clear(str(path))
        if self.backend is not None:
            asyncqt.spawn(self.backend.forget_file(path), what="Unloading the file")

    def _file_renamed(self, old: Path, new: Path) -> None:
        self.tabs.file_renamed(old, new)
        self._file_gone(old)
        with contextlib.suppress(OSError, UnicodeDecodeError):  # a folder, or unreadable: nothing
            self._file_saved(new, new.read_text(encoding="utf-8"))

    # ------------------------------------------------------------------ validation

    def validate_editor(self, editor: PipelineEditor) -> None:
        if self.backend is None or editor.path is None:
            return
        asyncqt.spawn(self.backend.validate(editor.path, editor.document.text), what="Validation")

    def validate_current(self) -> None:
        editor = self.current_editor()
        if editor is not None:
            self.validate_editor(editor)
            self.docks["Problems"].raise_()

    def _diagnostics(self, file: str, diagnostics: list[DiagnosticInfo]) -> None:
        self._problem_files[file] = diagnostics
        self.problems.set_problems(file, diagnostics)
        editor = self.editor_for(Path(file))
        if editor is not None:
            editor.set_diagnostics([d for d in diagnostics if Path(d.file).resolve() == Path(file).resolve()])
            self.properties.set_diagnostics(editor.diagnostics)
            self.connector_panel.set_diagnostics(editor.diagnostics)

    def _counts_changed(self, errors: int, warnings: int) -> None:
        self.problem_label.setText(f"✖ {errors}  ⚠ {warnings}")

    def jump_to(self, file: str, line: int, col: int) -> None:
        editor = self.open_file(Path(file))
        if editor is not None:
            editor.go_to(line, col)

    # ------------------------------------------------------------------ steps

    def _panel_moved(self, pipeline: str, step_id: str) -> None:
        editor = self.current_editor()
        if editor is not None and step_id:
            editor.graph.select_step(pipeline, step_id)

    def _step_selected(self, pipeline: str, step_id: str) -> None:
        editor = self.current_editor()
        if editor is not None:
            self.properties.show_step(editor.document, pipeline, step_id or None)
            if step_id:
                self.connector_panel.flush()
                self.property_stack.setCurrentWidget(self.properties)

    def _connector_selected(self, name: str) -> None:
        editor = self.current_editor()
        if editor is None:
            return
        self.properties.flush()
        self.connector_panel.show_connector(editor.document, name or None)
        self.connector_panel.set_diagnostics(editor.diagnostics)
        self.property_stack.setCurrentWidget(self.connector_panel if name else self.properties)
        if name:
            self.docks["Properties"].raise_()

    def insert_step_type(self, type_name: str) -> None:
        """Palette double-click: add a step of that type after the selection (or at the end)."""
        editor = self.current_editor()
        if editor is None or editor.current_pipeline() is None:
            self.statusBar().showMessage("Open a pipeline file first", 3000)
            return
        if editor.graph.insert_type(type_name) is None:
            self.statusBar().showMessage(f"Cannot insert {type_name} here", 3000)

    def go_to_step_dialog(self) -> None:
        editor = self.current_editor()
        if editor is None:
            return
        names = [f"{p}: {node.id}" for p, o in editor.document.last_good.pipelines.items()
                 for node in o.nodes.values()]
        choice, ok = QInputDialog.getItem(self, "Go to step", "Step:", names, 0, True)
        if ok and ": " in choice:
            pipeline, step_id = choice.split(": ", 1)
            editor.select_step(pipeline, step_id)

    def _graph_call(self, method: str) -> None:
        editor = self.current_editor()
        if editor is not None and hasattr(editor.graph, method):
            getattr(editor.graph, method)()

    # ------------------------------------------------------------------ executions

    def open_execution(self, execution_id: str) -> None:
        """Show an execution in the timeline, inspector and event list."""
        self.hub.select_execution(execution_id)
        self.docks["Timeline"].raise_()
        self.docks["Inspector"].raise_()

    def show_sources(self) -> None:
        self.docks["Sources"].show()
        self.docks["Sources"].raise_()

    def open_dlq_entry(self, entry_id: str) -> None:
        """Show one dead-letter entry in the DLQ pane, found by its id whatever its status."""
        dlq = self.dlq

        def loaded() -> None:
            if dlq.model.row_of(entry_id) >= 0:
                dlq.model.modelReset.disconnect(loaded)
                QTimer.singleShot(0, lambda: dlq.select([entry_id]))  # after the load reselects

        dlq.model.modelReset.connect(loaded)
        self.docks["Dead Letters"].show()
        self.docks["Dead Letters"].raise_()
        dlq.text_filter.setText(entry_id)
        dlq.status_filter.setCurrentIndex(0)  # any status
        dlq.refresh()

    def _step_run_selected(self, execution_id: str, path: str, _seq: int) -> None:
        """A step run chosen in any pane selects its node in the open editor of its pipeline."""
        if self.backend is not None and path:
            asyncqt.spawn(self._select_node_of(execution_id, path), what="Finding the step")

    async def _select_node_of(self, execution_id: str, path: str) -> None:
        assert self.backend is not None
        pipeline = (await self.backend.service.get_execution(execution_id)).pipeline
        for editor in self.editors():
            outline = editor.document.last_good.pipelines.get(pipeline)
            if outline is not None and path in outline.nodes:
                editor.graph.select_step(pipeline, path)
                return

    # ------------------------------------------------------------------ debugger, replay, diff

    def toggle_breakpoint_here(self) -> None:
        editor = self.current_editor()
        pipeline = editor.current_pipeline() if editor else None
        step = self.properties.current()[1] if editor else None
        if editor is None or pipeline is None or not step:
            self.statusBar().showMessage("Select a step in the editor to toggle its breakpoint", 3000)
            return
        self._toggle_breakpoint(pipeline, step, "")

    def _toggle_breakpoint(self, pipeline: str, step_id: str, condition: str) -> None:
        """Toggle; with a condition, an existing breakpoint gets it instead of going away."""
        existing = next((bp for bp in self.breakpoints.breakpoints(pipeline) if bp.step == step_id), None)
        if condition and existing is not None:
            asyncqt.spawn(self.breakpoints.set_condition(existing.id, condition),
                          what="Changing the breakpoint's condition")
            return
        asyncqt.spawn(self.breakpoints.toggle_breakpoint(pipeline, step_id, condition or None),
                      what="Toggling the breakpoint")

    def _breakpoints_changed(self, breakpoints: list[Breakpoint]) -> None:
        by_pipeline: dict[str, dict[str, tuple[bool, str]]] = {}
        for bp in breakpoints:
            by_pipeline.setdefault(bp.pipeline, {})[bp.step] = (bp.enabled, bp.condition or "")
        for editor in self.editors():
            for pipeline in editor.document.last_good.pipelines:
                editor.graph.set_breakpoints(pipeline, by_pipeline.get(pipeline, {}))

    def _paused_at(self, pipeline: str, step_path: str) -> None:
        """An execution is paused: show its node and the debugger."""
        self.docks["Debugger"].raise_()
        self.docks["Timeline"].raise_()
        for editor in self.editors():
            if pipeline in editor.document.last_good.pipelines:
                self.tabs.setCurrentWidget(editor)
                editor.graph.set_paused(pipeline, step_path or None)
                return
        asyncqt.spawn(self._open_pipeline_file(pipeline, step_path), what="Opening the paused pipeline")

    async def _open_pipeline_file(self, pipeline: str, step_path: str) -> None:
        if self.backend is None:
            return
        info = next((p for p in await self.backend.service.list_pipelines() if p.name == pipeline), None)
        if info is None:
            return
        # A server names files relative to their folder there: here, that is the workspace.
        path = Path(info.file) if Path(info.file).is_absolute() else self.workspace / info.file
        if path.is_file():
            editor = self.open_file(path)
            if editor is not None:
                editor.graph.set_paused(pipeline, step_path or None)

    def _paused_changed(self, paused: list[object]) -> None:
        if not paused:
            for editor in self.editors():
                for pipeline in editor.document.last_good.pipelines:
                    editor.graph.set_paused(pipeline, None)

    def replay_selected(self) -> None:
        execution_id = self.hub.execution_id
        if self.backend is None or not execution_id:
            self.statusBar().showMessage("Select an execution to replay (Executions, Output or Timeline)",
                                         4000)
            return
        dialog = ReplayDialog.open_for(self.backend.service, execution_id, self)
        dialog.replayed.connect(self._replayed)

    def _replayed(self, original_id: str, new_id: str) -> None:
        """The new execution opens next to its original: selected, and diffed against it."""
        self.open_execution(new_id)
        self.docks["Diff"].raise_()
        asyncqt.spawn(self.diff.compare(original_id, new_id), what="Comparing the executions")

    def compare_with_original(self) -> None:
        execution_id = self.hub.execution_id
        if execution_id:
            self.docks["Diff"].raise_()
            asyncqt.spawn(self.diff.compare_with_original(execution_id), what="Comparing the executions")

    # ------------------------------------------------------------------ connections

    def show_connections(self) -> None:
        if self.connections is None:
            return
        dialog = ConnectionDialog(self.connections, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    def _connected(self, service: StudioService, profile: Profile) -> None:
        """A profile was chosen: every pane switches to its service."""
        asyncqt.spawn(self.adopt_service(service, profile.name), what="Switching the connection")

    async def adopt_service(self, service: StudioService, label: str) -> None:
        backend = Backend(service, label, owns_service=self.connections is None)
        await backend.refresh_info()
        previous = self.backend
        self.set_backend(backend)
        if previous is not None and previous.service is not service:
            await previous.close()
        await backend.load_workspace(self.workspace)

    def _reconnected(self) -> None:
        self.statusBar().showMessage("Connection restored", 4000)
        self.executions.refresh()

    # ------------------------------------------------------------------ runs

    def run_current(self) -> None:
        editor = self.current_editor()
        if editor is None or self.backend is None:
            self.statusBar().showMessage("Open a pipeline file to run it", 3000)
            return
        pipeline = editor.current_pipeline()
        if pipeline is None:
            self._show_error("Nothing to run", "This file defines no pipeline.")
            return
        if editor.document.is_modified() and not self.save_editor(editor):
            return
        asyncqt.spawn(self._run(editor, pipeline), what="The run")

    async def _run(self, editor: PipelineEditor, pipeline: str) -> None:
        assert self.backend is not None
        if editor.path is not None:
            diagnostics = await self.backend.sync_file(editor.path, editor.document.text, deploy=True)
            if any(d.severity == "error" for d in diagnostics):
                self.docks["Problems"].raise_()
                self._show_error("Cannot run", f"{editor.path.name} has errors; fix them first "
                                 "(see the Problems panel).")
                return
        infos = {p.name: p for p in await self.backend.service.list_pipelines()}
        info = infos.get(pipeline)
        if info is None:
            self._show_error("Cannot run", f"The engine does not know pipeline {pipeline!r}.")
            return
        samples = samples_for(load_samples(self.workspace), pipeline, info.file)
        dialog = RunDialog(info, self.settings, self, samples=samples)
        if not await _exec_async(dialog):
            return
        run_input, options = dialog.value()
        self.docks["Output"].raise_()
        await run_pipeline(self.backend.service, pipeline, run_input, options, self.output)

    # ------------------------------------------------------------------ misc

    def show_command_palette(self) -> None:
        palette = CommandPalette(self.actions(), self)
        geometry = self.geometry()
        palette.move(geometry.x() + (geometry.width() - 460) // 2, geometry.y() + 80)
        palette.show()
        palette.query.setFocus()

    def toggle_theme(self) -> None:
        name = "light" if theme.colors().name == "dark" else "dark"
        theme.apply(name)
        self.settings.set_theme(name)
        self.welcome.restyle()
        for editor in self.editors():
            editor.update()
            editor.graph.update()

    def new_file_dialog(self) -> None:
        path = self.tree.ask_new_file()  # asks again, keeping the text, until the name is usable
        if path is not None:
            self.open_file(path)

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open folder", str(self.workspace))
        if folder:
            self.open_workspace(Path(folder))

    def open_workspace(self, folder: Path) -> None:
        for editor in list(self.editors()):
            if not self.close_tab(self.tabs.indexOf(editor)):
                return
        self.workspace = folder
        self.tree.set_root(folder)
        self.settings.set_last_workspace(folder)
        if self.backend is not None:
            asyncqt.spawn(self.backend.load_workspace(folder), what="Loading the workspace")
        self._editor_changed()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for folder in self.settings.recent_folders():
            self.recent_menu.addAction(str(folder), lambda f=folder: self.open_workspace(Path(f)))

    def _remember_open_files(self) -> None:
        files = [str(e.path) for e in self.editors() if e.path is not None]
        self.settings.set_open_files(str(self.workspace), files)

    def about(self) -> None:
        QMessageBox.about(self, "Workflow Studio",
                          f"<b>Workflow Studio</b> {__version__}<br>Event-driven YAML workflows: "
                          "edit, run, debug and replay.")

    def _trigger_named(self, name: str) -> None:
        action = next((a for a in self.actions() if a.objectName() == name), None)
        if action is not None:
            action.trigger()

    def _show_error(self, title: str, message: str) -> None:
        self.statusBar().showMessage(f"{title}: {message}", 8000)
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("errorDialog")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()  # window-modal, never blocks the event loop

    def restore_state(self) -> None:
        """The remembered geometry and layout, fitted to the screen the window opens on."""
        geometry, state = self.settings.window_geometry(), self.settings.window_state()
        if not geometry or not self.restoreGeometry(QByteArray(geometry)):
            self.resize(1440, 900)
            self._center = True  # a first start: centred on its screen once fitted
        if state:
            self.restoreState(QByteArray(state))
            # a state saved when the debug toolbar came first would put it first again: re-add it last
            debug = self.debugger.debug_actions.toolbar
            self.removeToolBar(debug)
            self.addToolBar(debug)
        self.debugger.debug_actions.update_state()  # a saved state may show the debug toolbar
        fit_to_screen(self, center=self._center)
        self._fit_on_show = not self.isVisible()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._fit_on_show:  # the frame (title bar) is known now: fit again with it
            self._fit_on_show = False
            fit_to_screen(self, center=self._center)

    def open_start_files(self, target: Path | None = None) -> None:
        """What a start opens: the files open last time in this workspace, ``target`` (a file
        named on the command line), and on a first start the workspace's first example."""
        for file in self.settings.open_files(str(self.workspace)):
            if file.is_file():
                self.open_file(file)
        if target is not None and target.is_file():
            self.open_file(target)
        elif not self.editors():
            first = first_file(self.workspace)
            if first is not None:
                self.open_file(first)

    def closeEvent(self, event: QCloseEvent) -> None:
        for editor in list(self.editors()):
            if editor.document.is_modified() and not self.close_tab(self.tabs.indexOf(editor)):
                event.ignore()
                return
        self.settings.set_window_geometry(bytes(self.saveGeometry().data()))
        self.settings.set_window_state(bytes(self.saveState().data()))
        for pane in self.service_panes:  # stop live streams before the service closes
            pane.set_service(None)
        super().closeEvent(event)


async def _exec_async(dialog: RunDialog) -> bool:
    """Show a dialog window-modally and await its answer without a nested event loop."""
    future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    dialog.finished.connect(lambda result: future.done() or future.set_result(bool(result)))
    dialog.open()
    return await future

