"""The workspace tree (new / rename / delete / reveal, the UI path's messages) and the file
watcher (external changes and deletes seen, atomic replaces followed, our own saves ignored)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QInputDialog, QMessageBox, QTreeView

from app.settings import Settings
from app.workspace.tree import TrashUnavailable, WorkspaceTree, reveal_url
from app.workspace.watcher import FileWatcher


@pytest.fixture
def tree(qtbot, workspace: Path) -> WorkspaceTree:
    widget = WorkspaceTree()
    qtbot.addWidget(widget)
    with qtbot.waitSignal(widget.model.directoryLoaded, timeout=5000):
        widget.set_root(workspace)
    return widget


def shown_names(tree: WorkspaceTree) -> set[str]:
    view = tree.findChild(QTreeView, "workspaceView")
    root = view.rootIndex()
    return {tree.model.index(r, 0, root).data() for r in range(tree.model.rowCount(root))}


def test_tree_shows_pipeline_files_and_folders_only(qtbot, tree: WorkspaceTree, workspace: Path):
    (workspace / "notes.txt").write_text("not a pipeline")
    (workspace / "sub").mkdir()
    qtbot.waitUntil(lambda: "sub" in shown_names(tree), timeout=5000)
    names = shown_names(tree)
    assert {"orders.yaml", "routing.yaml", "samples.json", "sub"} <= names
    assert "notes.txt" not in names


def test_new_file_writes_a_valid_template_and_refuses_to_overwrite(qtbot, qloop, service, tree, workspace):
    with qtbot.waitSignal(tree.fileCreated) as created:
        path = tree.new_file(workspace, "billing flow")
    assert path == workspace / "billing flow.yaml" and created.args == [path]
    text = path.read_text()
    assert text.startswith("# billing-flow:")
    assert qloop.run_until_complete(service.validate(text, str(path))) == []
    as_json = tree.new_file(workspace, "other.json")
    assert qloop.run_until_complete(service.validate(as_json.read_text(), str(as_json))) == []

    path.write_text("# my edits\n")
    with pytest.raises(FileExistsError, match="already exists"):
        tree.new_file(workspace, "billing flow.yaml")
    assert path.read_text() == "# my edits\n"  # untouched
    for bad, why in (
        ("", "required"),
        ("a/b", "cannot contain"),
        (".hidden", "dot"),
        ("notes.txt", ".yaml, .yml or .json"),
    ):
        with pytest.raises(ValueError, match=why):
            tree.new_file(workspace, bad)


def test_rename_keeps_the_suffix_refuses_clobbering_and_signals(qtbot, tree: WorkspaceTree, workspace: Path):
    old = workspace / "orders.yaml"
    with qtbot.waitSignal(tree.fileRenamed) as renamed:
        new = tree.rename(old, "shop")
    assert new == workspace / "shop.yaml" and renamed.args == [old, new]
    assert new.exists() and not old.exists()
    before = (workspace / "routing.yaml").read_text()
    with pytest.raises(FileExistsError, match=r"routing\.yaml already exists"):
        tree.rename(new, "routing.yaml")
    assert (workspace / "routing.yaml").read_text() == before and new.exists()
    with pytest.raises(ValueError, match="cannot contain"):
        tree.rename(new, "../escape.yaml")
    folder = tree.new_folder(workspace, "drafts")
    with qtbot.waitSignal(tree.fileRenamed) as renamed:
        moved = tree.rename(folder, "old drafts")
    assert renamed.args == [folder, workspace / "old drafts"] and moved.is_dir()


def test_delete_goes_to_the_trash_or_asks_first(qtbot, tree: WorkspaceTree, workspace: Path):
    path = workspace / "fanout.yaml"
    try:
        with qtbot.waitSignal(tree.fileDeleted) as deleted:
            trashed = tree.delete(path, allow_permanent=False)
        assert trashed and deleted.args == [path] and not path.exists()
    except TrashUnavailable:  # no trash on this machine: nothing happened without consent
        assert path.exists()
        with qtbot.waitSignal(tree.fileDeleted) as deleted:
            assert tree.delete(path) is False  # permanently, as allowed
        assert deleted.args == [path] and not path.exists()
    with pytest.raises(FileNotFoundError):
        tree.delete(path)


def test_reveal_opens_the_folder_holding_the_file(workspace: Path):
    assert reveal_url(workspace / "orders.yaml").toLocalFile() == str(workspace)
    (workspace / "sub").mkdir()
    assert reveal_url(workspace / "sub").toLocalFile() == str(workspace / "sub")


def test_enter_on_a_file_requests_opening_it(qtbot, tree: WorkspaceTree, workspace: Path):
    view = tree.findChild(QTreeView, "workspaceView")
    tree.select(workspace / "orders.yaml")
    with qtbot.waitSignal(tree.openRequested) as opened:
        qtbot.keyClick(view, Qt.Key.Key_Return)
    assert opened.args == [workspace / "orders.yaml"]


def test_ui_path_shows_a_bad_name_in_a_message_and_asks_again(qtbot, tree, workspace, monkeypatch):
    answers = iter([("a:b", True), ("good", True)])
    asked: list[str] = []
    warnings: list[str] = []
    monkeypatch.setattr(
        QInputDialog, "getText", lambda _p, _t, _l, _m, text: (asked.append(text), next(answers))[1]
    )
    monkeypatch.setattr(QMessageBox, "warning", lambda _p, _t, message: warnings.append(message))
    created = tree.ask_new_file(workspace / "orders.yaml")  # a file's folder is where it goes
    assert created == workspace / "good.yaml" and created.exists()
    assert len(warnings) == 1 and "cannot contain" in warnings[0]
    assert asked == ["", "a:b"]  # asked again with what was typed


# ---------------------------------------------------------------------- watcher


def replace_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.fixture
def watcher(qtbot) -> FileWatcher:
    return FileWatcher(debounce_ms=30)


def test_watcher_sees_external_changes_after_an_atomic_replace_too(qtbot, watcher, workspace):
    path = workspace / "orders.yaml"
    watcher.watch(path)
    with qtbot.waitSignal(watcher.changedOnDisk, timeout=5000) as changed:
        replace_atomically(path, "# edited elsewhere\n")
    assert changed.args == [path]
    with qtbot.waitSignal(watcher.changedOnDisk, timeout=5000):  # still watched after the replace
        path.write_text("# edited again\n")


def test_watcher_reports_an_external_delete(qtbot, watcher, workspace):
    path = workspace / "routing.yaml"
    watcher.watch(path)
    with qtbot.waitSignal(watcher.deletedOnDisk, timeout=5000) as deleted:
        path.unlink()
    assert deleted.args == [path]
    with qtbot.waitSignal(watcher.changedOnDisk, timeout=5000):  # and its coming back
        path.write_text("# restored\n")


def test_watcher_ignores_our_own_save(qtbot, workspace):
    watcher = FileWatcher(debounce_ms=60_000)  # flushed by hand: no timing involved
    path = workspace / "orders.yaml"
    watcher.watch(path)
    seen: list[Path] = []
    watcher.changedOnDisk.connect(seen.append)
    watcher.deletedOnDisk.connect(seen.append)
    replace_atomically(path, "# saved by the studio\n")
    watcher.saved(path)
    qtbot.waitUntil(lambda: path in watcher.pending(), timeout=5000)  # the notification arrived
    watcher.flush()
    assert seen == []
    path.write_text("# then someone else\n")
    qtbot.waitUntil(lambda: path in watcher.pending(), timeout=5000)  # re-watched after our replace
    watcher.flush()
    assert seen == [path]


def test_settings_remember_workspace_state(tmp_path: Path):
    settings = Settings(tmp_path / "studio.ini")
    assert settings.last_workspace() is None and settings.theme() == "light"
    for i in range(12):
        settings.set_last_workspace(tmp_path / f"w{i}")
    settings.add_recent_folder(tmp_path / "w5")
    settings.set_theme("dark")
    settings.set_window_geometry(b"\x01\x02geom")
    settings.set_open_files(tmp_path / "w1", [tmp_path / "w1" / "a.yaml"])
    settings.sync()
    again = Settings(tmp_path / "studio.ini")
    recent = again.recent_folders()
    assert recent[:2] == [tmp_path / "w5", tmp_path / "w11"] and len(recent) == 10
    assert again.last_workspace() == tmp_path / "w11" and again.theme() == "dark"
    assert again.window_geometry() == b"\x01\x02geom" and again.window_state() == b""
    assert again.open_files(tmp_path / "w1") == [tmp_path / "w1" / "a.yaml"]
    assert again.open_files(tmp_path / "w2") == []
    with pytest.raises(ValueError, match="light, dark"):
        again.set_theme("blue")


def test_ui_delete_asks_before_deleting_for_good(qtbot, tree, workspace, monkeypatch):
    path = workspace / "http-retry.yaml"
    answers = iter([QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Yes])
    asked: list[str] = []
    monkeypatch.setattr(
        QMessageBox, "question", lambda _p, _t, text, *_a: (asked.append(text), next(answers))[1]
    )
    deleted: list[Path] = []
    tree.fileDeleted.connect(deleted.append)
    first = tree.ask_delete(path)
    if asked:  # no trash here: the first answer (Cancel) kept the file
        assert first is False and path.exists() and deleted == [] and "permanently" in asked[0]
        assert tree.ask_delete(path) is True
    assert not path.exists() and deleted == [path]
