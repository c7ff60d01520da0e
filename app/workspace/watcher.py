"""Notice open files changing or vanishing on disk, but not our own saves.

QFileSystemWatcher reports too much and too little: several signals for one write, a
signal for a touch that changed nothing, and a file replaced atomically (``os.replace``,
which editors and our own save use) silently drops out of the watch list. So every path's
last known content hash is kept, reports are debounced and compared against it, a path is
re-added whenever it exists but is no longer watched, and the folders holding watched
files are watched too, so a file deleted and created again is still seen.

Our own writes call :meth:`FileWatcher.saved` afterwards: that records the new content as
known, and the notification the write causes then compares equal and is dropped.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from PySide6.QtCore import QFileSystemWatcher, QObject, QTimer, Signal


def _digest(path: Path) -> str | None:
    """The content hash; None when the file is missing (or not a file)."""
    try:
        return hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


class FileWatcher(QObject):
    changedOnDisk = Signal(Path)  # content differs from what we last read or saved
    deletedOnDisk = Signal(Path)  # gone (after the debounce: an atomic replace is not a delete)

    def __init__(self, parent: QObject | None = None, debounce_ms: int = 150):
        super().__init__(parent)
        self._watcher = QFileSystemWatcher(self)
        self._watcher.fileChanged.connect(self._file_event)
        self._watcher.directoryChanged.connect(self._folder_event)
        self._known: dict[Path, str | None] = {}  # path -> last known content hash (None: missing)
        self._folders: dict[Path, int] = {}  # watched folder -> number of watched files in it
        self._pending: set[Path] = set()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(debounce_ms)
        self._timer.timeout.connect(self.flush)

    @staticmethod
    def _key(path: Path | str) -> Path:
        return Path(path).absolute()

    def watched(self) -> list[Path]:
        return list(self._known)

    def pending(self) -> set[Path]:
        """Paths with a notification waiting for the debounce (tests flush them at once)."""
        return set(self._pending)

    def watch(self, path: Path | str) -> None:
        key = self._key(path)
        if key in self._known:
            return
        self._known[key] = _digest(key)
        if self._known[key] is not None:
            self._watcher.addPath(str(key))
        folder = key.parent
        self._folders[folder] = self._folders.get(folder, 0) + 1
        if self._folders[folder] == 1 and folder.is_dir():
            self._watcher.addPath(str(folder))

    def unwatch(self, path: Path | str) -> None:
        key = self._key(path)
        if key not in self._known:
            return
        del self._known[key]
        self._pending.discard(key)
        if str(key) in self._watcher.files():
            self._watcher.removePath(str(key))
        folder = key.parent
        count = self._folders.get(folder, 0) - 1
        if count <= 0:
            self._folders.pop(folder, None)
            if str(folder) in self._watcher.directories():
                self._watcher.removePath(str(folder))
        else:
            self._folders[folder] = count

    def saved(self, path: Path | str, data: bytes | str | None = None) -> None:
        """We wrote ``path`` (``data``, or whatever is on disk now): that is not a change."""
        key = self._key(path)
        if key not in self._known:
            self.watch(key)
        if data is None:
            self._known[key] = _digest(key)
        else:
            raw = data.encode("utf-8") if isinstance(data, str) else data
            self._known[key] = hashlib.blake2b(raw, digest_size=16).hexdigest()
        self._rewatch(key)

    def _rewatch(self, key: Path) -> None:
        if key.is_file() and str(key) not in self._watcher.files():
            self._watcher.addPath(str(key))

    def _file_event(self, name: str) -> None:
        key = self._key(name)
        if key in self._known:
            self._pending.add(key)
            self._timer.start()

    def _folder_event(self, name: str) -> None:
        folder = self._key(name)
        touched = [p for p in self._known if p.parent == folder]
        if touched:
            self._pending.update(touched)
            self._timer.start()

    def flush(self) -> None:
        """Compare every pending path with what we know and report the differences."""
        self._timer.stop()
        pending, self._pending = self._pending, set()
        for key in sorted(pending):
            if key not in self._known:
                continue  # unwatched meanwhile
            digest = _digest(key)
            self._rewatch(key)  # an atomic replace dropped it from the watch list
            if digest == self._known[key]:
                continue
            self._known[key] = digest
            if digest is None:
                self.deletedOnDisk.emit(key)
            else:
                self.changedOnDisk.emit(key)
