"""Studio benchmarks (offscreen Qt): start-up time and GUI-thread lag while runs execute.

    python benchmarks/bench_studio.py [--startups N] [--runs N] [--in-flight N]

Start-up: ``python -m app.main --startup-probe`` in a fresh process, timed from its launch
(the launcher's clock, passed in ``WFSTUDIO_LAUNCHED``: interpreter start included, exit
excluded) to the main window shown, and to the embedded engine ready with the example
workspace loaded (the window is usable before that). Baseline, same run: a fresh process
that imports PySide6 and shows an empty QMainWindow, timed the same way.

Event-loop lag: a 5 ms QTimer on the studio's qasync loop records how late it fires while
``--runs`` executions of a 5-step pipeline (recorded to SQLite) run ``--in-flight`` at a
time through the service and land in the Output panel. Baseline: the same timer on the
idle loop for the same duration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FIVE_STEPS = """
pipelines:
  five:
    steps:
      - {name: a, type: step.set, config: {values: {x: "{{ .n }}"}}}
      - {name: b, type: step.set, config: {values: {y: "{{ .x + 1 }}"}}}
      - {name: c, type: step.jq, config: {expression: "{z: (.y * 2)}"}}
      - {name: d, type: step.log, config: {message: "n={{ .n }}"}}
      - {name: e, type: step.pipeline_output, config: {values: {z: "{{ .z }}"}}}
"""

BASELINE_WINDOW = """
import os, time
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication([]); w = QMainWindow(); w.resize(1400, 900); w.show(); app.processEvents()
print(time.time() - float(os.environ["WFSTUDIO_LAUNCHED"]))
"""


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def startup(n: int) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    shown, ready, baseline = [], [], []
    for _ in range(n):
        with tempfile.TemporaryDirectory() as tmp:
            # timed from the launch (interpreter start included) to the window, by the app itself
            launch = {**env, "DATA_DIR": tmp, "WFSTUDIO_LAUNCHED": repr(time.time())}
            out = subprocess.run(
                [sys.executable, "-m", "app.main", "--startup-probe", "--settings", f"{tmp}/s.ini",
                 "--store", f"sqlite:///{tmp}/store.db", str(REPO / "resources" / "workspace")],
                cwd=REPO, env=launch, capture_output=True, text=True, timeout=120)
            if out.returncode != 0:
                print(out.stderr[-2000:])
                raise SystemExit("the studio did not start")
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            shown.append(figures["launch_to_window_s"])
            ready.append(figures["launch_to_ready_s"])
        done = subprocess.run([sys.executable, "-c", BASELINE_WINDOW],
                              env={**env, "WFSTUDIO_LAUNCHED": repr(time.time())},
                              capture_output=True, text=True, timeout=60)
        baseline.append(float(done.stdout.strip().splitlines()[-1]) if done.returncode == 0
                        else float("nan"))
    print(f"start-up to the main window shown: median {_median(shown) * 1000:.0f} ms "
          f"(target < 1500 ms; {n} starts)")
    print(f"start-up to the engine ready, example workspace loaded: median {_median(ready) * 1000:.0f} ms")
    print(f"  baseline, an empty QMainWindow in a fresh process: median {_median(baseline) * 1000:.0f} ms")


async def _lag_while(work: asyncio.Future[object] | None, duration: float) -> list[float]:
    from PySide6.QtCore import QTimer

    lags: list[float] = []
    last = time.perf_counter()

    def tick() -> None:
        nonlocal last
        now = time.perf_counter()
        lags.append(max(0.0, (now - last) - 0.005))
        last = now

    timer = QTimer(interval=5)
    timer.timeout.connect(tick)
    timer.start()
    if work is not None:
        await work
    else:
        await asyncio.sleep(duration)
    timer.stop()
    return lags


def _describe(lags: list[float]) -> str:
    ordered = sorted(lags)
    p99 = ordered[int(len(ordered) * 0.99)] if ordered else 0.0
    return (f"max {max(ordered, default=0) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
            f"median {_median(ordered) * 1000:.2f} ms over {len(ordered)} ticks")


async def lag(runs: int, in_flight: int) -> None:
    from app.run.output_panel import OutputPanel, run_pipeline
    from engine.service.local import LocalService
    from engine.service.models import RunOptions

    with tempfile.TemporaryDirectory() as tmp:
        pipeline = Path(tmp) / "five.yaml"
        pipeline.write_text(FIVE_STEPS)
        service = await LocalService.open([pipeline], store=f"sqlite:///{tmp}/store.db")
        panel = OutputPanel()
        panel.resize(900, 300)
        panel.show()
        await service.run("five", {"n": 0})  # warm caches
        semaphore = asyncio.Semaphore(in_flight)

        async def one(n: int) -> None:
            async with semaphore:
                await run_pipeline(service, "five", {"n": n}, RunOptions(), panel)

        started = time.perf_counter()
        work = asyncio.ensure_future(asyncio.gather(*(one(n) for n in range(runs))))
        busy = await _lag_while(work, 0)
        elapsed = time.perf_counter() - started
        idle = await _lag_while(None, min(elapsed, 5.0))
        await service.close()
    print(f"GUI-thread lag while {runs} runs execute ({in_flight} in flight, shown in the Output panel, "
          f"{runs / elapsed:.0f} runs/s): {_describe(busy)} (target: never > 50 ms)")
    print(f"  baseline, the idle loop: {_describe(idle)}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--startups", type=int, default=3)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--in-flight", type=int, default=16)
    args = parser.parse_args()
    print("== studio")
    startup(args.startups)

    import qasync
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        loop.run_until_complete(lag(args.runs, args.in_flight))
    return 0


if __name__ == "__main__":
    sys.exit(main())
