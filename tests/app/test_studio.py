"""The studio window end to end: real widgets, the real embedded service, real files.

Open the example workspace, add a step from the palette, wire it, edit a property, undo
and redo, save and compare the file, break a reference and see the problem, run a
pipeline and see its result; plus what happens to bad files and files changed on disk.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QLineEdit, QPlainTextEdit, QPushButton

from app import asyncqt
from app.backend import Backend
from app.settings import Settings
from app.shell.main_window import MainWindow
from tests.app.support import settle, until


@pytest.fixture
def window(qtbot, qloop, service, workspace: Path, tmp_path: Path) -> Iterator[MainWindow]:
    settings = Settings(tmp_path / "settings.ini")
    win = MainWindow(settings, workspace)  # closed below, not by qtbot: unsaved tabs are cleaned first
    backend = Backend(service, "Embedded")
    qloop.run_until_complete(backend.refresh_info())
    win.set_backend(backend)
    qloop.run_until_complete(backend.load_workspace(workspace))
    win.resize(1400, 900)
    win.show()
    errors: list[tuple[str, str]] = []
    asyncqt.errors.reported.connect(lambda title, message: errors.append((title, message)))
    win.reported_errors = errors  # type: ignore[attr-defined]
    yield win
    settle(qloop)
    for editor in win.editors():
        editor.document.undo_stack.setClean()  # no "save changes?" prompt at teardown
    win.close()
    win.deleteLater()


def test_opens_the_workspace_with_the_engine_in_the_status_bar(window: MainWindow, workspace: Path, qloop):
    editor = window.open_file(workspace / "orders.yaml")
    assert editor is not None
    assert window.tabs.tabText(window.tabs.currentIndex()) == "orders.yaml"
    assert {"request", "check", "price", "store", "respond"} <= set(editor.graph.scene.steps)
    assert window.backend_label.text().startswith("Embedded · engine ")
    assert window.palette.item_for("step.http_call") is not None
    # opening the same file again focuses its tab instead of a second copy
    assert window.open_file(workspace / "orders.yaml") is editor and window.tabs.count() == 1


def test_add_a_step_wire_it_edit_it_undo_redo_and_save(window: MainWindow, workspace: Path, qloop):
    path = workspace / "routing.yaml"
    original = path.read_bytes()
    editor = window.open_file(path)
    assert editor is not None
    document = editor.document

    # add a step.log from the palette (double-click = insertRequested)
    before = set(document.outline.pipelines["triage"].nodes)
    editor.graph.select_step("triage", "reply")
    window.palette.insertRequested.emit("step.log")
    document.flush_outline()
    triage = document.outline.pipelines["triage"]
    added = [n for i, n in triage.nodes.items() if i not in before]
    assert len(added) == 1
    log_step = added[0]
    assert log_step.id in editor.graph.scene.steps

    # wire the router's default route to it
    assert editor.graph.rewire("route", "default", log_step.id)
    document.flush_outline()
    assert document.value_at(("pipelines", "triage", "steps", 1, "config", "default")) == log_step.name

    # edit its message in the property panel
    window.properties.show_step(document, "triage", log_step.id)
    field = window.properties.findChild(QLineEdit, "field:config.message") \
        or window.properties.findChild(QPlainTextEdit, "field:config.message")
    assert field is not None
    if isinstance(field, QLineEdit):
        field.setText("ticket {{ .id }} took the default route")
        field.editingFinished.emit()
    else:
        field.setPlainText("ticket {{ .id }} took the default route")
        window.properties.flush()
    message_path = (*log_step.path, "config", "message")
    assert document.value_at(message_path) == "ticket {{ .id }} took the default route"

    # one undo stack for the window: undo the message, then the wiring; redo both
    window.act_undo.trigger()
    assert document.value_at(message_path) != "ticket {{ .id }} took the default route"
    window.act_undo.trigger()
    assert document.value_at(("pipelines", "triage", "steps", 1, "config", "default")) == "auto-reply"
    window.act_redo.trigger()
    window.act_redo.trigger()
    assert document.value_at(message_path) == "ticket {{ .id }} took the default route"
    assert window.tabs.tabText(window.tabs.indexOf(editor)).startswith("● ")

    # save: the file holds exactly the document's text; only the edited lines changed
    window.act_save.trigger()
    settle(qloop)
    assert path.read_text(encoding="utf-8") == document.text
    assert not document.is_modified()
    before, after = original.decode().splitlines(), path.read_text().splitlines()
    assert [line.strip() for line in before if line not in after] == ["default: auto-reply"]
    assert all(line in after for line in before if "#" in line)  # every comment kept

    # the engine now runs the saved version: a low ticket takes the new default route
    result = qloop.run_until_complete(window.backend.service.run("triage", {"id": "T-9", "severity": 1,
                                                                            "product": "x"}))
    timeline = qloop.run_until_complete(window.backend.service.timeline(result.execution_id))
    assert log_step.name in {s.step for s in timeline.steps}


def test_an_unedited_save_is_byte_identical(window: MainWindow, workspace: Path, qloop):
    for name in ("orders.yaml", "fanout.yaml", "routing.yaml", "http-retry.yaml"):
        path = workspace / name
        original = path.read_bytes()
        editor = window.open_file(path)
        assert editor is not None
        assert window.save_editor(editor)
        assert path.read_bytes() == original
    settle(qloop)


def test_a_broken_reference_shows_in_problems_on_the_node_and_in_the_text(window: MainWindow,
                                                                         workspace: Path, qloop):
    path = workspace / "routing.yaml"
    editor = window.open_file(path)
    assert editor is not None
    settle(qloop)
    until(qloop, lambda: not editor._validate_timer.isActive())
    settle(qloop)
    assert window.problems.counts()[0] == 0
    line = next(i for i, text in enumerate(editor.document.text.splitlines(), 1)
                if "default: auto-reply" in text)
    editor.document.set_text(editor.document.text.replace("default: auto-reply", "default: nowhere"),
                             "Break a reference")
    until(qloop, lambda: window.problems.counts()[0] > 0)
    problems = window.problems.visible_problems()
    assert any("nowhere" in p.message and p.line == line for p in problems)
    assert window.problem_label.text().startswith("✖ 1")
    assert editor.graph.scene.steps["route"].severity == "error"
    assert editor.yaml.messages_on_line(line)
    # a double-click in Problems puts the cursor on the line
    window.problems.jumpRequested.emit(str(path), line, 9)
    assert editor.yaml.current_line() == line


def test_run_a_pipeline_from_the_editor_and_see_its_result(window: MainWindow, workspace: Path, qloop):
    editor = window.open_file(workspace / "orders.yaml")
    assert editor is not None
    window.act_run.trigger()
    dialog = None

    def dialog_open() -> bool:
        nonlocal dialog
        dialog = next((w for w in QApplication.topLevelWidgets()
                       if w.objectName() == "runDialog" and w.isVisible()), None)
        return dialog is not None

    until(qloop, dialog_open)
    body = dialog.findChild(QPlainTextEdit, "httpBody")
    body.setPlainText('{"sku": "AB-7", "qty": 2}')
    dialog.findChild(QPushButton, "runButton").click()
    until(qloop, lambda: any(e.status != "running" for e in window.output.entries()))
    entry = window.output.entries()[0]
    assert entry.status == "completed", entry.message
    assert entry.result is not None and entry.result.response["body"]["sku"] == "AB-7"
    assert entry.result.response["status"] == 201
    assert window.docks["Output"].isVisible()


def test_invalid_yaml_and_unknown_types_are_problems_not_crashes(window: MainWindow, workspace: Path,
                                                                  qloop):
    bad = workspace / "bad.yaml"
    bad.write_text("pipelines:\n  p:\n    steps:\n      - {name: a, type: step.nope}\n      - [oops\n")
    editor = window.open_file(bad)
    assert editor is not None  # opened with its text, even though it does not parse
    assert not editor.document.outline.ok
    assert editor.graph.findChild(QPushButton) is not None or editor.graph.isVisible()
    until(qloop, lambda: window.problems.counts()[0] > 0)
    assert any(p.file.endswith("bad.yaml") for p in window.problems.visible_problems())
    bad.write_text("pipelines:\n  p:\n    steps:\n      - {name: a, type: step.nope}\n")
    window.watcher.flush()
    until(qloop, lambda: editor.document.outline.ok)
    until(qloop, lambda: any("step.nope" in p.message for p in window.problems.visible_problems()))
    assert window.reported_errors == []  # type: ignore[attr-defined]


def test_a_file_deleted_while_open_keeps_the_text(window: MainWindow, workspace: Path, qloop):
    path = workspace / "fanout.yaml"
    editor = window.open_file(path)
    assert editor is not None
    editor.document.replace(0, 0, "# my unsaved note\n", typing=True)
    path.unlink()
    window.watcher.flush()
    until(qloop, lambda: editor.banner.isVisible())
    assert "deleted" in editor.banner.label.text()
    assert editor.document.text.startswith("# my unsaved note\n")
    editor.banner.primary.click()  # "Save again"
    settle(qloop)
    assert path.read_text().startswith("# my unsaved note\n")


def test_a_file_changed_on_disk_reloads_or_asks(window: MainWindow, workspace: Path, qloop):
    path = workspace / "fanout.yaml"
    editor = window.open_file(path)
    assert editor is not None
    # no local edits: reloaded silently
    path.write_text(path.read_text() + "# appended elsewhere\n")
    window.watcher.flush()
    until(qloop, lambda: editor.document.text.endswith("# appended elsewhere\n"))
    assert not editor.document.is_modified()
    # local edits: a banner asks; reloading is one undoable step
    editor.document.replace(0, 0, "# mine\n", typing=True)
    path.write_text(path.read_text() + "# theirs\n")
    window.watcher.flush()
    until(qloop, lambda: editor.banner.isVisible())
    assert editor.document.text.startswith("# mine\n")
    editor.banner.primary.click()  # "Reload from disk"
    assert editor.document.text.endswith("# theirs\n") and not editor.document.text.startswith("# mine")
    editor.document.undo_stack.undo()
    assert editor.document.text.startswith("# mine\n")


def test_command_palette_finds_and_triggers_actions(window: MainWindow, qtbot):
    window.show_command_palette()
    palette = window.findChild(QApplication.instance().activePopupWidget().__class__, "commandPalette") \
        if QApplication.activePopupWidget() else None
    palette = palette or next(w for w in QApplication.topLevelWidgets() if w.objectName() == "commandPalette")
    triggered: list[bool] = []
    window.act_theme.triggered.connect(lambda: triggered.append(True))
    palette.query.setText("dark thm")
    assert palette.list.count() >= 1
    assert "Dark Theme" in palette.list.item(0).text()
    qtbot.keyClick(palette.query, Qt.Key.Key_Return)
    assert triggered == [True]
    window.toggle_theme()  # back to light


def test_window_state_is_remembered(qtbot, qloop, workspace: Path, tmp_path: Path):
    settings = Settings(tmp_path / "state.ini")
    first = MainWindow(settings, workspace)
    qtbot.addWidget(first)
    first.restore_state()
    first.resize(700, 520)
    first.docks["Problems"].hide()
    first.show()
    first.close()
    second = MainWindow(Settings(tmp_path / "state.ini"), workspace)
    qtbot.addWidget(second)
    second.restore_state()
    second.show()
    assert (second.width(), second.height()) == (700, 520)
    assert not second.docks["Problems"].isVisible()
