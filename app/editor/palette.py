"""The step palette: every registered step type, grouped by category, searchable and draggable.

The list comes from the service's ``step_types()``, so plugin types appear exactly like the
built-in ones. A type is dragged as MIME ``application/x-wfstudio-step-type`` (its name in
UTF-8), which the graph accepts; double-click or Enter asks for an insert instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QEvent, QMimeData, QObject, Qt, Signal
from PySide6.QtGui import QFont, QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QLineEdit,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.icons import icon, step_icon
from engine.service.models import StepTypeInfo

STEP_TYPE_MIME = "application/x-wfstudio-step-type"
TYPE_ROLE = Qt.ItemDataRole.UserRole
SEARCH_ROLE = Qt.ItemDataRole.UserRole + 1

# Categories in the order a pipeline usually needs them; others follow alphabetically.
CATEGORY_ORDER = ("data", "control", "flow", "http", "database", "cache", "messaging", "resilience",
                  "flags", "security", "testing")

CATEGORY_TITLES = {"http": "HTTP"}


def short_name(type_name: str) -> str:
    return type_name.removeprefix("step.")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _TypeTree(QTreeWidget):
    """The tree; drags carry the type name in the palette's MIME type."""

    def mimeTypes(self) -> list[str]:  # Qt override
        return [STEP_TYPE_MIME, "text/plain"]

    def mimeData(self, items: Sequence[QTreeWidgetItem]) -> QMimeData:  # Qt override
        data = QMimeData()
        names = [item.data(0, TYPE_ROLE) for item in items if item.data(0, TYPE_ROLE)]
        if names:
            data.setData(STEP_TYPE_MIME, names[0].encode("utf-8"))
            data.setText(names[0])
        return data

    def supportedDropActions(self) -> Qt.DropAction:  # Qt override
        return Qt.DropAction.CopyAction


class StepPalette(QWidget):
    """Step types by category with a search box (objectName "stepPalette")."""

    insertRequested = Signal(str)  # a type name, on double-click or Enter

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("stepPalette")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        self.search = QLineEdit()
        self.search.setObjectName("paletteSearch")
        self.search.setPlaceholderText("Search step types")
        self.search.setClearButtonEnabled(True)
        self.search.addAction(icon("search"), QLineEdit.ActionPosition.LeadingPosition)
        self.search.textChanged.connect(self._filter)
        self.search.returnPressed.connect(self._insert_first)
        self.search.installEventFilter(self)
        layout.addWidget(self.search)
        self.tree = _TypeTree()
        self.tree.setObjectName("paletteTree")
        self.tree.setHeaderHidden(True)
        self.tree.setRootIsDecorated(True)
        self.tree.setDragEnabled(True)
        self.tree.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.tree.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.itemActivated.connect(self._activated)
        layout.addWidget(self.tree, 1)
        self.empty = QLabel("No step type matches.")
        self.empty.setObjectName("paletteEmpty")
        self.empty.setEnabled(False)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.hide()
        layout.addWidget(self.empty)
        self._infos: list[StepTypeInfo] = []

    # -- public API ------------------------------------------------------------------------
    def set_type_infos(self, infos: list[StepTypeInfo]) -> None:
        """Show these types (the service's ``step_types()``); keeps the current search."""
        self._infos = list(infos)
        self.tree.clear()
        groups: dict[str, list[StepTypeInfo]] = {}
        for info in infos:
            groups.setdefault(info.category or "other", []).append(info)
        rank = {name: n for n, name in enumerate(CATEGORY_ORDER)}
        bold = QFont(self.tree.font())
        bold.setBold(True)
        for category in sorted(groups, key=lambda c: (rank.get(c, len(rank)), c)):
            group = QTreeWidgetItem([CATEGORY_TITLES.get(category, category.capitalize())])
            group.setIcon(0, step_icon(category))
            group.setFont(0, bold)
            group.setData(0, SEARCH_ROLE, category.lower())
            group.setFlags(Qt.ItemFlag.ItemIsEnabled)
            group.setToolTip(0, f"{len(groups[category])} step types")
            self.tree.addTopLevelItem(group)
            for info in sorted(groups[category], key=lambda i: i.name):
                group.addChild(self._item(info))
        self.tree.expandAll()
        self._filter(self.search.text())

    def type_infos(self) -> list[StepTypeInfo]:
        return list(self._infos)

    def categories(self) -> list[str]:
        """The category groups, in display order (visible or not)."""
        tree = self.tree
        return [str(tree.topLevelItem(i).data(0, SEARCH_ROLE)) for i in range(tree.topLevelItemCount())]

    def visible_types(self) -> list[str]:
        """Type names the current search shows, in display order."""
        names = []
        for i in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(i)
            for j in range(group.childCount()):
                child = group.child(j)
                if not child.isHidden() and not group.isHidden():
                    names.append(str(child.data(0, TYPE_ROLE)))
        return names

    def item_for(self, type_name: str) -> QTreeWidgetItem | None:
        for i in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(i)
            for j in range(group.childCount()):
                if group.child(j).data(0, TYPE_ROLE) == type_name:
                    return group.child(j)
        return None

    # -- internals -------------------------------------------------------------------------
    def _item(self, info: StepTypeInfo) -> QTreeWidgetItem:
        item = QTreeWidgetItem([short_name(info.name)])
        item.setIcon(0, step_icon(info.category))
        item.setData(0, TYPE_ROLE, info.name)
        item.setData(0, SEARCH_ROLE, f"{info.name} {info.description}".lower())
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled
        item.setFlags(flags)
        tip = f"<b>{_escape(info.name)}</b><br>{_escape(info.description)}"
        if info.output:
            tip += f"<br><br><i>Output:</i> {_escape(info.output)}"
        tip += "<br><br>Drag onto the graph, or double-click to insert."
        item.setToolTip(0, tip)
        return item

    def _filter(self, text: str) -> None:
        words = text.lower().split()
        shown = 0
        for i in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(i)
            category = str(group.data(0, SEARCH_ROLE))
            visible = 0
            for j in range(group.childCount()):
                child = group.child(j)
                haystack = f"{child.data(0, SEARCH_ROLE)} {category}"
                match = all(word in haystack for word in words)
                child.setHidden(not match)
                visible += match
            group.setHidden(visible == 0)
            if words and visible:
                group.setExpanded(True)
            shown += visible
        self.empty.setVisible(shown == 0 and bool(self._infos))
        current = self.tree.currentItem()
        if words and (current is None or current.isHidden() or not current.data(0, TYPE_ROLE)):
            first = self._first_visible()
            if first is not None:
                self.tree.setCurrentItem(first)

    def _first_visible(self) -> QTreeWidgetItem | None:
        names = self.visible_types()
        return self.item_for(names[0]) if names else None

    def _activated(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        name = item.data(0, TYPE_ROLE)
        if name:
            self.insertRequested.emit(str(name))

    def _insert_first(self) -> None:
        current = self.tree.currentItem()
        if current is None or current.isHidden() or not current.data(0, TYPE_ROLE):
            current = self._first_visible()
        if current is not None:
            self._activated(current)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # Qt override
        # Down/Up in the search box walk the list without leaving the keyboard.
        if (watched is self.search and event.type() == QEvent.Type.KeyPress and isinstance(event, QKeyEvent)
                and event.key() in (Qt.Key.Key_Down, Qt.Key.Key_Up)):
            self.tree.setFocus()
            self.tree.keyPressEvent(event)
            return True
        return super().eventFilter(watched, event)
