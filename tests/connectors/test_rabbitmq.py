"""The RabbitMQ source and sink against the machine's RabbitMQ (127.0.0.1:5672, guest/guest).

Each test uses queues and exchanges of its own (unique names) and deletes them at the end.
Events go in through a real ``LocalService`` on a SQLite file (``start_source``), so what
is checked is what the store recorded: one completed execution per message, DLQ entries,
and the broker's queue left empty (everything taken was acknowledged).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from engine.connectors.rabbitmq import RabbitMQSource
from engine.connectors.types import ConnectorError
from engine.service.local import LocalService
from engine.service.models import DlqEntry, SourceInfo
from engine.steps.base import default_registry
from tests.connectors.kill_harness import completed_per_event, free_port
from tests.waiting import wait_for_condition

aio_pika = pytest.importorskip("aio_pika")

URL = "amqp://guest:guest@127.0.0.1:5672/"

PIPELINE_FILE = """\
connectors:
  - name: orders
    type: source.rabbitmq
    config: {config}
pipelines:
  take_order:
    trigger: {{type: event, config: {{connector: orders}}}}
    steps:
{steps}
"""

SET_STEPS = """\
      - {name: total, type: step.set, config: {values: {total: "{{ .data.qty * 10 }}"}}}
      - {name: out, type: step.pipeline_output, config: {values: {total: "{{ .total }}"}}}
"""


class Broker:
    """The test's own connection: publishes, inspects and, at the end, deletes what the
    test declared."""

    def __init__(self, connection: Any, channel: Any):
        self.connection, self.channel = connection, channel
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    def queue_name(self) -> str:
        name = f"wfs-test-{uuid.uuid4().hex[:12]}"
        self.queues.append(name)
        return name

    def exchange_name(self) -> str:
        name = f"wfs-test-x-{uuid.uuid4().hex[:12]}"
        self.exchanges.append(name)
        return name

    async def publish(self, queue: str, body: bytes, **properties: Any) -> None:
        await self.channel.default_exchange.publish(aio_pika.Message(body, **properties),
                                                    routing_key=queue)

    async def ready(self, queue: str) -> int:
        """Messages ready in ``queue`` (not counting those a consumer holds unacked)."""
        declared = await self.channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count)

    async def clean(self) -> None:
        for name in self.queues:
            await self.channel.queue_delete(name)
        for name in self.exchanges:
            await self.channel.exchange_delete(name)


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    try:
        connection = await aio_pika.connect(URL, timeout=10)
    except Exception as exc:  # the suite runs where RabbitMQ is; say so if it is not
        pytest.skip(f"RabbitMQ is not reachable at 127.0.0.1:5672: {exc}")
    channel = await connection.channel()
    found = Broker(connection, channel)
    try:
        yield found
    finally:
        await found.clean()
        await connection.close()


@pytest.fixture
def open_service(tmp_path: Path) -> Callable[..., Any]:
    """``await open_service(config, steps)``: a LocalService over a file with one
    ``source.rabbitmq`` connector named ``orders`` (closed by the caller)."""
    async def make(config: dict[str, Any], steps: str = SET_STEPS) -> LocalService:
        file = tmp_path / f"rabbit-{uuid.uuid4().hex[:6]}.yaml"
        file.write_text(PIPELINE_FILE.format(config=json.dumps(config), steps=steps))
        return await LocalService.open([file], store=f"sqlite:///{tmp_path / 'store.db'}")
    return make


def store_of(service: LocalService) -> str:
    return str(service.store.url)


async def completed(service: LocalService) -> Counter[str]:
    await service.store.recorder.flush()
    return await asyncio.to_thread(completed_per_event, store_of(service))


async def test_every_message_form_starts_one_execution(broker: Broker,
                                                       open_service: Callable[..., Any]) -> None:
    queue = broker.queue_name()
    exchange = broker.exchange_name()
    # Declared by the source (durable, bound to its exchange); published to after it starts.
    service = await open_service({"url": URL, "queue": queue, "exchange": exchange,
                                  "routing_key": "order.*", "type": "order.created",
                                  "batch_size": 7, "prefetch": 20, "lag_every": 0.5})
    try:
        await service.start_source("orders")
        await consuming(service)
        x = await broker.channel.get_exchange(exchange)
        expected: dict[str, Any] = {}
        for i in range(10):  # plain JSON, the id is the AMQP message_id
            expected[f"plain-{i}"] = i
            await x.publish(aio_pika.Message(json.dumps({"qty": i}).encode(),
                                             content_type="application/json",
                                             message_id=f"plain-{i}"), routing_key="order.new")
        for i in range(5):  # structured CloudEvents: the envelope's own id
            event = {"specversion": "1.0", "id": f"structured-{i}", "source": "/shop",
                     "type": "order.created", "data": {"qty": 100 + i}}
            expected[f"structured-{i}"] = 100 + i
            await x.publish(aio_pika.Message(json.dumps(event).encode(),
                                             content_type="application/cloudevents+json",
                                             message_id=f"ignored-{i}"), routing_key="order.new")
        for i, prefix in enumerate(["cloudEvents_", "cloudEvents:", "ce-"]):  # binary mode
            headers = {f"{prefix}specversion": "1.0", f"{prefix}id": f"binary-{i}",
                       f"{prefix}source": "/shop", f"{prefix}type": "order.created"}
            expected[f"binary-{i}"] = 200 + i
            await x.publish(aio_pika.Message(json.dumps({"qty": 200 + i}).encode(),
                                             content_type="application/json", headers=headers),
                            routing_key="order.new")
        await x.publish(aio_pika.Message(b'{"qty": 1}'), routing_key="invoice.new")  # not bound

        counts: Counter[str] = await wait_for_condition(
            lambda: _all_of(completed(service), expected), f"{len(expected)} executions")
        assert counts == Counter({event_id: 1 for event_id in expected})
        totals = {}
        for execution_id in await event_executions(service):
            execution = await service.get_execution(execution_id)
            totals[execution.trigger_payload["id"]] = execution.trigger_payload["data"]["qty"]
            assert execution.trigger_payload["type"] == "order.created"
        assert totals == expected
        info: SourceInfo = await wait_for_condition(
            lambda: _info_when(service, lambda s: s.acknowledged == len(expected)
                               and s.lag is not None), "every message acknowledged, lag read")
        assert info.started == len(expected) and info.last_error is None
        await service.stop_source("orders")  # what it held unacked would be back in the queue
        assert await broker.ready(queue) == 0
    finally:
        await service.close()


async def consuming(service: LocalService) -> None:
    """Until the source consumes (its first lag reading comes once it does)."""
    await wait_for_condition(lambda: _info_when(service, lambda s: s.lag is not None),
                             "the source to consume its queue")


async def event_executions(service: LocalService) -> list[str]:
    with service.store.read() as conn:
        rows = conn.exec_driver_sql(
            "SELECT id FROM executions WHERE trigger_type = 'event'").all()
    return [row[0] for row in rows]


async def _all_of(counts: Any, expected: dict[str, Any]) -> Any:
    """The completed counts once every expected event is among them (else None)."""
    found: Counter[str] = await counts
    return found if set(found) >= set(expected) else None


async def _info_when(service: LocalService, condition: Callable[[Any], bool]) -> Any:
    [info] = await service.list_sources()
    return info if condition(info) else None


class Gate:
    """An HTTP server on loopback whose answers wait until ``open()``: executions that call
    it stay running, so the source's intake is held while the test acts."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.calls = 0
        self.port = free_port()
        self.server: asyncio.Server | None = None

    async def start(self) -> Gate:
        self.server = await asyncio.start_server(self._answer, "127.0.0.1", self.port)
        return self

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        self.calls += 1
        await self.opened.wait()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")
        await writer.drain()
        writer.close()

    async def close(self) -> None:
        self.opened.set()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_a_dead_consumers_unacked_messages_are_redelivered_once(
        broker: Broker, open_service: Callable[..., Any]) -> None:
    queue = broker.queue_name()
    gate = await Gate().start()
    steps = f"""\
      - {{name: wait, type: step.http_call, config: {{url: "http://127.0.0.1:{gate.port}/", timeout: 120s}}}}
      - {{name: total, type: step.set, config: {{values: {{total: "{{{{ .data.qty * 10 }}}}"}}}}}}
      - {{name: out, type: step.pipeline_output, config: {{values: {{total: "{{{{ .total }}}}"}}}}}}
"""
    ids = [f"m-{i}" for i in range(10)]
    service = await open_service({"url": URL, "queue": queue, "quorum": True, "batch_size": 4,
                                  "prefetch": 10, "linger": 0.2, "max_in_flight": 1}, steps)
    try:
        await service.start_source("orders")
        await consuming(service)
        for i, event_id in enumerate(ids):
            await broker.publish(queue, json.dumps({"qty": i}).encode(), message_id=event_id,
                                 content_type="application/json")
        # The first batch started executions that wait at the gate; the next batch is in
        # the intake, waiting for room: taken from the queue, not acknowledged.
        runtime = service.sources.get("orders")
        await wait_for_condition(lambda: runtime.counters.started >= 1
                                 and runtime.counters.delivered > runtime.counters.started,
                                 "a batch held in the intake")
        source = runtime.source
        assert isinstance(source, RabbitMQSource) and source.connection is not None
        held = runtime.counters.delivered - runtime.counters.acknowledged
        assert held > 0
        await source.connection.close()  # the consumer dies holding them
        gate.opened.set()
        counts: Counter[str] = await wait_for_condition(
            lambda: _all_of(completed(service), dict.fromkeys(ids)), "every message to complete")
        assert counts == Counter(dict.fromkeys(ids, 1))
        # The held batch came again (it had been recorded, its ack died with the channel):
        # recognised as the same events, nothing started twice.
        await wait_for_condition(lambda: runtime.counters.redelivered >= 1,
                                 "the held messages to come back as redeliveries")
        assert runtime.counters.delivered >= len(ids) + 1
        await wait_for_condition(lambda: _info_when(service, lambda s: s.last_error is None
                                                    and s.state == "running"),
                                 "the source to run again after reconnecting")
        await service.stop_source("orders")
        assert await broker.ready(queue) == 0
    finally:
        await gate.close()
        await service.close()


async def test_malformed_messages_go_to_the_dlq_and_are_acknowledged(
        broker: Broker, open_service: Callable[..., Any]) -> None:
    queue = broker.queue_name()
    service = await open_service({"url": URL, "queue": queue, "type": "order.created",
                                  "max_bytes": 1000})
    try:
        await service.start_source("orders")
        await consuming(service)
        await broker.publish(queue, b"{not json", message_id="bad-json",
                             content_type="application/cloudevents+json")
        await broker.publish(queue, json.dumps({"specversion": "1.0", "id": "bad-event",
                                                "type": "order.created"}).encode(),
                             content_type="application/cloudevents+json")
        await broker.publish(queue, json.dumps({"qty": 1, "pad": "x" * 1000}).encode(),
                             message_id="too-big", content_type="application/json")
        await broker.publish(queue, b'{"qty": 3}', message_id="good",
                             content_type="application/json")
        entries: list[DlqEntry] = await wait_for_condition(
            lambda: _at_least(service.list_dlq(), 3), "three DLQ entries")
        by_kind = {e.error_type: e for e in entries}
        assert set(by_kind) == {"invalid_event"}
        errors = sorted(str((e.payload or {}).get("id")) for e in entries)
        assert errors == ["bad-event", "bad-json", "too-big"]
        too_big = next(e for e in entries if e.payload.get("id") == "too-big")
        assert "more than max_bytes (1000)" in too_big.payload["error"]
        not_json = next(e for e in entries if e.payload.get("id") == "bad-json")
        assert "not JSON" in not_json.payload["error"] and queue in not_json.payload["error"]
        assert not_json.payload["body"] == "{not json"
        missing = next(e for e in entries if e.payload.get("id") == "bad-event")
        assert "source" in (missing.error or "")
        counts: Counter[str] = await wait_for_condition(
            lambda: _all_of(completed(service), {"good": 1}), "the good message to complete")
        assert counts == Counter({"good": 1})
        await wait_for_condition(lambda: _info_when(service, lambda s: s.acknowledged == 4),
                                 "all four acknowledged")
        await service.stop_source("orders")
        assert await broker.ready(queue) == 0
    finally:
        await service.close()


async def _at_least(entries: Any, n: int) -> Any:
    found: list[Any] = await entries
    return found if len(found) >= n else None


@pytest.mark.parametrize("quorum", [True, False], ids=["quorum", "classic"])
async def test_a_returned_message_comes_back_as_attempt_2(
        broker: Broker, open_service: Callable[..., Any], quorum: bool) -> None:
    """A message another consumer returned once arrives as attempt 2 (a quorum queue's
    x-delivery-count 1, a classic queue's redelivered flag); with max_deliveries 1 that is
    one too many: dead-lettered, not run."""
    queue = broker.queue_name()
    await broker.channel.declare_queue(
        queue, durable=True, arguments={"x-queue-type": "quorum"} if quorum else None)
    await broker.publish(queue, b'{"qty": 1}', message_id="returned",
                         content_type="application/json")
    taken = await broker.channel.get_queue(queue)
    message = await wait_for_condition(lambda: taken.get(fail=False), "the message")
    await message.nack(requeue=True)  # x-delivery-count becomes 1 / redelivered is set
    service = await open_service({"url": URL, "queue": queue, "quorum": quorum,
                                  "max_deliveries": 1})
    try:
        await service.start_source("orders")
        entries: list[DlqEntry] = await wait_for_condition(
            lambda: _at_least(service.list_dlq(), 1), "the DLQ entry")
        [entry] = entries
        assert entry.error_type == "max_deliveries" and "delivered 2 times" in (entry.error or "")
        assert await completed(service) == Counter()
    finally:
        await service.close()


async def test_the_sink_publishes_persistent_confirmed_events(
        broker: Broker, open_service: Callable[..., Any]) -> None:
    from engine.connectors.envelope import make

    exchange, queue = broker.exchange_name(), broker.queue_name()
    kind = default_registry().sinks["sink.rabbitmq"]
    structured = kind.factory("out", {"url": URL, "exchange": exchange,
                                      "routing_key": "order.shipped"})
    binary = kind.factory("out-binary", {"url": URL, "exchange": exchange, "mode": "binary"})
    try:
        first = make("/shop", "order.shipped", {"qty": 4}, id="sent-1")
        # Nothing bound yet: the broker returns it, the sink says so.
        with pytest.raises(ConnectorError, match="no queue is bound"):
            await structured.send(first)
        declared = await broker.channel.declare_queue(queue, durable=True)
        await declared.bind(exchange, routing_key="order.*")
        sent = await structured.send(first)
        assert sent == {"exchange": exchange, "routing_key": "order.shipped",
                        "message_id": "sent-1", "mode": "structured", "confirmed": True}
        second = make("/shop", "order.shipped", {"qty": 5}, id="sent-2", subject="o-2")
        assert (await binary.send(second))["routing_key"] == "order.shipped"  # its type

        got = []
        for _ in range(2):
            message = await wait_for_condition(lambda: declared.get(fail=False), "a message")
            await message.ack()
            got.append(message)
        assert [m.delivery_mode for m in got] == [aio_pika.DeliveryMode.PERSISTENT] * 2
        assert got[0].content_type == "application/cloudevents+json"
        assert json.loads(got[0].body) == first
        assert got[1].headers["cloudEvents_id"] == "sent-2"
        assert got[1].headers["cloudEvents_subject"] == "o-2"
        assert json.loads(got[1].body) == {"qty": 5}

        # The source takes back what the sink sent, both forms, with the same ids.
        await binary.send(first)
        await structured.send(second)
        service = await open_service({"url": URL, "queue": queue})
        try:
            await service.start_source("orders")
            counts: Counter[str] = await wait_for_condition(
                lambda: _all_of(completed(service), {"sent-1": 1, "sent-2": 1}), "two runs")
            assert counts == Counter({"sent-1": 1, "sent-2": 1})
        finally:
            await service.close()
    finally:
        await structured.close()
        await binary.close()


async def test_an_unreachable_broker_is_a_clear_error_without_the_password(
        open_service: Callable[..., Any]) -> None:
    port = free_port()  # nothing listens there
    service = await open_service({"url": f"amqp://guest:s3cret@127.0.0.1:{port}/",
                                  "queue": "never"})
    try:
        await service.start_source("orders")
        info: SourceInfo = await wait_for_condition(
            lambda: _info_when(service, lambda s: s.last_error), "the source to report its error")
        error = info.last_error or ""
        assert "could not connect to RabbitMQ at amqp://guest:" in error
        assert f"@127.0.0.1:{port}/" in error and "check the host" in error
        assert "s3cret" not in error and info.state == "failing"
    finally:
        await service.close()


async def test_a_sink_to_an_unreachable_broker_raises_a_connector_error() -> None:
    from engine.connectors.envelope import make

    port = free_port()
    sink = default_registry().sinks["sink.rabbitmq"].factory(
        "out", {"url": f"amqp://guest:s3cret@127.0.0.1:{port}/", "routing_key": "q"})
    try:
        with pytest.raises(ConnectorError) as caught:
            await sink.send(make("/shop", "order.shipped", {}))
        assert f"could not connect to RabbitMQ at amqp://guest:***@127.0.0.1:{port}/" \
            in str(caught.value)
        assert "s3cret" not in str(caught.value)
    finally:
        await sink.close()


EMIT_FILE = """\
connectors:
  - name: shipped
    type: sink.rabbitmq
    config: {{url: "{url}", exchange: "{exchange}", routing_key: order.shipped}}
pipelines:
  ship:
    trigger: {{type: manual}}
    steps:
      - name: tell
        type: step.emit
        config: {{connector: shipped, type: order.shipped, data: {{order: "{{{{ .trigger.order }}}}"}}}}
"""


async def test_step_emit_publishes_through_the_sink(broker: Broker, tmp_path: Path) -> None:
    exchange, queue = broker.exchange_name(), broker.queue_name()
    await broker.channel.declare_exchange(exchange, "topic", durable=True)
    declared = await broker.channel.declare_queue(queue, durable=True)
    await declared.bind(exchange, routing_key="order.#")
    file = tmp_path / "emit.yaml"
    file.write_text(EMIT_FILE.format(url=URL, exchange=exchange))
    async with await LocalService.open([file], store=f"sqlite:///{tmp_path / 'emit.db'}") as svc:
        run = await svc.run("ship", {"order": "o-7"})
        assert run.status == "completed", run.error
        message = await wait_for_condition(lambda: declared.get(fail=False), "the message")
        await message.ack()
    event = json.loads(message.body)
    assert event["type"] == "order.shipped" and event["data"] == {"order": "o-7"}
    assert message.message_id == event["id"] and event["wfexecution"] == run.execution_id
    assert run.output["confirmed"] is True and run.output["id"] == event["id"]


async def test_a_queue_deleted_under_the_source_is_declared_again(
        broker: Broker, open_service: Callable[..., Any]) -> None:
    queue = broker.queue_name()
    service = await open_service({"url": URL, "queue": queue, "lag_every": 0.5})
    try:
        await service.start_source("orders")
        await consuming(service)
        await broker.channel.queue_delete(queue)
        # The source notices (its queue-depth look fails), reconnects and declares it again.
        await wait_for_condition(lambda: _declared(broker, queue), "the queue to be back",
                                 interval=0.1)
        await broker.publish(queue, b'{"qty": 2}', message_id="after",
                             content_type="application/json")
        counts: Counter[str] = await wait_for_condition(
            lambda: _all_of(completed(service), {"after": 1}), "the new message to run")
        assert counts == Counter({"after": 1})
    finally:
        await service.close()


async def _declared(broker: Broker, queue: str) -> Any:
    """Whether ``queue`` exists (a passive declare on a channel of its own: a miss closes it)."""
    channel = await broker.connection.channel()
    try:
        await channel.declare_queue(queue, passive=True)
        return True
    except aio_pika.exceptions.ChannelNotFoundEntity:
        return False
    finally:
        if not channel.is_closed:
            await channel.close()
