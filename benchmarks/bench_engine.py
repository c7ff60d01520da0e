"""Engine benchmarks: whole runs with full recording, per-step overhead, expression throughput.

    python benchmarks/bench_engine.py [--runs N]

Every figure is printed next to a baseline measured in the same process:
(a) runs/s of a 5-step pipeline with full recording into a SQLite file, sequential and with
    32 runs in flight, against raw sqlite3 appending exactly the rows those runs recorded
    (copied from the store, re-keyed) in transactions of the same size;
(b) per-step overhead with recording off (100 steps of step.set), against a bare Python loop
    that awaits a coroutine and merges a dict per step;
(c) expressions/s: a simple path (``{{ .order.customer-id }}``, resolved without jq) against a
    bare dict lookup, and a real jq program against the same computation in Python.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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

HUNDRED_STEPS = "pipelines:\n  many:\n    steps:\n" + "".join(
    f"      - {{name: s{i}, type: step.set, config: {{values: {{v{i % 10}: {i}}}}}}}\n"
    for i in range(100)
)


def row(label: str, value: str, baseline: str, ratio: str, target: str) -> None:
    print(f"  {label:<44} {value:>16}   baseline {baseline:>16}   {ratio:>8}   target {target}")


async def runs_per_second(store_url: str, runs: int, concurrency: int) -> float:
    async with Engine.open(FIVE_STEPS, store=store_url) as engine:
        for i in range(50):  # warm up: compile caches, first statements
            await engine.run("five", {"n": i})
        started = time.perf_counter()
        if concurrency == 1:
            for i in range(runs):
                await engine.run("five", {"n": i})
        else:
            semaphore = asyncio.Semaphore(concurrency)

            async def one(i: int) -> None:
                async with semaphore:
                    await engine.run("five", {"n": i})

            await asyncio.gather(*(one(i) for i in range(runs)))
        return runs / (time.perf_counter() - started)


def raw_append_rate(source_db: Path, runs: int, batch: int) -> float:
    """Raw sqlite3: append the rows one recorded run produced, re-keyed, ``batch`` runs per commit."""
    src = sqlite3.connect(source_db)
    exec_id, = src.execute("SELECT id FROM executions ORDER BY started_at DESC LIMIT 1").fetchone()
    exec_cols = [r[1] for r in src.execute("PRAGMA table_info(executions)")]
    exec_row = src.execute("SELECT * FROM executions WHERE id = ?", (exec_id,)).fetchone()
    events = src.execute("SELECT seq, type, data, ts FROM execution_events WHERE execution_id = ?",
                         (exec_id,)).fetchall()
    step_cols = [r[1] for r in src.execute("PRAGMA table_info(step_runs)") if r[1] != "id"]
    steps = src.execute(f"SELECT {', '.join(step_cols)} FROM step_runs WHERE execution_id = ?",
                        (exec_id,)).fetchall()
    src.close()
    parsed = [json.loads(data) for _, _, data, _ in events]
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(Path(tmp) / "raw.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"CREATE TABLE executions ({', '.join(exec_cols)}, PRIMARY KEY (id))")
        db.execute("CREATE TABLE execution_events (id INTEGER PRIMARY KEY, execution_id, seq, "
                   "type, data, ts, UNIQUE (execution_id, seq))")
        db.execute(f"CREATE TABLE step_runs (id INTEGER PRIMARY KEY, {', '.join(step_cols)})")
        e_id = exec_cols.index("id")
        s_id = step_cols.index("execution_id")
        exec_sql = f"INSERT INTO executions VALUES ({', '.join('?' * len(exec_cols))})"
        step_sql = (f"INSERT INTO step_runs ({', '.join(step_cols)}) "
                    f"VALUES ({', '.join('?' * len(step_cols))})")
        started = time.perf_counter()
        for first in range(0, runs, batch):
            db.execute("BEGIN")
            for n in range(first, min(first + batch, runs)):
                new_id = f"raw-{n:09d}"
                # Serialization is part of the cost of recording, so the baseline pays it too.
                payloads = [json.dumps(data) for data in parsed]
                db.execute(exec_sql, tuple(new_id if i == e_id else v
                                           for i, v in enumerate(exec_row)))
                db.executemany("INSERT INTO execution_events (execution_id, seq, type, data, ts) "
                               "VALUES (?, ?, ?, ?, ?)",
                               [(new_id, seq, typ, payload, ts)
                                for (seq, typ, _, ts), payload in zip(events, payloads, strict=True)])
                db.executemany(step_sql, [tuple(new_id if i == s_id else v for i, v in enumerate(s))
                                          for s in steps])
            db.execute("COMMIT")
        rate = runs / (time.perf_counter() - started)
        db.close()
    return rate


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
    vars = {"order": {"customer-id": "c-42", "items": [{"sku": f"s{i}", "qty": i % 4, "price": 2.5}
                                                      for i in range(20)]}}
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
    parser.add_argument("--runs", type=int, default=3000)
    args = parser.parse_args()
    print("engine")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        url = f"sqlite:///{db}"
        sequential = await runs_per_second(url, args.runs, 1)
        raw_sequential = raw_append_rate(db, args.runs, 1)
        row("5-step runs/s, full recording, sequential", f"{sequential:,.0f}/s",
            f"{raw_sequential:,.0f}/s", f"{sequential / raw_sequential:.0%}", "≥ 5,000/s, ≥ 30%")
        concurrent = await runs_per_second(url, args.runs * 2, 32)
        raw_batched = raw_append_rate(db, args.runs * 2, 32)
        row("5-step runs/s, full recording, 32 in flight", f"{concurrent:,.0f}/s",
            f"{raw_batched:,.0f}/s", f"{concurrent / raw_batched:.0%}", "≥ 5,000/s, ≥ 30%")
    overhead = await per_step_overhead(200)
    bare = await bare_loop_per_step(200)
    row("per-step overhead, recording off", f"{overhead:.2f} µs", f"{bare:.2f} µs",
        f"{overhead / bare:.1f}x", "≤ 15 µs")
    simple, lookup, program, python = expression_rates(300_000)
    row("simple path transforms/s", f"{simple:,.0f}/s", f"{lookup:,.0f}/s",
        f"{simple / lookup:.0%}", "≥ 100,000/s")
    row("jq program transforms/s", f"{program:,.0f}/s", f"{python:,.0f}/s",
        f"{program / python:.0%}", "(measured)")


if __name__ == "__main__":
    asyncio.run(main())
