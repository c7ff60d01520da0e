"""The connector types that ship with the engine (the ``builtin`` entry point).

Each module registers its own types; their client libraries are imported only when a
connector of that type starts, so loading the registry stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.steps.base import Registry


def register(registry: Registry) -> None:
    from engine.connectors import rabbitmq, redis_streams, schedule, sqs

    schedule.register(registry)
    sqs.register(registry)
    rabbitmq.register(registry)
    redis_streams.register(registry)
    from engine.connectors import pg_cdc

    pg_cdc.register(registry)
    from engine.connectors import emit, webhook

    webhook.register(registry)  # source.webhook and sink.webhook
    emit.register(registry)  # step.emit (the step that sends through sinks)
