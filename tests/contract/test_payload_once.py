"""Contract: a trigger payload is stored once, and every read of the events shows it whole.

The store keeps the payload in the execution's row only (engine/store/payload_refs.py); the
``execution.started`` event must still read back with ``trigger.payload``, through
``events``, a subscription to a finished execution, and the timeline's summary.
"""

from __future__ import annotations

from engine.service.protocol import StudioService

try:
    from tests.contract.contract_helpers import wait_finished
except ImportError:
    from contract_helpers import wait_finished  # type: ignore[no-redef]

PAYLOAD = {"qty": 3, "note": "x" * 2000, "lines": [{"sku": f"s{i}", "n": i} for i in range(50)],
           "odd": {"nul": "a\u0000b", "deep": [[[[{"k": None}]]]]}}


async def test_the_started_event_reads_back_with_its_payload(service: StudioService) -> None:
    ran = await service.run("order", PAYLOAD)
    await wait_finished(service, ran.execution_id)
    stored = {**PAYLOAD, "odd": {"nul": "a\ufffdb", "deep": [[[[{"k": None}]]]]}}  # NUL escaped

    events = await service.events(ran.execution_id)
    started = events[0]
    assert started.type == "execution.started"
    assert started.data["trigger"] == {"type": "manual", "payload": stored}

    only = await service.events(ran.execution_id, types=["execution.started"])
    assert only[0].data == started.data
    later = await service.events(ran.execution_id, after_seq=1)
    assert later == events[1:]  # pages without the started event are untouched

    replayed = [e async for e in service.subscribe(ran.execution_id)]
    assert replayed[0].data == started.data

    summary = (await service.timeline(ran.execution_id)).execution
    assert summary.trigger_payload == stored
