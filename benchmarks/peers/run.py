"""`make bench-peers`: the engine and the server next to DBOS and Node-RED, in the same run.

    python benchmarks/peers/run.py [--seconds S] [--connections N] [--only-http]

Needs benchmarks/peers/install.sh first (the make target runs it). Everything stays on
loopback. Figures, each pair taken back to back on the same machine:

- workflows/s, sequential, SQLite: our 5-step pipeline (``record: full``; bench_engine.py's
  pipelines and payloads) against DBOS Transact 3.4 running a 5-step workflow
  (dbos_bench.py), with DBOS's SQLite defaults and with the store's settings (WAL,
  synchronous=NORMAL); small payload and the 107 KB webhook.
- HTTP: ``wfstudio serve`` (SQLite, one process, every step recorded) against Node-RED 4
  (HTTP in → 4 function nodes → HTTP response, records nothing), 1 KB and 100 KB webhook
  bodies, N keep-alive connections from a second process: bench_server.py's load generator
  drives both, so both are measured the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

PEERS = Path(__file__).resolve().parent
BENCHMARKS = PEERS.parent
ROOT = BENCHMARKS.parent
for path in (ROOT, BENCHMARKS, PEERS):
    sys.path.insert(0, str(path))

import bench_engine  # noqa: E402 - the folders are put on the path above
import bench_server  # noqa: E402
import nodered  # noqa: E402
from payloads import KB, encoded  # noqa: E402

from engine.api import Engine  # noqa: E402

DBOS_PYTHON = PEERS / ".dbos-venv" / "bin" / "python"


def mark(ok: bool) -> str:
    return "yes" if ok else "NO"


async def ours_workflows(seconds: float, big: bool) -> float:
    """Our 5-step pipeline, sequential, recording everything into a fresh SQLite file."""
    if big:
        yaml, pipeline, payload = bench_engine.WEBHOOK_STEPS, "webhook", bench_engine.big_payloads()
    else:
        yaml, pipeline, payload = bench_engine.FIVE_STEPS, "five", bench_engine.small
    with tempfile.TemporaryDirectory() as tmp:
        async with Engine.open(yaml, store=f"sqlite:///{tmp}/ours.db") as engine:
            for i in range(20):
                await engine.run(pipeline, payload(i))
            return await bench_engine.rate(engine, pipeline, payload, 1, seconds, 1000)


def dbos_workflows(seconds: float, payload_bytes: int, store_settings: bool) -> dict[str, Any]:
    if not DBOS_PYTHON.exists():
        raise RuntimeError(f"{DBOS_PYTHON} is missing: run benchmarks/peers/install.sh")
    with tempfile.TemporaryDirectory() as tmp:
        argv = [str(DBOS_PYTHON), str(PEERS / "dbos_bench.py"), "--db", f"{tmp}/dbos.sqlite",
                "--seconds", str(seconds), "--payload-bytes", str(payload_bytes)]
        if store_settings:
            argv.append("--store-settings")
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 300)
        if done.returncode != 0:
            raise RuntimeError(f"dbos_bench.py failed:\n{done.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result


def workflows(seconds: float) -> None:
    print("workflows/s, 5 steps, sequential, SQLite file, every step's output recorded")
    for big in (False, True):
        label = f"{bench_engine.BIG // KB} KB webhook" if big else "small payload"
        ours = asyncio.run(ours_workflows(seconds, big))
        size = bench_engine.BIG if big else 0
        default = dbos_workflows(seconds, size, False)["rate"]
        tuned = dbos_workflows(seconds, size, True)["rate"]
        print(f"  {label:<16} ours {ours:>7,.0f}/s   DBOS 3.4 (its defaults: rollback journal, "
              f"synchronous=FULL) {default:>6,.0f}/s ({ours / default:.1f}x)   DBOS with the "
              f"store's settings (WAL, synchronous=NORMAL) {tuned:>6,.0f}/s ({ours / tuned:.1f}x)")


def http(seconds: float, connections: int) -> None:
    print(f"HTTP trigger, POST a webhook body, {connections} keep-alive connections from a second "
          f"process on loopback, {seconds:g} s per figure after a 1 s warm-up")
    targets = {1 * KB: ("≥ Node-RED's req/s, p95 < 20 ms",
                        lambda o, n: o["rate"] >= n["rate"] and o["p95"] < 20),
               100 * KB: ("≥ 500/s, p95 < 50 ms", lambda o, n: o["rate"] >= 500 and o["p95"] < 50)}
    with tempfile.TemporaryDirectory() as tmp:
        pipeline_file = Path(tmp) / "bench.yaml"
        pipeline_file.write_text(bench_server.PIPELINE)
        store = f"sqlite:///{tmp}/ours.db"
        key = bench_server.create_key(store)
        probe = encoded(KB, 0)
        with bench_server.serving(pipeline_file, store, [], ROOT) as (ours_base, ours_pid), \
                nodered.node_red(probe) as (red_base, red_pid):
            for size, (target, reached) in targets.items():
                ours = bench_server.run_load(f"{ours_base}/webhook", "POST", key, connections,
                                             seconds, ours_pid, size)
                red = bench_server.run_load(f"{red_base}/webhook", "POST", None, connections,
                                            seconds, red_pid, size)
                print(f"  {size // KB:>3} KB  ours (wfstudio serve, SQLite, 1 process) "
                      f"{bench_server.figure(ours)}   Node-RED {nodered.version()} "
                      f"{bench_server.figure(red)}   {ours['rate'] / red['rate']:4.0%}"
                      f"   target {target}: {mark(reached(ours, red))}"
                      f"   server CPU per request {ours['cpu_per_request']:.0f} / "
                      f"{red['cpu_per_request']:.0f} µs"
                      f"{bench_server.errors_note(ours)}{bench_server.errors_note(red)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per figure")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--only-http", action="store_true",
                        help="only wfstudio serve against Node-RED (DBOS not needed)")
    args = parser.parse_args()
    load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
    print(f"peers: DBOS in {DBOS_PYTHON.parent.parent.name}, Node-RED {nodered.version()} on "
          f"Node.js {nodered.node_version()}; load average before: {load}")
    if not args.only_http:
        workflows(args.seconds)
    http(args.seconds, args.connections)
    return 0


if __name__ == "__main__":
    sys.exit(main())
