"""One editor tab: the graph and the YAML text of one file, side by side, one undo stack.

Both views observe the same :class:`PipelineDocument`; this widget only keeps their
selection in step (a node selected in the graph puts the text cursor on its step and the
other way round) and shows banners for what happened to the file on disk.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSplitter, QVBoxLayout, QWidget

from app.editor import connector_rules
from app.editor.connectors_list import ConnectorsList
from app.editor.document import PipelineDocument
from app.editor.graph.pane import GraphPane
from app.editor.yaml_view import YamlView
from engine.service.models import ConnectorTypeInfo, DiagnosticInfo, StepTypeInfo


class Banner(QWidget):
    """A strip above the editor with a message and up to two buttons."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("fileBanner")
        self.setAutoFillBackground(True)
        self.label = QLabel(objectName="fileBannerText")
        self.label.setWordWrap(True)
        self.primary = QPushButton(objectName="fileBannerPrimary")
        self.secondary = QPushButton(objectName="fileBannerSecondary")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.primary)
        layout.addWidget(self.secondary)
        self.setStyleSheet("#fileBanner { background: #fff4ce; } #fileBannerText { color: #3b2f00; }")
        self._actions: list[Callable[[], object]] = [self.hide, self.hide]
        self.primary.clicked.connect(lambda: self._actions[0]())
        self.secondary.clicked.connect(lambda: self._actions[1]())
        self.hide()

    def show_message(self, text: str, primary: tuple[str, Callable[[], object]] | None = None,
                     secondary: tuple[str, Callable[[], object]] | None = None) -> None:
        """Show ``text`` with buttons (caption, action); a button's action also hides the banner."""
        self.label.setText(text)
        for index, (button, spec) in enumerate(((self.primary, primary), (self.secondary, secondary))):
            button.setVisible(spec is not None)
            if spec is not None:
                caption, action = spec
                button.setText(caption)
                self._actions[index] = lambda action=action: (self.hide(), action())
        self.show()


class PipelineEditor(QWidget):
    """Graph + YAML for one document."""

    stepSelected = Signal(str, str)  # (pipeline, step id); "" step id clears
    connectorSelected = Signal(str)  # a connector's name (list or text cursor); "" clears
    validateRequested = Signal()  # the text changed and settled: time to ask the service

    def __init__(self, document: PipelineDocument, type_infos: list[StepTypeInfo],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("pipelineEditor")
        self.document = document
        self.banner = Banner(self)
        self.graph = GraphPane(document)
        self.graph.set_type_infos(type_infos)
        self.yaml = YamlView(document)
        self.connectors = ConnectorsList(document)  # the file's sources and sinks, under the graph
        self.graph_column = QSplitter(Qt.Orientation.Vertical, objectName="graphColumn")
        self.graph_column.addWidget(self.graph)
        self.graph_column.addWidget(self.connectors)
        self.graph_column.setStretchFactor(0, 4)
        self.graph_column.setStretchFactor(1, 1)
        self.graph_column.setSizes([520, 140])
        self.connectors.countChanged.connect(self._fit_connectors)
        self._fit_connectors()
        self.splitter = QSplitter(Qt.Orientation.Horizontal, objectName="editorSplitter")
        self.splitter.addWidget(self.graph_column)
        self.splitter.addWidget(self.yaml)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setSizes([560, 440])  # rescaled to the real width when first laid out
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.banner)
        layout.addWidget(self.splitter, 1)
        self.diagnostics: list[DiagnosticInfo] = []
        self._syncing = False
        self.graph.stepSelected.connect(self._graph_selected)
        self.graph.errorLineActivated.connect(self.go_to)
        self.connectors.connectorSelected.connect(self._connector_selected)
        self.yaml.cursorLineChanged.connect(self._cursor_moved)
        self._validate_timer = QTimer(self, singleShot=True, interval=300)
        self._validate_timer.timeout.connect(self.validateRequested)
        document.textChanged.connect(lambda *_: self._validate_timer.start())

    @property
    def path(self) -> Path | None:
        return self.document.path

    def set_type_infos(self, type_infos: list[StepTypeInfo]) -> None:
        self.graph.set_type_infos(type_infos)

    def _fit_connectors(self, *_count: int) -> None:
        # When connectors come or go the list gets the room its rows need; a drag of the
        # splitter holds until the next change.
        sizes = self.graph_column.sizes()
        total = sum(sizes)
        want = min(self.connectors.preferred_height(), total // 2)
        if total > 0:
            self.graph_column.setSizes([total - want, want])

    def set_connector_types(self, infos: list[ConnectorTypeInfo]) -> None:
        self.connectors.set_connector_types(infos)

    def select_connector(self, name: str) -> None:
        """Select connector ``name`` in the list and put the text cursor on it (emits)."""
        self.connectors.select(name)
        self._connector_selected(name)

    def _connector_selected(self, name: str) -> None:
        node = connector_rules.find(self.document.last_good, name) if name else None
        if node is not None:
            self._syncing = True
            try:
                self.yaml.go_to(node.line, node.col)
            finally:
                self._syncing = False
        self.connectorSelected.emit(name if node is not None else "")

    def set_diagnostics(self, diagnostics: list[DiagnosticInfo]) -> None:
        self.diagnostics = diagnostics
        self.graph.set_diagnostics(diagnostics)
        self.yaml.set_diagnostics(diagnostics)

    def current_pipeline(self) -> str | None:
        return self.graph.current_pipeline()

    def select_step(self, pipeline: str, step_id: str) -> None:
        self._graph_selected(pipeline, step_id)
        self._syncing = True
        try:
            self.graph.select_step(pipeline, step_id)
        finally:
            self._syncing = False

    def go_to(self, line: int, col: int = 1) -> None:
        self.yaml.go_to(line, col)
        self.yaml.setFocus()

    def _graph_selected(self, pipeline: str, step_id: str) -> None:
        if self._syncing:
            return
        if step_id:
            self.connectors.select("")
        outline = self.document.last_good.pipelines.get(pipeline)
        node = outline.nodes.get(step_id) if outline else None
        if node is not None:
            self._syncing = True
            try:
                self.yaml.go_to(node.line, node.col)
            finally:
                self._syncing = False
        self.stepSelected.emit(pipeline, step_id if node else "")

    def _cursor_moved(self, line: int) -> None:
        if self._syncing:
            return
        connector = connector_rules.connector_at_line(self.document.last_good, line)
        if connector is not None and connector.name:
            if connector.name != self.connectors.selected():
                self.connectors.select(connector.name)
                self.connectorSelected.emit(connector.name)
            return
        for name, outline in self.document.last_good.pipelines.items():
            node = outline.node_at_line(line)
            if node is not None:
                self.connectors.select("")
                self._syncing = True
                try:
                    self.graph.select_step(name, node.id)
                finally:
                    self._syncing = False
                self.stepSelected.emit(name, node.id)
                return
