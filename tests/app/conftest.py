"""Fixtures for the studio's widget tests: offscreen Qt, a qasync loop and a real service.

Widgets are real, the service is the real LocalService on a SQLite file in tmp_path with
the example workspace (copied, so tests may edit and save files) loaded into it.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
import qasync

from engine.service.local import LocalService
from engine.service.models import StepTypeInfo

WORKSPACE = Path(__file__).resolve().parents[2] / "resources" / "workspace"


class _TestLoop(qasync.QEventLoop):
    """qasync's loop without the processEvents() its run_until_complete does after the loop
    stopped: a task stepped there finds no running loop and dies (the recorder's writer task
    then never finishes and every later flush hangs). What is left runs in the next call."""

    def run_until_complete(self, future):  # type: ignore[no-untyped-def]
        future = asyncio.ensure_future(future, loop=self)
        future.add_done_callback(lambda _f: self.stop())
        self.run_forever()
        if not future.done():
            raise RuntimeError("Event loop stopped before Future completed.")
        return future.result()


@pytest.fixture(autouse=True)
def _collect_on_the_gui_thread() -> Iterator[None]:
    """Python's collector may run in any thread (a server thread, a to_thread worker); a Qt
    object it finalizes there crashes Qt. During app tests it runs here, as the app does it
    (pyqtgraph's GarbageCollector in app/main.py)."""
    gc.disable()
    try:
        yield
    finally:
        gc.collect()
        gc.enable()


@pytest.fixture
def qloop(qapp) -> Iterator[asyncio.AbstractEventLoop]:  # type: ignore[no-untyped-def]
    """A qasync loop on the test's QApplication, set as the current loop."""
    loop = _TestLoop(qapp, already_running=False)
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        asyncio.set_event_loop(None)
        loop.close()


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the example workspace; DATA_DIR points into tmp_path."""
    folder = tmp_path / "workspace"
    shutil.copytree(WORKSPACE, folder)
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("DATA_DIR", str(data))
    return folder


@pytest.fixture
def service(qloop: asyncio.AbstractEventLoop, workspace: Path, tmp_path: Path) -> Iterator[LocalService]:
    files = sorted(workspace.glob("*.yaml"))
    svc = qloop.run_until_complete(LocalService.open(files, store=f"sqlite:///{tmp_path / 'store.db'}"))
    try:
        yield svc
    finally:
        qloop.run_until_complete(svc.close())


@pytest.fixture
def type_infos(qloop: asyncio.AbstractEventLoop, service: LocalService) -> list[StepTypeInfo]:
    return qloop.run_until_complete(service.step_types())
