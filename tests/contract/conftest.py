"""The contract suite's one fixture: ``service``, the same tests against every implementation.

- ``local``: a ``LocalService`` over a fresh SQLite file in tmp_path.
- ``remote``: a real uvicorn server on a free loopback port, in a thread with its own event
  loop, serving ``create_app(LocalService(...))`` over a fresh SQLite file, with an admin
  key made for the test; the test holds a ``RemoteService`` pointed at it. (uvicorn is
  started once per session; each test mounts its own app, see ``LoopbackHost``.)
- ``remote-postgres``: the same, the server's store being the session's PostgreSQL database
  (emptied before each test, dropped at the end of the session; tests/conftest.py).

Each test gets its own service and store, so tests never see each other's executions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from engine.service.local import LocalService
from engine.service.protocol import StudioService

try:
    from tests.contract.contract_harness import PIPELINES, LoopbackHost, Workspace
except ImportError:
    from contract_harness import PIPELINES, LoopbackHost, Workspace  # type: ignore[no-redef]


VARIANTS = ["local", "remote", pytest.param("remote-postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=VARIANTS)
def variant(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    root = tmp_path / "workspace"
    root.mkdir()
    file = root / "pipelines.yaml"
    file.write_text(PIPELINES)
    return Workspace(root, file)


@pytest.fixture
def store_for_variant(request: pytest.FixtureRequest, tmp_path: Path, variant: str) -> str:
    if variant == "remote-postgres":
        return str(request.getfixturevalue("pg_store_url"))
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
async def service(variant: str, workspace: Workspace, store_for_variant: str,
                  request: pytest.FixtureRequest) -> AsyncIterator[StudioService]:
    if variant == "local":
        local = await LocalService.open([workspace.file], store=store_for_variant)
        try:
            yield local
        finally:
            await local.close()
        return
    from engine.client import RemoteService

    host: LoopbackHost = request.getfixturevalue("loopback_host")
    with host.serve([workspace.file], store_for_variant) as server:
        async with RemoteService(server.base_url, server.admin_key, timeout=10.0) as remote:
            yield remote


@pytest.fixture(scope="session")
def loopback_host() -> Iterator[LoopbackHost]:
    host = LoopbackHost().start()
    try:
        yield host
    finally:
        host.stop()
