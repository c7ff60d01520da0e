"""The source runtime (engine/service/source_runtime.py) with a real source: the Redis
Streams source on the local Redis, a real SQLite store file.

What it promises beyond one transport: at most ``max_in_flight`` executions run at once
(a bigger batch waits its turn, recorded already); a source's info carries the JSON Schema
of its events' data; an event's identity is recorded readable under ``record: redacted``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from engine.service.local import LocalService
from engine.service.models import ExecutionFilter
from tests.waiting import wait_for_condition

URL = "redis://127.0.0.1:6379/0"

PIPELINE = """
connectors:
  - name: inbox
    type: source.redis_streams
    config: {{url: "{url}", stream: "{stream}", batch: 20, max_in_flight: 3, schema: order}}
schemas:
  order: {{type: object, required: [n], properties: {{n: {{type: integer}}}}}}
pipelines:
  handle:
    trigger: {{type: event, config: {{connector: inbox}}}}
    steps:
      - {{name: wait, type: step.delay, config: {{duration: 50ms}}}}
      - {{name: out, type: step.pipeline_output, config: {{values: {{n: "{{{{ .data.n }}}}"}}}}}}
"""


@pytest.fixture
def stream() -> Iterator[str]:
    client = redis.Redis.from_url(URL)
    key = f"wfs-runtime:{uuid.uuid4().hex[:12]}"
    yield key
    client.delete(key)
    client.close()


async def test_no_more_than_max_in_flight_run_at_once(tmp_path: Path, stream: str) -> None:
    file = tmp_path / "flow.yaml"
    file.write_text(PIPELINE.format(url=URL, stream=stream))
    client = redis.Redis.from_url(URL)
    for n in range(40):
        client.xadd(stream, {"type": "order.created", "data": json.dumps({"n": n})})
    client.close()
    async with await LocalService.open([file], store=f"sqlite:///{tmp_path / 's.db'}") as svc:
        [info] = await svc.list_sources()
        # the schema named by the source, for the studio's test-event form
        assert info.event_schema["required"] == ["n"]
        await svc.start_source("inbox")
        most = 0

        async def all_done() -> bool:
            nonlocal most
            [now] = await svc.list_sources()
            most = max(most, now.in_flight)
            page = await svc.list_executions(ExecutionFilter(status="completed", limit=100))
            return len(page.items) == 40
        await wait_for_condition(all_done, "40 completed executions", timeout=120, interval=0.005)
        assert 0 < most <= 3
        # the entry ids look like card numbers to the masker; the id is kept as it is
        page = await svc.list_executions(ExecutionFilter(limit=100))
        ids = {(await svc.get_execution(e.id)).trigger_payload["id"] for e in page.items}
        assert all("*" not in i and "-" in i for i in ids) and len(ids) == 40
