"""The Sources pane's two tables: the sources with their counters, and one source's recent
deliveries.

Sources refresh every second while the pane is visible, so :meth:`SourcesModel.update`
changes rows in place when the same sources come back (the selection and the scroll
position stay put); only a different set of names resets the model.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QColor

from app import theme
from app.tables import ROOT, ColumnsModel, Index
from engine.service.models import SourceDelivery, SourceInfo

COLUMNS: Final = ("Source", "Type", "State", "Pipelines", "Delivered", "Acked", "Redelivered",
                  "Dead-lettered", "In flight", "Lag", "Last error")
(NAME, TYPE, STATE, PIPELINES, DELIVERED, ACKED, REDELIVERED, DEAD, IN_FLIGHT, LAG,
 ERROR) = range(len(COLUMNS))
NUMERIC: Final = frozenset({DELIVERED, ACKED, REDELIVERED, DEAD, IN_FLIGHT, LAG})
NAME_ROLE: Final = Qt.ItemDataRole.UserRole + 1  # the source name of a row
STATE_ROLE: Final = Qt.ItemDataRole.UserRole + 2  # a row's state, for the badge delegate
ERROR_PREVIEW: Final = 120
_RIGHT: Final = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter

STATE_TIPS: Final = {
    "running": "Reading from its transport",
    "lagging": "Running, but behind the head of its stream or queue",
    "failing": "Its transport fails; it retries by itself (see the last error)",
    "stopped": "Not reading; test events still go through its pipelines",
}


def state_color(state: str) -> QColor:
    """The theme's colour of a source state (the badge and the summary use the same)."""
    c = theme.colors()
    return QColor({"running": c.ok, "lagging": c.warning, "failing": c.error}.get(state, c.muted))


def lag_text(info: SourceInfo) -> str:
    if info.lag is None:
        return "—"
    lag = f"{info.lag:,.0f}" if float(info.lag).is_integer() else f"{info.lag:,.1f}"
    return f"{lag} {info.lag_unit}".strip()


def when(ts: float | None) -> str:
    if not ts:
        return ""
    moment = datetime.fromtimestamp(ts)
    today = datetime.fromtimestamp(time.time()).date()
    return moment.strftime("%H:%M:%S" if moment.date() == today else "%Y-%m-%d %H:%M:%S")


class SourcesModel(ColumnsModel):
    COLUMNS = COLUMNS

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._items: list[SourceInfo] = []

    def update(self, sources: Iterable[SourceInfo]) -> None:
        """Show ``sources``: in place when the names are the same ones, else from scratch."""
        listed = list(sources)
        if [s.name for s in listed] == [s.name for s in self._items]:
            self._items = listed
            if listed:
                self.dataChanged.emit(self.index(0, 0), self.index(len(listed) - 1, len(COLUMNS) - 1))
            return
        self.beginResetModel()
        self._items = listed
        self.endResetModel()

    def items(self) -> list[SourceInfo]:
        return list(self._items)

    def by_name(self, name: str) -> SourceInfo | None:
        return next((s for s in self._items if s.name == name), None)

    def row_of(self, name: str) -> int:
        return next((row for row, s in enumerate(self._items) if s.name == name), -1)

    def rowCount(self, parent: Index = ROOT) -> int:
        return 0 if parent.isValid() else len(self._items)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        s = self._items[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return _display(s, col)
        if role == NAME_ROLE:
            return s.name
        if role == STATE_ROLE:
            return s.state
        if role == Qt.ItemDataRole.TextAlignmentRole and col in NUMERIC:
            return _RIGHT
        if role == Qt.ItemDataRole.ForegroundRole:
            if col == ERROR and s.last_error:
                return QColor(theme.colors().error)
            if col == DEAD and s.dead_lettered:
                return QColor(theme.colors().warning)
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == ERROR and s.last_error:
                return s.last_error[:4000]
            if col == STATE:
                return STATE_TIPS.get(s.state, s.state)
            if col == NAME:
                return f"{s.name} — declared in {s.file}"
            if col == REDELIVERED:
                return "Deliveries of events already taken in: nothing new was started"
            if col == LAG:
                return "How far behind the head the source is, as it last reported"
        return None


def _display(s: SourceInfo, col: int) -> str:
    if col == NAME:
        return s.name
    if col == TYPE:
        return s.type.removeprefix("source.")
    if col == STATE:
        return s.state
    if col == PIPELINES:
        return ", ".join(s.pipelines)
    if col == ERROR:
        text = (s.last_error or "").replace("\n", " ")
        return text if len(text) <= ERROR_PREVIEW else text[: ERROR_PREVIEW - 1] + "…"
    if col == LAG:
        return lag_text(s)
    count = {DELIVERED: s.delivered, ACKED: s.acknowledged, REDELIVERED: s.redelivered,
             DEAD: s.dead_lettered, IN_FLIGHT: s.in_flight}.get(col)
    return "" if count is None else f"{count:,}"


# ---------------------------------------------------------------------- deliveries

DELIVERY_COLUMNS: Final = ("Received", "Event id", "Type", "Outcome", "Execution", "Status")
RECEIVED, EVENT_ID, EVENT_TYPE, OUTCOME, EXECUTION, STATUS = range(len(DELIVERY_COLUMNS))
DELIVERY_ROLE: Final = Qt.ItemDataRole.UserRole + 3  # the SourceDelivery of a row


def outcome_color(outcome: str) -> QColor | None:
    c = theme.colors()
    colour = {"done": c.ok, "started": c.accent, "dead_lettered": c.warning, "refused": c.error,
              "duplicate": c.muted, "filtered": c.muted}.get(outcome)
    return QColor(colour) if colour else None


def status_color(status: str | None) -> QColor | None:
    c = theme.colors()
    colour = {"completed": c.ok, "failed": c.error, "running": c.accent, "paused": c.warning,
              "cancelled": c.muted, "interrupted": c.muted}.get(status or "")
    return QColor(colour) if colour else None


def target_of(d: SourceDelivery) -> tuple[str, str] | None:
    """What double-clicking a delivery opens: ("dlq", entry id) or ("execution", id)."""
    if d.dlq_entry and (d.outcome == "dead_lettered" or not d.execution_id):
        return "dlq", d.dlq_entry
    if d.execution_id:
        return "execution", d.execution_id
    return None


class DeliveriesModel(ColumnsModel):
    COLUMNS = DELIVERY_COLUMNS

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._items: list[SourceDelivery] = []

    def reset(self, deliveries: Iterable[SourceDelivery]) -> None:
        self.beginResetModel()
        self._items = list(deliveries)
        self.endResetModel()

    def items(self) -> list[SourceDelivery]:
        return list(self._items)

    def row_of(self, event_id: str) -> int:
        return next((row for row, d in enumerate(self._items) if d.event_id == event_id), -1)

    def rowCount(self, parent: Index = ROOT) -> int:
        return 0 if parent.isValid() else len(self._items)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        d = self._items[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return _delivery_display(d, col)
        if role == DELIVERY_ROLE:
            return d
        if role == Qt.ItemDataRole.ForegroundRole:
            if col == OUTCOME:
                return outcome_color(d.outcome)
            if col == STATUS:
                return status_color(d.execution_status)
            if col == EXECUTION and target_of(d):
                return QColor(theme.colors().accent)
        if role == Qt.ItemDataRole.ToolTipRole:
            target = target_of(d)
            if col == EXECUTION and target:
                what = "the dead-letter entry" if target[0] == "dlq" else "the execution"
                return f"Open {what} {target[1]} (double-click)"
            if col == EVENT_ID:
                return f"{d.event_id} · delivered {d.deliveries} times" if d.deliveries > 1 else d.event_id
            if col == RECEIVED and d.received:
                return datetime.fromtimestamp(d.received).strftime("%Y-%m-%d %H:%M:%S")
            if col == OUTCOME and d.pipeline:
                return f"pipeline {d.pipeline}"
        return None


def _delivery_display(d: SourceDelivery, col: int) -> str:
    if col == RECEIVED:
        return when(d.received)
    if col == EVENT_ID:
        return d.event_id
    if col == EVENT_TYPE:
        return d.type or ""
    if col == OUTCOME:
        return d.outcome.replace("_", " ") + (f" ({d.deliveries} times)" if d.deliveries > 1 else "")
    if col == EXECUTION:
        target = target_of(d)
        if target is None:
            return ""
        return f"DLQ {target[1][:8]}" if target[0] == "dlq" else target[1][:12]
    if col == STATUS:
        return d.execution_status or ""
    return ""
