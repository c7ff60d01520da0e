"""The Dead-letter queue panel: browse, filter, inspect, retry, resolve, discard, purge.

Counts by status head the panel. The table lists the service's entries for the chosen
status and pipeline (newest first, up to :data:`LIMIT`); the search box filters what is
loaded. Selecting one entry shows its payload and error in a lazy JSON tree. Retrying (one
or many) shows a progress bar fed by the service's progress callback; "Retry with
changes…" edits the payload or writes a JSON Patch first. Double-clicking an entry, or
"Open failed execution", emits :attr:`DlqPanel.openExecution` and selects the execution in
the hub, so the timeline and debugger show it. Purging asks first and says what it keeps.

Every service call runs on the qasync loop; expected refusals (a conflict with a running
retry, a patch that does not apply) are shown in the panel's message line.
"""

from __future__ import annotations

from typing import Any, Final

from PySide6.QtCore import QModelIndex, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app import theme
from app.asyncqt import describe, spawn
from app.dlq.dlq_model import (
    ATTEMPTS,
    CREATED,
    ERROR,
    EXECUTION,
    ID_ROLE,
    PIPELINE,
    STATUS,
    STEP,
    DlqFilterProxy,
    DlqTableModel,
    when,
)
from app.dlq.retry_dialog import DlqRetryDialog
from app.executions.json_tree import JsonTreeModel, JsonTreeView, to_json
from app.icons import icon
from app.panes import MessageLine, confirm, merge_names, select_rows, selected_ids, setup_table
from app.selection import SelectionHub
from app.stale import Generation, Token
from engine.service.errors import ServiceError
from engine.service.models import DlqEntry, DlqFilter, DlqRetryResult
from engine.service.protocol import StudioService

LIMIT: Final = 1000  # the service's largest page
STATUSES: Final = ("pending", "retrying", "resolved", "discarded")
PURGE_AGES: Final = (("finished any time ago", 0.0), ("older than 1 hour", 3600.0),
                     ("older than 1 day", 86400.0), ("older than 7 days", 7 * 86400.0),
                     ("older than 30 days", 30 * 86400.0))
AUTO_REFRESH_MS: Final = 10_000  # while visible: retries by others, new dead letters
COLUMN_WIDTHS: Final = {STATUS: 75, PIPELINE: 120, STEP: 100, ERROR: 180, ATTEMPTS: 70, CREATED: 140}


class DlqPanel(QWidget):
    openExecution = Signal(str)  # execution id: the failed run (or a retry) to show
    statusMessage = Signal(str)

    def __init__(self, hub: SelectionHub, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("dlqPanel")
        self.hub = hub
        self.service: StudioService | None = None
        self.busy = False  # a retry, resolve, discard or purge is running
        self._generation = Generation()  # answers to older list requests are dropped
        self._detail_generation = Generation()
        self.stats: dict[str, int] = {}  # the last counts by status
        self.shown_entry: DlqEntry | None = None  # the entry the detail shows
        self.last_results: list[DlqRetryResult] = []  # of the last retry
        self.model = DlqTableModel(self)
        self.proxy = DlqFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self._build()
        self._auto = QTimer(self, interval=AUTO_REFRESH_MS)
        self._auto.timeout.connect(self._auto_refresh)
        self._auto.start()

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        self.stats_label = QLabel(objectName="dlqStats")
        self.stats_label.setTextFormat(Qt.TextFormat.RichText)
        self.status_filter = QComboBox(objectName="dlqFilterStatus")
        self.status_filter.addItem("Any status", None)
        for status in STATUSES:
            self.status_filter.addItem(status.capitalize(), status)
        self.status_filter.setCurrentIndex(1)  # pending: what needs a person
        self.pipeline_filter = QComboBox(objectName="dlqFilterPipeline")
        self.pipeline_filter.addItem("All pipelines", None)
        self.pipeline_filter.setMinimumContentsLength(14)
        self.text_filter = QLineEdit(objectName="dlqFilterText")
        self.text_filter.setPlaceholderText("Search errors, pipelines, steps, ids…")
        self.text_filter.setClearButtonEnabled(True)
        self.text_filter.textChanged.connect(self._text_changed)
        self._text_timer = QTimer(self, singleShot=True, interval=300)
        self._text_timer.timeout.connect(self.refresh)
        refresh = QToolButton(objectName="dlqRefresh")
        refresh.setIcon(icon("reset"))
        refresh.setToolTip("Reload the dead-letter queue")
        refresh.clicked.connect(self.refresh)
        self.status_filter.currentIndexChanged.connect(self.refresh)
        self.pipeline_filter.currentIndexChanged.connect(self.refresh)
        filters = QHBoxLayout()
        filters.setContentsMargins(4, 4, 4, 0)
        filters.addWidget(self.status_filter)
        filters.addWidget(self.pipeline_filter)
        filters.addWidget(self.text_filter, 1)
        filters.addWidget(refresh)

        view = self.view = setup_table(QTableView(objectName="dlqView"), self.proxy, COLUMN_WIDTHS)
        view.setSortingEnabled(True)
        view.sortByColumn(CREATED, Qt.SortOrder.DescendingOrder)
        view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 8)
        view.selectionModel().selectionChanged.connect(self._selection_changed)
        view.doubleClicked.connect(self._double_clicked)
        view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        view.customContextMenuRequested.connect(self._context_menu)

        self.detail_title = QLabel("Select an entry to inspect it", objectName="dlqDetailTitle")
        self.detail_title.setWordWrap(True)
        self.detail_title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.detail_model = JsonTreeModel(None, self)
        self.detail = JsonTreeView()
        self.detail.setObjectName("dlqDetail")
        self.detail.setModel(self.detail_model)
        self.copy_payload = QPushButton("Copy payload", objectName="dlqCopyPayload")
        self.copy_payload.clicked.connect(self._copy_payload)
        self.open_button = QPushButton("Open failed execution", objectName="dlqOpenExecution")
        self.open_button.clicked.connect(self.open_selected)
        self.open_retry = QPushButton("Open last retry", objectName="dlqOpenRetry")
        self.open_retry.clicked.connect(self._open_last_retry)
        detail_buttons = QHBoxLayout()
        detail_buttons.addWidget(self.open_button)
        detail_buttons.addWidget(self.open_retry)
        detail_buttons.addStretch(1)
        detail_buttons.addWidget(self.copy_payload)
        detail_box = QWidget()
        detail_layout = QVBoxLayout(detail_box)
        detail_layout.setContentsMargins(4, 0, 0, 0)
        detail_layout.addWidget(self.detail_title)
        detail_layout.addWidget(self.detail, 1)
        detail_layout.addLayout(detail_buttons)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(view)
        splitter.addWidget(detail_box)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)

        self.retry_button = QPushButton("Retry", objectName="dlqRetry")
        self.retry_button.setIcon(icon("run"))
        self.retry_button.setToolTip("Run the pipeline again with each selected entry's payload")
        self.retry_button.clicked.connect(lambda: self.retry_selected())
        self.retry_changes = QPushButton("Retry with changes…", objectName="dlqRetryPatch")
        self.retry_changes.clicked.connect(self.retry_with_changes)
        self.resolve_button = QPushButton("Resolve", objectName="dlqResolve")
        self.resolve_button.setToolTip("Mark the selected entries handled")
        self.resolve_button.clicked.connect(lambda: self.finish_selected("resolve"))
        self.discard_button = QPushButton("Discard", objectName="dlqDiscard")
        self.discard_button.setToolTip("Give up on the selected entries")
        self.discard_button.clicked.connect(lambda: self.finish_selected("discard"))
        self.purge_age = QComboBox(objectName="dlqPurgeAge")
        for label, seconds in PURGE_AGES:
            self.purge_age.addItem(label, seconds)
        self.purge_age.setCurrentIndex(3)
        self.purge_button = QPushButton("Purge…", objectName="dlqPurge")
        self.purge_button.setIcon(icon("delete"))
        self.purge_button.setToolTip("Delete resolved and discarded entries last changed before "
                                     "the chosen age")
        self.purge_button.clicked.connect(self.ask_purge)
        self.progress = QProgressBar(objectName="dlqProgress")
        self.progress.setTextVisible(True)
        self.progress.setFormat("%v / %m")
        self.progress.hide()
        actions = QHBoxLayout()
        actions.setContentsMargins(4, 0, 4, 0)
        for button in (self.retry_button, self.retry_changes, self.resolve_button, self.discard_button):
            actions.addWidget(button)
        actions.addWidget(self.progress, 1)
        actions.addStretch(0)
        actions.addWidget(self.purge_age)
        actions.addWidget(self.purge_button)

        self.message = MessageLine("dlqMessage")
        self.message.said.connect(self.statusMessage)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        stats_row = QHBoxLayout()
        stats_row.setContentsMargins(6, 4, 6, 0)
        stats_row.addWidget(self.stats_label, 1)
        layout.addLayout(stats_row)
        layout.addLayout(filters)
        layout.addWidget(splitter, 1)
        layout.addLayout(actions)
        layout.addWidget(self.message)
        self._update_actions()

    # ------------------------------------------------------------------ service

    def set_service(self, service: StudioService | None) -> None:
        """Show ``service``'s dead-letter queue (None: nothing)."""
        self.service = service
        self._generation.invalidate()
        self.model.reset([])
        self._show_detail(None)
        self.stats_label.setText("")
        self.message.say("")
        if service is not None:
            spawn(self._load_pipelines(service), what="Listing pipelines")
            self.refresh()
        self._update_actions()

    def current_filter(self) -> DlqFilter:
        return DlqFilter(status=self.status_filter.currentData(), pipeline=self.pipeline_filter.currentData(),
                         text=self.text_filter.text().strip() or None, limit=LIMIT)

    def refresh(self) -> None:
        """Reload the entries and the counts."""
        if self.service is None:
            return
        spawn(self._load(self.service, self._generation.next()), what="Listing the dead-letter queue")

    def _auto_refresh(self) -> None:
        if self.isVisible() and not self.busy:
            self.refresh()

    async def _load(self, service: StudioService, generation: Token) -> None:
        try:
            entries = await service.list_dlq(self.current_filter())
            stats = await service.dlq_stats()
        except ServiceError as exc:
            if self._generation.is_current(generation):
                self.message.say(f"Could not list the dead-letter queue: {describe(exc)}", error=True)
            return
        if not self._generation.is_current(generation) or service is not self.service:
            return
        selected = self.selected_ids()
        self.model.reset(entries)
        self._show_stats(stats, len(entries))
        self._select(selected)
        merge_names(self.pipeline_filter, {e.pipeline for e in entries})
        if not selected:
            self._show_detail(None)

    async def _load_pipelines(self, service: StudioService) -> None:
        pipelines = await service.list_pipelines()
        if service is self.service:
            merge_names(self.pipeline_filter, {p.name for p in pipelines})

    def _show_stats(self, stats: dict[str, int], shown: int) -> None:
        c = theme.colors()
        colours = {"pending": c.warning, "retrying": c.accent, "resolved": c.ok, "discarded": c.muted}
        parts = [f"<span style='color:{colours[s]}'>●</span> {s.capitalize()} <b>{stats.get(s, 0):,}</b>"
                 for s in STATUSES]
        parts.append(f"Total <b>{stats.get('total', sum(stats.get(s, 0) for s in STATUSES)):,}</b>")
        more = f" · showing the newest {LIMIT:,}" if shown >= LIMIT else ""
        self.stats_label.setText(" &nbsp; ".join(parts) + more)
        self.stats = stats

    def _text_changed(self, text: str) -> None:
        self.proxy.set_text(text)  # at once over what is loaded
        self._text_timer.start()  # then the store's answer, beyond the loaded page

    # ------------------------------------------------------------------ selection and inspection

    def selected_ids(self) -> list[str]:
        return selected_ids(self.view, ID_ROLE)

    def selected_entries(self) -> list[DlqEntry]:
        found = (self.model.by_id(i) for i in self.selected_ids())
        return [e for e in found if e is not None]

    def select(self, entry_ids: list[str]) -> None:
        """Select these entries (those loaded) in the table."""
        self._select(entry_ids)

    def _select(self, entry_ids: list[str]) -> None:
        select_rows(self.view, (self.proxy.mapFromSource(self.model.index(self.model.row_of(i), 0))
                                for i in entry_ids))

    def _selection_changed(self) -> None:
        self._update_actions()
        entries = self.selected_entries()
        if len(entries) == 1 and self.service is not None:
            generation = self._detail_generation.next()
            self._show_detail(entries[0])
            spawn(self._fetch_detail(self.service, entries[0].id, generation),
                  what="Reading the DLQ entry")
        elif len(entries) > 1:
            self._show_detail(None, f"{len(entries)} entries selected")
        else:
            self._show_detail(None)

    async def _fetch_detail(self, service: StudioService, entry_id: str, generation: Token) -> None:
        """The entry as the service has it now (the list may be a few seconds old)."""
        try:
            entry = await service.get_dlq(entry_id)
        except ServiceError as exc:
            if self._detail_generation.is_current(generation):
                self.message.say(f"Could not read entry {entry_id}: {describe(exc)}", error=True)
            return
        if self._detail_generation.is_current(generation) and service is self.service:
            self.model.replace(entry)
            self._show_detail(entry)
            self._update_actions()

    def _show_detail(self, entry: DlqEntry | None, title: str = "Select an entry to inspect it") -> None:
        self.shown_entry = entry
        if entry is None:
            self.detail_title.setText(title)
            self.detail_model.set_value({})
        else:
            self.detail_title.setText(
                f"<b>{entry.pipeline}</b>{' · step ' + entry.step if entry.step else ''} · {entry.status} · "
                f"{entry.retry_count}/{entry.max_retries} retries · created {when(entry.created)}"
                f"{' · resolved ' + when(entry.resolved) if entry.resolved else ''}<br>"
                f"<small>entry {entry.id} · execution {entry.execution_id or '—'}"
                f"{' · last retry ' + entry.last_retry_id if entry.last_retry_id else ''}</small>")
            self.detail_model.set_value(
                {"error": {"message": entry.error, "type": entry.error_type, "step": entry.step},
                 "payload": entry.payload})
            self.detail.expandToDepth(0)
        self.copy_payload.setEnabled(entry is not None)
        self.open_button.setEnabled(bool(entry and entry.execution_id))
        self.open_retry.setEnabled(bool(entry and entry.last_retry_id))

    def _copy_payload(self) -> None:
        if self.shown_entry is not None:
            QGuiApplication.clipboard().setText(to_json(self.shown_entry.payload))
            self.message.say("Payload copied as JSON")

    def _update_actions(self) -> None:
        entries = self.selected_entries()
        idle = self.service is not None and not self.busy
        pending = [e for e in entries if e.status == "pending"]
        self.retry_button.setEnabled(idle and bool(pending))
        self.retry_changes.setEnabled(idle and bool(pending))
        self.resolve_button.setEnabled(idle and bool(pending))
        self.discard_button.setEnabled(idle and bool(pending))
        self.purge_button.setEnabled(idle)
        self.purge_age.setEnabled(idle)

    # ------------------------------------------------------------------ opening executions

    def open_execution(self, execution_id: str) -> None:
        """Show an execution everywhere: the hub selects it, the window may raise the timeline."""
        if not execution_id:
            return
        self.hub.select_execution(execution_id)
        self.openExecution.emit(execution_id)

    def open_selected(self) -> None:
        entries = self.selected_entries()
        if entries and entries[0].execution_id:
            self.open_execution(entries[0].execution_id)
        elif entries:
            self.message.say("This entry has no execution (it came from a connector or a dlq_send "
                             "outside a run)")

    def _open_last_retry(self) -> None:
        entries = self.selected_entries()
        if entries and entries[0].last_retry_id:
            self.open_execution(entries[0].last_retry_id)

    def _double_clicked(self, index: QModelIndex) -> None:
        entry = self.model.by_id(str(index.data(ID_ROLE)))
        if entry is None:
            return
        if index.column() == EXECUTION or entry.execution_id:
            self.open_execution(entry.execution_id or "")

    def _context_menu(self, pos: QPoint) -> None:
        entries = self.selected_entries()
        if not entries:
            return
        menu = QMenu(self)
        entry = entries[0]
        if entry.execution_id:
            menu.addAction("Open failed execution", self.open_selected)
        if entry.last_retry_id:
            menu.addAction("Open last retry", self._open_last_retry)
        menu.addSeparator()
        for button in (self.retry_button, self.retry_changes, self.resolve_button, self.discard_button):
            action = menu.addAction(button.text(), button.click)
            action.setEnabled(button.isEnabled())
        menu.addSeparator()
        clipboard = QGuiApplication.clipboard()
        menu.addAction("Copy payload as JSON", lambda: clipboard.setText(to_json(entry.payload)))
        menu.addAction("Copy entry id", lambda: clipboard.setText(entry.id))
        menu.popup(self.view.viewport().mapToGlobal(pos))

    # ------------------------------------------------------------------ retry

    def retry_selected(self, patch: list[dict[str, Any]] | None = None, *, force: bool = False) -> None:
        entries = self.selected_entries()
        if entries:
            self.retry([e.id for e in entries], patch, force=force)

    def retry_with_changes(self) -> None:
        entries = [e for e in self.selected_entries() if e.status == "pending"] or self.selected_entries()
        if not entries or self.busy:
            return
        dialog = DlqRetryDialog(entries, self)
        # Deleted when answered (not WA_DeleteOnClose: deleting such a window after its answer hid
        # its parent crashes PySide).
        dialog.finished.connect(dialog.deleteLater)
        ids = [e.id for e in entries]
        dialog.accepted.connect(lambda: self.retry(ids, dialog.patch(), force=dialog.force.isChecked()))
        dialog.open()

    def retry(self, entry_ids: list[str], patch: list[dict[str, Any]] | None = None, *,
              force: bool = False) -> None:
        """Retry these entries (the progress bar follows), then reload."""
        if self.service is None or self.busy or not entry_ids:
            return
        self._set_busy(True)  # now, not when the task starts: a second click does nothing
        self.progress.setRange(0, len(entry_ids))
        self.progress.setValue(0)
        self.progress.show()
        self.message.say(f"Retrying {len(entry_ids)} entr{'y' if len(entry_ids) == 1 else 'ies'}…")
        spawn(self._retry(self.service, entry_ids, patch, force), what="Retrying DLQ entries")

    async def _retry(self, service: StudioService, ids: list[str], patch: list[dict[str, Any]] | None,
                     force: bool) -> None:

        def progress(done: int, total: int) -> None:
            self.progress.setRange(0, max(total, 1))
            self.progress.setValue(done)

        try:
            results = await service.retry_dlq(ids, patch, progress, force)
        except ServiceError as exc:
            self.progress.hide()
            self.message.say(f"Nothing was retried: {describe(exc)}", error=True)
            return
        finally:
            self._set_busy(False)
        self.progress.setValue(self.progress.maximum())
        self.last_results = results
        self.message.say(_retry_summary(results), error=any(r.status != "completed" for r in results))
        if service is self.service:
            self.refresh()

    # ------------------------------------------------------------------ resolve, discard, purge

    def finish_selected(self, action: str) -> None:
        """``action``: "resolve" or "discard" every selected pending entry."""
        entries = [e for e in self.selected_entries() if e.status == "pending"]
        if self.service is None or self.busy or not entries:
            return
        self._set_busy(True)
        spawn(self._finish(self.service, [e.id for e in entries], action),
              what=f"{action.capitalize()} DLQ entries")

    async def _finish(self, service: StudioService, ids: list[str], action: str) -> None:
        done: list[str] = []
        problems: list[str] = []
        try:
            for entry_id in ids:
                try:
                    if action == "resolve":
                        entry = await service.resolve_dlq(entry_id)
                    else:
                        entry = await service.discard_dlq(entry_id)
                except ServiceError as exc:
                    problems.append(describe(exc))
                    continue
                done.append(entry.id)
                if service is self.service:
                    self.model.replace(entry)
        finally:
            self._set_busy(False)
        past = "resolved" if action == "resolve" else "discarded"
        text = f"{len(done)} entr{'y' if len(done) == 1 else 'ies'} {past}"
        if problems:
            text += f"; {len(problems)} not: {problems[0]}"
        self.message.say(text, error=bool(problems))
        if service is self.service:
            self.refresh()

    def ask_purge(self) -> None:
        """Ask, then delete resolved and discarded entries older than the chosen age."""
        if self.service is None or self.busy:
            return
        seconds = float(self.purge_age.currentData())
        age = self.purge_age.currentText()
        confirm(self, "dlqPurgeConfirm", "Purge the dead-letter queue",
                f"Delete every resolved and discarded entry {age}?\n\nPending and retrying "
                "entries are kept. This cannot be undone.", "Purge", lambda: self.purge(seconds))

    def purge(self, older_than: float) -> None:
        if self.service is not None and not self.busy:
            self._set_busy(True)
            spawn(self._purge(self.service, older_than), what="Purging the dead-letter queue")

    async def _purge(self, service: StudioService, older_than: float) -> None:
        try:
            count = await service.purge_dlq(older_than)
        except ServiceError as exc:
            self.message.say(f"Nothing was purged: {describe(exc)}", error=True)
            return
        finally:
            self._set_busy(False)
        self.message.say(f"Purged {count} entr{'y' if count == 1 else 'ies'}")
        if service is self.service:
            self.refresh()

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        self._update_actions()


def _retry_summary(results: list[DlqRetryResult]) -> str:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    parts = [f"{n} {status}" for status, n in sorted(counts.items())]
    text = f"Retried {len(results)}: " + ", ".join(parts)
    failed = next((r for r in results if r.status != "completed" and r.error), None)
    if failed is not None:
        text += f". {failed.entry_id[:12]}: {failed.error}"
    return text

