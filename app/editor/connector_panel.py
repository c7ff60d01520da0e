"""The selected connector (an entry of ``connectors:``) as a form, in the Properties dock.

It works like the step panel (:mod:`app.editor.properties`): the connector is read from the
document's outline (``last_good`` while the text does not parse), every committed field is
one document command, and ``outlineChanged`` refreshes the form in place or rebuilds it when
the editors must change. The config form comes from the type's JSON Schema
(``connector_types()``); its secret keys are password fields; a type the service does not
know gets one YAML editor for the whole config and a note saying why.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QGridLayout,
    QGroupBox,
    QLabel,
    QLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.editor import connector_rules
from app.editor.document import PipelineDocument
from app.editor.form_fields import Field
from app.editor.form_values import RelPath, Roles
from app.editor.outline import ConnectorNode, Outline, YamlPath
from app.editor.schema_form import FormPlan, SchemaForm
from app.executions.support import named
from app.icons import icon, step_icon
from engine.service.models import ConnectorTypeInfo, DiagnosticInfo

log = logging.getLogger("wfstudio.app")

# The keys of a connector entry besides name, type and config (the builder's MODULE_KEYS).
CONNECTOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "description": {"type": "string", "x-placeholder": "what this connector is for",
                        "description": "A note for readers of the file; the engine ignores it."},
    },
}
_HEADER_KEYS = frozenset({"name", "type", "config"})
_UNKNOWN_ROLE = Qt.ItemDataRole.UserRole + 1  # marks the combo item of a type nobody offers
KIND_ICONS = {"source": "flow", "sink": "messaging"}  # step category drawings reused


class ConnectorPanel(QWidget):
    """Name, type, description and config of one connector (objectName "connectorPanel")."""

    currentConnectorChanged = Signal(str)  # the panel followed a rename made elsewhere
    problemActivated = Signal(int, int)  # (line, column) of a problem the user clicked

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("connectorPanel")
        self._infos: dict[str, ConnectorTypeInfo] = {}
        self._document: PipelineDocument | None = None
        self._name: str | None = None
        self._node: ConnectorNode | None = None
        self._outline: Outline | None = None
        self._diagnostics: list[DiagnosticInfo] = []
        self._signatures: tuple[Any, ...] = ()
        self._overrides: dict[RelPath, str] = {}
        self.entry_form: SchemaForm | None = None
        self.config_form: SchemaForm | None = None
        self._build()
        self._show_placeholder("Select a connector to edit it.")

    # -- public API ------------------------------------------------------------------------
    def set_connector_types(self, infos: list[ConnectorTypeInfo]) -> None:
        self._infos = {info.name: info for info in infos}
        self._fill_types()
        self._signatures = ()
        self._refresh()

    def show_connector(self, document: PipelineDocument | None, name: str | None) -> None:
        """Show connector ``name`` of ``document``; None clears."""
        self.flush()
        if document is not self._document:
            if self._document is not None:
                with contextlib.suppress(RuntimeError, TypeError):  # the old document is gone
                    self._document.outlineChanged.disconnect(self._refresh)
            self._document = document
            if document is not None:
                document.outlineChanged.connect(self._refresh)
        if name != self._name:
            self._overrides = {}
        self._name = name
        self._node = None
        self._signatures = ()
        self._refresh()

    def current(self) -> str | None:
        return self._name

    def set_diagnostics(self, diagnostics: list[DiagnosticInfo]) -> None:
        self._diagnostics = list(diagnostics)
        self._show_problems()

    def field(self, path: RelPath) -> Field | None:
        """The editor of a key path relative to the connector, e.g. ("config", "url")."""
        for form in (self.entry_form, self.config_form):
            if form is not None and path in form.fields:
                return form.fields[path]
        return None

    def flush(self) -> None:
        """Commit the focused field's pending text (before the selection moves)."""
        for form in (self.entry_form, self.config_form):
            if form is not None and self._node is not None:
                form.flush()
        if self.name_edit.hasFocus():
            self._rename()

    # -- layout ----------------------------------------------------------------------------
    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self._banner = named(QLabel(), "connectorBanner")
        self._banner.setWordWrap(True)
        self._banner.setStyleSheet("background:#FDECEC; color:#8A1C22; padding:6px; border-radius:3px;")
        self._banner.hide()
        outer.addWidget(self._banner)
        scroll = named(QScrollArea(), "connectorScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        outer.addWidget(scroll)
        body = QWidget()
        body.setMinimumWidth(200)
        scroll.setWidget(body)
        column = QVBoxLayout(body)
        column.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        column.setContentsMargins(8, 8, 8, 8)

        self._placeholder = named(QLabel(), "connectorPlaceholder")
        self._placeholder.setWordWrap(True)
        self._placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._placeholder.setEnabled(False)
        column.addWidget(self._placeholder)

        self._content = QWidget()
        content = QVBoxLayout(self._content)
        content.setContentsMargins(0, 0, 0, 0)
        self._problems = named(QListWidget(), "connectorProblems")
        self._problems.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # tooltips
        self._problems.itemActivated.connect(self._problem_clicked)
        self._problems.itemClicked.connect(self._problem_clicked)
        self._problems.hide()
        content.addWidget(self._problems)

        header = QGridLayout()
        self._icon = QLabel()
        self.name_edit = named(QLineEdit(), "connectorName")
        self.name_edit.setPlaceholderText("connector name")
        self.name_edit.setToolTip("The connector's name; triggers and emit steps naming it are renamed too")
        self.name_edit.editingFinished.connect(self._rename)
        self.kind_label = named(QLabel(), "connectorKind")
        header.addWidget(self._icon, 0, 0)
        header.addWidget(self.name_edit, 0, 1)
        header.addWidget(self.kind_label, 1, 1)
        header.setColumnStretch(1, 1)
        content.addLayout(header)
        self._name_error = named(QLabel(), "connectorNameError")
        self._name_error.setStyleSheet("color:#D9363E;")
        self._name_error.setWordWrap(True)
        self._name_error.hide()
        content.addWidget(self._name_error)

        type_row = QGridLayout()
        type_row.addWidget(QLabel("type"), 0, 0)
        self.type_combo = named(QComboBox(), "connectorType")
        self.type_combo.setToolTip("The connector type; its config schema makes the form below")
        self.type_combo.activated.connect(self._type_picked)
        type_row.addWidget(self.type_combo, 0, 1)
        type_row.setColumnStretch(1, 1)
        content.addLayout(type_row)
        self.type_note = named(QLabel(), "connectorTypeNote")
        self.type_note.setWordWrap(True)
        content.addWidget(self.type_note)

        self._entry_box = QWidget()
        self._entry_layout = QVBoxLayout(self._entry_box)
        self._entry_layout.setContentsMargins(0, 0, 0, 0)
        content.addWidget(self._entry_box)

        self._config_box = named(QGroupBox("Config"), "connectorConfigSection")
        self._config_layout = QVBoxLayout(self._config_box)
        self.config_note = named(QLabel(), "connectorConfigNote")
        self.config_note.setWordWrap(True)
        self.config_note.hide()
        self._config_layout.addWidget(self.config_note)
        content.addWidget(self._config_box)
        content.addStretch(1)
        column.addWidget(self._content)
        column.addStretch(1)

    def _fill_types(self) -> None:
        combo = self.type_combo
        combo.blockSignals(True)
        combo.clear()
        model = combo.model()
        for title, infos in connector_rules.grouped(self._infos.values()):
            if not infos:
                continue
            combo.addItem(title)  # a group heading, not a choice
            if isinstance(model, QStandardItemModel):
                heading = model.item(combo.count() - 1)
                heading.setEnabled(False)
                font = heading.font()
                font.setBold(True)
                heading.setFont(font)
            for info in infos:
                combo.addItem(step_icon(KIND_ICONS[info.kind]), f"  {info.name}", info.name)
                combo.setItemData(combo.count() - 1, info.description, Qt.ItemDataRole.ToolTipRole)
        combo.blockSignals(False)

    def _show_placeholder(self, text: str) -> None:
        self._placeholder.setText(text)
        self._placeholder.show()
        self._content.hide()

    # -- reading the document --------------------------------------------------------------
    def _outline_now(self) -> Outline | None:
        doc = self._document
        if doc is None:
            return None
        return doc.outline if doc.outline.ok else doc.last_good

    def _find(self, outline: Outline) -> ConnectorNode | None:
        if self._name is None:
            return None
        node = connector_rules.find(outline, self._name)
        if node is None and self._node is not None:
            # Renamed elsewhere (typed in the YAML): follow the entry at the same place.
            node = next((c for c in outline.connectors if c.path == self._node.path), None)
            if node is not None and node.name:
                self._name = node.name
                self.currentConnectorChanged.emit(node.name)
        return node

    def _refresh(self) -> None:
        doc = self._document
        outline = self._outline_now()
        if doc is None or outline is None or self._name is None:
            self._node = None
            self._clear_forms()
            self._banner.hide()
            self._show_placeholder("Select a connector to edit it.")
            return
        broken = not doc.outline.ok
        self._set_banner(f"The YAML does not parse ({doc.outline.error}); the form shows the last "
                         "version that did and cannot apply edits until the text is fixed."
                         if broken else "")
        node = self._find(outline)
        if node is None:
            self._node = None
            self._clear_forms()
            self._show_placeholder(f"The connector {self._name!r} is no longer in this file.")
            return
        self._outline, self._node = outline, node
        self._placeholder.hide()
        self._content.show()
        self._content.setEnabled(not broken)
        self._show_header(node)
        self._show_forms(node)
        self._show_problems()

    def _show_header(self, node: ConnectorNode) -> None:
        kind = connector_rules.kind_of(node.type, self._infos)
        self._icon.setPixmap((step_icon(KIND_ICONS[kind]) if kind in KIND_ICONS else icon("problems"))
                             .pixmap(28, 28))
        if not self.name_edit.hasFocus():
            self.name_edit.setText(node.name)
        self.kind_label.setText({"source": "source · its events start pipelines",
                                 "sink": "sink · emit steps send events to it"}.get(kind, "unknown type"))
        combo = self.type_combo
        for i in range(combo.count() - 1, -1, -1):  # the previous connector's unknown type
            if combo.itemData(i, _UNKNOWN_ROLE) == "unknown":
                combo.removeItem(i)
        index = combo.findData(node.type) if node.type else -1
        if index < 0:  # unknown (or missing) type: shown first, marked, gone once fixed
            combo.insertItem(0, icon("problems"), f"{node.type or '(no type)'} (unknown)", node.type)
            combo.setItemData(0, "unknown", _UNKNOWN_ROLE)
            index = 0
        combo.setCurrentIndex(index)
        info = self._infos.get(node.type)
        if info is not None:
            self.type_note.setText(info.description)
            self.type_note.setStyleSheet("")
        elif not node.type:
            self.type_note.setText("The connector has no type: pick one above.")
            self.type_note.setStyleSheet("color:#D9363E;")
        else:
            known = ", ".join(sorted(self._infos)) or "none reported by the service"
            self.type_note.setText(f"Unknown connector type {node.type!r}: the service has no schema for "
                                   f"it (a plugin may not be installed), so its config is edited as YAML. "
                                   f"Known types: {known}.")
            self.type_note.setStyleSheet("color:#D9363E;")

    def _plans(self, node: ConnectorNode) -> tuple[FormPlan, FormPlan, list[str]]:
        info = self._infos.get(node.type)
        config = node.value.get("config", {})
        entry_plan = FormPlan(CONNECTOR_SCHEMA, (), Roles(), self._overrides, _HEADER_KEYS)
        notes: list[str] = []
        if info is None or not isinstance(config, dict | None) or not info.schema_.get("properties"):
            if config is not None and not isinstance(config, dict):
                notes.append("The config should be a mapping of keys.")
            schema = {"properties": {"config": {"type": "object", "x-raw": True,
                                                "description": "The connector's config, as YAML."}}}
            others = frozenset(str(k) for k in node.value) - {"config"}
            return entry_plan, FormPlan(schema, (), Roles(), self._overrides, others, extra_keys=False), notes
        if info.secret_keys:
            notes.append(f"Secrets ({', '.join(info.secret_keys)}) are masked; write them as "
                         "${NAME} to read them from the environment instead of the file.")
        return entry_plan, FormPlan(info.schema_, ("config",), Roles(), self._overrides), notes

    def _show_forms(self, node: ConnectorNode) -> None:
        value = node.value
        entry_plan, config_plan, notes = self._plans(node)
        signatures = (node.path, node.type, entry_plan.signature(value), config_plan.signature(value))
        if signatures == self._signatures and self.entry_form is not None and self.config_form is not None:
            self.entry_form.load(value)
            self.config_form.load(value)
            return
        focused = self._focused_path()
        self._clear_forms()
        self.entry_form = SchemaForm(self, entry_plan, value)
        self.entry_form.setObjectName("connectorEntryForm")
        self.entry_form.overrideRequested.connect(self._rebuild)
        self._entry_layout.addWidget(self.entry_form)
        self.entry_form.show()
        self.config_form = SchemaForm(self, config_plan, value)
        self.config_form.setObjectName("connectorConfigForm")
        self.config_form.overrideRequested.connect(self._rebuild)
        self._config_layout.addWidget(self.config_form)
        self.config_form.show()
        self._mask_secrets(node)
        self.config_note.setText(" ".join(notes))
        self.config_note.setVisible(bool(notes))
        self._signatures = signatures
        self._restore_focus(focused)

    def _mask_secrets(self, node: ConnectorNode) -> None:
        info = self._infos.get(node.type)
        for key in info.secret_keys if info is not None else []:
            editor = self.field(("config", key))
            if editor is not None and isinstance(editor.widget, QLineEdit):
                # Masked on screen (shoulder surfing, screenshots); plain while being typed.
                editor.widget.setEchoMode(QLineEdit.EchoMode.PasswordEchoOnEdit)

    def _rebuild(self) -> None:
        self._signatures = ()
        self._refresh()

    def _clear_forms(self) -> None:
        for form in (self.entry_form, self.config_form):
            if form is not None:
                form.hide()
                form.setParent(None)
                form.deleteLater()  # its slots may still be on the stack
        self.entry_form = self.config_form = None
        self._signatures = ()

    def _focused_path(self) -> tuple[RelPath, int] | None:
        for form in (self.entry_form, self.config_form):
            editor = form.focused() if form is not None else None
            if editor is not None:
                widget = editor.widget
                return editor.spec.path, widget.cursorPosition() if isinstance(widget, QLineEdit) else 0
        return None

    def _restore_focus(self, focused: tuple[RelPath, int] | None) -> None:
        editor = self.field(focused[0]) if focused is not None else None
        if focused is not None and editor is not None:
            editor.widget.setFocus()
            if isinstance(editor.widget, QLineEdit):
                editor.widget.setCursorPosition(min(focused[1], len(editor.widget.text())))

    # -- problems --------------------------------------------------------------------------
    def _show_problems(self) -> None:
        self._problems.clear()
        node = self._node
        if node is None:
            self._problems.hide()
            return
        for diag in self._diagnostics:
            if not self._same_file(diag.file) or not node.line <= diag.line <= node.end_line:
                continue
            item = QListWidgetItem(icon("problems"), f"line {diag.line}: {diag.message}")
            item.setData(Qt.ItemDataRole.UserRole, (diag.line, diag.col))
            item.setToolTip(diag.message)
            if diag.severity == "error":
                item.setForeground(Qt.GlobalColor.red)
            self._problems.addItem(item)
        count = self._problems.count()
        self._problems.setVisible(count > 0)
        if count:
            self._problems.setFixedHeight(min(count, 5) * self._problems.sizeHintForRow(0) + 6)

    def problems(self) -> list[str]:
        return [self._problems.item(i).text() for i in range(self._problems.count())]

    def _same_file(self, file: str) -> bool:
        path = getattr(self._document, "path", None)
        if path is None or not file:
            return True
        try:
            return Path(file).resolve() == Path(path).resolve()
        except OSError:
            return Path(file).name == Path(path).name

    def _problem_clicked(self, item: QListWidgetItem) -> None:
        line, col = item.data(Qt.ItemDataRole.UserRole)
        self.problemActivated.emit(int(line), int(col))

    # -- FormHost: edits go to the document -------------------------------------------------
    def completions(self) -> list[str]:
        return []  # connector config is read when the connector starts: no context to complete

    def names_for(self, role: str) -> list[str]:
        return []

    def _absolute(self, path: RelPath) -> YamlPath | None:
        return None if self._node is None else (*self._node.path, *path)

    def commit(self, path: RelPath, value: Any) -> None:
        target = self._absolute(path)
        doc = self._document
        if target is not None and doc is not None:
            self._apply(lambda: doc.set_value(target, value))

    def remove(self, path: RelPath) -> None:
        target = self._absolute(path)
        doc = self._document
        if target is None or doc is None:
            return
        try:
            doc.value_at(target)
        except (KeyError, IndexError, TypeError):
            return  # already absent
        self._apply(lambda: doc.delete_value(target))

    def rename_key(self, path: RelPath, old: str, new: str) -> None:
        target = self._absolute(path)
        doc = self._document
        if target is None or doc is None:
            return

        def rename(tree: Any) -> None:
            mapping = tree
            for key in target:
                mapping = mapping[key]
            keys = list(mapping)
            value = mapping.pop(old)
            mapping.insert(keys.index(old), new, value)

        self._apply(lambda: doc.edit(f"Rename key {old} to {new}", rename))

    def _type_picked(self, index: int) -> None:
        chosen = self.type_combo.itemData(index)
        node = self._node
        if node is None or not isinstance(chosen, str) or chosen == node.type:
            return
        target = (*node.path, "type")
        doc = self._document
        if doc is not None:
            self._apply(lambda: doc.set_value(target, chosen))

    def _rename(self) -> None:
        node, outline, doc = self._node, self._outline, self._document
        new = self.name_edit.text().strip()
        if node is None or outline is None or doc is None or new == node.name:
            self._name_error.hide()
            return
        if not new:
            self._name_error.setText("A connector needs a name; not renamed.")
            self._name_error.show()
            return
        if connector_rules.find(outline, new) is not None:
            self._name_error.setText(f"Another connector is already named {new!r}; not renamed.")
            self._name_error.show()
            return
        self._name_error.hide()
        if self._apply(lambda: connector_rules.rename(doc, outline, node, new), refresh=False):
            self._name = new
            self.currentConnectorChanged.emit(new)
        doc.flush_outline()

    def _apply(self, action: Callable[[], None], *, refresh: bool = True) -> bool:
        try:
            action()
        except Exception as exc:  # EditError and friends: say why, never lose the field's text
            if type(exc).__name__ != "EditError":
                log.warning("connector edit failed", exc_info=exc)
            self._set_banner(f"Could not apply the edit: {exc}")
            return False
        self._set_banner("")
        if refresh and self._document is not None:
            self._document.flush_outline()
        return True

    def _set_banner(self, text: str) -> None:
        self._banner.setText(text)
        self._banner.setVisible(bool(text))
