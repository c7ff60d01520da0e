"""Kill test of the Redis Streams source: 2,000 entries in a stream, ``wfstudio serve``
SIGKILLed three times while it consumes them, then started again. Every entry must end
as exactly one completed execution: none lost (unacknowledged entries stay pending and
are claimed by the next process, XAUTOCLAIM), none run twice (the intake's dedup by the
entry id, and reruns of executions the kill interrupted).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.connectors.kill_harness import Server, assert_exactly_once, kill_and_count

URL = "redis://127.0.0.1:6379/0"
EVENTS = 2000

PIPELINE = """
connectors:
  - name: orders
    type: source.redis_streams
    config: {config}
pipelines:
  handle:
    trigger: {{type: event, config: {{connector: orders}}}}
    steps:
      - {{name: first, type: step.set, config: {{values: {{n: "{{{{ .data.n }}}}"}}}}}}
      - {{name: second, type: step.set, config: {{values: {{kind: "{{{{ .type }}}}"}}}}}}
      - {{name: out, type: step.pipeline_output, config: {{values: {{n: "{{{{ .n }}}}"}}}}}}
"""


@pytest.fixture
def stream() -> Iterator[tuple[redis.Redis, str]]:
    client = redis.Redis.from_url(URL, decode_responses=True)
    key = f"wfs-kill:{uuid.uuid4().hex[:12]}"
    yield client, key
    client.delete(key)
    client.close()


def fill(client: redis.Redis, key: str) -> list[str]:
    with client.pipeline(transaction=False) as pipe:
        for i in range(EVENTS):
            pipe.xadd(key, {"data": json.dumps({"n": i})})
        return [str(entry_id) for entry_id in pipe.execute()]


def serve(tmp_path: Path, key: str, store: str) -> Server:
    file = tmp_path / "orders.yaml"
    # claim_idle_ms: a killed process's pending entries go to the next one after 1 s.
    config = {"url": URL, "stream": key, "block_ms": 200, "claim_idle_ms": 1000,
              "batch": 50}
    file.write_text(PIPELINE.format(config=json.dumps(config)))
    return Server(file, store, tmp_path / "serve.log")


def run_kill_test(tmp_path: Path, stream: tuple[redis.Redis, str], store: str) -> None:
    client, key = stream
    ids = fill(client, key)
    server = serve(tmp_path, key, store)
    try:
        counts = kill_and_count(server, ids, kills=3, timeout=600)
    finally:
        server.kill()
    assert_exactly_once(counts, ids)


def test_sigkilled_three_times_every_entry_completes_once_sqlite(
        tmp_path: Path, stream: tuple[redis.Redis, str]) -> None:
    run_kill_test(tmp_path, stream, f"sqlite:///{tmp_path / 'store.db'}")


@pytest.mark.postgres
def test_sigkilled_three_times_every_entry_completes_once_postgres(
        tmp_path: Path, stream: tuple[redis.Redis, str], fresh_pg_url: Callable[[], str]) -> None:
    run_kill_test(tmp_path, stream, fresh_pg_url())
