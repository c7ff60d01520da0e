"""Limits before work (engine/server/gate.py): the key is checked from the headers before a
byte of the body is read, bodies are capped before they are parsed (announced sizes at once,
chunked bodies as they arrive), a run's input has its own cap, and a method a path does not
declare is 405 with ``Allow``. Every refusal is the project's JSON error body.

The "before the body" tests talk raw HTTP to a real server: they announce (or start) a body
and send only part of it. A server that read the body before answering would wait for the
rest; the gate answers at once.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.server import KeyStore, create_app
from engine.service.local import LocalService
from tests.server.support import auth

API = "/api/v1"
BIG = 50 * 1024 * 1024


def _raw_exchange(url: str, head: str, body_part: bytes, timeout: float = 20.0) -> tuple[int, dict[str, str], Any]:
    """Send a request head and part of its body; read the answer that comes before the rest.

    The socket's timeout is generous: a server that waits for the announced body never
    answers, and the test fails on the timeout instead of passing by chance.
    """
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1") + body_part)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head_bytes, _, rest = data.partition(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
    return status, headers, json.loads(rest[:length]) if length else None


def _head(method: str, path: str, headers: dict[str, str]) -> str:
    lines = [f"{method} {path} HTTP/1.1", "Host: server", *(f"{k}: {v}" for k, v in headers.items())]
    return "\r\n".join(lines) + "\r\n\r\n"


@pytest.fixture
def small(live_factory: Any, tmp_path: Path) -> tuple[Any, dict[str, str]]:
    """A real server with small caps: 64 KiB bodies, 4 KiB run inputs."""
    server, secrets = live_factory(f"sqlite:///{tmp_path / 'gate.db'}", max_body=64 * 1024,
                                   max_input=4096)
    return server, secrets


# ---------------------------------------------------------------- the key before the body


@pytest.mark.parametrize("key", [None, "wfs_nope_nope"])
def test_no_valid_key_is_401_before_the_body_is_read(small: Any, key: str | None) -> None:
    server, _secrets = small
    headers = {"Content-Type": "application/json", "Content-Length": str(BIG)}
    if key:
        headers["X-API-Key"] = key
    status, answer, body = _raw_exchange(server.url, _head("POST", f"{API}/pipelines/order/runs",
                                                           headers), b'{"input": ')
    assert status == 401, body
    assert body["error"] == "unauthorized" and "API key" in body["message"]
    assert answer["www-authenticate"].startswith("Bearer")


def test_a_key_without_the_scope_is_403_before_the_body_is_read(small: Any) -> None:
    server, secrets = small
    headers = {"Content-Type": "application/json", "Content-Length": str(BIG), **auth(secrets["read"])}
    status, _answer, body = _raw_exchange(server.url, _head("POST", f"{API}/pipelines/order/runs",
                                                            headers), b'{"input": ')
    assert status == 403 and body["error"] == "forbidden" and "'run'" in body["message"]


# ---------------------------------------------------------------- sizes


def test_an_announced_body_over_the_cap_is_413_at_once(small: Any) -> None:
    server, secrets = small
    headers = {"Content-Type": "application/json", "Content-Length": str(BIG), **auth(secrets["admin"])}
    status, _answer, body = _raw_exchange(server.url, _head("POST", f"{API}/definitions/validate",
                                                            headers), b'{"yaml": "')
    assert status == 413, body
    assert body["error"] == "too_large" and "65536 bytes" in body["message"]
    assert body["details"] == {"limit": 65536}


def test_a_chunked_body_is_refused_when_it_passes_the_cap(small: Any) -> None:
    """Chunks past the cap, and no final chunk: the answer comes without the end of the body."""
    server, secrets = small
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked",
               **auth(secrets["admin"])}
    chunk = b"x" * 16384
    part = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(6))  # 96 KiB > 64 KiB
    status, _answer, body = _raw_exchange(server.url, _head("POST", f"{API}/definitions/validate",
                                                            headers), part)
    assert status == 413 and body["error"] == "too_large", body


async def test_bodies_under_the_cap_are_served_and_the_connection_goes_on(small: Any) -> None:
    """After a 413 the same client (keep-alive) is served normally."""
    server, secrets = small
    async with httpx.AsyncClient(base_url=server.url, timeout=30, headers=auth(secrets["admin"])) as c:
        too_big = await c.post(f"{API}/definitions/validate",
                               json={"yaml": "#" * 70_000, "file": "a.yaml"})
        assert too_big.status_code == 413 and too_big.json()["error"] == "too_large"
        fine = await c.post(f"{API}/definitions/validate", json={"yaml": "#" * 60_000, "file": "a.yaml"})
        assert fine.status_code == 200, fine.text
        assert (await c.get(f"{API}/health")).json()["ok"] is True


async def test_a_runs_input_has_its_own_cap(small: Any) -> None:
    server, secrets = small
    async with httpx.AsyncClient(base_url=server.url, timeout=30, headers=auth(secrets["admin"])) as c:
        big_input = {"qty": 1, "note": "n" * 5000}  # over max_input (4 KiB), under max_body
        refused = await c.post(f"{API}/pipelines/order/runs", json={"input": big_input})
        assert refused.status_code == 413, refused.text
        assert refused.json()["error"] == "too_large" and "max_input" in refused.json()["message"]
        listed = await c.get(f"{API}/executions", params={"pipeline": "order"})
        assert listed.json()["items"] == []  # nothing ran, nothing was stored
        done = await c.post(f"{API}/pipelines/order/runs", json={"input": {"qty": 1}})
        assert done.status_code == 201 and done.json()["status"] == "completed"
        replay = await c.post(f"{API}/executions/{done.json()['execution_id']}/replay",
                              json={"mode": "modified", "payload": big_input})
        assert replay.status_code == 413, replay.text
        # The same bytes elsewhere are only a body: max_body applies.
        mock = await c.post(f"{API}/mocks", json={"pipeline": "order", "step": "tax",
                                                  "output": big_input})
        assert mock.status_code == 201, mock.text


async def test_the_defaults_cap_bodies_at_10_mib_and_run_inputs_at_1_mib(
        service: LocalService, keys: KeyStore, secrets: dict[str, str]) -> None:
    app = create_app(service, keys=keys)
    assert (app.state.max_body, app.state.max_input) == (10 * 1024 * 1024, 1024 * 1024)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://server",
                                 headers=auth(secrets["admin"])) as c:
        over = await c.post(f"{API}/pipelines/order/runs",
                            json={"input": {"qty": 1, "pad": "p" * (1024 * 1024)}})
        assert over.status_code == 413 and "1048576 bytes" in over.json()["message"]
        under = await c.post(f"{API}/pipelines/order/runs",
                             json={"input": {"qty": 1, "pad": "p" * 1000_000}})
        assert under.status_code == 201, under.text


async def test_the_gate_reads_no_body_for_a_refused_request(
        service: LocalService, keys: KeyStore) -> None:
    """At the ASGI level: the body is not even asked for before the 401."""
    app = create_app(service, keys=keys)
    asked: list[str] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        asked.append("body")
        return {"type": "http.request", "body": b'{"input": 1}', "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": f"{API}/pipelines/order/runs", "raw_path": b"",
             "root_path": "", "query_string": b"", "server": ("server", 80),
             "headers": [(b"content-type", b"application/json"), (b"content-length", b"12")]}
    await app(scope, receive, send)
    assert sent[0]["status"] == 401 and asked == []


# ---------------------------------------------------------------- methods


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("PUT", "/health", "GET"),
    ("DELETE", "/debug/breakpoints", "GET, POST"),
    ("PUT", "/mocks", "DELETE, GET, POST"),
    ("GET", "/schemas/validate", "POST"),
    ("PUT", "/dlq/stats", "GET"),  # also GET /dlq/{entry_id}
    ("POST", "/executions/abc", "GET"),
    ("OPTIONS", "/version", "GET"),
    ("PATCH", "/openapi.json", "GET, HEAD"),
    # a concrete path is its own path item, before any template it also fits (as in OpenAPI)
    ("GET", "/dlq/purge", "POST"),
    ("OPTIONS", "/mocks/from-execution", "POST"),
])
async def test_an_undeclared_method_is_405_with_allow(
        client: httpx.AsyncClient, secrets: dict[str, str], method: str, path: str,
        allowed: str) -> None:
    for headers in (auth(secrets["admin"]), {}):  # the API's paths are public (openapi.json)
        answer = await client.request(method, f"{API}{path}", headers=headers)
        assert answer.status_code == 405, (method, path, answer.text)
        assert answer.headers["allow"] == allowed
        assert answer.json()["error"] == "method_not_allowed"
        assert allowed in answer.json()["message"]


async def test_an_unknown_api_path_is_still_401_then_404(client: httpx.AsyncClient,
                                                         secrets: dict[str, str]) -> None:
    refused = [await client.put(f"{API}/nowhere", headers=headers)
               for headers in ({}, auth("wfs_nope_nope"))]
    known = await client.get(f"{API}/version")
    assert [r.status_code for r in refused] == [401, 401]
    assert refused[0].json() == refused[1].json() == known.json()  # says nothing about paths
    for scope in ("read", "run"):
        missing = await client.put(f"{API}/nowhere", headers=auth(secrets[scope]))
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        assert "openapi.json" in missing.json()["message"]



async def test_a_query_parameter_taken_once_but_given_twice_is_422(
        client: httpx.AsyncClient, secrets: dict[str, str]) -> None:
    key = auth(secrets["admin"])
    twice = await client.delete(f"{API}/mocks?pipeline=a&pipeline=b", headers=key)
    assert twice.status_code == 422, twice.text
    assert twice.json()["error"] == "invalid_input" and "'pipeline'" in twice.json()["message"]
    listed = await client.get(f"{API}/executions?status=failed&status=completed", headers=key)
    assert listed.status_code == 422 and "'status'" in listed.json()["message"]
    once = await client.delete(f"{API}/mocks?pipeline=a", headers=key)
    assert once.status_code == 200, once.text
    # without a valid key the key decides first, whatever the query
    assert (await client.delete(f"{API}/mocks?pipeline=a&pipeline=b")).status_code == 401
