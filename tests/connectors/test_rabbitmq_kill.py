"""Kill test: ``wfstudio serve`` consuming a RabbitMQ queue is SIGKILLed three times.

2,000 messages wait in a queue of the test's own; the server (SQLite store) consumes them
through a 3-step pipeline and is killed, with batches unacknowledged and executions
running, each time another quarter has completed. The broker gives back what a dead
consumer held; the dedup record and the reruns of interrupted executions make every
message exactly one completed execution.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from tests.connectors.kill_harness import Server, assert_exactly_once, kill_and_count

aio_pika = pytest.importorskip("aio_pika")

URL = "amqp://guest:guest@127.0.0.1:5672/"
COUNT = 2000

PIPELINE_FILE = """\
connectors:
  - name: orders
    type: source.rabbitmq
    config: {{url: "{url}", queue: "{queue}", type: order.created, prefetch: 300, batch_size: 100}}
pipelines:
  take_order:
    trigger: {{type: event, config: {{connector: orders, type: order.created}}}}
    steps:
      - {{name: price, type: step.set, config: {{values: {{total: "{{{{ .data.qty * 10 }}}}"}}}}}}
      - {{name: tax, type: step.set, config: {{values: {{gross: "{{{{ .total * 2 }}}}"}}}}}}
      - {{name: out, type: step.pipeline_output, config: {{values: {{gross: "{{{{ .gross }}}}"}}}}}}
"""


async def _publish(queue: str, ids: list[str]) -> None:
    connection = await aio_pika.connect(URL, timeout=10)
    try:
        channel = await connection.channel()  # publisher confirms: each one is in the queue
        await channel.declare_queue(queue, durable=True)
        for i, event_id in enumerate(ids):
            await channel.default_exchange.publish(
                aio_pika.Message(json.dumps({"qty": i}).encode(), message_id=event_id,
                                 content_type="application/json",
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=queue)
    finally:
        await connection.close()


async def _delete(queue: str) -> None:
    connection = await aio_pika.connect(URL, timeout=10)
    try:
        channel = await connection.channel()
        await channel.queue_delete(queue)
    finally:
        await connection.close()


async def _ready(queue: str) -> int:
    connection = await aio_pika.connect(URL, timeout=10)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count)
    finally:
        await connection.close()


def test_every_message_is_one_completed_execution_across_three_kills(tmp_path: Path) -> None:
    try:
        asyncio.run(_probe())
    except Exception as exc:
        pytest.skip(f"RabbitMQ is not reachable at 127.0.0.1:5672: {exc}")
    queue = f"wfs-kill-{uuid.uuid4().hex[:12]}"
    ids = [f"order-{i}" for i in range(COUNT)]
    file = tmp_path / "rabbit.yaml"
    file.write_text(PIPELINE_FILE.format(url=URL, queue=queue))
    store = f"sqlite:///{tmp_path / 'store.db'}"
    server = Server(file, store, tmp_path / "serve.log")
    try:
        asyncio.run(_publish(queue, ids))
        counts = kill_and_count(server, ids, kills=3)
        assert_exactly_once(counts, ids)
        assert asyncio.run(_ready(queue)) == 0  # the last server acknowledged all of them
    finally:
        server.kill()
        asyncio.run(_delete(queue))


async def _probe() -> None:
    connection = await aio_pika.connect(URL, timeout=10)
    await connection.close()
