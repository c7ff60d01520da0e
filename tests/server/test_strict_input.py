"""Strict input: a request body with a field the operation does not know, or a value of the
wrong JSON type, is refused with a 422 naming it, and nothing happens (no run, no backfill).
Every request body in the OpenAPI document says so (``additionalProperties: false``)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.server.support import auth

API = "/api/v1"


async def _nothing_ran(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    assert (await client.get(f"{API}/executions", headers=headers)).json()["items"] == []
    assert (await client.get(f"{API}/backfills", headers=headers)).json() == []


@pytest.mark.parametrize(("path", "body", "where"), [
    # "wait" belongs in options: at the top level it was silently ignored (and the call waited)
    ("/pipelines/order/runs", {"input": {"qty": 1}, "wait": False}, "body.wait"),
    ("/pipelines/order/runs", {"input": {"qty": 1}, "options": {"wiat": False}}, "body.options.wiat"),
    ("/pipelines/order/runs", {"input": {"qty": 1}, "options": {"breakpoints": 0}},
     "body.options.breakpoints"),
    ("/pipelines/order/runs", {"input": {"qty": 1}, "options": {"wait": "no"}}, "body.options.wait"),
    # an unknown "items" was ignored, and every past execution was backfilled
    ("/backfills", {"pipeline": "order", "items": [{"qty": 1}]}, "body.items"),
    ("/backfills", {"pipeline": "order", "concurrency": "4"}, "body.concurrency"),
    ("/executions/x/replay", {"mode": "exact", "payload_patch": []}, "body.payload_patch"),
    ("/debug/breakpoints", {"pipeline": "order", "step": "tax", "when": ".qty > 1"}, "body.when"),
    ("/mocks", {"pipeline": "order", "step": "tax", "output": 1, "delay": 5}, "body.delay"),
    ("/dlq/retry", {"ids": ["x"], "forced": True}, "body.forced"),
    ("/keys", {"name": "k", "scope": ["admin"]}, "body.scope"),
])
async def test_unknown_fields_and_wrong_types_are_422_naming_them(
        client: httpx.AsyncClient, secrets: dict[str, str], path: str, body: Any,
        where: str) -> None:
    admin = auth(secrets["admin"])
    refused = await client.post(f"{API}{path}", json=body, headers=admin)
    assert refused.status_code == 422, refused.text
    answer = refused.json()
    assert answer["error"] == "invalid_input"
    assert answer["message"].startswith(f"{where}:"), answer["message"]
    assert [".".join(d["loc"]) for d in answer["details"]] == [where]
    await _nothing_ran(client, admin)


async def test_the_message_says_what_an_unknown_field_is(client: httpx.AsyncClient,
                                                         secrets: dict[str, str]) -> None:
    refused = await client.post(f"{API}/pipelines/order/runs", headers=auth(secrets["run"]),
                                json={"input": {"qty": 1}, "wait": False})
    assert refused.json()["message"].startswith("body.wait: unknown field")


async def test_known_fields_still_work(client: httpx.AsyncClient, secrets: dict[str, str]) -> None:
    admin = auth(secrets["admin"])
    started = await client.post(f"{API}/pipelines/order/runs", headers=admin, json={
        "input": {"qty": 2}, "options": {"wait": True, "mocks": False, "breakpoints": False,
                                         "record": "full"}})
    assert started.status_code == 201 and started.json()["output"] == {"gross": 40.0}


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = document["components"]["schemas"][name]
    return schema


def _objects(document: dict[str, Any], schema: dict[str, Any], seen: set[str]) -> list[tuple[str, dict[str, Any]]]:
    """Every object schema a request body may hold (nested ones too), by name."""
    found: list[tuple[str, dict[str, Any]]] = []
    ref = schema.get("$ref")
    if ref is not None:
        if ref in seen:
            return found
        seen.add(ref)
    resolved = _resolve(document, schema)
    for sub in resolved.get("anyOf", []) + resolved.get("oneOf", []):
        found += _objects(document, sub, seen)
    if resolved.get("type") == "object" and "properties" in resolved:
        found.append((str(ref or resolved.get("title")), resolved))
        for prop in resolved["properties"].values():
            found += _objects(document, prop, seen)
    return found


async def test_every_request_body_of_the_openapi_document_refuses_unknown_fields(
        client: httpx.AsyncClient) -> None:
    document = (await client.get(f"{API}/openapi.json")).json()
    checked = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody")
            if body is None:
                continue
            schema = body["content"]["application/json"]["schema"]
            for name, obj in _objects(document, schema, set()):
                assert obj.get("additionalProperties") is False, (method, path, name)
                checked += 1
    assert checked >= 15  # every body model (RunOptions and ReplayOptions nested or not)


async def test_a_dlq_status_filter_is_one_the_schema_lists(client: httpx.AsyncClient,
                                                           secrets: dict[str, str]) -> None:
    from typing import get_args

    from engine.server.api_ops import DlqStatus
    from engine.service.dlq import STATUSES

    assert get_args(DlqStatus) == STATUSES
    document = (await client.get(f"{API}/openapi.json")).json()
    [status] = [p for p in document["paths"][f"{API}/dlq"]["get"]["parameters"] if p["name"] == "status"]
    assert status["schema"]["anyOf"][0]["enum"] == list(STATUSES)
    refused = await client.get(f"{API}/dlq", params={"status": "done"}, headers=auth(secrets["read"]))
    assert refused.status_code == 422 and refused.json()["message"].startswith("query.status:")


async def test_backfilling_an_unknown_pipeline_is_404(client: httpx.AsyncClient,
                                                      secrets: dict[str, str]) -> None:
    missing = await client.post(f"{API}/backfills", json={"pipeline": "nope"},
                                headers=auth(secrets["run"]))
    assert missing.status_code == 404 and "no pipeline of that name" in missing.json()["message"]
