"""The tabs of open files: opening, saving, closing, and what a change on disk does to them.

The area knows files and editors, not the engine: it says what happened (a file saved,
reloaded, renamed or gone) and the window tells the backend.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtGui import QUndoGroup
from PySide6.QtWidgets import QMessageBox, QTabWidget, QWidget

from app import asyncqt
from app.editor.document import PipelineDocument
from app.editor.outline import TypeShape
from app.editor.pipeline_editor import PipelineEditor
from app.icons import icon
from app.workspace.watcher import FileWatcher
from engine.service.models import StepTypeInfo


class EditorArea(QTabWidget):
    editorOpened = Signal(object)  # PipelineEditor: the window connects what it routes
    editorChanged = Signal()  # the current tab, or a tab's title, changed
    fileSaved = Signal(Path, str)  # (path, text) written by us or reloaded from disk
    fileGone = Signal(Path)  # deleted on disk or through the workspace tree
    openFilesChanged = Signal()
    failed = Signal(str, str)  # (title, message) for the window's error dialog
    status = Signal(str)  # a short note for the status bar

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("editorTabs")
        self.setTabsClosable(True)
        self.setMovable(True)
        self.setDocumentMode(True)
        self.undo_group = QUndoGroup(self)
        self.watcher = FileWatcher(self)
        self.tabCloseRequested.connect(self.close_tab)
        self.currentChanged.connect(self._current_changed)
        self.watcher.changedOnDisk.connect(self._changed_on_disk)
        self.watcher.deletedOnDisk.connect(self._deleted_on_disk)

    def editors(self) -> list[PipelineEditor]:
        return [w for i in range(self.count()) if isinstance(w := self.widget(i), PipelineEditor)]

    def current_editor(self) -> PipelineEditor | None:
        widget = self.currentWidget()
        return widget if isinstance(widget, PipelineEditor) else None

    def editor_for(self, path: Path) -> PipelineEditor | None:
        path = path.resolve()
        return next((e for e in self.editors() if e.path is not None and e.path.resolve() == path), None)

    def open_file(self, path: Path, shapes: dict[str, TypeShape],
                  type_infos: list[StepTypeInfo]) -> PipelineEditor | None:
        """The file's tab (focused), opened when needed; None (and ``failed``) when unreadable."""
        path = Path(path)
        existing = self.editor_for(path)
        if existing is not None:
            self.setCurrentWidget(existing)
            return existing
        try:
            document = PipelineDocument.load(path)
        except (OSError, UnicodeDecodeError) as exc:
            self.failed.emit("Cannot open the file", f"{path}: {asyncqt.describe(exc)}")
            return None
        document.set_shapes(shapes)
        editor = PipelineEditor(document, type_infos)
        document.modifiedChanged.connect(lambda _m, e=editor: self._update_tab(e))
        document.pathChanged.connect(lambda _p, e=editor: self._update_tab(e))
        self.undo_group.addStack(document.undo_stack)
        index = self.addTab(editor, icon("new-file"), path.name)
        self.setTabToolTip(index, str(path))
        self.watcher.watch(path)
        self.editorOpened.emit(editor)
        self.setCurrentIndex(index)
        self.openFilesChanged.emit()
        return editor

    def close_tab(self, index: int) -> bool:
        """Close, asking first about unsaved changes; False when the user keeps the tab."""
        editor = self.widget(index)
        if not isinstance(editor, PipelineEditor):
            return True
        if editor.document.is_modified():
            name = editor.path.name if editor.path else "the file"
            answer = QMessageBox.question(
                self, "Unsaved changes", f"Save the changes to {name}?",
                QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Save)
            if answer == QMessageBox.StandardButton.Cancel:
                return False
            if answer == QMessageBox.StandardButton.Save and not self.save_editor(editor):
                return False
        self.drop_editor(editor)
        return True

    def drop_editor(self, editor: PipelineEditor) -> None:
        """Close without asking (the file is gone, or the user chose so)."""
        if editor.path is not None:
            self.watcher.unwatch(editor.path)
        self.undo_group.removeStack(editor.document.undo_stack)
        self.removeTab(self.indexOf(editor))
        editor.deleteLater()
        self.openFilesChanged.emit()

    def save_editor(self, editor: PipelineEditor) -> bool:
        path = editor.path
        if path is None:
            return False
        try:
            editor.document.save()
        except OSError as exc:
            self.failed.emit("Cannot save", f"{path}: {asyncqt.describe(exc)}. Your text is kept; "
                             "fix the folder or its permissions and save again.")
            return False
        self.watcher.saved(path)
        editor.banner.hide()
        self.fileSaved.emit(path, editor.document.text)
        self.status.emit(f"Saved {path.name}")
        return True

    def save_all(self) -> None:
        for editor in self.editors():
            if editor.document.is_modified():
                self.save_editor(editor)

    def file_renamed(self, old: Path, new: Path) -> None:
        """The workspace tree renamed a file: its tab (if any) follows."""
        editor = self.editor_for(old)
        if editor is None:
            return
        self.watcher.unwatch(old)
        editor.document.path = new
        editor.document.pathChanged.emit(str(new))
        self.watcher.watch(new)
        self.setTabToolTip(self.indexOf(editor), str(new))

    def file_deleted(self, path: Path) -> None:
        """The workspace tree deleted a file: its tab closes."""
        editor = self.editor_for(path)
        if editor is not None:
            self.drop_editor(editor)
        self.fileGone.emit(path)

    # ------------------------------------------------------------------ internals

    def _current_changed(self, _index: int) -> None:
        editor = self.current_editor()
        if editor is not None:
            self.undo_group.setActiveStack(editor.document.undo_stack)
        self.editorChanged.emit()

    def _update_tab(self, editor: PipelineEditor) -> None:
        index = self.indexOf(editor)
        if index < 0 or editor.path is None:
            return
        mark = "● " if editor.document.is_modified() else ""
        self.setTabText(index, f"{mark}{editor.path.name}")
        self.editorChanged.emit()

    def _read(self, path: Path) -> str | None:
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.failed.emit("Cannot reload", f"{path}: {asyncqt.describe(exc)}")
            return None

    def _changed_on_disk(self, path: Path) -> None:
        editor = self.editor_for(path)
        text = self._read(path) if editor is not None else None
        if editor is None or text is None or text == editor.document.text:
            return
        if not editor.document.is_modified():
            editor.document.reload(text)
            self.status.emit(f"Reloaded {path.name}: it changed on disk")
            self.fileSaved.emit(path, text)
            return
        editor.banner.show_message(f"{path.name} changed on disk and you have unsaved edits.",
                                   ("Reload from disk", lambda: self._reload_from_disk(editor)),
                                   ("Keep my version", lambda: None))

    def _reload_from_disk(self, editor: PipelineEditor) -> None:
        text = self._read(editor.path) if editor.path is not None else None
        if text is not None:
            editor.document.reload(text)  # undoable: the user's version is one Ctrl+Z away

    def _deleted_on_disk(self, path: Path) -> None:
        self.fileGone.emit(path)
        editor = self.editor_for(path)
        if editor is None:
            return
        editor.banner.show_message(f"{path.name} was deleted on disk. Your text is kept: "
                                   "save to write it again, or close the tab.",
                                   ("Save again", lambda: self.save_editor(editor)),
                                   ("Close", lambda: self.drop_editor(editor)))
