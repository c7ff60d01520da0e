"""The sources over HTTP: scopes, tenants, bodies, sizes and errors of ``/api/v1/sources``.

What the calls do is the contract suite's (tests/contract/test_sources.py, on every
backend); here is what only the HTTP side decides.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.server import KeyStore
from engine.store.store import Store
from tests.server.conftest import LiveServer
from tests.server.support import auth, make_secrets
from tests.waiting import wait_for_condition

API = "/api/v1"
REDIS_URL = "redis://127.0.0.1:6379/0"
FILE = """\
connectors:
  - name: orders
    type: source.redis_streams
    config: {url: "REDIS_URL", stream: STREAM, group: wfstudio}
pipelines:
  take_order:
    trigger: {type: event, config: {connector: orders, type: order.created}}
    steps:
      - {name: total, type: step.set, config: {values: {total: "{{ .data.qty * 10 }}"}}}
"""
MAX_INPUT = 4096


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    """A real server (uvicorn on loopback) over the file of one source, on SQLite."""
    import redis

    stream = f"wfstudio-api-{uuid.uuid4().hex[:12]}"
    file = tmp_path / "sources.yaml"
    file.write_text(FILE.replace("STREAM", stream).replace("REDIS_URL", REDIS_URL))
    live = LiveServer([file], f"sqlite:///{tmp_path / 'store.db'}", heartbeat=0.2,
                      max_input=MAX_INPUT).start()
    try:
        yield live
    finally:
        live.stop()
        client = redis.Redis.from_url(REDIS_URL)  # what starting the source made there
        try:
            client.delete(stream)
        finally:
            client.close()


@pytest.fixture
def secrets(server: LiveServer) -> dict[str, str]:
    """Keys of tenant default with one scope each, and ``b``: an admin of tenant b."""
    with Store.open(server.store_url) as store:
        keys = KeyStore(store)
        return {**make_secrets(keys), "b": keys.create("b admin", "b", ["admin"])[1]}


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
        yield c


async def deliveries(client: httpx.AsyncClient, secrets: dict[str, str]) -> list[Any]:
    answer = await client.get(f"{API}/sources/orders/deliveries", headers=auth(secrets["read"]))
    assert answer.status_code == 200, answer.text
    found: list[Any] = answer.json()
    return found


async def test_reading_needs_read_and_lists_the_source(client: httpx.AsyncClient,
                                                       secrets: dict[str, str]) -> None:
    assert (await client.get(f"{API}/sources")).status_code == 401
    listed = await client.get(f"{API}/sources", headers=auth(secrets["read"]))
    assert listed.status_code == 200, listed.text
    [source] = listed.json()
    assert (source["name"], source["type"], source["state"], source["pipelines"]) == (
        "orders", "source.redis_streams", "stopped", ["take_order"])
    deliveries = await client.get(f"{API}/sources/orders/deliveries",
                                  headers=auth(secrets["read"]))
    assert deliveries.status_code == 200 and deliveries.json() == []


@pytest.mark.parametrize("action", ["start", "stop"])
async def test_start_and_stop_need_admin(client: httpx.AsyncClient, secrets: dict[str, str],
                                         action: str) -> None:
    for scope in ("read", "run", "debug"):
        refused = await client.post(f"{API}/sources/orders/{action}", headers=auth(secrets[scope]))
        assert refused.status_code == 403, (scope, refused.text)
        assert refused.json()["error"] == "forbidden" and "'admin'" in refused.json()["message"]
    done = await client.post(f"{API}/sources/orders/{action}", headers=auth(secrets["admin"]))
    assert done.status_code == 200, done.text
    assert done.json()["state"] == ("stopped" if action == "stop" else "running")


async def test_start_then_stop(client: httpx.AsyncClient, secrets: dict[str, str]) -> None:
    admin = auth(secrets["admin"])
    assert (await client.post(f"{API}/sources/orders/start", headers=admin)).json()["state"] \
        == "running"
    assert [s["state"] for s in (await client.get(f"{API}/sources", headers=admin)).json()] == [
        "running"]
    assert (await client.post(f"{API}/sources/orders/stop", headers=admin)).json()["state"] \
        == "stopped"


async def test_a_test_event_needs_run_and_starts_an_execution(
        client: httpx.AsyncClient, secrets: dict[str, str]) -> None:
    body = {"type": "order.created", "data": {"id": "o-1", "qty": 2}, "id": "evt-1"}
    path = f"{API}/sources/orders/test-events"
    refused = await client.post(path, json=body, headers=auth(secrets["read"]))
    assert refused.status_code == 403 and "'run'" in refused.json()["message"]
    sent = await client.post(path, json=body, headers=auth(secrets["run"]))
    assert sent.status_code == 200, sent.text
    delivery = sent.json()
    assert (delivery["outcome"], delivery["event_id"], delivery["pipeline"]) == (
        "started", "evt-1", "take_order")

    async def finished() -> dict[str, object] | None:
        got = await client.get(f"{API}/executions/{delivery['execution_id']}",
                               headers=auth(secrets["read"]))
        summary: dict[str, object] = got.json()
        return summary if summary["status"] == "completed" else None
    await wait_for_condition(finished, "the test event's execution to complete")
    again = await client.post(path, json=body, headers=auth(secrets["run"]))
    assert again.json()["outcome"] == "duplicate"
    listed = await client.get(f"{API}/sources/orders/deliveries", params={"limit": 5},
                              headers=auth(secrets["read"]))
    assert [d["event_id"] for d in listed.json()] == ["evt-1"]
    assert listed.json()[0]["deliveries"] == 2


@pytest.mark.parametrize(("body", "field"), [
    ({"data": {}, "colour": "red"}, "colour"),  # unknown field
    ({"data": {}, "id": 7}, "id"),  # an id is text
    ({"data": {}, "type": "t" * 201}, "type"),  # over its length
    ([1, 2], "body"),  # not an object
])
async def test_a_bad_test_event_is_422_naming_the_field(
        client: httpx.AsyncClient, secrets: dict[str, str], body: object, field: str) -> None:
    answer = await client.post(f"{API}/sources/orders/test-events", json=body,
                               headers=auth(secrets["run"]))
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_input" and field in answer.json()["message"]


async def test_a_test_event_that_is_not_json_is_422(client: httpx.AsyncClient,
                                                    secrets: dict[str, str]) -> None:
    answer = await client.post(f"{API}/sources/orders/test-events", content=b'{"data": ',
                               headers={**auth(secrets["run"]),
                                        "Content-Type": "application/json"})
    assert answer.status_code == 422 and answer.json()["error"] == "invalid_input", answer.text


async def test_a_test_event_is_capped_like_a_runs_input(client: httpx.AsyncClient,
                                                        secrets: dict[str, str]) -> None:
    big = {"data": {"id": "o-1", "qty": 1, "note": "n" * MAX_INPUT}}
    answer = await client.post(f"{API}/sources/orders/test-events", json=big,
                               headers=auth(secrets["run"]))
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"] == "too_large" and "max_input" in answer.json()["message"]
    assert await deliveries(client, secrets) == []
    small = {"data": {"id": "o-1", "qty": 1, "note": "n" * 100}}
    taken = await client.post(f"{API}/sources/orders/test-events", json=small,
                              headers=auth(secrets["run"]))
    assert taken.status_code == 200 and taken.json()["outcome"] == "started"


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/sources/nope/start"), ("POST", "/sources/nope/stop"),
    ("POST", "/sources/nope/test-events"), ("GET", "/sources/nope/deliveries"),
])
async def test_an_unknown_source_is_404_naming_it(client: httpx.AsyncClient,
                                                  secrets: dict[str, str], method: str,
                                                  path: str) -> None:
    answer = await client.request(method, API + path, headers=auth(secrets["admin"]),
                                  json={"data": {}} if path.endswith("events") else None)
    assert answer.status_code == 404, answer.text
    body = answer.json()
    assert body["error"] == "not_found" and "'nope'" in body["message"]
    assert "sources: orders" in body["message"]


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=x", "limit=1&limit=2"])
async def test_a_bad_deliveries_limit_is_422(client: httpx.AsyncClient, secrets: dict[str, str],
                                             query: str) -> None:
    answer = await client.get(f"{API}/sources/orders/deliveries?{query}",
                              headers=auth(secrets["read"]))
    assert answer.status_code == 422 and "limit" in answer.json()["message"], answer.text


async def test_another_tenants_key_sees_no_source(client: httpx.AsyncClient,
                                                  secrets: dict[str, str]) -> None:
    other = secrets["b"]
    listed = await client.get(f"{API}/sources", headers=auth(other))
    assert listed.status_code == 200 and listed.json() == []
    for method, path in (("POST", "start"), ("POST", "test-events"), ("GET", "deliveries")):
        answer = await client.request(method, f"{API}/sources/orders/{path}", headers=auth(other),
                                      json={"data": {"id": "x", "qty": 1}}
                                      if path == "test-events" else None)
        assert answer.status_code == 404 and "sources: none" in answer.json()["message"]
    listed = await client.get(f"{API}/sources", headers=auth(secrets["read"]))
    assert [s["state"] for s in listed.json()] == ["stopped"]
    assert await deliveries(client, secrets) == []


async def test_the_openapi_document_describes_the_source_operations(
        client: httpx.AsyncClient, secrets: dict[str, str]) -> None:
    document = (await client.get(f"{API}/openapi.json", headers=auth(secrets["read"]))).json()
    paths = document["paths"]
    assert set(paths["/api/v1/sources/{name}/test-events"]) == {"post"}
    operation = paths["/api/v1/sources/{name}/test-events"]["post"]
    assert operation["tags"] == ["sources"]
    assert "TestEvent" in json.dumps(operation["requestBody"])
    assert {"/api/v1/sources", "/api/v1/sources/{name}/start", "/api/v1/sources/{name}/stop",
            "/api/v1/sources/{name}/deliveries"} <= set(paths)
