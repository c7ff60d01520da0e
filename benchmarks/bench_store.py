"""Store benchmarks: recorder append rate, timeline() and list_executions() latency.

    python benchmarks/bench_store.py [--runs N] [--pg postgresql://postgres@127.0.0.1:5432 | none]
                                     [--pg-rounds R] [--only sqlite|pg|reads]

(a) recorder append rate for runs of 22 events + 5 step runs + 1 execution upsert (the
    records are handed over the way the executor does: the execution twice, each step run
    twice), against a raw sqlite3 executemany baseline appending the same rows (JSON
    serialization included) in 100-run transactions, measured in the same process; on
    PostgreSQL (a throwaway database each time), 64 runs in flight against raw psycopg COPY
    of the same rows in 64-run transactions, the two alternating R times (ranges reported);
(b) timeline() of a 1,000-event execution, median ms;
(c) list_executions(limit=50) on a store of 1M events, median ms (the store is built with
    raw bulk inserts under /tmp and reused when present).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.store.codec import dumps
from engine.store.recorder import Recorder
from engine.store.records import EventRecord, ExecutionRecord, StepRunRecord
from engine.store.store import Store

STEPS = 5
BIG_STORE = Path(tempfile.gettempdir()) / "wfstudio-bench-1M.db"


# ---------------------------------------------------------------------- (a) append rate

def hand_over(rec: Recorder, run: int) -> None:
    """What the executor hands over for one 5-step run: 22 events, 5 step runs, 1 execution."""
    now = time.time()
    eid = f"run-{run:08d}-{uuid.uuid4().hex[:8]}"
    ex = ExecutionRecord(id=eid, pipeline="bench", status="running", trigger_payload={"n": run},
                         started_at=now, definition_hash="abc123")
    rec.execution(ex)
    seq = 1
    rec.event(EventRecord(eid, seq, "execution.started",
                          {"pipeline": "bench", "trigger": {"type": "manual",
                                                            "payload": {"n": run}}}, now))
    for i in range(STEPS):
        name = f"step{i}"
        seq += 1
        sr = StepRunRecord(eid, name, name, "step.set", seq, started_at=now)
        rec.step_run(sr)
        rec.event(EventRecord(eid, seq, "step.started", {"step": name, "path": name, "index": i,
                                                         "attempt": 1, "type": "step.set"}, now))
        seq += 1
        rec.event(EventRecord(eid, seq, "step.input", {"step": name, "path": name,
                                                       "input": {"value": i, "n": run}}, now))
        seq += 1
        rec.event(EventRecord(eid, seq, "step.output", {"step": name, "path": name,
                                                        "output": {"value": i * 2}}, now))
        seq += 1
        rec.event(EventRecord(eid, seq, "step.completed", {"step": name, "path": name,
                                                           "duration_ms": 0.01}, now))
        sr.status, sr.ended_at, sr.duration_ms, sr.output_size = "completed", now, 0.01, 12
        rec.step_run(sr)
    seq += 1
    rec.event(EventRecord(eid, seq, "execution.completed", {"output": {"value": 8},
                                                            "duration_ms": 0.1}, now))
    ex.status, ex.ended_at, ex.duration_ms, ex.output, ex.event_count = (
        "completed", now, 0.1, {"value": 8}, seq)
    rec.execution(ex)


async def recorder_rate(store: Store, runs: int, concurrency: int) -> float:
    """Runs/s with ``concurrency`` runs in flight, each awaiting flush() when it ends."""
    rec = store.recorder
    counter = iter(range(runs))

    async def worker() -> None:
        for run in counter:
            hand_over(rec, run)
            await rec.flush()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return runs / (time.perf_counter() - start)


class Collect:
    """A stand-in recorder that keeps the handed-over records, for the baseline."""

    def __init__(self) -> None:
        self.executions: dict[str, ExecutionRecord] = {}
        self.step_runs: dict[tuple[str, int], StepRunRecord] = {}
        self.events: list[EventRecord] = []

    def execution(self, r: ExecutionRecord) -> None:
        self.executions[r.id] = r

    def step_run(self, r: StepRunRecord) -> None:
        self.step_runs[(r.execution_id, r.seq)] = r

    def event(self, r: EventRecord) -> None:
        self.events.append(r)


def baseline_rate(path: Path, runs: int, per_tx: int = 100) -> float:
    """Raw sqlite3: the same rows (JSON included), executemany, one commit per 100 runs."""
    from engine.store.batch import EVENT_COLS, EXEC_COLS, STEP_COLS, STEP_KEY, execution_row, step_run_row
    from engine.store.sink_sqlite import sqlite_upsert_sql

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    exec_sql = sqlite_upsert_sql("executions", EXEC_COLS, ("id",))
    step_sql = sqlite_upsert_sql("step_runs", STEP_COLS, STEP_KEY)
    event_sql = (f"INSERT INTO execution_events ({', '.join(EVENT_COLS)}) "
                 f"VALUES ({', '.join('?' * len(EVENT_COLS))})")
    start = time.perf_counter()
    for first in range(0, runs, per_tx):
        c = Collect()
        for run in range(first, min(runs, first + per_tx)):
            hand_over(c, run)  # type: ignore[arg-type]
        conn.execute("BEGIN")
        conn.executemany(exec_sql, [execution_row(r) for r in c.executions.values()])
        conn.executemany(step_sql, [step_run_row(r) for r in c.step_runs.values()])
        conn.executemany(event_sql, [(e.execution_id, e.seq, e.type, dumps(e.data), e.ts)
                                     for e in c.events])
        conn.execute("COMMIT")
    rate = runs / (time.perf_counter() - start)
    conn.close()
    return rate


def fresh_sqlite(directory: Path, name: str) -> tuple[str, Path]:
    path = directory / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}", path


def bench_append(runs: int) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        url, path = fresh_sqlite(directory, "baseline")
        Store.open(url).close()
        base = baseline_rate(path, runs)
        rows.append(("append: raw sqlite3 executemany (baseline)", f"{base:,.0f} runs/s", ""))
        for label, core, threaded, conc in (
                ("recorder, SQLite, raw driver", False, False, 64),
                ("recorder, SQLite, raw driver", False, False, 1),
                ("recorder, SQLite, raw driver, worker thread", False, True, 64),
                ("recorder, SQLite, SQLAlchemy Core", True, False, 64)):
            url, _ = fresh_sqlite(directory, f"rec-{core}-{threaded}-{conc}")
            store = Store.open(url, core_recorder=core)
            if threaded:  # every batch through asyncio.to_thread instead of inline
                store.recorder.inline_rows = 0
            rate = asyncio.run(recorder_rate(store, runs, conc))
            batches = store.recorder.batches
            store.close()
            rows.append((f"append: {label}, {conc} in flight", f"{rate:,.0f} runs/s",
                         f"{rate / base:.0%} of baseline, {batches} commits"))
    return rows


def bench_pg(runs: int, pg: str, rounds: int) -> list[tuple[str, str, str]]:
    import psycopg

    try:
        return bench_pg_append(runs, pg, rounds)
    except psycopg.OperationalError as exc:  # no server there: say so, measure the rest
        return [("append: PostgreSQL", "skipped", str(exc).strip()[:200])]


def bench_pg_append(runs: int, pg: str, rounds: int = 3) -> list[tuple[str, str, str]]:
    """The recorder on PostgreSQL, 64 runs in flight, against raw psycopg COPY of the same
    rows, 64 runs per transaction (issue 11: ≥ 90 % of it). The machine is shared: the two
    alternate, ``rounds`` times each, every one in a new database, and each round's ratio
    is the recorder against the baseline measured just before it."""
    base: list[float] = []
    rec: list[float] = []
    commits: list[int] = []
    for _ in range(rounds):
        with throwaway_pg_database(pg) as url:
            Store.open(url).close()  # the schema
            base.append(pg_copy_rate(url, runs, 64))
        with throwaway_pg_database(pg) as url:
            store = Store.open(url)
            rec.append(asyncio.run(recorder_rate(store, runs, 64)))
            commits.append(store.recorder.batches)
            store.close()
    ratios = [r / b for r, b in zip(rec, base, strict=True)]
    reached = "yes" if statistics.median(ratios) >= 0.9 else "NO"
    rows = [("append: raw psycopg COPY, 64 runs per commit (baseline)", _span(base, "runs/s"),
             f"{rounds} rounds, alternating with the recorder"),
            ("append: recorder, PostgreSQL, raw psycopg, 64 in flight", _span(rec, "runs/s"),
             f"{min(ratios):.0%}-{max(ratios):.0%} of raw COPY (median {statistics.median(ratios):.0%}),"
             f" {min(commits)}-{max(commits)} commits; target ≥ 90% of raw COPY: {reached}")]
    with throwaway_pg_database(pg) as url:  # the reference the raw driver is measured against
        store = Store.open(url, core_recorder=True)
        rate = asyncio.run(recorder_rate(store, runs, 64))
        rows.append(("append: recorder, PostgreSQL, SQLAlchemy Core, 64 in flight",
                     f"{rate:,.0f} runs/s",
                     f"{rate / statistics.median(base):.0%} of raw COPY (median), "
                     f"{store.recorder.batches} commits"))
        store.close()
    return rows


def _span(values: list[float], unit: str) -> str:
    low, high = min(values), max(values)
    return f"{low:,.0f}-{high:,.0f} {unit}" if len(values) > 1 else f"{low:,.0f} {unit}"


def pg_copy_rate(url: str, runs: int, per_tx: int) -> float:
    """Raw psycopg: the rows ``hand_over`` gives (each execution and step run in its final
    state, every event, JSON encoded as the store does), COPY into the three tables, one
    transaction per ``per_tx`` runs, on one connection."""
    import psycopg

    from engine.store.batch import EVENT_COLS, EXEC_COLS, STEP_COLS, execution_row, step_run_row

    copies = [f"COPY {table} ({', '.join(cols)}) FROM STDIN"
              for table, cols in (("executions", EXEC_COLS), ("step_runs", STEP_COLS),
                                  ("execution_events", EVENT_COLS))]
    with psycopg.connect(url) as conn:
        start = time.perf_counter()
        for first in range(0, runs, per_tx):
            c = Collect()
            for run in range(first, min(runs, first + per_tx)):
                hand_over(c, run)  # type: ignore[arg-type]
            tables = ([execution_row(r) for r in c.executions.values()],
                      [step_run_row(r) for r in c.step_runs.values()],
                      [(e.execution_id, e.seq, e.type, dumps(e.data), e.ts) for e in c.events])
            with conn.cursor() as cur:
                for sql, table_rows in zip(copies, tables, strict=True):
                    with cur.copy(sql) as copy:
                        for r in table_rows:
                            copy.write_row(r)
            conn.commit()
        return runs / (time.perf_counter() - start)


@contextlib.contextmanager
def throwaway_pg_database(server: str) -> Iterator[str]:
    """A new database on ``server`` (postgresql://user@host:port), dropped afterwards."""
    import psycopg

    server = server.rstrip("/")
    name = f"wfs_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{server}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------------- (b), (c) reads

def median_ms(fn: Callable[[], object], repeat: int = 200) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def bench_timeline() -> list[tuple[str, str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{tmp}/timeline.db")
        rec = store.recorder
        eid = "big-execution"
        rec.execution(ExecutionRecord(id=eid, pipeline="bench", status="completed",
                                      started_at=time.time()))
        seq = 0
        steps = 0
        while seq < 1000:  # 4 events per step run: 250 step runs
            seq += 1
            rec.step_run(StepRunRecord(eid, f"loop/s{steps}", f"s{steps}", "step.set", seq,
                                       iteration=steps, status="completed", started_at=seq,
                                       ended_at=seq + 1, duration_ms=1.0, flags=["retried"]))
            for kind in ("step.started", "step.input", "step.output", "step.completed"):
                rec.event(EventRecord(eid, seq, kind, {"step": f"s{steps}", "i": seq}, seq))
                seq += 1
            seq -= 1
            steps += 1
        rec.flush_sync()
        assert len(store.timeline(eid)) == steps
        t = median_ms(lambda: store.timeline(eid))
        e = median_ms(lambda: store.events(eid, limit=1000), repeat=50)
        store.close()
    return [(f"timeline() of a 1,000-event execution ({steps} step runs)", f"{t:.2f} ms",
             "target < 5 ms"),
            ("events() of the same execution (1,000 events)", f"{e:.2f} ms", "")]


def build_big_store(events: int = 1_000_000) -> None:
    """1M events: 45,455 executions of 22 events, 5 step runs each, via raw bulk inserts."""
    if BIG_STORE.exists():
        return
    tmp = BIG_STORE.with_suffix(".building")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    Store.open(f"sqlite:///{tmp}").close()
    conn = sqlite3.connect(tmp, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    runs = events // 22 + 1
    t0 = 1.7e9
    pipelines = [f"pipeline-{i}" for i in range(20)]
    statuses = ["completed"] * 8 + ["failed", "cancelled"]
    data = json.dumps({"step": "s", "path": "s", "output": {"value": 1}})
    conn.execute("BEGIN")
    for chunk in range(0, runs, 5000):
        ex, ev, st = [], [], []
        for run in range(chunk, min(runs, chunk + 5000)):
            eid = f"{run:012d}"
            started = t0 + run * 0.5
            status = statuses[run % len(statuses)]
            error = (json.dumps({"message": f"boom {run}", "type": "x"})
                     if status == "failed" else None)
            ex.append((eid, pipelines[run % 20], status, "manual", '{"n":1}', started,
                       started + 0.1, 100.0, '{"v":1}', error, "h", None, None, "default", 22))
            for seq in range(1, 23):
                ev.append((eid, seq, "step.output", data, started))
            for s in range(5):
                st.append((eid, f"s{s}", f"s{s}", "step.set", 2 + s * 4, 0, 1, "completed",
                           started, started, 1.0, None, 10, None))
        conn.executemany("INSERT INTO executions (id, pipeline, status, trigger_type, trigger_payload,"
                         " started_at, ended_at, duration_ms, output, error, definition_hash,"
                         " parent_id, replay_of, tenant, event_count) VALUES ("
                         + ",".join("?" * 15) + ")", ex)
        conn.executemany("INSERT INTO execution_events (execution_id, seq, type, data, ts) "
                         "VALUES (?,?,?,?,?)", ev)
        conn.executemany("INSERT INTO step_runs (execution_id, path, step, type, seq, iteration,"
                         " attempt, status, started_at, ended_at, duration_ms, error, "
                         "output_size, flags) VALUES (" + ",".join("?" * 14) + ")", st)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    os.replace(tmp, BIG_STORE)


def bench_list() -> list[tuple[str, str, str]]:
    start = time.perf_counter()
    built = not BIG_STORE.exists()
    build_big_store()
    note = f"built in {time.perf_counter() - start:.0f} s" if built else "reused"
    store = Store.open(f"sqlite:///{BIG_STORE}")
    total = store.count_events()
    page, cursor = store.list_executions(limit=50)
    first = page[0].id

    def ms(fn: Callable[[], object], repeat: int = 200) -> str:
        return f"{median_ms(fn, repeat):.2f} ms"

    rows = [
        (f"list_executions(limit=50), {total:,} events",
         ms(lambda: store.list_executions(limit=50)), f"target < 20 ms; store {note}"),
        ("  … page 2 (cursor)", ms(lambda: store.list_executions(limit=50, cursor=cursor)), ""),
        ("  … pipeline + status filter",
         ms(lambda: store.list_executions(pipeline="pipeline-3", status="failed")), ""),
        ("  … text search 'boom 4'", ms(lambda: store.list_executions(text="boom 4"), 5),
         "scans until a page is full"),
        ("timeline() in the 1M store", ms(lambda: store.timeline(first)), ""),
    ]
    store.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432",
                        help="also measure the recorder on this PostgreSQL server "
                             "(postgresql://user@host:port; a throwaway database is created "
                             "and dropped), or 'none'")
    parser.add_argument("--pg-rounds", type=int, default=3,
                        help="PostgreSQL: alternate the baseline and the recorder this many times")
    parser.add_argument("--only", choices=("sqlite", "pg", "reads"),
                        help="measure only the SQLite append rates, the PostgreSQL ones, or the reads")
    args = parser.parse_args()
    pg = None if args.pg.lower() == "none" else args.pg
    rows: list[tuple[str, str, str]] = []
    if args.only in (None, "sqlite"):
        rows += bench_append(args.runs)
    if args.only in (None, "pg") and pg:
        rows += bench_pg(args.runs, pg, args.pg_rounds)
    if args.only in (None, "reads"):
        rows += bench_timeline() + bench_list()
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'result':>16}  notes")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>16}  {note}")


if __name__ == "__main__":
    main()
