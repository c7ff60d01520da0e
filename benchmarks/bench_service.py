"""Studio service benchmarks: pause latency and replay-plan time.

    python benchmarks/bench_service.py [--pauses N]

(a) pause latency: a breakpoint is hit → the pause is visible in ``paused()`` and its
    ``debug.paused`` event reaches a live subscriber; measured from the event's timestamp,
    p50/p99 over N pauses, against a bare asyncio.Queue hop measured in the same run;
(b) ``replay_plan(from_step=…)`` of a recorded 1,000-step execution, median, against
    reading that execution's timeline alone;
(c) ``json_changes`` of two 400,000-leaf values differing in one leaf (the diff pane's
    value comparison), median, against Python's own ``==`` of the same values.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.service.diff import json_changes
from engine.service.local import LocalService
from engine.service.models import ReplayOptions, RunOptions

PAUSING = """
pipelines:
  p:
    steps:
      - {name: a, type: step.set, config: {values: {x: 1}}}
      - {name: b, type: step.set, config: {values: {y: 2}}}
"""

THOUSAND = "pipelines:\n  big:\n    record: full\n    steps:\n" + "".join(
    f"      - {{name: s{i}, type: step.set, config: {{values: {{v{i % 20}: {i}}}}}}}\n"
    for i in range(1000))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def row(label: str, value: str, baseline: str, target: str) -> None:
    print(f"  {label:<44} {value:>24}   baseline {baseline:>22}   target {target}")


async def queue_hop(n: int) -> list[float]:
    queue: asyncio.Queue[float] = asyncio.Queue()
    samples = []

    async def consumer() -> None:
        for _ in range(n):
            sent = await queue.get()
            samples.append((time.time() - sent) * 1000)

    task = asyncio.ensure_future(consumer())
    for _ in range(n):
        queue.put_nowait(time.time())
        await asyncio.sleep(0.001)
    await task
    return samples


async def pause_latency(tmp: Path, pauses: int) -> tuple[list[float], list[float]]:
    (tmp / "p.yaml").write_text(PAUSING)
    live: list[float] = []
    api: list[float] = []
    async with await LocalService.open([tmp / "p.yaml"], store=f"sqlite:///{tmp}/pause.db") as svc:
        await svc.set_breakpoint("p", "b")
        received: asyncio.Queue[tuple[str, float, float]] = asyncio.Queue()

        async def listen() -> None:
            async for event in svc.subscribe(None):
                if event.type == "debug.paused":
                    received.put_nowait((event.execution_id, event.ts, time.time()))

        listener = asyncio.ensure_future(listen())
        await asyncio.sleep(0.05)
        for _ in range(pauses):
            started = await svc.run("p", {}, RunOptions(wait=False))
            execution_id, ts, arrived = await received.get()
            assert execution_id == started.execution_id
            live.append((arrived - ts) * 1000)
            while not any(p.execution_id == execution_id for p in await svc.paused()):
                await asyncio.sleep(0)
            api.append((time.time() - ts) * 1000)
            await svc.resume(execution_id)
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
    return live, api


async def replay_plan_time(tmp: Path) -> tuple[float, float]:
    (tmp / "big.yaml").write_text(THOUSAND)
    async with await LocalService.open([tmp / "big.yaml"], store=f"sqlite:///{tmp}/big.db") as svc:
        run = await svc.run("big", {})
        options = ReplayOptions(mode="from_step", from_step="s500")
        plans, timelines = [], []
        for _ in range(7):
            started = time.perf_counter()
            plan = await svc.replay_plan(run.execution_id, options)
            plans.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await svc.timeline(run.execution_id)
            timelines.append((time.perf_counter() - started) * 1000)
        assert sum(s.action == "reuse" for s in plan.steps) == 500
    return statistics.median(plans), statistics.median(timelines)


def json_changes_time() -> tuple[float, float]:
    a = {"rows": [{"id": i, "v": i} for i in range(200_000)]}
    b = {"rows": [{"id": i, "v": i if i != 123_456 else -1} for i in range(200_000)]}
    diffs, equals = [], []
    for _ in range(5):
        started = time.perf_counter()
        changes = json_changes(a, b)
        diffs.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        assert a != b
        equals.append((time.perf_counter() - started) * 1000)
    assert [c.path for c in changes] == ["/rows/123456/v"]
    return statistics.median(diffs), statistics.median(equals)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pauses", type=int, default=200)
    args = parser.parse_args()
    print("service")
    with tempfile.TemporaryDirectory() as tmp:
        hop = await queue_hop(args.pauses)
        live, api = await pause_latency(Path(tmp), args.pauses)
        row("pause → live subscriber, p50 / p99", f"{pct(live, .5):.2f} / {pct(live, .99):.2f} ms",
            f"{pct(hop, .5):.3f} / {pct(hop, .99):.3f} ms", "< 50 ms")
        row("pause → paused(), p50 / p99", f"{pct(api, .5):.2f} / {pct(api, .99):.2f} ms",
            f"{pct(hop, .5):.3f} / {pct(hop, .99):.3f} ms", "< 50 ms")
        plan, timeline = await replay_plan_time(Path(tmp))
        row("replay_plan of a 1,000-step execution", f"{plan:.1f} ms", f"{timeline:.1f} ms",
            "(measured)")
        changes, equal = json_changes_time()
        row("json_changes of 400,000 leaves", f"{changes:.0f} ms", f"{equal:.0f} ms (==)", "< 5 s")


if __name__ == "__main__":
    asyncio.run(main())
