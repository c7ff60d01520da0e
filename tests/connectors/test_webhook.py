"""source.webhook served by the server (create_app on a real uvicorn loopback server, in the
test's event loop) and by its own listener (the studio, no server): signatures of each
scheme, CloudEvents modes, duplicates, the body cap, and 2xx only once recorded."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from engine.connectors.signatures import sign
from engine.server import KeyStore, create_app
from engine.server.app import ServerApp
from engine.service.local import LocalService
from engine.service.naming import ServerNames
from engine.store.store import Store
from tests.connectors.kill_harness import completed_per_event, free_port
from tests.waiting import wait_for_condition

STRIPE_SECRETS = ["whsec_current", "whsec_previous"]  # rotating: both must be accepted
GITHUB_SECRET = "gh-secret"
GENERIC_SECRET = "generic-secret"

PIPELINES = f"""
connectors:
  - name: stripe
    type: source.webhook
    config: {{path: /hooks/stripe, scheme: stripe, secret: {json.dumps(STRIPE_SECRETS)}}}
  - name: github
    type: source.webhook
    config: {{path: /hooks/github, scheme: github, secret: {GITHUB_SECRET}}}
  - name: generic
    type: source.webhook
    config: {{path: /hooks/generic, scheme: generic, secret: {GENERIC_SECRET}, max_body: 4096,
              tolerance: 60, type: order.created}}
pipelines:
  stripe-events:
    trigger: {{type: event, config: {{connector: stripe}}}}
    steps:
      - {{name: seen, type: step.set, config: {{values: {{id: "{{{{ .trigger.id }}}}"}}}}}}
  github-events:
    trigger: {{type: event, config: {{connector: github}}}}
    steps:
      - {{name: seen, type: step.set, config: {{values: {{id: "{{{{ .trigger.id }}}}"}}}}}}
  generic-events:
    trigger: {{type: event, config: {{connector: generic}}}}
    steps:
      - {{name: seen, type: step.set, config: {{values: {{id: "{{{{ .trigger.id }}}}"}}}}}}
"""
PATHS = {"stripe": "/hooks/stripe", "github": "/hooks/github", "generic": "/hooks/generic"}
SECRETS = {"stripe": STRIPE_SECRETS[0], "github": GITHUB_SECRET, "generic": GENERIC_SECRET}


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the test process keeps its own handlers
        yield


@dataclass
class Served:
    url: str
    store: str
    service: LocalService
    app: ServerApp

    def events(self) -> dict[str, Any]:
        """Trigger payload (the envelope) of each event execution, by event id."""
        with Store.open(self.store) as opened, opened.read() as conn:
            rows = conn.exec_driver_sql("SELECT trigger_payload, pipeline FROM executions "
                                        "WHERE trigger_type = 'event'").all()
        found = {}
        for payload, pipeline in rows:
            envelope = json.loads(payload) if isinstance(payload, str) else payload
            found[envelope["id"]] = {**envelope, "_pipeline": pipeline}
        return found


async def _serve_app(app: Any, sock: socket.socket) -> tuple[_Server, asyncio.Task[None]]:
    server = _Server(uvicorn.Config(app, lifespan="on", log_level="warning",
                                    timeout_graceful_shutdown=1))
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    await wait_for_condition(lambda: server.started or task.done(), "uvicorn to start")
    return server, task


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, text: str = PIPELINES) -> AsyncIterator[Served]:
    """The server app over a SQLite store, its webhook sources running (as under serve);
    tenants deploy files under tmp_path/deployed."""
    file = tmp_path / "hooks.yaml"
    file.write_text(text)
    store = f"sqlite:///{tmp_path / 'store.db'}"
    deployed = tmp_path / "deployed"
    service = await LocalService.open([file], store=store, names=ServerNames(deployed))
    try:
        app = create_app(service, keys=KeyStore(service.store), deploy_dir=deployed)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server, task = await _serve_app(app, sock)
        try:
            service.sources.autostart = True
            await service.sources.refresh()
            wanted = {r.config["path"] for r in service.sources.runtimes.values()}
            routes = app.webhook_hub.routes
            await wait_for_condition(lambda: all(routes.get(p) for p in wanted),
                                     "the webhook sources to register with the server")
            yield Served(f"http://127.0.0.1:{sock.getsockname()[1]}", store, service, app)
        finally:
            server.should_exit = True
            await task
            sock.close()
    finally:
        await service.close()


def signed(scheme: str, body: bytes, *, secret: str | None = None, at: float | None = None,
           extra: dict[str, str] | None = None) -> dict[str, str]:
    out = {"Content-Type": "application/json", **(extra or {})}
    out.update(sign(scheme, secret or SECRETS[scheme], body, now=at))
    return out


def stripe_event(event_id: str | None = None) -> bytes:
    return json.dumps({"id": event_id or f"evt_{uuid.uuid4().hex}", "type": "charge.succeeded",
                       "data": {"object": {"amount": 1200}}}).encode()


async def completed(served: Served, event_id: str) -> int:
    return await wait_for_condition(
        lambda: completed_per_event(served.store, [event_id]).get(event_id, 0),
        f"event {event_id} to complete")


# ---------------------------------------------------------------------- signatures


def _delivery(scheme: str) -> tuple[bytes, dict[str, str], str]:
    """A body, the headers naming its delivery (besides the signature), and its event id."""
    if scheme == "stripe":
        event_id = f"evt_{uuid.uuid4().hex}"
        return stripe_event(event_id), {}, event_id
    delivery = uuid.uuid4().hex
    body = json.dumps({"order": delivery}).encode()
    if scheme == "github":
        return body, {"X-GitHub-Delivery": delivery, "X-GitHub-Event": "push"}, delivery
    return body, {"X-Webhook-Id": delivery}, delivery


@pytest.mark.parametrize("scheme", ["stripe", "github", "generic"])
async def test_each_scheme_takes_valid_signatures_and_refuses_the_rest(tmp_path: Path,
                                                                      scheme: str) -> None:
    async with serving(tmp_path) as served, httpx.AsyncClient(base_url=served.url) as client:
        url = PATHS[scheme]
        body, named, event_id = _delivery(scheme)

        wrong = await client.post(url, content=body,
                                  headers=signed(scheme, body, secret="not-the-secret", extra=named))
        assert wrong.status_code == 401
        assert wrong.json()["error"] == "bad_signature" and wrong.json()["message"]

        missing = await client.post(url, content=body,
                                    headers={"Content-Type": "application/json", **named})
        assert missing.status_code == 401 and missing.json()["error"] == "missing_signature"

        tampered = await client.post(url, content=body + b" ", headers=signed(scheme, body, extra=named))
        assert tampered.status_code == 401 and tampered.json()["error"] == "bad_signature"

        if scheme != "github":  # GitHub signs no timestamp: its delivery id stops replays
            stale = await client.post(url, content=body,
                                      headers=signed(scheme, body, at=time.time() - 3600, extra=named))
            assert stale.status_code == 401 and stale.json()["error"] == "stale_timestamp"
            future = await client.post(url, content=body,
                                       headers=signed(scheme, body, at=time.time() + 3600, extra=named))
            assert future.status_code == 401 and future.json()["error"] == "stale_timestamp"

        assert served.events() == {}  # nothing refused was recorded

        ok = await client.post(url, content=body, headers=signed(scheme, body, extra=named))
        assert ok.status_code == 202, ok.text
        assert ok.json() == {"id": event_id, "outcome": "started", "duplicate": False}
        assert await completed(served, event_id) == 1
        event = served.events()[event_id]
        assert event["_pipeline"] == f"{scheme}-events"
        assert event["data"] == json.loads(body)
        expected_type = {"stripe": "charge.succeeded", "github": "github.push",
                         "generic": "order.created"}[scheme]
        assert event["type"] == expected_type


async def test_rotated_stripe_secret_is_accepted_and_several_signatures_are_read(
        tmp_path: Path) -> None:
    async with serving(tmp_path) as served, httpx.AsyncClient(base_url=served.url) as client:
        body = stripe_event("evt_rotated")
        old = await client.post("/hooks/stripe", content=body,
                                headers=signed("stripe", body, secret=STRIPE_SECRETS[1]))
        assert old.status_code == 202, old.text

        # Stripe sends one v1 per active secret during a roll: any match is enough.
        body = stripe_event("evt_rolling")
        good = signed("stripe", body, secret=STRIPE_SECRETS[0])["Stripe-Signature"]
        bad = signed("stripe", body, secret="gone")["Stripe-Signature"]
        header = bad + "," + good.split(",", 1)[1]
        both = await client.post("/hooks/stripe", content=body,
                                 headers={"Content-Type": "application/json",
                                          "Stripe-Signature": header})
        assert both.status_code == 202, both.text

        unknown = await client.post("/hooks/stripe", content=stripe_event("evt_x"),
                                    headers=signed("stripe", stripe_event("evt_x"),
                                                   secret="whsec_retired_long_ago"))
        assert unknown.status_code == 401
        assert await completed(served, "evt_rotated") == 1
        assert await completed(served, "evt_rolling") == 1
        assert "evt_x" not in served.events()


async def test_headers_are_checked_before_the_body_is_read(tmp_path: Path) -> None:
    async with serving(tmp_path) as served, httpx.AsyncClient(base_url=served.url) as client:
        big = b"{" + b" " * 10_000 + b"}"  # over the generic source's max_body (4096)
        no_signature = await client.post("/hooks/generic", content=big,
                                          headers={"Content-Type": "application/json"})
        assert no_signature.status_code == 401  # not 413: refused on its headers alone
        stale = await client.post("/hooks/generic", content=big,
                                  headers=signed("generic", big, at=time.time() - 600))
        assert stale.status_code == 401 and stale.json()["error"] == "stale_timestamp"


# ---------------------------------------------------------------------- body cap and format


async def test_body_cap_announced_and_streamed(tmp_path: Path) -> None:
    async with serving(tmp_path) as served, httpx.AsyncClient(base_url=served.url) as client:
        big = json.dumps({"pad": "x" * 5000}).encode()
        announced = await client.post("/hooks/generic", content=big,
                                      headers=signed("generic", big, extra={"X-Webhook-Id": "big1"}))
        assert announced.status_code == 413
        assert announced.json()["error"] == "too_large" and "4096" in announced.json()["message"]

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
            for start in range(0, len(big), 1000):
                yield big[start:start + 1000]
        streamed = await client.post("/hooks/generic", content=chunks(),
                                     headers=signed("generic", big, extra={"X-Webhook-Id": "big2"}))
        assert streamed.status_code == 413
        assert served.events() == {}


async def test_bodies_that_are_not_events_are_refused(tmp_path: Path) -> None:
    async with serving(tmp_path) as served, httpx.AsyncClient(base_url=served.url) as client:
        text = b"not json at all"
        refused = await client.post("/hooks/generic", content=text, headers=signed("generic", text))
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_json"
        plain = await client.post("/hooks/generic", content=text,
                                  headers=signed("generic", text, extra={"Content-Type": "text/plain"}))
        assert plain.status_code == 415
        bad_ce = json.dumps({"specversion": "0.3", "id": "1", "source": "s", "type": "t"}).encode()
        wrong = await client.post("/hooks/generic", content=bad_ce, headers=signed(
            "generic", bad_ce, extra={"Content-Type": "application/cloudevents+json"}))
        assert wrong.status_code == 400 and "specversion" in wrong.json()["message"]
        missing = await client.post("/hooks/generic", content=b"{}", headers=signed(
            "generic", b"{}", extra={"ce-specversion": "1.0", "ce-source": "/x"}))
        assert missing.status_code == 400 and "ce-id" in missing.json()["message"]
        get = await client.get("/hooks/generic")
        assert get.status_code == 405 and get.headers["allow"] == "POST"
        assert served.events() == {}


async def test_cloudevents_binary_structured_and_plain(tmp_path: Path) -> None:
    async with serving(tmp_path) as served, httpx.AsyncClient(base_url=served.url) as client:
        structured = json.dumps({"specversion": "1.0", "id": "ce-structured-1",
                                 "source": "/shop", "type": "order.created", "subject": "o-1",
                                 "datacontenttype": "application/json",
                                 "data": {"order": 1}}).encode()
        answer = await client.post("/hooks/generic", content=structured, headers=signed(
            "generic", structured, extra={"Content-Type": "application/cloudevents+json"}))
        assert answer.status_code == 202, answer.text

        data = json.dumps({"order": 2}).encode()
        binary = await client.post("/hooks/generic", content=data, headers=signed(
            "generic", data, extra={"ce-specversion": "1.0", "ce-id": "ce-binary-1",
                                "ce-source": "/shop", "ce-type": "order.created",
                                "ce-subject": "o-2", "ce-tenantregion": "eu",
                                "ce-time": "2026-01-02T03:04:05Z"}))
        assert binary.status_code == 202, binary.text

        plain = json.dumps({"order": 3}).encode()  # no id header: the body's hash names it
        first = await client.post("/hooks/generic", content=plain, headers=signed("generic", plain))
        assert first.status_code == 202
        assert first.json()["id"].startswith("sha256:")

        for event_id in ("ce-structured-1", "ce-binary-1", first.json()["id"]):
            assert await completed(served, event_id) == 1
        events = served.events()
        assert events["ce-structured-1"]["subject"] == "o-1"
        assert events["ce-structured-1"]["data"] == {"order": 1}
        b = events["ce-binary-1"]
        assert (b["source"], b["type"], b["subject"], b["data"]) == ("/shop", "order.created",
                                                                     "o-2", {"order": 2})
        assert b["tenantregion"] == "eu" and b["time"].startswith("2026-01-02T03:04:05")
        p = events[first.json()["id"]]
        assert (p["source"], p["type"], p["data"]) == ("wfstudio://webhook/hooks/generic",
                                                        "order.created", {"order": 3})


# ---------------------------------------------------------------------- once, and durable


async def test_a_redelivered_webhook_runs_once(tmp_path: Path) -> None:
    async with serving(tmp_path) as served, httpx.AsyncClient(base_url=served.url) as client:
        body = stripe_event("evt_twice")
        answers = [await client.post("/hooks/stripe", content=body,
                                     headers=signed("stripe", body)) for _ in range(3)]
        assert [a.status_code for a in answers] == [202, 200, 200]
        assert answers[1].json() == {"id": "evt_twice", "outcome": "duplicate", "duplicate": True}
        # concurrently, too: one start among them
        body = stripe_event("evt_racing")
        raced = await asyncio.gather(*(client.post("/hooks/stripe", content=body,
                                                   headers=signed("stripe", body))
                                       for _ in range(8)))
        assert sorted(a.status_code for a in raced) == [200] * 7 + [202]
        assert await completed(served, "evt_twice") == 1
        assert await completed(served, "evt_racing") == 1
        runtime = served.service.sources.runtimes[("default", "stripe")]
        await wait_for_condition(lambda: runtime.in_flight == 0, "the executions to end")
        assert completed_per_event(served.store, ["evt_twice", "evt_racing"]) == {
            "evt_twice": 1, "evt_racing": 1}
        assert runtime.counters.started == 2 and runtime.counters.redelivered == 9


async def test_answers_503_while_the_store_refuses_and_202_once_it_records(tmp_path: Path) -> None:
    async with serving(tmp_path) as served, httpx.AsyncClient(base_url=served.url) as client:
        db = sqlite3.connect(tmp_path / "store.db")
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON source_events "
                   "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
        db.commit()
        body = stripe_event("evt_refused")
        refused = await client.post("/hooks/stripe", content=body, headers=signed("stripe", body))
        assert refused.status_code == 503
        assert refused.json()["error"] == "unavailable" and refused.headers["retry-after"]
        assert served.events() == {}

        db.execute("DROP TRIGGER refuse")
        db.commit()
        db.close()
        again = await client.post("/hooks/stripe", content=body, headers=signed("stripe", body))
        assert again.status_code == 202
        assert await completed(served, "evt_refused") == 1


async def test_a_stopped_source_s_path_answers_503_until_it_runs_again(tmp_path: Path) -> None:
    async with serving(tmp_path) as served, httpx.AsyncClient(base_url=served.url) as client:
        await served.service.stop_source("stripe")
        body = stripe_event("evt_while_stopped")
        stopped = await client.post("/hooks/stripe", content=body, headers=signed("stripe", body))
        assert stopped.status_code == 503 and stopped.headers["retry-after"]
        assert stopped.json()["error"] == "unavailable"
        assert served.events() == {}
        await served.service.start_source("stripe")
        routes = served.app.webhook_hub.routes
        await wait_for_condition(lambda: routes.get("/hooks/stripe"), "the source to serve again")
        again = await client.post("/hooks/stripe", content=body, headers=signed("stripe", body))
        assert again.status_code == 202
        assert await completed(served, "evt_while_stopped") == 1


async def test_other_paths_still_need_a_key(tmp_path: Path) -> None:
    async with serving(tmp_path) as served, httpx.AsyncClient(base_url=served.url) as client:
        assert (await client.post("/hooks/unknown", json={})).status_code == 401
        assert (await client.get("/api/v1/health")).status_code == 200


async def test_a_deployed_webhook_starts_its_tenants_pipelines_only(tmp_path: Path) -> None:
    acme = """
connectors:
  - name: acme-hook
    type: source.webhook
    config: {path: /hooks/acme/orders, scheme: github, secret: acme-secret, type: order.created}
pipelines:
  acme-orders:
    trigger: {type: event, config: {connector: acme-hook}}
    steps:
      - {name: seen, type: step.set, config: {values: {id: "{{ .trigger.id }}"}}}
"""
    async with serving(tmp_path) as served, httpx.AsyncClient(base_url=served.url) as client:
        _, secret = served.app.state.keys.create("acme-deployer", "acme", ["deploy"])
        deployed = await client.put("/api/v1/definitions", headers={"X-API-Key": secret},
                                    json={"yaml": acme, "file": "acme.yaml"})
        assert deployed.status_code == 200, deployed.text
        hub = served.app.webhook_hub
        acme_hook = await wait_for_condition(lambda: hub.routes.get("/hooks/acme/orders"),
                                             "acme's webhook to register")
        generic_hook = hub.routes["/hooks/generic"]
        assert acme_hook.tenant == "acme"
        assert generic_hook is not None and generic_hook.tenant == "default"

        body = json.dumps({"order": "acme-1"}).encode()
        headers = {"Content-Type": "application/json", "X-GitHub-Delivery": "acme-1",
                   **sign("github", "acme-secret", body)}
        answer = await client.post("/hooks/acme/orders", content=body, headers=headers)
        assert answer.status_code == 202, answer.text
        # The default tenant's generic source takes order.created too: it must not run it.
        assert await completed(served, "acme-1") == 1
        with Store.open(served.store) as opened, opened.read() as conn:
            rows = conn.exec_driver_sql("SELECT pipeline, tenant FROM executions "
                                        "WHERE trigger_type = 'event'").all()
        assert [tuple(r) for r in rows] == [("acme-orders", "acme")]


async def test_a_deployed_webhook_cannot_take_a_path_outside_its_tenants_prefix(
        tmp_path: Path) -> None:
    """Webhook paths are answered before http triggers and without a key: a tenant's
    webhook at /orders would take every caller's /orders. It is refused, and says where."""
    grab = """
connectors:
  - name: grab
    type: source.webhook
    config: {path: /charges, scheme: generic, secret: s}
pipelines:
  grabbed:
    trigger: {type: event, config: {connector: grab}}
    steps: [{name: seen, type: step.log, config: {message: x}}]
"""
    async with serving(tmp_path) as served, httpx.AsyncClient(base_url=served.url) as client:
        _, secret = served.app.state.keys.create("mallory", "mallory", ["deploy", "read"])
        deployed = await client.put("/api/v1/definitions", headers={"X-API-Key": secret},
                                    json={"yaml": grab, "file": "grab.yaml"})
        assert deployed.status_code == 200, deployed.text

        async def refused() -> Any:
            sources = (await client.get("/api/v1/sources", headers={"X-API-Key": secret})).json()
            return [s for s in sources if s["name"] == "grab" and s["last_error"]]
        [info] = await wait_for_condition(refused, "the deployed webhook to be refused")
        assert "/hooks/mallory/" in info["last_error"] and info["state"] == "failing"
        assert "/charges" not in served.app.webhook_hub.routes
        # the path is not answered by the webhook (with a key, an unknown path is a 404;
        # the webhook would have answered 401 for the missing signature)
        _, runner = served.app.state.keys.create("runner", "default", ["run"])
        answer = await client.post("/charges", json={}, headers={"X-API-Key": runner})
        assert answer.status_code == 404, answer.text


async def test_two_sources_cannot_share_a_path(tmp_path: Path) -> None:
    text = PIPELINES.replace("path: /hooks/github", "path: /hooks/stripe")
    async with serving_partial(tmp_path, text) as service:
        runtime = service.sources.runtimes[("default", "github")]
        stripe = service.sources.runtimes[("default", "stripe")]
        failing = runtime if stripe.counters.last_error is None else stripe
        message = await wait_for_condition(lambda: failing.counters.last_error,
                                           "the second source to report the clash")
        assert "already served by another webhook source" in str(message)


@contextlib.asynccontextmanager
async def serving_partial(tmp_path: Path, text: str) -> AsyncIterator[LocalService]:
    file = tmp_path / "hooks.yaml"
    file.write_text(text)
    service = await LocalService.open([file], store=f"sqlite:///{tmp_path / 'store.db'}",
                                      names=ServerNames())
    try:
        create_app(service, keys=KeyStore(service.store))
        service.sources.autostart = True
        await service.sources.refresh()
        stripe = service.sources.runtimes[("default", "stripe")]
        github = service.sources.runtimes[("default", "github")]
        await wait_for_condition(lambda: stripe.counters.last_error or github.counters.last_error,
                                 "a source to fail")
        yield service
    finally:
        await service.close()


# ---------------------------------------------------------------------- the studio (no server)


async def test_the_studio_listens_itself_with_the_same_handler(tmp_path: Path) -> None:
    port = free_port()
    text = f"""
connectors:
  - name: hook
    type: source.webhook
    config: {{path: /hooks/studio, scheme: github, secret: s3cret, listen: "127.0.0.1:{port}"}}
pipelines:
  studio-events:
    trigger: {{type: event, config: {{connector: hook}}}}
    steps:
      - {{name: seen, type: step.set, config: {{values: {{id: "{{{{ .trigger.id }}}}"}}}}}}
"""
    file = tmp_path / "studio.yaml"
    file.write_text(text)
    store = f"sqlite:///{tmp_path / 'studio.db'}"
    service = await LocalService.open([file], store=store)  # the studio's way: no server
    try:
        await service.sources.refresh()
        info = await service.start_source("hook")
        assert info.state in ("running", "failing")
        url = f"http://127.0.0.1:{port}"

        async def up() -> str:
            try:
                async with httpx.AsyncClient() as c:
                    answer = await c.post(f"{url}/elsewhere")
                    return "listening" if answer.status_code == 404 else ""
            except httpx.HTTPError:
                return ""
        assert await wait_for_condition(up, "the source's own listener")  # type: ignore[arg-type]
        body = json.dumps({"action": "opened"}).encode()
        headers = {"Content-Type": "application/json", "X-GitHub-Delivery": "gh-studio-1",
                   "X-GitHub-Event": "issues", **sign("github", "s3cret", body)}
        async with httpx.AsyncClient(base_url=url) as client:
            answer = await client.post("/hooks/studio", content=body, headers=headers)
            assert answer.status_code == 202, answer.text
            again = await client.post("/hooks/studio", content=body, headers=headers)
            assert again.json()["duplicate"] is True
            bad = await client.post("/hooks/studio", content=body,
                                    headers={**headers, "X-Hub-Signature-256": "sha256=00"})
            assert bad.status_code == 401
        await wait_for_condition(lambda: completed_per_event(store, ["gh-studio-1"]),
                                 "the studio's execution")
        assert completed_per_event(store, ["gh-studio-1"]) == {"gh-studio-1": 1}

        await service.stop_source("hook")  # the listener goes away with the source
        async def down() -> str:
            return "" if await up() else "closed"
        assert await wait_for_condition(down, "the listener to close")
    finally:
        await service.close()


async def test_the_studio_listener_reports_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        text = f"""
connectors:
  - name: hook
    type: source.webhook
    config: {{path: /hooks/busy, secret: s, listen: "127.0.0.1:{port}"}}
pipelines:
  busy:
    trigger: {{type: event, config: {{connector: hook}}}}
    steps: [{{name: a, type: step.set, config: {{values: {{x: 1}}}}}}]
"""
        file = tmp_path / "busy.yaml"
        file.write_text(text)
        service = await LocalService.open([file], store=f"sqlite:///{tmp_path / 'busy.db'}")
        try:
            await service.start_source("hook")
            runtime = service.sources.get("hook")
            error = await wait_for_condition(lambda: runtime.counters.last_error,
                                             "the source to report the busy port")
            assert f"cannot listen on 127.0.0.1:{port}" in str(error)
            assert "set 'listen' to a free host:port" in str(error)
            assert (await service.list_sources())[0].state == "failing"
        finally:
            await service.close()


async def test_malformed_signature_headers_are_refused_with_what_is_wrong(tmp_path: Path) -> None:
    async with serving(tmp_path) as served, httpx.AsyncClient(base_url=served.url) as client:
        body = stripe_event("evt_malformed")
        cases = [
            ("/hooks/stripe", {"Stripe-Signature": "v1=abc"}, "t=<unix time>"),
            ("/hooks/stripe", {"Stripe-Signature": "t=soon,v1=abc"}, "not a Unix time"),
            ("/hooks/github", {"X-Hub-Signature-256": "sha1=abc"}, "sha256=<hex>"),
            ("/hooks/generic", {"X-Webhook-Signature": "sha256=abc"}, "X-Webhook-Timestamp"),
            ("/hooks/generic", {"X-Webhook-Signature": "sha256=abc",
                                "X-Webhook-Timestamp": "yesterday"}, "not a Unix time"),
        ]
        for path, headers, says in cases:
            answer = await client.post(path, content=body,
                                       headers={"Content-Type": "application/json", **headers})
            assert answer.status_code == 401, (path, headers)
            assert says in answer.json()["message"], answer.json()
        assert served.events() == {}
