"""The status-bar widget that says which backend the studio talks to, and whether it can.

Connected: a green dot, the profile name, the backend kind and the engine version. Lost: a
red dot and "disconnected — retrying" with the attempt count and the reason in the tooltip.
Clicking it asks for the connection dialog (``manageRequested``).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from app import theme
from app.connections.connection_manager import ConnectionManager
from app.connections.profiles import Profile
from engine.service.models import VersionInfo


class ConnectionStatus(QWidget):
    manageRequested = Signal()

    def __init__(self, manager: ConnectionManager, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("connectionStatus")
        self.manager = manager
        self.state = "none"  # none | connected | lost
        self.dot = QLabel("●", objectName="connectionStatusDot")
        self.label = QLabel(objectName="connectionStatusText")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.setSpacing(4)
        layout.addWidget(self.dot)
        layout.addWidget(self.label)
        layout.addStretch(1)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        manager.connected.connect(self._connected)
        manager.connectionLost.connect(self._lost)
        manager.retrying.connect(self._retrying)
        manager.reconnected.connect(self.refresh)
        manager.disconnected.connect(self.refresh)
        self.refresh()

    def text(self) -> str:
        return self.label.text()

    def refresh(self) -> None:
        m = self.manager
        if m.service is None or m.profile is None:
            self._show("none", "Not connected", "Choose a connection profile")
        elif m.lost:
            self._show("lost", f"{m.profile.name} — disconnected — retrying",
                       f"{m.profile.describe()}\n{m.last_error}")
        else:
            self._show("connected", _connected_text(m.profile, m.version), m.profile.describe())

    def _connected(self, _service: object, _profile: object) -> None:
        self.refresh()

    def _lost(self, _message: str) -> None:
        self.refresh()

    def _retrying(self, attempt: int, delay: float) -> None:
        m = self.manager
        if m.profile is None:
            return
        self._show("lost", f"{m.profile.name} — disconnected — retrying (attempt {attempt + 1} "
                   f"in {delay:g} s)", f"{m.profile.describe()}\n{m.last_error}")

    def _show(self, state: str, text: str, tooltip: str) -> None:
        self.state = state
        c = theme.colors()
        colour = {"connected": c.ok, "lost": c.error}.get(state, c.muted)
        self.dot.setStyleSheet(f"color: {colour};")
        self.label.setStyleSheet(f"color: {c.error};" if state == "lost" else "")
        self.label.setText(text)
        self.setToolTip(tooltip + "\nClick to manage connections")

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.manageRequested.emit()
        super().mousePressEvent(event)


def _connected_text(profile: Profile, version: VersionInfo | None) -> str:
    kind = "remote" if profile.remote else "embedded"
    if version is None:
        return f"{profile.name} — {kind}"
    return f"{profile.name} — {kind} · engine {version.engine_version} (API {version.api_version})"
