"""Kill tests for sources: serve a file, SIGKILL the server while it consumes, start it
again, and count what every event became.

The promise checked: each published event has exactly one completed execution, none is
lost, however often the process died (at-least-once transport + the dedup record + reruns
of interrupted executions). Waits are on conditions, never on the clock.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx

from engine.store.store import Store
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def steady_port() -> int:
    """A free port below the ephemeral range (32768+ on Linux), for a server restarted on
    the same port: other tests' ``bind(0)`` never picks it while the server is down."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 32000")


class Server:
    """``wfstudio serve FILE --store URL`` in a subprocess (its log kept in ``log``)."""

    def __init__(self, file: Path, store: str, log: Path, *, port: int | None = None,
                 env: dict[str, str] | None = None, args: Iterable[str] = ()):
        self.file, self.store, self.log = file, store, log
        self.port = port or steady_port()  # kept across restarts
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env or {}
        self.args = list(args)
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> Server:
        with open(self.log, "a") as log:
            log.write(f"\n===== start on port {self.port}\n")
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "engine.cli", "serve", str(self.file), "--addr",
                 f"127.0.0.1:{self.port}", "--store", self.store, "--log-level", "warning",
                 *self.args],
                stdout=log, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
        process = self.process
        wait_until(lambda: self.healthy() or process.poll() is not None,
                   "the server to come up", timeout=90)
        if process.poll() is not None:
            raise AssertionError(f"the server did not come up:\n{self.log.read_text()[-4000:]}")
        return self

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/api/v1/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (what is not recorded is not acknowledged)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)


def completed_per_event(store: str, event_ids: Iterable[str] | None = None) -> Counter[str]:
    """How many completed executions each event (by CloudEvents id) has, from the store's
    executions started by sources. ``event_ids``: only these (default: all)."""
    wanted = set(event_ids) if event_ids is not None else None
    counts: Counter[str] = Counter()
    with Store.open(store) as opened, opened.read() as conn:
        rows = conn.exec_driver_sql(
            "SELECT trigger_payload FROM executions WHERE trigger_type IN ('event', 'schedule') "
            "AND status = 'completed'").all()
    for (payload,) in rows:
        envelope = json.loads(payload) if isinstance(payload, str) else payload
        event_id = str(envelope.get("id"))
        if wanted is None or event_id in wanted:
            counts[event_id] += 1
    return counts


def unfinished(store: str) -> int:
    """Executions started by sources that are still running or were left interrupted
    without a rerun (their event row still points at them)."""
    with Store.open(store) as opened, opened.read() as conn:
        running = conn.exec_driver_sql(
            "SELECT count(*) FROM executions WHERE trigger_type IN ('event', 'schedule') AND status = 'running'"
        ).scalar_one()
        pending = conn.exec_driver_sql(
            "SELECT count(*) FROM source_events WHERE status = 'started'").scalar_one()
    return int(running) + int(pending)


def kill_and_count(server: Server, event_ids: list[str], *, kills: int = 3,
                   publish: Callable[[], Any] | None = None, timeout: float = 600) -> Counter[str]:
    """Start ``server``; SIGKILL it ``kills`` times, each once more events have completed
    (a quarter of them each time); start it once more and wait until every event has a
    completed execution and nothing is left running. Returns the completed count per
    event (the caller asserts it is exactly one each). ``publish`` (optional) is called
    after the first start, for sources that only read new events (a CDC stream)."""
    total = len(event_ids)
    server.start()
    if publish is not None:
        publish()
    def completed() -> int:
        return len(completed_per_event(server.store, event_ids))

    for k in range(1, kills + 1):
        goal = total * k // (kills + 1)
        wait_until(lambda: completed() >= goal,  # noqa: B023 - called before goal changes
                   f"{goal} of {total} events to complete before kill {k}", timeout=timeout,
                   interval=0.05)
        server.kill()
        server.start()
    wait_until(lambda: len(completed_per_event(server.store, event_ids)) == total,
               f"all {total} events to complete", timeout=timeout, interval=0.2)
    wait_until(lambda: unfinished(server.store) == 0, "no execution left running",
               timeout=timeout, interval=0.2)
    counts = completed_per_event(server.store, event_ids)
    server.stop()
    return counts


def assert_exactly_once(counts: Counter[str], event_ids: list[str]) -> None:
    missing = [e for e in event_ids if counts.get(e, 0) == 0]
    twice = {e: n for e, n in counts.items() if n > 1}
    assert not missing, f"{len(missing)} events have no completed execution: {missing[:10]}"
    assert not twice, f"{len(twice)} events have more than one: {list(twice.items())[:10]}"
    assert len(counts) == len(event_ids)
