"""Schedule fire jitter: how late a scheduled execution starts.

    python benchmarks/bench_schedule.py [--fires N] [--store URL]

A pipeline with a per-second cron (``* * * * * *``) runs in a ``LocalService`` on a new
SQLite file (or ``--store``) until N fires have completed. For each fire, jitter is:

- recorded: the execution's start (its row, written with the fire's dedup row) minus the
  scheduled time;
- first step: the first ``step.started`` event's time minus the scheduled time.

Baseline, same run, measured first: a bare ``asyncio.sleep`` until the next N whole
seconds, jitter = wake-up time minus the instant. Goal: recorded p95 < 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.connectors.schedule import parse_event_id
from engine.service.local import LocalService
from engine.service.models import ExecutionFilter

FILE = """\
pipelines:
  tick:
    trigger: {type: schedule, config: {cron: "* * * * * *"}}
    steps: [{name: a, type: step.set, config: {values: {at: '{{ .trigger.data.scheduled_time }}'}}}]
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def row(label: str, values: list[float], baseline: list[float], target: str) -> None:
    shown = f"{pct(values, .5):.1f} / {pct(values, .95):.1f} ms"
    base = f"{pct(baseline, .5):.2f} / {pct(baseline, .95):.2f} ms"
    print(f"  {label:<40} {shown:>22}   baseline {base:>20}   target {target}")


async def bare_sleep(fires: int) -> list[float]:
    """Wake at each of the next ``fires`` whole seconds with a bare asyncio.sleep."""
    late = []
    instant = int(time.time()) + 1
    for _ in range(fires):
        await asyncio.sleep(instant - time.time())
        late.append((time.time() - instant) * 1000)
        instant += 1
    return late


async def schedule_jitter(store: str, tmp: Path, fires: int) -> tuple[list[float], list[float]]:
    (tmp / "tick.yaml").write_text(FILE)
    async with await LocalService.open([tmp / "tick.yaml"], store=store) as service:
        service.sources.autostart = True  # as `wfstudio serve` does
        await service.sources.refresh()
        while True:
            page = await service.list_executions(ExecutionFilter(pipeline="tick", limit=1000))
            done = [r for r in page.items if r.status == "completed"]
            if len(done) >= fires:
                break
            await asyncio.sleep(0.5)
        await service.stop_source("schedule:tick")
        recorded, first_step = [], []
        for run in sorted(done, key=lambda r: r.started_at)[:fires]:
            scheduled = parse_event_id("tick", run.trigger_payload["id"])
            assert scheduled is not None
            due = scheduled.timestamp()
            recorded.append((run.started_at - due) * 1000)
            steps = [e for e in await service.events(run.id) if e.type == "step.started"]
            first_step.append((steps[0].ts - due) * 1000)
    return recorded, first_step


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fires", type=int, default=60)
    parser.add_argument("--store", default=None, help="a store URL (default: a new SQLite file)")
    args = parser.parse_args()
    print(f"schedule (per-second cron, {args.fires} fires; baseline: bare asyncio.sleep to the "
          "same kind of instants)")
    with tempfile.TemporaryDirectory() as tmp:
        baseline = await bare_sleep(args.fires)
        store = args.store or f"sqlite:///{tmp}/schedule.db"
        recorded, first_step = await schedule_jitter(store, Path(tmp), args.fires)
    row("fire → execution recorded, p50 / p95", recorded, baseline, "p95 < 100 ms")
    row("fire → first step started, p50 / p95", first_step, baseline, "")


if __name__ == "__main__":
    asyncio.run(main())
