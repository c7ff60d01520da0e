"""One bad request never damages another run, over real HTTP on SQLite and PostgreSQL.

Clean runs go in concurrently with runs whose input holds what no store can hold (a lone
UTF-16 surrogate, a NUL, in values and keys, nested), through the run endpoint (waiting and
not) and an http trigger. Every clean run is recorded whole; a poisoned one is either
recorded with those characters escaped (U+FFFD) or refused up front with a 4xx saying why.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.server.conftest import LiveServer
from tests.server.support import SseReader, auth

TERMINAL = {"completed", "failed", "cancelled", "compensated"}

# Raw JSON: the escapes reach the server as they are (an encoder might refuse or fix them).
POISONED_RUNS = [
    '{"input": {"qty": 2, "note": {"k\\ud800": ["x\\udfffy", {"deep": "a\\u0000b"}]}}, '
    '"options": {"wait": %s}}',
    '{"input": {"qty": 2, "n\\u0000": {"list": [1, "\\ud83d\\ude00\\ud800"]}}, '
    '"options": {"wait": %s}}',
]
ESCAPED = [{"qty": 2, "note": {"k\ufffd": ["x\ufffdy", {"deep": "a\ufffdb"}]}},
           {"qty": 2, "n\ufffd": {"list": [1, "\U0001f600\ufffd"]}}]
POISONED_TRIGGER = '{"text": "a\\u0000b", "k\\u0000": {"nested": ["\\u0000"]}}'


async def _settled(client: httpx.AsyncClient, key: dict[str, str], eid: str) -> dict[str, Any]:
    for _ in range(600):
        answer = await client.get(f"/api/v1/executions/{eid}", headers=key)
        assert answer.status_code == 200, answer.text
        summary: dict[str, Any] = answer.json()
        if summary["status"] in TERMINAL:
            return summary
        await asyncio.sleep(0.05)
    raise AssertionError(f"execution {eid} did not finish: {summary}")


async def _recorded_whole(client: httpx.AsyncClient, key: dict[str, str], eid: str) -> dict[str, Any]:
    summary = await _settled(client, key, eid)
    events = (await client.get(f"/api/v1/executions/{eid}/events", headers=key)).json()
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)) and summary["event_count"] == len(seqs), eid
    assert events[0]["type"] == "execution.started"
    assert events[-1]["type"] == f"execution.{summary['status']}"
    return summary


async def test_poisoned_requests_damage_no_other_run(live: tuple[LiveServer, dict[str, str]]) -> None:
    server, secrets = live
    key = auth(secrets["run"])
    read = auth(secrets["read"])
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        async def clean(i: int) -> str:
            answer = await client.post("/api/v1/pipelines/order/runs", headers=key,
                                       json={"input": {"qty": i}, "options": {"wait": i % 2 == 0}})
            assert answer.status_code == 201, answer.text
            return str(answer.json()["execution_id"])

        async def clean_trigger(i: int) -> str:
            answer = await client.post("/ingest", headers=key, json={"i": i})
            assert answer.status_code == 202, answer.text
            return str(answer.json()["execution_id"])

        async def poisoned(body: str) -> httpx.Response:
            return await client.post("/api/v1/pipelines/slow/runs", content=body.encode(),
                                     headers={**key, "Content-Type": "application/json"})

        async def poisoned_trigger() -> httpx.Response:
            return await client.post("/ingest", content=POISONED_TRIGGER.encode(),
                                     headers={**key, "Content-Type": "application/json"})

        async with client.stream("GET", "/api/v1/stream", headers=read) as stream:
            live_events = SseReader(stream)
            assert "comment" in await live_events.next(timeout=30)  # subscribed
            bad = [poisoned(body % wait) for body in POISONED_RUNS for wait in ("true", "false")]
            results = await asyncio.gather(*bad, poisoned_trigger(),
                                           *(clean(i) for i in range(24)),
                                           *(clean_trigger(i) for i in range(8)))
            bad_answers: list[httpx.Response] = list(results[:5])
            clean_ids: list[str] = list(results[5:])
            # The live stream outlives the poisoned runs' events (shown escaped, as stored)
            # and carries every clean run to its end.
            unfinished = set(clean_ids)
            while unfinished:
                message = await live_events.next(timeout=30)
                if message.get("event") == "execution.completed":
                    unfinished.discard(message["data"]["execution_id"])

        for eid in clean_ids:
            summary = await _recorded_whole(client, read, eid)
            assert summary["status"] == "completed", summary
        for i, answer in enumerate(bad_answers):
            if 400 <= answer.status_code < 500:  # refused up front: a JSON error body saying why
                assert answer.json()["message"], answer.text
                continue
            assert answer.status_code in (201, 202), answer.text
            summary = await _recorded_whole(client, read, answer.json()["execution_id"])
            assert summary["status"] == "completed", (summary["error"], answer.text)
            payload = summary["trigger_payload"]
            if i < 4:
                assert payload == ESCAPED[i // 2]
                assert answer.status_code != 201 or json.loads(answer.text)["status"] in (
                    "running", "completed")
            else:
                assert payload["body"] == {"text": "a\ufffdb", "k\ufffd": {"nested": ["\ufffd"]}}
