"""Contract: the dead-letter queue. Entries come from real runs: ``screen`` parks negative
quantities with ``step.dlq_send``."""

from __future__ import annotations

import asyncio

import pytest

from engine.service.errors import Conflict, InvalidInput, NotFound
from engine.service.models import DlqFilter
from engine.service.protocol import StudioService


async def park(service: StudioService, *skus: str) -> dict[str, str]:
    """Park one entry per sku; their ids by sku."""
    for sku in skus:
        ran = await service.run("screen", {"sku": sku, "qty": -1})
        assert ran.status == "completed" and ran.output["accepted"] is False
    return {e.payload["sku"]: e.id for e in await service.list_dlq()}


async def test_list_stats_get(service: StudioService) -> None:
    ids = await park(service, "A", "B")
    entry = await service.get_dlq(ids["A"])
    assert (entry.pipeline, entry.step, entry.status, entry.error) == (
        "screen", "park", "pending", "negative quantity")
    assert entry.payload == {"sku": "A", "qty": -1} and entry.execution_id
    assert await service.dlq_stats() == {"pending": 2, "retrying": 0, "resolved": 0,
                                         "discarded": 0, "total": 2}
    assert len(await service.list_dlq(DlqFilter(pipeline="screen", status="pending"))) == 2
    assert await service.list_dlq(DlqFilter(pipeline="greet")) == []
    assert len(await service.list_dlq(DlqFilter(limit=1))) == 1


async def test_list_by_text(service: StudioService) -> None:
    ids = await park(service, "A", "B")
    # case-insensitive, in the error, the pipeline or an id; LIKE wildcards are plain text
    assert len(await service.list_dlq(DlqFilter(text="NEGATIVE"))) == 2
    assert len(await service.list_dlq(DlqFilter(text="scre"))) == 2
    assert [e.id for e in await service.list_dlq(DlqFilter(text=ids["B"][:10]))] == [ids["B"]]
    assert await service.list_dlq(DlqFilter(text="%")) == []
    assert await service.list_dlq(DlqFilter(text="no such entry")) == []


async def test_retry_with_a_patch_and_progress(service: StudioService) -> None:
    ids = await park(service, "A", "B")
    reports: list[tuple[int, int]] = []
    results = await service.retry_dlq(list(ids.values()),
                                      patch=[{"op": "replace", "path": "/qty", "value": 3}],
                                      progress=lambda done, total: reports.append((done, total)))
    assert sorted(r.entry_id for r in results) == sorted(ids.values())
    assert {r.status for r in results} == {"completed"}
    assert reports[-1] == (2, 2)
    for result in results:
        retry = await service.get_execution(result.execution_id)
        assert retry.trigger_type == "dlq_retry" and retry.trigger_payload["qty"] == 3
        entry = await service.get_dlq(result.entry_id)
        assert entry.status == "resolved" and entry.retry_count == 1
        assert entry.payload["qty"] == -1  # the entry keeps what it arrived with
    # Finished entries are skipped, not retried again.
    [skipped] = await service.retry_dlq([ids["A"]])
    assert skipped.status == "skipped" and skipped.execution_id is None


async def test_used_up_retries_need_force(service: StudioService) -> None:
    failed = await service.run("fragile", {"fail": True})
    assert failed.status == "failed"
    [entry] = await service.list_dlq(DlqFilter(pipeline="fragile"))
    assert (entry.execution_id, entry.max_retries, entry.retry_count) == (
        failed.execution_id, 1, 0)
    [again] = await service.retry_dlq([entry.id])
    assert again.status == "failed"
    assert (await service.get_dlq(entry.id)).retry_count == 1  # back to pending, retries used up
    [refused] = await service.retry_dlq([entry.id])
    assert refused.status == "skipped" and "retries used up" in refused.error
    [forced] = await service.retry_dlq([entry.id], patch=[{"op": "replace", "path": "/fail",
                                                            "value": False}], force=True)
    assert forced.status == "completed"
    assert (await service.get_dlq(entry.id)).status == "resolved"
    assert len(await service.list_dlq()) == 1  # failed retries made no second entry


async def test_resolve_discard_purge(service: StudioService) -> None:
    ids = await park(service, "A", "B", "C")
    assert (await service.resolve_dlq(ids["A"])).status == "resolved"
    assert (await service.discard_dlq(ids["B"])).status == "discarded"
    assert (await service.dlq_stats())["pending"] == 1
    with pytest.raises(Conflict, match="already resolved"):
        await service.discard_dlq(ids["A"])
    assert await service.purge_dlq(3600) == 0  # changed just now: not old enough
    await asyncio.sleep(0.05)
    assert await service.purge_dlq(0.01) == 2  # the pending entry is kept
    assert [e.id for e in await service.list_dlq()] == [ids["C"]]


async def test_dlq_errors(service: StudioService) -> None:
    ids = await park(service, "A")
    with pytest.raises(NotFound):
        await service.get_dlq("missing")
    with pytest.raises(NotFound):
        await service.resolve_dlq("missing")
    with pytest.raises(NotFound):
        await service.retry_dlq([ids["A"], "missing"])
    # locally the service says so; over HTTP the schema's enumeration refuses it first
    with pytest.raises(InvalidInput, match=r"status.*'?pending'?, '?retrying'?,? '?resolved'?"):
        await service.list_dlq(DlqFilter(status="gone"))
    with pytest.raises(InvalidInput):
        await service.purge_dlq(-1)
    with pytest.raises(InvalidInput, match="does not apply"):
        await service.retry_dlq([ids["A"]], patch=[{"op": "remove", "path": "/absent"}])
    entry = await service.get_dlq(ids["A"])
    assert (entry.status, entry.retry_count) == ("pending", 0)  # nothing changed
