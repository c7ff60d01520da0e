"""Engine benchmarks: whole runs with full recording, per-step overhead, expression throughput.

    python benchmarks/bench_engine.py [--seconds S]

Every figure is printed next to a baseline measured in the same process, with its target:
(a) runs/s of a 5-step pipeline with full recording into a SQLite file, sequential and with
    32 runs in flight, with a small payload and with a 107 KB webhook-like one
    (benchmarks/payloads.py; 16 different payloads, a fresh event id per run), against raw
    sqlite3 appending exactly the rows one such run wrote (benchmarks/rawsqlite.py: read back
    from the store, re-keyed, JSON re-encoded per run with orjson) into a copy of the same
    store, one run per commit (sequential) or 32 (in flight); for the 107 KB payload also
    the floor: raw sqlite3 storing nothing but each run's payload, encoded once, a commit
    per run;
(b) bytes stored per run with the 107 KB payload: the SQLite file's growth (WAL checkpointed)
    over 16 runs of 16 different payloads, divided by 16, against the payload's size;
(c) per-step overhead with recording off (100 steps of step.set), against a bare Python loop
    that awaits a coroutine and merges a dict per step;
(d) expressions/s: a simple path (``{{ .order.customer-id }}``, resolved without jq) against a
    bare dict lookup, and a real jq program against the same computation in Python.
Each rate is taken over about ``--seconds`` (default 3) after a warm-up, in 4 turns that
alternate with its baselines' turns, so that both see the same load on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from payloads import KB, size_of, webhook
from rawsqlite import FloorWriter, RawWriter, capture, file_bytes, snapshot, stored_row_bytes

from engine.api import Engine
from engine.expressions import compile_value

FIVE_STEPS = """
pipelines:
  five:
    record: full
    steps:
      - name: a
        type: step.set
        config: {values: {x: "{{ .n }}"}}
      - name: b
        type: step.set
        config: {values: {y: "{{ .x }}", label: "order {{ .n }}"}}
      - name: c
        type: step.set
        config: {values: {z: "{{ .steps.b.y }}"}}
      - name: d
        type: step.set
        config: {values: {ok: true}}
      - name: e
        type: step.pipeline_output
        config: {values: {x: "{{ .x }}", z: "{{ .z }}"}}
"""

# What a webhook handler does: pick fields (simple paths), count and sum over the line items
# (jq), reply with a few values. The payload is the run's context.
WEBHOOK_STEPS = """
pipelines:
  webhook:
    record: full
    steps:
      - name: read
        type: step.set
        config: {values: {order_id: "{{ .data.order.id }}", email: "{{ .data.order.customer.email }}"}}
      - name: label
        type: step.set
        config: {values: {label: "order {{ .order_id }} for {{ .email }}"}}
      - name: count
        type: step.set
        config: {values: {items: "{{ .data.order.line_items | length }}"}}
      - name: quantity
        type: step.set
        config: {values: {qty: "{{ [.data.order.line_items[].quantity] | add }}"}}
      - name: reply
        type: step.pipeline_output
        config: {values: {order_id: "{{ .order_id }}", label: "{{ .label }}", items: "{{ .items }}",
                          qty: "{{ .qty }}"}}
"""

BIG = 107 * KB
POOL = 16  # different big payloads, cycled
SLICES = 4  # turns per figure, engine and baseline alternating

HUNDRED_STEPS = "pipelines:\n  many:\n    steps:\n" + "".join(
    f"      - {{name: s{i}, type: step.set, config: {{values: {{v{i % 10}: {i}}}}}}}\n"
    for i in range(100)
)


def row(label: str, value: str, baseline: str, ratio: str, target: str, reached: bool | None) -> None:
    mark = "" if reached is None else ("yes" if reached else "NO")
    print(f"  {label:<46} {value:>14}   baseline {baseline:<30} {ratio:>7}   target {target:<22} "
          f"{mark}")


Payloads = Callable[[int], Any]


def small(i: int) -> Any:
    return {"n": i}


def big_payloads() -> Payloads:
    pool = [webhook(BIG, seed) for seed in range(POOL)]

    def payload(i: int) -> Any:
        return {**pool[i % POOL], "id": f"evt_run_{i:09d}"}

    return payload


async def run_slice(engine: Engine, pipeline: str, payload: Payloads, concurrency: int,
                    seconds: float, numbers: Iterator[int]) -> tuple[int, float]:
    """(runs completed, seconds taken) with ``concurrency`` runs in flight for about
    ``seconds`` (runs begun before the deadline finish, and count)."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            execution = await engine.run(pipeline, payload(next(numbers)))
            if execution.status != "completed":
                raise RuntimeError(f"{pipeline}: run {execution.id} {execution.status}: "
                                   f"{execution.error}")
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, time.perf_counter() - started


async def rate(engine: Engine, pipeline: str, payload: Payloads, concurrency: int,
               seconds: float, first: int) -> float:
    """Runs/s with ``concurrency`` runs in flight, for about ``seconds``."""
    done, took = await run_slice(engine, pipeline, payload, concurrency, seconds,
                                 itertools.count(first))
    return done / took


Slice = Callable[[float], Awaitable[tuple[int, float]]]


async def alternate(sides: list[Slice], seconds: float, slices: int = SLICES) -> list[float]:
    """Runs/s of each side, measured in ``slices`` turns of ``seconds / slices`` each, in
    alternating order, so that every side sees the same (shared, varying) machine load."""
    totals = [[0, 0.0] for _ in sides]
    for turn in range(slices):
        order = range(len(sides)) if turn % 2 == 0 else reversed(range(len(sides)))
        for i in order:
            done, took = await sides[i](seconds / slices)
            totals[i][0] += done
            totals[i][1] += took
    return [done / took for done, took in totals]


def blocking(writer: RawWriter | FloorWriter) -> Slice:
    async def side(seconds: float) -> tuple[int, float]:
        return writer.write_for(seconds)
    return side


async def run_rates(tmp: Path, name: str, yaml: str, pipeline: str, payload: Payloads,
                    warmup: int, seconds: float, floor: bool = False) -> dict[str, float]:
    """The engine's runs/s sequential and 32 in flight, each alternating with raw sqlite3
    writing the same rows (and, with ``floor``, with raw sqlite3 storing only the payload)."""
    db = tmp / f"{name}.db"
    numbers = itertools.count(10_000)
    async with Engine.open(yaml, store=f"sqlite:///{db}") as engine:
        for i in range(warmup):  # compile caches, first statements
            await engine.run(pipeline, payload(i))
        since = snapshot(db)
        one = await engine.run(pipeline, payload(warmup))
        rows = capture(db, since, one.id)
        out: dict[str, float] = {"rows": rows.count}
        for key, concurrency in (("seq", 1), ("c32", 32)):
            writer = RawWriter(db, rows, tmp / f"{name}-raw-{key}.db", concurrency)

            def ours(t: float, c: int = concurrency) -> Awaitable[tuple[int, float]]:
                return run_slice(engine, pipeline, payload, c, t, numbers)

            sides: list[Slice] = [ours, blocking(writer)]
            floor_writer = None
            if floor and concurrency == 1:
                floor_writer = FloorWriter(tmp / f"{name}-floor.db", payload)
                sides.append(blocking(floor_writer))
            rates = await alternate(sides, seconds)
            out[key], out[f"raw_{key}"] = rates[0], rates[1]
            if floor_writer:
                out["floor"] = rates[2]
                floor_writer.close()
            writer.close()
    return out


async def bytes_per_run(tmp: Path, runs: int = POOL) -> tuple[float, float]:
    """File growth and stored value bytes per run, ``runs`` runs of different big payloads."""
    db = tmp / "bytes.db"
    url = f"sqlite:///{db}"
    async with Engine.open(WEBHOOK_STEPS, store=url) as engine:  # schema, definition
        await engine.run("webhook", webhook(BIG, 999))
    before = file_bytes(db)
    since = snapshot(db)
    async with Engine.open(WEBHOOK_STEPS, store=url) as engine:
        for seed in range(runs):
            await engine.run("webhook", webhook(BIG, seed))
    return (file_bytes(db) - before) / runs, stored_row_bytes(db, since) / runs


def print_rates(label: str, r: dict[str, float], seq_target: tuple[str, bool | None],
                c32_target: tuple[str, bool | None]) -> None:
    row(f"{label}, sequential", f"{r['seq']:,.0f} runs/s",
        f"raw sqlite3, same {r['rows']} rows: {r['raw_seq']:,.0f}/s", f"{r['seq'] / r['raw_seq']:.0%}",
        *seq_target)
    row(f"{label}, 32 in flight", f"{r['c32']:,.0f} runs/s",
        f"raw, 32 runs/commit: {r['raw_c32']:,.0f}/s", f"{r['c32'] / r['raw_c32']:.0%}", *c32_target)


async def per_step_overhead(runs: int) -> float:
    async with Engine.open(HUNDRED_STEPS, store=None) as engine:
        for _ in range(20):
            await engine.run("many", {})
        samples = []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(runs):
                await engine.run("many", {})
            samples.append((time.perf_counter() - started) / (runs * 100))
        return statistics.median(samples) * 1e6


async def bare_loop_per_step(runs: int) -> float:
    async def step(config: dict[str, Any]) -> dict[str, Any]:
        return config

    configs = [{f"v{i % 10}": i} for i in range(100)]
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(runs):
            context: dict[str, Any] = {}
            outputs: dict[str, Any] = {}
            for i, config in enumerate(configs):
                out = await step(config)
                outputs[f"s{i}"] = out
                context.update(out)
        samples.append((time.perf_counter() - started) / (runs * 100))
    return statistics.median(samples) * 1e6


def expression_rates(n: int) -> tuple[float, float, float, float]:
    items = [{"sku": f"s{i}", "qty": i % 4, "price": 2.5} for i in range(20)]
    vars: dict[str, Any] = {"order": {"customer-id": "c-42", "items": items}}
    simple = compile_value("{{ .order.customer-id }}")
    started = time.perf_counter()
    for _ in range(n):
        simple.render(vars)
    simple_rate = n / (time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(n):
        vars["order"]["customer-id"]
    lookup_rate = n / (time.perf_counter() - started)

    program = compile_value("{{ [.order.items[] | select(.qty > 1) | .price * .qty] | add }}")
    m = max(n // 20, 1000)
    started = time.perf_counter()
    for _ in range(m):
        program.render(vars)
    program_rate = m / (time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(m):
        sum(i["price"] * i["qty"] for i in vars["order"]["items"] if i["qty"] > 1)
    python_rate = m / (time.perf_counter() - started)
    return simple_rate, lookup_rate, program_rate, python_rate


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per rate")
    args = parser.parse_args()
    print("engine (5-step pipeline, record: full, SQLite file)")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        r = await run_rates(directory, "small", FIVE_STEPS, "five", small, 50, args.seconds)
        print_rates("small payload", r, ("≥ 60% of raw", r["seq"] / r["raw_seq"] >= 0.6),
                    ("≥ 5,000/s", r["c32"] >= 5000))
        small_seq = r["seq"]
        big = big_payloads()
        r = await run_rates(directory, "big", WEBHOOK_STEPS, "webhook", big, 5, args.seconds,
                            floor=True)
        print_rates(f"{BIG // KB} KB payload", r, ("≥ 500/s", r["seq"] >= 500), ("(measured)", None))
        row("  … 107 KB sequential vs the floor", f"{r['seq']:,.0f} runs/s",
            f"raw sqlite3, payload only: {r['floor']:,.0f}/s", f"{r['seq'] / r['floor']:.0%}",
            "(measured)", None)
        row("  … 107 KB sequential vs small sequential", f"{r['seq']:,.0f} runs/s",
            f"small payload: {small_seq:,.0f}/s", f"{r['seq'] / small_seq:.0%}", "(measured)", None)
        growth, values = await bytes_per_run(directory)
        payload = size_of(webhook(BIG, 0))
        row(f"bytes stored per run, {BIG // KB} KB payload", f"{growth / KB:,.1f} KB",
            f"payload {payload / KB:,.1f} KB (row values {values / KB:,.1f} KB)",
            f"{growth / payload:.2f}x", "≤ 1.3x payload", growth / payload <= 1.3)
    overhead = await per_step_overhead(200)
    bare = await bare_loop_per_step(200)
    row("per-step overhead, recording off", f"{overhead:.2f} µs", f"bare loop {bare:.2f} µs",
        f"{overhead / bare:.1f}x", "≤ 15 µs", overhead <= 15)
    simple, lookup, program, python = expression_rates(300_000)
    row("simple path transforms/s", f"{simple:,.0f}/s", f"dict lookup {lookup:,.0f}/s",
        f"{simple / lookup:.0%}", "≥ 100,000/s", simple >= 100_000)
    row("jq program transforms/s", f"{program:,.0f}/s", f"same in Python {python:,.0f}/s",
        f"{program / python:.0%}", "(measured)", None)


if __name__ == "__main__":
    asyncio.run(main())
