"""Timeline pane benchmarks (offscreen Qt) on a real recorded execution of ~50,000 events.

    python benchmarks/bench_timeline.py [--items N] [--frames N] [--repeat N]

The execution is real: a pipeline whose ``step.foreach`` runs 2 sub-steps over ``--items``
items (concurrency 4), run through the embedded LocalService into a SQLite store; 6,250
items make 50,010 events and 12,502 step runs.

(a) opening it in the pane: ``await pane.load(id)`` (service.timeline + the marker events +
    building lanes and bar arrays in a worker thread) and the first paint, median of
    ``--repeat``; baseline: ``service.timeline(id)`` alone, same run;
(b) frame time zoomed out and panned: the plot widget rendered into a QImage per frame while
    the view pans (time and lanes), median and p95 over ``--frames``, in three states: the
    default lanes (iterations grouped by 100), every lane expanded, and zoomed in to 5%;
    baseline: an empty plot of the same size rendered the same way;
(c) following a running execution of the same size (each iteration waits 2 ms, so it runs
    for seconds): its run time and the GUI loop's lag (a 5 ms QTimer's lateness, p99) with the
    pane following it live; baseline: the same run with the pane idle.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PIPELINE = """
name: bench-timeline
pipelines:
  fan:
    steps:
      - name: loop
        type: step.foreach
        config:
          collection: "{{ .items }}"
          item_var: it
          concurrency: 4
          steps:
            - {name: fetch, type: step.set, config: {values: {x: "{{ .it }}"}}}
            - {name: store, type: step.set, config: {values: {y: "{{ .it }}"}}}
      - {name: done, type: step.set, config: {values: {ok: true}}}
"""
SLOW_PIPELINE = """
name: bench-timeline-live
pipelines:
  slow-fan:
    steps:
      - name: loop
        type: step.foreach
        config:
          collection: "{{ .items }}"
          item_var: it
          concurrency: 8
          steps:
            - {name: fetch, type: step.delay, config: {duration: 2ms}}
            - {name: store, type: step.set, config: {values: {y: "{{ .it }}"}}}
"""
WIDTH, HEIGHT = 1400, 800


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def _row(label: str, value: str, baseline: str, target: str) -> None:
    print(f"  {label:<46} {value:>22}   baseline {baseline:>22}   target {target}")


async def _record(folder: Path, items: int) -> tuple[object, str, int, int, float]:
    from engine.service.local import LocalService
    from engine.service.models import RunOptions

    file = folder / "fan.yaml"
    file.write_text(PIPELINE)
    service = await LocalService.open([file], store=f"sqlite:///{folder / 'store.db'}")
    started = time.perf_counter()
    result = await service.run("fan", {"items": list(range(items))}, RunOptions(record="metadata"))
    took = time.perf_counter() - started
    summary = await service.get_execution(result.execution_id)
    timeline = await service.timeline(result.execution_id)
    return service, result.execution_id, summary.event_count, len(timeline.steps), took


def _frames(widget, pan, frames: int) -> list[float]:  # type: ignore[no-untyped-def]
    from PySide6.QtGui import QImage, QPainter

    image = QImage(widget.size(), QImage.Format.Format_ARGB32_Premultiplied)
    times = []
    for i in range(frames):
        pan(i)
        started = time.perf_counter()
        painter = QPainter(image)
        widget.render(painter)
        painter.end()
        times.append((time.perf_counter() - started) * 1000)
    return times


async def _follow(service, pane, items: int, follow: bool) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """(run seconds, lag p99 ms, seconds from its end until the pane shows the final timeline)."""
    from PySide6.QtCore import QTimer

    from engine.service.models import RunOptions

    lates: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        lates.append(max(0.0, (now - last[0]) * 1000 - 5))
        last[0] = now

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(tick)
    timer.start()
    result = await service.run("slow-fan", {"items": list(range(items))},
                               RunOptions(wait=False, record="metadata"))
    if follow:
        await pane.load(result.execution_id)
    summary = None
    while True:
        await asyncio.sleep(0.005)
        shown = pane.model is not None and pane.execution_id == result.execution_id \
            and not pane.following and not pane.loading and not pane.model.running
        if shown or not follow:
            summary = await service.get_execution(result.execution_id)
            if summary.ended_at is not None:
                break
    shown_at = time.time()  # wall clock, like the engine's ended_at
    timer.stop()
    assert summary is not None and summary.ended_at is not None
    return summary.ended_at - summary.started_at, _pct(lates, 0.99), shown_at - summary.ended_at


async def run(items: int, frames: int, repeat: int) -> None:
    import pyqtgraph as pg

    from app.executions.timeline import TimelinePane
    from app.executions.timeline_items import TimeAxis
    from app.selection import SelectionHub

    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("DATA_DIR", tmp)
        service, execution_id, events, runs, took = await _record(Path(tmp), items)
        print(f"  recorded: {events} events, {runs} step runs ({items} iterations) in {took:.1f} s")
        try:
            base, base_nogc = [], []
            for _ in range(repeat):
                started = time.perf_counter()
                await service.timeline(execution_id)  # type: ignore[attr-defined]
                base.append((time.perf_counter() - started) * 1000)
                gc.disable()  # as the pane reads it (see timeline._gc_paused)
                started = time.perf_counter()
                await service.timeline(execution_id)  # type: ignore[attr-defined]
                base_nogc.append((time.perf_counter() - started) * 1000)
                gc.enable()

            pane = TimelinePane(SelectionHub())
            pane.resize(WIDTH, HEIGHT)
            pane.show()
            pane.set_service(service)  # type: ignore[arg-type]
            opened = []
            for _ in range(repeat):
                pane.clear()
                await asyncio.sleep(0.01)  # Qt events run on the loop
                started = time.perf_counter()
                await pane.load(execution_id)
                pane.plot.viewport().repaint()
                opened.append((time.perf_counter() - started) * 1000)
            _row("open 50k-event execution (load + 1st paint)", f"median {_median(opened):.0f} ms",
                 f"timeline() {_median(base):.0f} ms", "< 300 ms")
            print(f"  {'':<46} (timeline() alone with the GC paused as the pane does: "
                  f"{_median(base_nogc):.0f} ms)")

            # baseline plot: same widget size, a view box and a time axis, nothing in it
            empty = pg.GraphicsLayoutWidget()
            vb = pg.ViewBox()
            axis = TimeAxis("bottom")
            axis.linkToView(vb)
            empty.addItem(vb, row=0, col=0)
            empty.addItem(axis, row=1, col=0)
            empty.resize(pane.plot.size())
            empty.show()
            await asyncio.sleep(0.01)  # Qt events run on the loop
            model = pane.model
            assert model is not None
            span = model.duration()
            baseline = _frames(empty, lambda i: vb.translateBy(x=0.01 * (1 if i % 20 < 10 else -1)), frames)

            def pan(fraction: float) -> object:
                def step(i: int) -> None:
                    (x0, x1), _ = pane.vb.viewRange()
                    direction = 1 if i % 20 < 10 else -1
                    pane.vb.translateBy(x=(x1 - x0) * fraction * direction, y=direction * 0.5)
                return step

            pane.zoom_to_fit()
            pane.vb.scaleBy(x=1.05)  # zoomed out: the whole run and a margin, panning inside the limits
            await asyncio.sleep(0.01)  # Qt events run on the loop
            states = []
            default = _frames(pane.plot, pan(0.01), frames)
            states.append(("frame, zoomed out, lanes grouped", default, pane.bars.last_rects))
            pane.expand_all()
            pane.zoom_to_fit()
            await asyncio.sleep(0.01)  # Qt events run on the loop
            expanded = _frames(pane.plot, pan(0.01), frames)
            states.append((f"frame, zoomed out, all {len(pane.state.layout.rows)} lanes", expanded,
                           pane.bars.last_rects))
            middle = model.items[model.bar_count // 2]  # a step run half-way: its lanes come into view
            pane.hub.select_step_run(execution_id, middle.path, middle.seq)
            centre = float(model.start[model.bar_count // 2])
            pane.vb.setXRange(centre - span * 0.025, centre + span * 0.025, padding=0)
            await asyncio.sleep(0.01)  # Qt events run on the loop
            zoomed = _frames(pane.plot, pan(0.05), frames)
            states.append(("frame, zoomed in to 5%, panned", zoomed, pane.bars.last_rects))
            for label, times, rects in states:
                _row(label, f"median {_median(times):.1f} ms p95 {_pct(times, 0.95):.1f}",
                     f"empty {_median(baseline):.1f} ms", "< 50 ms")
                print(f"  {'':<46} ({rects} merged rectangles in the last frame)")
            hits = []
            for i in range(200):  # hover: the tooltip lookup per mouse move
                point = pane.plot.viewport().rect().center()
                point.setX(250 + (i * 5) % (WIDTH - 300))
                started = time.perf_counter()
                pane.hover_text(point)
                hits.append((time.perf_counter() - started) * 1000)
            _row("hover lookup (tooltip)", f"median {_median(hits):.2f} ms", "-", "< 16 ms")

            slow = Path(tmp) / "slow.yaml"
            slow.write_text(SLOW_PIPELINE)
            await service.load_file(slow)  # type: ignore[attr-defined]
            pane.clear()
            idle_s, idle_lag, _ = await _follow(service, pane, items, follow=False)
            live_s, live_lag, settle = await _follow(service, pane, items, follow=True)
            _row("live: run time while the pane follows it", f"{live_s:.2f} s", f"idle {idle_s:.2f} s", "-")
            _row("live: GUI loop lag p99 while following", f"{live_lag:.0f} ms", f"idle {idle_lag:.0f} ms",
                 "-")
            _row("live: end -> final timeline shown", f"{settle * 1000:.0f} ms", "-", "-")
            pane.close()
            empty.close()
            pane.deleteLater()
            empty.deleteLater()
            await asyncio.sleep(0.01)  # Qt events run on the loop
        finally:
            await service.close()  # type: ignore[attr-defined]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=6250, help="foreach items (8 events each)")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print("== timeline pane")
    import qasync
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    app.setQuitOnLastWindowClosed(False)  # closing the pane must not stop the loop
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        loop.run_until_complete(run(args.items, args.frames, args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
