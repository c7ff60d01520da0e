"""Contract: sources (list, start/stop, test events, deliveries), on every backend.

The workspace here is a file with one source connector of a real type
(``source.redis_streams``, on the machine's Redis) that a pipeline's ``event`` trigger
names; a test event goes through the source's intake without using its transport.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.service.errors import InvalidInput, NotFound
from engine.service.models import ExecutionFilter, SourceDelivery
from engine.service.models import TestEvent as Sent  # (not named Test*: pytest would collect it)
from engine.service.protocol import StudioService

try:
    from tests.contract.contract_harness import Workspace
    from tests.contract.contract_helpers import eventually, wait_finished
except ImportError:
    from contract_harness import Workspace  # type: ignore[no-redef]
    from contract_helpers import eventually, wait_finished  # type: ignore[no-redef]

REDIS_URL = "redis://127.0.0.1:6379/0"

SOURCE_FILE = """\
schemas:
  order.created:
    type: object
    required: [id]
    properties:
      id: {{type: string}}
      qty: {{type: integer, minimum: 1}}
connectors:
  - name: orders
    type: source.redis_streams
    config: {{url: "{url}", stream: "{stream}", group: wfstudio, schema: order.created}}
pipelines:
  take_order:
    record: full
    trigger: {{type: event, config: {{connector: orders, type: order.created}}}}
    steps:
      - {{name: total, type: step.set, config: {{values: {{total: "{{{{ .data.qty * 10 }}}}"}}}}}}
      - {{name: out, type: step.pipeline_output, config: {{values: {{total: "{{{{ .total }}}}"}}}}}}
"""


@pytest.fixture
def stream() -> Iterator[str]:
    """A stream of this test's own; whatever the source made of it in Redis goes after."""
    name = f"wfstudio-contract-{uuid.uuid4().hex[:12]}"
    yield name
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.delete(name)
    finally:
        client.close()


@pytest.fixture
def workspace(tmp_path: Path, stream: str) -> Workspace:
    root = tmp_path / "workspace"
    root.mkdir()
    file = root / "sources.yaml"
    file.write_text(SOURCE_FILE.format(url=REDIS_URL, stream=stream))
    return Workspace(root, file)


async def test_a_loaded_files_source_is_listed(service: StudioService, stream: str) -> None:
    [source] = await service.list_sources()
    assert (source.name, source.type, source.pipelines) == (
        "orders", "source.redis_streams", ["take_order"])
    assert Path(source.file).name == "sources.yaml"
    assert source.state == "stopped" and source.since is None
    assert source.config["stream"] == stream and source.config["schema"] == "order.created"
    assert (source.delivered, source.started, source.dead_lettered) == (0, 0, 0)


async def test_start_and_stop(service: StudioService) -> None:
    started = await service.start_source("orders")
    assert started.state != "stopped" and started.since is not None
    assert [s.state for s in await service.list_sources()] == [started.state]
    again = await service.start_source("orders")  # already running: unchanged
    assert again.since == started.since
    stopped = await service.stop_source("orders")
    assert stopped.state == "stopped"
    assert [s.state for s in await service.list_sources()] == ["stopped"]


async def test_a_test_event_starts_one_execution_and_a_resend_is_a_duplicate(
        service: StudioService) -> None:
    event = Sent(type="order.created", data={"id": "o-1", "qty": 3}, id="evt-1",
                      subject="orders/o-1")
    first = await service.send_test_event("orders", event)
    assert (first.source, first.event_id, first.type, first.pipeline, first.outcome) == (
        "orders", "evt-1", "order.created", "take_order", "started")
    assert first.execution_id is not None and first.dlq_entry is None
    done = await wait_finished(service, first.execution_id)
    assert done.status == "completed" and done.pipeline == "take_order"
    assert done.output == {"total": 30}
    assert done.trigger_payload["data"] == {"id": "o-1", "qty": 3}
    assert done.trigger_payload["id"] == "evt-1"

    again = await service.send_test_event("orders", event)
    assert (again.outcome, again.execution_id) == ("duplicate", first.execution_id)
    runs = (await service.list_executions(ExecutionFilter(pipeline="take_order"))).items
    assert [r.id for r in runs] == [first.execution_id]
    [listed] = await service.list_sources()
    assert (listed.started, listed.redelivered) == (1, 1)


async def test_deliveries_newest_first(service: StudioService) -> None:
    sent = [await service.send_test_event("orders", Sent(
        data={"id": f"o-{i}", "qty": i}, id=f"evt-{i}")) for i in (1, 2, 3)]
    # Without a type, the event takes the type the source's trigger names.
    assert {d.type for d in sent} == {"order.created"}
    deliveries = await service.source_deliveries("orders")
    assert [d.event_id for d in deliveries] == ["evt-3", "evt-2", "evt-1"]
    assert [d.execution_id for d in deliveries] == [d.execution_id for d in reversed(sent)]
    assert all(isinstance(d, SourceDelivery) and d.pipeline == "take_order" for d in deliveries)
    assert [d.event_id for d in await service.source_deliveries("orders", limit=2)] == [
        "evt-3", "evt-2"]
    for d in sent:
        assert d.execution_id is not None
        await wait_finished(service, d.execution_id)

    async def settled() -> list[SourceDelivery] | None:
        found = await service.source_deliveries("orders")
        return found if all(d.execution_status == "completed" for d in found) else None
    assert len(await eventually(settled, "the deliveries to show completed executions")) == 3


async def test_data_failing_the_sources_schema_is_dead_lettered(service: StudioService) -> None:
    letter = await service.send_test_event("orders", Sent(data={"qty": 0}, id="bad-1"))
    assert (letter.outcome, letter.execution_id, letter.pipeline) == (
        "dead_lettered", None, "take_order")
    assert letter.dlq_entry is not None
    entry = await service.get_dlq(letter.dlq_entry)
    assert entry.pipeline == "take_order" and entry.status == "pending"
    assert "order.created" in (entry.error or "") and "'id' is a required property" in (
        entry.error or "")
    assert (await service.list_executions(ExecutionFilter(pipeline="take_order"))).items == []
    [listed] = await service.source_deliveries("orders")
    assert (listed.event_id, listed.outcome, listed.dlq_entry) == (
        "bad-1", "dead_lettered", letter.dlq_entry)
    # Sent again, it is the same entry, not a second one.
    again = await service.send_test_event("orders", Sent(data={"qty": 0}, id="bad-1"))
    assert again.outcome == "duplicate" and again.dlq_entry == letter.dlq_entry
    assert [e.id for e in await service.list_dlq()] == [letter.dlq_entry]


async def test_an_event_no_pipeline_takes_is_filtered(service: StudioService) -> None:
    skipped = await service.send_test_event("orders", Sent(type="order.cancelled",
                                                                data={"id": "o-9"}))
    assert skipped.outcome == "filtered" and skipped.execution_id is None
    assert await service.source_deliveries("orders") == []


async def test_unknown_sources_and_bad_events(service: StudioService) -> None:
    for call in (service.start_source("nope"), service.stop_source("nope"),
                 service.send_test_event("nope", Sent(data={})),
                 service.source_deliveries("nope")):
        with pytest.raises(NotFound, match=r"'nope'.*sources: orders"):
            await call
    with pytest.raises(InvalidInput, match="'id' must not be None or empty"):
        await service.send_test_event("orders", Sent(data={"id": "x"}, id=""))
    assert await service.source_deliveries("orders") == []


async def test_another_tenant_sees_no_source(service: StudioService, other_tenant: StudioService
                                              ) -> None:
    assert [s.name for s in await service.list_sources()] == ["orders"]
    assert await other_tenant.list_sources() == []
    with pytest.raises(NotFound, match="sources: none"):
        await other_tenant.send_test_event("orders", Sent(data={"id": "o-1", "qty": 1}))
    with pytest.raises(NotFound):
        await other_tenant.start_source("orders")
    with pytest.raises(NotFound):
        await other_tenant.source_deliveries("orders")
    sent = await service.send_test_event("orders", Sent(data={"id": "o-1", "qty": 1},
                                                             id="mine"))
    assert sent.outcome == "started"
    assert [d.event_id for d in await service.source_deliveries("orders")] == ["mine"]
