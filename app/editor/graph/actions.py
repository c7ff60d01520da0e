"""The graph pane's actions (toolbar buttons; shortcuts while the graph has focus) and its menus.

Every entry calls the pane's public operations (insert, delete, duplicate, rewire, breakpoints,
zoom), so a menu does exactly what the same gesture or shortcut does.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QAction, QIcon, QKeyEvent, QKeySequence
from PySide6.QtWidgets import QMenu, QSizePolicy, QToolButton

from app.editor.graph.catalog import RefSlot, ref_slots
from app.editor.outline import PipelineOutline, StepNode, YamlPath, scope_names

if TYPE_CHECKING:
    from app.editor.graph.pane import GraphPane

MAX_MENU_TARGETS = 60  # longer lists of steps to route to are left to dragging
BREAKPOINT_KEY = Qt.Key.Key_F9


def icon(name: str) -> QIcon:
    try:
        from app.icons import icon
    except ImportError:
        return QIcon()
    return icon(name)


def is_breakpoint_key(event: QEvent) -> bool:
    return (
        isinstance(event, QKeyEvent)
        and event.key() == BREAKPOINT_KEY
        and event.modifiers() == Qt.KeyboardModifier.NoModifier
    )


class GraphActions:
    """The actions of one pane (by name) and the menus built from them."""

    def __init__(self, pane: GraphPane) -> None:
        self.pane = pane
        self.actions: dict[str, QAction] = {}
        self._make_actions()

    def __getitem__(self, name: str) -> QAction:
        return self.actions[name]

    # -- actions and buttons

    def _make_actions(self) -> None:
        pane = self.pane
        specs: list[tuple[str, str, str, list[Any], Callable[[], object]]] = [
            (
                "zoom_in",
                "Zoom in",
                "zoom-in",
                [QKeySequence.StandardKey.ZoomIn, "Ctrl+="],
                partial(pane.zoom_step, 1.25),
            ),
            (
                "zoom_out",
                "Zoom out",
                "zoom-out",
                [QKeySequence.StandardKey.ZoomOut],
                partial(pane.zoom_step, 0.8),
            ),
            ("zoom_fit", "Zoom to fit", "zoom-fit", ["F"], pane.zoom_to_fit),
            ("zoom_selection", "Zoom to selection", "search", ["Shift+F"], pane.zoom_to_selection),
            ("auto_layout", "Auto layout", "layout", ["Ctrl+Shift+L"], pane.auto_layout),
            (
                "delete",
                "Delete step",
                "delete",
                [QKeySequence.StandardKey.Delete, "Backspace"],
                pane.delete_selected,
            ),
            ("duplicate", "Duplicate step", "duplicate", ["Ctrl+D"], pane.duplicate_selected),
        ]
        for name, text, icon_name, keys, slot in specs:
            act = QAction(icon(icon_name), text, pane)
            act.setObjectName(f"graphAction_{name}")
            act.setShortcuts([QKeySequence(k) for k in keys])
            act.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)  # only while the graph has focus
            shortcut = act.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            act.setToolTip(f"{text} ({shortcut})" if shortcut else text)
            act.triggered.connect(slot)
            pane.view.addAction(act)
            self.actions[name] = act
        # F9 reaches the pane as a key press (see GraphPane.eventFilter), not as this action's
        # shortcut: a window-wide F9 (the main window's "Toggle Breakpoint") would make it ambiguous.
        breakpoint = QAction(icon("breakpoint"), "Toggle breakpoint", pane)
        breakpoint.setObjectName("graphAction_breakpoint")
        breakpoint.setShortcut(QKeySequence(BREAKPOINT_KEY))
        breakpoint.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        breakpoint.setToolTip("Toggle the breakpoint of the current step (F9)")
        breakpoint.triggered.connect(pane.toggle_current_breakpoint)
        self.actions["breakpoint"] = breakpoint
        minimap = QAction("Minimap", pane)
        minimap.setObjectName("graphAction_minimap")
        minimap.setCheckable(True)
        minimap.setChecked(True)
        minimap.setToolTip("Show the overview")
        minimap.toggled.connect(pane.minimap.setVisible)
        self.actions["minimap"] = minimap

    def button(self, name: str) -> QToolButton:
        button = QToolButton()
        button.setObjectName(f"graph_{name}")
        button.setDefaultAction(self.actions[name])
        button.setAutoRaise(True)
        button.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        if self.actions[name].icon().isNull():
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        return button

    # -- menus

    def context_menu(self, step_id: str = "") -> QMenu:
        """The menu for ``step_id`` (the background's when ""): insert, duplicate, delete, ..."""
        pane = self.pane
        menu = QMenu(pane)
        menu.setObjectName("graphContextMenu")
        scene = pane.scene
        p = scene.pipeline
        node = p.nodes.get(step_id) if p is not None and step_id else None
        editable = pane.view.editable and p is not None
        if node is not None and isinstance(node.path[-1], int):
            list_path, index = node.path[:-1], int(node.path[-1])
            self._types_menu(menu, "Insert before", self._inserter(list_path, index), editable)
            self._types_menu(menu, "Insert after", self._inserter(list_path, index + 1), editable)
        if node is not None and scene.layout is not None:
            for slot in scene.layout.slots:
                if slot.owner == node.id and slot.list_path is not None:
                    end = slot.indexes[-1] + 1 if slot.indexes else 0
                    title = f"Add to {slot.label or slot.slot}"
                    self._types_menu(menu, title, self._inserter(slot.list_path, end), editable)
            if node.compensate is None and node.slot != "compensate":
                self._types_menu(menu, "Add compensation", partial(pane.add_compensation, node.id), editable)
        if node is not None and p is not None:
            self._wiring_menu(menu, p, node, editable)
        if node is None and p is not None:
            end = len(p.steps) and int(p.steps[-1].path[-1]) + 1
            self._types_menu(menu, "Add step at the end", self._inserter((*p.path, "steps"), end), editable)
        if node is not None:
            menu.addSeparator()
            self._breakpoint_menu(menu, node.id)
            menu.addSeparator()
            for name in ("duplicate", "delete"):
                menu.addAction(self.actions[name])
            if node.id in (scene.layout.groups if scene.layout else {}):
                collapsed = node.id in pane.collapsed_steps()
                toggle = menu.addAction("Expand" if collapsed else "Collapse")
                toggle.triggered.connect(lambda: pane.toggle_collapsed(node.id))
            menu.addAction(self.actions["zoom_selection"])
        else:
            menu.addSeparator()
            menu.addAction(self.actions["auto_layout"])
            menu.addAction(self.actions["zoom_fit"])
        return menu

    def rewire_menu(
        self, p: PipelineOutline | None, source_id: str, slots: list[RefSlot], target_id: str
    ) -> QMenu:
        """Which of ``source_id``'s step references a dragged edge to ``target_id`` sets."""
        menu = QMenu(self.pane)
        menu.setObjectName("graphRewireMenu")
        target = p.nodes[target_id].name if p is not None and target_id in p.nodes else target_id
        for slot in slots:
            now = f" (now {slot.value})" if slot.value is not None else ""
            act = menu.addAction(f"{'.'.join(map(str, slot.config_path))} → {target}{now}")
            act.triggered.connect(partial(self.pane.rewire, source_id, slot.label, target_id))
        return menu

    def _inserter(self, list_path: YamlPath, index: int) -> Callable[[str], Any]:
        return lambda type_name: self.pane.insert_type(type_name, list_path, index)

    def _breakpoint_menu(self, menu: QMenu, step_id: str) -> None:
        pane = self.pane
        current = pane.breakpoints(pane.current_pipeline() or "").get(step_id)
        toggle = menu.addAction(icon("breakpoint"), "Toggle breakpoint")
        toggle.setObjectName("graphMenu_toggleBreakpoint")
        toggle.setShortcut(self.actions["breakpoint"].shortcut())  # shown in the menu
        toggle.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        toggle.setCheckable(True)
        toggle.setChecked(current is not None)
        toggle.triggered.connect(partial(pane.request_breakpoint, step_id, ""))
        has_condition = current is not None and bool(current[1])
        title = "Edit breakpoint condition…" if has_condition else "Breakpoint with condition…"
        ask = menu.addAction(title)
        ask.setObjectName("graphMenu_conditionalBreakpoint")
        ask.triggered.connect(partial(pane.ask_breakpoint_condition, step_id))

    def _wiring_menu(self, menu: QMenu, p: PipelineOutline, node: StepNode, enabled: bool) -> None:
        """ "Route <ref> to ▸ step" for each step reference of the type (when the choice is short)."""
        slots = ref_slots(node, self.pane.catalog.step_refs(node.type))
        scope = [s for s in scope_names(p, node).values() if s != node.id]
        if not slots or len(scope) > MAX_MENU_TARGETS:
            return
        for slot in slots:
            sub = menu.addMenu(f"Route {'.'.join(map(str, slot.config_path))} to")
            sub.setEnabled(enabled)
            for target_id in scope:
                target = p.nodes[target_id]
                act = sub.addAction(target.name)
                act.setCheckable(True)
                act.setChecked(target.name == slot.value)
                act.triggered.connect(partial(self.pane.rewire, node.id, slot.label, target_id))

    def _types_menu(self, menu: QMenu, title: str, run: Callable[[str], Any], enabled: bool) -> None:
        sub = menu.addMenu(title)
        groups = self.pane.catalog.by_category()
        sub.setEnabled(enabled and bool(groups))
        for category, names in groups.items():
            cat = sub.addMenu(category)
            try:
                from app.icons import step_icon

                cat.setIcon(step_icon(category))
            except ImportError:
                pass
            for name in names:
                cat.addAction(name).triggered.connect(partial(run, name))
