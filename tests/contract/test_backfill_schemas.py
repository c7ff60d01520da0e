"""Contract: backfills and event schemas."""

from __future__ import annotations

import json

import pytest

from engine.service.errors import InvalidInput, NotFound
from engine.service.models import BackfillRequest, ExecutionFilter
from engine.service.protocol import StudioService

try:
    from tests.contract.contract_helpers import eventually, wait_backfill
except ImportError:
    from contract_helpers import eventually, wait_backfill  # type: ignore[no-redef]


async def test_backfill_from_past_payloads(service: StudioService) -> None:
    for name in ("Ada", "Bob", "Cyd"):
        await service.run("greet", {"name": name})
    started = await service.start_backfill(BackfillRequest(pipeline="greet", concurrency=2))
    assert started.pipeline == "greet" and started.status in ("pending", "running", "completed")
    done = await wait_backfill(service, started.id)
    assert (done.status, done.total, done.done, done.succeeded, done.failed) == (
        "completed", 3, 3, 3, 0)
    assert [b.id for b in await service.list_backfills()] == [started.id]
    runs = (await service.list_executions(ExecutionFilter(pipeline="greet"))).items
    backfilled = [r for r in runs if r.trigger_type == "backfill"]
    assert sorted(r.trigger_payload["name"] for r in backfilled) == ["Ada", "Bob", "Cyd"]


async def test_cancel_a_backfill(service: StudioService) -> None:
    lines = "\n".join(json.dumps({"wait": "200ms"}) for _ in range(30))
    started = await service.start_backfill(BackfillRequest(pipeline="slow", jsonl=lines,
                                                           concurrency=1))
    await eventually(lambda: _running(service, started.id), "the backfill to start running")
    cancelled = await service.cancel_backfill(started.id)
    assert cancelled.id == started.id
    ended = await wait_backfill(service, started.id, ("cancelled",))
    assert ended.done < 30 and ended.ended is not None


async def _running(service: StudioService, backfill_id: str) -> bool | None:
    return True if (await service.get_backfill(backfill_id)).status == "running" else None


async def test_backfill_errors(service: StudioService) -> None:
    with pytest.raises(NotFound, match="'nope'"):  # as running it would be
        await service.start_backfill(BackfillRequest(pipeline="nope"))
    with pytest.raises(InvalidInput, match="line 2"):
        await service.start_backfill(BackfillRequest(pipeline="greet", jsonl='{"a": 1}\n{oops'))
    with pytest.raises(NotFound):
        await service.get_backfill("missing")
    with pytest.raises(NotFound):
        await service.cancel_backfill("missing")
    assert await service.list_backfills() == []


async def test_event_schemas(service: StudioService) -> None:
    declared = await service.list_schemas()
    assert [(s.type, s.version) for s in declared] == [("order.created", 0)]
    assert await service.validate_event("order.created", {"id": "o-1", "qty": 2}) == []
    problems = await service.validate_event("order.created", {"qty": 0})
    assert len(problems) == 2 and any("'id' is a required property" in p for p in problems)

    schema = {"type": "object", "required": ["sku"]}
    registered = await service.register_schema("item.moved", schema)
    assert (registered.type, registered.version, registered.schema_) == ("item.moved", 1, schema)
    again = await service.register_schema("item.moved", {**schema, "required": ["sku", "to"]})
    assert again.version == 2
    assert [(s.type, s.version) for s in await service.list_schemas()] == [
        ("order.created", 0), ("item.moved", 1), ("item.moved", 2)]
    # The latest version is the one events are checked against.
    assert await service.validate_event("item.moved", {"sku": "x"}) == [
        "(root): 'to' is a required property"]

    with pytest.raises(InvalidInput, match="not a valid JSON Schema"):
        await service.register_schema("bad", {"type": "no-such-type"})
    with pytest.raises(NotFound, match="'nope'"):
        await service.validate_event("nope", {})


async def test_event_schemas_are_the_registering_tenants(service: StudioService,
                                                        other_tenant: StudioService) -> None:
    strict = {"type": "object", "required": ["only_for_a"]}
    assert (await service.register_schema("item.moved", strict)).version == 1
    # Tenant b does not see, read or validate against it (only the files' declared schema).
    assert [(s.type, s.version) for s in await other_tenant.list_schemas()] == [("order.created", 0)]
    with pytest.raises(NotFound, match=r"'item\.moved'"):
        await other_tenant.validate_event("item.moved", {})
    # b's own registration of the type starts b's versions and leaves a's latest alone.
    assert (await other_tenant.register_schema("item.moved", {"type": "object"})).version == 1
    assert await other_tenant.validate_event("item.moved", {}) == []
    assert await service.validate_event("item.moved", {}) == ["(root): 'only_for_a' is a required property"]
    assert [(s.type, s.version) for s in await service.list_schemas()] == [
        ("order.created", 0), ("item.moved", 1)]
