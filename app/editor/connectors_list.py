"""The file's connectors under the graph: one row each (name, kind, type), add and delete.

It observes the document like the graph does: rows follow the outline (the last good one
while the text does not parse, with add and delete disabled) and the selection is kept by
name. Adding inserts the chosen type's example config; both edits are one undo command.
``connectorSelected`` is emitted for the user's selections only, not for :meth:`select`.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.editor import connector_rules
from app.editor.document import EditError, PipelineDocument
from app.editor.outline import Outline
from app.executions.support import named
from app.icons import icon, step_icon
from engine.service.models import ConnectorTypeInfo

QWIDGETSIZE_MAX = 16_777_215  # Qt's "no maximum"
KIND_ICONS = {"source": "flow", "sink": "messaging"}


class ConnectorsList(QWidget):
    """objectName "connectorsList"; its tree is "connectorsTree"."""

    connectorSelected = Signal(str)  # name; "" when the selection is cleared
    countChanged = Signal(int)  # connectors in the file: the owner may give the list more room

    def __init__(self, document: PipelineDocument, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("connectorsList")
        self.document = document
        self._infos: dict[str, ConnectorTypeInfo] = {}
        self._quiet = 0
        self._count = -1
        self.title = named(QLabel(), "connectorsTitle")
        self.add_button = named(QToolButton(), "addConnector")
        self.add_button.setIcon(icon("add"))
        self.add_button.setToolTip("Add a connector (a source or a sink) with its type's example config")
        self.add_button.setAutoRaise(True)
        self.add_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.add_menu = QMenu(self.add_button)
        self.add_button.setMenu(self.add_menu)
        self.delete_button = named(QToolButton(), "deleteConnector")
        self.delete_button.setIcon(icon("delete"))
        self.delete_button.setToolTip("Delete the selected connector")
        self.delete_button.setAutoRaise(True)
        self.delete_button.clicked.connect(self.delete_selected)
        self.message = named(QLabel(), "connectorsMessage")
        self.message.setStyleSheet("color:#D9363E;")
        self.message.setWordWrap(True)
        self.message.hide()
        self.tree = named(QTreeWidget(), "connectorsTree")
        self.tree.setColumnCount(3)
        self.tree.setHeaderLabels(["Name", "Kind", "Type"])
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.header().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.header().setStretchLastSection(True)
        self.tree.itemSelectionChanged.connect(self._selection_changed)
        self.empty = named(QLabel("none in this file"), "connectorsEmpty")
        self.empty.setToolTip("Add a source (its events start pipelines) or a sink (emit steps send "
                              "events to it) with +")
        self.empty.setEnabled(False)

        top = QHBoxLayout()
        top.setContentsMargins(6, 2, 4, 0)
        top.addWidget(self.title)
        top.addWidget(self.empty)  # one line while the file has none: the graph keeps the room
        top.addStretch(1)
        top.addWidget(self.add_button)
        top.addWidget(self.delete_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(top)
        layout.addWidget(self.message)
        layout.addWidget(self.tree, 1)
        document.outlineChanged.connect(self.refresh)
        self._fill_menu()
        self.refresh()

    # -- public API ------------------------------------------------------------------------
    def set_connector_types(self, infos: list[ConnectorTypeInfo]) -> None:
        self._infos = {info.name: info for info in infos}
        self._fill_menu()
        self.refresh()

    def names(self) -> list[str]:
        return [item.text(0) for item in self._items()]

    def _items(self) -> list[QTreeWidgetItem]:
        found = (self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount()))
        return [item for item in found if item is not None]

    def selected(self) -> str:
        items = self.tree.selectedItems()
        return items[0].text(0) if items else ""

    def select(self, name: str) -> None:
        """Select ``name`` ("" clears) without emitting ``connectorSelected``."""
        self._quiet += 1
        try:
            self.tree.clearSelection()
            for item in self._items():
                if name and item.text(0) == name:
                    item.setSelected(True)
                    self.tree.scrollToItem(item)
        finally:
            self._quiet -= 1
        self._update_buttons()

    def add_connector(self, type_name: str) -> str | None:
        """Append a connector of ``type_name``, select it and say so; None when refused."""
        info = self._infos.get(type_name)
        if info is None:
            self._say(f"Unknown connector type {type_name!r}.")
            return None
        try:
            name = connector_rules.add(self.document, self.document.outline, info)
        except EditError as exc:
            self._say(str(exc))
            return None
        self._say("")
        self.document.flush_outline()
        self.select(name)
        self.connectorSelected.emit(name)
        return name

    def delete_selected(self) -> None:
        outline = self.document.outline
        node = connector_rules.find(outline, self.selected()) if outline.ok else None
        if node is None:
            return
        try:
            connector_rules.delete(self.document, outline, node)
        except EditError as exc:
            self._say(str(exc))
            return
        self._say("")
        self.document.flush_outline()
        self.connectorSelected.emit("")

    # -- internals -------------------------------------------------------------------------
    def _fill_menu(self) -> None:
        self.add_menu.clear()
        groups = [(title, infos) for title, infos in connector_rules.grouped(self._infos.values()) if infos]
        if not groups:
            self.add_menu.addAction("No connector types from the service yet").setEnabled(False)
        for title, infos in groups:
            self.add_menu.addSection(title)
            for info in infos:
                action = self.add_menu.addAction(step_icon(KIND_ICONS[info.kind]), info.name)
                action.setToolTip(info.description)
                action.triggered.connect(lambda _=False, name=info.name: self.add_connector(name))
        self.add_menu.setToolTipsVisible(True)

    def _outline(self) -> Outline:
        doc = self.document
        return doc.outline if doc.outline.ok else doc.last_good

    def refresh(self) -> None:
        outline = self._outline()
        keep = self.selected()
        rows = [(c.name or f"#{int(c.path[-1]) + 1}", connector_rules.kind_of(c.type, self._infos),
                 c.type or "(no type)", c.line) for c in outline.connectors]
        shown = [(i.text(0), i.text(1), i.text(2), i.data(0, Qt.ItemDataRole.UserRole))
                 for i in self._items()]
        if rows != shown:
            self._quiet += 1
            try:
                self.tree.clear()
                for name, kind, type_name, line in rows:
                    item = QTreeWidgetItem([name, kind, type_name])
                    item.setData(0, Qt.ItemDataRole.UserRole, line)
                    item.setIcon(0, step_icon(KIND_ICONS[kind]) if kind in KIND_ICONS else icon("problems"))
                    info = self._infos.get(type_name)
                    item.setToolTip(0, f"line {line}")
                    item.setToolTip(2, info.description if info else "a type the service does not know")
                    if kind == connector_rules.UNKNOWN:
                        item.setForeground(1, Qt.GlobalColor.red)
                    self.tree.addTopLevelItem(item)
            finally:
                self._quiet -= 1
            self.select(keep)
        count = len(rows)
        self.title.setText(f"<b>Connectors</b> ({count})" if count else "<b>Connectors</b>")
        self.tree.setVisible(count > 0)
        self.empty.setVisible(count == 0)
        self.setMaximumHeight(self.preferred_height() if count == 0 else QWIDGETSIZE_MAX)
        self._update_buttons()
        if count != self._count:
            self._count = count
            self.countChanged.emit(count)

    def preferred_height(self) -> int:
        """Room for the header and up to six rows (the header alone while there are none)."""
        top = max(self.title.sizeHint().height(), self.add_button.sizeHint().height()) + 4
        count = len(self._outline().connectors)
        if count == 0:
            return top
        rows = min(count, 6)
        row = self.tree.sizeHintForRow(0) if self.tree.topLevelItemCount() else self.fontMetrics().height()
        tree = self.tree.header().sizeHint().height() + rows * row + 2 * self.tree.frameWidth() + 4
        return top + tree + (self.message.sizeHint().height() if self.message.isVisibleTo(self) else 0)

    def _update_buttons(self) -> None:
        editable = self.document.outline.ok
        self.add_button.setEnabled(editable)
        self.delete_button.setEnabled(editable and bool(self.selected()))

    def _selection_changed(self) -> None:
        self._update_buttons()
        if not self._quiet:
            self.connectorSelected.emit(self.selected())

    def _say(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))
