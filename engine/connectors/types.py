"""What a connector is: source and sink types, and what a source may ask of the engine.

A **source** reads events from a system (a stream, a queue, a replication slot, HTTP) and
hands them to an ``Intake`` in batches; it acknowledges to its system only the deliveries
the intake returned as ``Outcome.acknowledge`` (their executions' starts, or their DLQ
entries, are durable by then). A **sink** sends events out; steps use it (``step.emit``).

Types register through the ``wfstudio.connectors`` entry points, like steps and modules:
``register(registry)`` calls ``registry.add_source(SourceType(...))`` /
``registry.add_sink(SinkType(...))``. ``schema`` is the JSON Schema of the connector's
``config`` (the validator checks it; the studio's property panel edits with it).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Delivery:
    """One event as the transport handed it over.

    ``event``: the CloudEvents 1.0 envelope as a JSON-able dict (``envelope.make``);
    ``attempt``: how many times the transport has delivered it (1 the first time; from
    XPENDING, ApproximateReceiveCount, x-delivery-count…); ``token``: whatever the source
    needs to acknowledge it (a stream entry id, a receipt handle, an LSN).
    """

    event: dict[str, Any]
    attempt: int = 1
    token: Any = None


class Outcome(enum.Enum):
    STARTED = "started"  # a new execution; its start is durable
    DUPLICATE = "duplicate"  # seen before (same source and id): nothing new started
    DEAD_LETTERED = "dead_lettered"  # failed its schema or came too often: a DLQ entry
    FILTERED = "filtered"  # no pipeline takes events of its type: nothing to do
    REFUSED = "refused"  # the store could not record it: do NOT acknowledge; redelivered later

    @property
    def acknowledge(self) -> bool:
        return self is not Outcome.REFUSED


class Intake(Protocol):
    """The engine's side of a running source."""

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        """Take in a batch; returns an outcome per delivery, in order, once each acknowledged
        one is durable. Waits while too many executions run (a source slows down, it does
        not drop). Never raises for one bad event: that one is dead-lettered."""
        ...

    def acknowledged(self, count: int) -> None:
        """The source acknowledged ``count`` deliveries to its system (for the counters)."""
        ...

    def report_lag(self, lag: float | None) -> None:
        """How far behind the source is, in its own unit (entries, messages, bytes of WAL)."""
        ...

    def report_error(self, message: str | None) -> None:
        """The transport's latest error (None: recovered). The source retries by itself."""
        ...

    @property
    def tenant(self) -> str: ...

    @property
    def instance_id(self) -> str:
        """This engine process's id (a consumer name in a group, a lock owner)."""
        ...

    def lock(self, name: str, timeout: float | None = None) -> Any:
        """``async with intake.lock(name):`` one holder across processes sharing the store."""
        ...

    async def last_event_id(self, prefix: str = "") -> str | None:
        """The largest id starting with ``prefix`` of the events this source took in (any
        process, any run), e.g. a schedule's last fire; None if there is none."""
        ...


class Source(Protocol):
    async def run(self, intake: Intake) -> None:
        """Consume until cancelled. Reconnects by itself after transport errors (reporting
        them); on cancellation it stops reading and acknowledges nothing more."""
        ...

    async def close(self) -> None: ...


class Sink(Protocol):
    async def send(self, event: dict[str, Any]) -> dict[str, Any]:
        """Send one CloudEvents envelope; returns what the system said (an id, a status).
        Raises ``ConnectorError`` when it could not (after its own retries)."""
        ...

    async def close(self) -> None: ...


class ConnectorError(Exception):
    """A transport failed; the message says what and what to check."""


@dataclass
class SourceType:
    name: str  # e.g. "source.redis_streams"
    factory: Callable[[str, dict[str, Any]], Source]  # (connector name, config) -> source
    description: str
    schema: dict[str, Any]  # JSON Schema of ``config``
    example: dict[str, Any] | None = None
    # Config keys holding secrets (shown masked, never recorded).
    secret_keys: frozenset[str] = field(default_factory=frozenset)
    trigger_type: str = "event"  # the executions' trigger type (the timeline shows it)
    lag_unit: str = "events"  # what ``report_lag`` counts
    lag_alert: float = 1000  # the lag above which it shows as lagging (config ``lag_alert``)


@dataclass
class SinkType:
    name: str  # e.g. "sink.webhook"
    factory: Callable[[str, dict[str, Any]], Sink]
    description: str
    schema: dict[str, Any]
    example: dict[str, Any] | None = None
    secret_keys: frozenset[str] = field(default_factory=frozenset)


# Keys every source's config may carry, besides its type's own (the runtime reads them).
COMMON_SOURCE_PROPERTIES: dict[str, Any] = {
    "schema": {"type": "string", "description": "a registered event schema (by event type) "
               "every event's data must satisfy; one that does not goes to the DLQ"},
    "max_deliveries": {"type": "integer", "minimum": 1, "default": 5,
                       "description": "deliveries after which an event is dead-lettered"},
    "max_in_flight": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 64,
                      "description": "executions running at once before intake slows down"},
    "lag_alert": {"type": "number", "minimum": 0,
                  "description": "the lag (in the source's unit) above which it shows as "
                                 "lagging; each type has a default"},
}


def source_schema(own: dict[str, Any], required: Sequence[str] = ()) -> dict[str, Any]:
    """A source type's config schema: its own properties plus the common ones."""
    return {"type": "object", "additionalProperties": False,
            "properties": {**own, **COMMON_SOURCE_PROPERTIES}, "required": list(required)}
