"""Server-Sent Events through a real uvicorn on loopback (SQLite and PostgreSQL): ids,
resume with Last-Event-ID and after_seq without a gap or a duplicate, heartbeats, the
stream of all executions and its resume."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.server.conftest import LiveServer
from tests.server.support import SseReader, auth

API = "/api/v1"
TERMINAL = {"execution.completed", "execution.failed", "execution.cancelled"}

Live = tuple[LiveServer, dict[str, str]]


async def start(http: httpx.AsyncClient, key: dict[str, str], pipeline: str, payload: Any,
                wait: bool = True) -> str:
    response = await http.post(f"{API}/pipelines/{pipeline}/runs", headers=key,
                               json={"input": payload, "options": {"wait": wait}})
    assert response.status_code == 201, response.text
    execution_id: str = response.json()["execution_id"]
    return execution_id


async def stored(http: httpx.AsyncClient, key: dict[str, str], eid: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = (await http.get(f"{API}/executions/{eid}/events", headers=key)).json()
    return events


def ended(message: dict[str, Any]) -> bool:
    return message["event"] in TERMINAL


async def test_stream_of_a_finished_execution_sends_every_event_then_ends(
        http: httpx.AsyncClient, live: Live) -> None:
    key = auth(live[1]["read"])
    eid = await start(http, auth(live[1]["run"]), "order", {"qty": 2})
    async with http.stream("GET", f"{API}/executions/{eid}/stream", headers=key) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        messages = await SseReader(response).events()  # returns when the server ends it
    assert [m["id"] for m in messages] == [f"{eid}:{seq}" for seq in range(1, len(messages) + 1)]
    assert [m["data"] for m in messages] == await stored(http, key, eid)
    assert [m["event"] for m in messages] == [m["data"]["type"] for m in messages]
    assert messages[-1]["event"] == "execution.completed"


async def test_resume_with_last_event_id_has_no_gap_and_no_duplicate(
        http: httpx.AsyncClient, live: Live) -> None:
    key = auth(live[1]["read"])
    eid = await start(http, auth(live[1]["run"]), "slow", {}, wait=False)
    async with http.stream("GET", f"{API}/executions/{eid}/stream", headers=key) as response:
        reader = SseReader(response)
        first = [await reader.next() for _ in range(4)]
    first = [m for m in first if "comment" not in m]
    assert first
    resumed_headers = {**key, "Last-Event-ID": first[-1]["id"]}
    async with http.stream("GET", f"{API}/executions/{eid}/stream", headers=resumed_headers) as response:
        rest = await SseReader(response).events(until=ended)
    received = [m["data"]["seq"] for m in first + rest]
    assert received == list(range(1, len(received) + 1))  # in order, no gap, no duplicate
    assert [m["data"] for m in first + rest] == await stored(http, key, eid)
    async with http.stream("GET", f"{API}/executions/{eid}/stream",
                           headers={**key, "Last-Event-ID": rest[-1]["id"]}) as response:
        assert await SseReader(response).events() == []  # resumed after the end: nothing more


async def test_after_seq_and_type_filter(http: httpx.AsyncClient, live: Live) -> None:
    key = auth(live[1]["read"])
    eid = await start(http, auth(live[1]["run"]), "order", {"qty": 1})
    async with http.stream("GET", f"{API}/executions/{eid}/stream", headers=key,
                           params={"after_seq": 3}) as response:
        later = await SseReader(response).events()
    assert later[0]["data"]["seq"] == 4
    async with http.stream("GET", f"{API}/executions/{eid}/stream", headers=key,
                           params={"type": "step.completed"}) as response:
        outputs = await SseReader(response).events()
    assert [m["data"]["data"]["step"] for m in outputs] == ["price", "tax", "out"]
    assert all("output" in m["data"]["data"] for m in outputs)


async def test_heartbeats_keep_a_quiet_stream_alive(http: httpx.AsyncClient, live: Live) -> None:
    async with http.stream("GET", f"{API}/stream", headers=auth(live[1]["read"])) as response:
        reader = SseReader(response)
        assert await reader.next() == {"comment": "connected"}
        comments = [await reader.next() for _ in range(3)]
    assert {"comment": "heartbeat"} in comments


async def test_stream_of_all_executions_resumes_from_last_event_id(
        http: httpx.AsyncClient, live: Live) -> None:
    key, runner = auth(live[1]["read"]), auth(live[1]["run"])
    async with http.stream("GET", f"{API}/stream", headers=key) as response:
        reader = SseReader(response)
        assert (await reader.next())["comment"] == "connected"
        first = await start(http, runner, "order", {"qty": 1})
        seen = await reader.events(until=lambda m: ended(m) and m["data"]["execution_id"] == first)
    assert [m["data"] for m in seen if m["data"]["execution_id"] == first] == await stored(http, key, first)
    missed = await start(http, runner, "order", {"qty": 2})  # while nobody listens
    async with http.stream("GET", f"{API}/stream",
                           headers={**key, "Last-Event-ID": seen[-1]["id"]}) as response:
        reader = SseReader(response)
        caught_up = await reader.events(until=lambda m: ended(m) and m["data"]["execution_id"] == missed)
        live_id = await start(http, runner, "order", {"qty": 3})
        after = await reader.events(until=lambda m: ended(m) and m["data"]["execution_id"] == live_id)
    ids = [m["id"] for m in caught_up + after]
    assert len(ids) == len(set(ids))  # no duplicate
    assert not any(m["data"]["execution_id"] == first for m in caught_up)  # nothing resent
    for eid in (missed, live_id):
        got = [m["data"] for m in caught_up + after if m["data"]["execution_id"] == eid]
        assert got == await stored(http, key, eid)  # every event of both, in order


async def test_an_unknown_resume_point_is_announced_as_a_gap(http: httpx.AsyncClient, live: Live) -> None:
    headers = {**auth(live[1]["read"]), "Last-Event-ID": "feedbeef:12"}
    async with http.stream("GET", f"{API}/stream", headers=headers) as response:
        reader = SseReader(response)
        await reader.next()  # the opening comment
        gap = await reader.next()
    assert gap["event"] == "stream.gap" and gap["data"]["after"] == "feedbeef:12" and "id" not in gap


async def test_stream_errors_are_answered_before_streaming(http: httpx.AsyncClient, live: Live) -> None:
    key = auth(live[1]["read"])
    eid = await start(http, auth(live[1]["run"]), "order", {"qty": 1})
    missing = await http.get(f"{API}/executions/{'0' * 32}/stream", headers=key)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert (await http.get(f"{API}/executions/{eid}/stream")).status_code == 401
    assert (await http.get(f"{API}/stream")).status_code == 401
    other = await http.get(f"{API}/executions/{eid}/stream", headers={**key, "Last-Event-ID": "abc:3"})
    assert other.status_code == 422
    malformed = await http.get(f"{API}/executions/{eid}/stream", headers={**key, "Last-Event-ID": "nonsense"})
    assert malformed.status_code == 422 and "Last-Event-ID" in malformed.json()["message"]


async def test_a_client_that_goes_away_is_unsubscribed(http: httpx.AsyncClient, live: Live) -> None:
    server, secrets = live
    assert server.service is not None
    hub = server.service.hub

    async def subscribers(count: int) -> None:
        deadline = asyncio.get_running_loop().time() + 30  # a loaded machine starves the server
        while asyncio.get_running_loop().time() < deadline:
            if hub.subscriber_count() == count:
                return
            await asyncio.sleep(0.01)
        status = (await http.get(f"{API}/executions/{eid}", headers=auth(secrets["read"]))).json()["status"]
        raise AssertionError(f"{hub.subscriber_count()} subscribers, not {count} ({path}, {status})")

    # Paused at a breakpoint: its stream would never end by itself.
    await http.post(f"{API}/debug/breakpoints", headers=auth(secrets["debug"]),
                    json={"pipeline": "order", "step": "tax"})
    eid = await start(http, auth(secrets["run"]), "order", {"qty": 1}, wait=False)
    for path in (f"{API}/stream", f"{API}/executions/{eid}/stream"):
        async with http.stream("GET", path, headers=auth(secrets["read"])) as response:
            reader = SseReader(response)
            await reader.next()
            try:
                await subscribers(1)
            except AssertionError as exc:
                raise AssertionError(f"{exc} then {await reader.next()}") from None
        await subscribers(0)
    resumed = await http.post(f"{API}/debug/paused/{eid}/resume", headers=auth(secrets["debug"]),
                              json={"action": "abort"})
    assert resumed.status_code == 204


async def test_a_stream_carries_integers_beyond_64_bits(http: httpx.AsyncClient, live: Live) -> None:
    key = auth(live[1]["read"])
    eid = await start(http, auth(live[1]["run"]), "order", {"qty": 2, "big": 2**70})
    async with http.stream("GET", f"{API}/executions/{eid}/stream", headers=key) as response:
        messages = await SseReader(response).events()
    assert messages and messages[-1]["event"] == "execution.completed"
    assert [m["data"] for m in messages] == await stored(http, key, eid)
    assert any(str(2**70) in json.dumps(m["data"]) for m in messages)  # exactly, not a float
