"""YamlView: stays equal to its document both ways, one undo stack, editing keys, diagnostics."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PySide6.QtCore import QEvent, QMimeData, QPoint, Qt
from PySide6.QtGui import QHelpEvent, QTextCursor
from PySide6.QtWidgets import QApplication, QToolTip, QWidget

from app.editor.document import PipelineDocument
from app.editor.yaml_view import YamlView
from engine.service.models import DiagnosticInfo

STEPS = ("pipelines", "triage", "steps")


@pytest.fixture
def view(qtbot, workspace: Path) -> YamlView:  # type: ignore[no-untyped-def]
    doc = PipelineDocument.load(workspace / "routing.yaml")
    widget = YamlView(doc)
    widget.resize(700, 400)
    qtbot.addWidget(widget)
    widget.show()
    return widget


def put_cursor(view: YamlView, pos: int) -> None:
    cursor = view.textCursor()
    cursor.setPosition(pos)
    view.setTextCursor(cursor)


def test_typing_goes_to_the_document_as_one_merged_command(view: YamlView, qtbot) -> None:  # type: ignore[no-untyped-def]
    doc = view.doc
    original = doc.text
    assert view.objectName() == "yamlView" and view.view_text() == original
    put_cursor(view, original.index("tickets") + len("tickets"))
    qtbot.keyClicks(view, "-desk")
    assert doc.text == original.replace("tickets", "tickets-desk", 1)
    assert doc.undo_stack.count() == 1 and doc.is_modified()
    qtbot.keyClick(view, Qt.Key.Key_Backspace)
    qtbot.keyClick(view, Qt.Key.Key_Backspace)
    assert doc.undo_stack.count() == 2
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert view.view_text() == doc.text == original.replace("tickets", "tickets-desk", 1)
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert view.view_text() == doc.text == original
    assert not doc.is_modified()
    qtbot.keyClick(view, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert doc.text == original.replace("tickets", "tickets-desk", 1)
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert view.view_text() == doc.text == original.replace("tickets", "tickets-de", 1)
    # the cursor followed the undo/redo
    assert view.textCursor().position() == original.index("tickets") + len("tickets-de")


def test_structural_edits_elsewhere_keep_the_cursor_and_scroll(view: YamlView, qtbot) -> None:  # type: ignore[no-untyped-def]
    doc = view.doc
    for _ in range(4):  # make the text long enough to scroll
        doc.duplicate_step((*STEPS, 2))
    line = view.doc.text.splitlines().index("      - name: reply") + 1
    view.go_to(line, 9)
    view.verticalScrollBar().setValue(line - 3)
    top_text = view.firstVisibleBlock().text()
    cursor_before = view.textCursor().block().text()
    assert view.current_line() == line and cursor_before == "      - name: reply"
    doc.insert_step(STEPS, 1, {"type": "step.log", "config": {"message": "x"}})  # above the view
    assert view.view_text() == doc.text
    assert view.textCursor().block().text() == cursor_before
    assert view.textCursor().positionInBlock() == 8
    assert view.firstVisibleBlock().text() == top_text
    doc.undo_stack.undo()
    assert view.view_text() == doc.text
    assert view.textCursor().block().text() == cursor_before


def test_tab_enter_and_indent_of_a_selection(view: YamlView, qtbot) -> None:  # type: ignore[no-untyped-def]
    doc = view.doc
    end_of_key = doc.text.index("    steps:") + len("    steps:")
    put_cursor(view, end_of_key)
    qtbot.keyClick(view, Qt.Key.Key_Return)
    assert doc.text[end_of_key:end_of_key + 8] == "\n      \n"  # one level deeper after "key:"
    qtbot.keyClick(view, Qt.Key.Key_Tab)
    assert doc.text[end_of_key:end_of_key + 10] == "\n        \n"
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    value_end = doc.text.index("      - name: classify") + len("      - name: classify")
    put_cursor(view, value_end)
    qtbot.keyClick(view, Qt.Key.Key_Return)  # inside a list item: the item's content column
    assert doc.text[value_end:value_end + 10] == "\n        \n"
    doc.undo_stack.undo()
    start = doc.text.index("      - name: route")
    cursor = view.textCursor()
    cursor.setPosition(start)
    cursor.setPosition(doc.text.index("      - name: page-on-call"), QTextCursor.MoveMode.KeepAnchor)
    view.setTextCursor(cursor)
    before = doc.undo_stack.index()
    qtbot.keyClick(view, Qt.Key.Key_Tab)
    assert "        - name: route\n          type: step.conditional" in doc.text
    assert "      - name: page-on-call" in doc.text  # the line the selection ends at is left alone
    assert doc.undo_stack.index() == before + 1  # one command
    qtbot.keyClick(view, Qt.Key.Key_Backtab)
    assert "      - name: route\n        type: step.conditional" in doc.text
    assert view.view_text() == doc.text


def test_paste_is_one_command_with_unix_newlines(view: YamlView) -> None:
    doc = view.doc
    put_cursor(view, 0)
    mime = QMimeData()
    mime.setText("# one\r\n# two\r\n")
    view.insertFromMimeData(mime)
    assert doc.text.startswith("# one\n# two\n# Branching")
    assert view.view_text() == doc.text
    assert doc.undo_stack.count() == 1
    assert view.textCursor().position() == len("# one\n# two\n")


def test_diagnostics_underline_mark_the_gutter_and_explain(view: YamlView) -> None:
    doc = view.doc
    line = doc.text.splitlines().index("          default: auto-reply") + 1
    other = DiagnosticInfo(file="/elsewhere/other.yaml", line=1, col=1, message="not mine")
    mine = DiagnosticInfo(file=str(doc.path), line=line, col=20, message="unknown step 'auto-reply'")
    view.set_diagnostics([mine, other])
    assert view.messages_on_line(line) == ["unknown step 'auto-reply'"]
    assert view.messages_on_line(1) == []
    waves = [s for s in view.extraSelections() if s.format.underlineStyle().name == "WaveUnderline"]
    assert [s.cursor.selectedText() for s in waves] == ["auto-reply"]
    view.grab()  # paints the gutter mark
    view.set_diagnostics([])
    assert view.messages_on_line(line) == []


def test_a_yaml_syntax_error_is_shown_without_the_service(view: YamlView, qtbot) -> None:  # type: ignore[no-untyped-def]
    doc = view.doc
    put_cursor(view, len(doc.text))
    qtbot.keyClicks(view, "  broken: [")
    doc.flush_outline()
    line = min(doc.outline.error_line, view.blockCount())  # an error at the very end marks the last line
    assert view.messages_on_line(line)[0].startswith("YAML: ")


def test_go_to_and_cursor_line_signal(view: YamlView, qtbot) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(view.cursorLineChanged) as signal:
        view.go_to(12, 7)
    assert signal.args == [12]
    assert view.current_line() == 12 and view.textCursor().positionInBlock() == 6
    view.go_to(10_000, 1)
    assert view.current_line() == view.blockCount()
    top = view.firstVisibleBlock().blockNumber()
    view.go_to(view.blockCount() - 1, 1)  # already in view: no scrolling
    assert view.firstVisibleBlock().blockNumber() == top


def test_text_outside_the_bmp_keeps_positions_right(qtbot) -> None:  # type: ignore[no-untyped-def]
    doc = PipelineDocument('name: "🎉 party"\ndescription: x\n')
    view = YamlView(doc)
    qtbot.addWidget(view)
    doc.set_value(("description",), "y")
    assert view.view_text() == doc.text == 'name: "🎉 party"\ndescription: y\n'
    put_cursor(view, view.document().characterCount() - 1)
    qtbot.keyClicks(view, "#")
    assert doc.text.endswith("y\n#")
    doc.undo_stack.undo()
    assert view.view_text() == doc.text


def test_highlighter_colours_keys_strings_jq_comments_and_dashes(view: YamlView) -> None:
    block = view.document().findBlockByNumber(10)  # priority: "{{ if .severity ... }}"
    assert "priority" in block.text()
    ranges = block.layout().formats()
    fmt = view.highlighter.formats
    starts = {r.start: r.format.foreground().color().name() for r in ranges}
    key_at = block.text().index("priority")
    assert starts[key_at] == fmt["key"].foreground().color().name()
    jq_at = block.text().index("{{")
    assert starts[jq_at] == fmt["jq"].foreground().color().name()
    comment = view.document().findBlockByNumber(0).layout().formats()
    assert comment[0].format.foreground().color().name() == fmt["comment"].foreground().color().name()
    dash_block = view.document().findBlockByNumber(6)
    assert dash_block.text().lstrip().startswith("- ")
    dash_ranges = dash_block.layout().formats()
    dash = {r.start: r.format.foreground().color().name() for r in dash_ranges}
    assert dash[dash_block.text().index("-")] == fmt["dash"].foreground().color().name()


_EDITS = st.lists(st.one_of(
    st.tuples(st.just("type"), st.integers(0, 10_000), st.text("ab: -\n#{}", min_size=1, max_size=4)),
    st.tuples(st.just("backspace"), st.integers(0, 10_000), st.integers(1, 3)),
    st.tuples(st.just("undo"), st.just(0), st.just(0)),
    st.tuples(st.just("redo"), st.just(0), st.just(0)),
    st.tuples(st.just("set"), st.integers(0, 7), st.text("xyz", min_size=1, max_size=3)),
    st.tuples(st.just("insert"), st.integers(0, 8), st.just("")),
    st.tuples(st.just("delete"), st.integers(0, 7), st.just("")),
), max_size=12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=_EDITS)
def test_view_and_document_stay_equal(qapp, edits) -> None:  # type: ignore[no-untyped-def]
    text = (Path(__file__).resolve().parents[2] / "resources" / "workspace" / "routing.yaml").read_text()
    doc = PipelineDocument(text)
    view = YamlView(doc)
    try:
        for kind, a, b in edits:
            length = len(doc.text)
            if kind == "type":
                put_cursor(view, a % (length + 1))
                view.textCursor().insertText(b)
            elif kind == "backspace":
                put_cursor(view, a % (length + 1))
                for _ in range(b):
                    view.textCursor().deletePreviousChar()
            elif kind == "undo":
                doc.undo_stack.undo()
            elif kind == "redo":
                doc.undo_stack.redo()
            else:
                doc.flush_outline()
                if not doc.outline.ok or "triage" not in doc.outline.pipelines:
                    continue
                steps = doc.outline.pipelines["triage"].steps
                try:
                    if kind == "set" and steps:
                        doc.set_value((*steps[a % len(steps)].path, "description"), b)
                    elif kind == "insert":
                        doc.insert_step(STEPS, a, {"type": "step.log"})
                    elif kind == "delete" and steps:
                        doc.delete_step(steps[a % len(steps)].path)
                except Exception as exc:  # edits on text typing broke are refused, never half-done
                    assert type(exc).__name__ == "EditError"
            assert view.view_text() == doc.text
        while doc.undo_stack.canUndo():
            doc.undo_stack.undo()
        assert view.view_text() == doc.text == text
    finally:
        view.deleteLater()
        QApplication.processEvents()


def test_tooltips_explain_the_marks(view: YamlView) -> None:
    view.set_diagnostics([DiagnosticInfo(file="", line=1, col=3, message="first line problem")])
    rect = view.cursorRect(QTextCursor(view.document().begin()))
    y = rect.center().y()
    assert view.line_at_y(y) == 1
    gutter = view.findChild(QWidget, "yamlGutter")
    QApplication.sendEvent(gutter, QHelpEvent(QEvent.Type.ToolTip, QPoint(4, y), gutter.mapToGlobal(QPoint(4, y))))
    assert QToolTip.text() == "first line problem"
    QToolTip.hideText()
    x = view.cursorRect(view.textCursor()).x() + view.fontMetrics().horizontalAdvance("# Br")
    QApplication.sendEvent(view.viewport(), QHelpEvent(QEvent.Type.ToolTip, QPoint(x, y),
                                                       view.viewport().mapToGlobal(QPoint(x, y))))
    assert QToolTip.text() == "first line problem"
