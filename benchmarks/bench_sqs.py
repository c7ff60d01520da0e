"""SQS source throughput on moto (server mode): events/s through ``source.sqs`` into a 3-step
pipeline (LocalService, SQLite store) next to a bare aiobotocore receive+delete loop, in
the same run against the same moto process (rounds alternate).

A producer thread sends the N messages while each consumer runs, keeping at most ``DEPTH``
waiting: moto scans every queued message for each one it hands out (its retention check
reads all the queue's attributes), so a deep queue would measure moto's scan instead.

    python benchmarks/bench_sqs.py [--messages 1000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.connectors.kill_harness import free_port  # noqa: E402

DEPTH = 100
REGION = "us-east-1"
KEYS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}
PIPELINE = """
connectors:
  - name: inbox
    type: source.sqs
    config: %s
pipelines:
  handle:
    trigger: {type: event, config: {connector: inbox}}
    steps:
      - {name: first, type: step.set, config: {values: {n: "{{ .data.n }}"}}}
      - {name: second, type: step.set, config: {values: {twice: "{{ .n * 2 }}"}}}
      - {name: out, type: step.pipeline_output, config: {values: {twice: "{{ .twice }}"}}}
"""


class Producer(threading.Thread):
    def __init__(self, endpoint: str, url: str, count: int):
        import boto3

        super().__init__(daemon=True)
        self.url, self.count = url, count
        self.sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION, **KEYS)

    def waiting(self) -> int:
        found = self.sqs.get_queue_attributes(QueueUrl=self.url,
                                              AttributeNames=["ApproximateNumberOfMessages"])
        return int(found["Attributes"]["ApproximateNumberOfMessages"])

    def run(self) -> None:
        for start in range(0, self.count, 10):
            while self.waiting() >= DEPTH:
                time.sleep(0.01)
            self.sqs.send_message_batch(QueueUrl=self.url, Entries=[
                {"Id": str(i), "MessageBody": json.dumps({"n": start + i})}
                for i in range(min(10, self.count - start))])


def new_queue(endpoint: str) -> str:
    import boto3

    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION, **KEYS)
    url: str = sqs.create_queue(QueueName=f"bench-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    return url


async def bare(endpoint: str, count: int) -> float:
    """Receive (long poll, 10 at a time, with the receive count), parse, delete."""
    from aiobotocore.session import get_session

    url = new_queue(endpoint)
    async with get_session().create_client("sqs", endpoint_url=endpoint, region_name=REGION,
                                           **KEYS) as client:
        producer = Producer(endpoint, url, count)
        began = time.perf_counter()
        producer.start()
        got = 0
        while got < count:
            reply = await client.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                AttributeNames=["ApproximateReceiveCount"])
            messages = reply.get("Messages") or []
            if messages:
                for message in messages:
                    json.loads(message["Body"])
                await client.delete_message_batch(QueueUrl=url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)])
                got += len(messages)
        return count / (time.perf_counter() - began)


async def engine(endpoint: str, count: int, folder: Path) -> float:
    """source.sqs into the 3-step pipeline, until ``count`` executions have completed."""
    from engine.service.local import LocalService
    from engine.service.models import ExecutionFilter

    url = new_queue(endpoint)
    config: dict[str, Any] = {"queue_url": url, "endpoint_url": endpoint, "region": REGION,
                              "access_key_id": "bench", "secret_access_key": "bench",
                              "wait_time_seconds": 1}
    file = folder / f"{uuid.uuid4().hex}.yaml"
    file.write_text(PIPELINE % json.dumps(config))
    service = await LocalService.open([file], store=f"sqlite:///{folder / file.stem}.db")
    try:
        producer = Producer(endpoint, url, count)
        began = time.perf_counter()
        await service.start_source("inbox")
        producer.start()
        while True:
            [info] = await service.list_sources()
            if info.acknowledged >= count and info.in_flight == 0:
                break
            await asyncio.sleep(0.02)
        rate = count / (time.perf_counter() - began)
        done = await service.list_executions(ExecutionFilter(status="completed", limit=1000))
        assert len(done.items) == min(count, 1000), "not every event ran to completion"
        return rate
    finally:
        await service.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import httpx

        for _ in range(300):
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        print(f"SQS on moto (server mode), {args.messages} messages a round, at most {DEPTH} "
              "waiting, batch 10, long polling 1 s")
        with tempfile.TemporaryDirectory() as folder:
            for round_ in range(1, args.rounds + 1):
                base = asyncio.run(bare(endpoint, args.messages))
                ours = asyncio.run(engine(endpoint, args.messages, Path(folder)))
                print(f"  round {round_}: source.sqs -> 3-step pipeline (SQLite) {ours:,.0f} "
                      f"events/s; bare aiobotocore receive+delete {base:,.0f} msgs/s "
                      f"({ours / base:.0%})", flush=True)
    finally:
        moto.terminate()
        moto.wait(30)


if __name__ == "__main__":
    main()
