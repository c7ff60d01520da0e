"""Hosted-server load test: HTTP-triggered runs/s and latency, from a second process on loopback.

    python benchmarks/bench_server.py [--seconds S] [--concurrency 8,32]
                                      [--pg postgresql://postgres@127.0.0.1:5432 | --pg none]

Starts ``wfstudio serve`` as a subprocess on a free loopback port, serving a pipeline whose
``http`` trigger (``POST /orders``) runs 5 steps ending in ``step.json_response``, with full
recording. A second process (this script re-run with ``--load``: asyncio with a minimal
HTTP/1.1 client, N keep-alive connections for a fixed duration) drives it and reports requests/s and
p50/p95/p99 latency. Baseline in the same run: the same load generator, same server, against
``GET /api/v1/health`` (no key, no run): the HTTP stack alone. Done on a SQLite file in a
temp dir and on a throwaway PostgreSQL database (dropped afterwards).

Issue 11 rows (SQLite, one process, 8 connections): ``POST /webhook`` with a webhook-like
body (benchmarks/payloads.py) of 1 KB and of 100 KB, 8 different bodies cycled, a fresh
event id per request, through 5 steps with full recording; baseline in the same run: the
same requests to a twin pipeline recording metadata only (``POST /webhook-meta``), which
shows what recording the payload costs. When Node-RED is installed
(benchmarks/peers/install.sh), the same bodies are sent to it too, in the same run, with
this same load generator (its flow does what the pipeline does and records nothing): the
1 KB row's target is its requests/s. ``--no-peer`` leaves it out.

The load generator shares the machine's cores with the server, so every figure (baseline
too) is what one box does with both ends on it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from payloads import KB, encoded  # noqa: E402 - the benchmarks folder, put on the path above

PIPELINE = """
pipelines:
  orders:
    record: full
    trigger: {type: http, config: {method: POST, path: /orders}}
    steps:
      - name: read
        type: step.set
        config: {values: {id: "{{ .trigger.body.id }}", qty: "{{ .trigger.body.qty }}"}}
      - name: label
        type: step.set
        config: {values: {label: "order {{ .id }}"}}
      - name: copy
        type: step.set
        config: {values: {seen: "{{ .steps.label.label }}"}}
      - name: flag
        type: step.set
        config: {values: {ok: true}}
      - name: reply
        type: step.json_response
        config: {status: 200, body: {id: "{{ .id }}", label: "{{ .label }}", ok: "{{ .ok }}"}}
"""

# The issue-11 pipeline: what a webhook handler does (pick fields, count line items with jq,
# reply), once recording everything and once (the baseline) metadata only.
WEBHOOK = """
  @NAME:
    record: @RECORD
    trigger: {type: http, config: {method: POST, path: @PATH}}
    steps:
      - name: read
        type: step.set
        config:
          values: {event: "{{ .trigger.body.id }}", order_id: "{{ .trigger.body.data.order.id }}"}
      - name: label
        type: step.set
        config: {values: {label: "order {{ .order_id }} ({{ .event }})"}}
      - name: count
        type: step.set
        config: {values: {items: "{{ .trigger.body.data.order.line_items | length }}"}}
      - name: flag
        type: step.set
        config: {values: {ok: true}}
      - name: reply
        type: step.json_response
        config:
          status: 200
          body: {id: "{{ .event }}", label: "{{ .label }}", items: "{{ .items }}"}
"""
PIPELINE += "".join(WEBHOOK.replace("@NAME", name).replace("@RECORD", record).replace("@PATH", path)
                    for name, record, path in (("webhook", "full", "/webhook"),
                                               ("webhook_meta", "metadata", "/webhook-meta")))

TARGET = ">=1000 runs/s, p95<50ms (SQLite)"
# Issue 11: (body bytes, target, reached?) for POST /webhook, SQLite, 1 process, 8 connections.
# ``peer``: Node-RED's figure for the same body in the same run, None when it is not installed.
BODY_ROWS: list[tuple[int, str, Callable[[dict[str, Any], dict[str, Any] | None], bool]]] = [
    (1 * KB, "p95 < 20 ms, >= Node-RED's req/s",
     lambda r, peer: r["p95"] < 20 and peer is not None and r["rate"] >= peer["rate"]),
    (100 * KB, ">= 500/s, p95 < 50 ms", lambda r, _peer: r["rate"] >= 500 and r["p95"] < 50),
]
BODY_SEEDS = 8  # different bodies, cycled


def bodies(size: int) -> list[tuple[bytes, int]]:
    """``BODY_SEEDS`` webhook bodies of ``size`` bytes, each with the offset of its 21-byte
    event id, which every request replaces with a fresh one of the same length."""
    out = []
    for seed in range(BODY_SEEDS):
        body = encoded(size, seed)
        start = body.index(b'"id":"evt_') + 6
        out.append((body, start))
    return out


# ---------------------------------------------------------------------- the load generator


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


class RawConnection:
    """One keep-alive HTTP/1.1 connection over asyncio streams. httpx's pool costs the
    generator milliseconds of CPU per request once 32 connections are open (measured: it
    saturated its core at under 100 req/s on this 2-core box), which would benchmark the
    client; this costs a few tens of microseconds."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, head: bytes, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        keep = True
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and b"close" in value.lower():
                keep = False
            elif name == b"transfer-encoding":
                raise ConnectionError("chunked replies are not expected here")
        await self.reader.readexactly(length)
        if not keep:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def generate_load(url: str, method: str, key: str | None, concurrency: int,
                        seconds: float, warmup: float, body_bytes: int = 0) -> dict[str, Any]:
    """N workers, each on its own keep-alive connection, for ``warmup`` + ``seconds``;
    only requests started after the warm-up count. POST bodies are ``{"id", "qty"}``, or
    webhooks of ``body_bytes`` bytes (``bodies``) when that is set."""
    templates = bodies(body_bytes) if body_bytes else []
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    auth = f"X-API-Key: {key}\r\n" if key else ""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    answered = 0  # warm-up included: for the server's CPU time per request
    start = time.perf_counter()
    cpu_start = time.process_time()
    measure_from = start + warmup
    stop_at = measure_from + seconds

    async def worker(n: int) -> None:
        nonlocal answered
        conn = RawConnection(host, port)
        i = 0
        try:
            while True:
                begun = time.perf_counter()
                if begun >= stop_at:
                    return
                i += 1
                if templates:
                    template, at = templates[i % len(templates)]
                    body = b"%s%s%s" % (template[:at], b"evt_%08d_%08x" % (n, i), template[at + 21:])
                elif method == "POST":
                    body = json.dumps({"id": f"{n}-{i}", "qty": i}).encode()
                else:
                    body = b""
                head = (f"{method} {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}"
                        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                        "\r\n").encode()
                try:
                    status = await conn.request(head, body)
                    answered += 1
                    outcome = "" if status == 200 else f"HTTP {status}"
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
    # Requests begun before stop_at finish after it: count the real span.
    elapsed = time.perf_counter() - measure_from
    cpu = (time.process_time() - cpu_start) / (elapsed + warmup)
    latencies.sort()
    return {"ok": len(latencies), "answered": answered, "errors": errors, "seconds": elapsed,
            "rate": len(latencies) / elapsed, "cpu": cpu,
            "p50": percentile(latencies, 0.50) * 1000, "p95": percentile(latencies, 0.95) * 1000,
            "p99": percentile(latencies, 0.99) * 1000}


def load_main(args: argparse.Namespace) -> int:
    result = asyncio.run(generate_load(args.url, args.method, os.environ.get("BENCH_KEY"),
                                       args.connections, args.seconds, args.warmup,
                                       args.body_bytes))
    print(json.dumps(result))
    return 0


def _stat(pid: int | str) -> list[str]:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # gone, or not Linux
        return []


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its direct children (``serve --workers``)."""
    fields = _stat(pid)
    if not fields:
        return float("nan")
    ticks = sum(int(f) for f in fields[11:15])
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (child := _stat(entry)) and child[1] == str(pid):
            ticks += sum(int(f) for f in child[11:13])
    return ticks / os.sysconf("SC_CLK_TCK")


def run_load(url: str, method: str, key: str | None, concurrency: int,
             seconds: float, server_pid: int, body_bytes: int = 0) -> dict[str, Any]:
    """Run the load generator as a separate process and return its figures, with the
    server's CPU use over the whole load (1 = one core busy)."""
    env = {**os.environ, "BENCH_KEY": key or ""}
    cpu_before, wall_before = cpu_seconds(server_pid), time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--load", "--url", url, "--method", method,
         "--connections", str(concurrency), "--seconds", str(seconds), "--warmup", "1",
         "--body-bytes", str(body_bytes)],
        capture_output=True, text=True, env=env, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    # Both span the generator's start-up too: a slight under-estimate of the loaded figure.
    cpu = cpu_seconds(server_pid) - cpu_before
    result["server_cpu"] = cpu / (time.perf_counter() - wall_before)
    result["cpu_per_request"] = cpu / max(1, result["answered"]) * 1e6  # µs
    return result


# ---------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wfstudio(*argv: str) -> list[str]:
    return [sys.executable, "-m", "engine.cli", *argv]


def create_key(store: str) -> str:
    done = subprocess.run(wfstudio("keys", "create", "--name", "bench", "--scope", "run",
                                   "--store", store, "--json"),
                          capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wfstudio keys create failed:\n{done.stderr}")
    secret: str = json.loads(done.stdout)["secret"]
    return secret


@contextlib.contextmanager
def serving(pipeline_file: Path, store: str, serve_args: list[str],
            root: Path) -> Iterator[tuple[str, int]]:
    """``wfstudio serve`` (of the checkout at ``root``) on a free port; yields its base URL
    and pid, stops it afterwards."""
    import httpx

    port = free_port()
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            wfstudio("serve", str(pipeline_file), "--addr", f"127.0.0.1:{port}",
                     "--store", store, "--log-level", "warning", *serve_args),
            cwd=root, stdout=log, stderr=log)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                if server.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"wfstudio serve exited:\n{log.read().decode()}")
                try:
                    if httpx.get(f"{base}/api/v1/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("wfstudio serve did not answer within 30 s")
                time.sleep(0.1)
            yield base, server.pid
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


@contextlib.contextmanager
def throwaway_pg_database(server: str) -> Iterator[str]:
    """A new database on ``server`` (postgresql://user@host:port), dropped afterwards."""
    import psycopg

    server = server.rstrip("/")
    name = f"wfs_bench_srv_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{server}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------------- the report


def figure(result: dict[str, Any]) -> str:
    return (f"{result['rate']:>5.0f}/s  p50 {result['p50']:5.1f}  p95 {result['p95']:5.1f}  "
            f"p99 {result['p99']:6.1f} ms")


def errors_note(result: dict[str, Any]) -> str:
    errs = result["errors"]
    return "" if not errs else "  errors: " + ", ".join(f"{k} x{v}" for k, v in errs.items())


def bench_store(label: str, store: str, pipeline_file: Path, levels: list[int],
                seconds: float, serve_args: list[str], root: Path) -> None:
    key = create_key(store)
    with serving(pipeline_file, store, serve_args, root) as (base, pid):
        # One run first: the trigger must work before we time it.
        import httpx
        check = httpx.post(f"{base}/orders", json={"id": "check", "qty": 1},
                           headers={"X-API-Key": key}, timeout=30)
        if check.status_code != 200 or check.json().get("id") != "check":
            raise RuntimeError(f"POST /orders answered {check.status_code}: {check.text}")
        for concurrency in levels:
            runs = run_load(f"{base}/orders", "POST", key, concurrency, seconds, pid)
            health = run_load(f"{base}/api/v1/health", "GET", None, concurrency, seconds, pid)
            ratio = runs["rate"] / health["rate"] if health["rate"] else float("nan")
            print(f"  {label:<10} c={concurrency:<3} POST /orders (5-step run) {figure(runs)}"
                  f"   baseline GET /health {figure(health)}   {ratio:4.0%}"
                  f"   server CPU {runs['server_cpu']:.0%} / {health['server_cpu']:.0%}"
                  f" ({runs['cpu_per_request']:.0f} / {health['cpu_per_request']:.0f} µs per request)"
                  f"   generator CPU {runs['cpu']:.0%}{errors_note(runs)}{errors_note(health)}")


def node_red_peer() -> Any:
    """benchmarks/peers/nodered.py when Node-RED is installed there, else None."""
    sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
    import nodered

    return nodered if nodered.RED_JS.exists() else None


def bench_bodies(store: str, pipeline_file: Path, seconds: float, serve_args: list[str],
                 root: Path, connections: int = 8, peer: bool = True) -> list[dict[str, Any]]:
    """Issue 11: webhook bodies of 1 KB and 100 KB, recorded in full vs metadata only, and
    Node-RED (if installed and ``peer``) with the same bodies, in turns."""
    key = create_key(store)
    results = []
    red = node_red_peer() if peer else None
    with contextlib.ExitStack() as stack:
        base, pid = stack.enter_context(serving(pipeline_file, store, serve_args, root))
        red_base, red_pid = (stack.enter_context(red.node_red(bodies(KB)[0][0]))
                             if red is not None else ("", 0))
        import httpx
        for size, target, reached in BODY_ROWS:
            body, _ = bodies(size)[0]
            for path in ("/webhook", "/webhook-meta"):
                check = httpx.post(f"{base}{path}", content=body, timeout=30,
                                   headers={"X-API-Key": key, "Content-Type": "application/json"})
                if check.status_code != 200 or not check.json().get("id", "").startswith("evt_"):
                    raise RuntimeError(f"POST {path} answered {check.status_code}: {check.text}")
            full = run_load(f"{base}/webhook", "POST", key, connections, seconds, pid, size)
            meta = run_load(f"{base}/webhook-meta", "POST", key, connections, seconds, pid, size)
            peer_result = (run_load(f"{red_base}/webhook", "POST", None, connections, seconds,
                                    red_pid, size) if red is not None else None)
            ratio = full["rate"] / meta["rate"] if meta["rate"] else float("nan")
            label = f"POST /webhook {size // KB:>3} KB body"
            red_note = ("" if not peer else "   Node-RED: not installed (benchmarks/peers/install.sh)"
                        if red is None or peer_result is None
                        else f"   Node-RED {red.version()} (records nothing) {figure(peer_result)}"
                             f" ({peer_result['cpu_per_request']:.0f} µs CPU per request)"
                             f"{errors_note(peer_result)}")
            print(f"  sqlite     c={connections:<3} {label:<27} {figure(full)}"
                  f"   baseline record: metadata {figure(meta)}   {ratio:4.0%}"
                  f"   target {target}: {'yes' if reached(full, peer_result) else 'NO'}"
                  f"   ({full['cpu_per_request']:.0f} / {meta['cpu_per_request']:.0f} µs server CPU"
                  f" per request){errors_note(full)}{errors_note(meta)}{red_note}")
            results.append({"bytes": size, "full": full, "meta": meta, "node_red": peer_result})
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per load")
    parser.add_argument("--concurrency", default="8,32", help="connection counts, e.g. 8,32")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432",
                        help="PostgreSQL server for a throwaway database, or 'none'")
    parser.add_argument("--serve-args", default="",
                        help="extra arguments for wfstudio serve, e.g. '--workers 2'")
    parser.add_argument("--server-root", type=Path, default=ROOT,
                        help="serve with the checkout in this directory (before/after figures)")
    # The load generator's own mode (this file run as the second process).
    parser.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--method", default="GET", help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, default=8, help=argparse.SUPPRESS)
    parser.add_argument("--body-bytes", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--only-bodies", action="store_true",
                        help="only the issue-11 rows (1 KB and 100 KB webhook bodies)")
    parser.add_argument("--no-peer", action="store_true",
                        help="leave Node-RED out of the body rows even when it is installed")
    parser.add_argument("--warmup", type=float, default=1.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        return load_main(args)

    levels = [int(n) for n in args.concurrency.split(",") if n.strip()]
    print("hosted server (wfstudio serve): HTTP-triggered 5-step runs, full recording; "
          f"load from a second process on loopback, {args.seconds:g} s per figure "
          "(after 1 s warm-up)")
    print(f"  ratio = triggered runs/s ÷ the HTTP stack's requests/s; target {TARGET}")
    with tempfile.TemporaryDirectory() as tmp:
        pipeline_file = Path(tmp) / "orders.yaml"
        pipeline_file.write_text(PIPELINE)
        serve_args = args.serve_args.split()
        bench_bodies(f"sqlite:///{tmp}/bodies.db", pipeline_file, args.seconds, serve_args,
                     args.server_root, peer=not args.no_peer)
        if args.only_bodies:
            return 0
        bench_store("sqlite", f"sqlite:///{tmp}/bench.db", pipeline_file, levels, args.seconds,
                    serve_args, args.server_root)
        if args.pg.lower() != "none":
            with throwaway_pg_database(args.pg) as url:
                bench_store("postgresql", url, pipeline_file, levels, args.seconds, serve_args,
                            args.server_root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
