"""The graph pane: one pipeline of a :class:`PipelineDocument` drawn as a graph, and edited there.

It observes the document: every ``outlineChanged`` lays the pipeline out again (selection,
collapsed composites and the viewport are kept by step id); while the text does not parse
the last good graph stays, read-only, under a banner with the error. Every edit goes through
the document's step operations, so each is one command on its undo stack.

Decisions:
- Sequential flow is the list order. A plain step has no output port and its "next" edge
  cannot be re-wired (drag the node to reorder instead); only config values that name steps
  (the type's ``step_refs``: routes/default/then/else, merge_step, on_enabled/on_disabled)
  are re-wired, and only to steps the reference can reach (siblings or the top level).
- ``stepSelected`` is emitted for the user's selections (clicks, edits that create a step),
  not for :meth:`select_step`, so a caller syncing from the text cursor gets no echo.
  ``step_id`` is "" when the selection is cleared.
- :meth:`select_step` selects the drawn node (the collapsed composite when the step is
  inside one) and centres it only when it is not already in view.
- Debugger marks (breakpoint dots, the paused highlight) are kept per pipeline by step id
  (:mod:`app.editor.graph.debug_marks`) and put back on every rebuild; the pane never talks to
  the service: it asks for breakpoints with ``breakpointToggleRequested`` and draws what
  :meth:`set_breakpoints` gives it. A breakpoint on a step hidden in a collapsed composite shows
  as a small dot on that composite; a pause inside one expands it.
- The actions (toolbar, shortcuts) and the menus are :mod:`app.editor.graph.actions`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, QPoint, QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QTransform
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QMenu, QVBoxLayout, QWidget

from app.editor.document import EditError, PipelineDocument
from app.editor.graph.actions import GraphActions, is_breakpoint_key
from app.editor.graph.catalog import TypeCatalog, ref_slots
from app.editor.graph.debug_marks import BreakpointMarks, DebugMarks, ask_condition
from app.editor.graph.items import Problems
from app.editor.graph.layout import START, GraphLayout, count_steps, layout_pipeline, visible_ancestor
from app.editor.graph.minimap import Minimap
from app.editor.graph.scene import PipelineScene
from app.editor.graph.style import GraphStyle
from app.editor.graph.view import PipelineView
from app.editor.outline import Outline, PipelineOutline, StepNode, YamlPath
from engine.service.models import DiagnosticInfo, StepTypeInfo

HINT_MS = 6000
ViewState = tuple[float, QPointF]  # (zoom, scene centre)


class GraphPane(QWidget):
    stepSelected = Signal(str, str)  # pipeline, step id; "" = selection cleared
    errorLineActivated = Signal(int)  # the banner's "go to line" link
    # pipeline, step id ("fan-out/row"), jq condition ("" = none): the user toggled a breakpoint
    breakpointToggleRequested = Signal(str, str, str)

    def __init__(self, document: PipelineDocument | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("graphPane")
        self._document: PipelineDocument | None = None
        self._catalog = TypeCatalog()
        self._pipeline: str | None = None
        self._shown: Outline | None = None  # the outline the graph shows (the last good one)
        self._signature: object = None
        self._collapsed: dict[str, set[str]] = {}
        self._views: dict[str, ViewState] = {}
        self._diagnostics: list[DiagnosticInfo] = []
        self._quiet = 0  # > 0: selection changes are ours, not the user's
        self._fit_pending = False
        self._auto_fit = False  # keep fitting on resize until the user pans or zooms
        self._current_id = ""
        self._marks = DebugMarks()

        self.scene = PipelineScene(self)
        self.view = PipelineView(self.scene)
        self.minimap = Minimap(self.view, self.view)
        self.selector = QComboBox()
        self.selector.setObjectName("pipelineSelector")
        self.selector.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.selector.setToolTip("Pipeline shown in the graph")
        self.zoom_label = QLabel("100%")
        self.zoom_label.setObjectName("graphZoomLabel")
        self.zoom_label.setMinimumWidth(44)
        self.zoom_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.banner = QLabel()
        self.banner.setObjectName("graphBanner")
        self.banner.setWordWrap(True)
        self.banner.setTextFormat(Qt.TextFormat.RichText)
        self.banner.setStyleSheet("#graphBanner { background: #fde7e9; color: #6e0a12; padding: 4px 8px; }")
        self.banner.linkActivated.connect(lambda link: self.errorLineActivated.emit(int(link.split(":")[1])))
        self.banner.hide()
        self.hint = QLabel()
        self.hint.setObjectName("graphHint")
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("#graphHint { background: #fff4ce; color: #3b2f00; padding: 3px 8px; }")
        self.hint.hide()
        self._hint_timer = QTimer(self, singleShot=True, interval=HINT_MS)
        self._hint_timer.timeout.connect(self.hint.hide)

        self._actions = GraphActions(self)
        toolbar = QHBoxLayout()
        toolbar.setContentsMargins(4, 2, 4, 2)
        toolbar.setSpacing(2)
        toolbar.addWidget(self.selector)
        toolbar.addStretch(1)
        for name in ("zoom_out",):
            toolbar.addWidget(self._actions.button(name))
        toolbar.addWidget(self.zoom_label)
        for name in ("zoom_in", "zoom_fit", "zoom_selection", "auto_layout", "minimap"):
            toolbar.addWidget(self._actions.button(name))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(toolbar)
        layout.addWidget(self.banner)
        layout.addWidget(self.hint)
        layout.addWidget(self.view, 1)

        self.selector.activated.connect(lambda _: self.set_pipeline(self.selector.currentText()))
        self.scene.selectionChanged.connect(self._selection_changed)
        self.view.typeDropped.connect(self._dropped)
        self.view.moveRequested.connect(self.move_step)
        self.view.rewireRequested.connect(self._rewire_requested)
        self.view.toggleRequested.connect(self.toggle_collapsed)
        self.view.contextMenuRequested.connect(self._context_menu)
        self.view.hintRequested.connect(self.show_hint)
        self.view.viewChanged.connect(self._view_changed)
        self.view.userNavigated.connect(self._stop_auto_fit)
        self.view.installEventFilter(self)
        self.view.viewport().installEventFilter(self)
        if document is not None:
            self.set_document(document)

    # ------------------------------------------------------------------ public API

    def document(self) -> PipelineDocument | None:
        return self._document

    def set_document(self, document: PipelineDocument | None) -> None:
        if self._document is not None:
            self._document.outlineChanged.disconnect(self._outline_changed)
        self._document = document
        self._shown = None
        self._signature = None
        self._pipeline = None
        self._collapsed.clear()
        self._views.clear()
        if document is not None:
            document.outlineChanged.connect(self._outline_changed)
            if self._catalog.infos:
                document.set_shapes(self._catalog.shapes)
        self._fit_pending = True
        self.rebuild()

    def current_pipeline(self) -> str | None:
        return self._pipeline

    def set_pipeline(self, name: str) -> None:
        """Show pipeline ``name`` (the view of each pipeline is remembered)."""
        if name == self._pipeline or self._shown is None or name not in self._shown.pipelines:
            return
        if self._pipeline is not None:
            self._views[self._pipeline] = self._view_state()
        self._pipeline = name
        self.rebuild(force=True)

    def set_type_infos(self, infos: Iterable[StepTypeInfo]) -> None:
        """Step types from the service: categories, composite slots, step references, examples."""
        self._catalog = TypeCatalog(infos)
        if self._document is not None and self._catalog.infos:
            self._document.set_shapes(self._catalog.shapes)  # re-parses: plugin composites too
        self.rebuild(force=True)

    def set_diagnostics(self, diagnostics: Iterable[DiagnosticInfo]) -> None:
        """Validation results: each is drawn on the innermost step whose text holds its line
        (on the trigger node for pipeline-level lines). Others files' diagnostics are ignored."""
        self._diagnostics = [d for d in diagnostics if self._is_mine(d)]
        self.scene.set_problems(self._problems())
        self.minimap.refresh()

    def select_step(self, pipeline: str, step_id: str) -> bool:
        """Select (and bring into view) a step; no ``stepSelected`` echo. False if it is not there."""
        if self._shown is None or pipeline not in self._shown.pipelines:
            return False
        if pipeline != self._pipeline:
            self.set_pipeline(pipeline)
        p, lay = self.scene.pipeline, self.scene.layout
        if p is None or lay is None or step_id not in p.nodes:
            return False
        shown = visible_ancestor(step_id, p, lay.boxes)
        item = self.scene.steps.get(shown) if shown else None
        if item is None:
            return False
        self._quiet += 1
        try:
            self.scene.clearSelection()
            item.setSelected(True)
        finally:
            self._quiet -= 1
        self._current_id = item.step_id
        rect = item.sceneBoundingRect()
        if not self.view.visible_scene_rect().contains(rect):
            self.view.centerOn(rect.center())
        return True

    def selected_steps(self) -> list[str]:
        return self.scene.selected_ids()

    # -- the debugger's marks

    def set_breakpoints(self, pipeline: str, breakpoints: Mapping[str, tuple[bool, str | None]]) -> None:
        """All the breakpoints of ``pipeline``: step id -> (enabled, condition). Drawn as a dot at
        the node's left edge (hollow when disabled, with a "?" when conditional); kept across
        rebuilds and pipeline switches. Ids not in the graph are kept but not drawn."""
        if self._marks.set_breakpoints(pipeline, breakpoints) and pipeline == self._pipeline:
            self._apply_marks()

    def breakpoints(self, pipeline: str) -> BreakpointMarks:
        return self._marks.breakpoints(pipeline)

    def set_paused(self, pipeline: str, step_id: str | None) -> bool:
        """Highlight the step of ``pipeline`` where an execution is paused (None clears that
        pipeline's). When the pause moved, the step is revealed (its pipeline shown, collapsed
        composites around it expanded) and selected without ``stepSelected``, centred only when
        off-screen. False when the step is not in the shown graph (the mark is kept for when
        it is)."""
        before = self._marks.set_paused(pipeline, step_id)
        if not step_id:
            if before is not None and pipeline == self._pipeline:
                self._apply_marks()
            return False
        if step_id == before:
            return self._is_drawn(pipeline, step_id)
        return self.reveal_paused(pipeline)

    def paused_step(self, pipeline: str) -> str | None:
        return self._marks.paused(pipeline)

    def reveal_paused(self, pipeline: str | None = None) -> bool:
        """Show, select and (when off-screen) centre the paused step of ``pipeline`` (default:
        the shown pipeline) again."""
        pipeline = pipeline or self._pipeline
        step_id = self._marks.paused(pipeline) if pipeline else None
        if pipeline is None or step_id is None:
            return False
        if self._shown is None or pipeline not in self._shown.pipelines:
            return False
        if pipeline != self._pipeline:
            self.set_pipeline(pipeline)  # the rebuild draws the marks
        p = self.scene.pipeline
        node = p.nodes.get(step_id) if p is not None else None
        if p is None or node is None:
            self._apply_marks()
            return False
        around: set[str] = set()
        parent = node.parent
        while parent is not None and parent in p.nodes:
            around.add(parent)
            parent = p.nodes[parent].parent
        collapsed = self._collapsed.get(pipeline, set())
        if collapsed & around:
            collapsed -= around
            self.rebuild(force=True)
        else:
            self._apply_marks()
        return self.select_step(pipeline, step_id)

    def request_breakpoint(self, step_id: str, condition: str = "") -> None:
        """Ask for a breakpoint on ``step_id`` of the shown pipeline to be toggled (with a jq
        condition when given): emits ``breakpointToggleRequested``."""
        if self._pipeline is None or not step_id:
            return
        self.breakpointToggleRequested.emit(self._pipeline, step_id, condition.strip())

    def ask_breakpoint_condition(self, step_id: str) -> None:
        """Ask for a jq condition (the current one filled in) and request that breakpoint."""
        if self._pipeline is None or not step_id:
            return
        current = (self._marks.breakpoint(self._pipeline, step_id) or (True, ""))[1]
        p = self.scene.pipeline
        name = p.nodes[step_id].name if p is not None and step_id in p.nodes else step_id
        text = ask_condition(self, name, current)
        if text is not None:
            self.request_breakpoint(step_id, text)

    def toggle_current_breakpoint(self) -> None:
        """Toggle the breakpoint of the current step (F9), or say how to choose one."""
        ids = self.scene.selected_ids()
        current = self._current_id if self._current_id in ids else (ids[0] if ids else "")
        if not current:
            self.show_hint("Select a step to toggle its breakpoint (F9).")
            return
        self.request_breakpoint(current)

    def _is_drawn(self, pipeline: str, step_id: str) -> bool:
        """Whether ``step_id`` is marked in the graph: on its node or its collapsed composite."""
        p = self.scene.pipeline
        return pipeline == self._pipeline and p is not None and step_id in p.nodes

    def _apply_marks(self, refresh_minimap: bool = True) -> None:
        p, lay = self.scene.pipeline, self.scene.layout
        if p is None or lay is None:
            return
        if self.scene.set_marks(self._marks.marks_for(p, lay)) and refresh_minimap:
            self.minimap.refresh()

    def action(self, name: str) -> QAction:
        """The pane's actions: zoom_in, zoom_out, zoom_fit, zoom_selection, auto_layout, minimap,
        delete, duplicate, breakpoint (F9; shortcuts work while the graph has focus)."""
        return self._actions[name]

    @property
    def catalog(self) -> TypeCatalog:
        """What the pane knows of the step types (from :meth:`set_type_infos`)."""
        return self._catalog

    def zoom_to_fit(self) -> None:
        if self.view.viewport().width() < 10:
            self._fit_pending = True
            return
        self.view.fit_rect(self.scene.items_bounds())

    def zoom_to_selection(self) -> None:
        self._auto_fit = False
        items = self.scene.selectedItems()
        if not items:
            self.zoom_to_fit()
            return
        rect = items[0].sceneBoundingRect()
        for item in items[1:]:
            rect = rect.united(item.sceneBoundingRect())
        self.view.fit_rect(rect, max_zoom=1.5)

    def auto_layout(self) -> None:
        """Lay the pipeline out again from scratch and show all of it."""
        self.rebuild(force=True)
        self.zoom_to_fit()

    def collapsed_steps(self) -> set[str]:
        return set(self._collapsed.get(self._pipeline or "", set()))

    def set_collapsed(self, step_id: str, collapsed: bool) -> None:
        if self._pipeline is None:
            return
        states = self._collapsed.setdefault(self._pipeline, set())
        if (step_id in states) == collapsed:
            return
        before = self.scene.steps.get(step_id)
        anchor = self.view.mapFromScene(before.scenePos()) if before is not None else None
        if collapsed:
            states.add(step_id)
        else:
            states.discard(step_id)
        self.rebuild(force=True)
        after = self.scene.steps.get(step_id)
        if anchor is not None and after is not None:  # keep the composite where it was on screen
            delta = self.view.mapFromScene(after.scenePos()) - anchor
            self.view.horizontalScrollBar().setValue(self.view.horizontalScrollBar().value() + delta.x())
            self.view.verticalScrollBar().setValue(self.view.verticalScrollBar().value() + delta.y())

    def toggle_collapsed(self, step_id: str) -> None:
        self.set_collapsed(step_id, step_id not in self.collapsed_steps())

    def show_hint(self, text: str) -> None:
        self.hint.setText(text)
        self.hint.show()
        self._hint_timer.start()

    # -- edits (each one undo command on the document's stack)

    def insert_type(
        self, type_name: str, list_path: YamlPath | None = None, index: int | None = None
    ) -> YamlPath | None:
        """Insert a step of ``type_name`` (with the type's example config) at ``list_path[index]``;
        by default after the selected step, or at the end of the pipeline."""

        def run(doc: PipelineDocument, p: PipelineOutline) -> YamlPath:
            where, at = list_path, index
            if where is None:
                where, at = self._after_current(p)
            step = self._catalog.new_step(type_name, (n.name for n in p.nodes.values()))
            return doc.insert_step(where, at if at is not None else 0, step)

        return self._edit(run)

    def move_step(self, step_id: str, list_path: YamlPath, index: int) -> YamlPath | None:
        """Move a step to ``list_path`` at ``index`` (index in the list before the move)."""

        def run(doc: PipelineDocument, p: PipelineOutline) -> YamlPath | None:
            node = self._node(p, step_id)
            if tuple(list_path[: len(node.path)]) == node.path:
                raise EditError(f"{node.name} cannot be moved into itself.")
            return doc.move_step(node.path, tuple(list_path), index)

        return self._edit(run)

    def delete_steps(self, step_ids: Iterable[str]) -> None:
        def run(doc: PipelineDocument, p: PipelineOutline) -> None:
            nodes = [p.nodes[i] for i in step_ids if i in p.nodes]
            chosen = {n.id for n in nodes}
            nodes = [n for n in nodes if not _ancestor_in(n, p, chosen)]  # a composite takes its children
            nodes.sort(key=lambda n: _path_key(n.path), reverse=True)  # later first: paths stay valid
            if not nodes:
                return
            stack = doc.undo_stack
            if len(nodes) > 1:
                stack.beginMacro(f"Delete {len(nodes)} steps")
            try:
                for node in nodes:
                    if isinstance(node.path[-1], int):
                        doc.delete_step(node.path)
                    else:  # a compensation (or a single sub-step) is a mapping value
                        doc.delete_value(node.path)
            finally:
                if len(nodes) > 1:
                    stack.endMacro()

        self._edit(run, select=False)

    def delete_selected(self) -> None:
        self.delete_steps(self.scene.selected_ids())

    def duplicate_selected(self) -> None:
        def run(doc: PipelineDocument, p: PipelineOutline) -> YamlPath | None:
            nodes = [p.nodes[i] for i in self.scene.selected_ids() if i in p.nodes]
            nodes = [n for n in nodes if isinstance(n.path[-1], int)]
            nodes.sort(key=lambda n: _path_key(n.path), reverse=True)
            if not nodes:
                return None
            stack = doc.undo_stack
            if len(nodes) > 1:
                stack.beginMacro(f"Duplicate {len(nodes)} steps")
            try:
                paths = [doc.duplicate_step(n.path) for n in nodes]
            finally:
                if len(nodes) > 1:
                    stack.endMacro()
            return paths[0] if len(paths) == 1 else None

        self._edit(run)

    def rewire(self, source_id: str, label: str, target_id: str) -> bool:
        """Point the reference ``label`` of ``source_id`` (an edge's label: a route key, "default",
        "then", "else", "merge_step", "on_enabled", ...) at ``target_id``. False if refused."""
        done = False

        def run(doc: PipelineDocument, p: PipelineOutline) -> None:
            nonlocal done
            source, target = self._node(p, source_id), self._node(p, target_id)
            if not self.scene.can_reach(source_id, target_id):
                raise EditError(
                    f"{source.name} cannot route to {target.name}: a step can name its "
                    f"siblings and the pipeline's top-level steps."
                )
            slots = [s for s in ref_slots(source, self._catalog.step_refs(source.type)) if s.label == label]
            if not slots:
                raise EditError(f"{source.name} ({source.type}) has no step reference '{label}'.")
            slot = slots[0]
            if slot.value == target.name:
                return
            doc.set_value((*source.path, "config", *slot.config_path), target.name)
            done = True

        self._edit(run, select=False)
        return done

    def add_compensation(self, step_id: str, type_name: str) -> YamlPath | None:
        """Give ``step_id`` a ``compensate`` step of ``type_name``."""

        def run(doc: PipelineDocument, p: PipelineOutline) -> YamlPath:
            node = self._node(p, step_id)
            taken = {n.name for n in p.nodes.values()}
            step = self._catalog.new_step(type_name, taken)
            name, n = f"undo-{node.name}", 2
            while name in taken:
                name, n = f"undo-{node.name}-{n}", n + 1
            step["name"] = name
            path = (*node.path, "compensate")
            doc.set_value(path, step)
            return path

        return self._edit(run)

    def context_menu(self, step_id: str = "") -> QMenu:
        """The menu for ``step_id`` (the background's when ""): insert, duplicate, delete, ..."""
        return self._actions.context_menu(step_id)

    # ------------------------------------------------------------------ rebuilding

    def rebuild(self, force: bool = False) -> None:
        """Draw the document's current outline (or keep the last good graph when it has an error)."""
        doc = self._document
        if doc is None:
            self._shown = None
            self.scene.show_message("No document")
            self.selector.clear()
            self.selector.hide()
            return
        outline = doc.outline
        if not outline.ok:
            self._show_error(outline)
            if self._shown is not None:
                return
            outline = doc.last_good
        else:
            self.banner.hide()
            self.view.editable = True
        self._shown = outline
        self._sync_selector(outline)
        name = self._pipeline
        if name is None:
            self.scene.show_message("No pipelines in this file yet")
            self._signature = None
            self.view.forget_items()
            self.minimap.refresh()
            return
        p = outline.pipelines[name]
        layout = layout_pipeline(p, self._catalog.shapes, self._collapsed.get(name, ()))
        signature = self._signature_of(p, layout)
        if not force and signature == self._signature and self.scene.pipeline is not None:
            # Same shapes in the same places (typing in a config value, a rename): keep the items,
            # take the fresh YAML paths and relabel what changed.
            self.scene.relabel(p, self._catalog)
            self.scene.set_problems(self._problems())
            return
        same_pipeline = self.scene.pipeline is not None and self.scene.pipeline.name == name
        state = self._view_state() if same_pipeline else self._views.get(name)
        selected = set(self.scene.selected_ids()) if same_pipeline else set()
        self._quiet += 1
        try:
            self.view.forget_items()
            self.scene.build(p, layout, self._catalog, self._problems_for(p, layout))
            self._apply_marks(refresh_minimap=False)  # refreshed below
            for step_id in selected:
                item = self.scene.steps.get(step_id)
                if item is not None:
                    item.setSelected(True)
        finally:
            self._quiet -= 1
        self._signature = signature
        if state is not None and not self._fit_pending:
            self._restore_view(state)
        else:
            self._fit_pending = True
            self._fit_if_pending()
        self.minimap.refresh()

    def _signature_of(self, p: PipelineOutline, layout: GraphLayout) -> object:
        hidden = tuple(count_steps(p.nodes[g]) for g, collapsed in layout.groups.items() if collapsed)
        return (p.name, layout, hidden)

    def _outline_changed(self) -> None:
        self.rebuild()

    def _show_error(self, outline: Outline) -> None:
        line = outline.error_line
        link = f" &nbsp;<a href='line:{line}'>Go to line {line}</a>" if line else ""
        kept = " The graph shows the last version that parsed; fix the text." if self._shown else ""
        self.banner.setText(f"<b>YAML error</b> — {_html(outline.error or '')}.{kept}{link}")
        self.banner.show()
        self.view.editable = False
        self.view.cancel_gesture()

    def _sync_selector(self, outline: Outline) -> None:
        names = list(outline.pipelines)
        if [self.selector.itemText(i) for i in range(self.selector.count())] != names:
            self.selector.blockSignals(True)
            self.selector.clear()
            self.selector.addItems(names)
            self.selector.blockSignals(False)
        if self._pipeline not in outline.pipelines:
            if self._pipeline is not None:
                self._views.pop(self._pipeline, None)
            self._pipeline = names[0] if names else None
            self._fit_pending = True
        if self._pipeline is not None:
            self.selector.setCurrentIndex(names.index(self._pipeline))
        self.selector.setVisible(len(names) > 1)

    # -- the viewport

    def _view_state(self) -> ViewState:
        return self.view.zoom(), self.view.mapToScene(self.view.viewport().rect().center())

    def _restore_view(self, state: ViewState) -> None:
        zoom, centre = state
        self.view.setTransform(QTransform.fromScale(zoom, zoom))
        self.view.centerOn(centre)
        self.view.viewChanged.emit()

    def _fit_if_pending(self) -> None:
        if self._fit_pending and self.view.viewport().width() >= 10 and self.view.viewport().height() >= 10:
            self._fit_pending = False
            self._auto_fit = True
            self._fit_all()

    def _fit_all(self) -> None:
        """Show the whole pipeline (at most 100 %), and from its top when it is too tall for that."""
        view = self.view
        bounds = self.scene.items_bounds()
        view.fit_rect(bounds, max_zoom=1.0)
        if not view.visible_scene_rect().contains(bounds):  # clamped at the minimum zoom
            view.centerOn(bounds.center().x(), bounds.top() + view.visible_scene_rect().height() / 2 - 20)

    def _stop_auto_fit(self) -> None:
        self._auto_fit = False

    def zoom_step(self, factor: float) -> None:
        """Zoom by ``factor`` (the toolbar's buttons); the view stops fitting itself on resize."""
        self._auto_fit = False
        self.view.zoom_by(factor)

    def _view_changed(self) -> None:
        self.zoom_label.setText(f"{round(self.view.zoom() * 100)}%")
        self.minimap.update()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.view and is_breakpoint_key(event):
            event.accept()  # an accepted ShortcutOverride: the key comes here, not to a window shortcut
            if event.type() == QEvent.Type.KeyPress and not event.isAutoRepeat():  # type: ignore[attr-defined]
                self.toggle_current_breakpoint()
            return True
        if event.type() in (QEvent.Type.Resize, QEvent.Type.Show):
            if watched is self.view.viewport():
                if self._auto_fit and not self._fit_pending:
                    self._fit_all()
                self._fit_if_pending()
            self._place_minimap()
        return False

    def _place_minimap(self) -> None:
        viewport = self.view.viewport()
        size = self.minimap.size()
        offset = viewport.geometry().topLeft()
        self.minimap.move(
            offset.x() + viewport.width() - size.width() - 10,
            offset.y() + viewport.height() - size.height() - 10,
        )
        self.minimap.raise_()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.StyleChange):
            self.scene.set_style(GraphStyle(self.palette()))
            self.minimap.refresh()
        super().changeEvent(event)

    # -- diagnostics

    def _is_mine(self, diagnostic: DiagnosticInfo) -> bool:
        doc = self._document
        if doc is None or doc.path is None or not diagnostic.file:
            return True
        theirs, mine = Path(diagnostic.file), doc.path
        try:
            if theirs.is_absolute():
                return theirs.resolve() == mine.resolve()
        except OSError:
            return False
        return mine.parts[-len(theirs.parts) :] == theirs.parts

    def _problems(self) -> dict[str, Problems]:
        p, lay = self.scene.pipeline, self.scene.layout
        return self._problems_for(p, lay) if p is not None and lay is not None else {}

    def _problems_for(self, p: PipelineOutline, layout: GraphLayout) -> dict[str, Problems]:
        if not self._diagnostics or self._shown is None:
            return {}
        starts = sorted((q.line, q.name) for q in self._shown.pipelines.values())
        out: dict[str, Problems] = {}
        for d in self._diagnostics:
            owner = None
            for line, name in starts:
                if line <= d.line:
                    owner = name
            if owner != p.name:
                continue
            node = p.node_at_line(d.line)
            target = visible_ancestor(node.id, p, layout.boxes) if node is not None else START
            if target is None or target not in layout.boxes:
                continue
            out.setdefault(target, []).append((d.severity, d.message))
        return out

    # ------------------------------------------------------------------ selection

    def _selection_changed(self) -> None:
        if self._quiet or self._pipeline is None:
            return
        ids = self.scene.selected_ids()
        current = self.view_current() if self.view_current() in ids else (ids[0] if ids else "")
        self._current_id = current
        self.stepSelected.emit(self._pipeline, current)

    def view_current(self) -> str:
        item = self.view._press_item  # the node the user just pressed, when there is one
        return item.step_id if item is not None and item.scene() is self.scene else self._current_id

    def _select_path(self, path: YamlPath) -> None:
        """Select the step at ``path`` after an edit and tell listeners (the user made it)."""
        doc = self._document
        if doc is None or self._pipeline is None:
            return
        p = doc.outline.pipelines.get(self._pipeline)
        node = next((n for n in p.nodes.values() if n.path == tuple(path)), None) if p else None
        if node is None:
            return
        if self.select_step(self._pipeline, node.id):
            self.stepSelected.emit(self._pipeline, self._current_id)

    # ------------------------------------------------------------------ edit plumbing

    def _edit(self, fn: Callable[[PipelineDocument, PipelineOutline], Any], select: bool = True) -> Any:
        doc = self._document
        if doc is None or self._pipeline is None:
            return None
        doc.flush_outline()
        if not doc.outline.ok:
            self.show_hint("The YAML has an error: fix it in the text before editing the graph.")
            return None
        p = doc.outline.pipelines.get(self._pipeline)
        if p is None:
            return None
        try:
            result = fn(doc, p)
        except EditError as exc:
            self.show_hint(str(exc))
            return None
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            self.show_hint(f"The graph is out of date with the text ({exc}); try again.")
            self.rebuild(force=True)
            return None
        doc.flush_outline()
        if select and isinstance(result, tuple):
            self._select_path(result)
        return result

    def _node(self, p: PipelineOutline, step_id: str) -> StepNode:
        node = p.nodes.get(step_id)
        if node is None:
            raise EditError(f"The step {step_id} is no longer in the pipeline.")
        return node

    def _after_current(self, p: PipelineOutline) -> tuple[YamlPath, int]:
        node = p.nodes.get(self._current_id) if self._current_id in self.scene.selected_ids() else None
        if node is not None and isinstance(node.path[-1], int):
            return node.path[:-1], int(node.path[-1]) + 1
        end = int(p.steps[-1].path[-1]) + 1 if p.steps else 0
        return (*p.path, "steps"), end

    def _dropped(self, type_name: str, list_path: YamlPath, index: int) -> None:
        self.insert_type(type_name, tuple(list_path), index)
        self.view.setFocus()

    def _rewire_requested(self, source_id: str, label: str, target_id: str, global_pos: QPoint) -> None:
        if label:
            self.rewire(source_id, label, target_id)
            return
        p = self.scene.pipeline
        source = p.nodes.get(source_id) if p is not None else None
        if source is None:
            return
        slots = ref_slots(source, self._catalog.step_refs(source.type))
        if not slots:
            self.show_hint(f"{source.name} runs the next step in the list; drag it to reorder instead.")
            return
        if len(slots) == 1:
            self.rewire(source_id, slots[0].label, target_id)
            return
        self._actions.rewire_menu(p, source_id, slots, target_id).popup(global_pos)

    def _context_menu(self, step_id: str, global_pos: QPoint) -> None:
        self.context_menu(step_id).popup(global_pos)


def _ancestor_in(node: StepNode, p: PipelineOutline, ids: set[str]) -> bool:
    parent = node.parent
    while parent is not None:
        if parent in ids:
            return True
        parent = p.nodes[parent].parent if parent in p.nodes else None
    return False


def _path_key(path: YamlPath) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, part) if isinstance(part, int) else (1, part) for part in path)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
