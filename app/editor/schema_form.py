"""JSON Schema -> editing widgets for one mapping of a step (its config, or its step-level keys).

A :class:`SchemaForm` lays out one row per property: a label (``*`` when required, the
description as tooltip), an editor chosen from the schema *and* the current value, a
reset/menu button and an inline error line. The choice (:func:`choose_kind`) is:

- a ``{{ }}`` template anywhere -> a jq field (templates are allowed for every type);
- enum -> combo; boolean -> checkbox; string/number/integer -> a checked line edit
  (a number field also takes a template); config keys naming steps or modules -> an
  editable combo of the names in scope;
- object with properties -> a nested group; a map of scalars -> a key/value table; an array
  of scalars -> an editable list;
- sub-step lists -> a note (the graph edits them);
- anything else (combinators without a simple form, nested structures, values of the wrong
  type) -> a raw YAML editor, applied on focus-out or Ctrl+Enter only when it parses.

Every editor commits through the :class:`FormHost` (the property panel), which turns each
commit into one document command. Paths here are relative to the step's mapping.
"""

from __future__ import annotations

from typing import Any, Protocol

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QMenu, QToolButton, QVBoxLayout, QWidget

from app.editor.form_fields import FIELD_CLASSES, Field, ObjectField
from app.editor.form_values import (
    BOOL,
    ENUM,
    ERROR_COLOUR,
    LIST,
    MAP,
    MISSING,
    OBJECT,
    RAW,
    REF,
    SUBSTEPS,
    TEXT,
    FieldSpec,
    RelPath,
    Roles,
    choose_kind,
    lookup,
)
from app.icons import icon


class FormHost(Protocol):
    """What a form needs from its owner (the property panel)."""

    def commit(self, path: RelPath, value: Any) -> None: ...
    def remove(self, path: RelPath) -> None: ...
    def rename_key(self, path: RelPath, old: str, new: str) -> None: ...
    def completions(self) -> list[str]: ...
    def names_for(self, role: str) -> list[str]: ...


class FormPlan:
    """Which rows a mapping gets: the schema's properties (plus keys the schema does not know),
    each with the kind of editor its current value needs. Widget-free, so the panel can
    compare plans (``signature``) and rebuild only when the editors must change.
    """

    def __init__(self, schema: dict[str, Any], base: RelPath = (), roles: Roles | None = None,
                 overrides: dict[RelPath, str] | None = None, skip: frozenset[str] = frozenset(),
                 extra_keys: bool = True) -> None:
        self.schema = schema
        self.base = base
        self.roles = roles or Roles()
        self.overrides = overrides if overrides is not None else {}
        self.skip = skip  # top-level keys shown elsewhere (the step's name, type, ...)
        self.extra_keys = extra_keys  # rows for keys the schema does not list

    def specs(self, schema: dict[str, Any], base: RelPath, here: Any, top: bool) -> list[FieldSpec]:
        properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        required = set(schema.get("required") or [])
        specs = []
        for key, sub in properties.items():
            if top and key in self.skip:
                continue
            specs.append(FieldSpec((*base, key), key, sub if isinstance(sub, dict) else {},
                                   key in required, self.roles.of(key) if top else ""))
        if isinstance(here, dict) and (self.extra_keys or not top):
            extra = schema.get("additionalProperties")
            for key in here:
                if key in properties or (top and key in self.skip):
                    continue
                specs.append(FieldSpec((*base, str(key)), str(key), extra if isinstance(extra, dict) else {},
                                       False, self.roles.of(str(key)) if top else "",
                                       unknown=not isinstance(extra, dict)))
        return specs

    def kind_of(self, spec: FieldSpec, value: Any) -> str:
        if spec.path in self.overrides:
            return self.overrides[spec.path]
        if spec.unknown:
            return SUBSTEPS if spec.role == SUBSTEPS else RAW
        return choose_kind(spec.schema, value, spec.role)

    def rows(self, step: Any) -> list[tuple[FieldSpec, str, Any, int]]:
        """(spec, kind, value, depth) for every row, nested groups' rows after their group."""
        out: list[tuple[FieldSpec, str, Any, int]] = []

        def walk(schema: dict[str, Any], base: RelPath, depth: int) -> None:
            here = lookup(step, base)
            for spec in self.specs(schema, base, here, depth == 0):
                value = lookup(step, spec.path)
                kind = self.kind_of(spec, value)
                out.append((spec, kind, value, depth))
                if kind == OBJECT:
                    walk(spec.schema, spec.path, depth + 1)

        walk(self.schema, self.base, 0)
        return out

    def signature(self, step: Any) -> tuple[tuple[RelPath, str], ...]:
        return tuple((spec.path, kind) for spec, kind, _value, _depth in self.rows(step))


class SchemaForm(QWidget):
    """The rows of a :class:`FormPlan` for one step value.

    The owner builds a form when the plan's signature changes and otherwise calls ``load``
    (editors update in place; the focused one keeps its caret and its text).
    """

    overrideRequested = Signal()  # the user picked another editor for a field: rebuild

    def __init__(self, host: FormHost, plan: FormPlan, step: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.plan = plan
        self.fields: dict[RelPath, Field] = {}
        self._errors: dict[RelPath, QLabel] = {}
        self._resets: dict[RelPath, QToolButton] = {}
        layouts: dict[RelPath, QFormLayout] = {plan.base: self._form_layout(self)}
        for spec, kind, _value, _depth in plan.rows(step):
            editor = FIELD_CLASSES[kind](self, spec)
            self.fields[spec.path] = editor
            label = QLabel(self._label_text(spec))
            label.setObjectName(f"label:{spec.name}")
            label.setToolTip(spec.description or ("Not part of this type's schema" if spec.unknown else ""))
            label.setBuddy(editor.widget)
            layouts[spec.path[:-1]].addRow(label, self._row(editor))
            if isinstance(editor, ObjectField):
                layouts[spec.path] = editor.layout
        self.load(step)

    @staticmethod
    def _form_layout(widget: QWidget) -> QFormLayout:
        layout = QFormLayout(widget)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        return layout

    def _label_text(self, spec: FieldSpec) -> str:
        text = spec.key
        if spec.required:
            text += f"<span style='color:{ERROR_COLOUR}'> *</span>"
        if spec.unknown:
            text = f"<i>{text}</i> <span style='color:#B7791F'>(unknown)</span>"
        return text

    def _row(self, editor: Field) -> QWidget:
        row = QWidget()
        row.setObjectName(f"row:{editor.spec.name}")
        column = QVBoxLayout(row)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        line = QHBoxLayout()
        line.setSpacing(2)
        line.addWidget(editor.widget, 1)
        if editor.kind != SUBSTEPS:
            line.addWidget(self._menu_button(editor), 0, Qt.AlignmentFlag.AlignTop)
        column.addLayout(line)
        error = QLabel()
        error.setObjectName(f"error:{editor.spec.name}")
        error.setWordWrap(True)
        error.setStyleSheet(f"color: {ERROR_COLOUR};")
        error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        error.hide()
        column.addWidget(error)
        self._errors[editor.spec.path] = error
        return row

    def _menu_button(self, editor: Field) -> QToolButton:
        button = QToolButton()
        button.setObjectName(f"reset:{editor.spec.name}")
        button.setAutoRaise(True)
        button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        reset = QAction(icon("reset"), "Remove from the YAML (use the default)", button)
        reset.triggered.connect(lambda: editor.commit(MISSING))
        button.setDefaultAction(reset)
        menu = QMenu(button)
        menu.addAction(reset)
        path = editor.spec.path
        if editor.kind in (ENUM, BOOL, REF, LIST, MAP):
            menu.addAction("Edit as expression", lambda: self.override(path, TEXT))
        if editor.kind != RAW:
            menu.addAction("Edit as YAML", lambda: self.override(path, RAW))
        if path in self.plan.overrides:
            menu.addAction("Use the form", lambda: self.override(path, None))
        button.setMenu(menu)
        self._resets[path] = button
        return button

    def override(self, path: RelPath, kind: str | None) -> None:
        """Show ``path`` with another editor (None: the one its schema and value call for)."""
        if kind is None:
            self.plan.overrides.pop(path, None)
        else:
            self.plan.overrides[path] = kind
        self.overrideRequested.emit()

    # -- values --------------------------------------------------------------------------
    def load(self, step: Any) -> None:
        for path, editor in self.fields.items():
            value = lookup(step, path)
            editor.load(value)
            reset = self._resets.get(path)
            if reset is not None and reset.defaultAction() is not None:
                reset.defaultAction().setEnabled(value is not MISSING)

    def flush(self) -> None:
        for editor in self.fields.values():
            if editor.has_focus():
                editor.flush()

    def focused(self) -> Field | None:
        return next((f for f in self.fields.values() if f.has_focus()), None)

    def show_error(self, path: RelPath, message: str) -> None:
        label = self._errors.get(path)
        if label is not None:
            label.setText(message)
            label.setVisible(bool(message))

    def error_text(self, path: RelPath) -> str:
        label = self._errors.get(path)
        return label.text() if label is not None and not label.isHidden() else ""
