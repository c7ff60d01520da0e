"""Helpers the studio's widget tests share: driving the qasync loop until a condition holds,
waiting for the widgets' tasks, and a real server on loopback.

The timeouts only stop a hung test; no test measures time with them.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app import asyncqt


async def eventually(condition: Callable[[], object], timeout: float = 30.0) -> None:
    """Inside a coroutine on the loop: wait until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def until(loop: asyncio.AbstractEventLoop, condition: Callable[[], object], timeout: float = 30.0) -> None:
    """Run the qasync loop (Qt events and tasks) until ``condition()`` holds."""
    loop.run_until_complete(eventually(condition, timeout))


def settle(loop: asyncio.AbstractEventLoop) -> None:
    """Until no foreground task the widgets spawned is pending (live streams don't count)."""
    try:
        until(loop, lambda: asyncqt.pending() == 0)
    except AssertionError:
        names = sorted(t.get_coro().__qualname__ for t in asyncqt._tasks)  # what is stuck
        raise AssertionError(f"studio tasks still pending: {names}") from None


def finished(loop: asyncio.AbstractEventLoop, service: Any, execution_id: str) -> Any:
    """The execution's summary once it has ended (run on ``loop``)."""

    async def wait() -> Any:
        while True:
            summary = await service.get_execution(execution_id)
            if summary.status not in ("running", "paused"):
                return summary
            await asyncio.sleep(0.01)

    return loop.run_until_complete(asyncio.wait_for(wait(), 30))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LoopbackServer:
    """uvicorn on 127.0.0.1:``port`` in a thread; ``app`` builds the ASGI app on the server's
    loop (None: the real studio server over ``store_url``). Startable again after ``stop``."""

    def __init__(self, port: int, store_url: str = "", files: list[Path] | None = None,
                 app: Callable[[], Any] | None = None):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.store_url = store_url
        self.files = files or []
        self.app_factory = app
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> LoopbackServer:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        ready = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            service = None
            if self.app_factory is not None:
                app = self.app_factory()
            else:
                from engine.server import KeyStore, create_app
                from engine.service.local import LocalService
                from engine.service.naming import ServerNames

                service = await LocalService.open(self.files, store=self.store_url,
                                                  names=ServerNames())
                app = create_app(service, keys=KeyStore(service.store), heartbeat=0.2)
            config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1,
                                    lifespan="off")
            self._server = uvicorn.Server(config)
            serving = asyncio.ensure_future(self._server.serve(sockets=[sock]))
            while not self._server.started and not serving.done():
                await asyncio.sleep(0.01)
            ready.set()
            try:
                await serving
            finally:
                if service is not None:
                    await service.close()

        def run() -> None:
            try:
                asyncio.run(main())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
            finally:
                sock.close()

        self._thread = threading.Thread(target=run, name=f"loopback:{self.port}", daemon=True)
        self._thread.start()
        if not ready.wait(20) or failure:
            raise RuntimeError(f"the server did not start: {failure!r}")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(20)
        self._server = self._thread = None
