"""Webhook intake: signed webhook requests/s next to the http trigger, same server, same run.

    python benchmarks/bench_sources_webhook.py [--seconds S] [--concurrency 8,32]

Starts ``wfstudio serve`` (SQLite store in a temp dir) on a file holding both:

- a ``source.webhook`` (Stripe scheme) at ``POST /hooks/stripe`` whose pipeline runs two
  ``step.set`` steps: each request is signed (``Stripe-Signature``, a fresh event id), its
  headers checked, its HMAC verified, its dedup row and execution start recorded in one
  transaction, and answered 202 once that is durable;
- the baseline: an ``http`` trigger pipeline at ``POST /charges`` with the same two steps
  and no response step, so it too answers 202 once the execution's start is durable (it
  needs an API key instead of a signature, and records no dedup row).

A second process (this script with ``--load``) drives each with N keep-alive connections
(the raw HTTP/1.1 client of bench_server.py) and reports requests/s and latency. Both ends
share the machine's 2 cores, so both figures are what one box does with both on it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_server import (  # noqa: E402 - the benchmarks folder, put on the path above
    RawConnection,
    cpu_seconds,
    create_key,
    percentile,
    serving,
)

SECRET = "whsec_bench"
STEPS = """
      - name: read
        type: step.set
        config: {values: {id: "{{ .amount_id }}", amount: "{{ .amount }}"}}
      - name: double
        type: step.set
        config: {values: {twice: "{{ .amount * 2 }}"}}
"""
PIPELINES = f"""
connectors:
  - name: stripe
    type: source.webhook
    config: {{path: /hooks/stripe, scheme: stripe, secret: {SECRET}, max_in_flight: 256}}
pipelines:
  hooked:
    trigger: {{type: event, config: {{connector: stripe}}}}
    steps:
      - name: pick
        type: step.set
        config:
          values: {{amount_id: "{{{{ .trigger.id }}}}", amount: "{{{{ .trigger.data.data.amount }}}}"}}
{STEPS}
  triggered:
    trigger: {{type: http, config: {{method: POST, path: /charges}}}}
    steps:
      - name: pick
        type: step.set
        config:
          values: {{amount_id: "{{{{ .trigger.body.id }}}}", amount: "{{{{ .trigger.body.data.amount }}}}"}}
{STEPS}
"""


async def generate(url: str, kind: str, key: str, concurrency: int, seconds: float,
                   warmup: float) -> dict[str, Any]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    latencies: list[float] = []
    errors: dict[str, int] = {}
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + seconds
    run = os.getpid()

    async def worker(n: int) -> None:
        conn = RawConnection(host, port)
        i = 0
        try:
            while (begun := time.perf_counter()) < stop_at:
                i += 1
                body = json.dumps({"id": f"evt_{run}_{n}_{i}", "type": "charge.succeeded",
                                   "data": {"amount": i}}).encode()
                if kind == "webhook":
                    stamp = str(int(time.time()))
                    mac = hmac.new(SECRET.encode(), stamp.encode() + b"." + body,
                                   hashlib.sha256).hexdigest()
                    auth = f"Stripe-Signature: t={stamp},v1={mac}\r\n"
                else:
                    auth = f"X-API-Key: {key}\r\n"
                head = (f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}"
                        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                        "\r\n").encode()
                try:
                    status = await conn.request(head, body)
                    outcome = "" if status == 202 else f"HTTP {status}"
                except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
                    conn.close()
                    outcome = type(exc).__name__
                if begun >= measure_from:
                    if outcome:
                        errors[outcome] = errors.get(outcome, 0) + 1
                    else:
                        latencies.append(time.perf_counter() - begun)
        finally:
            conn.close()

    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - measure_from
    latencies.sort()
    return {"ok": len(latencies), "errors": errors, "rate": len(latencies) / elapsed,
            "p50": percentile(latencies, 0.5) * 1000, "p99": percentile(latencies, 0.99) * 1000}


def run_load(url: str, kind: str, key: str, concurrency: int, seconds: float,
             server_pid: int) -> dict[str, Any]:
    cpu_before = cpu_seconds(server_pid)
    done = subprocess.run(
        [sys.executable, __file__, "--load", "--url", url, "--kind", kind, "--connections",
         str(concurrency), "--seconds", str(seconds)],
        capture_output=True, text=True, env={**os.environ, "BENCH_KEY": key},
        timeout=seconds + 120)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    cpu = cpu_seconds(server_pid) - cpu_before
    total = result["ok"] + sum(result["errors"].values())
    result["cpu_per_request"] = cpu / total * 1e6 if total else float("nan")
    return result


def figure(r: dict[str, Any]) -> str:
    errs = "" if not r["errors"] else " errors " + ", ".join(f"{k} x{v}"
                                                             for k, v in r["errors"].items())
    return (f"{r['rate']:6.0f}/s  p50 {r['p50']:6.1f}  p99 {r['p99']:6.1f} ms  "
            f"server {r['cpu_per_request']:5.0f} µs CPU/request{errs}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", default="8,32")
    parser.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        print(json.dumps(asyncio.run(generate(args.url, args.kind, os.environ["BENCH_KEY"],
                                              args.connections, args.seconds, 1.0))))
        return 0
    levels = [int(c) for c in args.concurrency.split(",")]
    print("webhook intake (signed POST /hooks/stripe -> 202 once recorded) vs http trigger "
          "(POST /charges, same steps -> 202 once started); SQLite, one server process")
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "bench.yaml"
        file.write_text(PIPELINES)
        store = f"sqlite:///{Path(tmp) / 'store.db'}"
        key = create_key(store)
        with serving(file, store, [], ROOT) as (base, pid):
            for kind, path in (("webhook", "/hooks/stripe"), ("trigger", "/charges")):
                # One request first: each path must work before it is timed.
                check = asyncio.run(generate(base + path, kind, key, 1, 0.2, 0.0))
                if not check["ok"]:
                    raise RuntimeError(f"{path} did not answer 202: {check['errors']}")
            for concurrency in levels:
                hooks = run_load(f"{base}/hooks/stripe", "webhook", key, concurrency,
                                 args.seconds, pid)
                trig = run_load(f"{base}/charges", "trigger", key, concurrency, args.seconds, pid)
                ratio = hooks["rate"] / trig["rate"] if trig["rate"] else float("nan")
                print(f"  c={concurrency:<3} webhook {figure(hooks)}")
                print(f"        baseline http trigger {figure(trig)}   webhook/trigger {ratio:4.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
