"""The executions table's model: rows paged in from the service, newest first.

The model holds only what has been fetched: the first page when a filter is applied, the
next page (through the service's cursor) when the view scrolls to the bottom. Live runs are
inserted at the top and finished ones updated in place, so a view over a store of 100,000
executions costs what it shows. Loading is asynchronous: ``fetchMore`` asks the owner (the
panel) through :attr:`wantMore` and the rows arrive later through :meth:`append_page`.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Final, NamedTuple

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPixmap

from app import theme
from engine.service.models import ExecutionSummary

Index = QModelIndex | QPersistentModelIndex
# a row's texts and colours, and the summary and theme they were made from
_Rendered = tuple[tuple[str, ...], tuple[QColor | None, ...], tuple[Any, ...], theme.Colors]
ROOT: Final = QModelIndex()

COLUMNS: Final = ("Status", "Pipeline", "Started", "Duration", "Trigger", "Replay of", "Parent", "ID")
STATUS, PIPELINE, STARTED, DURATION, TRIGGER, REPLAY_OF, PARENT, ID = range(len(COLUMNS))
LINK_COLUMNS: Final = frozenset({REPLAY_OF, PARENT})
ID_ROLE: Final = Qt.ItemDataRole.UserRole + 1  # the execution id of a row
LINK_ROLE: Final = Qt.ItemDataRole.UserRole + 2  # the execution id a link cell points to
TERMINAL: Final = frozenset({"completed", "failed", "cancelled", "compensated", "interrupted"})
RENDER_CACHE: Final = 4000  # rows whose texts are kept

# Roles as plain ints, for data()'s hot path.
_DISPLAY: Final = int(Qt.ItemDataRole.DisplayRole.value)
_DECORATION: Final = int(Qt.ItemDataRole.DecorationRole.value)
_TOOLTIP: Final = int(Qt.ItemDataRole.ToolTipRole.value)
_FONT: Final = int(Qt.ItemDataRole.FontRole.value)
_ALIGN: Final = int(Qt.ItemDataRole.TextAlignmentRole.value)
_FOREGROUND: Final = int(Qt.ItemDataRole.ForegroundRole.value)
_ID: Final = int(ID_ROLE)
_LINK: Final = int(LINK_ROLE)
_HANDLED: Final = frozenset({_DISPLAY, _DECORATION, _TOOLTIP, _FONT, _ALIGN, _FOREGROUND, _ID, _LINK})
_RIGHT: Final = int((Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter).value)


class ExecutionRow(NamedTuple):
    """What a row shows of an execution: no payload or output (the inspector reads those).

    The model stores these as plain tuples of plain values: 100,000 of them cost little
    memory and nothing to the garbage collector, which stops tracking exact tuples of
    atomic values (not instances of tuple subclasses such as this one).
    """

    id: str
    pipeline: str
    status: str
    trigger_type: str
    started_at: float
    ended_at: float | None
    duration_ms: float | None
    replay_of: str | None
    parent_id: str | None
    error: str | None  # the error's message



def _row(s: ExecutionSummary) -> tuple[Any, ...]:
    """The plain tuple stored for ``s``, in ExecutionRow's field order."""
    return (s.id, s.pipeline, s.status, s.trigger_type, s.started_at, s.ended_at, s.duration_ms,
            s.replay_of, s.parent_id, _message(s.error))


# Field positions in a stored row, for the hot path.
_F_ID, _F_STATUS, _F_DURATION, _F_REPLAY_OF, _F_PARENT = 0, 2, 6, 7, 8


def _message(error: Any) -> str | None:
    if error is None:
        return None
    if isinstance(error, dict):
        return str(error.get("message", error))[:500]
    return str(error)[:500]


_colors: dict[tuple[str, str], QColor] = {}


def _color(name: str) -> QColor:
    """A theme colour by field name ("accent", "muted", …), one shared QColor per theme."""
    c = theme.colors()
    key = (c.name, name)
    color = _colors.get(key)
    if color is None:
        color = _colors[key] = QColor(getattr(c, name))
    return color


def status_color(status: str) -> QColor:
    return _color({"completed": "ok", "failed": "error", "running": "accent", "paused": "warning",
                   "compensated": "warning", "interrupted": "error"}.get(status, "muted"))


_icons: dict[tuple[str, str], QIcon] = {}


def status_icon(status: str) -> QIcon:
    """A filled dot in the status colour (cached per theme and status)."""
    key = (theme.colors().name, status)
    icon = _icons.get(key)
    if icon is None:
        pixmap = QPixmap(12, 12)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(status_color(status))
        painter.drawEllipse(1, 1, 10, 10)
        painter.end()
        icon = _icons[key] = QIcon(pixmap)
    return icon


def format_started(ts: float) -> str:
    """Local time; the date only when it is not today."""
    moment = datetime.fromtimestamp(ts)
    if moment.date() == datetime.now().date():
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def format_duration(ms: float | None) -> str:
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def short_id(execution_id: str | None) -> str:
    return (execution_id or "")[:8]


class ExecutionListModel(QAbstractTableModel):
    """Fetched executions, newest first; ``wantMore`` asks for the page after the last row."""

    wantMore = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[tuple[Any, ...]] = []  # ExecutionRow fields, as plain tuples
        # Row of an id without a scan: ids get ordinals in display order; inserting at the
        # top hands out ordinals below the first, so row = ordinal - first ordinal.
        self._ordinal: dict[str, int] = {}
        self._first = 0
        self.next_cursor: str | None = None
        self.loading = False  # a page request is in flight
        self._link_font = QFont()
        self._link_font.setUnderline(True)
        # id -> (texts, colours, the summary they were made from); a changed summary is a
        # new object, so an update invalidates its row by itself.
        self._render_cache: dict[str, _Rendered] = {}

    # ------------------------------------------------------------------ content

    def reset(self, items: list[ExecutionSummary], next_cursor: str | None) -> None:
        self.beginResetModel()
        self._render_cache.clear()
        self._rows = [_row(item) for item in items]
        self._first = 0
        self._ordinal = {item.id: i for i, item in enumerate(items)}
        self.next_cursor = next_cursor
        self.loading = False
        self.endResetModel()

    def append_page(self, items: list[ExecutionSummary], next_cursor: str | None) -> None:
        """Rows of the next page at the bottom (ids already shown are skipped)."""
        self.loading = False
        self.next_cursor = next_cursor
        fresh = [item for item in items if item.id not in self._ordinal]
        if not fresh:
            return
        start = len(self._rows)
        self.beginInsertRows(ROOT, start, start + len(fresh) - 1)
        for offset, item in enumerate(fresh):
            self._ordinal[item.id] = self._first + start + offset
        self._rows.extend(_row(item) for item in fresh)
        self.endInsertRows()

    def insert_top(self, items: list[ExecutionSummary]) -> int:
        """New executions at the top, newest first in ``items``; returns how many went in."""
        fresh = [item for item in items if item.id not in self._ordinal]
        if not fresh:
            return 0
        self.beginInsertRows(ROOT, 0, len(fresh) - 1)
        self._first -= len(fresh)
        for offset, item in enumerate(fresh):
            self._ordinal[item.id] = self._first + offset
        self._rows[0:0] = [_row(item) for item in fresh]
        self.endInsertRows()
        return len(fresh)

    def update(self, execution_id: str, **changes: Any) -> bool:
        """Change fields of a shown execution (status, ended_at, duration_ms, error)."""
        row = self.row_of(execution_id)
        if row < 0:
            return False
        if "error" in changes:
            changes["error"] = _message(changes["error"])
        fields = {k: v for k, v in changes.items() if k in ExecutionRow._fields}
        self._rows[row] = tuple(ExecutionRow._make(self._rows[row])._replace(**fields))
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))
        return True

    def row_of(self, execution_id: str) -> int:
        ordinal = self._ordinal.get(execution_id)
        return -1 if ordinal is None else ordinal - self._first

    def execution(self, row: int) -> ExecutionRow:
        return ExecutionRow._make(self._rows[row])

    def running_rows(self) -> list[int]:
        return [row for row, item in enumerate(self._rows[:5000]) if item[_F_STATUS] not in TERMINAL]

    def tick(self) -> None:
        """Repaint the durations of running executions near the top (they grow while shown)."""
        for row in self.running_rows():
            cell = self.index(row, DURATION)
            self.dataChanged.emit(cell, cell, [Qt.ItemDataRole.DisplayRole])

    # ------------------------------------------------------------------ Qt model

    def rowCount(self, parent: Index = ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = ROOT) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def canFetchMore(self, parent: Index) -> bool:
        return not parent.isValid() and self.next_cursor is not None and not self.loading

    def fetchMore(self, parent: Index) -> None:
        if self.canFetchMore(parent):
            self.loading = True
            self.wantMore.emit()

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        # Called ~7 times per visible cell per frame: roles are compared as ints (enum
        # comparisons cost several times more) and a row's texts and colours are made once.
        if role not in _HANDLED:
            return None
        row = index.row()
        if row < 0:
            return None
        column = index.column()
        item = self._rows[row]
        if role == _DISPLAY:
            if column == DURATION and item[_F_DURATION] is None and item[_F_STATUS] not in TERMINAL:
                return self._text(ExecutionRow._make(item), DURATION)  # running: grows each second
            return self._rendered(item)[0][column]
        if role == _FOREGROUND:
            return self._rendered(item)[1][column]
        if role == _DECORATION:
            return status_icon(item[_F_STATUS]) if column == STATUS else None
        if role == _FONT:
            return self._link_font if column in LINK_COLUMNS else None
        if role == _ALIGN:
            return _RIGHT if column == DURATION else None
        if role == _TOOLTIP:
            return self._tooltip(ExecutionRow._make(item), column)
        if role == _ID:
            return item[_F_ID]
        if role == _LINK:
            if column == REPLAY_OF:
                return item[_F_REPLAY_OF]
            return item[_F_PARENT] if column == PARENT else None
        return None

    def _rendered(self, item: tuple[Any, ...]) -> tuple[tuple[str, ...], tuple[QColor | None, ...]]:
        """A row's texts and foreground colours, made once per row (and theme)."""
        cached = self._render_cache.get(item[_F_ID])
        c = theme.colors()
        if cached is not None and cached[2] is item and cached[3] is c:
            return cached[0], cached[1]
        if len(self._render_cache) > RENDER_CACHE:
            self._render_cache.clear()  # bounded: only rows recently on screen are worth keeping
        view = ExecutionRow._make(item)
        accent, muted = _color("accent"), _color("muted")
        texts = tuple(self._text(view, column) for column in range(len(COLUMNS)))
        colors = tuple(status_color(view.status) if column == STATUS
                       else accent if column in LINK_COLUMNS
                       else muted if column in (ID, TRIGGER) else None
                       for column in range(len(COLUMNS)))
        self._render_cache[view.id] = (texts, colors, item, c)
        return texts, colors

    def _text(self, item: ExecutionRow, column: int) -> str:
        if column == STATUS:
            return item.status
        if column == PIPELINE:
            return item.pipeline
        if column == STARTED:
            return format_started(item.started_at)
        if column == DURATION:
            if item.duration_ms is None and item.status not in TERMINAL:
                return format_duration(max(0.0, time.time() - item.started_at) * 1000) + " …"
            return format_duration(item.duration_ms)
        if column == TRIGGER:
            return item.trigger_type
        if column == REPLAY_OF:
            return short_id(item.replay_of)
        if column == PARENT:
            return short_id(item.parent_id)
        return short_id(item.id)

    def _tooltip(self, item: ExecutionRow, column: int) -> str | None:
        if column == STATUS and item.error:
            return item.error
        if column == REPLAY_OF and item.replay_of:
            return f"Replay of {item.replay_of}: click to select it"
        if column == PARENT and item.parent_id:
            return f"Called by {item.parent_id}: click to select it"
        if column == STARTED:
            return datetime.fromtimestamp(item.started_at).isoformat(sep=" ", timespec="milliseconds")
        if column == ID:
            return item.id
        return None
