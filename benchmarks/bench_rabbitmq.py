"""RabbitMQ source throughput: events/s from a queue to completed executions.

    python benchmarks/bench_rabbitmq.py [--events N] [--store URL] [--rounds R]

N messages (JSON, message_id set) are published to a fresh durable queue on the machine's
RabbitMQ (127.0.0.1:5672), then:

- baseline: a bare aio-pika consumer (same prefetch, manual acks, one multiple-ack per 100
  messages) drains the queue; events/s = N / time to the last ack;
- source: a ``LocalService`` (new SQLite file, or ``--store``) runs ``source.rabbitmq`` into a
  3-step pipeline (set, set, pipeline_output); events/s = N / time from starting the source
  until N executions have completed (their rows say so), every message acknowledged.

Each round publishes anew; rounds alternate baseline and source. Queues are deleted.
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

import aio_pika

from engine.service.local import LocalService

URL = "amqp://guest:guest@127.0.0.1:5672/"
PREFETCH = 300

FILE = """\
connectors:
  - name: orders
    type: source.rabbitmq
    config: {{url: "{url}", queue: "{queue}", prefetch: {prefetch}, batch_size: 100}}
pipelines:
  take_order:
    trigger: {{type: event, config: {{connector: orders}}}}
    steps:
      - {{name: price, type: step.set, config: {{values: {{total: "{{{{ .data.qty * 10 }}}}"}}}}}}
      - {{name: tax, type: step.set, config: {{values: {{gross: "{{{{ .total * 2 }}}}"}}}}}}
      - {{name: out, type: step.pipeline_output, config: {{values: {{gross: "{{{{ .gross }}}}"}}}}}}
"""


async def publish(channel: aio_pika.abc.AbstractChannel, queue: str, n: int) -> None:
    await channel.declare_queue(queue, durable=True)
    prefix = uuid.uuid4().hex[:8]
    for start in range(0, n, 500):  # confirms awaited 500 at a time
        await asyncio.gather(*(channel.default_exchange.publish(
            aio_pika.Message(json.dumps({"qty": i}).encode(), message_id=f"{prefix}-{i}",
                             content_type="application/json"), routing_key=queue)
            for i in range(start, min(n, start + 500))))


async def bare(connection: aio_pika.abc.AbstractConnection, queue: str, n: int) -> float:
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=PREFETCH)
    declared = await channel.declare_queue(queue, durable=True)
    done = asyncio.Event()
    seen = 0

    async def arrived(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal seen
        json.loads(message.body)  # as the source does, at least
        seen += 1
        if seen % 100 == 0 or seen == n:
            await message.ack(multiple=True)
        if seen == n:
            done.set()

    began = time.perf_counter()
    tag = await declared.consume(arrived)
    await done.wait()
    elapsed = time.perf_counter() - began
    await declared.cancel(tag)
    await channel.close()
    return n / elapsed


async def through_source(queue: str, n: int, store: str, tmp: Path) -> float:
    file = tmp / f"{queue}.yaml"
    file.write_text(FILE.format(url=URL, queue=queue, prefetch=PREFETCH))
    async with await LocalService.open([file], store=store) as service:
        began = time.perf_counter()
        await service.start_source("orders")
        while True:
            await asyncio.sleep(0.05)
            with service.store.read() as conn:
                completed = conn.exec_driver_sql(
                    "SELECT count(*) FROM executions WHERE trigger_type = 'event' "
                    "AND status = 'completed' AND pipeline = 'take_order'").scalar_one()
            if completed >= n:
                break
        elapsed = time.perf_counter() - began
        [info] = await service.list_sources()
        assert info.started >= n, info
    return n / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--store", default=None, help="a store URL (default: new SQLite files)")
    args = parser.parse_args()
    n = args.events
    print(f"rabbitmq source ({n} messages a round, prefetch {PREFETCH}; baseline: bare aio-pika "
          "consume + ack on the same broker)")
    connection = await aio_pika.connect(URL)
    channel = await connection.channel()
    baselines, sources = [], []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.rounds):
                queue = f"wfs-bench-{uuid.uuid4().hex[:10]}"
                await publish(channel, queue, n)
                baselines.append(await bare(connection, queue, n))
                await channel.queue_delete(queue)
                queue = f"wfs-bench-{uuid.uuid4().hex[:10]}"
                await publish(channel, queue, n)
                store = args.store or f"sqlite:///{tmp}/rabbit-{r}.db"
                sources.append(await through_source(queue, n, store, Path(tmp)))
                await channel.queue_delete(queue)
    finally:
        await connection.close()
    for r, (base, source) in enumerate(zip(baselines, sources, strict=True)):
        print(f"  round {r + 1}: 3-step pipeline {source:>8,.0f} events/s   baseline "
              f"{base:>8,.0f} msgs/s   ({source / base:.0%} of bare)")


if __name__ == "__main__":
    asyncio.run(main())
