"""The contract suite's pipelines and its loopback server (imported by conftest.py and by
tests that start servers of their own)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.service.local import LocalService
from engine.service.naming import ServerNames

PIPELINES = """\
schemas:
  order.created:
    type: object
    required: [id]
    properties:
      id: {type: string}
      qty: {type: integer, minimum: 1}
pipelines:
  greet:
    description: Say hello
    record: full
    steps:
      - {name: hello, type: step.set, config: {values: {greeting: "Hello {{ .name }}"}}}
      - {name: out, type: step.pipeline_output, config: {values: {greeting: "{{ .greeting }}"}}}
  slow:
    record: full
    steps:
      - {name: wait, type: step.delay, config: {duration: "{{ .wait }}"}}
      - {name: done, type: step.set, config: {values: {done: true}}}
  order:
    record: full
    steps:
      - {name: price, type: step.set, config: {values: {total: "{{ .qty * 10 }}"}}}
      - {name: tax, type: step.set, config: {values: {gross: "{{ .total * 1.5 }}"}}}
      - {name: out, type: step.pipeline_output, config: {values: {gross: "{{ .gross }}", qty: "{{ .qty }}"}}}
  fragile:
    dlq: {max_retries: 1}
    record: full
    steps:
      - {name: check, type: step.fail, if: "{{ .fail }}", config: {message: refused}}
      - {name: ok, type: step.set, config: {values: {ok: true}}}
  screen:
    record: full
    steps:
      - name: park
        type: step.dlq_send
        if: "{{ .qty < 0 }}"
        config: {error: negative quantity}
      - {name: accept, type: step.set, config: {values: {accepted: "{{ .qty >= 0 }}"}}}
"""


@dataclass
class Workspace:
    """Where the service's pipeline files live (for remote variants: the server's files)."""

    root: Path
    file: Path


# ---------------------------------------------------------------------- the loopback server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    """One app being served: where, with which keys and the admin key's secret."""

    base_url: str
    port: int
    admin_key: str
    keys: Any  # engine.server.KeyStore
    service: LocalService


class LoopbackHost:
    """One uvicorn server on a free loopback port, on its own event loop in a thread,
    serving one app at a time: ``serve(files, store)`` opens a ``LocalService`` on that loop
    (its executions run there), creates an admin key, builds ``create_app`` over them and
    routes every request to it until the ``with`` block ends, which closes the service.

    Starting uvicorn once per session instead of once per test keeps the suite fast; each
    test still gets its own service, store and app.
    """

    def __init__(self) -> None:
        # Bound here and handed to uvicorn: no other process can take the port meanwhile.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = int(self._socket.getsockname()[1])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._app: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=f"uvicorn:{self.port}",
                                        daemon=True)

    def start(self) -> LoopbackHost:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError(f"the test server on port {self.port} did not start in 30s")
        if self._error is not None:
            raise RuntimeError(f"the test server did not start: {self._error!r}") from self._error
        return self

    def stop(self) -> None:
        if self._server is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(setattr, self._server, "should_exit", True)
        self._thread.join(30)
        self._socket.close()

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        import uvicorn

        self._loop = asyncio.get_running_loop()
        config = uvicorn.Config(self._dispatch, host="127.0.0.1", port=self.port,
                                log_level="warning", access_log=False, lifespan="off",
                                interface="asgi3")
        self._server = uvicorn.Server(config)
        serving = asyncio.ensure_future(self._server.serve(sockets=[self._socket]))
        while not self._server.started and not serving.done():
            await asyncio.sleep(0.005)
        self._ready.set()
        await serving

    async def _dispatch(self, scope: Any, receive: Any, send: Any) -> None:
        app = self._app
        if app is None:
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body",
                        "body": b'{"error": "unavailable", "message": "no app mounted"}'})
            return
        await app(scope, receive, send)

    def _call(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(60)

    @contextlib.contextmanager
    def serve(self, files: list[Path], store: str) -> Iterator[Served]:
        served, stack = self._call(self._mount(files, store))
        try:
            yield served
        finally:
            self._call(self._unmount(stack))

    async def _mount(self, files: list[Path], store: str) -> tuple[Served, contextlib.AsyncExitStack]:
        from engine.server import KeyStore, create_app

        stack = contextlib.AsyncExitStack()
        service = await LocalService.open(files, store=store,
                                          names=ServerNames(deploy_dir=files[0].parent))
        stack.push_async_callback(service.close)
        try:
            keys = KeyStore(service.store)
            _, secret = keys.create("contract-admin", scopes=["admin", "deploy"])
            app = create_app(service, keys=keys, heartbeat=1.0, deploy_dir=files[0].parent)
            await stack.enter_async_context(app.router.lifespan_context(app))
        except BaseException:
            await stack.aclose()
            raise
        self._app = app
        return Served(self.base_url, self.port, secret, keys, service), stack

    async def _unmount(self, stack: contextlib.AsyncExitStack) -> None:
        self._app = None
        await stack.aclose()
