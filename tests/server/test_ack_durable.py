"""Acknowledged means recorded, for every entry point that answers before a run has ended.

A real ``wfstudio serve`` is SIGKILLed three times under load (on SQLite and on PostgreSQL)
while clients start runs through the run endpoint with ``wait: false``, replays with
``wait: false``, an http trigger (202) and waited runs. Every execution id a client was
given must afterwards be in the store with its start event.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.server.support import auth
from tests.server.test_multiprocess import Served, _admin_key, _rows, serving

PIPELINES = """
pipelines:
  work:
    steps:
      - {name: first, type: step.delay, config: {duration: 200ms}}
      - {name: note, type: step.log, config: {message: "done {{ .n }}"}}
  hook:
    trigger: {type: http, config: {method: POST, path: /hook}}
    steps:
      - {name: first, type: step.delay, config: {duration: 200ms}}
"""
KILLS = 3
ACKS_PER_ROUND = 150  # acknowledged before the kill, which lands while more are coming in


async def _load(url: str, key: dict[str, str], acked: list[str], stop: asyncio.Event) -> None:
    """Twelve clients start runs every way that answers early until ``stop``; every id a
    client is given goes to ``acked``."""
    async with httpx.AsyncClient(base_url=url, headers=key, timeout=10) as client:
        answer = await client.post("/api/v1/pipelines/work/runs", json={"input": {"n": 0}})
        assert answer.status_code == 201, answer.text
        acked.append(source := answer.json()["execution_id"])

        async def one_client(c: int) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    if n % 5 == 0:
                        answer = await client.post(f"/api/v1/executions/{source}/replay",
                                                   json={"wait": False})
                    elif n % 5 == 1:
                        answer = await client.post("/hook", json={"n": n})
                    else:
                        answer = await client.post("/api/v1/pipelines/work/runs",
                                                   json={"input": {"n": n}, "options": {"wait": False}})
                except httpx.TransportError:
                    return  # the server is gone
                if answer.status_code in (201, 202):
                    acked.append(answer.json()["execution_id"])

        await asyncio.gather(*(one_client(c) for c in range(12)))


async def _load_then_kill(victim: Served, key: dict[str, str], acked: list[str]) -> None:
    """Load ``victim`` until it has acknowledged ACKS_PER_ROUND more runs, then SIGKILL it
    while the clients are still sending."""
    before = len(acked)
    stop = asyncio.Event()
    loader = asyncio.ensure_future(_load(victim.url, key, acked, stop))
    for _ in range(3000):  # until the load is in full swing (at most ~60 s)
        await asyncio.sleep(0.02)
        if len(acked) - before >= ACKS_PER_ROUND or loader.done():
            break
    victim.process.send_signal(signal.SIGKILL)
    await asyncio.to_thread(victim.process.wait, 30)
    stop.set()
    await loader


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres),
                                     "sqlite"])
def test_no_acknowledged_run_is_lost_when_the_server_is_killed(
        backend: str, tmp_path: Path, fresh_pg_url: Callable[[], str]) -> None:
    store = fresh_pg_url() if backend == "postgresql" else f"sqlite:///{tmp_path / 'store.db'}"
    key = auth(_admin_key(store))
    file = tmp_path / "work.yaml"
    file.write_text(PIPELINES)
    acked: list[str] = []
    with serving(tmp_path) as start:
        for _ in range(KILLS):
            victim = start(file, store)
            before = len(acked)
            asyncio.run(_load_then_kill(victim, key, acked))
            assert victim.process.returncode == -signal.SIGKILL
            assert len(acked) - before >= ACKS_PER_ROUND

    stored = {row[0] for row in _rows(store, "SELECT id FROM executions")}
    started = {row[0] for row in _rows(store, "SELECT execution_id FROM execution_events "
                                              "WHERE seq = 1 AND type = 'execution.started'")}
    assert len(set(acked)) == len(acked) >= KILLS * ACKS_PER_ROUND
    assert sorted(set(acked) - stored) == []  # every acknowledged execution is recorded
    assert sorted(set(acked) - started) == []  # with its start
