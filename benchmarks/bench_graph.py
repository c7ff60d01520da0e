"""Graph editor benchmarks on a generated 2,000-step pipeline (offscreen Qt).

    python benchmarks/bench_graph.py [--steps 2000] [--frames 60]

(a) open: a GraphPane showing a new PipelineDocument of the text (parse, layout, scene),
    against a scene of as many plain QGraphicsRectItems + QGraphicsLineItems;
(b) auto-layout alone, median of 5, against the outline parse of the same text;
(c) frame time of panning (at 100 %) and zooming (from the whole graph to 150 %): each frame
    moves the view and paints it synchronously (viewport().repaint()); mean and p95, against
    the same frames over the plain-rect scene. Target: < 16 ms a frame.

``run()`` returns the figures as a dict; ``make bench`` prints them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QPen, QTransform
from PySide6.QtWidgets import QApplication, QGraphicsScene, QGraphicsView

from app.editor.document import PipelineDocument
from app.editor.graph.layout import layout_pipeline
from app.editor.graph.pane import GraphPane
from app.editor.outline import FALLBACK_SHAPES, parse_outline

VIEW_W, VIEW_H = 1280, 800


def generate_pipeline(steps: int = 2000) -> str:
    """A pipeline of about ``steps`` steps (sub-steps included) with every kind of edge."""
    lines = [
        "name: generated",
        "pipelines:",
        "  big:",
        "    trigger: {type: http, config: {method: POST, path: /big}}",
        "    steps:",
    ]
    count = 0
    i = 0
    while count < steps:
        name = f"s{i}"
        if i % 40 == 7:
            lines += [
                f"      - name: {name}",
                "        type: step.foreach",
                "        config:",
                "          collection: '{{ .items }}'",
                "          steps:",
            ]
            lines += [
                f"            - {{name: {name}-{k}, type: step.set, config: {{values: {{k: {k}}}}}}}"
                for k in range(3)
            ]
            count += 4
        elif i % 100 == 13:
            lines += [
                f"      - name: {name}",
                "        type: step.branch",
                "        config:",
                "          field: '{{ .kind }}'",
                "          branches:",
            ]
            for arm in ("a", "b"):
                lines.append(f"            {arm}:")
                lines += [
                    f"              - {{name: {name}-{arm}{k}, type: step.log, config: {{message: hi}}}}"
                    for k in range(2)
                ]
            lines.append(f"          merge_step: s{i + 3}")
            count += 5
        elif i % 25 == 3:
            lines += [
                f"      - name: {name}",
                "        type: step.conditional",
                "        config:",
                "          field: '{{ .kind }}'",
                f"          routes: {{a: s{i + 2}, b: s{i + 4}}}",
                f"          default: s{i + 1}",
            ]
            count += 1
        elif i % 30 == 11:
            lines += [
                f"      - name: {name}",
                "        type: step.http_call",
                "        config: {url: 'https://example.com/{{ .id }}'}",
                f"        compensate: {{name: undo-{name}, type: step.log, config: {{message: undo}}}}",
            ]
            count += 2
        else:
            lines += [
                f"      - name: {name}",
                "        type: step.set",
                f"        config: {{values: {{n: {i}}}}}",
            ]
            count += 1
        i += 1
    return "\n".join(lines) + "\n"


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"mean": statistics.fmean(samples), "p95": p95}


def _frames(view: QGraphicsView, bounds: QRectF, frames: int) -> tuple[list[float], list[float]]:
    """(pan frame times at 100 %, zoom frame times from fit-all to 150 %), each frame repainted."""
    view.setTransform(QTransform())
    view.centerOn(bounds.center().x(), bounds.top() + VIEW_H / 2)
    view.viewport().repaint()
    pan = []
    step = max(4.0, (bounds.height() - VIEW_H) / frames)
    for k in range(frames):
        y = bounds.top() + VIEW_H / 2 + k * step
        pan.append(_timed(lambda y=y: (view.centerOn(bounds.center().x(), y), view.viewport().repaint())))
    fit = min(VIEW_W / bounds.width(), VIEW_H / bounds.height())
    zoom = []
    centre = QPointF(bounds.center().x(), bounds.top() + bounds.height() * 0.3)
    for k in range(frames):
        scale = fit * (1.5 / fit) ** (k / (frames - 1))

        def frame(scale: float = scale) -> None:
            view.setTransform(QTransform.fromScale(scale, scale))
            view.centerOn(centre)
            view.viewport().repaint()

        zoom.append(_timed(frame))
    return pan, zoom


def run(steps: int = 2000, frames: int = 60) -> dict[str, float]:
    app = QApplication.instance() or QApplication([])
    out: dict[str, float] = {}
    text = generate_pipeline(steps)

    # (a) open: document + pane (parse, layout, items) against plain items
    pane_holder: list[GraphPane] = []

    def open_graph() -> None:
        doc = PipelineDocument(text)
        pane = GraphPane(doc)
        pane_holder.append(pane)

    out["open_ms"] = _timed(open_graph)
    pane = pane_holder[0]
    p = pane.scene.pipeline
    assert p is not None
    out["steps"] = float(len(p.nodes))
    layout = pane.scene.layout
    assert layout is not None

    plain = QGraphicsScene()

    def build_plain() -> None:
        pen = QPen()
        for step_id, box in layout.boxes.items():
            plain.addRect(QRectF(box.x, box.y, box.w, box.h), pen)
            plain.addSimpleText(step_id).setPos(box.x + 8, box.y + 8)
        for edge in layout.edges:
            for (x0, y0), (x1, y1) in zip(edge.points, edge.points[1:], strict=False):
                plain.addLine(x0, y0, x1, y1, pen)

    out["open_baseline_plain_items_ms"] = _timed(build_plain)

    # (b) layout alone against the outline parse of the same text
    out["layout_ms"] = statistics.median(
        _timed(lambda: layout_pipeline(p, FALLBACK_SHAPES)) for _ in range(5)
    )
    out["layout_baseline_parse_ms"] = statistics.median(
        _timed(lambda: parse_outline(text, FALLBACK_SHAPES)) for _ in range(5)
    )

    # (c) frames: the pane's view against a plain view of the plain scene, same size and hints
    pane.resize(VIEW_W, VIEW_H + 40)
    pane.show()
    view = pane.view
    view.resize(VIEW_W, VIEW_H)
    app.processEvents()
    pane.minimap.hide()
    b = layout.bounds
    bounds = QRectF(b.x, b.y, b.w, b.h)
    pan, zoom = _frames(view, bounds, frames)
    base_view = QGraphicsView(plain)
    base_view.setRenderHints(view.renderHints())
    base_view.resize(VIEW_W, VIEW_H)
    base_view.show()
    app.processEvents()
    base_pan, base_zoom = _frames(base_view, bounds, frames)
    for name, samples in (
        ("pan", pan),
        ("zoom", zoom),
        ("pan_baseline_plain", base_pan),
        ("zoom_baseline_plain", base_zoom),
    ):
        for stat, value in _stats(samples).items():
            out[f"{name}_frame_{stat}_ms"] = value
    base_view.close()
    pane.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    r = run(args.steps, args.frames)
    print(f"graph editor, generated pipeline of {int(r['steps'])} steps (offscreen, {VIEW_W}x{VIEW_H})")
    print(
        f"  open (parse + layout + scene)  {r['open_ms']:8.1f} ms   baseline plain items "
        f"{r['open_baseline_plain_items_ms']:8.1f} ms"
    )
    print(
        f"  auto-layout                    {r['layout_ms']:8.1f} ms   baseline outline parse "
        f"{r['layout_baseline_parse_ms']:6.1f} ms"
    )
    for kind in ("pan", "zoom"):
        base = f"{kind}_baseline_plain_frame"
        print(
            f"  {kind:<5} frame mean / p95         {r[f'{kind}_frame_mean_ms']:6.2f} / "
            f"{r[f'{kind}_frame_p95_ms']:6.2f} ms   baseline plain items "
            f"{r[f'{base}_mean_ms']:6.2f} / {r[f'{base}_p95_ms']:6.2f} ms   (target < 16 ms)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
