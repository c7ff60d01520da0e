"""Every endpoint group of /api/v1 in-process (the app over httpx's ASGI transport), with
an admin key unless a test says otherwise; error bodies and statuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.service.local import LocalService
from tests.server.support import auth
from tests.waiting import wait_for_condition

API = "/api/v1"


@pytest.fixture
def admin(secrets: dict[str, str]) -> dict[str, str]:
    return auth(secrets["admin"])


async def run(client: httpx.AsyncClient, headers: dict[str, str], pipeline: str,
              payload: Any, **options: Any) -> dict[str, Any]:
    response = await client.post(f"{API}/pipelines/{pipeline}/runs", headers=headers,
                                  json={"input": payload, "options": options})
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def wait_for(check: Any) -> Any:
    return await wait_for_condition(check, "the server's state", interval=0.02)


# ---------------------------------------------------------------- info and definitions


async def test_info_and_definitions(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    version = (await client.get(f"{API}/version", headers=admin)).json()
    assert version["api_version"] == "1" and version["engine_version"]
    pipelines = (await client.get(f"{API}/pipelines", headers=admin)).json()
    names = [p["name"] for p in pipelines]
    assert {"greet", "order", "slow"} <= set(names)
    greet = next(p for p in pipelines if p["name"] == "greet")
    assert greet["trigger"] == {"type": "http", "config": {"method": "POST", "path": "/greet/{name}"}}

    definition = (await client.get(f"{API}/pipelines/order/definition", headers=admin)).json()
    assert "pipelines:" in definition["text"] and "order" in definition["pipelines"]
    missing = await client.get(f"{API}/pipelines/nope/definition", headers=admin)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"

    diagnostics = (await client.post(f"{API}/definitions/validate", headers=admin, json={
        "yaml": "pipelines:\n  p:\n    steps:\n      - {name: a, type: step.nope}\n",
        "file": "x.yaml"})).json()
    assert diagnostics and diagnostics[0]["file"] == "x.yaml" and diagnostics[0]["line"] == 4
    assert diagnostics[0]["severity"] == "error" and "step.nope" in diagnostics[0]["message"]

    types = (await client.get(f"{API}/step-types", headers=admin)).json()
    validate = next(t for t in types if t["name"] == "step.validate")
    assert validate["schema"]["type"] == "object" and validate["category"]
    plugins = (await client.get(f"{API}/plugins", headers=admin)).json()
    assert any(p["name"] == "builtin" for p in plugins)


async def test_deploy_writes_inside_the_deploy_dir_only(
        client: httpx.AsyncClient, admin: dict[str, str], keys: Any, tmp_path: Path) -> None:
    deployer = auth(keys.create("deployer", "default", ["deploy"])[1])
    text = "pipelines:\n  fresh:\n    steps:\n      - {name: a, type: step.set, config: {values: {x: 1}}}\n"
    deployed = await client.put(f"{API}/definitions", headers=deployer,
                                json={"yaml": text, "file": "team/fresh.yaml"})
    assert deployed.status_code == 200, deployed.text
    assert (tmp_path / "deployed" / "default" / "team" / "fresh.yaml").read_text() == text
    assert (await run(client, admin, "fresh", {}))["status"] == "completed"
    for bad in ("../escape.yaml", "/etc/x.yaml", "notes.txt", "../other/x.yaml"):
        refused = await client.put(f"{API}/definitions", headers=deployer,
                                   json={"yaml": text, "file": bad})
        assert refused.status_code == 422, bad
    assert not (tmp_path / "escape.yaml").exists()
    invalid = await client.put(f"{API}/definitions", headers=deployer,
                               json={"yaml": "pipelines: [", "file": "broken.yaml"})
    assert invalid.status_code == 422 and invalid.json()["details"][0]["line"] >= 1
    assert not (tmp_path / "deployed" / "default" / "broken.yaml").exists()


async def test_deploy_is_refused_without_a_deploy_dir(service: LocalService, keys: Any,
                                                      secrets: dict[str, str]) -> None:
    from engine.server import create_app

    app = create_app(service, keys=keys)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://s") as c:
        refused = await c.put(f"{API}/definitions",
                              headers=auth(keys.create("deployer", "default", ["deploy"])[1]),
                              json={"yaml": "pipelines: {}", "file": "a.yaml"})
    assert refused.status_code == 403 and "--deploy-dir" in refused.json()["message"]


# ---------------------------------------------------------------- runs and executions


async def test_runs_executions_timeline_events(client: httpx.AsyncClient,
                                               admin: dict[str, str]) -> None:
    first = await run(client, admin, "order", {"qty": 2})
    assert first["status"] == "completed" and first["output"] == {"gross": 40}
    second = await run(client, admin, "order", {"qty": 3})
    await run(client, admin, "slow", {})

    page = (await client.get(f"{API}/executions", headers=admin,
                             params={"pipeline": "order", "limit": 1})).json()
    assert [e["id"] for e in page["items"]] == [second["execution_id"]]
    rest = (await client.get(f"{API}/executions", headers=admin,
                             params={"pipeline": "order", "cursor": page["next_cursor"]})).json()
    assert [e["id"] for e in rest["items"]] == [first["execution_id"]]

    eid = first["execution_id"]
    summary = (await client.get(f"{API}/executions/{eid}", headers=admin)).json()
    assert summary["pipeline"] == "order" and summary["trigger_payload"] == {"qty": 2}
    timeline = (await client.get(f"{API}/executions/{eid}/timeline", headers=admin)).json()
    assert [s["step"] for s in timeline["steps"]] == ["price", "tax", "out"]
    events = (await client.get(f"{API}/executions/{eid}/events", headers=admin)).json()
    assert events[0]["type"] == "execution.started" and events[0]["seq"] == 1
    later = (await client.get(f"{API}/executions/{eid}/events", headers=admin,
                              params={"after_seq": 3, "limit": 2})).json()
    assert [e["seq"] for e in later] == [4, 5]
    outputs = (await client.get(f"{API}/executions/{eid}/events", headers=admin,
                                params=[("type", "step.completed"), ("type", "execution.completed")])).json()
    assert {e["type"] for e in outputs} == {"step.completed", "execution.completed"}
    assert all("output" in e["data"] for e in outputs)  # a step's output rides on its end

    cancelled = await client.post(f"{API}/executions/{eid}/cancel", headers=admin)
    assert cancelled.json() == {"cancelled": False}
    assert (await client.post(f"{API}/executions/nope/cancel", headers=admin)).status_code == 404


async def test_cancel_a_running_execution(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    started = await run(client, admin, "slow", {}, wait=False)
    assert started["status"] == "running"
    eid = started["execution_id"]
    assert (await client.post(f"{API}/executions/{eid}/cancel", headers=admin)).json() == {"cancelled": True}

    async def ended() -> bool:
        status = (await client.get(f"{API}/executions/{eid}", headers=admin)).json()["status"]
        return status == "cancelled"

    await wait_for(ended)


async def test_replay_plan_and_diff(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    original = (await run(client, admin, "order", {"qty": 2}))["execution_id"]
    plan = await client.post(f"{API}/executions/{original}/replay/plan", headers=admin,
                             json={"mode": "from_step", "from_step": "tax"})
    assert plan.status_code == 200, plan.text
    assert [(s["step"], s["action"]) for s in plan.json()["steps"]] == [
        ("price", "reuse"), ("tax", "run"), ("out", "run")]
    replayed = await client.post(f"{API}/executions/{original}/replay", headers=admin,
                                 json={"mode": "modified", "payload": {"qty": 5}})
    assert replayed.status_code == 201 and replayed.json()["output"] == {"gross": 100}
    copy = replayed.json()["execution_id"]
    assert (await client.get(f"{API}/executions/{copy}", headers=admin)).json()["replay_of"] == original
    exact = await client.post(f"{API}/executions/{original}/replay", headers=admin)  # no body
    assert exact.status_code == 201 and exact.json()["output"] == {"gross": 40}

    diff = (await client.get(f"{API}/executions/diff", headers=admin,
                             params={"a": original, "b": copy})).json()
    assert diff["a"] == original and diff["b"] == copy and diff["first_divergence"] is not None
    missing = await client.get(f"{API}/executions/diff", headers=admin, params={"a": original, "b": "x"})
    assert missing.status_code == 404
    unknown = await client.post(f"{API}/executions/nope/replay", headers=admin, json={})
    assert unknown.status_code == 404


# ---------------------------------------------------------------- debugger and mocks


async def test_breakpoints_pause_and_resume(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    created = await client.post(f"{API}/debug/breakpoints", headers=admin,
                                json={"pipeline": "order", "step": "tax"})
    assert created.status_code == 201
    bp = created.json()
    assert (await client.get(f"{API}/debug/breakpoints", headers=admin)).json()[0]["id"] == bp["id"]

    eid = (await run(client, admin, "order", {"qty": 1}, wait=False))["execution_id"]

    async def paused() -> list[dict[str, Any]]:
        items = (await client.get(f"{API}/debug/paused", headers=admin)).json()
        return [p for p in items if p["execution_id"] == eid]

    pause = (await wait_for(paused))[0]
    assert pause["step"] == "tax" and pause["context"]["current"]["total"] == 10
    resumed = await client.post(f"{API}/debug/paused/{eid}/resume", headers=admin, json={
        "action": "continue", "patch": [{"op": "replace", "path": "/current/total", "value": 50}]})
    assert resumed.status_code == 204, resumed.text

    async def done() -> Any:
        summary = (await client.get(f"{API}/executions/{eid}", headers=admin)).json()
        return summary if summary["status"] == "completed" else None

    assert (await wait_for(done))["output"] == {"gross": 100}
    again = await client.post(f"{API}/debug/paused/{eid}/resume", headers=admin, json={})
    assert again.status_code == 409 and again.json()["error"] == "conflict"

    disabled = await client.patch(f"{API}/debug/breakpoints/{bp['id']}", headers=admin,
                                  json={"enabled": False})
    assert disabled.json()["enabled"] is False
    assert (await client.delete(f"{API}/debug/breakpoints/{bp['id']}", headers=admin)).status_code == 204
    assert (await client.delete(f"{API}/debug/breakpoints/{bp['id']}", headers=admin)).status_code == 404
    bad = await client.post(f"{API}/debug/breakpoints", headers=admin,
                            json={"pipeline": "order", "step": "nope"})
    assert bad.status_code == 422


async def test_pause_new_runs(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    assert (await client.put(f"{API}/debug/pause-new-runs/order", headers=admin,
                             json={"enabled": True})).status_code == 204
    eid = (await run(client, admin, "order", {"qty": 1}, wait=False))["execution_id"]

    async def paused_first() -> bool:
        items = (await client.get(f"{API}/debug/paused", headers=admin)).json()
        return any(p["execution_id"] == eid and p["reason"] == "pause" for p in items)

    await wait_for(paused_first)
    await client.put(f"{API}/debug/pause-new-runs/order", headers=admin, json={"enabled": False})
    await client.post(f"{API}/debug/paused/{eid}/resume", headers=admin, json={"action": "abort"})
    assert (await client.put(f"{API}/debug/pause-new-runs/nope", headers=admin,
                             json={"enabled": True})).status_code == 404


async def test_mocks(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    made = await client.post(f"{API}/mocks", headers=admin,
                             json={"pipeline": "order", "step": "tax", "output": {"gross": 7}})
    assert made.status_code == 201
    assert (await run(client, admin, "order", {"qty": 1}))["output"] == {"gross": 7}
    listed = (await client.get(f"{API}/mocks", headers=admin, params={"pipeline": "order"})).json()
    assert [m["step"] for m in listed] == ["tax"]
    assert (await client.delete(f"{API}/mocks/{made.json()['id']}", headers=admin)).status_code == 204
    real = await run(client, admin, "order", {"qty": 1})
    assert real["output"] == {"gross": 20}

    captured = await client.post(f"{API}/mocks/from-execution", headers=admin,
                                 json={"execution_id": real["execution_id"], "step": "price"})
    assert captured.status_code == 201 and captured.json()["output"] == {"total": 10}
    assert captured.json()["mode"] == "recorded"
    cleared = await client.delete(f"{API}/mocks", headers=admin)
    assert cleared.json() == {"removed": 1}
    bad = await client.post(f"{API}/mocks", headers=admin,
                            json={"pipeline": "order", "step": "tax", "mode": "error"})
    assert bad.status_code == 422


# ---------------------------------------------------------------- dlq, backfills, schemas


async def test_dead_letter_queue(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    failed = [await run(client, admin, "flaky", {"fail": True}) for _ in range(3)]
    assert {f["status"] for f in failed} == {"failed"}
    entries = (await client.get(f"{API}/dlq", headers=admin, params={"pipeline": "flaky"})).json()
    assert len(entries) == 3 and {e["status"] for e in entries} == {"pending"}
    assert (await client.get(f"{API}/dlq/stats", headers=admin)).json()["pending"] == 3
    one = entries[0]["id"]
    assert (await client.get(f"{API}/dlq/{one}", headers=admin)).json()["pipeline"] == "flaky"

    retried = await client.post(f"{API}/dlq/retry", headers=admin, json={
        "ids": [one], "patch": [{"op": "replace", "path": "/fail", "value": False}]})
    assert retried.status_code == 200, retried.text
    assert retried.json()[0]["status"] == "completed"
    assert (await client.get(f"{API}/dlq/{one}", headers=admin)).json()["status"] == "resolved"
    assert (await client.post(f"{API}/dlq/{entries[1]['id']}/resolve", headers=admin)).json()["status"] == "resolved"
    assert (await client.post(f"{API}/dlq/{entries[2]['id']}/discard", headers=admin)).json()["status"] == "discarded"
    purged = await client.post(f"{API}/dlq/purge", headers=admin, json={"older_than": 0})
    assert purged.json() == {"purged": 3}
    assert (await client.get(f"{API}/dlq/{one}", headers=admin)).status_code == 404
    negative = await client.post(f"{API}/dlq/purge", headers=admin, json={"older_than": -1})
    assert negative.status_code == 422


async def test_dlq_retry_can_be_forced_past_max_retries(client: httpx.AsyncClient,
                                                        admin: dict[str, str]) -> None:
    await run(client, admin, "flaky", {"fail": True})
    entry = (await client.get(f"{API}/dlq", headers=admin)).json()[0]
    for _ in range(entry["max_retries"]):
        result = (await client.post(f"{API}/dlq/retry", headers=admin, json={"ids": [entry["id"]]})).json()
        assert result[0]["status"] == "failed"
    skipped = (await client.post(f"{API}/dlq/retry", headers=admin, json={"ids": [entry["id"]]})).json()
    assert skipped[0]["status"] == "skipped"
    forced = (await client.post(f"{API}/dlq/retry", headers=admin,
                                json={"ids": [entry["id"]], "force": True})).json()
    assert forced[0]["status"] == "failed" and forced[0]["execution_id"]


async def test_backfills(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    started = await client.post(f"{API}/backfills", headers=admin, json={
        "pipeline": "order", "jsonl": '{"qty": 1}\n{"qty": 2}\n', "concurrency": 2})
    assert started.status_code == 201, started.text
    bid = started.json()["id"]

    async def finished() -> Any:
        backfill = (await client.get(f"{API}/backfills/{bid}", headers=admin)).json()
        return backfill if backfill["status"] == "completed" else None

    done = await wait_for(finished)
    assert (done["total"], done["succeeded"]) == (2, 2)
    assert bid in [b["id"] for b in (await client.get(f"{API}/backfills", headers=admin)).json()]
    slow = (await client.post(f"{API}/backfills", headers=admin, json={
        "pipeline": "slow", "jsonl": "{}\n" * 20, "concurrency": 1})).json()
    cancelled = await client.post(f"{API}/backfills/{slow['id']}/cancel", headers=admin)
    assert cancelled.json()["status"] == "cancelled"
    unknown = await client.post(f"{API}/backfills", headers=admin, json={"pipeline": "nope"})
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"


async def test_event_schemas(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    schema = {"type": "object", "required": ["id"]}
    created = await client.post(f"{API}/schemas", headers=admin,
                                json={"type": "order.created", "schema": schema})
    assert created.status_code == 201 and created.json()["version"] == 1
    listed = (await client.get(f"{API}/schemas", headers=admin)).json()
    assert {"type": "order.created", "version": 1, "schema": schema} in listed
    check = await client.post(f"{API}/schemas/validate", headers=admin,
                              json={"type": "order.created", "data": {}})
    assert check.json()["errors"] and "id" in check.json()["errors"][0]
    ok = await client.post(f"{API}/schemas/validate", headers=admin,
                           json={"type": "order.created", "data": {"id": 1}})
    assert ok.json() == {"errors": []}
    bad = await client.post(f"{API}/schemas", headers=admin,
                            json={"type": "x", "schema": {"type": "nonsense"}})
    assert bad.status_code == 422


# ---------------------------------------------------------------- errors and the document


@pytest.mark.parametrize(("method", "path", "kwargs"), [
    ("POST", "/pipelines/order/runs", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
    ("POST", "/pipelines/order/runs", {"json": {"options": {"wait": "sometimes"}}}),
    ("POST", "/pipelines/order/runs", {"json": {"options": {"record": "everything"}}}),
    ("GET", "/executions", {"params": {"limit": "many"}}),
    ("GET", "/executions", {"params": {"since": "nan"}}),
    ("GET", "/executions/x/events", {"params": {"after_seq": -1}}),
    ("POST", "/debug/paused/x/resume", {"json": {"action": "jump"}}),
    ("POST", "/dlq/retry", {"json": {"ids": []}}),
    ("POST", "/keys", {"json": {"name": "x", "expires_in": 0}}),
    ("POST", "/definitions/validate", {"json": ["not", "an", "object"]}),
])
async def test_bad_input_is_422_with_a_body(client: httpx.AsyncClient, admin: dict[str, str],
                                            method: str, path: str, kwargs: dict[str, Any]) -> None:
    headers = {**admin, **kwargs.pop("headers", {})}
    response = await client.request(method, API + path, headers=headers, **kwargs)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_input" and body["message"] and body["details"]
    assert "Traceback" not in response.text


async def test_a_malformed_cursor_is_invalid_input(client: httpx.AsyncClient,
                                                   admin: dict[str, str]) -> None:
    for cursor in ("bm9wZQ", "\u00dc\x15"):  # base64 of "nope"; not base64 at all
        response = await client.get(f"{API}/executions", headers=admin, params={"cursor": cursor})
        assert response.status_code == 422 and "cursor" in response.json()["message"]


async def test_unknown_api_paths_are_404_json(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    for method, path in (("GET", f"{API}/nothing"), ("DELETE", f"{API}/nothing/else")):
        response = await client.request(method, path, headers=admin)
        assert response.status_code == 404 and response.json()["error"] == "not_found"
    wrong_method = await client.delete(f"{API}/executions", headers=admin)  # test_gate.py: 405
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "GET"


async def test_openapi_document_lists_every_route(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{API}/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.") and document["info"]["title"] == "Workflow Studio"
    expected = {
        "/health": {"get"}, "/version": {"get"}, "/pipelines": {"get"},
        "/pipelines/{name}/definition": {"get"}, "/definitions/validate": {"post"},
        "/definitions": {"put"}, "/step-types": {"get"}, "/plugins": {"get"},
        "/connector-types": {"get"}, "/sources": {"get"}, "/sources/{name}/start": {"post"},
        "/sources/{name}/stop": {"post"}, "/sources/{name}/test-events": {"post"},
        "/sources/{name}/deliveries": {"get"},
        "/pipelines/{name}/runs": {"post"}, "/executions": {"get"},
        "/executions/diff": {"get"}, "/executions/{execution_id}": {"get"},
        "/executions/{execution_id}/timeline": {"get"}, "/executions/{execution_id}/events": {"get"},
        "/executions/{execution_id}/stream": {"get"}, "/stream": {"get"},
        "/executions/{execution_id}/cancel": {"post"}, "/executions/{execution_id}/replay": {"post"},
        "/executions/{execution_id}/replay/plan": {"post"},
        "/debug/breakpoints": {"get", "post"}, "/debug/breakpoints/{breakpoint_id}": {"patch", "delete"},
        "/debug/pause-new-runs/{pipeline}": {"put"}, "/debug/paused": {"get"},
        "/debug/paused/{execution_id}/resume": {"post"},
        "/mocks": {"get", "post", "delete"}, "/mocks/from-execution": {"post"}, "/mocks/{mock_id}": {"delete"},
        "/dlq": {"get"}, "/dlq/stats": {"get"}, "/dlq/retry": {"post"}, "/dlq/purge": {"post"},
        "/dlq/{entry_id}": {"get"}, "/dlq/{entry_id}/resolve": {"post"}, "/dlq/{entry_id}/discard": {"post"},
        "/backfills": {"get", "post"}, "/backfills/{backfill_id}": {"get"},
        "/backfills/{backfill_id}/cancel": {"post"}, "/schemas": {"get", "post"},
        "/schemas/validate": {"post"}, "/keys": {"get", "post"}, "/keys/{key_id}": {"delete"},
    }
    paths = {p.removeprefix(API): {m for m in ops if m != "parameters"}
             for p, ops in document["paths"].items()}
    assert paths == expected
    schemes = document["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"apiKey", "http"}
    run_op = document["paths"][f"{API}/pipelines/{{name}}/runs"]["post"]
    assert run_op["security"] and {"401", "403", "404", "422"} <= set(run_op["responses"])
    assert "security" not in document["paths"][f"{API}/health"]["get"]
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
