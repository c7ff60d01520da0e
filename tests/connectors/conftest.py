"""Fixtures for the connector tests: a real local SQS endpoint (moto in server mode).

moto runs as its own process (``python -m moto.server``) on a free loopback port for the
whole session, so it answers like AWS over HTTP and does not share the tests' interpreter.
Each test makes its own queues (unique names), so tests never see each other's messages.
Any access key works with moto; the tests pass one explicitly.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.connectors.kill_harness import free_port
from tests.waiting import wait_until

REGION = "us-east-1"
CREDENTIALS = {"access_key_id": "testing", "secret_access_key": "testing"}


@dataclass
class Moto:
    endpoint: str
    log: Path

    def config(self, queue_url: str, **extra: Any) -> dict[str, Any]:
        """A connector config for a queue on this endpoint."""
        return {"queue_url": queue_url, "endpoint_url": self.endpoint, "region": REGION,
                **CREDENTIALS, **extra}

    def client(self) -> Any:
        """A blocking boto3 SQS client for the test's own sends and checks."""
        import boto3

        return boto3.client("sqs", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")


def _up(endpoint: str) -> bool:
    try:
        return httpx.get(f"{endpoint}/moto-api/", timeout=2).status_code < 500
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                    "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _up(endpoint) or process.poll() is not None,
                   "moto's SQS endpoint to come up", timeout=60, interval=0.1)
        if process.poll() is not None:
            raise AssertionError(f"moto did not start:\n{log.read_text()[-3000:]}")
        yield Moto(endpoint, log)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)


@pytest.fixture
def new_queue(moto_server: Moto) -> Callable[..., str]:
    """Makes a queue with a unique name on the moto server; returns its URL.
    ``new_queue(fifo=True, VisibilityTimeout="5")``: attributes as SQS takes them."""
    client = moto_server.client()

    def make(fifo: bool = False, **attributes: str) -> str:
        name = f"wfs-{uuid.uuid4().hex[:16]}" + (".fifo" if fifo else "")
        if fifo:
            attributes = {"FifoQueue": "true", **attributes}
        url: str = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        return url
    return make
