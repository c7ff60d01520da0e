"""``step.emit``: send a CloudEvent through one of the file's sink connectors.

The envelope is built here (``engine.connectors.envelope.make``) from the step's resolved
config; the sink (one instance per loaded definition, made on first use and closed with
the engine) sends it. A sink that could not send raises ``ConnectorError``: the step fails
with type ``connector`` (its ``retry`` applies; then the pipeline's DLQ, if enabled).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.connectors.envelope import InvalidEnvelope, make
from engine.connectors.types import ConnectorError
from engine.errors import StepError
from engine.steps.base import StepContext, StepType

if TYPE_CHECKING:
    from engine.steps.base import Registry


async def run_emit(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    sink = ctx.sink(str(config["connector"]))
    source = config.get("source") or f"wfstudio://{ctx.pipeline}"
    subject = config.get("subject")
    try:
        event = make(str(source), str(config["type"]), config.get("data"), id=config.get("id"),
                     subject=None if subject is None else str(subject),
                     extensions={"wfexecution": ctx.execution_id})
    except InvalidEnvelope as exc:
        raise StepError(f"step {ctx.step.name!r}: {exc}", type="validation") from None
    try:
        result = await sink.send(event)
    except ConnectorError as exc:
        raise StepError(str(exc), type="connector") from None
    # The CloudEvent id is the step's ``id``; a sink's own id for what it sent (a stream
    # entry id, a message id) is kept as ``sink_id``.
    reply = dict(result)
    if "id" in reply:
        reply["sink_id"] = reply.pop("id")
    return {"id": event["id"], **reply}


EMIT = StepType(
    name="step.emit",
    run=run_emit,
    description="Send a CloudEvent through a sink connector of this file (e.g. sink.webhook).",
    category="messaging",
    schema={"type": "object", "additionalProperties": False,
            "required": ["connector", "type"], "properties": {
                "connector": {"type": "string", "description": "a sink connector under "
                                                               "'connectors:'"},
                "type": {"type": "string", "description": "the event type, e.g. "
                                                          "com.example.order.shipped"},
                "subject": {"type": "string", "description": "optional subject"},
                "data": {"description": "the event's data (any JSON; templates allowed)"},
                "source": {"type": "string", "description": "the event source (default "
                                                            "wfstudio://<pipeline>)"},
                "id": {"type": "string", "description": "the event id (default: a new UUID)"},
            }},
    output="{id, ...}: the CloudEvent id and what the sink returned (its own id as sink_id; "
           "sink.webhook: status, attempts).",
    sink_refs=frozenset({"connector"}),
    example={"connector": "notify", "type": "com.example.order.shipped",
             "subject": "{{ .order_id }}", "data": {"order": "{{ .order_id }}"}},
)


def register(registry: Registry) -> None:
    registry.add_step(EMIT)
