"""Continue, Step over, Skip and Abort: the actions that resume the current pause.

Shortcuts follow the common debugger keys: F5 continue, F10 step over, Shift+F5 abort
(stop). Skip is **F11**: there is no "step into" here (a step is the unit the engine
pauses before), and Shift+F10 is the keyboard's context-menu key, which the editor's node
menu (where breakpoints are toggled) needs.

The actions are enabled only while a pause is current and no resume is in flight, and their
toolbar is shown only while something is paused (as in the usual IDE): with nothing to debug,
four disabled buttons would only crowd out the actions that start things. Resuming
sends the context editor's edits as a JSON Patch with the action (Abort sends none: the run
ends, its edits would change nothing). Edits that cannot be sent (bad JSON, a read-only
part changed) or a patch the engine refuses are shown in the editor and nothing resumes,
so the edits stay to be fixed.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QPointF, Qt, Signal
from PySide6.QtGui import QAction, QColor, QIcon, QKeySequence, QPainter, QPixmap, QPolygonF
from PySide6.QtWidgets import QToolBar, QWidget

from app import asyncqt, theme
from app.debugger.context_editor import ContextEditor, ContextError
from app.debugger.paused_panel import PausedPanel
from app.selection import SelectionHub
from engine.service.errors import ServiceError
from engine.service.models import ResumeAction
from engine.service.protocol import StudioService

# (action, objectName, text, shortcut, tooltip)
ACTIONS: tuple[tuple[ResumeAction, str, str, str, str], ...] = (
    ("continue", "actionContinue", "Continue", "F5", "Resume until the next breakpoint"),
    ("step_over", "actionStepOver", "Step over", "F10", "Run this step and pause before the next one"),
    ("skip", "actionSkip", "Skip", "F11", "Do not run this step (recorded as skipped) and go on"),
    ("abort", "actionAbort", "Abort", "Shift+F5", "End the execution here"),
)
# Glyphs drawn in the theme's colours (Qt's standard media icons are black on a dark theme):
# polygons on a 16x16 grid per action.
_GLYPHS: dict[str, list[list[tuple[int, int]]]] = {
    "continue": [[(4, 2), (13, 8), (4, 14)]],
    "step_over": [[(2, 2), (9, 8), (2, 14)], [(11, 2), (14, 2), (14, 14), (11, 14)]],
    "skip": [[(1, 3), (7, 8), (1, 13)], [(8, 3), (14, 8), (8, 13)]],
    "abort": [[(3, 3), (13, 3), (13, 13), (3, 13)]],
}
_GLYPH_COLOURS = {"continue": "ok", "step_over": "accent", "skip": "warning", "abort": "error"}


def glyph(action: str) -> QIcon:
    """The toolbar icon of ``action`` in the current theme's colours."""
    colour = QColor(getattr(theme.colors(), _GLYPH_COLOURS[action]))
    icon = QIcon()
    for size in (16, 32):
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour)
        painter.scale(size / 16, size / 16)
        for points in _GLYPHS[action]:
            painter.drawPolygon(QPolygonF([QPointF(x, y) for x, y in points]))
        painter.end()
        icon.addPixmap(pixmap)
    return icon


class DebugActions(QObject):
    resumed = Signal(str, str)  # (execution id, action)
    failed = Signal(str)  # why a resume did not happen

    def __init__(self, hub: SelectionHub, panel: PausedPanel, editor: ContextEditor,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.hub = hub
        self.panel = panel
        self.editor = editor
        self.service: StudioService | None = None
        self._busy = False
        self.actions: dict[ResumeAction, QAction] = {}
        self.toolbar = QToolBar("Debug")
        self.toolbar.setObjectName("debugToolbar")
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for action, name, text, key, tip in ACTIONS:
            qaction = QAction(glyph(action), text, self)
            qaction.setObjectName(name)
            qaction.setShortcut(QKeySequence(key))
            qaction.setToolTip(f"{tip} ({key})")
            qaction.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            qaction.triggered.connect(lambda _checked=False, a=action: self.trigger(a))
            self.actions[action] = qaction
            self.toolbar.addAction(qaction)
        panel.currentChanged.connect(editor.set_paused)  # the editor follows the current pause
        panel.currentChanged.connect(self._current_changed)
        editor.set_paused(panel.current())
        self.update_state()

    def set_service(self, service: StudioService | None) -> None:
        self.service = service
        self.update_state()

    def refresh_icons(self) -> None:
        """Redraw the icons after a theme switch."""
        for action, qaction in self.actions.items():
            qaction.setIcon(glyph(action))

    def add_to(self, widget: QWidget) -> None:
        """Make the shortcuts work anywhere in ``widget``'s window (e.g. the main window)."""
        widget.addActions(list(self.actions.values()))

    def trigger(self, action: ResumeAction) -> None:
        if self.actions[action].isEnabled():
            asyncqt.spawn(self.resume(action), what="Resuming the execution")

    async def resume(self, action: ResumeAction) -> bool:
        """Resume the current pause with ``action`` and the editor's edits; True when sent."""
        p = self.panel.current()
        if p is None or self.service is None or self._busy:
            return False
        patch: list[dict[str, object]] = []
        if action != "abort":
            try:
                patch = self.editor.patch()
            except ContextError as exc:
                # a JSON error's message already names its line and column
                message = f"Not resumed: {exc.message}. Fix it or Revert."
                self.editor.show_error(message)
                self.failed.emit(message)
                return False
        self._busy = True
        self.update_state()
        try:
            await self.service.resume(p.execution_id, action, patch or None)
        except ServiceError as exc:
            message = f"Not resumed: {exc}"
            self.editor.show_error(message)
            self.failed.emit(message)
            await self.panel.refresh()  # it may have been resumed elsewhere
            return False
        finally:
            self._busy = False
            self.update_state()
        self.editor.discard(p)
        self.panel.resumed(p.execution_id, action)
        self.resumed.emit(p.execution_id, action)
        return True

    def _current_changed(self, _p: object) -> None:
        self.update_state()

    def update_state(self) -> None:
        """Enable the actions and show the toolbar as the current pause (and a resume) says."""
        paused = self.service is not None and self.panel.current() is not None
        for qaction in self.actions.values():
            qaction.setEnabled(paused and not self._busy)
        if self.toolbar.parentWidget() is not None:  # never a window of its own
            self.toolbar.setVisible(paused)
