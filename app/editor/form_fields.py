"""The editors of a generated form, one class per kind (see :func:`form_values.choose_kind`).

Each :class:`Field` owns one widget (objectName ``field:<dotted path>``) bound to one key
path relative to the step, loads values without committing, and commits through its
form's host: text fields on editingFinished, combos and checkboxes when the user picks,
tables and lists per edited cell, YAML editors on focus-out or Ctrl+Enter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QFocusEvent, QFontDatabase, QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QSizePolicy,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.editor.form_values import (
    BOOL,
    ENUM,
    LIST,
    MAP,
    MISSING,
    OBJECT,
    RAW,
    REF,
    SUBSTEPS,
    TEXT,
    TEXT_AREA,
    FieldSpec,
    coerce,
    dump_yaml,
    parse_yaml,
    range_problem,
    schema_types,
    to_text,
)
from app.editor.jq_field import PROGRAM, TEMPLATE, JqField, check_text
from app.icons import icon

if TYPE_CHECKING:
    from app.editor.schema_form import SchemaForm

# -- small widgets -------------------------------------------------------------------------


class CommitTextEdit(QPlainTextEdit):
    """A multi-line editor that asks to be applied on focus-out and on Ctrl+Enter."""

    commitRequested = Signal()

    def __init__(self, parent: QWidget | None = None, *, monospace: bool = True) -> None:
        super().__init__(parent)
        if monospace:
            self.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.setTabChangesFocus(True)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.textChanged.connect(self._fit)
        self._fit()

    def _fit(self) -> None:
        # Room for every line (3..14) plus one for a horizontal scroll bar.
        lines = min(max(self.document().blockCount(), 2), 13) + 1
        margins = 2 * (self.frameWidth() + int(self.document().documentMargin())) + 2
        self.setFixedHeight(lines * self.fontMetrics().lineSpacing() + margins)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and (
            event.modifiers() & Qt.KeyboardModifier.ControlModifier
        ):
            self.commitRequested.emit()
            return
        super().keyPressEvent(event)

    def focusOutEvent(self, event: QFocusEvent) -> None:
        super().focusOutEvent(event)
        if event.reason() != Qt.FocusReason.PopupFocusReason:
            self.commitRequested.emit()

    def set_text_keep_cursor(self, text: str) -> None:
        if text == self.toPlainText():
            return
        position = self.textCursor().position()
        self.setPlainText(text)
        cursor = self.textCursor()
        cursor.setPosition(min(position, len(text)))
        self.setTextCursor(cursor)


class _CellDelegate(QStyledItemDelegate):
    """Value cells edit in a JqField: template checking and completion in tables too."""

    def __init__(self, completions: Callable[[], list[str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._completions = completions

    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem,
                     index: QModelIndex | QPersistentModelIndex) -> QWidget:
        editor = JqField(TEMPLATE, parent)
        editor.setObjectName("cellEditor")
        editor.setFrame(False)
        editor.set_completions(self._completions())
        return editor


# -- fields --------------------------------------------------------------------------------


class Field:
    """One editor bound to one path; ``widget`` carries the objectName ``field:<path>``."""

    kind = ""

    def __init__(self, form: SchemaForm, spec: FieldSpec) -> None:
        self.form = form
        self.spec = spec
        self.value: Any = MISSING
        self.widget = self._make()
        self.widget.setObjectName(f"field:{spec.name}")
        if spec.description:
            self.widget.setToolTip(spec.description)

    def _make(self) -> QWidget:
        raise NotImplementedError

    def load(self, value: Any) -> None:
        self.value = value

    def flush(self) -> None:
        """Commit what the editor holds but has not committed yet (before the panel switches)."""

    def has_focus(self) -> bool:
        focus = QApplication.focusWidget()
        return focus is not None and (focus is self.widget or self.widget.isAncestorOf(focus))

    def set_error(self, message: str) -> None:
        self.form.show_error(self.spec.path, message)

    # commits
    def commit(self, value: Any) -> None:
        if value is MISSING:
            if self.value is not MISSING:
                self.form.host.remove(self.spec.path)
        elif value != self.value or type(value) is not type(self.value):
            self.form.host.commit(self.spec.path, value)

    def placeholder(self) -> str:
        if self.spec.default is not MISSING:
            return f"{to_text(self.spec.default)} (default)"
        if "x-placeholder" in self.spec.schema:
            return str(self.spec.schema["x-placeholder"])
        first = self.spec.description.split(". ")[0].rstrip(".")
        return first if len(first) <= 70 else first[:67] + "…"


class TextField(Field):
    kind = TEXT

    def _make(self) -> QWidget:
        mode = PROGRAM if self.spec.role == PROGRAM else TEMPLATE
        edit = JqField(mode)
        edit.setPlaceholderText(self.placeholder())
        edit.setClearButtonEnabled(True)
        edit.editingFinished.connect(self._finished)
        edit.errorChanged.connect(self.set_error)
        self.edit = edit
        self._keys: list[str] | None = None
        return edit

    def _types(self) -> set[str] | None:
        types = schema_types(self.spec.schema)
        if types is None and (self.value is MISSING or isinstance(self.value, str)):
            return {"string"}  # untyped text stays text ("42" in a message is not a number)
        return types

    def load(self, value: Any) -> None:
        super().load(value)
        keys = self.form.host.completions()
        if keys is not self._keys:  # the panel makes a new list when the pipeline changed
            self._keys = keys
            self.edit.set_completions(keys)
        if self.has_focus():
            try:
                if coerce(self.edit.text(), self._types()) == value:
                    return  # our own commit coming back: keep the caret and the text
            except ValueError:
                pass
        self.edit.set_text_keep_cursor(to_text(value))
        self.edit.set_extra_error("")

    def _finished(self) -> None:
        text = self.edit.text()
        if text == to_text(self.value):
            self.edit.set_extra_error("")  # nothing typed: never rewrite a value on focus-out
            return
        if text.strip() == "":
            self.edit.set_extra_error("")
            self.commit(MISSING)
            return
        try:
            value = coerce(text, self._types())
        except ValueError as exc:
            self.edit.set_extra_error(str(exc))  # the text stays; nothing is applied
            return
        self.edit.set_extra_error(range_problem(value, self.spec.schema))
        self.commit(value)

    def flush(self) -> None:
        if self.edit.text() != to_text(self.value):
            self._finished()


class TextAreaField(Field):
    kind = TEXT_AREA

    def _make(self) -> QWidget:
        edit = CommitTextEdit(monospace=False)
        edit.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        edit.setPlaceholderText(self.placeholder())
        edit.commitRequested.connect(self.flush)
        edit.textChanged.connect(lambda: self.set_error(check_text(edit.toPlainText()) or ""))
        self.edit = edit
        return edit

    def load(self, value: Any) -> None:
        super().load(value)
        if self.has_focus() and self.edit.toPlainText() == to_text(value):
            return
        self.edit.set_text_keep_cursor(to_text(value))

    def flush(self) -> None:
        text = self.edit.toPlainText()
        if text != to_text(self.value):
            self.commit(text if text.strip() else MISSING)


class EnumField(Field):
    kind = ENUM

    def _make(self) -> QWidget:
        combo = QComboBox()
        self.options = list(self.spec.schema.get("enum", [self.spec.schema.get("const")]))
        for option in self.options:
            combo.addItem(to_text(option))
        shown = self.spec.default is not MISSING or "x-placeholder" in self.spec.schema
        combo.setPlaceholderText(self.placeholder() if shown else "(not set)")
        combo.setCurrentIndex(-1)
        combo.activated.connect(lambda index: self.commit(self.options[index]))
        self.combo = combo
        return combo

    def load(self, value: Any) -> None:
        super().load(value)
        self.combo.setCurrentIndex(self.options.index(value) if value in self.options else -1)


class BoolField(Field):
    kind = BOOL

    def _make(self) -> QWidget:
        box = QCheckBox()
        box.clicked.connect(lambda checked: self.commit(bool(checked)))
        self.box = box
        return box

    def load(self, value: Any) -> None:
        super().load(value)
        default = self.spec.default
        shown = value if isinstance(value, bool) else default is True
        self.box.setChecked(shown)
        self.box.setText("" if value is not MISSING else
                         (f"(default: {to_text(default)})" if default is not MISSING else "(not set)"))


class RefField(Field):
    """A step or module name: an editable combo of the names in scope."""

    kind = REF

    def _make(self) -> QWidget:
        combo = QComboBox()
        combo.setEditable(True)
        combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        line = combo.lineEdit()
        line.setPlaceholderText(self.placeholder())
        line.setClearButtonEnabled(True)
        line.editingFinished.connect(self.flush)
        combo.activated.connect(lambda _i: self.flush())
        self.combo = combo
        return combo

    def load(self, value: Any) -> None:
        super().load(value)
        names = self.form.host.names_for(self.spec.role)
        text = to_text(value)
        if [self.combo.itemText(i) for i in range(self.combo.count())] != names:
            self.combo.blockSignals(True)
            self.combo.clear()
            self.combo.addItems(names)
            self.combo.blockSignals(False)
        # Modules may come from imported files, so only step names are checked here.
        known = self.spec.role != "step" or not text or text in names
        self.set_error("" if known else f"no step named {text!r} in reach of this step")
        if not (self.has_focus() and self.combo.currentText() == text):
            self.combo.setEditText(text)

    def flush(self) -> None:
        text = self.combo.currentText().strip()
        if text != to_text(self.value):
            self.commit(text if text else MISSING)


class RawField(Field):
    kind = RAW

    def _make(self) -> QWidget:
        edit = CommitTextEdit()
        edit.setPlaceholderText("YAML; applied when you leave the field or press Ctrl+Enter")
        edit.commitRequested.connect(self.flush)
        self.edit = edit
        return edit

    def load(self, value: Any) -> None:
        super().load(value)
        if self.has_focus():
            try:
                if parse_yaml(self.edit.toPlainText()) == value:
                    return
            except ValueError:
                return  # the user's unparsed text is never replaced under their caret
        self.edit.set_text_keep_cursor("" if value is MISSING else dump_yaml(value))
        self.set_error("")

    def flush(self) -> None:
        text = self.edit.toPlainText()
        if not text.strip():
            self.set_error("")
            self.commit(MISSING)
            return
        try:
            value = parse_yaml(text)
        except ValueError as exc:
            self.set_error(f"{exc} (nothing was applied)")
            return
        self.set_error("")
        if value != self.value:
            self.commit(value)


class SubstepsField(Field):
    kind = SUBSTEPS

    def _make(self) -> QWidget:
        label = QLabel()
        label.setWordWrap(True)
        label.setEnabled(False)
        self.label = label
        return label

    def load(self, value: Any) -> None:
        super().load(value)
        if isinstance(value, list):
            count = len(value)
        elif isinstance(value, dict):
            count = sum(len(v) for v in value.values() if isinstance(v, list))
        else:
            count = 0 if value is MISSING else 1
        noun = "sub-step" if count == 1 else "sub-steps"
        self.label.setText(f"{count} {noun}; add, remove and edit them in the graph.")


class ObjectField(Field):
    """A nested group; its properties are fields of the form in their own right."""

    kind = OBJECT

    def _make(self) -> QWidget:
        box = QGroupBox()
        box.setFlat(True)
        self.layout = QFormLayout(box)
        self.layout.setContentsMargins(12, 4, 0, 4)
        return box


class MapField(Field):
    """A key/value table for maps (additionalProperties); a row per key, in document order."""

    kind = MAP

    def _make(self) -> QWidget:
        holder = QWidget()
        column = QVBoxLayout(holder)
        column.setContentsMargins(0, 0, 0, 0)
        table = QTableWidget(0, 2)
        table.setObjectName(f"table:{self.spec.name}")
        table.setHorizontalHeaderLabels(["Key", "Value"])
        table.verticalHeader().hide()
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        table.horizontalHeader().setStretchLastSection(True)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                              | QAbstractItemView.EditTrigger.EditKeyPressed
                              | QAbstractItemView.EditTrigger.AnyKeyPressed)
        table.setItemDelegateForColumn(1, _CellDelegate(self.form.host.completions, table))
        table.setWordWrap(False)
        table.setTextElideMode(Qt.TextElideMode.ElideRight)
        table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        table.itemChanged.connect(self._changed)
        table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.table = table
        buttons = QHBoxLayout()
        add = _tool_button("add", "Add a key", f"add:{self.spec.name}", self._add)
        remove = _tool_button("remove", "Remove the selected key", f"remove:{self.spec.name}", self._remove)
        buttons.addWidget(add)
        buttons.addWidget(remove)
        buttons.addStretch(1)
        column.addWidget(table)
        column.addLayout(buttons)
        self._fit()
        items = self.spec.schema.get("additionalProperties")
        self.item_types = schema_types(items) if isinstance(items, dict) else None
        return holder

    def has_focus(self) -> bool:
        return super().has_focus() or self.table.state() == QAbstractItemView.State.EditingState

    def load(self, value: Any) -> None:
        super().load(value)
        rows = dict(value) if isinstance(value, dict) else {}
        if self._shown() == rows and self.table.rowCount() == len(rows):
            return
        if self.table.state() == QAbstractItemView.State.EditingState:
            return  # an open cell editor: the next refresh catches up
        if self._in_change:
            # Called back from our own itemChanged: never delete the item Qt is still using.
            QTimer.singleShot(0, lambda: self.load(self.value))
            return
        self.table.blockSignals(True)
        self.table.setRowCount(0)
        for key, item in rows.items():
            self._append(str(key), item)
        self.table.blockSignals(False)
        self._fit()

    def _append(self, key: str | None, value: Any) -> int:
        row = self.table.rowCount()
        self.table.insertRow(row)
        key_item = QTableWidgetItem(key or "")
        key_item.setData(Qt.ItemDataRole.UserRole, key)
        self.table.setItem(row, 0, key_item)
        value_item = QTableWidgetItem(to_text(value))
        self._mark(value_item)
        self.table.setItem(row, 1, value_item)
        return row

    def _mark(self, item: QTableWidgetItem) -> None:
        problem = check_text(item.text())
        item.setToolTip(problem or "")
        item.setForeground(Qt.GlobalColor.red if problem else self.table.palette().text().color())

    def _fit(self) -> None:
        rows = max(self.table.rowCount(), 1)
        header = self.table.horizontalHeader().sizeHint().height()
        height = header + rows * self.table.verticalHeader().defaultSectionSize()
        self.table.setFixedHeight(min(height + 2 * self.table.frameWidth() + 2, 320))

    def _shown(self) -> dict[str, Any]:
        shown = {}
        for row in range(self.table.rowCount()):
            key = self.table.item(row, 0).data(Qt.ItemDataRole.UserRole)
            if key is not None:
                shown[key] = self._parse(self.table.item(row, 1).text(), strict=False)
        return shown

    def _parse(self, text: str, *, strict: bool = True) -> Any:
        if self.item_types is None and "{{" not in text:
            try:
                return parse_yaml(text) if text.strip() else ""  # any value: YAML, structures too
            except ValueError:
                return text
        try:
            return coerce(text, self.item_types)
        except ValueError:
            if strict:
                raise
            return text

    _in_change = False

    def _changed(self, item: QTableWidgetItem) -> None:
        self._in_change = True
        try:
            self._apply_change(item)
        finally:
            self._in_change = False

    def _apply_change(self, item: QTableWidgetItem) -> None:
        row = item.row()
        key_item, value_item = self.table.item(row, 0), self.table.item(row, 1)
        if key_item is None or value_item is None:
            return
        old = key_item.data(Qt.ItemDataRole.UserRole)
        try:
            value = self._parse(value_item.text())
        except ValueError as exc:
            self.set_error(f"{key_item.text()}: {exc}")
            return
        self.set_error("")
        self.table.blockSignals(True)
        self._mark(value_item)
        self.table.blockSignals(False)
        if item.column() == 0:
            new = key_item.text().strip()
            if new == (old or ""):
                return
            if not new or new in self._shown():
                self.set_error(f"key {new!r} is already used" if new else "a key cannot be empty")
                self.table.blockSignals(True)
                key_item.setText(old or "")
                self.table.blockSignals(False)
                return
            self.table.blockSignals(True)
            key_item.setData(Qt.ItemDataRole.UserRole, new)
            self.table.blockSignals(False)
            if old is None:
                self.form.host.commit((*self.spec.path, new), value)
            else:
                self.form.host.rename_key(self.spec.path, old, new)
        elif old is not None:
            current = self.value.get(old, MISSING) if isinstance(self.value, dict) else MISSING
            if value != current or type(value) is not type(current):
                self.form.host.commit((*self.spec.path, old), value)

    def _add(self) -> None:
        self.table.blockSignals(True)
        row = self._append(None, "" if self.item_types is None or "string" in self.item_types else None)
        self.table.blockSignals(False)
        self._fit()
        self.table.setCurrentCell(row, 0)
        self.table.editItem(self.table.item(row, 0))

    def _remove(self) -> None:
        row = self.table.currentRow()
        if row < 0:
            return
        key = self.table.item(row, 0).data(Qt.ItemDataRole.UserRole)
        if key is None:
            self.table.removeRow(row)
            self._fit()
        else:
            self.form.host.remove((*self.spec.path, key))


class ListField(Field):
    """An editable list of scalars; every change commits the whole list (one command)."""

    kind = LIST

    def _make(self) -> QWidget:
        holder = QWidget()
        column = QVBoxLayout(holder)
        column.setContentsMargins(0, 0, 0, 0)
        items = self.spec.schema.get("items") if isinstance(self.spec.schema.get("items"), dict) else {}
        self.item_types = schema_types(items)
        lst = QListWidget()
        lst.setObjectName(f"list:{self.spec.name}")
        lst.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                            | QAbstractItemView.EditTrigger.EditKeyPressed
                            | QAbstractItemView.EditTrigger.AnyKeyPressed)
        lst.itemChanged.connect(self._item_changed)
        lst.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.list = lst
        buttons = QHBoxLayout()
        buttons.addWidget(_tool_button("add", "Add an item", f"add:{self.spec.name}", self._add))
        buttons.addWidget(_tool_button("remove", "Remove the selected item", f"remove:{self.spec.name}",
                                       self._remove))
        buttons.addStretch(1)
        column.addWidget(lst)
        column.addLayout(buttons)
        self._fit()
        return holder

    def has_focus(self) -> bool:
        return self.list.state() == QAbstractItemView.State.EditingState

    def load(self, value: Any) -> None:
        super().load(value)
        values = value if isinstance(value, list) else []
        if self.has_focus() or self._texts() == [to_text(v) for v in values]:
            return
        if self._in_change:
            QTimer.singleShot(0, lambda: self.load(self.value))  # see MapField.load
            return
        self.list.blockSignals(True)
        self.list.clear()
        for item in values:
            self._append(to_text(item))
        self.list.blockSignals(False)
        self._fit()

    def _append(self, text: str) -> QListWidgetItem:
        item = QListWidgetItem(text)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
        self.list.addItem(item)
        return item

    def _texts(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def _fit(self) -> None:
        rows = max(self.list.count(), 1)
        self.list.setFixedHeight(min(rows * (self.list.fontMetrics().height() + 6) + 8, 240))

    _in_change = False

    def _item_changed(self, _item: QListWidgetItem) -> None:
        self._in_change = True
        try:
            self._commit_all()
        finally:
            self._in_change = False

    def _commit_all(self) -> None:
        values = []
        for text in self._texts():
            if not text.strip():
                continue  # an emptied item is a removed item
            try:
                values.append(coerce(text, self.item_types))
            except ValueError as exc:
                self.set_error(f"{text!r}: {exc}")
                return
        self.set_error("")
        self.commit(values)

    def _add(self) -> None:
        self.list.blockSignals(True)
        item = self._append("")
        self.list.blockSignals(False)
        self._fit()
        self.list.setCurrentItem(item)
        self.list.editItem(item)

    def _remove(self) -> None:
        row = self.list.currentRow()
        if row >= 0:
            self.list.takeItem(row)
            self._fit()
            self._commit_all()


FIELD_CLASSES: dict[str, type[Field]] = {
    TEXT: TextField, TEXT_AREA: TextAreaField, ENUM: EnumField, BOOL: BoolField, REF: RefField,
    RAW: RawField, SUBSTEPS: SubstepsField, OBJECT: ObjectField, MAP: MapField, LIST: ListField,
}


def _tool_button(icon_name: str, tip: str, name: str, slot: Callable[[], None]) -> QToolButton:
    button = QToolButton()
    button.setIcon(icon(icon_name))
    button.setToolTip(tip)
    button.setObjectName(name)
    button.setAutoRaise(True)
    button.clicked.connect(slot)
    return button
