"""Redis Streams connectors: ``source.redis_streams`` reads a stream through a consumer
group, ``sink.redis_streams`` XADDs events to one.

The source's promise is at-least-once from Redis, made exactly-once-per-event by the
intake's dedup (keyed by the CloudEvents id: the entry id, or the id embedded in the entry):

- it reads new entries (XREADGROUP ``>``), hands them to the intake, and XACKs only those
  whose outcome says so, after ``intake.deliver`` returned (their start or DLQ entry is
  durable by then);
- a delivery the store refused stays pending in Redis and is handed over again, with the
  same attempt number, after a back-off (a store outage is not counted as a delivery);
- entries another consumer left pending (it died) are taken over with XAUTOCLAIM once idle
  for ``claim_idle_ms``, at start and periodically; their delivery count (XPENDING) is
  ``Delivery.attempt``, so the intake dead-letters one that keeps coming back;
- at start it also takes back its own pending entries (a restart under the same consumer
  name).

Entries map to events by the field convention in ``redis_entries``. The Redis client is
imported when a connector starts, not when the registry loads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from engine.connectors.redis_entries import (
    EVENT_FIELD,
    MAX_ENTRY_BYTES,
    entry_event,
    event_fields,
)
from engine.connectors.types import (
    ConnectorError,
    Delivery,
    Intake,
    SinkType,
    SourceType,
    source_schema,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from engine.steps.base import Registry

DEFAULT_URL = "redis://127.0.0.1:6379/0"
LAG_EVERY = 1.0  # seconds between lag reports while entries keep coming
REFUSED_BACKOFF = (0.2, 10.0)  # first and longest wait before handing refused ones again
CONSUMER_EXPIRY_MS = 3_600_000  # a consumer idle this long with nothing pending is removed
READ_SLACK = 15.0  # seconds a blocking read may take beyond its BLOCK before it is a failure

T = TypeVar("T")

_URL = {"type": "string", "default": DEFAULT_URL, "minLength": 1,
        "description": "redis://[user:password@]host:port/db (rediss:// for TLS)"}
_STREAM = {"type": "string", "minLength": 1, "description": "the stream's key"}

SOURCE_SCHEMA = source_schema({
    "url": _URL,
    "stream": _STREAM,
    "group": {"type": "string", "minLength": 1, "default": "wfstudio",
              "description": "the consumer group (created, with the stream, when absent)"},
    "consumer": {"type": "string", "minLength": 1,
                 "description": "this process's consumer name (default: the engine "
                                "instance's id, so processes sharing a store share the group)"},
    "batch": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100,
              "description": "entries read at once (COUNT)"},
    "block_ms": {"type": "integer", "minimum": 1, "maximum": 60000, "default": 2000,
                 "description": "how long one read waits for new entries (BLOCK)"},
    "claim_idle_ms": {"type": "integer", "minimum": 100, "default": 60000,
                      "description": "entries pending this long with another consumer are "
                                     "taken over (XAUTOCLAIM), at start and periodically"},
    "start_id": {"type": "string", "default": "0", "pattern": r"^(\$|\d+(-\d+)?)$",
                 "description": "where a newly created group starts: 0 the whole stream, $ "
                                "only entries added from now on"},
    "type": {"type": "string", "minLength": 1, "default": "redis.stream.entry",
             "description": "the CloudEvents type of entries that carry none"},
    "event_field": {"type": "string", "minLength": 1, "default": EVENT_FIELD,
                    "description": "the field holding a structured CloudEvents JSON object"},
    "max_entry_bytes": {"type": "integer", "minimum": 1024, "default": MAX_ENTRY_BYTES,
                        "description": "a larger entry is not parsed: it goes to the DLQ"},
}, required=["stream"])

SINK_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["stream"],
    "properties": {
        "url": _URL,
        "stream": _STREAM,
        "maxlen": {"type": "integer", "minimum": 0, "default": 1_000_000,
                   "description": "trim the stream to about this many entries (MAXLEN ~); "
                                  "0 never trims"},
    },
}


def register(registry: Registry) -> None:
    registry.add_source(SourceType(
        name="source.redis_streams", factory=RedisStreamsSource, schema=SOURCE_SCHEMA,
        description="Events from a Redis stream, read through a consumer group; acknowledged "
                    "(XACK) once recorded",
        example={"url": DEFAULT_URL, "stream": "orders", "group": "wfstudio",
                 "type": "order.created"},
        lag_unit="entries"))
    registry.add_sink(SinkType(
        name="sink.redis_streams", factory=RedisStreamsSink, schema=SINK_SCHEMA,
        description="XADD each event to a Redis stream (its CloudEvents JSON plus flat "
                    "id/type/source fields), trimmed to about maxlen entries",
        example={"url": DEFAULT_URL, "stream": "orders.out", "maxlen": 100000}))


def where(url: str) -> str:
    """``host:port/db`` of a Redis URL, never its credentials."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    return f"{host}:{parts.port or 6379}{parts.path or '/0'}"


def _connect(url: str, *, read_timeout: float) -> Redis:
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    try:
        # One immediate retry covers a pooled connection that died with a Redis restart;
        # longer outages are the runtime's to back off from (it reconnects us).
        return Redis.from_url(url, socket_connect_timeout=5, socket_timeout=read_timeout,
                              retry=Retry(NoBackoff(), 1), decode_responses=False,
                              protocol=2)
    except ValueError as exc:  # a malformed URL: say which setting to fix
        raise ConnectorError(f"url {url!r} is not a Redis URL ({exc}); write "
                             "redis://host:port/db") from None


def _explain(exc: Exception, url: str, stream: str, group: str | None = None) -> ConnectorError:
    """A Redis failure as a ConnectorError that says what to check."""
    from redis import exceptions as rx

    at = f"Redis at {where(url)}"
    if isinstance(exc, rx.AuthenticationError | rx.AuthorizationError):
        return ConnectorError(f"{at} refused the credentials: {exc}; check the url's user "
                              "and password")
    if isinstance(exc, rx.ConnectionError | rx.TimeoutError | OSError):
        return ConnectorError(f"{at} is unreachable: {exc or type(exc).__name__}; check that it "
                              "runs and that url points at it (reconnecting with back-off)")
    if isinstance(exc, rx.ResponseError) and str(exc).startswith("NOGROUP"):
        return ConnectorError(f"{at}: the stream {stream!r} or its group {group!r} is gone "
                              "(deleted while reading?); they are created again on reconnect")
    if isinstance(exc, rx.ResponseError) and str(exc).startswith("WRONGTYPE"):
        return ConnectorError(f"{at}: key {stream!r} is not a stream; point 'stream' at a "
                              "stream key")
    return ConnectorError(f"{at} failed on stream {stream!r}: {type(exc).__name__}: {exc}")


async def _call(command: Awaitable[T]) -> T:
    """Await one Redis command so that cancelling the caller takes effect at once.

    redis-py 8 can swallow a cancellation that lands while it reads a reply (measured: 1
    in ~150 cancels of a blocked XREADGROUP); the read then waits out the socket timeout
    and the cancelled task runs on. So the command runs in a task of its own that a
    cancellation abandons (it ends by itself; ``close`` disconnects the client)."""
    task = asyncio.ensure_future(command)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.cancel()
        task.add_done_callback(_retrieved)
        raise


def _retrieved(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # an abandoned command's failure is no news: the source stopped


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entries(reply: Any) -> list[Any]:
    """The (id, fields) pairs of an XREADGROUP reply on one stream (RESP2, which
    ``_connect`` speaks: a list of [stream, entries]; redis-py's annotation is RESP3's)."""
    return list(reply[0][1]) if reply else []


class RedisStreamsSource:
    def __init__(self, name: str, config: dict[str, Any]):
        self.name = name
        self.url = str(config.get("url") or DEFAULT_URL)
        stream = config.get("stream")
        if not stream:
            raise ConnectorError(f"source {name!r}: 'stream' is required (the stream's key)")
        self.stream = str(stream)
        self.group = str(config.get("group") or "wfstudio")
        self.consumer: str | None = config.get("consumer")
        self.batch = int(config.get("batch", 100))
        self.block_ms = int(config.get("block_ms", 2000))
        self.claim_idle_ms = int(config.get("claim_idle_ms", 60000))
        self.start_id = str(config.get("start_id", "0"))
        self.type = str(config.get("type") or "redis.stream.entry")
        self.event_field = str(config.get("event_field") or EVENT_FIELD)
        self.max_entry_bytes = int(config.get("max_entry_bytes", MAX_ENTRY_BYTES))
        self.source = f"redis-streams:{self.stream}"
        self._client: Redis | None = None
        self._lag_at = 0.0

    # ------------------------------------------------------------------ the loop

    async def run(self, intake: Intake) -> None:
        from redis.exceptions import RedisError

        client = self._client = _connect(self.url, read_timeout=self.block_ms / 1000 + READ_SLACK)
        consumer = self.consumer or intake.instance_id
        try:
            await self._ensure_group(client)
            intake.report_error(None)  # connected: an earlier transport error is over
            await self._own_pending(client, intake, consumer)
            claim_every = max(self.claim_idle_ms / 2000, 0.05)
            next_claim = 0.0
            while True:
                if time.monotonic() >= next_claim:
                    await self._claim(client, intake, consumer)
                    next_claim = time.monotonic() + claim_every
                reply = await _call(client.xreadgroup(
                    self.group, consumer, {self.stream: ">"}, count=self.batch,
                    block=self.block_ms))
                entries = _entries(reply)
                if entries:
                    await self._take(client, intake, entries, None)
                await self._report_lag(client, intake, force=not entries)
        except (RedisError, OSError) as exc:
            raise _explain(exc, self.url, self.stream, self.group) from None

    async def _ensure_group(self, client: Redis) -> None:
        from redis.exceptions import ResponseError

        try:
            await _call(client.xgroup_create(self.stream, self.group, id=self.start_id,
                                             mkstream=True))
        except ResponseError as exc:
            if not str(exc).startswith("BUSYGROUP"):  # BUSYGROUP: it exists, as it should
                raise

    async def _own_pending(self, client: Redis, intake: Intake, consumer: str) -> None:
        """Entries still pending under this consumer's name (it restarted): hand them over
        again before reading new ones."""
        after = "0-0"
        while True:
            reply = await _call(client.xreadgroup(self.group, consumer, {self.stream: after},
                                                  count=self.batch))
            entries = _entries(reply)
            if not entries:
                return
            after = _text(entries[-1][0])
            entries = await self._drop_deleted(client, entries)
            if entries:
                await self._take(client, intake, entries,
                                 await self._counts(client, entries, consumer))

    async def _claim(self, client: Redis, intake: Intake, consumer: str) -> None:
        """Take over what other consumers left pending for ``claim_idle_ms`` (they died or
        hang), then forget consumers long gone with nothing pending."""
        cursor: bytes | str = "0-0"
        while True:
            reply: Any = await _call(client.xautoclaim(
                self.stream, self.group, consumer, min_idle_time=self.claim_idle_ms,
                start_id=cursor, count=self.batch))
            cursor = reply[0]
            entries = await self._drop_deleted(client, reply[1])
            if entries:
                await self._take(client, intake, entries,
                                 await self._counts(client, entries, consumer))
            if _text(cursor) == "0-0":
                break
        for info in await _call(client.xinfo_consumers(self.stream, self.group)):
            name = _text(info["name"])
            if name != consumer and int(info["pending"]) == 0 \
                    and int(info["idle"]) > max(CONSUMER_EXPIRY_MS, 10 * self.claim_idle_ms):
                await _call(client.xgroup_delconsumer(self.stream, self.group, name))

    async def _drop_deleted(self, client: Redis, entries: Sequence[Any]) -> list[Any]:
        """``entries`` without those deleted (XDEL) while pending, which come back with no
        fields (redis-py: ``{}``, or None on Redis 6.2; XADD cannot add an entry without
        fields): nothing to take in, so they are acknowledged off the pending list."""
        gone = [entry_id for entry_id, fields in entries if not fields]
        if gone:
            await _call(client.xack(self.stream, self.group, *gone))
        return [entry for entry in entries if entry[1]]

    async def _counts(self, client: Redis, entries: Sequence[Any], consumer: str) -> dict[str, int]:
        """Each entry's delivery count, from XPENDING (XAUTOCLAIM and history reads have
        just counted this delivery)."""
        first, last = _text(entries[0][0]), _text(entries[-1][0])
        rows = await _call(client.xpending_range(
            self.stream, self.group, min=first, max=last, count=len(entries) + 100,
            consumername=consumer))
        return {_text(r["message_id"]): int(r["times_delivered"]) for r in rows}

    async def _take(self, client: Redis, intake: Intake, entries: Sequence[Any],
                    counts: dict[str, int] | None) -> None:
        """Hand ``entries`` to the intake and XACK what it recorded. What the store refused
        is handed over again after a back-off, same attempt, until it is recorded: it stays
        pending meanwhile, and a store outage does not use up deliveries."""
        deliveries = []
        for raw_id, fields in entries:
            entry_id = _text(raw_id)
            event = entry_event(entry_id, fields, source=self.source, default_type=self.type,
                                event_field=self.event_field, max_bytes=self.max_entry_bytes)
            attempt = counts.get(entry_id, 2) if counts is not None else 1
            deliveries.append(Delivery(event=event, attempt=attempt, token=entry_id))
        delay = REFUSED_BACKOFF[0]
        while deliveries:
            outcomes = await intake.deliver(deliveries)
            done = [d.token for d, o in zip(deliveries, outcomes, strict=True) if o.acknowledge]
            if done:
                await _call(client.xack(self.stream, self.group, *done))
                intake.acknowledged(len(done))
            deliveries = [d for d, o in zip(deliveries, outcomes, strict=True)
                          if not o.acknowledge]
            if deliveries:
                await asyncio.sleep(delay)
                delay = min(delay * 2, REFUSED_BACKOFF[1])

    async def _report_lag(self, client: Redis, intake: Intake, *, force: bool) -> None:
        """Entries of the stream the group has not read yet (XINFO GROUPS ``lag``; when
        Redis cannot tell, e.g. after XDEL, length minus entries-read)."""
        now = time.monotonic()
        if not force and now - self._lag_at < LAG_EVERY:
            return
        self._lag_at = now
        for info in await _call(client.xinfo_groups(self.stream)):
            if _text(info["name"]) != self.group:
                continue
            lag = info.get("lag")
            if lag is None and info.get("entries-read") is not None:
                length = int(await _call(client.xlen(self.stream)))
                lag = max(0, length - int(info["entries-read"]))
            intake.report_lag(float(lag) if lag is not None else None)
            return

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


class RedisStreamsSink:
    def __init__(self, name: str, config: dict[str, Any]):
        self.name = name
        self.url = str(config.get("url") or DEFAULT_URL)
        stream = config.get("stream")
        if not stream:
            raise ConnectorError(f"sink {name!r}: 'stream' is required (the stream's key)")
        self.stream = str(stream)
        self.maxlen = int(config.get("maxlen", 1_000_000))
        self._client: Redis | None = None

    async def send(self, event: dict[str, Any]) -> dict[str, Any]:
        """XADD ``event``; returns ``{"id": <entry id>, "stream": <key>}``. A retry after a
        lost reply can add the event twice: readers dedup by its CloudEvents id."""
        from redis.exceptions import RedisError

        if self._client is None:
            self._client = _connect(self.url, read_timeout=10.0)
        try:
            entry_id = await _call(self._client.xadd(
                self.stream, event_fields(event),  # type: ignore[arg-type]
                maxlen=self.maxlen or None, approximate=True))
        except (RedisError, OSError) as exc:
            raise _explain(exc, self.url, self.stream) from None
        return {"id": _text(entry_id), "stream": self.stream}

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
