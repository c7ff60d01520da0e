"""Executions panel benchmark (offscreen Qt): first page shown, scroll frame time over 100,000 rows.

    python benchmarks/bench_executions.py [--executions N] [--rebuild]

The store is a real SQLite store filled through the engine's recorder (the path every
execution takes: an ``executions`` row and its start and end events per execution, group
committed), kept under /tmp and reused when present. The panel reads it through the
embedded LocalService, as in the studio.

- first page shown: ``refresh()`` until the rows are in the model and the view has
  painted them (median of several), next to the service's ``list_executions`` alone;
- scroll: the view is scrolled by pages from the first row to the last of all executions
  (``--stride`` pages per frame, 4 by default: every frame repaints a whole page of new
  rows either way; pages are read from the service as the view reaches the bottom, between
  frames); each frame is the scroll plus a synchronous repaint. Baseline, same run: the same
  QTableView over a plain in-memory model holding all the rows as preformatted strings.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import qasync
from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtWidgets import QAbstractItemView, QApplication, QHeaderView, QTableView

from app.executions.executions_panel import ExecutionsPanel
from app.executions.list_model import COLUMNS, ExecutionListModel
from app.selection import SelectionHub
from engine.service.local import LocalService
from engine.service.models import ExecutionFilter
from engine.store.records import EventRecord, ExecutionRecord
from engine.store.store import Store

PIPELINES = ["create-order", "score-users", "triage", "sync-accounts", "nightly-report"]
TRIGGERS = ["manual", "http", "schedule", "http", "manual"]
WINDOW = (1400, 900)


def store_path(executions: int) -> Path:
    return Path(tempfile.gettempdir()) / f"wfstudio-bench-executions-{executions}.db"


def build_store(path: Path, executions: int) -> float:
    """Record ``executions`` finished executions through the recorder; returns seconds taken."""
    building = path.with_suffix(".building")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{building}{suffix}").unlink(missing_ok=True)
    start = time.perf_counter()
    store = Store.open(f"sqlite:///{building}")
    rec = store.recorder
    now = time.time()

    async def fill() -> None:
        for n in range(executions):
            eid = f"{n:08d}-{n * 2654435761 % 2**32:08x}"
            pipeline = PIPELINES[n % len(PIPELINES)]
            started = now - (executions - n) * 2.0  # one every 2 s, the newest just now
            failed = n % 10 == 7
            duration = 5.0 + (n * 37) % 900
            payload = {"n": n, "sku": f"AB-{n % 97}", "qty": 1 + n % 5}
            ex = ExecutionRecord(id=eid, pipeline=pipeline, status="running",
                                 trigger_type=TRIGGERS[n % len(TRIGGERS)], trigger_payload=payload,
                                 started_at=started, definition_hash="bench",
                                 replay_of=f"{n - 3:08d}-{(n - 3) * 2654435761 % 2**32:08x}"
                                 if n % 50 == 3 else None)
            rec.execution(ex)
            rec.event(EventRecord(eid, 1, "execution.started",
                                  {"pipeline": pipeline, "trigger": {"type": ex.trigger_type,
                                                                     "payload": payload}}, started))
            ended = started + duration / 1000
            if failed:
                error = {"message": f"step charge failed: card declined ({n})", "type": "http"}
                rec.event(EventRecord(eid, 2, "execution.failed",
                                      {"error": error, "duration_ms": duration}, ended))
                ex.status, ex.error = "failed", error
            else:
                rec.event(EventRecord(eid, 2, "execution.completed",
                                      {"output": {"ok": True, "n": n}, "duration_ms": duration}, ended))
                ex.status, ex.output = "completed", {"ok": True, "n": n}
            ex.ended_at, ex.duration_ms, ex.event_count = ended, duration, 2
            rec.execution(ex)
            if n % 2000 == 1999:
                await rec.flush()
        await rec.flush()

    asyncio.run(fill())
    store.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{building}{suffix}").unlink(missing_ok=True)
    os.replace(building, path)
    return time.perf_counter() - start


class PlainModel(QAbstractTableModel):
    """The baseline: every row in memory as preformatted strings, no paging."""

    def __init__(self, rows: list[tuple[str, ...]]) -> None:
        super().__init__()
        self.rows = rows

    def rowCount(self, parent: Any = None) -> int:
        return len(self.rows)

    def columnCount(self, parent: Any = None) -> int:
        return len(COLUMNS)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            return self.rows[index.row()][index.column()]
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None


def configure_like_panel(view: QTableView, panel_view: QTableView) -> None:
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setAlternatingRowColors(True)
    view.setWordWrap(False)
    view.setShowGrid(False)
    view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
    view.verticalHeader().hide()
    view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    view.verticalHeader().setDefaultSectionSize(panel_view.verticalHeader().defaultSectionSize())
    view.horizontalHeader().setStretchLastSection(True)
    for column in range(len(COLUMNS)):
        view.setColumnWidth(column, panel_view.columnWidth(column))


async def until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the panel did not get there in time")
        await asyncio.sleep(0)


def frame(view: QTableView, value: int) -> float:
    """Scroll to ``value`` and paint: the milliseconds the GUI thread spends on one frame."""
    start = time.perf_counter()
    view.verticalScrollBar().setValue(value)
    view.viewport().repaint()
    return (time.perf_counter() - start) * 1000


async def scroll_panel(panel: ExecutionsPanel, total: int,
                       stride: int) -> tuple[list[float], list[float]]:
    """Frames from the top to the last of ``total`` rows; also the page reads' latency (ms)."""
    view, model = panel.view, panel.model
    bar = view.verticalScrollBar()
    frames: list[float] = []
    reads: list[float] = []
    asked: list[float] = []
    # A page is asked for inside a frame (the view reached the bottom) and read right after
    # it, on the GUI thread too: from the end of that frame to the rows inserted.
    model.wantMore.connect(lambda: asked.append(time.perf_counter()))
    model.rowsInserted.connect(
        lambda *_: reads.append((time.perf_counter() - asked.pop()) * 1000) if asked else None)
    bar.setValue(0)
    while True:
        if model.loading:
            await until(lambda: not model.loading)
        if bar.value() >= bar.maximum() and not model.canFetchMore(QModelIndex()):
            break
        frames.append(frame(view, min(bar.value() + stride * bar.pageStep(), bar.maximum())))
        if model.loading and asked:
            asked[-1] = time.perf_counter()  # the read starts once the frame is done
        await asyncio.sleep(0)  # let a page read that the frame started run
    assert model.rowCount() == total, (model.rowCount(), total)
    return frames, reads


def scroll_plain(view: QTableView, stride: int) -> list[float]:
    bar = view.verticalScrollBar()
    bar.setValue(0)
    frames = []
    while bar.value() < bar.maximum():
        frames.append(frame(view, min(bar.value() + stride * bar.pageStep(), bar.maximum())))
    return frames


def stats(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"mean {statistics.fmean(values):6.2f} ms · p95 {p95:6.2f} ms · max {ordered[-1]:6.2f} ms"


async def measure(service: LocalService, total: int, stride: int) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    hub = SelectionHub()
    panel = ExecutionsPanel(hub)
    panel.resize(*WINDOW)
    panel.show()
    panel.set_service(service)
    await until(lambda: panel.model.rowCount() > 0)

    # First page shown: refresh until the rows are in and painted.
    firsts = []
    resets: list[float] = []
    panel.model.modelReset.connect(lambda: resets.append(time.perf_counter()))
    for _ in range(15):
        resets.clear()
        start = time.perf_counter()
        panel.refresh()
        await until(lambda: bool(resets))
        panel.view.viewport().repaint()
        firsts.append((time.perf_counter() - start) * 1000)
    listing = []
    for _ in range(15):
        start = time.perf_counter()
        await service.list_executions(ExecutionFilter(limit=200))
        listing.append((time.perf_counter() - start) * 1000)
    rows.append(("first page shown (refresh → 200 rows painted), median",
                 f"{statistics.median(firsts):.1f} ms",
                 f"list_executions(limit=200) alone: {statistics.median(listing):.1f} ms"))

    visible = panel.view.viewport().height() // panel.view.verticalHeader().defaultSectionSize()
    start = time.perf_counter()
    frames, reads = await scroll_panel(panel, total, stride)
    elapsed = time.perf_counter() - start
    every = f", every {stride}th page" if stride > 1 else ""
    rows.append((f"panel scroll frame, {total:,} rows, {len(frames):,} frames{every} (~{visible} rows)",
                 stats(frames), ""))
    rows.append(("  page read between frames (1,000 rows read and inserted)", stats(reads),
                 f"{len(reads)} pages; whole scroll {elapsed:.1f} s"))

    # Baseline: the same view over every row already in memory, preformatted.
    model: ExecutionListModel = panel.model
    plain_rows = [tuple(model.index(r, c).data() or "" for c in range(len(COLUMNS)))
                  for r in range(model.rowCount())]
    plain = PlainModel(plain_rows)
    view = QTableView()
    view.setModel(plain)
    configure_like_panel(view, panel.view)
    view.resize(panel.view.size())
    view.show()
    await asyncio.sleep(0.2)  # laid out and shown
    base = scroll_plain(view, stride)
    rows.append((f"baseline: same QTableView, plain in-memory model of {len(plain_rows):,} rows",
                 stats(base), ""))
    view.deleteLater()
    panel.stop()
    panel.deleteLater()
    await asyncio.sleep(0.05)  # the deletions happen while the loop still runs
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached store")
    parser.add_argument("--stride", type=int, default=4,
                        help="pages scrolled per frame (each frame repaints a whole page "
                             "whatever the stride; 1 shows every page)")
    args = parser.parse_args()
    path = store_path(args.executions)
    note = "reused"
    if args.rebuild or not path.exists():
        note = f"recorded in {build_store(path, args.executions):.0f} s"
    app = QApplication.instance() or QApplication([])
    app.setQuitOnLastWindowClosed(False)  # closing the measured windows must not stop the loop
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)

    async def run() -> list[tuple[str, str, str]]:
        service = await LocalService.open(store=f"sqlite:///{path}")
        try:
            return await measure(service, args.executions, max(1, args.stride))
        finally:
            await service.close()

    rows = [(f"store: {args.executions:,} executions", "", note), *loop.run_until_complete(run())]
    loop.close()  # joins the loop's worker threads
    width = max(len(r[0]) for r in rows)
    print(f"{'executions panel':<{width}}  result")
    for name, value, extra in rows:
        print(f"{name:<{width}}  {value}" + (f"  ({extra})" if extra else ""))


if __name__ == "__main__":
    main()
