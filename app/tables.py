"""Table-model scaffolding the studio's tables share.

:class:`ColumnsModel` gives the column count and header texts from a subclass's
``COLUMNS``; :class:`KeyedTableModel` adds rows of items with a unique ``id`` (DLQ entries,
mocks), found by row or by id and replaced in place. Subclasses write ``data()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Final, Generic, Protocol, TypeVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt

Index = QModelIndex | QPersistentModelIndex
ROOT: Final = QModelIndex()


class Keyed(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=Keyed)


class ColumnsModel(QAbstractTableModel):
    """A flat table whose columns are named by the subclass's ``COLUMNS``."""

    COLUMNS: ClassVar[tuple[str, ...]] = ()

    def columnCount(self, parent: Index = ROOT) -> int:
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        return None


class KeyedTableModel(ColumnsModel, Generic[T]):
    """One row per item, in the order given; items are looked up by their ``id``."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._items: list[T] = []
        self._rows: dict[str, int] = {}  # id -> row

    def reset(self, items: Iterable[T]) -> None:
        self.beginResetModel()
        self._items = list(items)
        self._rows = {item.id: row for row, item in enumerate(self._items)}
        self.endResetModel()

    def replace(self, item: T) -> None:
        """Show a changed item in its row (one not listed is ignored)."""
        row = self._rows.get(item.id)
        if row is None:
            return
        self._items[row] = item
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.COLUMNS) - 1))

    def item(self, row: int) -> T:
        return self._items[row]

    def by_id(self, item_id: str) -> T | None:
        row = self._rows.get(item_id)
        return None if row is None else self._items[row]

    def row_of(self, item_id: str) -> int:
        """The row of ``item_id``, -1 when it is not listed."""
        return self._rows.get(item_id, -1)

    def items(self) -> list[T]:
        return list(self._items)

    def rowCount(self, parent: Index = ROOT) -> int:
        return 0 if parent.isValid() else len(self._items)
