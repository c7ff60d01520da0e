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

import inspect
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.service.local import LocalService
from engine.service.protocol import StudioService
from engine.tenancy import current_tenant

try:
    from tests.contract.contract_harness import PIPELINES, LoopbackHost, Served, Workspace
except ImportError:
    from contract_harness import PIPELINES, LoopbackHost, Served, Workspace  # type: ignore[no-redef]

SERVED = pytest.StashKey[Served]()


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
        request.node.stash[SERVED] = server
        async with RemoteService(server.base_url, server.admin_key, timeout=10.0) as remote:
            yield remote


class AsTenant:
    """The local service as another tenant's caller sees it: every call runs in its tenant."""

    def __init__(self, service: LocalService, tenant: str):
        self._service, self._tenant = service, tenant

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._service, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            token = current_tenant.set(self._tenant)
            try:
                return await attr(*args, **kwargs)
            finally:
                current_tenant.reset(token)

        return call


@pytest.fixture
async def other_tenant(service: StudioService, variant: str,
                       request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """The same server (or local service) as an admin of tenant "b" reaches it."""
    if variant == "local":
        assert isinstance(service, LocalService)
        yield AsTenant(service, "b")
        return
    from engine.client import RemoteService

    server = request.node.stash[SERVED]
    _, secret = server.keys.create("tenant b admin", "b", ["admin"])
    async with RemoteService(server.base_url, secret, timeout=10.0) as remote:
        yield remote


@pytest.fixture(scope="session")
def loopback_host() -> Iterator[LoopbackHost]:
    host = LoopbackHost().start()
    try:
        yield host
    finally:
        host.stop()
