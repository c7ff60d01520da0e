"""The pipelines' http triggers served by a real uvicorn on loopback (SQLite and PostgreSQL):
the request as the trigger payload, response steps shaping the reply, 202 without one,
error statuses, auth, and credentials kept out of the event store."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from engine.store.store import Store
from tests.server.conftest import LiveServer
from tests.server.support import auth
from tests.waiting import wait_for_condition

API = "/api/v1"
Live = tuple[LiveServer, dict[str, str]]


async def test_json_response_with_path_params_query_headers_and_body(
        http: httpx.AsyncClient, live: Live) -> None:
    response = await http.post("/greet/ada%20l", headers={**auth(live[1]["run"]), "X-Trace": "t1"},
                               params=[("tag", "a"), ("tag", "b"), ("one", "1")],
                               json={"hello": "world"})
    assert response.status_code == 201, response.text
    assert response.headers["x-greeting"] == "hi"
    eid = response.headers["x-execution-id"]
    body = response.json()
    assert body["greeting"] == "hello ada l"
    trigger = body["trigger"]
    assert trigger["method"] == "POST" and trigger["path"] == "/greet/ada l"
    assert trigger["path_params"] == {"name": "ada l"}
    assert trigger["query"] == {"tag": ["a", "b"], "one": "1"}
    assert trigger["headers"]["x-trace"] == "t1"  # names lower-case
    assert trigger["body"] == {"hello": "world"} and trigger["raw_body"] == '{"hello":"world"}'
    summary = (await http.get(f"{API}/executions/{eid}", headers=auth(live[1]["read"]))).json()
    assert summary["trigger_type"] == "http" and summary["status"] == "completed"


async def test_text_bodies_and_raw_responses(http: httpx.AsyncClient, live: Live) -> None:
    key = auth(live[1]["run"])
    plain = await http.post("/greet/x", headers={**key, "content-type": "text/plain"}, content=b"{hi}")
    assert plain.json()["trigger"]["body"] == "{hi}"
    guessed = await http.post("/greet/x", headers=key, content=b'{"a": 1}')  # no content type
    assert guessed.json()["trigger"]["body"] == {"a": 1}
    page = await http.get("/page", headers=key, params={"q": "hey"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text == "<p>hey</p>"


async def test_without_a_response_step_the_answer_is_202_at_once(http: httpx.AsyncClient, live: Live) -> None:
    response = await http.post("/ingest", headers=auth(live[1]["run"]), json={"n": 1})
    assert response.status_code == 202
    eid = response.json()["execution_id"]
    assert response.json() == {"execution_id": eid}
    assert response.headers["location"] == f"{API}/executions/{eid}"
    read = auth(live[1]["read"])
    recorded = await http.get(f"{API}/executions/{eid}", headers=read)
    assert recorded.status_code == 200  # acknowledged means recorded

    async def completed() -> bool:
        return bool((await http.get(f"{API}/executions/{eid}", headers=read)).json()["status"]
                    == "completed")

    await wait_for_condition(completed, "the accepted execution to complete")


async def test_failures_answer_error_status_or_the_errors_status_or_500(
        http: httpx.AsyncClient, live: Live) -> None:
    key = auth(live[1]["run"])
    conflict = await http.post("/strict", headers=key, json={"other": 1})
    assert conflict.status_code == 409  # the step's error_status
    body = conflict.json()
    assert body["error"] == "step_failed" and "body.qty" in body["message"] and body["details"]
    assert body["execution_id"] == conflict.headers["x-execution-id"]
    assert (await http.post("/strict", headers=key, json={"qty": 1})).json() == {"ok": True}

    teapot = await http.get("/teapot/coffee", headers=key)
    assert teapot.status_code == 418 and teapot.json()["message"] == "no coffee here"

    boom = await http.get("/boom", headers=key)
    assert boom.status_code == 500
    assert set(boom.json()) == {"error", "message", "execution_id"}
    assert "db.internal" not in boom.text and "explode" not in boom.text  # no internals
    failed = (await http.get(f"{API}/executions/{boom.json()['execution_id']}",
                             headers=auth(live[1]["read"]))).json()
    assert failed["status"] == "failed" and failed["error"]["step"] == "explode"


async def test_routing_errors(http: httpx.AsyncClient, live: Live) -> None:
    key = auth(live[1]["run"])
    wrong_method = await http.get("/greet/x", headers=key)
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    nowhere = await http.post("/nowhere", headers=key)
    assert nowhere.status_code == 404 and nowhere.json()["error"] == "not_found"
    bad_json = await http.post("/greet/x", headers={**key, "content-type": "application/json"},
                               content=b"{broken")
    assert bad_json.status_code == 400 and "invalid JSON at line 1 column 2" in bad_json.json()["message"]
    assert (await http.post("/greet/x/", headers=key, json={})).status_code == 201  # trailing /


async def test_triggers_need_a_key_with_the_run_scope(http: httpx.AsyncClient, live: Live) -> None:
    answers = [await http.post(path) for path in ("/greet/x", "/nowhere")]
    assert [a.status_code for a in answers] == [401, 401]
    assert answers[0].text == answers[1].text  # no hint of which paths exist
    refused = [await http.post(path, headers=auth(live[1]["read"])) for path in ("/greet/x", "/nowhere")]
    assert [r.status_code for r in refused] == [403, 403]
    bearer = await http.post("/greet/x", headers={"Authorization": f"Bearer {live[1]['run']}"}, json={})
    assert bearer.status_code == 201


async def test_keys_never_reach_the_event_store_or_the_logs(
        http: httpx.AsyncClient, live: Live, store_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = live[1]["run"]
    via_header = await http.post("/greet/x", headers={"X-API-Key": secret, "X-Other": "kept"},
                                 json={"a": 1})
    via_bearer = await http.post("/ingest", headers={"Authorization": f"Bearer {secret}"}, json={})
    assert via_header.status_code == 201 and via_bearer.status_code == 202
    headers = via_header.json()["trigger"]["headers"]
    assert "x-api-key" not in headers and "authorization" not in headers
    assert headers["x-other"] == "kept"
    failed = await http.get("/boom", headers={"X-API-Key": secret})
    assert failed.status_code == 500
    with Store.open(store_url) as store:
        recorded_ids = [via_header.headers["x-execution-id"], via_bearer.json()["execution_id"]]
        with store.read() as conn:
            dump: list[Any] = []
            for table in ("executions", "execution_events", "step_runs", "dlq_entries"):
                dump += conn.execute(text(f"SELECT * FROM {table}")).all()
    everything = repr(dump)
    assert all(eid in everything for eid in recorded_ids)  # the executions are there …
    assert secret not in everything and secret.split("_", 2)[2] not in everything  # … the key is not
    assert secret not in caplog.text and "x-other" not in caplog.text.lower()


async def test_a_large_body_is_refused(live_factory: Any, tmp_path: Any) -> None:
    server, secrets = live_factory(f"sqlite:///{tmp_path / 'small.db'}", max_body=1000)
    async with httpx.AsyncClient(base_url=server.url) as client:
        too_big = await client.post("/greet/x", headers=auth(secrets["run"]), content=b"x" * 2000)
        assert too_big.status_code == 413 and too_big.json()["error"] == "too_large"
        fits = await client.post("/greet/x", headers=auth(secrets["run"]), content=b"x" * 900)
        assert fits.status_code == 201
