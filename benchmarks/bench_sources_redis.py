"""Redis Streams intake: the source through a 3-step pipeline vs a bare redis-py loop.

    python benchmarks/bench_sources_redis.py [--events N] [--rounds R]

(a) engine: N entries XADDed to a fresh stream, then ``source.redis_streams`` started in a
    ``LocalService`` on a SQLite store file; timed from the start until N executions of a
    3-step pipeline are completed in the store (and every entry acknowledged);
(b) baseline, same run, same Redis: a bare ``redis.asyncio`` XREADGROUP (COUNT 100) + XACK
    loop over N entries of another fresh stream, doing nothing with them;
(c) reference: the same pipeline run N times directly (``Engine.run``, 64 at once, as the
    source's default max_in_flight), no source: what executing alone costs, so (a) vs (c)
    is what the intake adds (dedup rows, batching, XACK).
Rounds alternate (baseline, engine) so both see the same machine load; the best of each
is printed with the ratio (goal: the engine at >= 50 % of the bare loop).
Needs Redis on 127.0.0.1:6379.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.service.local import LocalService

URL = "redis://127.0.0.1:6379/0"

PIPELINE = """
connectors:
  - name: inbox
    type: source.redis_streams
    config: {config}
pipelines:
  handle:
    trigger: {{type: event, config: {{connector: inbox}}}}
    steps:
      - {{name: first, type: step.set, config: {{values: {{n: "{{{{ .data.n }}}}"}}}}}}
      - {{name: second, type: step.set, config: {{values: {{kind: "{{{{ .type }}}}"}}}}}}
      - {{name: out, type: step.pipeline_output, config: {{values: {{n: "{{{{ .n }}}}"}}}}}}
"""


async def fill(client: object, key: str, n: int) -> None:
    pipe = client.pipeline(transaction=False)  # type: ignore[attr-defined]
    for i in range(n):
        pipe.xadd(key, {"data": json.dumps({"n": i, "sku": f"SKU-{i % 97}", "qty": i % 5})})
        if i % 1000 == 999:
            await pipe.execute()
    await pipe.execute()


async def bare_loop(n: int) -> float:
    """Seconds for a plain consumer-group loop to read and acknowledge n entries."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(URL, protocol=2)
    key = f"wfs-bench:{uuid.uuid4().hex[:10]}"
    try:
        await client.xgroup_create(key, "bench", id="0", mkstream=True)
        await fill(client, key, n)
        began = time.perf_counter()
        done = 0
        while done < n:
            reply = await client.xreadgroup("bench", "c1", {key: ">"}, count=100, block=1000)
            entries = reply[0][1] if reply else []
            if entries:
                await client.xack(key, "bench", *[e[0] for e in entries])
                done += len(entries)
        return time.perf_counter() - began
    finally:
        await client.delete(key)
        await client.aclose()


async def engine_intake(tmp: Path, n: int) -> tuple[float, int]:
    """Seconds until n executions completed; and how many completed."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(URL, protocol=2)
    key = f"wfs-bench:{uuid.uuid4().hex[:10]}"
    folder = Path(tempfile.mkdtemp(dir=tmp))
    file = folder / "flow.yaml"
    file.write_text(PIPELINE.format(config=json.dumps({"url": URL, "stream": key,
                                                       "block_ms": 100, "batch": 100})))
    try:
        await fill(client, key, n)
        service = await LocalService.open([file], store=f"sqlite:///{folder / 'store.db'}")
        try:
            began = time.perf_counter()
            await service.start_source("inbox")
            while True:
                with service.store.read() as conn:
                    completed = int(conn.exec_driver_sql(
                        "SELECT count(*) FROM executions WHERE status = 'completed'").scalar_one())
                [info] = await service.list_sources()
                if completed >= n and info.acknowledged >= n:
                    return time.perf_counter() - began, completed
                if info.last_error:
                    raise SystemExit(f"the source failed: {info.last_error}")
                await asyncio.sleep(0.02)
        finally:
            await service.close()
    finally:
        await client.delete(key)
        await client.aclose()


async def engine_alone(tmp: Path, n: int) -> float:
    """Seconds for the engine to run the pipeline n times (64 at once) without a source."""
    from engine.connectors.envelope import make

    folder = Path(tempfile.mkdtemp(dir=tmp))
    file = folder / "flow.yaml"
    file.write_text(PIPELINE.format(config=json.dumps({"url": URL, "stream": "unused"})))
    events = [make("redis-streams:bench", "redis.stream.entry",
                   {"n": i, "sku": f"SKU-{i % 97}", "qty": i % 5}) for i in range(n)]
    async with await LocalService.open([file], store=f"sqlite:///{folder / 'store.db'}") as svc:
        engine = svc.engine_for("handle")
        room = asyncio.Semaphore(64)

        async def one(event: dict[str, object]) -> None:
            async with room:
                await engine.run("handle", event, trigger_type="event")
        began = time.perf_counter()
        await asyncio.gather(*(one(e) for e in events))
        return time.perf_counter() - began


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    n = args.events
    print(f"sources: Redis Streams intake, {n:,} entries, best of {args.rounds} alternating rounds")
    bare: list[float] = []
    engine: list[float] = []
    alone: list[float] = []
    completed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            bare.append(await bare_loop(n))
            seconds, completed = await engine_intake(Path(tmp), n)
            engine.append(seconds)
            alone.append(await engine_alone(Path(tmp), n))
    bare_rate, engine_rate, alone_rate = n / min(bare), n / min(engine), n / min(alone)
    print(f"  {'engine: source -> 3-step pipeline (SQLite)':<48} {engine_rate:>10,.0f} events/s"
          f"   ({completed:,} executions completed)")
    print(f"  {'baseline: bare XREADGROUP + XACK loop':<48} {bare_rate:>10,.0f} events/s")
    print(f"  {'ratio engine / baseline':<48} {engine_rate / bare_rate:>10.1%}   goal >= 50%")
    print(f"  {'reference: same pipeline run directly, 64 at once':<48} {alone_rate:>10,.0f} runs/s")
    print(f"  {'ratio engine / direct runs':<48} {engine_rate / alone_rate:>10.1%}")


if __name__ == "__main__":
    asyncio.run(main())
