"""The first-start strip over the editor: what to try first, until it is dismissed.

A newcomer sees a pipeline and a wall of panes; the strip names the four things the studio
is for (run, break, replay, diff) with their keys. Dismissing it is remembered in Settings,
so it is shown on first start only. Its links trigger the window's actions by name.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QWidget

from app import theme

TEXT = (
    "<b>New here? Try this:</b> "
    "<a href='actionRun'>Run</a> the pipeline with <b>Ctrl+R</b> (a sample input is filled in) · "
    "select a step and press <b>F9</b> for a breakpoint, then run again: it pauses there, "
    "<b>F5</b> continues · "
    "replay a run with <b>Ctrl+Shift+R</b> and see the <b>Diff</b> against the original · "
    "<a href='actionCommandPalette'>every command</a>: <b>Ctrl+Shift+P</b>."
)


class WelcomeStrip(QFrame):
    dismissed = Signal()
    actionRequested = Signal(str)  # the objectName of the window action a link names

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("welcomeStrip")
        self.label = QLabel(TEXT, objectName="welcomeText")
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.LinksAccessibleByMouse)
        self.label.linkActivated.connect(self.actionRequested)
        self.close_button = QToolButton(objectName="dismissWelcome")
        self.close_button.setText("✕")
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip("Dismiss (not shown again)")
        self.close_button.clicked.connect(self.dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 4, 6)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        self.restyle()

    def dismiss(self) -> None:
        self.hide()
        self.dismissed.emit()

    def restyle(self) -> None:
        """The theme's colours: an accent tint over the base, readable on light and dark."""
        c = theme.colors()
        base, accent = QColor(c.base), QColor(c.accent)
        mix = [0.88 * b + 0.12 * a for b, a in zip(base.getRgbF()[:3], accent.getRgbF()[:3], strict=True)]
        tint = QColor.fromRgbF(*mix)
        self.setStyleSheet(f"#welcomeStrip {{ background: {tint.name()}; "
                           f"border-bottom: 1px solid {c.border}; }}"
                           f"#welcomeText {{ color: {c.text}; }}")
