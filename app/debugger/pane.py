"""The debugger as one dock: the paused executions, their toolbar, and the context editor."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QSplitter, QVBoxLayout, QWidget

from app.debugger.context_editor import ContextEditor
from app.debugger.debug_actions import DebugActions
from app.debugger.paused_panel import PausedPanel
from app.selection import SelectionHub
from engine.service.protocol import StudioService


class DebuggerPane(QWidget):
    """PausedPanel + DebugActions toolbar over a ContextEditor, wired to each other."""

    def __init__(self, hub: SelectionHub, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("debuggerPane")
        self.paused_panel = PausedPanel(hub)
        self.context_editor = ContextEditor(hub)
        self.debug_actions = DebugActions(hub, self.paused_panel, self.context_editor, self)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.debug_actions.toolbar)
        top_layout.addWidget(self.paused_panel, 1)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(self.context_editor)
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)

    def set_service(self, service: StudioService | None) -> None:
        self.debug_actions.set_service(service)
        self.paused_panel.set_service(service)

    def shutdown(self) -> None:
        self.paused_panel.shutdown()
