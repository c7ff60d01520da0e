"""The property panel: the selected step as a form generated from its type's JSON Schema.

The panel reads the step from the document's outline (``last_good`` while the text does not
parse) and writes every edit back through the document (``set_value``, ``delete_value``,
``rename_step``, ``edit``), one undo command per committed field. It re-reads the outline on
``outlineChanged``: when the same editors fit the new value they update in place (the
focused one keeps its caret), otherwise the form is rebuilt.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
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

from app.editor import connector_refs, connector_rules
from app.editor.document import PipelineDocument
from app.editor.form_fields import Field
from app.editor.form_values import RelPath, Roles
from app.editor.jq_field import context_keys
from app.editor.outline import Outline, PipelineOutline, StepNode, YamlPath
from app.editor.schema_form import FormPlan, SchemaForm
from app.icons import icon, step_icon
from engine.service.models import ConnectorTypeInfo, DiagnosticInfo, StepTypeInfo

log = logging.getLogger("wfstudio.app")

_DURATION = {"type": ["string", "number"], "x-placeholder": "e.g. 250ms, 5s, 2m"}

# The keys every step has (pipeline-format.md §2), as a schema the form understands.
STEP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "if": {"description": "Run the step only when this is truthy: a template like '{{ .qty > 1 }}' "
                              "or a jq program like '.qty > 1'."},
        "skip_if": {"description": "Skip the step when this is truthy (template or jq program)."},
        "on_error": {"enum": ["stop", "continue", "compensate"], "x-placeholder": "the pipeline's",
                     "description": "What a failure of this step does: stop the execution, continue "
                                    "(the output becomes {error}) or compensate."},
        "timeout": {**_DURATION, "description": "The step is cancelled and fails after this long."},
        "retry": {
            "type": "object", "additionalProperties": False,
            "description": "Retries after a failure, each recorded as an event.",
            "properties": {
                "max_attempts": {"type": "integer", "minimum": 1, "default": 1,
                                 "description": "Attempts in all, the first included."},
                "initial_delay": {**_DURATION, "default": "100ms",
                                  "description": "Delay before the first retry."},
                "max_delay": {**_DURATION, "default": "30s", "description": "Upper bound of the delay."},
                "multiplier": {"type": "number", "minimum": 1, "default": 2,
                               "description": "Factor applied to the delay after each retry."},
                "jitter": {"type": "number", "minimum": 0, "maximum": 1, "default": 0,
                           "description": "Random fraction of the delay added or removed (0..1)."},
            },
        },
        "idempotency_key": {"type": "string", "x-placeholder": "e.g. {{ .order_id }}",
                            "description": "A repeated key returns the stored output without running "
                                           "the step (a template)."},
        "idempotency_ttl": {**_DURATION, "description": "How long an idempotency key is remembered."},
        "error_status": {"type": "integer", "minimum": 100, "maximum": 599,
                         "description": "HTTP status to answer when this step fails under an HTTP trigger."},
    },
}
STEP_ROLES = Roles(programs=frozenset({"if", "skip_if"}))
_HEADER_KEYS = frozenset({"name", "type", "config", "compensate"})
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


class PropertyPanel(QWidget):
    """The selected step's header, problems, step-level keys and config (objectName "propertyPanel")."""

    currentStepChanged = Signal(str, str)  # (pipeline, step id) when the panel moved on by itself
    problemActivated = Signal(int, int)  # (line, column) of a problem the user clicked

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("propertyPanel")
        self._infos: dict[str, StepTypeInfo] = {}
        self._document: PipelineDocument | None = None
        self._pipeline = ""
        self._step_id: str | None = None
        self._node: StepNode | None = None
        self._outline: PipelineOutline | None = None
        self._modules: list[str] = []
        self._connector_infos: dict[str, ConnectorTypeInfo] = {}
        self._connector_names: dict[str, list[str]] = {}  # kind -> declared names (emit's combo)
        self._diagnostics: list[DiagnosticInfo] = []
        self._completions: list[str] = []
        self._signatures: tuple[Any, ...] = ()
        self._overrides: dict[RelPath, str] = {}
        self.step_form: SchemaForm | None = None
        self.config_form: SchemaForm | None = None
        self._build()
        self._show_placeholder("Select a step to edit its properties.")

    # -- public API ------------------------------------------------------------------------
    def set_type_infos(self, infos: list[StepTypeInfo]) -> None:
        self._infos = {info.name: info for info in infos}
        self._signatures = ()
        self._refresh()

    def set_connector_types(self, infos: list[ConnectorTypeInfo]) -> None:
        self._connector_infos = {info.name: info for info in infos}
        self._refresh()

    def show_step(self, document: PipelineDocument | None, pipeline: str, step_id: str | None) -> None:
        """Show ``step_id`` of ``pipeline`` in ``document`` (a PipelineDocument); None clears."""
        self.flush()
        if document is not self._document:
            if self._document is not None:
                with contextlib.suppress(RuntimeError, TypeError):  # the old document is gone
                    self._document.outlineChanged.disconnect(self._refresh)
            self._document = document
            if document is not None:
                document.outlineChanged.connect(self._refresh)
        if (pipeline, step_id) != (self._pipeline, self._step_id):
            self._overrides = {}
        self._pipeline, self._step_id = pipeline, step_id
        self._node = None
        self._signatures = ()
        self._refresh()

    def set_diagnostics(self, diagnostics: list[DiagnosticInfo]) -> None:
        self._diagnostics = list(diagnostics)
        self._show_problems()

    def current(self) -> tuple[str, str | None]:
        return self._pipeline, self._step_id

    def field(self, path: RelPath) -> Field | None:
        """The editor of a key path relative to the step, e.g. ("config", "url")."""
        for form in (self.step_form, self.config_form):
            if form is not None and path in form.fields:
                return form.fields[path]
        return None

    def flush(self) -> None:
        """Commit the focused field's pending text (before the selection moves)."""
        for form in (self.step_form, self.config_form):
            if form is not None and self._node is not None:
                form.flush()
        if self._name.hasFocus():
            self._rename()

    # -- layout ----------------------------------------------------------------------------
    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self._banner = QLabel()
        self._banner.setObjectName("panelBanner")
        self._banner.setWordWrap(True)
        self._banner.setStyleSheet("background:#FDECEC; color:#8A1C22; padding:6px; border-radius:3px;")
        self._banner.hide()
        outer.addWidget(self._banner)
        scroll = QScrollArea()
        scroll.setObjectName("propertyScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        # The form follows the dock's width (descriptions wrap) instead of scrolling sideways.
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        outer.addWidget(scroll)
        body = QWidget()
        body.setMinimumWidth(200)  # overrides the fields' summed minimum: the dock decides the width
        scroll.setWidget(body)
        self._scroll = scroll
        column = QVBoxLayout(body)
        column.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        column.setContentsMargins(8, 8, 8, 8)

        self._placeholder = QLabel()
        self._placeholder.setObjectName("panelPlaceholder")
        self._placeholder.setWordWrap(True)
        self._placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._placeholder.setEnabled(False)
        column.addWidget(self._placeholder)

        self._content = QWidget()
        content = QVBoxLayout(self._content)
        content.setContentsMargins(0, 0, 0, 0)
        self._problems = QListWidget()  # first: what is wrong with the step comes before anything
        self._problems.setObjectName("stepProblems")
        self._problems.itemActivated.connect(self._problem_clicked)
        self._problems.itemClicked.connect(self._problem_clicked)
        self._problems.hide()
        content.addWidget(self._problems)
        header = QGridLayout()
        self._icon = QLabel()
        self._name = QLineEdit()
        self._name.setObjectName("stepName")
        self._name.setPlaceholderText("step name")
        self._name.setToolTip("The step's name: letters, digits, _ and -; references to it are renamed too")
        self._name.editingFinished.connect(self._rename)
        self._type = QLabel()
        self._type.setObjectName("stepType")
        self._type.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        header.addWidget(self._icon, 0, 0)
        header.addWidget(self._name, 0, 1)
        header.addWidget(self._type, 1, 1)
        header.setColumnStretch(1, 1)
        content.addLayout(header)
        self._name_error = QLabel()
        self._name_error.setObjectName("stepNameError")
        self._name_error.setStyleSheet("color:#D9363E;")
        self._name_error.hide()
        content.addWidget(self._name_error)
        self._description = QLabel()
        self._description.setObjectName("stepDescription")
        self._description.setWordWrap(True)
        content.addWidget(self._description)
        self._output = QLabel()
        self._output.setObjectName("stepOutput")
        self._output.setWordWrap(True)
        self._output.setEnabled(False)
        content.addWidget(self._output)


        self._config_box = QGroupBox("Config")
        self._config_box.setObjectName("configSection")
        self._config_layout = QVBoxLayout(self._config_box)
        self._config_note = QLabel()
        self._config_note.setObjectName("configNote")
        self._config_note.setWordWrap(True)
        self._config_note.hide()
        self._config_layout.addWidget(self._config_note)
        content.addWidget(self._config_box)

        self._step_box = QGroupBox("Step")
        self._step_box.setObjectName("stepSection")
        self._step_layout = QVBoxLayout(self._step_box)
        content.addWidget(self._step_box)

        self._compensation = QLabel()
        self._compensation.setObjectName("compensationNote")
        self._compensation.setWordWrap(True)
        self._compensation.linkActivated.connect(self._open_compensation)
        content.addWidget(self._compensation)
        content.addStretch(1)
        column.addWidget(self._content)
        column.addStretch(1)

    def _show_placeholder(self, text: str) -> None:
        self._placeholder.setText(text)
        self._placeholder.show()
        self._content.hide()

    # -- reading the document --------------------------------------------------------------
    def _outline_now(self) -> Outline | None:
        doc = self._document
        if doc is None:
            return None
        outline = doc.outline
        return outline if outline.ok else doc.last_good

    def _find(self, outline: Outline) -> tuple[PipelineOutline | None, StepNode | None]:
        pipeline = outline.pipelines.get(self._pipeline)
        if pipeline is None or self._step_id is None:
            return pipeline, None
        node = pipeline.nodes.get(self._step_id)
        if node is None and self._node is not None:
            # Renamed elsewhere (e.g. typed in the YAML): follow the step at the same place.
            node = next((n for n in pipeline.nodes.values()
                         if n.path == self._node.path and n.type == self._node.type), None)
            if node is not None:
                self._step_id = node.id
                self.currentStepChanged.emit(self._pipeline, node.id)
        return pipeline, node

    def _refresh(self) -> None:
        doc = self._document
        outline = self._outline_now()
        if doc is None or outline is None or self._step_id is None:
            self._node = None
            self._clear_forms()
            self._banner.hide()
            self._show_placeholder("Select a step to edit its properties.")
            return
        broken = not doc.outline.ok
        self._set_banner(f"The YAML does not parse ({doc.outline.error}); the form shows the last "
                         "version that did and cannot apply edits until the text is fixed."
                         if broken else "")
        pipeline, node = self._find(outline)
        if node is None:
            self._node = None
            self._clear_forms()
            self._show_placeholder(f"The step {self._step_id!r} is no longer in pipeline {self._pipeline!r}.")
            return
        self._outline, self._node, self._modules = pipeline, node, list(outline.modules)
        self._connector_names = {kind: connector_rules.names_of_kind(outline, kind, self._connector_infos)
                                 for kind in (connector_rules.SOURCE, connector_rules.SINK)}
        keys = context_keys(pipeline, node)
        if keys != self._completions:  # a new list object makes every jq field reload its completer
            self._completions = keys
        self._placeholder.hide()
        self._content.show()
        self._content.setEnabled(not broken)
        self._show_header(node)
        self._show_forms(node)
        self._show_problems()

    def _show_header(self, node: StepNode) -> None:
        info = self._infos.get(node.type)
        category = info.category if info else ""
        self._icon.setPixmap(step_icon(category).pixmap(28, 28))
        if not self._name.hasFocus():
            self._name.setText(node.name)
        label = node.type or "(no type)"
        self._type.setText(f"{label} · {category}" if category else label)
        if info is None:
            self._description.setText(f"Unknown step type {node.type!r}: no schema, so the config is shown "
                                      "as YAML." if node.type else "The step has no type.")
            self._output.setText("")
        else:
            self._description.setText(info.description)
            self._output.setText(f"Output: {info.output}" if info.output else "")
        comp = node.compensate
        if comp is not None:
            self._compensation.setText(f"Compensation: <a href='{comp.id}'>{comp.name}</a> ({comp.type}), "
                                       "run when a later step fails under on_error: compensate.")
            self._compensation.show()
        else:
            self._compensation.hide()

    def _plans(self, node: StepNode) -> tuple[FormPlan, FormPlan, list[str]]:
        """The step-level plan, the config plan and notes about the config."""
        info = self._infos.get(node.type)
        config = node.value.get("config", {})
        step_plan = FormPlan(STEP_SCHEMA, (), STEP_ROLES, self._overrides, _HEADER_KEYS)
        notes = []
        if info is None or not isinstance(config, dict) or not info.schema_.get("properties"):
            # No form to generate (an unknown type, a schema without properties, a config that
            # is not a mapping): one YAML editor for the whole config, so keys can be added.
            if info is None:
                notes.append("No schema for this type: the config is edited as YAML.")
            elif not isinstance(config, dict):
                notes.append("The config should be a mapping of keys.")
            schema = {"properties": {"config": {"type": "object", "x-raw": True,
                                                "description": "The step's config, as YAML."}}}
            others = frozenset(str(k) for k in node.value) - {"config"}
            return step_plan, FormPlan(schema, (), Roles(), self._overrides, others, extra_keys=False), notes
        roles = Roles(programs=frozenset(info.program_keys),
                      step_refs=frozenset(r for r in info.step_refs if "." not in r and "*" not in r),
                      module_refs=frozenset(info.module_refs),
                      substeps=dict(info.substep_keys))
        if info.substep_keys:
            notes.append(f"Sub-steps ({', '.join(info.substep_keys)}) are edited in the graph.")
        return step_plan, connector_refs.config_plan(info, roles, self._overrides), notes

    def _show_forms(self, node: StepNode) -> None:
        value = node.value
        step_plan, config_plan, notes = self._plans(node)
        signatures = (node.path, node.type, step_plan.signature(value), config_plan.signature(value))
        if signatures == self._signatures and self.step_form is not None and self.config_form is not None:
            self.step_form.load(value)
            self.config_form.load(value)
            return
        focused = self._focused_path()
        self._clear_forms()
        self.step_form = SchemaForm(self, step_plan, value)
        self.step_form.setObjectName("stepForm")
        self.step_form.overrideRequested.connect(self._rebuild)
        self._step_layout.addWidget(self.step_form)
        self.step_form.show()  # at once, not on the layout's queued show: callers look at it now
        self.config_form = SchemaForm(self, config_plan, value)
        self.config_form.setObjectName("configForm")
        self.config_form.overrideRequested.connect(self._rebuild)
        self._config_layout.addWidget(self.config_form)
        self.config_form.show()
        self._config_note.setText(" ".join(notes))
        self._config_note.setVisible(bool(notes))
        self._signatures = signatures
        self._restore_focus(focused)

    def _rebuild(self) -> None:
        self._signatures = ()
        self._refresh()

    def _clear_forms(self) -> None:
        for form in (self.step_form, self.config_form):
            if form is not None:
                form.hide()
                form.setParent(None)
                form.deleteLater()  # its slots may still be on the stack
        self.step_form = self.config_form = None
        self._signatures = ()

    def _focused_path(self) -> tuple[RelPath, int] | None:
        for form in (self.step_form, self.config_form):
            editor = form.focused() if form is not None else None
            if editor is not None:
                widget = editor.widget
                cursor = widget.cursorPosition() if isinstance(widget, QLineEdit) else 0
                return editor.spec.path, cursor
        return None

    def _restore_focus(self, focused: tuple[RelPath, int] | None) -> None:
        if focused is None:
            return
        editor = self.field(focused[0])
        if editor is not None:
            editor.widget.setFocus()
            if isinstance(editor.widget, QLineEdit):
                editor.widget.setCursorPosition(min(focused[1], len(editor.widget.text())))

    # -- problems --------------------------------------------------------------------------
    def _show_problems(self) -> None:
        self._problems.clear()
        node, pipeline = self._node, self._outline
        if node is None or pipeline is None:
            self._problems.hide()
            return
        for diag in self._diagnostics:
            if not self._same_file(diag.file) or not node.line <= diag.line <= node.end_line:
                continue
            if pipeline.node_at_line(diag.line) is not node:
                continue  # it belongs to a sub-step or the compensation shown elsewhere
            item = QListWidgetItem(icon("problems"), f"line {diag.line}: {diag.message}")
            item.setData(Qt.ItemDataRole.UserRole, (diag.line, diag.col))
            item.setToolTip(diag.message)
            if diag.severity == "error":
                item.setForeground(Qt.GlobalColor.red)
            self._problems.addItem(item)
        count = self._problems.count()
        self._problems.setVisible(count > 0)
        if count:
            row = self._problems.sizeHintForRow(0)
            self._problems.setFixedHeight(min(count, 5) * row + 6)

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
        return self._completions

    def names_for(self, role: str) -> list[str]:
        if role == "module":
            return list(dict.fromkeys(self._modules))
        if role in self._connector_names:
            return self._connector_names[role]
        pipeline, node = self._outline, self._node
        if pipeline is None or node is None:
            return []
        siblings = pipeline.steps if node.parent is None else pipeline.nodes[node.parent].children
        names = [s.name for s in (*siblings, *pipeline.steps)]
        return list(dict.fromkeys(names))

    def _absolute(self, path: RelPath) -> YamlPath | None:
        return None if self._node is None else (*self._node.path, *path)

    def commit(self, path: RelPath, value: Any) -> None:
        target = self._absolute(path)
        if target is not None:
            self._apply(lambda: self._document.set_value(target, value))

    def remove(self, path: RelPath) -> None:
        target = self._absolute(path)
        if target is None:
            return
        try:
            self._document.value_at(target)
        except (KeyError, IndexError, TypeError):
            return  # already absent
        self._apply(lambda: self._document.delete_value(target))

    def rename_key(self, path: RelPath, old: str, new: str) -> None:
        target = self._absolute(path)
        if target is None:
            return

        def rename(tree: Any) -> None:
            mapping = tree
            for key in target:
                mapping = mapping[key]
            keys = list(mapping)
            position = keys.index(old)
            value = mapping.pop(old)
            mapping.insert(position, new, value)

        self._apply(lambda: self._document.edit(f"Rename key {old} to {new}", rename))

    def _rename(self) -> None:
        node = self._node
        new = self._name.text().strip()
        if node is None or new == node.name:
            self._name_error.hide()
            return
        if not new or not set(new) <= _NAME_CHARS:
            self._name_error.setText("A step name uses letters, digits, _ and - only; not renamed.")
            self._name_error.show()
            return
        if self._outline is not None and new in {n.name for n in self._outline.nodes.values()}:
            self._name_error.setText(f"Another step is already named {new!r}; not renamed.")
            self._name_error.show()
            return
        self._name_error.hide()
        prefix = node.id[: node.id.rfind("/") + 1]
        if self._apply(lambda: self._document.rename_step(node.path, new), refresh=False):
            self._step_id = prefix + new
            self.currentStepChanged.emit(self._pipeline, self._step_id)
        self._flush_outline()

    def _apply(self, action: Callable[[], None], *, refresh: bool = True) -> bool:
        try:
            action()
        except Exception as exc:  # EditError and friends: say why, never lose the field's text
            if type(exc).__name__ != "EditError":
                log.warning("property edit failed", exc_info=exc)
            self._set_banner(f"Could not apply the edit: {exc}")
            return False
        self._set_banner("")
        if refresh:
            self._flush_outline()
        return True

    def _flush_outline(self) -> None:
        # Parse now: the panel (and the graph) show the edit before the next keystroke.
        if self._document is not None:
            self._document.flush_outline()

    def _set_banner(self, text: str) -> None:
        self._banner.setText(text)
        self._banner.setVisible(bool(text))

    def _open_compensation(self, step_id: str) -> None:
        self.show_step(self._document, self._pipeline, step_id)
        self.currentStepChanged.emit(self._pipeline, step_id)


