"""``/definitions/validate`` and ``PUT /definitions`` on the server: bombs do not freeze it,
checks run off the event loop with a time limit, imports stay inside the definition roots."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from engine.server.keys import KeyStore
from engine.service.local import LocalService
from engine.store.store import Store
from tests.engine.test_config_bounded import laughs, merge_bomb, wide_merge_bomb
from tests.server.support import auth, write_pipelines

API = "/api/v1"
PIPELINE = "pipelines: {p: {steps: [{name: a, type: step.set, config: {values: {x: 1}}}]}}\n"


def big_file(steps: int) -> str:
    lines = ["pipelines:", "  big:", "    steps:"]
    lines += [
        f"      - {{name: s{i}, type: step.set, if: '.n > {i}', config: {{values: "
        f"{{n: '{{{{ .n + {i} }}}}'}}}}}}"
        for i in range(steps)
    ]
    return "\n".join(lines) + "\n"


async def test_imports_stay_inside_the_definition_roots(
    client: httpx.AsyncClient, secrets: dict[str, str], tmp_path: Path
) -> None:
    read = auth(secrets["read"])
    (tmp_path / "shared.yaml").write_text("schemas: {order: {type: object}}\n")  # served folder
    ok = await client.post(
        f"{API}/definitions/validate",
        headers=read,
        json={"yaml": "imports: [../../shared.yaml]\n" + PIPELINE, "file": "orders.yaml"},
    )
    # The text sits in the caller's deploy folder (deployed/default); the served folder is
    # one of the roots.
    assert ok.status_code == 200 and ok.json() == []
    os.mkfifo(tmp_path / "pipe.yaml")
    answers = {}
    for name in (
        "/etc/passwd",
        "/etc/nothing-here",
        "../../../../../etc/passwd",
        "/dev/zero",
        str(tmp_path.parent / "elsewhere.json"),
    ):
        response = await client.post(
            f"{API}/definitions/validate",
            headers=read,
            json={"yaml": f"imports: [{name!r}]\n" + PIPELINE, "file": "orders.yaml"},
        )
        # Before: /etc/passwd was read (its lines came back as diagnostics), /dev/zero was a
        # 500 MemoryError.
        assert response.status_code == 200, response.text
        [problem] = response.json()
        assert (problem["file"], problem["line"], problem["col"]) == ("orders.yaml", 1, 11)
        assert "root:" not in problem["message"]
        answers[name] = problem["message"].split(": ", 1)[1]
    outside = {v for k, v in answers.items() if not k.startswith(str(tmp_path))}
    assert len(outside) == 1 and "outside the folders" in outside.pop()
    # The served folder holds the deploy directory: another tenant's deployment is closed.
    other = tmp_path / "deployed" / "acme" / "secret.yaml"
    other.parent.mkdir(parents=True)
    other.write_text("schemas: {acme-only: {type: object}}\n")
    closed = await client.post(f"{API}/definitions/validate", headers=read, json={
        "yaml": "imports: [../acme/secret.yaml]\n" + PIPELINE, "file": "orders.yaml"})
    assert closed.status_code == 200
    [problem] = closed.json()
    assert problem["message"].split(": ", 1)[1] == answers["/etc/passwd"]
    # Inside the served folder only regular files are read: the store is a file, the FIFO not.
    pipe = await client.post(
        f"{API}/definitions/validate",
        headers=read,
        json={"yaml": "imports: [../../pipe.yaml]\n" + PIPELINE, "file": "orders.yaml"},
    )
    assert "not a regular file" in pipe.json()[0]["message"]


async def test_deploy_confines_imports_too(client: httpx.AsyncClient, keys: KeyStore) -> None:
    deployer = auth(keys.create("deployer", "default", ["deploy"])[1])
    refused = await client.put(
        f"{API}/definitions",
        headers=deployer,
        json={"yaml": "imports: [/etc/passwd]\n" + PIPELINE, "file": "x.yaml"},
    )
    assert refused.status_code == 422
    [detail] = refused.json()["details"]
    assert detail["line"] == 1 and "outside the folders" in detail["message"]


async def test_validation_runs_off_the_event_loop(service: LocalService) -> None:
    # Before: load_text ran inside the coroutine, so nothing else ran until it finished.
    task = asyncio.ensure_future(service.validate(big_file(4000)))
    ticks = 0
    while not task.done():
        await asyncio.sleep(0.005)
        ticks += 1
    assert await task == []
    assert ticks >= 3


async def test_a_check_over_the_time_limit_is_a_422(
    client: httpx.AsyncClient, service: LocalService, secrets: dict[str, str]
) -> None:
    service.load_time_limit = 0.001  # far less than any 2,000-step check takes
    response = await client.post(
        f"{API}/definitions/validate",
        headers=auth(secrets["read"]),
        json={"yaml": big_file(2000), "file": "big.yaml"},
    )
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_input" and "took longer than 0.001 s" in body["message"]
    assert "split it into smaller files" in body["message"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_bombs_do_not_freeze_a_real_server(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'served.db'}"
    with Store.open(store) as opened:
        _, secret = KeyStore(opened).create("reader", scopes=["read"])
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "serve",
            str(write_pipelines(tmp_path)),
            "--addr",
            f"127.0.0.1:{port}",
            "--store",
            store,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            for _ in range(400):
                try:
                    if (await http.get(f"{API}/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError("the server did not come up")

            async def validate(text: str) -> httpx.Response:
                return await http.post(
                    f"{API}/definitions/validate",
                    headers=auth(secret),
                    json={"yaml": text + PIPELINE, "file": "bomb.yaml"},
                )

            # Before: the 483-byte merge bomb ran for minutes and the server answered nothing
            # else meanwhile (the 60 s client timeout failed this test).
            bombs = [
                asyncio.ensure_future(validate(text))
                for text in (merge_bomb(10, 9), wide_merge_bomb(10, 9), laughs())
            ]
            health = await http.get(f"{API}/health")
            assert health.status_code == 200 and health.json() == {"ok": True}
            answers = await asyncio.gather(*bombs)
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    assert [a.status_code for a in answers] == [200, 200, 200]
    # Repeated merge sources add nothing: it simply loads (unknown top-level keys are warnings).
    assert {d["severity"] for d in answers[0].json()} == {"warning"}
    for answer in answers[1:]:
        [problem] = answer.json()
        assert problem["file"] == "bomb.yaml" and problem["line"] > 1
        assert "too large" in problem["message"] and "fewer nested aliases" in problem["message"]


@pytest.mark.parametrize("name", ["../escape.yaml", "sub/../../escape.yaml"])
async def test_validate_file_names_cannot_carry_folders(
    client: httpx.AsyncClient, secrets: dict[str, str], name: str
) -> None:
    response = await client.post(
        f"{API}/definitions/validate", headers=auth(secrets["read"]), json={"yaml": PIPELINE, "file": name}
    )
    assert response.status_code == 422
