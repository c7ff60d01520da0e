"""The YAML text view of a :class:`PipelineDocument`, kept equal to the document both ways.

Typing goes view -> document: Qt reports each change of its text (``contentsChange``) and
the view hands it to ``document.replace(..., typing=True)``. Every other change (undo, redo,
structural edits from the graph or the property panel, reloads) comes document -> view as
``textChanged(pos, removed, inserted)`` and is applied with a QTextCursor on that range only,
so the user's cursor, selection and scroll position stay where they were. Qt's own undo is
off: Ctrl+Z / Ctrl+Shift+Z / Ctrl+Y drive the document's undo stack.

Positions: the document counts code points, Qt counts UTF-16 units; they differ only when
the text holds characters outside the BMP (emoji), which the conversions below handle.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from PySide6.QtCore import QEvent, QMimeData, QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFontDatabase,
    QKeyEvent,
    QKeySequence,
    QPainter,
    QPaintEvent,
    QResizeEvent,
    QTextCharFormat,
    QTextCursor,
    QTextFormat,
)
from PySide6.QtWidgets import QMenu, QPlainTextEdit, QTextEdit, QToolTip, QWidget

from app import theme
from app.editor.document import PipelineDocument
from app.editor.text_patch import trim_common
from app.editor.yaml_highlight import YamlHighlighter
from engine.service.models import DiagnosticInfo

INDENT = "  "
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def _u16(text: str) -> int:
    """Length of ``text`` in UTF-16 units (Qt's positions)."""
    return len(text) + len(_ASTRAL.findall(text))


class _Gutter(QWidget):
    """Line numbers, with a coloured mark on lines that have diagnostics."""

    def __init__(self, view: YamlView) -> None:
        super().__init__(view)
        self.view = view
        self.setObjectName("yamlGutter")
        self.setMouseTracking(True)

    def sizeHint(self) -> QSize:
        return QSize(self.view.gutter_width(), 0)

    def paintEvent(self, event: QPaintEvent) -> None:
        self.view.paint_gutter(event)

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip:
            pos = event.pos()  # type: ignore[attr-defined]
            line = self.view.line_at_y(pos.y())
            messages = self.view.messages_on_line(line)
            if messages:
                QToolTip.showText(event.globalPos(), "\n".join(messages), self)  # type: ignore[attr-defined]
            else:
                QToolTip.hideText()
            return True
        return super().event(event)


class YamlView(QPlainTextEdit):
    cursorLineChanged = Signal(int)  # 1-based

    def __init__(self, document: PipelineDocument, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("yamlView")
        self.doc = document
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.setFont(font)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.setUndoRedoEnabled(False)
        self.setTabStopDistance(self.fontMetrics().horizontalAdvance(" ") * len(INDENT))
        self._shadow = document.text  # the text as this view holds it, in code points
        self._astral = _ASTRAL.search(self._shadow) is not None
        self._pushing = False  # view -> document in progress: ignore the echo
        self._applying = False  # document -> view in progress: not typing
        self._follow = False  # put the cursor at the change (undo/redo from this view)
        self._line = 0
        self._diagnostics: list[DiagnosticInfo] = []
        self._marks: list[tuple[QTextCursor, str, str]] = []  # (range, severity, message)
        self.setPlainText(document.text)
        self.highlighter = YamlHighlighter(self.document())
        self._gutter = _Gutter(self)
        self.document().contentsChange.connect(self._on_qt_change)
        document.textChanged.connect(self._on_doc_change)
        document.outlineChanged.connect(self._refresh_marks)
        self.blockCountChanged.connect(self._update_gutter_width)
        self.updateRequest.connect(self._update_gutter)
        self.cursorPositionChanged.connect(self._cursor_moved)
        self._update_gutter_width()
        self._refresh_marks()

    # ------------------------------------------------------------------ public

    def go_to(self, line: int, col: int = 1, focus: bool = False) -> None:
        """Put the cursor at 1-based ``line``/``col`` (clamped); a line out of view is centred."""
        block = self.document().findBlockByNumber(max(0, min(line, self.blockCount()) - 1))
        cursor = QTextCursor(block)
        column = max(0, min(col - 1, block.length() - 1))
        cursor.setPosition(block.position() + self._u16_col(block.text(), column))
        first = self.firstVisibleBlock().blockNumber()
        shown = max(1, self.viewport().height() // max(1, self.fontMetrics().lineSpacing()) - 1)
        in_view = first <= block.blockNumber() < first + shown
        self.setTextCursor(cursor)
        if not in_view:
            self.centerCursor()
        if focus:
            self.setFocus(Qt.FocusReason.OtherFocusReason)

    def current_line(self) -> int:
        return self.textCursor().blockNumber() + 1

    def set_diagnostics(self, diagnostics: Iterable[DiagnosticInfo]) -> None:
        """Show the diagnostics of this view's file (others in the list are ignored)."""
        self._diagnostics = [d for d in diagnostics if self._is_mine(d.file)]
        self._refresh_marks()

    def view_text(self) -> str:
        """The widget's own text, exactly (tests compare it with the document's)."""
        return self.document().toRawText().replace("\u2029", "\n").replace("\u2028", "\n")

    def messages_on_line(self, line: int) -> list[str]:
        return [message for cursor, _sev, message in self._marks
                if self.document().findBlock(cursor.selectionStart()).blockNumber() + 1 == line]

    # ------------------------------------------------------------------ view -> document

    def _on_qt_change(self, qpos: int, qremoved: int, qadded: int) -> None:
        if self._applying or self._pushing:
            return
        qt_len = self.document().characterCount() - 1  # without the final paragraph separator
        overflow = qpos + qadded - qt_len
        if overflow > 0:  # Qt counts the final separator in some reports
            qadded -= overflow
            qremoved -= overflow
        old = self._shadow
        pos = self._from_qt(old, qpos)
        end = self._from_qt(old, qpos + max(0, qremoved))
        cursor = QTextCursor(self.document())
        cursor.setPosition(qpos)
        cursor.setPosition(qpos + max(0, qadded), QTextCursor.MoveMode.KeepAnchor)
        inserted = cursor.selectedText().replace("\u2029", "\n").replace("\u2028", "\n")
        removed = old[pos:end]
        # Qt often reports a whole block; keep only what differs (typing runs merge on that).
        lo, removed, inserted = trim_common(removed, inserted)
        if not removed and not inserted:
            return
        pos += lo
        self._shadow = old[:pos] + inserted + old[pos + len(removed):]
        self._astral = self._astral or _ASTRAL.search(inserted) is not None
        self._pushing = True
        try:
            self.doc.replace(pos, len(removed), inserted, typing=True)
        finally:
            self._pushing = False
        if self.doc.text != self._shadow:  # never expected; keep the two equal whatever happened
            self._resync()

    # ------------------------------------------------------------------ document -> view

    def _on_doc_change(self, pos: int, removed: int, inserted: str) -> None:
        if self._pushing:
            return
        old = self._shadow
        qpos = self._to_qt(old, pos)
        qend = qpos + (_u16(old[pos:pos + removed]) if self._astral else removed)
        bar = self.verticalScrollBar()
        top = bar.value()
        blocks = self.blockCount()
        change_line = self.document().findBlock(qpos).blockNumber()
        cursor = QTextCursor(self.document())
        cursor.setPosition(qpos)
        cursor.setPosition(qend, QTextCursor.MoveMode.KeepAnchor)
        self._applying = True
        try:
            if inserted:
                cursor.insertText(inserted)
            else:
                cursor.removeSelectedText()
        finally:
            self._applying = False
        self._shadow = old[:pos] + inserted + old[pos + removed:]
        self._astral = self._astral or _ASTRAL.search(inserted) is not None
        if change_line < top:  # lines came or went above the viewport: keep showing the same text
            bar.setValue(top + self.blockCount() - blocks)
        if self._follow:
            follow = self.textCursor()
            follow.setPosition(qpos + _u16(inserted))
            self.setTextCursor(follow)

    def _resync(self) -> None:
        """Make the widget equal to the document again with one replacement."""
        self._pushing = False
        current = self._shadow
        target = self.doc.text
        lo = 0
        limit = min(len(current), len(target))
        while lo < limit and current[lo] == target[lo]:
            lo += 1
        hi = 0
        while hi < limit - lo and current[-1 - hi] == target[-1 - hi]:
            hi += 1
        self._on_doc_change(lo, len(current) - lo - hi, target[lo:len(target) - hi])

    def _to_qt(self, text: str, pos: int) -> int:
        return pos + len(_ASTRAL.findall(text, 0, pos)) if self._astral else pos

    def _from_qt(self, text: str, qpos: int) -> int:
        if not self._astral:
            return min(qpos, len(text))
        units = 0
        for index, ch in enumerate(text):
            if units >= qpos:
                return index
            units += 2 if ord(ch) > 0xFFFF else 1
        return len(text)

    @staticmethod
    def _u16_col(line: str, col: int) -> int:
        return _u16(line[:col]) if _ASTRAL.search(line) else col

    # ------------------------------------------------------------------ keys

    def event(self, event: QEvent) -> bool:
        # Our undo/redo keys win over window-wide shortcuts while the text has focus.
        if event.type() == QEvent.Type.ShortcutOverride and self._undo_key(event) is not None:  # type: ignore[arg-type]
            event.accept()
            return True
        return super().event(event)

    def _undo_key(self, event: QKeyEvent) -> str | None:
        if event.matches(QKeySequence.StandardKey.Undo):
            return "undo"
        if event.matches(QKeySequence.StandardKey.Redo):
            return "redo"
        combo = event.keyCombination()
        if combo.key() == Qt.Key.Key_Y and combo.keyboardModifiers() == Qt.KeyboardModifier.ControlModifier:
            return "redo"
        if combo.key() == Qt.Key.Key_Z and combo.keyboardModifiers() == (
                Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier):
            return "redo"
        return None

    def keyPressEvent(self, event: QKeyEvent) -> None:
        action = self._undo_key(event)
        if action is not None:
            self._undo(action)
            return
        key = event.key()
        mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        if key == Qt.Key.Key_Tab and mods == Qt.KeyboardModifier.NoModifier:
            if self._selected_lines() is not None:
                self._shift_lines(+1)
            else:
                self.textCursor().insertText(INDENT)
            return
        if key == Qt.Key.Key_Backtab:
            self._shift_lines(-1)
            return
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (mods & Qt.KeyboardModifier.ControlModifier):
            self.textCursor().insertText("\n" + self._next_indent())
            self.ensureCursorVisible()
            return
        super().keyPressEvent(event)

    def _undo(self, action: str) -> None:
        self._follow = True
        try:
            if action == "undo":
                self.doc.undo_stack.undo()
            else:
                self.doc.undo_stack.redo()
        finally:
            self._follow = False
        self.ensureCursorVisible()

    def _next_indent(self) -> str:
        """The indentation for a new line after the cursor: the same, one more after "key:",
        and the item's content column after "- key: value"."""
        cursor = self.textCursor()
        line = cursor.block().text()[:cursor.positionInBlock()]
        indent = len(line) - len(line.lstrip(" "))
        body = line.strip()
        code = re.sub(r"\s+#.*$", "", body)
        if body.startswith("- ") and ":" in body:
            rest = body[2:].lstrip(" ")
            indent += len(body) - len(rest)
        if code.endswith(":") or code in ("-", "- |", "- >") or re.search(r":\s*[|>][-+0-9]*$", code):
            indent += len(INDENT)
        return " " * indent

    def _selected_lines(self) -> tuple[int, int] | None:
        cursor = self.textCursor()
        if not cursor.hasSelection():
            return None
        first = self.document().findBlock(cursor.selectionStart())
        last = self.document().findBlock(cursor.selectionEnd())
        if last.position() == cursor.selectionEnd() and last.blockNumber() > first.blockNumber():
            last = last.previous()  # a selection ending at a line start leaves that line alone
        return first.blockNumber(), last.blockNumber()

    def _shift_lines(self, direction: int) -> None:
        """Indent (+1) or dedent (-1) the selected lines (or the cursor's line) as one command."""
        lines = self._selected_lines()
        cursor = self.textCursor()
        if lines is None:
            lines = (cursor.blockNumber(), cursor.blockNumber())
        doc_lines = self._shadow.split("\n")
        start = sum(len(t) + 1 for t in doc_lines[:lines[0]])
        old = doc_lines[lines[0]:lines[1] + 1]
        new = []
        for text in old:
            if direction > 0:
                new.append(INDENT + text if text.strip() else text)
            else:
                strip = min(len(INDENT), len(text) - len(text.lstrip(" ")))
                new.append(text[strip:])
        old_text, new_text = "\n".join(old), "\n".join(new)
        if old_text == new_text:
            return
        self.doc.replace(start, len(old_text), new_text, description="Indent" if direction > 0 else "Dedent")
        select = self.textCursor()
        select.setPosition(self._to_qt(self._shadow, start))
        select.setPosition(self._to_qt(self._shadow, start + len(new_text)), QTextCursor.MoveMode.KeepAnchor)
        self.setTextCursor(select)

    def insertFromMimeData(self, source: QMimeData) -> None:
        """Paste as one command, with the document's newlines."""
        if not source.hasText():
            return
        text = source.text().replace("\r\n", "\n").replace("\r", "\n").replace("\u2029", "\n")
        cursor = self.textCursor()
        start = self._from_qt(self._shadow, cursor.selectionStart())
        end = self._from_qt(self._shadow, cursor.selectionEnd())
        self.doc.replace(start, end - start, text, description="Paste")
        after = self.textCursor()
        after.setPosition(self._to_qt(self._shadow, start + len(text)))
        self.setTextCursor(after)
        self.ensureCursorVisible()

    def contextMenuEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        menu: QMenu = self.createStandardContextMenu()
        for action in list(menu.actions()):  # Qt's own (disabled) undo entries -> the document's
            if action.text().replace("&", "").startswith(("Undo", "Redo")):
                menu.removeAction(action)
        top = menu.actions()[0] if menu.actions() else None
        menu.insertAction(top, self.doc.undo_stack.createUndoAction(menu))  # type: ignore[arg-type]
        menu.insertAction(top, self.doc.undo_stack.createRedoAction(menu))  # type: ignore[arg-type]
        menu.insertSeparator(top)  # type: ignore[arg-type]
        menu.exec(event.globalPos())
        menu.deleteLater()

    # ------------------------------------------------------------------ diagnostics

    def _is_mine(self, file: str) -> bool:
        path = self.doc.path
        if not file or path is None:
            return True
        other = Path(file)
        if other == path or (not other.is_absolute() and path.parts[-len(other.parts):] == other.parts):
            return True
        try:
            return other.resolve() == path.resolve()
        except OSError:
            return False

    def _refresh_marks(self) -> None:
        """Diagnostics (and the document's own YAML syntax error) as wavy underlines."""
        items = [(d.line, d.col, d.severity, d.message) for d in self._diagnostics]
        outline = self.doc.outline
        if outline.error and outline.error_line and not any(line == outline.error_line for line, *_ in items):
            items.append((outline.error_line, 1, "error", f"YAML: {outline.error}"))
        self._marks = []
        for line, col, severity, message in items:
            block = self.document().findBlockByNumber(max(0, min(line, self.blockCount()) - 1))
            text = block.text()
            start = max(0, min(col - 1, len(text)))
            if col <= 1:
                start = len(text) - len(text.lstrip(" "))
            end = len(text.split(" #", 1)[0].rstrip()) if "#" in text[start:] else len(text.rstrip())
            if end <= start:
                start, end = max(0, len(text) - 1), len(text)
            cursor = QTextCursor(block)
            cursor.setPosition(block.position() + self._u16_col(text, start))
            cursor.setPosition(block.position() + self._u16_col(text, max(end, start + 1) if text else start),
                               QTextCursor.MoveMode.KeepAnchor)
            self._marks.append((cursor, severity, message))
        self._update_selections()
        self._gutter.update()

    def _update_selections(self) -> None:
        colors = theme.colors()
        selections = []
        line = QTextEdit.ExtraSelection()
        line.format.setBackground(QColor(colors.alt_base))
        line.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
        line.cursor = self.textCursor()
        line.cursor.clearSelection()
        selections.append(line)
        for cursor, severity, _message in self._marks:
            mark = QTextEdit.ExtraSelection()
            mark.format.setUnderlineStyle(QTextCharFormat.UnderlineStyle.WaveUnderline)
            mark.format.setUnderlineColor(QColor(colors.error if severity == "error" else colors.warning))
            mark.cursor = cursor
            selections.append(mark)
        self.setExtraSelections(selections)

    def viewportEvent(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip:
            cursor = self.cursorForPosition(event.pos())  # type: ignore[attr-defined]
            at = cursor.position()
            messages = [message for mark, _sev, message in self._marks
                        if mark.selectionStart() <= at <= mark.selectionEnd()]
            if messages:
                QToolTip.showText(event.globalPos(), "\n".join(messages), self.viewport())  # type: ignore[attr-defined]
            else:
                QToolTip.hideText()
            return True
        return super().viewportEvent(event)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            self.highlighter.refresh_theme()
            self._update_selections()
        super().changeEvent(event)

    # ------------------------------------------------------------------ cursor and gutter

    def _cursor_moved(self) -> None:
        self._update_selections()
        line = self.current_line()
        if line != self._line:
            self._line = line
            self.cursorLineChanged.emit(line)

    def gutter_width(self) -> int:
        digits = len(str(max(1, self.blockCount())))
        return 14 + self.fontMetrics().horizontalAdvance("9") * max(3, digits)

    def _update_gutter_width(self, _count: int = 0) -> None:
        self.setViewportMargins(self.gutter_width(), 0, 0, 0)

    def _update_gutter(self, rect: QRect, dy: int) -> None:
        if dy:
            self._gutter.scroll(0, dy)
        else:
            self._gutter.update(0, rect.y(), self._gutter.width(), rect.height())
        if rect.contains(self.viewport().rect()):
            self._update_gutter_width()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        rect = self.contentsRect()
        self._gutter.setGeometry(QRect(rect.left(), rect.top(), self.gutter_width(), rect.height()))

    def line_at_y(self, y: int) -> int:
        block = self.firstVisibleBlock()
        top = self.blockBoundingGeometry(block).translated(self.contentOffset()).top()
        while block.isValid():
            bottom = top + self.blockBoundingRect(block).height()
            if top <= y < bottom:
                return block.blockNumber() + 1
            top = bottom
            block = block.next()
        return 0

    def paint_gutter(self, event: QPaintEvent) -> None:
        colors = theme.colors()
        painter = QPainter(self._gutter)
        painter.fillRect(event.rect(), QColor(colors.window))
        severity: dict[int, str] = {}
        for cursor, sev, _message in self._marks:
            number = self.document().findBlock(cursor.selectionStart()).blockNumber()
            if severity.get(number) != "error":
                severity[number] = sev
        current = self.textCursor().blockNumber()
        block = self.firstVisibleBlock()
        top = round(self.blockBoundingGeometry(block).translated(self.contentOffset()).top())
        height = self.fontMetrics().height()
        width = self._gutter.width()
        while block.isValid() and top <= event.rect().bottom():
            bottom = top + round(self.blockBoundingRect(block).height())
            if block.isVisible() and bottom >= event.rect().top():
                number = block.blockNumber()
                painter.setPen(QColor(colors.text if number == current else colors.muted))
                painter.drawText(0, top, width - 6, height, Qt.AlignmentFlag.AlignRight, str(number + 1))
                if number in severity:
                    painter.setPen(Qt.PenStyle.NoPen)
                    painter.setBrush(QColor(colors.error if severity[number] == "error" else colors.warning))
                    size = max(6, height // 3)
                    painter.drawEllipse(QPoint(2 + size // 2, top + height // 2), size // 2, size // 2)
                    painter.setBrush(Qt.BrushStyle.NoBrush)
            block = block.next()
            top = bottom
        painter.end()
