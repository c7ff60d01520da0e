"""What the studio remembers between runs, over QSettings.

Values are typed on the way out: QSettings' INI backend hands back strings (and a one-item
list as a bare string), so lists and maps are stored as JSON text and converted here, and
every getter has a default for a missing or damaged value. Keys built from user data
(pipeline names, folder paths) are percent-encoded: ``/`` would otherwise open a group.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from PySide6.QtCore import QByteArray, QSettings

ORGANIZATION = "wfstudio"
APPLICATION = "studio"
MAX_RECENT = 10
THEMES = ("light", "dark")


def _key(text: str) -> str:
    return quote(text, safe="")


class Settings:
    """``Settings()`` uses the platform's store; ``Settings(path)`` an INI file (tests)."""

    def __init__(self, path: Path | str | None = None):
        if path is None:
            self.qsettings = QSettings(ORGANIZATION, APPLICATION)
        else:
            self.qsettings = QSettings(str(path), QSettings.Format.IniFormat)

    # ------------------------------------------------------------------ plumbing

    def _str(self, key: str) -> str | None:
        value = self.qsettings.value(key)
        return value if isinstance(value, str) else None

    def _json(self, key: str, default: Any) -> Any:
        text = self._str(key)
        if text is None:
            return default
        try:
            return json.loads(text)
        except ValueError:  # hand-edited or damaged: forget it rather than fail
            return default

    def _set_json(self, key: str, value: Any) -> None:
        self.qsettings.setValue(key, json.dumps(value))

    def _bytes(self, key: str) -> bytes:
        value = self.qsettings.value(key)
        if isinstance(value, QByteArray):
            return value.data()
        if isinstance(value, bytes | bytearray):
            return bytes(value)
        return b""

    def sync(self) -> None:
        self.qsettings.sync()

    # ------------------------------------------------------------------ window

    def window_geometry(self) -> bytes:
        return self._bytes("window/geometry")

    def set_window_geometry(self, data: bytes | QByteArray) -> None:
        self.qsettings.setValue("window/geometry", QByteArray(data))

    def window_state(self) -> bytes:
        return self._bytes("window/state")

    def set_window_state(self, data: bytes | QByteArray) -> None:
        self.qsettings.setValue("window/state", QByteArray(data))

    def theme(self) -> str:
        value = self._str("window/theme")
        return value if value in THEMES else "light"

    def set_theme(self, theme: str) -> None:
        if theme not in THEMES:
            raise ValueError(f"unknown theme {theme!r}: use one of {', '.join(THEMES)}")
        self.qsettings.setValue("window/theme", theme)

    def welcome_dismissed(self) -> bool:
        """The first-start welcome strip was closed (it is not shown again)."""
        return self._str("window/welcomeDismissed") == "true"

    def set_welcome_dismissed(self, dismissed: bool = True) -> None:
        self.qsettings.setValue("window/welcomeDismissed", "true" if dismissed else "false")

    # ------------------------------------------------------------------ workspace folders

    def last_workspace(self) -> Path | None:
        value = self._str("workspace/last")
        return Path(value) if value else None

    def set_last_workspace(self, folder: Path | str) -> None:
        self.qsettings.setValue("workspace/last", str(folder))
        self.add_recent_folder(folder)

    def recent_folders(self) -> list[Path]:
        value = self._json("workspace/recent", [])
        if not isinstance(value, list):
            return []
        return [Path(v) for v in value if isinstance(v, str) and v][:MAX_RECENT]

    def add_recent_folder(self, folder: Path | str) -> None:
        """Most recent first, no duplicates, at most ``MAX_RECENT``."""
        folder = str(folder)
        rest = [str(p) for p in self.recent_folders() if str(p) != folder]
        self._set_json("workspace/recent", [folder, *rest][:MAX_RECENT])

    def remove_recent_folder(self, folder: Path | str) -> None:
        self._set_json("workspace/recent", [str(p) for p in self.recent_folders() if p != Path(folder)])

    def open_files(self, workspace: Path | str) -> list[Path]:
        value = self._json(f"openFiles/{_key(str(workspace))}", [])
        if not isinstance(value, list):
            return []
        return [Path(v) for v in value if isinstance(v, str) and v]

    def set_open_files(self, workspace: Path | str, files: list[Path] | list[str]) -> None:
        self._set_json(f"openFiles/{_key(str(workspace))}", [str(f) for f in files])

    # ------------------------------------------------------------------ runs

    def run_input(self, pipeline: str) -> str | None:
        """The JSON text last used to run ``pipeline`` (kept as typed, comments of layout included)."""
        return self._str(f"runInput/{_key(pipeline)}")

    def set_run_input(self, pipeline: str, text: str) -> None:
        self.qsettings.setValue(f"runInput/{_key(pipeline)}", text)

    def http_fields(self, pipeline: str) -> dict[str, Any] | None:
        """The run dialog's http request fields for ``pipeline`` (see app.run.run_dialog.HttpFields)."""
        value = self._json(f"runHttp/{_key(pipeline)}", None)
        return value if isinstance(value, dict) else None

    def set_http_fields(self, pipeline: str, fields: dict[str, Any]) -> None:
        self._set_json(f"runHttp/{_key(pipeline)}", fields)
