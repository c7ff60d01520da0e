"""The auth matrix: no key, a wrong, revoked or expired key → 401; a key without the scope →
403; neither answer depends on whether the resource exists. Key management over HTTP."""

from __future__ import annotations

import contextvars
import time
from typing import Any

import httpx
import pytest

from engine.server.auth import authenticate, current_key, current_tenant
from engine.server.keys import KeyStore
from engine.service.errors import Forbidden, Unauthorized
from engine.service.local import LocalService
from tests.server.support import auth

# (method, path, json body, the scope it needs): one operation of every kind and group.
OPERATIONS: list[tuple[str, str, Any, str]] = [
    ("GET", "/api/v1/version", None, "read"),
    ("GET", "/api/v1/executions", None, "read"),
    ("GET", "/api/v1/executions/EXISTING", None, "read"),
    ("GET", "/api/v1/executions/EXISTING/events", None, "read"),
    ("GET", "/api/v1/dlq/stats", None, "read"),
    ("POST", "/api/v1/pipelines/order/runs", {"input": {"qty": 1}}, "run"),
    ("POST", "/api/v1/executions/EXISTING/replay", {}, "run"),
    ("POST", "/greet/x", None, "run"),  # an http trigger
    ("POST", "/api/v1/debug/breakpoints", {"pipeline": "order", "step": "tax"}, "debug"),
    ("POST", "/api/v1/mocks", {"pipeline": "order", "step": "tax"}, "debug"),
    ("GET", "/api/v1/keys", None, "admin"),
    ("POST", "/api/v1/schemas", {"type": "t", "schema": {}}, "admin"),
    ("POST", "/api/v1/dlq/purge", {"older_than": 0}, "admin"),
]
WEAKER = {"read": "run", "run": "read", "debug": "run", "admin": "debug"}


@pytest.fixture
async def existing(service: LocalService) -> str:
    return (await service.run("order", {"qty": 1})).execution_id


def _path(path: str, existing: str, missing: bool) -> str:
    return path.replace("EXISTING", "0" * 32 if missing else existing)


async def _call(client: httpx.AsyncClient, method: str, path: str, body: Any,
                headers: dict[str, str]) -> httpx.Response:
    return await client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "body", "scope"), OPERATIONS)
async def test_without_a_valid_key_every_operation_is_401_alike(
        client: httpx.AsyncClient, keys: KeyStore, secrets: dict[str, str], existing: str,
        method: str, path: str, body: Any, scope: str) -> None:
    revoked_key, revoked = keys.create("gone", scopes=["admin"])
    keys.revoke(revoked_key.id)
    _, expiring = keys.create("brief", scopes=["admin"], expires=time.time() + 0.2)
    time.sleep(0.25)
    attempts = {
        "no key": {},
        "wrong key": auth(secrets["admin"][:-2] + "zz"),
        "not a key": {"Authorization": "Bearer nonsense"},
        "basic auth": {"Authorization": "Basic YWRtaW46YWRtaW4="},
        "revoked": auth(revoked),
        "expired": {"Authorization": f"Bearer {expiring}"},
    }
    bodies = set()
    for what, headers in attempts.items():
        for missing in (False, True):
            response = await _call(client, method, _path(path, existing, missing), body, headers)
            assert response.status_code == 401, (what, missing, response.text)
            assert response.headers["www-authenticate"].startswith("Bearer")
            bodies.add(response.text)
    assert len(bodies) == 1  # the same answer whatever the key, whether or not it exists
    assert revoked not in bodies.pop()


@pytest.mark.parametrize(("method", "path", "body", "scope"), OPERATIONS)
async def test_a_key_without_the_scope_is_403_and_the_right_one_passes(
        client: httpx.AsyncClient, secrets: dict[str, str], existing: str,
        method: str, path: str, body: Any, scope: str) -> None:
    weaker = secrets[WEAKER[scope]]
    refused = [await _call(client, method, _path(path, existing, missing), body, auth(weaker))
               for missing in (False, True)]
    assert [r.status_code for r in refused] == [403, 403]
    assert refused[0].json() == refused[1].json()
    assert refused[0].json()["error"] == "forbidden" and scope in refused[0].json()["message"]
    for secret in (secrets[scope], secrets["admin"]):  # admin implies every scope
        response = await _call(client, method, _path(path, existing, False), body, auth(secret))
        assert response.status_code not in (401, 403), response.text


async def test_bearer_and_x_api_key_both_work(client: httpx.AsyncClient,
                                              secrets: dict[str, str]) -> None:
    for headers in (auth(secrets["read"]), {"Authorization": f"Bearer {secrets['read']}"},
                    {"authorization": f"bearer {secrets['read']}"}):
        assert (await client.get("/api/v1/pipelines", headers=headers)).status_code == 200


async def test_health_needs_no_key_and_says_little_without_one(
        client: httpx.AsyncClient, secrets: dict[str, str]) -> None:
    anonymous = await client.get("/api/v1/health")
    assert anonymous.status_code == 200 and anonymous.json() == {"ok": True}
    known = await client.get("/api/v1/health", headers=auth(secrets["read"]))
    assert known.json()["ok"] is True and known.json()["pipelines"] > 0


async def test_a_server_without_keys_refuses_everything(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/health")).status_code == 200
    for method, path, body, _scope in OPERATIONS:
        assert (await _call(client, method, path.replace("EXISTING", "x"), body, {})).status_code == 401
    assert (await client.get("/docs")).status_code == 200  # the docs are public, the data is not


def test_the_key_and_its_tenant_are_recorded_for_the_request(keys: KeyStore) -> None:
    _, secret = keys.create("acme reader", "acme", ["read"])

    def call() -> tuple[Any, Any]:
        key = authenticate(keys, secret, "read")
        return key.name, (current_key.get().name, current_tenant.get())  # type: ignore[union-attr]

    name, (seen, tenant) = contextvars.copy_context().run(call)
    assert (name, seen, tenant) == ("acme reader", "acme reader", "acme")
    assert current_tenant.get() == "default"  # nothing leaks out of the request's context
    with pytest.raises(Forbidden):
        authenticate(keys, secret, "run")
    with pytest.raises(Unauthorized):
        authenticate(keys, None, "read")


async def test_endpoints_see_the_callers_tenant(service: LocalService, keys: KeyStore) -> None:
    from fastapi.routing import APIRoute

    from engine.server import create_app
    from engine.server.deps import needs

    async def whoami() -> dict[str, Any]:
        return {"tenant": current_tenant.get()}

    app = create_app(service, keys=keys)
    app.router.routes.insert(0, APIRoute("/whoami", whoami, dependencies=needs("read")))
    answers = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://s") as c:
        for tenant in ("acme", "globex"):
            _, secret = keys.create(tenant, tenant, ["read"])
            answers.append((await c.get("/whoami", headers=auth(secret))).json()["tenant"])
    assert answers == ["acme", "globex"]


async def test_admin_manages_the_keys_of_its_own_tenant(
        client: httpx.AsyncClient, keys: KeyStore, secrets: dict[str, str]) -> None:
    admin = auth(secrets["admin"])
    created = await client.post("/api/v1/keys", headers=admin,
                                json={"name": "deployer", "scopes": ["run"], "expires_in": 3600})
    assert created.status_code == 201, created.text
    new = created.json()
    assert new["key"]["tenant"] == "default" and new["key"]["scopes"] == ["run"]
    assert new["key"]["expires"] > time.time() + 3500
    secret = new["secret"]
    assert (await client.post("/api/v1/pipelines/order/runs", headers=auth(secret),
                              json={"input": {"qty": 2}})).status_code == 201

    listed = (await client.get("/api/v1/keys", headers=admin)).json()
    assert new["key"]["id"] in [k["id"] for k in listed]
    assert secret not in str(listed) and all("secret" not in k for k in listed)

    other = await client.post("/api/v1/keys", headers=admin,
                              json={"name": "x", "tenant": "other", "scopes": ["read"]})
    assert other.status_code == 403
    foreign, _ = keys.create("theirs", "other", ["admin"])
    assert foreign.id not in [k["id"] for k in listed]
    assert (await client.delete(f"/api/v1/keys/{foreign.id}", headers=admin)).status_code == 404

    assert (await client.delete(f"/api/v1/keys/{new['key']['id']}", headers=admin)).status_code == 204
    assert (await client.get("/api/v1/version", headers=auth(secret))).status_code == 401
    bad = await client.post("/api/v1/keys", headers=admin, json={"name": "x", "scopes": ["root"]})
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_input"
