"""A studio that greets: what a newcomer sees on the first start, in the real window.

The example workspace opens on its simplest pipeline with a strip saying what to try; Run
is a labelled button; the debugger's buttons appear only while something is paused; the
window fits its screen; the first run of a pipeline gets a sample input that works; and a
debugger with nothing paused shows no error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QMargins, QRect, Qt
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QMainWindow,
    QPlainTextEdit,
    QPushButton,
    QToolBar,
    QToolButton,
)

from app.run.run_dialog import RunDialog
from app.run.samples import first_file
from app.settings import Settings
from app.shell.geometry import fitted
from app.shell.main_window import MainWindow
from engine.service.models import RunOptions
from tests.app.support import finished, settle, until


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    return tmp_path / "settings.ini"  # none yet: a first start


@pytest.fixture
def make_window(qloop, service, workspace: Path, settings_file: Path) -> Iterator:  # type: ignore[no-untyped-def]
    windows: list[MainWindow] = []

    def make(*, restore: bool = False, backend: bool = True) -> MainWindow:
        win = MainWindow(Settings(settings_file), workspace)
        if backend:
            qloop.run_until_complete(win.adopt_service(service, "Embedded"))
        if restore:
            win.restore_state()
        else:
            win.resize(760, 700)
        win.show()
        windows.append(win)
        return win

    yield make
    settle(qloop)
    for win in windows:
        for editor in win.editors():
            editor.document.undo_stack.setClean()
        win.close()
        win.deleteLater()


def _dialog(qloop) -> RunDialog:  # type: ignore[no-untyped-def]
    found: list[RunDialog] = []

    def opened() -> bool:
        found[:] = [w for w in QApplication.topLevelWidgets() if isinstance(w, RunDialog) and w.isVisible()]
        return bool(found)

    until(qloop, opened)
    return found[0]


def test_a_first_start_opens_the_first_example_and_later_starts_what_was_open(make_window, workspace: Path):
    window = make_window()
    window.open_start_files()
    assert [e.path for e in window.editors()] == [workspace / "orders.yaml"]  # samples.json's first file
    window.close()

    # the next start opens what was open then, not the example again
    window = make_window()
    window.open_start_files()
    assert [e.path for e in window.editors()] == [workspace / "orders.yaml"]
    window.open_file(workspace / "routing.yaml")
    window.close_tab(window.tabs.indexOf(window.editor_for(workspace / "orders.yaml")))
    window = make_window()
    window.open_start_files()
    assert [e.path for e in window.editors()] == [workspace / "routing.yaml"]


def test_the_first_file_without_usable_samples_is_the_first_yaml_file(tmp_path: Path):
    folder = tmp_path / "w"
    folder.mkdir()
    assert first_file(folder) is None
    for name in ("b.yaml", "a.yaml"):
        (folder / name).write_text("pipelines: {}\n")
    (folder / "samples.json").write_text('[{"file": "gone.yaml", "pipeline": "p"}, {"pipeline": "q"}')
    assert first_file(folder) == folder / "a.yaml"  # damaged samples: ignored
    (folder / "samples.json").write_text('[{"file": "gone.yaml", "pipeline": "p"}, '
                                         '{"file": "b.yaml", "pipeline": "q"}]')
    assert first_file(folder) == folder / "b.yaml"  # the first sample whose file exists


def test_a_welcome_strip_says_what_to_try_until_it_is_dismissed(make_window, settings_file: Path, qloop):
    window = make_window()
    strip = window.welcome
    assert strip.isVisible()
    text = strip.findChild(QLabel, "welcomeText").text()
    for words in ("Ctrl+R", "F9", "replay", "Diff"):
        assert words in text
    # its Run link runs the pipeline, like Ctrl+R
    window.open_start_files()
    strip.findChild(QLabel, "welcomeText").linkActivated.emit("actionRun")
    dialog = _dialog(qloop)
    dialog.reject()

    strip.findChild(QToolButton, "dismissWelcome").click()
    assert not strip.isVisible()
    Settings(settings_file).sync()
    assert Settings(settings_file).welcome_dismissed()
    assert not make_window().welcome.isVisible()  # remembered: the next start has no strip


def _main_toolbar(window: MainWindow) -> QToolBar:
    toolbar = window.findChild(QToolBar, "mainToolbar")
    assert toolbar is not None
    return toolbar


def test_run_is_a_labelled_button_with_its_shortcut_in_the_tooltip(make_window):
    window = make_window()
    button = _main_toolbar(window).widgetForAction(window.act_run)
    assert isinstance(button, QToolButton) and button.isVisible()
    assert button.toolButtonStyle() == Qt.ToolButtonStyle.ToolButtonTextBesideIcon
    assert button.text() == "Run"
    assert "Ctrl+R" in window.act_run.toolTip()


def test_the_debug_toolbar_appears_after_the_main_actions_only_while_paused(make_window, workspace: Path,
                                                                            qloop):
    window = make_window()
    debug = window.debugger.debug_actions.toolbar
    assert window.toolBarArea(debug) == window.toolBarArea(_main_toolbar(window))
    assert not debug.isVisible()  # nothing paused: the main actions lead the toolbar

    service = window.backend.service
    window.open_file(workspace / "orders.yaml")
    qloop.run_until_complete(window.breakpoints.add_breakpoint("create-order", "price"))
    started = qloop.run_until_complete(service.run("create-order", {"sku": "AB-1", "qty": 2},
                                                   RunOptions(wait=False)))
    until(qloop, lambda: window.debugger.paused_panel.current() is not None)
    assert debug.isVisible()
    main = _main_toolbar(window).geometry()
    assert debug.geometry().left() >= main.right() or debug.geometry().top() >= main.bottom()  # after it

    window.debugger.debug_actions.actions["continue"].trigger()
    assert finished(qloop, service, started.execution_id).status == "completed"
    until(qloop, lambda: window.debugger.paused_panel.current() is None)
    assert not debug.isVisible()


def test_a_layout_saved_with_the_debug_toolbar_first_puts_it_after_the_main_actions(make_window, qloop,
                                                                                   settings_file: Path):
    old = make_window(backend=False)  # the layout of earlier versions: debug toolbar, then main
    debug, main = old.debugger.debug_actions.toolbar, _main_toolbar(old)
    old.removeToolBar(main)
    old.addToolBar(main)
    main.show()
    settings = Settings(settings_file)
    settings.set_window_state(bytes(old.saveState().data()))
    settings.sync()
    old.close()

    window = make_window(restore=True, backend=False)
    debug, main = window.debugger.debug_actions.toolbar, _main_toolbar(window)
    debug.show()  # as a pause shows it
    until(qloop, lambda: debug.isVisible() and debug.geometry().width() > 0)
    assert debug.geometry().left() >= main.geometry().right() or debug.geometry().top() >= main.geometry().bottom()


def _fits(window: QMainWindow) -> bool:
    return window.screen().availableGeometry().contains(window.frameGeometry())


def test_the_window_fits_the_screen_it_opens_on(make_window, settings_file: Path, qloop):
    window = make_window(restore=True, backend=False)  # a first start: the default size
    available = window.screen().availableGeometry()
    assert available.width() < 1440 or available.height() < 900  # (the default would not fit)
    until(qloop, lambda: window.isVisible())
    assert _fits(window), (window.frameGeometry(), available)
    window.close()

    # a geometry remembered from a bigger monitor is fitted too
    big = QMainWindow()
    big.setGeometry(QRect(available.x() + 40, available.y() + 40, available.width() + 600,
                          available.height() + 400))
    settings = Settings(settings_file)
    settings.set_window_geometry(bytes(big.saveGeometry().data()))
    settings.sync()
    window = make_window(restore=True, backend=False)
    until(qloop, lambda: window.isVisible())
    assert _fits(window), (window.frameGeometry(), available)
    assert window.width() > 1000 or window.width() >= available.width() - 10  # restored, then fitted


def test_fitted_keeps_a_fitting_window_and_moves_or_shrinks_the_rest():
    screen = QRect(0, 0, 1000, 700)
    frame = QMargins(3, 30, 3, 3)
    inside = QRect(100, 100, 400, 300)
    assert fitted(inside, frame, screen) == inside
    assert fitted(QRect(900, 600, 400, 300), frame, screen) == QRect(597, 397, 400, 300)
    assert fitted(QRect(-50, -50, 2000, 2000), frame, screen) == QRect(3, 30, 994, 667)
    assert fitted(QRect(0, 0, 400, 300), frame, screen, center=True) == QRect(300, 213, 400, 300)


def test_the_first_run_of_a_pipeline_gets_a_sample_input(make_window, workspace: Path, settings_file: Path,
                                                         qloop):
    samples = json.loads((workspace / "samples.json").read_text())
    window = make_window()
    window.open_file(workspace / "orders.yaml")  # an http trigger: the sample is the request body
    window.act_run.trigger()
    dialog = _dialog(qloop)
    body = dialog.findChild(QPlainTextEdit, "httpBody")
    assert json.loads(body.toPlainText()) == samples[0]["input"] == {"sku": "ABC-1", "qty": 12}
    assert dialog.error() is None
    dialog.findChild(QPushButton, "runButton").click()
    until(qloop, lambda: any(e.status != "running" for e in window.output.entries()))
    entry = window.output.entries()[0]
    assert entry.status == "completed", entry.message  # the first run works
    assert entry.result.response["status"] == 201

    # a pipeline with a plain input: the input itself; another sample is one choice away
    window.open_file(workspace / "routing.yaml")
    window.act_run.trigger()
    dialog = _dialog(qloop)
    text = dialog.findChild(QPlainTextEdit, "runInput")
    assert json.loads(text.toPlainText()) == {"id": "T-1", "severity": 9, "product": "billing"}
    dialog.use_sample(2)
    assert json.loads(text.toPlainText())["id"] == "T-3"
    text.undo()  # choosing a sample is an edit like any other
    assert json.loads(text.toPlainText())["id"] == "T-1"
    text.setPlainText('{"id": "mine", "severity": 2, "product": "x"}')
    dialog.reject()
    settle(qloop)

    # what was typed last wins over the sample
    window.act_run.trigger()
    dialog = _dialog(qloop)
    assert json.loads(dialog.findChild(QPlainTextEdit, "runInput").toPlainText())["id"] == "mine"
    dialog.reject()


def test_the_context_editor_shows_no_error_when_nothing_is_paused(make_window, workspace: Path, qloop):
    window = make_window()
    editor = window.debugger.context_editor
    assert editor.json.error() == "" and not editor.json.error_label.isVisibleTo(editor)  # at start

    service = window.backend.service
    window.open_file(workspace / "orders.yaml")
    qloop.run_until_complete(window.breakpoints.add_breakpoint("create-order", "price"))
    started = qloop.run_until_complete(service.run("create-order", {"sku": "AB-1", "qty": 2},
                                                   RunOptions(wait=False)))
    until(qloop, lambda: window.debugger.paused_panel.current() is not None)
    editor.set_text("{ not json")  # an edit that cannot be sent is an error while paused...
    until(qloop, lambda: editor.json.error() != "")
    editor.revert()
    window.debugger.debug_actions.actions["continue"].trigger()
    assert finished(qloop, service, started.execution_id).status == "completed"
    until(qloop, lambda: window.debugger.paused_panel.current() is None)
    settle(qloop)
    assert editor.text() == ""
    assert editor.json.error() == "" and not editor.json.error_label.isVisibleTo(editor)  # ...not after
