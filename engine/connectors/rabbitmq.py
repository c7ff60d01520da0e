"""RabbitMQ source and sink (AMQP 0-9-1 through aio-pika).

The source consumes a durable queue with manual acknowledgements, hands the engine's intake
a batch at a time and acknowledges, after ``intake.deliver`` returns, exactly the messages
it took (their start or DLQ entry is durable by then); a refused one is nacked back onto the
queue. A consumer that dies before acknowledging leaves its messages unacked, and the broker
redelivers them to whoever consumes next: the dedup record makes that one execution.

An event's CloudEvents id must be the same on every redelivery (dedup is keyed by it), so it
is the message's own: a structured CloudEvent's ``id``; the ``cloudEvents_id`` /
``cloudEvents:id`` / ``ce-id`` header of a binary-mode one; else the AMQP ``message_id``;
else a digest of the message's content (two identical messages without ids are one event).

How many times a message came: quorum queues count it (``x-delivery-count``, 0 the first
time); classic queues only say ``redelivered``, which becomes attempt 2 however often it came.

aio-pika is imported only when a connector runs, so loading the registry stays cheap.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.connectors.types import (
    ConnectorError,
    Delivery,
    Intake,
    SinkType,
    SourceType,
    source_schema,
)

if TYPE_CHECKING:
    from aio_pika.abc import (
        AbstractChannel,
        AbstractConnection,
        AbstractExchange,
        AbstractIncomingMessage,
    )

    from engine.steps.base import Registry

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
CE_PREFIXES = ("cloudEvents_", "cloudEvents:", "ce-")  # AMQP binding (both spellings), RabbitMQ's
STRUCTURED = "application/cloudevents"  # content type prefix of a structured-mode event
CONNECT_TIMEOUT = 10.0
SEND_ATTEMPTS = 3

_URL: dict[str, Any] = {"type": "string", "default": DEFAULT_URL, "pattern": "^amqps?://",
                        "description": "amqp://user:password@host:port/vhost"}
_EXCHANGE_TYPE: dict[str, Any] = {
    "type": "string", "enum": ["direct", "fanout", "topic", "headers"], "default": "topic",
    "description": "the exchange's type, used when declaring it (it must match an existing one)"}


def register(registry: Registry) -> None:
    registry.add_source(SourceType(
        name="source.rabbitmq", factory=RabbitMQSource, schema=SOURCE_SCHEMA,
        description="Consume a RabbitMQ queue (manual acks, after each batch is recorded)",
        example={"url": DEFAULT_URL, "queue": "orders", "exchange": "shop",
                 "routing_key": "order.*", "type": "order.created"},
        secret_keys=frozenset({"url"})))
    registry.add_sink(SinkType(
        name="sink.rabbitmq", factory=RabbitMQSink, schema=SINK_SCHEMA,
        description="Publish CloudEvents to a RabbitMQ exchange (persistent, confirmed)",
        example={"url": DEFAULT_URL, "exchange": "shop", "routing_key": "order.shipped"},
        secret_keys=frozenset({"url"})))


SOURCE_SCHEMA = source_schema({
    "url": _URL,
    "queue": {"type": "string", "minLength": 1, "maxLength": 255,
              "description": "the queue to consume; declared durable if absent"},
    "exchange": {"type": "string", "minLength": 1,
                 "description": "bind the queue to this exchange (declared durable if absent)"},
    "exchange_type": _EXCHANGE_TYPE,
    "routing_key": {"type": "string", "default": "#",
                    "description": "the binding's routing key (with 'exchange')"},
    "quorum": {"type": "boolean", "default": False,
               "description": "declare a quorum queue: it counts deliveries (x-delivery-count), "
                              "so max_deliveries applies; a classic queue only flags redeliveries"},
    "prefetch": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 256,
                 "description": "unacknowledged messages the broker sends ahead (QoS)"},
    "batch_size": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100,
                   "description": "messages handed to the engine at once"},
    "linger": {"type": "number", "minimum": 0, "maximum": 5, "default": 0.02,
               "description": "seconds to wait for a batch to fill once it has a message"},
    "type": {"type": "string", "minLength": 1, "default": "rabbitmq.message",
             "description": "the event type of a plain message (not a CloudEvent) that has "
                            "no AMQP 'type' property"},
    "max_bytes": {"type": "integer", "minimum": 1, "default": 1048576,
                  "description": "a larger message body is not parsed: it goes to the DLQ"},
    "lag_every": {"type": "number", "minimum": 0.5, "default": 5,
                  "description": "seconds between looks at the queue's message count (lag)"},
}, required=["queue"])

SINK_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "properties": {
        "url": _URL,
        "exchange": {"type": "string", "default": "",
                     "description": "the exchange to publish to ('': the default exchange, "
                                    "where the routing key is a queue name)"},
        "exchange_type": _EXCHANGE_TYPE,
        "routing_key": {"type": "string",
                        "description": "the routing key (default: the event's type)"},
        "mode": {"type": "string", "enum": ["structured", "binary"], "default": "structured",
                 "description": "structured: the whole envelope as JSON in the body; binary: "
                                "attributes as cloudEvents_* headers, data in the body"},
    }}


# ---------------------------------------------------------------- connecting


def _shown(url: str) -> str:
    """The URL without its password (for messages)."""
    from yarl import URL

    try:
        parsed = URL(url)
        return str(parsed.with_password("***")) if parsed.password else url
    except (ValueError, TypeError):
        return "<an invalid URL>"


def _failure(what: str, url: str, exc: BaseException) -> ConnectorError:
    detail = str(exc) or type(exc).__name__
    return ConnectorError(f"RabbitMQ at {_shown(url)}: {what} failed: {detail}")


async def _connect(url: str) -> AbstractConnection:
    import aio_pika
    from aiormq.exceptions import AMQPError

    try:
        return await aio_pika.connect(url, timeout=CONNECT_TIMEOUT,
                                      client_properties={"connection_name": "wfstudio"})
    except (TimeoutError, AMQPError, OSError) as exc:
        raise ConnectorError(
            f"could not connect to RabbitMQ at {_shown(url)} ({type(exc).__name__}: "
            f"{str(exc) or 'no detail'}); check the host, port, user and password") from None


async def _declare_exchange(channel: AbstractChannel, name: str, kind: str,
                            url: str) -> AbstractExchange:
    from aiormq.exceptions import AMQPError

    try:
        return await channel.declare_exchange(name, kind, durable=True)
    except AMQPError as exc:
        raise ConnectorError(
            f"RabbitMQ at {_shown(url)}: could not declare exchange {name!r} as a durable "
            f"{kind} exchange ({exc}); if it exists with another type or durability, set "
            "exchange_type to match it") from None


# ---------------------------------------------------------------- the source


class RabbitMQSource:
    def __init__(self, name: str, config: dict[str, Any]):
        self.name = name
        self.url = str(config.get("url") or DEFAULT_URL)
        self.queue = str(config["queue"])
        self.exchange: str | None = config.get("exchange")
        self.exchange_type = str(config.get("exchange_type", "topic"))
        self.routing_key = str(config.get("routing_key", "#"))
        self.quorum = bool(config.get("quorum", False))
        self.prefetch = int(config.get("prefetch", 256))
        self.batch_size = int(config.get("batch_size", 100))
        self.linger = float(config.get("linger", 0.02))
        self.default_type = str(config.get("type") or "rabbitmq.message")
        self.lag_every = float(config.get("lag_every", 5))
        self.max_bytes = int(config.get("max_bytes", 1048576))
        from yarl import URL

        where = URL(self.url)  # the events' CloudEvents source: no credentials in it
        vhost = where.path.rstrip("/")
        self.event_source = f"amqp://{where.host}:{where.port or 5672}{vhost}/{self.queue}"
        self._connection: AbstractConnection | None = None

    @property
    def connection(self) -> AbstractConnection | None:
        """The live connection while running (None otherwise)."""
        return self._connection

    async def run(self, intake: Intake) -> None:
        from aiormq.exceptions import AMQPError, ChannelInvalidStateError

        connection = self._connection = await _connect(self.url)
        # Messages, or the error that ended the connection or channel, in arrival order.
        buffer: asyncio.Queue[AbstractIncomingMessage | BaseException] = asyncio.Queue()

        def closed(_sender: Any, exc: BaseException | None = None) -> None:
            buffer.put_nowait(exc if isinstance(exc, BaseException)
                              else ConnectionError("closed by the broker"))

        connection.close_callbacks.add(closed)
        lag_task: asyncio.Task[None] | None = None
        try:
            channel = await connection.channel()
            channel.close_callbacks.add(closed)
            await channel.set_qos(prefetch_count=self.prefetch)
            queue = await self._declare(channel)

            async def arrived(message: AbstractIncomingMessage) -> None:
                buffer.put_nowait(message)

            await queue.consume(arrived, no_ack=False)
            lag_task = asyncio.ensure_future(self._watch_lag(channel, intake))
            intake.report_error(None)
            while True:
                batch = await self._gather(buffer)
                outcomes = await intake.deliver([self._delivery(m) for m in batch])
                await self._settle(batch, [o.acknowledge for o in outcomes], intake)
        except ConnectorError:
            raise
        except (TimeoutError, AMQPError, ChannelInvalidStateError, OSError,
                ConnectionError) as exc:  # a dead channel refuses acks with the last one
            raise _failure(f"consuming queue {self.queue!r}", self.url, exc) from None
        finally:
            if lag_task is not None:
                lag_task.cancel()
                await asyncio.gather(lag_task, return_exceptions=True)
            connection.close_callbacks.discard(closed)
            await self.close()

    async def close(self) -> None:
        # Closing without acknowledging: the broker requeues whatever this consumer held.
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed:
            await connection.close()

    async def _declare(self, channel: AbstractChannel) -> Any:
        from aiormq.exceptions import AMQPError

        arguments: dict[str, Any] | None = {"x-queue-type": "quorum"} if self.quorum else None
        try:
            queue = await channel.declare_queue(self.queue, durable=True, arguments=arguments)
        except AMQPError as exc:
            raise ConnectorError(
                f"RabbitMQ at {_shown(self.url)}: could not declare queue {self.queue!r} "
                f"({exc}); if it exists with other arguments (durability, classic vs quorum), "
                "set 'quorum' to match it or use another queue") from None
        if self.exchange:
            exchange = await _declare_exchange(channel, self.exchange, self.exchange_type,
                                               self.url)
            await queue.bind(exchange, routing_key=self.routing_key)
        return queue

    async def _gather(self, buffer: asyncio.Queue[Any]) -> list[AbstractIncomingMessage]:
        """A batch: wait for one message, then take more until ``batch_size`` or until
        ``linger`` seconds have passed. An error put by a close callback is raised."""
        batch = [_message_or_raise(await buffer.get())]
        deadline = time.monotonic() + self.linger
        while len(batch) < self.batch_size:
            if buffer.empty():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    item = await asyncio.wait_for(buffer.get(), left)
                except TimeoutError:
                    break
            else:
                item = buffer.get_nowait()
            if isinstance(item, BaseException):
                raise item  # the connection died: nothing of this batch was acknowledged
            batch.append(item)
        return batch

    async def _settle(self, batch: Sequence[AbstractIncomingMessage], acknowledge: list[bool],
                      intake: Intake) -> None:
        """Ack the messages the intake took and nack (requeue) the refused ones."""
        if all(acknowledge):
            # Delivery tags rise in arrival order and every earlier one is settled: one
            # multiple-ack of the last settles exactly this batch.
            await batch[-1].ack(multiple=True)
            intake.acknowledged(len(batch))
            return
        for message, ok in zip(batch, acknowledge, strict=True):
            if ok:
                await message.ack()
            else:
                await message.nack(requeue=True)
        intake.acknowledged(sum(acknowledge))

    async def _watch_lag(self, channel: AbstractChannel, intake: Intake) -> None:
        """The queue's ready-message count, now and then (a passive declare). It doubles as
        a health check: a queue deleted under the consumer fails it, which closes the
        channel, and the consume loop raises (the runtime reconnects and declares again)."""
        from aiormq.exceptions import AMQPError, ChannelInvalidStateError

        while True:
            try:
                declared = await channel.declare_queue(self.queue, passive=True)
                result = declared.declaration_result
                intake.report_lag(float(result.message_count or 0))
            except (TimeoutError, AMQPError, ChannelInvalidStateError, ConnectionError):
                intake.report_lag(None)  # the consume loop sees the failure and says so
                return
            await asyncio.sleep(self.lag_every)

    # ------------------------------------------------------------ message -> event

    def _delivery(self, message: AbstractIncomingMessage) -> Delivery:
        from engine.connectors.envelope import InvalidEnvelope

        try:
            event = self._event(message)
        except (InvalidEnvelope, ValueError, TypeError) as exc:
            # One odd message (a property the envelope refuses) is dead-lettered; raising
            # here would restart the source and bring the same message back, forever.
            event = self._malformed(message, f"it cannot be made a CloudEvent: {exc}")
        return Delivery(event=event, attempt=_attempt(message), token=message.delivery_tag)

    def _event(self, message: AbstractIncomingMessage) -> dict[str, Any]:
        """The envelope the intake checks; a malformed CloudEvent is passed on as it came
        (with a stable id) so the intake dead-letters it saying what is wrong."""
        if len(message.body) > self.max_bytes:  # capped before any parsing
            return self._malformed(message, f"its body is {len(message.body)} bytes, more "
                                            f"than max_bytes ({self.max_bytes})")
        content_type = (message.content_type or "").split(";")[0].strip().lower()
        headers = message.headers or {}
        if content_type.startswith(STRUCTURED):
            try:
                found = json.loads(message.body)
            except ValueError as exc:
                return self._malformed(message, f"the body of a structured CloudEvent is "
                                                f"not JSON ({exc}); publish the event as JSON "
                                                "or drop the application/cloudevents type")
            if not isinstance(found, dict):
                return self._malformed(message, "the body of a structured CloudEvent is not "
                                                "a JSON object (the envelope)")
            return found
        if _is_json(content_type) and message.body.lstrip()[:1] == b"{" \
                and b'"specversion"' in message.body:
            # A structured event sent as plain JSON (many publishers do): taken whole.
            try:
                found = json.loads(message.body)
            except ValueError:
                found = None
            if isinstance(found, dict) and "specversion" in found:
                return found
        attributes = _binary_attributes(headers)
        if attributes:
            if message.content_type and "datacontenttype" not in attributes:
                attributes["datacontenttype"] = message.content_type
            data, encoding = _data(message.body, message.content_type)
            if encoding:
                attributes["dataencoding"] = encoding
            return {**attributes, "data": data}
        return self._plain(message)

    def _plain(self, message: AbstractIncomingMessage) -> dict[str, Any]:
        from engine.connectors.envelope import make

        data, encoding = _data(message.body, message.content_type)
        extensions: dict[str, Any] = {"dataencoding": encoding} if encoding else {}
        timestamp = message.timestamp if isinstance(message.timestamp, datetime) else None
        return make(self.event_source, str(message.type or self.default_type), data,
                    id=message.message_id or _digest(message),
                    subject=message.routing_key or None, time=timestamp,
                    datacontenttype=message.content_type or "application/json",
                    extensions=extensions)

    def _malformed(self, message: AbstractIncomingMessage, problem: str) -> dict[str, Any]:
        return {"specversion": None, "id": message.message_id or _digest(message),
                "error": f"message from queue {self.queue!r} (routing key "
                         f"{message.routing_key!r}): {problem}",
                "body": message.body[:4096].decode("utf-8", "replace")}


def _message_or_raise(item: Any) -> AbstractIncomingMessage:
    if isinstance(item, BaseException):
        raise item
    message: AbstractIncomingMessage = item
    return message


def _attempt(message: AbstractIncomingMessage) -> int:
    count = (message.headers or {}).get("x-delivery-count")
    if isinstance(count, int) and not isinstance(count, bool):
        return count + 1  # quorum queues: deliveries before this one
    return 2 if message.redelivered else 1  # classic: only "not the first time"


def _binary_attributes(headers: dict[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for key, value in headers.items():
        for prefix in CE_PREFIXES:
            if key.startswith(prefix) and len(key) > len(prefix):
                attributes[key[len(prefix):].lower()] = _header_value(value)
                break
    return attributes


def _header_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _is_json(content_type: str) -> bool:
    return content_type in ("", "application/json", "text/json") or content_type.endswith("+json")


def _data(body: bytes, content_type: str | None) -> tuple[Any, str | None]:
    """The body as event data: JSON when it parses (and the type allows), else text, else
    base64 (then ``dataencoding`` says so)."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if not body:
        return None, None
    if _is_json(kind) or kind.startswith(STRUCTURED):
        try:
            return json.loads(body), None
        except ValueError:
            pass
    try:
        return body.decode("utf-8"), None
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), "base64"


def _digest(message: AbstractIncomingMessage) -> str:
    """An id from what a redelivery keeps unchanged: where it was published, its content
    and its properties (not the delivery count the queue adds)."""
    digest = hashlib.sha256()
    headers = {k: v for k, v in (message.headers or {}).items()
               if k not in ("x-delivery-count", "x-death", "x-first-death-queue",
                            "x-first-death-reason", "x-first-death-exchange")}
    for part in (message.exchange or "", message.routing_key or "", message.content_type or "",
                 str(message.timestamp or ""), message.correlation_id or "",
                 json.dumps(headers, sort_keys=True, default=str)):
        digest.update(part.encode("utf-8", "replace") + b"\0")
    digest.update(message.body)
    return "amqp-sha256:" + digest.hexdigest()


# ---------------------------------------------------------------- the sink


class RabbitMQSink:
    def __init__(self, name: str, config: dict[str, Any]):
        self.name = name
        self.url = str(config.get("url") or DEFAULT_URL)
        self.exchange_name = str(config.get("exchange") or "")
        self.exchange_type = str(config.get("exchange_type", "topic"))
        self.routing_key: str | None = config.get("routing_key")
        self.mode = str(config.get("mode", "structured"))
        self._connection: AbstractConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._lock = asyncio.Lock()

    async def send(self, event: dict[str, Any]) -> dict[str, Any]:
        """Publish persistently and wait for the broker's confirm; returns what was sent."""
        from aiormq.exceptions import AMQPChannelError, AMQPError, DeliveryError

        routing_key = self.routing_key if self.routing_key is not None else str(event.get("type"))
        message = self._message(event)
        failure: BaseException | None = None
        for attempt in range(SEND_ATTEMPTS):
            try:
                exchange = await self._ready()
                await exchange.publish(message, routing_key=routing_key, mandatory=True)
                return {"exchange": self.exchange_name, "routing_key": routing_key,
                        "message_id": message.message_id, "mode": self.mode, "confirmed": True}
            except DeliveryError:
                raise ConnectorError(
                    f"RabbitMQ at {_shown(self.url)} could not route event {event.get('id')!r}: "
                    f"no queue is bound to exchange {self.exchange_name or '(default)'!r} "
                    f"for routing key {routing_key!r}") from None
            except AMQPChannelError as exc:
                await self.close()
                raise _failure(f"publishing to exchange {self.exchange_name!r}", self.url,
                               exc) from None
            except (TimeoutError, AMQPError, OSError, ConnectionError) as exc:
                failure = exc  # the connection broke: connect again and resend
                await self.close()
                await asyncio.sleep(0.2 * (attempt + 1))
        raise _failure(f"publishing event {event.get('id')!r} ({SEND_ATTEMPTS} attempts)",
                       self.url, failure or RuntimeError("unknown"))

    async def close(self) -> None:
        connection, self._connection, self._exchange = self._connection, None, None
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(Exception):  # a broken connection: nothing to release
                await connection.close()

    async def _ready(self) -> AbstractExchange:
        async with self._lock:
            if self._exchange is not None and self._connection is not None \
                    and not self._connection.is_closed:
                return self._exchange
            await self.close()
            self._connection = await _connect(self.url)
            channel = await self._connection.channel(publisher_confirms=True,
                                                     on_return_raises=True)
            self._exchange = (await _declare_exchange(channel, self.exchange_name,
                                                      self.exchange_type, self.url)
                              if self.exchange_name else channel.default_exchange)
            return self._exchange

    def _message(self, event: dict[str, Any]) -> Any:
        import aio_pika

        common: dict[str, Any] = {"message_id": str(event.get("id")),
                                  "delivery_mode": aio_pika.DeliveryMode.PERSISTENT,
                                  "type": event.get("type")}
        if self.mode == "structured":
            return aio_pika.Message(json.dumps(event, separators=(",", ":")).encode(),
                                    content_type="application/cloudevents+json", **common)
        headers: dict[str, Any] = {f"cloudEvents_{k}": v if isinstance(v, (str, int, float, bool)) else str(v)
                   for k, v in event.items()
                   if k not in ("data", "data_base64", "datacontenttype") and v is not None}
        data = event.get("data")
        content_type = str(event.get("datacontenttype") or "application/json")
        if isinstance(data, str) and not _is_json(content_type.split(";")[0].strip().lower()):
            body = data.encode()
        else:
            body = json.dumps(data, separators=(",", ":")).encode()
        return aio_pika.Message(body, headers=headers, content_type=content_type, **common)
