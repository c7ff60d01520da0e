"""A lazy JSON tree: any recorded value, however large, shown without ever rendering it whole.

Children are created only when a node is expanded, at most :data:`PAGE` at a time; a list or
map with more is closed by a "… N more" row that loads the next page when it is expanded
(or activated). Strings are cut to :data:`PREVIEW` characters in the view (the tooltip holds
more, "Copy as JSON" all of it) and containers show a short preview built from their first
few items, so the cost of a row never depends on the size of its value.
"""

from __future__ import annotations

import json
from itertools import islice
from typing import Any, Final

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QObject, QPersistentModelIndex, Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QTreeView, QWidget

from app import theme
from engine.format.json_types import value_type

PAGE: Final = 200  # children created per page
PREVIEW: Final = 160  # characters of a value shown in the tree
TOOLTIP: Final = 4000  # characters of a string shown in its tooltip
COLUMNS: Final = ("Key", "Value", "Type")

Index = QModelIndex | QPersistentModelIndex
ROOT: Final = QModelIndex()  # the invalid index: a model's top level


class _More:
    """The value of a "… N more" row (a sentinel, never a JSON value)."""


MORE: Final = _More()


class Node:
    """One row: a key (map key, list position or section label) and its value."""

    __slots__ = ("children", "key", "keys", "label", "parent", "row", "value")

    def __init__(self, parent: Node | None, row: int, key: Any, value: Any, label: str | None = None):
        self.parent = parent
        self.row = row
        self.key = key
        self.value = value
        self.label = label
        self.children: list[Node] | None = None  # None until fetched
        self.keys: list[Any] | None = None  # a map's keys, listed once when first paged

    @property
    def is_more(self) -> bool:
        return self.value is MORE

    @property
    def is_container(self) -> bool:
        return isinstance(self.value, dict | list | tuple)

    def size(self) -> int:
        return len(self.value) if self.is_container else 0

    def loaded(self) -> int:
        """Children created so far (the "more" row not counted)."""
        if self.children is None:
            return 0
        return len(self.children) - (1 if self.children and self.children[-1].is_more else 0)

    def remaining(self) -> int:
        return self.size() - self.loaded()


def preview(value: Any, budget: int = PREVIEW) -> str:
    """A one-line rendering of ``value`` of at most about ``budget`` characters.

    Containers are walked only as far as the budget reaches, so a million-item list costs
    the same as a three-item one.
    """
    if isinstance(value, str):
        flat = value[: budget + 1].replace("\r", "").replace("\n", "⏎")
        text = json.dumps(flat, ensure_ascii=False)
        if len(value) > budget:
            return text[: budget] + f"…\" ({len(value):,} chars)"
        return text
    if isinstance(value, dict):
        return _preview_items("{", "}", ((json.dumps(str(k), ensure_ascii=False) + ": ", v)
                                         for k, v in value.items()), len(value), budget, "key")
    if isinstance(value, list | tuple):
        return _preview_items("[", "]", (("", v) for v in value), len(value), budget, "item")
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    return repr(value)[:budget]


def _preview_items(open_: str, close: str, items: Any, total: int, budget: int, noun: str) -> str:
    if total == 0:
        return open_ + close
    parts: list[str] = []
    used = 0
    for prefix, item in items:
        room = budget - used
        if room <= 8:
            break
        text = prefix + preview(item, max(8, room - len(prefix)))
        parts.append(text)
        used += len(text) + 2
    body = ", ".join(parts)
    if len(parts) < total:
        body += f", … ({total:,} {noun}s)" if parts else f"… ({total:,} {noun}s)"
    return open_ + body + close


def to_json(value: Any) -> str:
    """Pretty JSON of ``value`` (what "Copy as JSON" puts on the clipboard)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


class JsonTreeModel(QAbstractItemModel):
    """Key / value / type columns over a JSON value, children created on demand."""

    def __init__(self, value: Any = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._root = Node(None, 0, None, {})
        self._labels: dict[Any, str] = {}
        # "more" rows that were removed: stale indexes may still point at them, so they stay alive
        self._retired: list[Node] = []
        self.set_value(value if value is not None else {})

    # ------------------------------------------------------------------ content

    def set_value(self, value: Any, labels: dict[Any, str] | None = None) -> None:
        """Show ``value``; its first page of top-level children is created at once.

        ``labels`` renames top-level keys in the Key column (e.g. an event's seq and type).
        """
        self.beginResetModel()
        self._retired = []
        self._root = Node(None, 0, None, value)
        self._labels = labels or {}
        if self._root.is_container:
            self._load_page(self._root)
        else:  # a bare scalar: one row holding it
            self._root = Node(None, 0, None, {"value": value})
            self._load_page(self._root)
        self.endResetModel()

    def value(self) -> Any:
        return self._root.value

    def node(self, index: Index) -> Node:
        if not index.isValid():
            return self._root
        return index.internalPointer()  # type: ignore[no-any-return]

    def value_at(self, index: Index) -> Any:
        """The JSON value of a row (a "more" row stands for its whole container)."""
        node = self.node(index)
        if node.is_more:
            assert node.parent is not None
            return node.parent.value
        return node.value

    def is_more(self, index: Index) -> bool:
        return index.isValid() and self.node(index).is_more

    def path_of(self, index: Index) -> list[Any]:
        """Keys from the root to the row, e.g. ``["output", "items", 3]``."""
        keys: list[Any] = []
        node = self.node(index)
        while node.parent is not None:
            if not node.is_more:
                keys.append(node.key)
            node = node.parent
        return keys[::-1]

    def _load_page(self, node: Node) -> int:
        """Create the next page of ``node``'s children before its "more" row; returns how many.

        The "more" row object is kept while there is a remainder (views hold indexes to it)
        and appended when a first page leaves some out.
        """
        value = node.value
        if node.children is None:
            node.children = []
        start = node.loaded()
        if isinstance(value, dict):
            if node.keys is None:
                node.keys = list(value)
            items = [(k, value[k]) for k in node.keys[start:start + PAGE]]
        else:
            items = list(enumerate(islice(value, start, start + PAGE), start))
        more = node.children.pop() if node.children and node.children[-1].is_more else None
        label = self._labels.get if node is self._root else None
        base = len(node.children)
        for offset, (key, child) in enumerate(items):
            node.children.append(Node(node, base + offset, key, child,
                                      label(key) if label is not None else None))
        if node.loaded() < node.size():
            more = more or Node(node, 0, None, MORE)
            more.row = len(node.children)
            more.key = node.remaining()  # what its label says (updated after each page)
            node.children.append(more)
        elif more is not None:
            self._retired.append(more)
        return len(items)

    # ------------------------------------------------------------------ structure

    def index(self, row: int, column: int, parent: Index = ROOT) -> QModelIndex:
        node = self.node(parent)
        if parent.isValid() and parent.column() != 0:
            return QModelIndex()
        children = node.children
        if children is None or not 0 <= row < len(children) or not 0 <= column < len(COLUMNS):
            return QModelIndex()
        return self.createIndex(row, column, children[row])

    def parent(self, index: Index = ROOT) -> QModelIndex:  # type: ignore[override]
        if not index.isValid():
            return QModelIndex()
        parent = self.node(index).parent
        if parent is None or parent is self._root:
            return QModelIndex()
        return self.createIndex(parent.row, 0, parent)

    def rowCount(self, parent: Index = ROOT) -> int:
        if parent.isValid() and parent.column() != 0:
            return 0
        children = self.node(parent).children
        return len(children) if children is not None else 0

    def columnCount(self, parent: Index = ROOT) -> int:
        return len(COLUMNS)

    def hasChildren(self, parent: Index = ROOT) -> bool:
        if parent.isValid() and parent.column() != 0:
            return False
        node = self.node(parent)
        return node.is_more or node.size() > 0

    def canFetchMore(self, parent: Index) -> bool:
        # A "more" row is not fetched by the view (that happens inside its layout pass and
        # would insert siblings of the row being laid out): JsonTreeView loads it afterwards.
        if parent.isValid() and parent.column() != 0:
            return False
        node = self.node(parent)
        return node.is_container and node.children is None and node.size() > 0

    def fetchMore(self, parent: Index) -> None:
        node = self.node(parent)
        if not node.is_container or node.children is not None:
            return
        first = min(node.size(), PAGE) + (1 if node.size() > PAGE else 0)
        if first == 0:
            node.children = []
            return
        self.beginInsertRows(self._index_of(node), 0, first - 1)
        self._load_page(node)
        self.endInsertRows()

    def fetch_next_page(self, more: Index) -> int:
        """Load the next page of the container that the "more" row ``more`` closes.

        The new rows go in before the "more" row, which goes away once nothing remains.
        Returns how many rows were added.
        """
        node = self.node(more)
        if not node.is_more or node.parent is None:
            return 0
        container = node.parent
        assert container.children is not None
        parent_index = self._index_of(container)
        row = node.row
        count = min(container.remaining(), PAGE)
        self.beginInsertRows(parent_index, row, row + count - 1)
        # _load_page would drop the "more" row at the end: insert the page, keep the row last
        container.children.pop()
        base = len(container.children)
        start = container.loaded()
        value = container.value
        if isinstance(value, dict):
            assert container.keys is not None
            items = [(k, value[k]) for k in container.keys[start:start + count]]
        else:
            items = list(enumerate(islice(value, start, start + count), start))
        for offset, (key, child) in enumerate(items):
            label = self._labels.get(key) if container is self._root else None
            container.children.append(Node(container, base + offset, key, child, label))
        node.row = len(container.children)
        container.children.append(node)
        self.endInsertRows()
        if container.loaded() >= container.size():
            self.beginRemoveRows(parent_index, node.row, node.row)
            container.children.pop()
            self._retired.append(node)
            self.endRemoveRows()
        else:
            node.key = container.remaining()
            changed = self.createIndex(node.row, 0, node)
            self.dataChanged.emit(changed, changed.siblingAtColumn(len(COLUMNS) - 1))
        return len(items)

    def _index_of(self, node: Node) -> QModelIndex:
        if node is self._root or node.parent is None:
            return QModelIndex()
        return self.createIndex(node.row, 0, node)

    # ------------------------------------------------------------------ display

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        node = self.node(index)
        column = index.column()
        if node.is_more:
            assert node.parent is not None
            if role == Qt.ItemDataRole.DisplayRole and column == 0:
                return f"… {node.key:,} more"
            if role == Qt.ItemDataRole.ToolTipRole:
                return f"Expand to load the next {min(PAGE, node.key):,}"
            if role == Qt.ItemDataRole.ForegroundRole:
                return QColor(theme.colors().muted)
            return None
        value = node.value
        if role == Qt.ItemDataRole.DisplayRole:
            if column == 0:
                if node.label is not None:
                    return node.label
                return f"[{node.key}]" if isinstance(node.key, int) else str(node.key)
            if column == 1:
                return preview(value)
            return _type_label(value)
        if role == Qt.ItemDataRole.ToolTipRole and column == 1:
            if isinstance(value, str) and len(value) > PREVIEW:
                shown = value[:TOOLTIP]
                more = len(value) - len(shown)
                return shown + (f"\n… {more:,} more characters (Copy as JSON copies all)" if more else "")
            return None
        if role == Qt.ItemDataRole.ForegroundRole and column == 1:
            c = theme.colors()
            if isinstance(value, str):
                return QColor(c.ok)
            if value is None or isinstance(value, bool):
                return QColor(c.accent)
            if isinstance(value, dict | list | tuple):
                return QColor(c.muted)
            return None
        if role == Qt.ItemDataRole.ForegroundRole and column == 2:
            return QColor(theme.colors().muted)
        return None


def _type_label(value: Any) -> str:
    name = value_type(value)
    if isinstance(value, dict):
        return f"object ({len(value):,})"
    if isinstance(value, list | tuple):
        return f"array ({len(value):,})"
    return name


class JsonTreeView(QTreeView):
    """A tree view that turns expanding (or activating) a "… N more" row into its next page."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setUniformRowHeights(True)  # rows are one line: lets the view skip measuring
        self.setAlternatingRowColors(True)
        self.expanded.connect(self._expanded)
        self.activated.connect(self._activated)

    def _model(self) -> JsonTreeModel | None:
        model = self.model()
        return model if isinstance(model, JsonTreeModel) else None

    def _expanded(self, index: QModelIndex) -> None:
        model = self._model()
        if model is not None and model.is_more(index):
            # after the view's own expand handling has finished with this row
            persistent = QPersistentModelIndex(index)
            QTimer.singleShot(0, lambda: self._load_more(persistent))

    def _activated(self, index: QModelIndex) -> None:
        if self._model() is not None:
            self._load_more(QPersistentModelIndex(index.siblingAtColumn(0)))

    def _load_more(self, more: QPersistentModelIndex) -> None:
        model = self._model()
        if model is None or not more.isValid() or not model.is_more(more):
            return
        self.collapse(model.index(more.row(), 0, more.parent()))
        model.fetch_next_page(more)
