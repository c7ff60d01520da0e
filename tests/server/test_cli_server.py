"""``wfstudio keys`` in-process and ``wfstudio serve`` as a real process on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from engine.cli_server import main, parse_addr
from engine.server.keys import KeyStore
from engine.service.errors import InvalidInput
from engine.store.store import Store
from tests.server.support import write_pipelines


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
         "--addr", f"127.0.0.1:{port}", "--store", store], stderr=subprocess.PIPE, text=True,
        env=env, cwd=Path(__file__).resolve().parents[2])
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise AssertionError("the server did not come up")
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
        _, stderr = process.communicate(timeout=20)
    assert "no API keys yet" in stderr and "wfstudio keys create --name admin --scope admin" in stderr
    assert secret not in stderr
