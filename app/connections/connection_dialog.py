"""The Connections dialog: create, edit, test, delete profiles and connect to one.

Edits are drafts until saved: switching to another profile keeps the draft (its row is
marked with *) and coming back restores it; closing the dialog with drafts asks first. The
API key field is write-only: empty keeps the saved key; the dialog says where keys are
kept (the system keyring or a private file). "Test" connects, reads the version and
disconnects, on the qasync loop; its answer (or the error) shows under the form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QCheckBox,
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app import theme
from app.asyncqt import describe, spawn
from app.connections.connection_manager import ConnectionManager
from app.connections.profiles import Profile, ProfileError
from app.stale import Generation, Token
from engine.service.errors import ServiceError
from engine.service.models import VersionInfo

NEW: Final = ""  # the draft key of a profile not saved yet (saved names are never empty)
NAME_ROLE: Final = Qt.ItemDataRole.UserRole
DEFAULT_URL: Final = "http://127.0.0.1:8080"


@dataclass
class _Form:
    """What the form holds (a draft of one profile)."""

    name: str
    kind: str
    url: str
    store: str
    verify_tls: bool
    key: str


class ConnectionDialog(QDialog):
    def __init__(self, manager: ConnectionManager, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("connectionDialog")
        self.setWindowTitle("Connections")
        self.manager = manager
        self._current: str | None = None  # the saved name being edited (NEW: a new profile)
        self._drafts: dict[str, _Form] = {}
        self._loading = False
        self._generation = Generation()  # answers to older tests and connects are dropped
        self._saving = False  # our own save: it reloads the list itself, when it is done
        self._build()
        manager.profilesChanged.connect(self._profiles_changed)
        self.reload_profiles((manager.profile.name if manager.profile else None)
                             or manager.store.last_used().name)

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        self.list = QListWidget(objectName="connectionProfiles")
        self.list.currentItemChanged.connect(self._picked)
        new = QPushButton("New", objectName="connectionNew")
        new.clicked.connect(self.new_profile)
        self.delete_button = QPushButton("Delete", objectName="connectionDelete")
        self.delete_button.clicked.connect(self.delete_profile)
        left = QVBoxLayout()
        left.addWidget(self.list, 1)
        row = QHBoxLayout()
        row.addWidget(new)
        row.addWidget(self.delete_button)
        left.addLayout(row)

        self.name = QLineEdit(objectName="connectionName")
        self.kind = QComboBox(objectName="connectionKind")
        self.kind.addItem("Embedded engine", "embedded")
        self.kind.addItem("Remote server", "remote")
        self.url = QLineEdit(objectName="connectionUrl")
        self.url.setPlaceholderText(DEFAULT_URL)
        self.verify_tls = QCheckBox("Verify the server's TLS certificate", objectName="connectionVerifyTls")
        self.store = QLineEdit(objectName="connectionStore")
        self.store.setPlaceholderText("default: a SQLite file in the user data folder")
        self.key = QLineEdit(objectName="connectionKey")
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key_note = QLabel(objectName="connectionKeyNote")
        self.key_note.setWordWrap(True)
        self.key_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form = self.form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Backend", self.kind)
        form.addRow("Server URL", self.url)
        form.addRow("", self.verify_tls)
        form.addRow("API key", self.key)
        form.addRow("", self.key_note)
        form.addRow("Store URL", self.store)
        for field in (self.name, self.url, self.store, self.key):
            field.textEdited.connect(self._edited)
        self.kind.currentIndexChanged.connect(self._kind_changed)
        self.verify_tls.toggled.connect(self._edited)

        self.result_label = QLabel(objectName="connectionResult")
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.test_button = QPushButton("Test", objectName="connectionTest")
        self.test_button.clicked.connect(self.test)
        self.save_button = QPushButton("Save", objectName="connectionSave")
        self.save_button.clicked.connect(self.save)
        self.connect_button = QPushButton("Connect", objectName="connectionConnect")
        self.connect_button.setDefault(True)
        self.connect_button.clicked.connect(self.connect_selected)
        close = QPushButton("Close", objectName="connectionClose")
        close.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addWidget(self.test_button)
        buttons.addStretch(1)
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.connect_button)
        buttons.addWidget(close)

        right = QVBoxLayout()
        right.addLayout(form)
        right.addWidget(self.result_label)
        right.addStretch(1)
        right.addLayout(buttons)
        layout = QHBoxLayout(self)
        layout.addLayout(left, 1)
        layout.addLayout(right, 2)
        self.resize(720, 360)

    # ------------------------------------------------------------------ the list

    def _profiles_changed(self) -> None:
        if not self._saving:
            self.reload_profiles(self._current)

    def reload_profiles(self, select: str | None = None) -> None:
        self.list.blockSignals(True)
        try:
            self.list.clear()
            for profile in self.manager.profiles():
                item = QListWidgetItem(profile.name)
                item.setData(NAME_ROLE, profile.name)
                self.list.addItem(item)
            if NEW in self._drafts:
                item = QListWidgetItem("New profile")
                item.setData(NAME_ROLE, NEW)
                self.list.addItem(item)
            self._mark_drafts()
        finally:
            self.list.blockSignals(False)
        target = select if select is not None else self._current
        row = self._row_of(target) if target is not None else -1
        self.list.setCurrentRow(row if row >= 0 else 0)
        if self.list.currentItem() is not None:
            self._picked(self.list.currentItem(), None)
        if self.manager.store.load_error:
            self._say(self.manager.store.load_error, error=True)

    def _row_of(self, name: str | None) -> int:
        for row in range(self.list.count()):
            if self.list.item(row).data(NAME_ROLE) == name:
                return row
        return -1

    def _mark_drafts(self) -> None:
        for row in range(self.list.count()):
            item = self.list.item(row)
            name = item.data(NAME_ROLE)
            label = name or (self._drafts[NEW].name.strip() if NEW in self._drafts else "") or "New profile"
            item.setText(label + (" *" if name in self._drafts else ""))

    def _picked(self, item: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        if item is None:
            return
        name = str(item.data(NAME_ROLE))
        self._current = name
        draft = self._drafts.get(name)
        if draft is None:
            profile = self.manager.store.get(name) or Profile(name)
            draft = _Form(profile.name, profile.kind, profile.url, profile.store, profile.verify_tls, "")
        self._load_form(draft)
        in_use = self.manager.profile is not None and self.manager.profile.name == name
        self.delete_button.setEnabled(not in_use)
        self.delete_button.setToolTip("Connect to another profile before deleting this one" if in_use else "")
        self._say("")

    def selected_name(self) -> str | None:
        return self._current

    # ------------------------------------------------------------------ the form

    def _load_form(self, form: _Form) -> None:
        self._loading = True
        try:
            self.name.setText(form.name)
            self.kind.setCurrentIndex(max(0, self.kind.findData(form.kind)))
            self.url.setText(form.url)
            self.store.setText(form.store)
            self.verify_tls.setChecked(form.verify_tls)
            self.key.setText(form.key)
        finally:
            self._loading = False
        self._update_fields()

    def _form(self) -> _Form:
        return _Form(self.name.text(), str(self.kind.currentData()), self.url.text(), self.store.text(),
                     self.verify_tls.isChecked(), self.key.text())

    def form_profile(self) -> Profile:
        f = self._form()
        return Profile(f.name, "remote" if f.kind == "remote" else "embedded", f.url, f.store, f.verify_tls)

    def _kind_changed(self) -> None:
        if not self._loading and self.kind.currentData() == "remote" and not self.url.text().strip():
            self.url.setText(DEFAULT_URL)
        self._update_fields()
        self._edited()

    def _update_fields(self) -> None:
        remote = self.kind.currentData() == "remote"
        for field in (self.url, self.verify_tls, self.key, self.key_note):
            self.form.setRowVisible(field, remote)
        self.form.setRowVisible(self.store, not remote)
        saved = self._current and self.manager.api_key(self._current) if remote else None
        where = self.manager.secrets.where
        if saved:
            self.key.setPlaceholderText("saved — leave empty to keep it")
            self.key_note.setText(f"The key is kept in {where}.")
        else:
            self.key.setPlaceholderText("paste the API key")
            self.key_note.setText(f"Keys are kept in {where}, never in the profiles file.")

    def _edited(self, *_args: object) -> None:
        if self._loading or self._current is None:
            return
        self._drafts[self._current] = self._form()
        self._mark_drafts()

    def is_dirty(self) -> bool:
        return bool(self._drafts)

    def _say(self, text: str, *, error: bool = False, ok: bool = False) -> None:
        c = theme.colors()
        self.result_label.setStyleSheet(f"color: {c.error};" if error else f"color: {c.ok};" if ok else "")
        self.result_label.setText(text)

    # ------------------------------------------------------------------ actions

    def new_profile(self) -> None:
        if NEW not in self._drafts:
            self._drafts[NEW] = _Form("", "remote", DEFAULT_URL, "", True, "")
        self.reload_profiles(NEW)
        self.name.setFocus()

    def save(self) -> bool:
        """Save the form; False (with the reason shown) when it cannot be saved."""
        if self._current is None:
            return False
        previous = self._current or None
        key = self.key.text().strip() or None
        self._saving = True
        try:
            saved = self.manager.save_profile(self.form_profile(), key, previous_name=previous)
        except (ProfileError, ServiceError, OSError) as exc:
            self._say(f"Not saved: {describe(exc) if not isinstance(exc, ProfileError) else exc}",
                      error=True)
            return False
        finally:
            self._saving = False
        self._drafts.pop(self._current, None)
        self._current = saved.name
        self.reload_profiles(saved.name)
        warning = self.manager.secrets.warning
        self._say(f"Saved {saved.name!r}." + (f" {warning}" if warning else ""), ok=not warning,
                  error=bool(warning))
        return True

    def delete_profile(self) -> None:
        name = self._current
        if name is None:
            return
        if name == NEW:
            self._drafts.pop(NEW, None)
            self._current = None
            self.reload_profiles()
            return
        box = QMessageBox(QMessageBox.Icon.Question, "Delete profile",
                          f"Delete the profile {name!r} and its saved API key?",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self)
        box.setObjectName("connectionDeleteConfirm")
        # Deleted when answered (not WA_DeleteOnClose: deleting such a window after its answer hid
        # its parent crashes PySide).
        box.finished.connect(box.deleteLater)

        def answered(button: QAbstractButton) -> None:
            if box.standardButton(button) != QMessageBox.StandardButton.Yes:
                return
            try:
                self.manager.delete_profile(name)
            except (ProfileError, ServiceError, OSError) as exc:
                self._say(str(exc), error=True)
                return
            self._drafts.pop(name, None)
            self._current = None
            self.reload_profiles()

        box.buttonClicked.connect(answered)
        box.open()

    def _key_for_test(self) -> str:
        typed = self.key.text().strip()
        if typed:
            return typed
        return (self.manager.api_key(self._current) if self._current else None) or ""

    def test(self) -> None:
        """Connect with what the form says (saved or not), show the version or the error."""
        profile = self.form_profile()
        problems = profile.problems()
        if problems:
            self._say("; ".join(problems), error=True)
            return
        generation = self._generation.next()
        self._say(f"Testing {profile.describe()}…")
        self.test_button.setEnabled(False)
        spawn(self._test(profile, self._key_for_test(), generation), what="Testing the connection")

    async def _test(self, profile: Profile, key: str, generation: Token) -> None:
        try:
            version = await self.manager.test(profile, key if profile.remote else None)
        except ServiceError as exc:
            if self._generation.is_current(generation):
                self._say(f"Failed: {describe(exc)}", error=True)
            return
        finally:
            if self._generation.is_current(generation):
                self.test_button.setEnabled(True)
        if self._generation.is_current(generation):
            self._say(f"OK: {_version_text(version)}", ok=True)

    def connect_selected(self) -> None:
        """Save pending edits of this profile, then switch the studio to it."""
        if self._current is None:
            return
        if self._current in self._drafts and not self.save():
            return
        profile = self.manager.store.get(self._current or "")
        if profile is None:
            return
        generation = self._generation.next()
        self._say(f"Connecting to {profile.describe()}…")
        self.connect_button.setEnabled(False)
        spawn(self._connect(profile, generation), what="Connecting")

    async def _connect(self, profile: Profile, generation: Token) -> None:
        try:
            await self.manager.connect(profile)
        except ServiceError as exc:
            if self._generation.is_current(generation):
                self._say(f"Not connected: {describe(exc)}", error=True)
            return
        finally:
            self.connect_button.setEnabled(True)
        if self._generation.is_current(generation):
            version = self.manager.version
            self._say(f"Connected: {_version_text(version)}" if version else "Connected", ok=True)
            self.accept()

    # ------------------------------------------------------------------ closing

    def reject(self) -> None:
        if not self._drafts:
            super().reject()
            return
        names = ", ".join(repr(n or "new profile") for n in self._drafts)
        box = QMessageBox(QMessageBox.Icon.Warning, "Unsaved changes",
                          f"Discard the unsaved changes to {names}?",
                          QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel, self)
        box.setObjectName("connectionUnsaved")
        box.finished.connect(box.deleteLater)

        def answered(button: QAbstractButton) -> None:
            if box.standardButton(button) == QMessageBox.StandardButton.Discard:
                self._drafts.clear()
                self.reload_profiles(self._current if self._current else None)
                QDialog.reject(self)

        box.buttonClicked.connect(answered)
        box.open()


def _version_text(version: VersionInfo) -> str:
    where = f", store {version.store}" if version.store else ""
    return (f"engine {version.engine_version}, API version {version.api_version}, "
            f"{version.backend} backend{where}")
