"""One rule for JSON input over a real server (``engine.json_input``): hostile bodies sent to
an http trigger, to ``POST /pipelines/{name}/runs`` and as backfill JSON Lines get a 4xx
JSON answer naming the position and the rule, and nothing is stored; integers beyond 64 bits
arrive exact (orjson alone would have made them floats)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.server.conftest import LiveServer
from tests.server.support import auth

API = "/api/v1"
Live = tuple[LiveServer, dict[str, str]]
JSON = {"content-type": "application/json"}

# (name, a JSON value's text that breaks the rule, the rule, words the message holds)
HOSTILE = [
    ("deep", "[" * 300 + "]" * 300, "depth", "nested more than 200 levels deep at line 1 column"),
    # 1,000 levels: below orjson's own limit, and deep enough to break redaction's recursion
    ("deeper", "[" * 1000 + "]" * 1000, "depth", "nested more than 200 levels deep at line 1 column"),
    ("huge int", "7" * 5000, "number", "an integer of 5000 digits (at most 4300)"),
    ("lone surrogate", '"\\ud800"', "surrogate", "unpaired surrogate ('\\ud800') at line 1 column"),
    ("NaN", "NaN", "number", "NaN is not JSON"),
    ("Infinity", "-Infinity", "number", "is not JSON"),
    ("broken", "{broken", "syntax", "invalid JSON at line 1 column"),
]
IDS = [case[0] for case in HOSTILE]


async def _nothing_stored(http: httpx.AsyncClient, key: dict[str, str]) -> None:
    assert (await http.get(f"{API}/executions", headers=key)).json()["items"] == []
    assert (await http.get(f"{API}/backfills", headers=key)).json() == []


def _refused(response: httpx.Response, status: int, rule: str, words: str) -> None:
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["error"] == "invalid_input", answer
    assert answer["message"].startswith("the request body: ") and words in answer["message"], answer
    assert answer["details"]["rule"] == rule, answer


@pytest.mark.parametrize(("name", "text", "rule", "words"), HOSTILE, ids=IDS)
async def test_hostile_trigger_bodies_are_400_and_nothing_runs(
        http: httpx.AsyncClient, live: Live, name: str, text: str, rule: str, words: str) -> None:
    _server, secrets = live
    body = f'{{"x": {text}}}'.encode()
    _refused(await http.post("/ingest", content=body, headers={**auth(secrets["run"]), **JSON}),
             400, rule, words)
    await _nothing_stored(http, auth(secrets["admin"]))


@pytest.mark.parametrize(("name", "text", "rule", "words"), HOSTILE, ids=IDS)
async def test_hostile_run_inputs_are_422_and_nothing_runs(
        http: httpx.AsyncClient, live: Live, name: str, text: str, rule: str, words: str) -> None:
    _server, secrets = live
    body = f'{{"input": {{"qty": 1, "x": {text}}}}}'.encode()
    _refused(await http.post(f"{API}/pipelines/order/runs", content=body,
                             headers={**auth(secrets["run"]), **JSON}), 422, rule, words)
    await _nothing_stored(http, auth(secrets["admin"]))


async def test_invalid_utf8_is_refused_with_its_position(http: httpx.AsyncClient, live: Live) -> None:
    _server, secrets = live
    key = {**auth(secrets["run"]), **JSON}
    _refused(await http.post("/ingest", content=b'{"x": "ab\xff"}', headers=key), 400, "utf-8",
             "not valid UTF-8 at line 1 column 10")
    _refused(await http.post(f"{API}/pipelines/order/runs", content=b'{"input": {"x": "\xff"}}',
                             headers=key), 422, "utf-8", "not valid UTF-8 at line 1 column 18")
    await _nothing_stored(http, auth(secrets["admin"]))


@pytest.mark.parametrize(("name", "text", "rule", "words"), HOSTILE, ids=IDS)
async def test_hostile_backfill_lines_are_422_naming_the_line(
        http: httpx.AsyncClient, live: Live, name: str, text: str, rule: str, words: str) -> None:
    _server, secrets = live
    # The line is a string inside the request body: the body itself is fine JSON.
    jsonl = '{"qty": 1}\n\n{"x": ' + text + "}\n"
    refused = await http.post(f"{API}/backfills", json={"pipeline": "order", "jsonl": jsonl},
                              headers=auth(secrets["run"]))
    assert refused.status_code == 422, refused.text
    answer = refused.json()
    assert answer["details"] == {"line": 3, "rule": rule}, answer
    assert "the JSON Lines input" in answer["message"] and "nothing was started" in answer["message"]
    # depth and surrogate problems name the line; the others name line and column
    assert "line 3" in answer["message"], answer
    assert words.split(" at line")[0] in answer["message"], answer
    await _nothing_stored(http, auth(secrets["admin"]))


async def test_big_integers_arrive_exact_on_every_path(http: httpx.AsyncClient, live: Live) -> None:
    _server, secrets = live
    big = 10**40 + 1  # a float would round it to 1e40
    key = auth(secrets["admin"])
    ingest = await http.post("/ingest", content=json.dumps({"n": big, "small": 2**70}).encode(),
                             headers={**key, **JSON})
    assert ingest.status_code == 202, ingest.text
    run = await http.post(f"{API}/pipelines/order/runs", headers={**key, **JSON},
                          content=json.dumps({"input": {"qty": 1, "n": big}}).encode())
    assert run.status_code == 201, run.text
    stored: dict[str, Any] = (await http.get(
        f"{API}/executions/{ingest.json()['execution_id']}", headers=key)).json()
    assert stored["trigger_payload"]["body"] == {"n": big, "small": 2**70}
    stored = (await http.get(f"{API}/executions/{run.json()['execution_id']}", headers=key)).json()
    assert stored["trigger_payload"]["n"] == big


async def test_a_deep_body_without_content_type_is_text_not_a_crash(
        http: httpx.AsyncClient, live: Live) -> None:
    _server, secrets = live
    key = auth(secrets["admin"])
    text = '{"x": ' + "[" * 1000 + "]" * 1000 + "}"
    started = await http.post("/ingest", content=text.encode(), headers=key)
    assert started.status_code == 202, started.text
    stored = (await http.get(f"{API}/executions/{started.json()['execution_id']}",
                             headers=key)).json()
    assert stored["trigger_payload"]["body"] == text
