"""A trigger payload is stored once: in ``executions.trigger_payload``.

The ``execution.started`` event used to carry a second copy (``trigger.payload``); the
recorder now writes ``trigger.payload_ref: "execution"`` in its place, and every read of
events puts the payload back, so readers (timeline, inspector, replay, diff, the HTTP API)
see the event as it was emitted. Events written before this carry the payload themselves
and are returned as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.service.models import EventType
from engine.store.records import EventRecord

PAYLOAD_REF = "payload_ref"


def without_payload(trigger: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in trigger.items() if k != "payload"}


def needs_payload(event: EventRecord) -> bool:
    if event.type != EventType.EXECUTION_STARTED or not isinstance(event.data, dict):
        return False
    trigger = event.data.get("trigger")
    return isinstance(trigger, dict) and PAYLOAD_REF in trigger


def restore_payloads(events: list[EventRecord], payload_of: Callable[[str], Any]) -> None:
    """Put each referenced trigger payload back into its ``execution.started`` event."""
    for event in events:
        if needs_payload(event):
            trigger = without_payload(event.data["trigger"])
            del trigger[PAYLOAD_REF]
            trigger["payload"] = payload_of(event.execution_id)
            event.data = {**event.data, "trigger": trigger}
