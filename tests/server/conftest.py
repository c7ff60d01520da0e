"""Fixtures of the hosted server's tests.

- ``service`` / ``client``: the app in-process over ``httpx.ASGITransport`` (same event loop
  as the test), on a SQLite file; for most endpoint tests.
- ``live``: a real uvicorn on a free loopback port, in a thread with its own event loop
  (the service is opened on that loop), on SQLite and on PostgreSQL; for event streams,
  http triggers and schemathesis.

Keys: ``secrets`` maps a scope name to a key of the ``default`` tenant with only that scope.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from engine.server import KeyStore, create_app
from engine.service.local import LocalService
from engine.service.naming import ServerNames
from engine.store.store import Store
from tests.server.support import make_secrets, write_pipelines

# ---------------------------------------------------------------- in-process


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[LocalService]:
    svc = await LocalService.open([write_pipelines(tmp_path)],
                                  store=f"sqlite:///{tmp_path / 'store.db'}", names=ServerNames())
    try:
        yield svc
    finally:
        await svc.close()


@pytest.fixture
def keys(service: LocalService) -> KeyStore:
    return KeyStore(service.store)


@pytest.fixture
def secrets(keys: KeyStore) -> dict[str, str]:
    return make_secrets(keys)


@pytest.fixture
async def client(service: LocalService, keys: KeyStore,
                 tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(service, keys=keys, heartbeat=0.2, deploy_dir=tmp_path / "deployed")
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://server") as c:
        yield c


# ---------------------------------------------------------------- real server


class LiveServer:
    """uvicorn serving ``create_app`` on 127.0.0.1:<free port>, in a thread."""

    def __init__(self, files: list[Path], store_url: str, **app_options: Any):
        self.files = files
        self.store_url = store_url
        self.app_options = app_options
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._ready = threading.Event()
        self._server: uvicorn.Server | None = None
        self.service: LocalService | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="live-server", daemon=True)

    def start(self) -> LiveServer:
        self._thread.start()
        if not self._ready.wait(20) or self._error is not None:
            raise RuntimeError(f"the server did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(20)
        self.sock.close()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        deploy_dir = self.app_options.get("deploy_dir")
        names = ServerNames(Path(deploy_dir) if deploy_dir is not None else None)
        service = await LocalService.open(self.files, store=self.store_url, names=names)
        self.service = service  # for tests that look at the server's state (read only)
        try:
            app = create_app(service, keys=KeyStore(service.store), **self.app_options)
            config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1,
                                    lifespan="on")
            self._server = uvicorn.Server(config)
            serving = asyncio.ensure_future(self._server.serve(sockets=[self.sock]))
            while not self._server.started and not serving.done():
                await asyncio.sleep(0.01)
            self._ready.set()
            await serving
        finally:
            await service.close()


@pytest.fixture
def live_factory(tmp_path: Path) -> Iterator[Any]:
    """Start real servers: ``live_factory(store_url, **app_options) -> (server, secrets)``."""
    started: list[LiveServer] = []

    def start(store_url: str, **options: Any) -> tuple[LiveServer, dict[str, str]]:
        options.setdefault("heartbeat", 0.2)
        with Store.open(store_url) as store:  # keys first: the server reads them from the store
            secrets = make_secrets(KeyStore(store))
        server = LiveServer([write_pipelines(tmp_path)], store_url, **options).start()
        started.append(server)
        return server, secrets

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def live(live_factory: Any, store_url: str) -> tuple[LiveServer, dict[str, str]]:
    """A real server on SQLite and on PostgreSQL (the ``store_url`` parameters)."""
    server, secrets = live_factory(store_url)
    return server, secrets


@pytest.fixture
async def http(live: tuple[LiveServer, dict[str, str]]) -> AsyncIterator[httpx.AsyncClient]:
    server, _secrets = live
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
        yield c
