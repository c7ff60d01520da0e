"""Real ``wfstudio serve`` processes on one store: a pause shared across them, and a server
killed with SIGKILL under load whose executions a restarted server marks interrupted."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.server.keys import KeyStore
from engine.store.store import Store
from tests.server.support import auth, healthy, write_pipelines
from tests.waiting import wait_for_condition, wait_until

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = {"execution.completed", "execution.failed", "execution.cancelled",
            "execution.compensated", "execution.interrupted"}

HOOK = """
pipelines:
  hook:
    trigger: {type: http, config: {method: POST, path: /hook}}
    steps:
      - {name: first, type: step.delay, config: {duration: 300ms}}
      - {name: second, type: step.delay, config: {duration: 300ms}}
      - {name: note, type: step.log, config: {message: "done {{ .trigger.body.n }}"}}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Served:
    def __init__(self, process: subprocess.Popen[str], url: str):
        self.process = process
        self.url = url


@contextmanager
def serving(tmp_path: Path) -> Iterator[Callable[[Path, str], Served]]:
    """Start ``wfstudio serve FILE --store URL`` processes; stopped (SIGINT) at the end."""
    started: list[Served] = []

    def start(file: Path, store: str) -> Served:
        port = _free_port()
        log = open(tmp_path / f"serve-{port}.log", "w")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "serve", str(file), "--addr",
             f"127.0.0.1:{port}", "--store", store, "--log-level", "warning"],
            stdout=log, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()
        served = Served(process, f"http://127.0.0.1:{port}")
        started.append(served)
        wait_until(lambda: healthy(served.url) or process.poll() is not None,
                   "the server to come up", timeout=60)
        if process.poll() is None:
            return served
        raise AssertionError(f"the server did not come up: {(tmp_path / f'serve-{port}.log').read_text()}")

    try:
        yield start
    finally:
        for served in started:
            if served.process.poll() is None:
                served.process.send_signal(signal.SIGINT)
        for served in started:
            try:
                served.process.wait(20)
            except subprocess.TimeoutExpired:
                served.process.kill()


def _admin_key(store: str) -> str:
    with Store.open(store) as opened:
        return KeyStore(opened).create("admin", scopes=["admin"])[1]


@pytest.mark.postgres
def test_a_pause_on_one_server_process_is_listed_and_resumed_through_another(
        tmp_path: Path, fresh_pg_url: Callable[[], str]) -> None:
    store = fresh_pg_url()
    key = auth(_admin_key(store))
    file = write_pipelines(tmp_path)
    with serving(tmp_path) as start:
        a, b = start(file, store), start(file, store)
        bp = httpx.post(f"{a.url}/api/v1/debug/breakpoints", headers=key,
                        json={"pipeline": "order", "step": "tax"})
        assert bp.status_code == 201
        # B stops at A's breakpoint (listing on B re-reads them from the database).
        assert [x["id"] for x in httpx.get(f"{b.url}/api/v1/debug/breakpoints",
                                           headers=key).json()] == [bp.json()["id"]]
        run = httpx.post(f"{b.url}/api/v1/pipelines/order/runs", headers=key,
                         json={"input": {"qty": 3}, "options": {"wait": False}})
        assert run.status_code in (200, 201), run.text
        execution_id = run.json()["execution_id"]
        paused: list[dict[str, Any]] = wait_until(
            lambda: httpx.get(f"{a.url}/api/v1/debug/paused", headers=key, timeout=30).json(),
            "the pause to show on the other server")
        assert [p["execution_id"] for p in paused] == [execution_id]
        assert paused[0]["step"] == "tax" and paused[0]["context"]["current"]["total"] == 30

        answer = httpx.post(f"{a.url}/api/v1/debug/paused/{execution_id}/resume", headers=key,
                            json={"action": "continue",
                                  "patch": [{"op": "replace", "path": "/current/total",
                                             "value": 5}]})
        assert answer.status_code == 204, answer.text
        again = httpx.post(f"{a.url}/api/v1/debug/paused/{execution_id}/resume", headers=key,
                           json={"action": "continue"})
        assert again.status_code == 409

        def finished() -> dict[str, Any] | None:
            summary: dict[str, Any] = httpx.get(f"{a.url}/api/v1/executions/{execution_id}",
                                                headers=key, timeout=30).json()
            return summary if summary["status"] not in ("running", "paused") else None

        summary = wait_until(finished, "the resumed execution to finish")
        assert summary["status"] == "completed" and summary["output"] == {"gross": 10}
        assert httpx.get(f"{b.url}/api/v1/debug/paused", headers=key).json() == []


async def _load(url: str, key: dict[str, str], acked: list[str], stop: asyncio.Event) -> None:
    """Post to the hook with 8 concurrent clients until ``stop``; note acknowledged ids."""
    async with httpx.AsyncClient(base_url=url, headers=key, timeout=30) as client:
        async def one_client(c: int) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    answer = await client.post("/hook", json={"n": f"{c}-{n}"})
                except httpx.TransportError:
                    return  # the server is gone
                if answer.status_code == 202:
                    acked.append(answer.json()["execution_id"])

        await asyncio.gather(*(one_client(c) for c in range(8)))


def _rows(store: str, sql: str) -> list[tuple[Any, ...]]:
    """Read the store without opening it as a Store (which would itself recover)."""
    if store.startswith("sqlite:///"):
        with sqlite3.connect(store.removeprefix("sqlite:///")) as conn:
            return list(conn.execute(sql).fetchall())
    import psycopg

    with psycopg.connect(store) as conn:
        return list(conn.execute(sql).fetchall())


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres),
                                     "sqlite"])
def test_a_server_killed_under_load_loses_no_acknowledged_run_and_the_restart_marks_it(
        backend: str, tmp_path: Path, fresh_pg_url: Callable[[], str]) -> None:
    store = fresh_pg_url() if backend == "postgresql" else f"sqlite:///{tmp_path / 'store.db'}"
    key = auth(_admin_key(store))
    file = tmp_path / "hook.yaml"
    file.write_text(HOOK)
    acked: list[str] = []
    with serving(tmp_path) as start:
        victim = start(file, store)

        async def load_then_kill() -> None:
            stop = asyncio.Event()
            loader = asyncio.ensure_future(_load(victim.url, key, acked, stop))
            # until runs are in flight, some finished, some not
            await wait_for_condition(lambda: len(acked) >= 40, "40 acknowledged runs", timeout=60)
            victim.process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(victim.process.wait, 10)
            stop.set()
            await loader

        asyncio.run(load_then_kill())
        assert victim.process.returncode == -signal.SIGKILL and len(acked) >= 40
        unfinished = _rows(store, "SELECT count(*) FROM executions "
                                  "WHERE status IN ('running', 'paused')")[0][0]
        assert unfinished > 0  # the kill did leave executions half-done

        restarted = start(file, store)
        assert httpx.get(f"{restarted.url}/api/v1/health").status_code == 200

    statuses = dict(_rows(store, "SELECT id, status FROM executions"))
    assert set(acked) <= set(statuses)  # every acknowledged execution is recorded
    assert "interrupted" in statuses.values()
    assert set(statuses.values()) <= {"completed", "interrupted"}
    events: dict[str, list[tuple[int, str]]] = {}
    for execution_id, seq, type_ in _rows(store, "SELECT execution_id, seq, type "
                                                 "FROM execution_events ORDER BY execution_id, seq"):
        events.setdefault(execution_id, []).append((seq, type_))
    counts = dict(_rows(store, "SELECT id, event_count FROM executions"))
    for execution_id, status in statuses.items():
        seqs = [seq for seq, _ in events[execution_id]]
        assert seqs == list(range(1, len(seqs) + 1)), execution_id  # no gap, no half batch
        last = events[execution_id][-1][1]
        assert last in TERMINAL and (last == "execution.interrupted") == (status == "interrupted")
        assert counts[execution_id] == len(seqs)
    assert _rows(store, "SELECT count(*) FROM step_runs WHERE status = 'running'")[0][0] == 0
