"""The workspace panel: a folder of pipeline files with new / rename / delete / reveal.

Every file operation is a plain method (``new_file``, ``new_folder``, ``rename``,
``delete``, ``reveal``) that raises ``ValueError`` for a bad name and ``OSError`` for what
the file system refuses; the context menu and shortcuts ask for names, call the same
methods and show those errors in a message box. The main window listens to the signals to
open files and to follow renames and deletions of open files (a renamed or deleted folder
is reported with the folder's path: open files under it moved or went with it).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from PySide6.QtCore import QDir, QFile, QModelIndex, QPoint, Qt, QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QFileSystemModel,
    QInputDialog,
    QLineEdit,
    QMenu,
    QMessageBox,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

PIPELINE_SUFFIXES = (".yaml", ".yml", ".json")
NAME_FILTERS = [f"*{s}" for s in PIPELINE_SUFFIXES]
_FORBIDDEN = re.compile(r'[<>:"/\\|?*\x00-\x1f]')  # not portable to every file system
_PIPELINE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")  # what the engine accepts as a pipeline name

YAML_TEMPLATE = """\
# {pipeline}: describe what this pipeline does.
# Run it from the studio with an input such as {{"name": "ada"}}; add steps from the palette.
pipelines:
  {pipeline}:
    description: A new pipeline
    trigger: {{type: manual}}
    steps:
      - name: greet
        type: step.set
        config:
          values:
            greeting: "hello {{{{ .name }}}}"
"""


class TrashUnavailable(OSError):
    """The platform has no trash for this path; deleting would be permanent."""


def pipeline_name_for(stem: str) -> str:
    name = _PIPELINE_NAME.sub("-", stem).strip("-.")
    return name or "pipeline"


def template_for(path: Path) -> str:
    """A small valid pipeline named after the file (JSON files get the same pipeline as JSON)."""
    pipeline = pipeline_name_for(path.stem)
    if path.suffix == ".json":
        # JSON has no comments: the description says what to do instead.
        return (
            json.dumps(
                {
                    "pipelines": {
                        pipeline: {
                            "description": "A new pipeline: describe what it does",
                            "trigger": {"type": "manual"},
                            "steps": [
                                {
                                    "name": "greet",
                                    "type": "step.set",
                                    "config": {"values": {"greeting": "hello {{ .name }}"}},
                                }
                            ],
                        }
                    }
                },
                indent=2,
            )
            + "\n"
        )
    return YAML_TEMPLATE.format(pipeline=pipeline)


def check_name(name: str) -> str:
    """A file or folder name typed by a person, stripped; ValueError says what is wrong."""
    name = name.strip()
    if not name:
        raise ValueError("a name is required")
    if name in (".", ".."):
        raise ValueError(f"{name!r} is not a usable name")
    if _FORBIDDEN.search(name):
        raise ValueError(f'{name!r}: a name cannot contain / \\ : * ? " < > | or control characters')
    if name.startswith("."):
        raise ValueError(f"{name!r}: names starting with a dot are hidden; choose another")
    return name


def check_file_name(name: str, default_suffix: str = ".yaml") -> str:
    """A pipeline file name: no suffix gets ``default_suffix``; other suffixes are refused."""
    name = check_name(name)
    suffix = Path(name).suffix.lower()
    if not suffix:
        return name + default_suffix
    if suffix not in PIPELINE_SUFFIXES:
        raise ValueError(f"{name!r}: pipeline files end in .yaml, .yml or .json")
    return name


def reveal_url(path: Path | str) -> QUrl:
    """What ``reveal`` opens: the folder itself, or the folder holding a file."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    return QUrl.fromLocalFile(str(folder))


class WorkspaceTree(QWidget):
    openRequested = Signal(Path)
    fileCreated = Signal(Path)  # a new file or folder
    fileRenamed = Signal(Path, Path)  # (old, new): a file or a folder
    fileDeleted = Signal(Path)  # a file or a folder

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("workspaceTree")
        self.root: Path | None = None
        self.model = QFileSystemModel(self)
        self.model.setReadOnly(True)  # renames go through rename(): validation and signals
        self.model.setFilter(QDir.Filter.AllDirs | QDir.Filter.Files | QDir.Filter.NoDotAndDotDot)
        self.model.setNameFilters(NAME_FILTERS)
        self.model.setNameFilterDisables(False)  # hide other files instead of greying them
        self.view = QTreeView(self)
        self.view.setObjectName("workspaceView")
        self.view.setModel(self.model)
        self.view.setHeaderHidden(True)
        for column in (1, 2, 3):  # size, type, date: noise in a side panel
            self.view.hideColumn(column)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._menu)
        self.view.activated.connect(self._activated)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)
        self._add_shortcut("Rename…", QKeySequence(Qt.Key.Key_F2), self.ask_rename)
        self._add_shortcut("Delete", QKeySequence(QKeySequence.StandardKey.Delete), self.ask_delete)

    def _add_shortcut(self, text: str, keys: QKeySequence, slot: object) -> None:
        action = QAction(text, self.view)
        action.setShortcut(keys)
        action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        action.triggered.connect(slot)
        self.view.addAction(action)

    # ------------------------------------------------------------------ root and selection

    def set_root(self, path: Path | str) -> None:
        self.root = Path(path).resolve()
        index = self.model.setRootPath(str(self.root))
        self.view.setRootIndex(index)

    def index_of(self, path: Path | str) -> QModelIndex:
        return self.model.index(str(path))

    def path_of(self, index: QModelIndex) -> Path | None:
        return Path(self.model.filePath(index)) if index.isValid() else None

    def selected_path(self) -> Path | None:
        return self.path_of(self.view.currentIndex())

    def select(self, path: Path | str) -> None:
        index = self.index_of(path)
        if index.isValid():
            self.view.setCurrentIndex(index)
            self.view.scrollTo(index)

    def _target_folder(self, path: Path | None) -> Path | None:
        """Where "New file" puts a file for a click on ``path``."""
        if path is None:
            return self.root
        return path if path.is_dir() else path.parent

    # ------------------------------------------------------------------ operations (no dialogs)

    def new_file(self, folder: Path | str, name: str) -> Path:
        """Create a pipeline file holding a small valid template; never overwrites."""
        folder = Path(folder)
        path = folder / check_file_name(name)
        if path.exists():
            raise FileExistsError(f"{path.name} already exists in {folder}; choose another name")
        with path.open("x", encoding="utf-8", newline="\n") as handle:  # "x": refuses a racing file too
            handle.write(template_for(path))
        self.fileCreated.emit(path)
        self.select(path)
        return path

    def new_folder(self, folder: Path | str, name: str) -> Path:
        folder = Path(folder)
        path = folder / check_name(name)
        if path.exists():
            raise FileExistsError(f"{path.name} already exists in {folder}; choose another name")
        path.mkdir()
        self.fileCreated.emit(path)
        return path

    def rename(self, path: Path | str, new_name: str) -> Path:
        """Rename in place (same folder). A file keeps its suffix when ``new_name`` has none."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path.name} no longer exists")
        if path.is_dir():
            name = check_name(new_name)
        else:
            name = check_file_name(new_name, default_suffix=path.suffix or ".yaml")
        target = path.with_name(name)
        if target == path:
            return path
        # os.rename silently replaces a file on POSIX: refuse first (a case-only rename of the
        # same file on a case-insensitive disk is fine).
        if target.exists() and not _same_file(path, target):
            raise FileExistsError(f"{name} already exists in {path.parent}; choose another name")
        path.rename(target)
        self.fileRenamed.emit(path, target)
        return target

    def delete(self, path: Path | str, *, allow_permanent: bool = True) -> bool:
        """Move ``path`` to the trash (True). Where there is none, delete it for good (False)
        when ``allow_permanent``, else raise TrashUnavailable so the caller can ask first."""
        path = Path(path)
        if not path.exists() and not path.is_symlink():
            raise FileNotFoundError(f"{path.name} no longer exists")
        trashed, _where = _move_to_trash(path)
        if not trashed:
            if not allow_permanent:
                raise TrashUnavailable(f"{path.name} cannot be moved to the trash here")
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        self.fileDeleted.emit(path)
        return trashed

    def reveal(self, path: Path | str) -> bool:
        return QDesktopServices.openUrl(reveal_url(path))

    # ------------------------------------------------------------------ UI: menu, dialogs, messages

    def _activated(self, index: QModelIndex) -> None:
        path = self.path_of(index)
        if path is not None and path.is_file():
            self.openRequested.emit(path)

    def _menu(self, pos: QPoint) -> None:
        path = self.path_of(self.view.indexAt(pos))
        menu = QMenu(self)
        if path is not None and path.is_file():
            menu.addAction("Open", lambda: self.openRequested.emit(path))
            menu.addSeparator()
        menu.addAction("New File…", lambda: self.ask_new_file(path))
        menu.addAction("New Folder…", lambda: self.ask_new_folder(path))
        if path is not None:
            menu.addSeparator()
            menu.addAction("Rename…", lambda: self.ask_rename(path))
            menu.addAction("Delete", lambda: self.ask_delete(path))
        menu.addSeparator()
        menu.addAction("Reveal in File Manager", lambda: self.reveal(path or self.root or Path.cwd()))
        menu.popup(self.view.viewport().mapToGlobal(pos))

    def _ask_text(self, title: str, label: str, text: str = "") -> str | None:
        value, ok = QInputDialog.getText(self, title, label, QLineEdit.EchoMode.Normal, text)
        return value if ok else None

    def _warn(self, title: str, message: str) -> None:
        QMessageBox.warning(self, title, message)

    def ask_new_file(self, near: Path | None = None) -> Path | None:
        folder = self._target_folder(near if near is not None else self.selected_path())
        if folder is None:
            self._warn("New File", "Open a workspace folder first.")
            return None
        text = ""
        while True:  # ask again after a bad name, keeping what was typed
            answer = self._ask_text("New File", f"Pipeline file name (in {folder.name}/):", text)
            if answer is None:
                return None
            try:
                return self.new_file(folder, answer)
            except (ValueError, OSError) as exc:
                self._warn("New File", _message(exc))
                text = answer

    def ask_new_folder(self, near: Path | None = None) -> Path | None:
        folder = self._target_folder(near if near is not None else self.selected_path())
        if folder is None:
            self._warn("New Folder", "Open a workspace folder first.")
            return None
        text = ""
        while True:
            answer = self._ask_text("New Folder", f"Folder name (in {folder.name}/):", text)
            if answer is None:
                return None
            try:
                return self.new_folder(folder, answer)
            except (ValueError, OSError) as exc:
                self._warn("New Folder", _message(exc))
                text = answer

    def ask_rename(self, path: Path | None = None) -> Path | None:
        path = path if isinstance(path, Path) else self.selected_path()
        if path is None:
            return None
        text = path.name
        while True:
            answer = self._ask_text("Rename", f"New name for {path.name}:", text)
            if answer is None:
                return None
            try:
                return self.rename(path, answer)
            except (ValueError, OSError) as exc:
                self._warn("Rename", _message(exc))
                text = answer

    def ask_delete(self, path: Path | None = None) -> bool:
        path = path if isinstance(path, Path) else self.selected_path()
        if path is None:
            return False
        try:
            try:
                self.delete(path, allow_permanent=False)
                return True
            except TrashUnavailable:
                kind = "folder and everything in it" if path.is_dir() else "file"
                answer = QMessageBox.question(
                    self,
                    "Delete",
                    f"There is no trash here: delete the {kind} {path.name} permanently?",
                    QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                    QMessageBox.StandardButton.Cancel,
                )
                if answer != QMessageBox.StandardButton.Yes:
                    return False
                self.delete(path, allow_permanent=True)
                return True
        except OSError as exc:
            self._warn("Delete", _message(exc))
            return False


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def _move_to_trash(path: Path) -> tuple[bool, str]:
    result = QFile.moveToTrash(str(path))
    if isinstance(result, tuple):  # PySide6: (ok, path in trash)
        return bool(result[0]), str(result[1] or "")
    return bool(result), ""


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:  # from the system: say which file
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc)
