"""A trigger payload is stored once: in ``executions.trigger_payload``.

The ``execution.started`` event used to carry a second copy (``trigger.payload``); the
recorder now writes ``trigger.payload_ref: "execution"`` in its place, and every read of
events puts the payload back, so readers (timeline, inspector, replay, diff, the HTTP API)
see the event as it was emitted. Events written before this carry the payload themselves
and are returned as they are.
"""

from __future__ import annotations

from typing import Any

from engine.service.models import EventType
from engine.store.records import EventRecord

PAYLOAD_REF = "payload_ref"


def referenced(trigger: dict[str, Any]) -> dict[str, Any]:
    """The trigger as stored: ``payload`` replaced by the reference."""
    out = {k: v for k, v in trigger.items() if k != "payload"}
    out[PAYLOAD_REF] = "execution"
    return out


def with_payload(trigger: dict[str, Any], payload: Any) -> dict[str, Any]:
    """The trigger as emitted: the reference (if any) replaced by ``payload``."""
    out = {k: v for k, v in trigger.items() if k not in ("payload", PAYLOAD_REF)}
    out["payload"] = payload
    return out


def needs_payload(event: EventRecord) -> bool:
    if event.type != EventType.EXECUTION_STARTED or not isinstance(event.data, dict):
        return False
    trigger = event.data.get("trigger")
    return isinstance(trigger, dict) and PAYLOAD_REF in trigger


def restore_payloads(events: list[EventRecord], payload: Any) -> None:
    """Put ``payload`` (their execution's) back into its ``execution.started`` event."""
    for event in events:
        if needs_payload(event):
            event.data = {**event.data, "trigger": with_payload(event.data["trigger"], payload)}
