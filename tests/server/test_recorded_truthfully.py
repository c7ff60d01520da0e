"""Recorded truthfully: ``debug.context_patched`` names who edited a paused run's context:
the API key (name and id, never its secret) over HTTP, the studio in embedded use."""

from __future__ import annotations

from typing import Any

import httpx

from engine.server.keys import KeyStore
from engine.service.local import LocalService
from engine.service.models import RunOptions
from tests.server.support import auth
from tests.waiting import wait_for_condition

API = "/api/v1"
PATCH = [{"op": "replace", "path": "/current/total", "value": 100}]


def _patched(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["type"] == "debug.context_patched"]


async def test_a_patch_over_http_is_recorded_as_the_keys(
        client: httpx.AsyncClient, keys: KeyStore) -> None:
    key, secret = keys.create("alice's laptop", scopes=["run", "debug", "read"])
    headers = auth(secret)
    assert (await client.post(f"{API}/debug/breakpoints", headers=headers,
                              json={"pipeline": "order", "step": "tax"})).status_code == 201
    started = await client.post(f"{API}/pipelines/order/runs", headers=headers,
                                json={"input": {"qty": 2}, "options": {"wait": False}})
    execution_id = started.json()["execution_id"]

    async def paused() -> bool:
        listed = (await client.get(f"{API}/debug/paused", headers=headers)).json()
        return any(p["execution_id"] == execution_id for p in listed)

    await wait_for_condition(paused, "the run to pause at tax")
    resumed = await client.post(f"{API}/debug/paused/{execution_id}/resume", headers=headers,
                                json={"action": "continue", "patch": PATCH})
    assert resumed.status_code == 204, resumed.text

    async def finished() -> bool:
        got = (await client.get(f"{API}/executions/{execution_id}", headers=headers)).json()
        return got["status"] == "completed"

    await wait_for_condition(finished, "the run to complete")
    events = (await client.get(f"{API}/executions/{execution_id}/events", headers=headers)).json()
    [patched] = _patched(events)
    assert patched["by"] == f"API key \"alice's laptop\" ({key.id})"
    assert secret not in str(events)


async def test_a_patch_in_the_studio_is_recorded_as_the_studios(service: LocalService) -> None:
    await service.set_breakpoint("order", "tax")
    started = await service.run("order", {"qty": 2}, RunOptions(wait=False))

    async def paused() -> bool:
        return any(p.execution_id == started.execution_id for p in await service.paused())

    await wait_for_condition(paused, "the run to pause at tax")
    await service.resume(started.execution_id, "continue", PATCH)

    async def finished() -> bool:
        return (await service.get_execution(started.execution_id)).status == "completed"

    await wait_for_condition(finished, "the run to complete")
    events = [e.model_dump() for e in await service.events(started.execution_id)]
    assert [p["by"] for p in _patched(events)] == ["studio"]
