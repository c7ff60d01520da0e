"""Live-event benchmark: delivery latency from ``Recorder.event()`` to "all" subscribers.

    python benchmarks/bench_live.py [--runs N] [--subscribers S]

Runs ``--runs`` executions of a 5-step pipeline recording into a SQLite file while S
subscribers of all executions (EventHub.subscribe) receive every event. Latency is the
receipt time minus the event's ``ts`` (taken by the executor just before it hands the event
to the recorder, whose listener publishes it), so it covers publish, the queue hop and the
wait for the loop to get round to the subscriber.

Baselines measured in the same process:
- the same event pattern (the same number of events per run, emitted in one burst per run,
  the same number of producers in flight) through bare asyncio.Queues into S consumers, with
  no engine: the floor of "a burst of events, then the loop schedules the consumers";
- runs/s of the same pipeline with no hub attached (the cost of publishing on execution);
- ``publish()`` per event against the S bare ``put_nowait`` calls it amounts to.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.api import Engine
from engine.service.live import DEFAULT_MAXSIZE, TERMINAL_EVENTS, EventHub
from engine.store.records import EventRecord

FIVE_STEPS = """
pipelines:
  five:
    steps:
      - {name: a, type: step.set, config: {values: {x: "{{ .n }}"}}}
      - {name: b, type: step.set, config: {values: {y: "{{ .x }}", label: "order {{ .n }}"}}}
      - {name: c, type: step.log, config: {message: "x={{ .x }}"}}
      - {name: d, type: step.set, config: {values: {ok: true}}}
      - {name: e, type: step.pipeline_output, config: {values: {x: "{{ .x }}", y: "{{ .y }}"}}}
"""


class Result:
    def __init__(self, latencies: list[float], runs_per_s: float, delivered_ok: bool,
                 dropped: int, events: int):
        self.latencies = latencies
        self.runs_per_s = runs_per_s
        self.delivered_ok = delivered_ok
        self.dropped = dropped
        self.events = events


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


async def run_all(engine: Engine, runs: int, concurrency: int) -> float:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with semaphore:
            await engine.run("five", {"n": i})

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(runs)))
    return runs / (time.perf_counter() - started)


async def engine_latency(url: str, runs: int, concurrency: int, subscribers: int,
                         live: bool = True, maxsize: int = DEFAULT_MAXSIZE) -> Result:
    async with Engine.open(FIVE_STEPS, store=url) as engine:
        store, recorder = engine.store, engine.recorder
        assert store is not None and recorder is not None
        for i in range(30):  # warm up: compile caches, first statements
            await engine.run("five", {"n": i})
        if not live:
            return Result([], await run_all(engine, runs, concurrency), True, 0, 0)
        before = store.count_events()
        hub = EventHub(maxsize)
        hub.attach(recorder)
        samples: list[list[float]] = [[] for _ in range(subscribers)]
        counts = [0] * subscribers

        async def consume(k: int) -> None:
            mine = samples[k]
            ended = 0
            async for event in hub.subscribe(store, recorder):
                mine.append(time.time() - event.ts)
                counts[k] += 1
                if event.type in TERMINAL_EVENTS:
                    ended += 1
                    if ended == runs:
                        return

        consumers = [asyncio.ensure_future(consume(k)) for k in range(subscribers)]
        while hub.subscriber_count() < subscribers:
            await asyncio.sleep(0)
        rate = await run_all(engine, runs, concurrency)
        done, pending = await asyncio.wait(consumers, timeout=30)
        for task in pending:
            task.cancel()
        dropped = sum(1 for task in done if task.exception() is not None)
        hub.detach(recorder)
        stored = store.count_events() - before
    latencies = [x for mine in samples for x in mine]
    return Result(latencies, rate, all(c == stored for c in counts), dropped, stored)


def emit_gap(db: Path) -> float:
    """Median time between two consecutive events of a run, from a store's ``ts`` column:
    how long the executor works between emits when no one listens."""
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT (max(ts) - min(ts)) / (count(*) - 1) FROM execution_events "
                        "GROUP BY execution_id HAVING count(*) > 1").fetchall()
    conn.close()
    return statistics.median(r[0] for r in rows)


async def queue_baseline(runs: int, concurrency: int, subscribers: int, per_run: int,
                         work_per_event: float) -> list[float]:
    """The engine's event pattern through bare asyncio.Queues, with no engine: ``concurrency``
    producers each emit ``per_run`` timestamps per run into every queue, spinning
    ``work_per_event`` seconds before each (the executor's time between two events, see
    ``emit_gap``), then yield to the loop once per run, as a run does when it awaits its
    final flush."""
    queues: list[asyncio.Queue[float]] = [asyncio.Queue() for _ in range(subscribers)]
    samples: list[list[float]] = [[] for _ in range(subscribers)]
    total = runs * per_run

    async def consume(k: int) -> None:
        queue, mine = queues[k], samples[k]
        for _ in range(total):
            ts = await queue.get()
            mine.append(time.time() - ts)

    async def produce(share: int) -> None:
        for _ in range(share):
            for _ in range(per_run):
                until = time.perf_counter() + work_per_event
                while time.perf_counter() < until:
                    pass
                ts = time.time()
                for queue in queues:
                    queue.put_nowait(ts)
            await asyncio.sleep(0)

    consumers = [asyncio.ensure_future(consume(k)) for k in range(subscribers)]
    await asyncio.sleep(0)
    shares = [runs // concurrency + (i < runs % concurrency) for i in range(concurrency)]
    await asyncio.gather(*(produce(s) for s in shares if s))
    await asyncio.gather(*consumers)
    return [x for mine in samples for x in mine]


async def idle_hop(subscribers: int, n: int) -> list[float]:
    """One event at a time into idle consumers: put → get through bare asyncio.Queues."""
    queues: list[asyncio.Queue[float]] = [asyncio.Queue() for _ in range(subscribers)]
    samples: list[float] = []

    async def consume(queue: asyncio.Queue[float]) -> None:
        for _ in range(n):
            ts = await queue.get()
            samples.append(time.time() - ts)

    consumers = [asyncio.ensure_future(consume(q)) for q in queues]
    await asyncio.sleep(0)
    for i in range(n):
        ts = time.time()
        for queue in queues:
            queue.put_nowait(ts)
        while len(samples) < (i + 1) * subscribers:
            await asyncio.sleep(0)
    await asyncio.gather(*consumers)
    return samples


async def publish_cost(subscribers: int, n: int) -> tuple[float, float]:
    """µs per event: EventHub.publish to ``subscribers`` live queues, against the bare
    ``put_nowait`` into as many queues."""
    hub = EventHub(maxsize=n + 1)
    iterators = [hub.subscribe(None, None) for _ in range(subscribers)]  # type: ignore[arg-type]
    firsts = [asyncio.ensure_future(it.__anext__()) for it in iterators]
    await asyncio.sleep(0)
    event = EventRecord("x" * 32, 1, "step.completed", {"step": "a", "duration_ms": 0.1},
                        time.time())
    hub.publish(event)  # consumed by the pending __anext__ calls
    await asyncio.gather(*firsts)
    started = time.perf_counter()
    for _ in range(n):
        hub.publish(event)
    hub_us = (time.perf_counter() - started) / n * 1e6
    for it in iterators:
        await it.aclose()  # type: ignore[attr-defined]
    queues: list[asyncio.Queue[EventRecord]] = [asyncio.Queue(n + 1)
                                                for _ in range(subscribers)]
    started = time.perf_counter()
    for _ in range(n):
        for queue in queues:
            queue.put_nowait(event)
    bare_us = (time.perf_counter() - started) / n * 1e6
    return hub_us, bare_us


def row(label: str, value: str, baseline: str, ratio: str) -> None:
    print(f"    {label:<62} {value:>12}   baseline {baseline:>12}   {ratio:>6}")


async def main(runs: int, subscribers: int) -> None:
    print(f"live events: {runs} runs of a 5-step pipeline, {subscribers} 'all' subscribers, "
          "SQLite file store; latency = receipt time - event ts")
    hop = await idle_hop(subscribers, 2000)
    print(f"  floor: one event into {subscribers} idle consumers through bare asyncio.Queues: "
          f"p50 {ms(statistics.median(hop))}, p99 {ms(pct(hop, 0.99))}")
    print("  baseline below: the same events per run, emitted at the engine's pace (its median "
          "time between two events of a run,\n  unobserved) by as many producers as runs in "
          "flight, through bare asyncio.Queues, no engine")
    with tempfile.TemporaryDirectory() as tmp:
        scenarios = [(1, DEFAULT_MAXSIZE), (32, DEFAULT_MAXSIZE), (runs, DEFAULT_MAXSIZE)]
        for n, (concurrency, maxsize) in enumerate(scenarios):
            label = f"{concurrency} in flight" if concurrency < runs else "all at once"
            if maxsize != DEFAULT_MAXSIZE:
                label += f", maxsize {maxsize:,}"
            quiet_url = f"sqlite:///{Path(tmp) / f'quiet-{n}.db'}"
            quiet = await engine_latency(quiet_url, runs, concurrency, subscribers, live=False)
            url = f"sqlite:///{Path(tmp) / f'live-{n}.db'}"
            result = await engine_latency(url, runs, concurrency, subscribers, maxsize=maxsize)
            per_run = result.events // runs
            check = "every event to every subscriber" if result.delivered_ok else "NOT ALL DELIVERED"
            print(f"  {label}: {result.events:,} events ({per_run}/run) to each of {subscribers} "
                  f"subscribers: {check}; dropped subscribers: {result.dropped}")
            if result.dropped:
                # Runs that never await emit all their events in one turn of the loop: a
                # burst larger than a mailbox drops every subscriber before it can read.
                burst = per_run * min(concurrency, runs)
                print(f"    (a burst of up to {burst:,} events in one loop turn > maxsize "
                      f"{maxsize:,}; again with a larger maxsize)")
                scenarios.append((concurrency, 4 * burst))
                continue
            work = emit_gap(Path(tmp) / f"quiet-{n}.db")
            base = await queue_baseline(runs, concurrency, subscribers, per_run, work)
            lat = result.latencies
            p50, p50b = statistics.median(lat), statistics.median(base)
            row(f"delivery latency p50, {label}", ms(p50), ms(p50b), f"{p50 / p50b:.1f}x")
            p99, p99b = pct(lat, 0.99), pct(base, 0.99)
            row(f"delivery latency p99, {label}", ms(p99), ms(p99b), f"{p99 / p99b:.1f}x")
            row(f"delivery latency max, {label}", ms(max(lat)), ms(max(base)), "")
            row(f"runs/s with {subscribers} live subscribers (baseline: none)",
                f"{result.runs_per_s:,.0f}/s", f"{quiet.runs_per_s:,.0f}/s",
                f"{result.runs_per_s / quiet.runs_per_s:.0%}")
    hub_us, bare_us = await publish_cost(subscribers, 50_000)
    row(f"publish() per event, {subscribers} subscribers (baseline: "
        f"{subscribers} x Queue.put_nowait)", f"{hub_us:.2f} µs", f"{bare_us:.2f} µs",
        f"{hub_us / bare_us:.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--subscribers", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.subscribers))
