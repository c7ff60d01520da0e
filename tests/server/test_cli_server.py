"""``wfstudio keys`` in-process and ``wfstudio serve`` as a real process on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from engine.cli import main
from engine.cli.serve import parse_addr, parse_size
from engine.server.keys import KeyStore
from engine.service.errors import InvalidInput
from engine.store.store import Store
from tests.server.support import healthy, write_pipelines
from tests.waiting import wait_until


def test_keys_create_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["keys", "create", "--name", "ops", "--tenant", "acme", "--scope", "run",
                 "--scope", "debug", "--expires", "30d", "--store", store]) == 0
    out = capsys.readouterr().out
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("wfs_") and "shown this once" in out
    with Store.open(store) as opened:
        key = KeyStore(opened).verify(secret)
    assert key is not None and key.tenant == "acme" and key.scopes == ["run", "debug"]
    assert key.expires is not None and 29 * 86400 < key.expires - time.time() <= 30 * 86400

    assert main(["keys", "list", "--store", store]) == 0
    listing = capsys.readouterr().out
    assert key.id in listing and "active" in listing and secret not in listing
    assert secret.split("_", 2)[2] not in listing

    assert main(["keys", "revoke", f"wfs_{key.id}", "--store", store]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["keys", "list", "--json", "--store", store]) == 0
    assert json.loads(capsys.readouterr().out)[0]["active"] is False
    with Store.open(store) as opened:
        assert KeyStore(opened).verify(secret) is None


def test_keys_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["keys", "create", "--name", "x", "--expires", "soon", "--store", store]) == 2
    assert main(["keys", "create", "--name", "x", "--tenant", "no spaces", "--store", store]) == 2
    assert main(["keys", "revoke", "nope", "--store", store]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(e.startswith("wfstudio: ") for e in errors)
    assert "--expires" in errors[0] and "tenant" in errors[1] and "nope" in errors[2]


def test_parse_addr() -> None:
    assert parse_addr("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_addr(":9000") == ("127.0.0.1", 9000)
    assert parse_addr("[::1]:8080") == ("::1", 8080)
    for bad in ("8080", "host:", "host:99999", "host:http"):
        with pytest.raises(InvalidInput):
            parse_addr(bad)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_serve_refuses_everything_until_a_key_exists(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'served.db'}"
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "serve", str(write_pipelines(tmp_path)),
         "--addr", f"127.0.0.1:{port}", "--store", store], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=env, cwd=Path(__file__).resolve().parents[2])
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: healthy(base), "the server to come up", timeout=60)
        for path in ("/api/v1/pipelines", "/api/v1/keys"):
            assert httpx.get(base + path).status_code == 401
        assert httpx.post(f"{base}/greet/x", json={}).status_code == 401

        # The first admin key, made by the CLI in another process, works at once.
        with Store.open(store) as opened:
            _, secret = KeyStore(opened).create("admin", scopes=["admin"])
        answer = httpx.get(f"{base}/api/v1/pipelines", headers={"X-API-Key": secret})
        assert answer.status_code == 200 and "greet" in answer.text
        assert httpx.post(f"{base}/greet/x", json={}, headers={"X-API-Key": secret}).status_code == 201
    finally:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0 and "Traceback" not in stderr, stderr
    assert "no API keys yet" in stderr and "wfstudio keys create --name admin --scope admin" in stderr
    assert secret not in stderr
    assert "/api/v1/health" not in stdout + stderr  # no access log unless asked for


def _children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if entry.isdigit() and stat[1] == str(pid) and stat[0] != "Z":
            found.append(int(entry))
    return found


def _start_workers(tmp_path: Path, *extra: str, with_key: bool = True,
                   new_session: bool = False) -> tuple[subprocess.Popen[str], str, str]:
    store = f"sqlite:///{tmp_path / 'served.db'}"
    secret = ""
    if with_key:
        with Store.open(store) as opened:
            _, secret = KeyStore(opened).create("runner", scopes=["run"])
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "serve", str(write_pipelines(tmp_path)),
         "--addr", f"127.0.0.1:{port}", "--store", store, "--workers", "2", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=Path(__file__).resolve().parents[2], start_new_session=new_session)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: healthy(base) or process.poll() is not None, "the server to come up",
                   timeout=60)
        assert process.poll() is None
    except AssertionError:
        process.kill()
        raise AssertionError(f"the server did not come up: {process.communicate()[1]}") from None
    return process, base, secret


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="counts processes in /proc")
def test_serve_with_workers_runs_them_on_one_address_and_stops_them_all(tmp_path: Path) -> None:
    process, base, secret = _start_workers(tmp_path, "--access-log", "--max-body", "4KB",
                                           "--max-input", "2KB")
    try:
        workers = _children(process.pid)
        assert len(workers) == 2
        for n in range(10):  # a new connection each: whichever worker accepts it answers
            answer = httpx.post(f"{base}/greet/w{n}", json={}, headers={"X-API-Key": secret})
            assert answer.status_code == 201 and answer.json()["greeting"] == f"hello w{n}"
        for n in range(4):  # --max-body reaches every worker
            answer = httpx.post(f"{base}/greet/big{n}", content=b"x" * 5000,
                                headers={"X-API-Key": secret})
            assert answer.status_code == 413, answer.text
        assert httpx.post(f"{base}/greet/small", content=b"x" * 4000,
                          headers={"X-API-Key": secret}).status_code == 201
        for _ in range(4):  # --max-input too: a run's input over 2 KB
            answer = httpx.post(f"{base}/api/v1/pipelines/greet/runs", headers={"X-API-Key": secret},
                                json={"input": {"note": "x" * 3000}})
            assert answer.status_code == 413 and "max_input" in answer.json()["message"], answer.text
    finally:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "with 2 worker processes" in stderr and '"POST /greet/w0 HTTP/1.1" 201' in stdout
    assert stderr.count("no API keys yet") == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)  # stopped and reaped


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="counts processes in /proc")
def test_a_worker_that_dies_stops_the_others(tmp_path: Path) -> None:
    process, _base, _secret = _start_workers(tmp_path, with_key=False)
    try:
        workers = _children(process.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 1 and "a worker process exited" in stderr
    assert stderr.count("no API keys yet") == 1  # said once, not once per worker
    assert not Path(f"/proc/{workers[1]}").exists()  # the other one was stopped and reaped


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)


class Load:
    """Threads posting to the server in a loop, each on its own kept-alive connection."""

    def __init__(self, base: str, secret: str, threads: int = 6) -> None:
        self.answered = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._loop, args=(base, secret), daemon=True)
                        for _ in range(threads)]
        for thread in self.threads:
            thread.start()

    def _loop(self, base: str, secret: str) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                try:
                    client.post(f"{base}/greet/load", json={}, headers={"X-API-Key": secret})
                    self.answered += 1
                except httpx.TransportError:
                    time.sleep(0.01)  # the server is going: keep knocking until told to stop

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


SIGNALLED = {
    "SIGINT to the supervisor": (signal.SIGINT, False),
    "SIGTERM to the supervisor": (signal.SIGTERM, False),
    "Ctrl-C at a terminal (SIGINT to its process group)": (signal.SIGINT, True),
}


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="counts processes in /proc")
@pytest.mark.parametrize("how", SIGNALLED)
def test_workers_all_stop_on_the_first_signal_under_load(tmp_path: Path, how: str) -> None:
    signum, to_group = SIGNALLED[how]
    process, base, secret = _start_workers(tmp_path, new_session=to_group)
    load = Load(base, secret)
    try:
        workers = _children(process.pid)
        assert len(workers) == 2
        _wait_for(lambda: load.answered >= 30, "the server answered under load")
        if to_group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        _, stderr = process.communicate(timeout=90)  # exits once, on this one signal
    finally:
        load.close()
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert all(_gone(pid) for pid in workers)  # stopped and reaped by the supervisor
    with pytest.raises(httpx.TransportError):  # nobody answers on the address any more
        httpx.get(f"{base}/api/v1/health", timeout=5)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="counts processes in /proc")
def test_a_signal_while_the_workers_start_stops_them_all(tmp_path: Path) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "serve", str(write_pipelines(tmp_path)),
         "--addr", f"127.0.0.1:{port}", "--store", f"sqlite:///{tmp_path / 's.db'}",
         "--workers", "2"], stderr=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[2])
    try:
        assert process.stderr is not None
        announced = process.stderr.readline()  # said once the workers are started
        pids = [int(p) for p in announced.split("(pids ")[1].split(")")[0].split(", ")]
        _wait_for(lambda: (tmp_path / "s.db").exists() or process.poll() is not None,
                  "a worker is opening the store")
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # while the workers open the store
        stderr = process.stderr.read()
        process.wait(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert all(_gone(pid) for pid in pids)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="counts processes in /proc")
def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    process, _base, _secret = _start_workers(tmp_path)
    workers = _children(process.pid)
    assert len(workers) == 2
    process.kill()
    process.communicate(timeout=60)
    try:
        _wait_for(lambda: all(_gone(pid) for pid in workers), "the orphaned workers stopped")
    finally:
        for pid in workers:
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)


def test_serve_refuses_zero_workers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--workers", "0", "--store", f"sqlite:///{tmp_path / 's.db'}"]) == 2
    assert "--workers" in capsys.readouterr().err


def test_max_body_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_size("10MB") == parse_size("10 mb") == parse_size("10MiB") == 10 * 1024 * 1024
    assert parse_size("4096") == parse_size("4KB") == parse_size("4k") == 4096
    assert parse_size("1.5GB") == 3 * 1024**3 // 2
    for bad in ("", "ten", "10XB", "-1", "0", "1e6"):
        with pytest.raises(InvalidInput):
            parse_size(bad)
    assert main(["serve", "--max-body", "lots"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wfstudio: --max-body 'lots': use a size") and len(err.splitlines()) == 1
