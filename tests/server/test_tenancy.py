"""Tenant isolation: two tenants' keys against one server see nothing of each other.

Another tenant's execution, DLQ entry, mock or breakpoint answers exactly like an unknown
id (the same status and body, the id aside); lists and streams are disjoint. The last test
drives ``LocalService`` directly with the tenant context variable the server sets.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.server.keys import KeyStore
from engine.service.errors import NotFound
from engine.service.local import LocalService
from engine.service.models import RunOptions
from engine.store.store import Store
from engine.tenancy import current_tenant
from tests.server.support import SseReader, auth, make_secrets
from tests.waiting import wait_for_condition

API = "/api/v1"
TERMINAL = {"execution.completed", "execution.failed", "execution.cancelled"}


@pytest.fixture
def alpha(keys: KeyStore) -> dict[str, str]:
    return auth(make_secrets(keys, "alpha")["admin"])


@pytest.fixture
def beta(keys: KeyStore) -> dict[str, str]:
    return auth(make_secrets(keys, "beta")["admin"])


async def run(client: httpx.AsyncClient, headers: dict[str, str], pipeline: str, payload: Any,
              wait: bool = True) -> dict[str, Any]:
    response = await client.post(f"{API}/pipelines/{pipeline}/runs", headers=headers,
                                  json={"input": payload, "options": {"wait": wait}})
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def wait_for(check: Any) -> Any:
    return await wait_for_condition(check, "the server's state", interval=0.02)


async def same_as_unknown(client: httpx.AsyncClient, headers: dict[str, str], method: str,
                          template: str, foreign: str, *, with_id: Any = None,
                          **kwargs: Any) -> None:
    """``template`` with another tenant's id answers exactly as with an unknown id.

    ``with_id(id)``: more request arguments that carry the id (a query, a body).
    """
    unknown = uuid.uuid4().hex

    async def ask(eid: str) -> httpx.Response:
        more = with_id(eid) if with_id is not None else {}
        return await client.request(method, API + template.format(id=eid), headers=headers,
                                    **kwargs, **more)

    theirs, missing = await ask(foreign), await ask(unknown)
    assert theirs.status_code == 404, (template, theirs.text)
    assert missing.status_code == 404, (template, missing.text)
    assert theirs.text.replace(foreign, "ID") == missing.text.replace(unknown, "ID"), template


async def test_executions_of_another_tenant_look_absent(
        client: httpx.AsyncClient, alpha: dict[str, str], beta: dict[str, str]) -> None:
    mine = (await run(client, alpha, "order", {"qty": 1}))["execution_id"]
    theirs = (await run(client, beta, "order", {"qty": 2}))["execution_id"]
    assert (await client.get(f"{API}/executions/{mine}", headers=alpha)).status_code == 200

    for method, template, kwargs in [
        ("GET", "/executions/{id}", {}),
        ("GET", "/executions/{id}/timeline", {}),
        ("GET", "/executions/{id}/events", {}),
        ("GET", "/executions/{id}/stream", {}),
        ("POST", "/executions/{id}/replay", {"json": {}}),
        ("POST", "/executions/{id}/replay/plan", {"json": {}}),
        ("POST", "/executions/{id}/cancel", {}),
        ("POST", "/debug/paused/{id}/resume", {"json": {}}),
    ]:
        await same_as_unknown(client, beta, method, template, mine, **kwargs)
    await same_as_unknown(client, beta, "GET", "/executions/diff", mine,
                          with_id=lambda i: {"params": {"a": i, "b": theirs}})
    await same_as_unknown(client, beta, "GET", "/executions/diff", mine,
                          with_id=lambda i: {"params": {"a": theirs, "b": i}})
    await same_as_unknown(client, beta, "POST", "/mocks/from-execution", mine,
                          with_id=lambda i: {"json": {"execution_id": i, "step": "price"}})

    listed_a = (await client.get(f"{API}/executions", headers=alpha)).json()["items"]
    listed_b = (await client.get(f"{API}/executions", headers=beta)).json()["items"]
    assert [e["id"] for e in listed_a] == [mine] and [e["id"] for e in listed_b] == [theirs]
    assert listed_a[0]["tenant"] == "alpha" and listed_b[0]["tenant"] == "beta"


async def test_a_running_execution_of_another_tenant_cannot_be_cancelled(
        client: httpx.AsyncClient, alpha: dict[str, str], beta: dict[str, str]) -> None:
    eid = (await run(client, alpha, "slow", {}, wait=False))["execution_id"]
    await same_as_unknown(client, beta, "POST", "/executions/{id}/cancel", eid)
    cancelled = await client.post(f"{API}/executions/{eid}/cancel", headers=alpha)
    assert cancelled.json() == {"cancelled": True}


async def test_dead_letter_queues_are_per_tenant(
        client: httpx.AsyncClient, alpha: dict[str, str], beta: dict[str, str]) -> None:
    await run(client, alpha, "flaky", {"fail": True})
    entries = (await client.get(f"{API}/dlq", headers=alpha)).json()
    assert len(entries) == 1
    assert (await client.get(f"{API}/dlq", headers=beta)).json() == []
    assert (await client.get(f"{API}/dlq/stats", headers=beta)).json().get("pending", 0) == 0
    entry = entries[0]["id"]
    await same_as_unknown(client, beta, "GET", "/dlq/{id}", entry)
    await same_as_unknown(client, beta, "POST", "/dlq/{id}/resolve", entry)
    assert (await client.get(f"{API}/dlq/{entry}", headers=alpha)).json()["status"] == "pending"


async def test_mocks_are_per_tenant(client: httpx.AsyncClient, alpha: dict[str, str],
                                    beta: dict[str, str]) -> None:
    made = await client.post(f"{API}/mocks", headers=alpha,
                             json={"pipeline": "order", "step": "tax", "output": {"gross": 7}})
    assert made.status_code == 201
    assert (await run(client, alpha, "order", {"qty": 1}))["output"] == {"gross": 7}
    assert (await run(client, beta, "order", {"qty": 1}))["output"] == {"gross": 20}
    assert (await client.get(f"{API}/mocks", headers=beta)).json() == []
    await same_as_unknown(client, beta, "DELETE", "/mocks/{id}", made.json()["id"])
    assert (await client.delete(f"{API}/mocks", headers=beta)).json() == {"removed": 0}
    assert [m["id"] for m in (await client.get(f"{API}/mocks", headers=alpha)).json()] == [
        made.json()["id"]]


async def test_breakpoints_and_paused_runs_are_per_tenant(
        client: httpx.AsyncClient, alpha: dict[str, str], beta: dict[str, str]) -> None:
    bp = (await client.post(f"{API}/debug/breakpoints", headers=alpha,
                            json={"pipeline": "order", "step": "tax"})).json()
    assert (await client.get(f"{API}/debug/breakpoints", headers=beta)).json() == []
    await same_as_unknown(client, beta, "DELETE", "/debug/breakpoints/{id}", bp["id"])
    await same_as_unknown(client, beta, "PATCH", "/debug/breakpoints/{id}", bp["id"],
                          json={"enabled": False})
    # Beta's run of the same pipeline does not stop at alpha's breakpoint.
    assert (await run(client, beta, "order", {"qty": 1}))["status"] == "completed"

    eid = (await run(client, alpha, "order", {"qty": 1}, wait=False))["execution_id"]

    async def paused_for_alpha() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (await client.get(f"{API}/debug/paused", headers=alpha)).json()
        return [p for p in items if p["execution_id"] == eid]

    await wait_for(paused_for_alpha)
    assert (await client.get(f"{API}/debug/paused", headers=beta)).json() == []
    await same_as_unknown(client, beta, "POST", "/debug/paused/{id}/resume", eid, json={})
    resumed = await client.post(f"{API}/debug/paused/{eid}/resume", headers=alpha, json={})
    assert resumed.status_code == 204, resumed.text

    # Pausing new runs is per tenant too.
    assert (await client.put(f"{API}/debug/pause-new-runs/order", headers=alpha,
                             json={"enabled": True})).status_code == 204
    assert (await run(client, beta, "order", {"qty": 1}))["status"] == "completed"
    await client.put(f"{API}/debug/pause-new-runs/order", headers=alpha, json={"enabled": False})


async def test_the_stream_of_all_executions_carries_the_callers_tenant_only(
        live_factory: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tenants.db'}"
    with Store.open(url) as store:
        alpha = auth(make_secrets(KeyStore(store), "alpha")["admin"])
        beta = auth(make_secrets(KeyStore(store), "beta")["admin"])
    server, _secrets = live_factory(url)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        async with http.stream("GET", f"{API}/stream", headers=beta) as response:
            reader = SseReader(response)
            assert (await reader.next())["comment"] == "connected"
            theirs = (await run(http, alpha, "order", {"qty": 1}))["execution_id"]
            mine = (await run(http, beta, "order", {"qty": 2}))["execution_id"]
            seen = await reader.events(until=lambda m: m["event"] in TERMINAL
                                       and m["data"]["execution_id"] == mine)
            resume_at = seen[0]["id"]
        assert {m["data"]["execution_id"] for m in seen} == {mine}
        assert seen[0]["event"] == "execution.started"  # all of beta's run, from its start
        assert theirs not in str(seen)

        # Resuming replays from the ring: again beta's events only.
        alpha_again = (await run(http, alpha, "order", {"qty": 3}))["execution_id"]
        async with http.stream("GET", f"{API}/stream",
                               headers={**beta, "Last-Event-ID": resume_at}) as response:
            reader = SseReader(response)
            await reader.next()
            mine_again = (await run(http, beta, "order", {"qty": 4}))["execution_id"]
            resumed = await reader.events(until=lambda m: m["event"] in TERMINAL
                                          and m["data"]["execution_id"] == mine_again)
        assert {m["data"]["execution_id"] for m in resumed} == {mine, mine_again}
        assert alpha_again not in str(resumed)

        # An event id of another tenant is no resume point: announced as a gap.
        theirs_first = f"{theirs}:1"
        async with http.stream("GET", f"{API}/stream",
                               headers={**beta, "Last-Event-ID": theirs_first}) as response:
            reader = SseReader(response)
            await reader.next()
            gap = await reader.next()
        assert gap["event"] == "stream.gap"


async def test_local_service_scopes_every_query_by_the_tenant_context(
        service: LocalService) -> None:
    token = current_tenant.set("alpha")
    try:
        mine = (await service.run("order", {"qty": 1})).execution_id
        failed = await service.run("flaky", {"fail": True})
        assert failed.status == "failed"
        await service.set_mock("order", "price", output={"total": 1})
        await service.set_breakpoint("order", "tax")
    finally:
        current_tenant.reset(token)

    # Embedded use is tenant "default": it sees none of alpha's things.
    with pytest.raises(NotFound):
        await service.get_execution(mine)
    with pytest.raises(NotFound):
        await service.timeline(mine)
    with pytest.raises(NotFound):
        await service.replay(mine)
    assert (await service.list_executions()).items == []
    assert await service.list_dlq() == []
    assert await service.list_mocks() == []
    assert await service.list_breakpoints() == []
    done = await service.run("order", {"qty": 1}, RunOptions(wait=True))
    assert done.status == "completed" and done.output == {"gross": 20}  # no mock, no pause

    token = current_tenant.set("alpha")
    try:
        summary = await service.get_execution(mine)
        assert summary.tenant == "alpha"
        assert [e.id for e in (await service.list_executions()).items] == [
            failed.execution_id, mine]
        assert [e.execution_id for e in await service.list_dlq()] == [failed.execution_id]
        assert len(await service.list_mocks()) == 1 and len(await service.list_breakpoints()) == 1
    finally:
        current_tenant.reset(token)


CALLER = """
pipelines:
  parent:
    steps:
      - {name: call, type: step.workflow_call, config: {workflow: child, input: {qty: 2}}}
      - {name: later, type: step.workflow_call, config: {workflow: child, mode: async}}
  child:
    steps:
      - {name: note, type: step.log, config: {message: "child"}}
"""


async def test_children_of_a_run_belong_to_its_tenant(tmp_path: Path) -> None:
    path = tmp_path / "caller.yaml"
    path.write_text(CALLER)
    async with await LocalService.open([path], store=f"sqlite:///{tmp_path / 's.db'}") as svc:
        token = current_tenant.set("alpha")
        try:
            parent = await svc.run("parent", {})
            assert parent.status == "completed", parent.error

            async def three() -> list[Any]:
                await svc.store.recorder.flush()
                items = (await svc.list_executions()).items
                return items if len(items) == 3 else []

            runs = await wait_for(three)
        finally:
            current_tenant.reset(token)
        assert {r.pipeline for r in runs} == {"parent", "child"}
        assert {r.tenant for r in runs} == {"alpha"}
        assert all(r.parent_id == parent.execution_id for r in runs if r.pipeline == "child")
        assert (await svc.list_executions()).items == []  # nothing of alpha's in "default"
