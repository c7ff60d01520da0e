"""What only the remote client does: SSE parsing, resuming a cut stream, the version check,
keys, timeouts and mapping HTTP failures back to typed errors.

Servers here are real: the app on uvicorn (``LoopbackHost``), a TCP proxy that can cut its
connections, and a small stdlib HTTP server standing in for other server releases.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from engine.client import IncompatibleServer, RemoteService
from engine.client.sse import SseMessage, SseParser, parse_sse
from engine.service.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    ServiceError,
    Unauthorized,
    Unavailable,
)
from engine.service.models import Event, RunOptions
from tests.waiting import wait_for_condition

try:
    from tests.contract.contract_harness import PIPELINES, LoopbackHost, Served, free_port
    from tests.contract.contract_helpers import wait_paused
except ImportError:
    from contract_harness import PIPELINES, LoopbackHost, Served, free_port  # type: ignore[no-redef]
    from contract_helpers import wait_paused  # type: ignore[no-redef]


# ---------------------------------------------------------------------- SSE parsing


def _feed(text: str) -> list[SseMessage]:
    parser = SseParser()
    out = [parser.feed(line) for line in text.split("\n")]
    return [m for m in out if m is not None]


def test_sse_fields_comments_and_multiline_data() -> None:
    messages = _feed("retry: 1500\n: connected\n\n"
                     "id: e1:1\nevent: step.started\ndata: {\"a\":\ndata:  1}\n\n"
                     ": heartbeat\n\n"
                     "event: error\ndata: {\"error\": \"unavailable\"}\n\n"
                     "id: e1:2\ndata:x\n\n"
                     "id\ndata: reset\n\n")
    assert messages == [
        SseMessage("step.started", '{"a":\n 1}', "e1:1", 1500, True),
        SseMessage("error", '{"error": "unavailable"}', "e1:1", 1500, False),
        SseMessage("message", "x", "e1:2", 1500, True),
        SseMessage("message", "reset", None, 1500, True),
    ]


async def test_a_message_cut_off_by_the_end_of_the_stream_is_dropped() -> None:
    async def lines() -> AsyncIterator[str]:
        for line in ["id: a:1", "data: 1", "", "id: a:2", "data: 2"]:
            yield line

    assert [m.data async for m in parse_sse(lines())] == ["1"]


# ---------------------------------------------------------------------- a real server


@pytest.fixture
def server(tmp_path: Path, loopback_host: LoopbackHost) -> Iterator[Served]:
    (tmp_path / "p.yaml").write_text(PIPELINES)
    with loopback_host.serve([tmp_path / "p.yaml"], f"sqlite:///{tmp_path / 's.db'}") as served:
        yield served


async def test_keys_are_checked_and_health_needs_none(server: Served) -> None:
    async with RemoteService(server.base_url, None) as anonymous:
        assert await anonymous.health() == {"ok": True}
        with pytest.raises(Unauthorized, match="API key"):
            await anonymous.list_pipelines()
    async with RemoteService(server.base_url, "wfs_0000_not-a-key") as wrong:
        with pytest.raises(Unauthorized):
            await wrong.run("greet", {})
    _, secret = server.keys.create("reader", scopes=["read"])
    async with RemoteService(server.base_url, secret) as reader:
        assert len(await reader.list_pipelines()) == 5
        with pytest.raises(Forbidden, match="'run' scope"):
            await reader.run("greet", {})
        with pytest.raises(Forbidden, match="'debug' scope"):
            await reader.set_breakpoint("greet", "hello")


class _TcpProxy:
    """Forwards 127.0.0.1:<port> to the server; ``cut()`` drops every open connection."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()


async def test_a_cut_stream_resumes_without_gap_or_duplicate(server: Served) -> None:
    proxy = _TcpProxy(server.port)
    await proxy.start()
    direct = RemoteService(server.base_url, server.admin_key)
    via_proxy = RemoteService(f"http://127.0.0.1:{proxy.port}", server.admin_key,
                              reconnect_delay=0.05)
    try:
        await direct.set_breakpoint("order", "price")
        await direct.set_breakpoint("order", "out")
        started = await direct.run("order", {"qty": 2}, RunOptions(wait=False))
        await wait_paused(direct, started.execution_id)
        received: list[Event] = []
        stream = via_proxy.subscribe(started.execution_id)
        async for event in stream:
            received.append(event)
            if event.type == "debug.paused":
                break
        # Cut the connection while the execution goes on, then read on from the same iterator.
        proxy.cut()
        await direct.resume(started.execution_id)
        await wait_paused(direct, started.execution_id)  # at "out": more events were recorded
        await direct.resume(started.execution_id)
        async for event in stream:
            received.append(event)
        assert received == await direct.events(started.execution_id)
        assert [e.seq for e in received] == list(range(1, len(received) + 1))
    finally:
        await via_proxy.aclose()
        await direct.aclose()
        await proxy.close()


async def test_the_all_stream_resumes_after_a_cut(server: Served) -> None:
    proxy = _TcpProxy(server.port)
    await proxy.start()
    direct = RemoteService(server.base_url, server.admin_key)
    via_proxy = RemoteService(f"http://127.0.0.1:{proxy.port}", server.admin_key,
                              reconnect_delay=0.05)
    received: list[Event] = []
    first_seen = asyncio.Event()

    async def consume() -> None:
        async for event in via_proxy.subscribe():
            received.append(event)
            first_seen.set()

    task = asyncio.ensure_future(consume())
    try:
        while not first_seen.is_set():  # the stream is live only: run until it is listening
            await direct.run("greet", {"name": "warm-up"})
            await asyncio.sleep(0.02)
        proxy.cut()
        runs = [await direct.run("greet", {"name": str(i)}) for i in range(3)]
        for run in runs:
            expected = await direct.events(run.execution_id)

            def of_run(execution_id: str = run.execution_id) -> list[Event]:
                return [e for e in received if e.execution_id == execution_id]

            await wait_for_condition(lambda n=len(expected): len(of_run()) >= n,  # noqa: B008
                                     f"the events of {run.execution_id} through the proxy")
            assert of_run() == expected
        keys = [(e.execution_id, e.seq) for e in received]
        assert len(keys) == len(set(keys))  # nothing twice across the reconnect
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await via_proxy.aclose()
        await direct.aclose()
        await proxy.close()


# ---------------------------------------------------------------------- other servers


class _Canned(BaseHTTPRequestHandler):
    """Answers from ``server.routes``: path -> (status, content type, body, delay), or a
    function of the request's (query, headers) giving that. ``server.seen`` keeps them."""

    server: Any
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        self.server.seen.append((path, query, dict(self.headers)))
        route = self.server.routes.get(path, (404, "text/plain", "no route", 0.0))
        if callable(route):
            route = route(query, self.headers)
        status, content_type, body, delay = route
        if delay:
            time.sleep(delay)
        data = (json.dumps(body) if content_type == "application/json" else body).encode()
        # The client may have gone (a timeout, or it read all it wanted): nothing to report.
        with contextlib.suppress(ConnectionError):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    do_POST = do_GET


@pytest.fixture
def canned() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    httpd.daemon_threads = True
    httpd.routes = {}  # type: ignore[attr-defined]
    httpd.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _url(httpd: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}"


def _version(api: str) -> tuple[int, str, Any, float]:
    return 200, "application/json", {"engine_version": "9.9", "api_version": api,
                                      "backend": "local"}, 0.0


@pytest.mark.parametrize(("api", "advice"), [("2", "upgrade this client"),
                                             ("0", "upgrade the server")])
async def test_an_api_version_mismatch_says_which_side_to_upgrade(
        canned: ThreadingHTTPServer, api: str, advice: str) -> None:
    canned.routes["/api/v1/version"] = _version(api)  # type: ignore[attr-defined]
    async with RemoteService(_url(canned), "k") as remote:
        with pytest.raises(IncompatibleServer, match=f"API version {api}.*{advice}"):
            await remote.list_pipelines()
        with pytest.raises(IncompatibleServer):  # every call, not only the first
            [e async for e in remote.subscribe()]


async def test_a_server_without_the_version_endpoint_is_incompatible(
        canned: ThreadingHTTPServer) -> None:
    async with RemoteService(_url(canned), "k") as remote:
        with pytest.raises(IncompatibleServer, match="not a Workflow Studio server"):
            await remote.list_pipelines()


async def test_http_failures_map_to_typed_errors(canned: ThreadingHTTPServer) -> None:
    routes = canned.routes  # type: ignore[attr-defined]
    routes["/api/v1/version"] = _version("1")
    routes["/api/v1/pipelines/a/definition"] = (404, "text/plain", "nothing here", 0.0)
    routes["/api/v1/pipelines/b/definition"] = (409, "application/json", {"detail": "busy"}, 0.0)
    routes["/api/v1/pipelines/c/definition"] = (
        422, "application/json", {"detail": [{"loc": ["query", "x"], "msg": "bad"}]}, 0.0)
    routes["/api/v1/pipelines/d/definition"] = (500, "text/html", "<h1>oops</h1>", 0.0)
    routes["/api/v1/pipelines/e/definition"] = (
        503, "application/json", {"error": "unavailable", "message": "store down"}, 0.0)
    routes["/api/v1/pipelines/f/definition"] = (
        404, "application/json", {"error": "conflict", "message": "the code wins"}, 0.0)
    routes["/api/v1/pipelines/g/definition"] = (405, "text/plain", "", 0.0)
    routes["/api/v1/pipelines/h/definition"] = (200, "application/json", {"wrong": 1}, 0.0)
    # Far slower than the client's timeout: only the timeout can end the call ("no reply").
    routes["/api/v1/pipelines/slow/definition"] = (200, "application/json", {}, 30.0)
    async with RemoteService(_url(canned), "k", timeout=0.5) as remote:
        with pytest.raises(NotFound, match="404"):
            await remote.get_definition("a")
        with pytest.raises(Conflict, match="busy"):
            await remote.get_definition("b")
        with pytest.raises(InvalidInput, match="x: bad") as invalid:
            await remote.get_definition("c")
        assert invalid.value.details == [{"loc": ["query", "x"], "msg": "bad"}]
        with pytest.raises(Unavailable, match=f"server at {_url(canned)}.*500"):
            await remote.get_definition("d")
        with pytest.raises(Unavailable, match="store down"):
            await remote.get_definition("e")
        with pytest.raises(Conflict, match="the code wins"):
            await remote.get_definition("f")
        with pytest.raises(ServiceError, match="405"):
            await remote.get_definition("g")
        with pytest.raises(Unavailable, match="expected shape"):
            await remote.get_definition("h")
        with pytest.raises(Unavailable, match="no reply"):
            await remote.get_definition("slow")


async def test_an_unreachable_server_is_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with RemoteService(url, "k", timeout=2) as remote:
        with pytest.raises(Unavailable, match=f"server at {url} is unavailable"):
            await remote.health()
        with pytest.raises(Unavailable, match=url):
            await remote.list_pipelines()
        with pytest.raises(Unavailable, match=url):
            [e async for e in remote.subscribe("x")]


async def test_a_silent_stream_is_reconnected_then_given_up(canned: ThreadingHTTPServer) -> None:
    routes = canned.routes  # type: ignore[attr-defined]
    routes["/api/v1/version"] = _version("1")
    routes["/api/v1/stream"] = (200, "text/event-stream", ": hello\n\n", 30.0)
    async with RemoteService(_url(canned), "k", timeout=0.3, max_reconnects=2,
                             reconnect_delay=0.01) as remote:
        # Each attempt is silent for far longer than the heartbeat timeout: only it can end them.
        with pytest.raises(Unavailable, match=r"no event or heartbeat for 0\.3s.*after 2 reconnects"):
            [e async for e in remote.subscribe()]


def _sse(*events: tuple[int, str]) -> str:
    return "".join(
        f"id: ex:{seq}\nevent: {type}\ndata: "
        + json.dumps({"execution_id": "ex", "seq": seq, "type": type, "data": {}, "ts": 1.0})
        + "\n\n" for seq, type in events)


async def test_a_dropped_subscriber_resumes_from_its_last_event(
        canned: ThreadingHTTPServer) -> None:
    """The server ends a stream with ``event: error`` (unavailable) when the subscriber is
    too slow; the client reconnects with Last-Event-ID and skips what it already has."""
    calls: list[tuple[str, str | None]] = []

    def stream(query: str, headers: Any) -> tuple[int, str, str, float]:
        calls.append((query, headers.get("Last-Event-ID")))
        if len(calls) == 1:
            body = _sse((3, "step.started"), (4, "step.completed")) + (
                'event: error\ndata: {"error": "unavailable", "message": "too slow"}\n\n')
        else:  # the server resumes a little early: seq 4 again
            body = _sse((4, "step.completed"), (5, "execution.completed"), (6, "never.read"))
        return 200, "text/event-stream", body, 0.0

    routes = canned.routes  # type: ignore[attr-defined]
    routes["/api/v1/version"] = _version("1")
    routes["/api/v1/executions/ex/stream"] = stream
    async with RemoteService(_url(canned), "k", reconnect_delay=0.01) as remote:
        received = [(e.seq, e.type) async for e in remote.subscribe("ex", after_seq=2)]
    assert received == [(3, "step.started"), (4, "step.completed"), (5, "execution.completed")]
    assert calls == [("after_seq=2", None), ("after_seq=4", "ex:4")]


async def test_an_error_event_that_is_not_transient_is_raised(canned: ThreadingHTTPServer) -> None:
    routes = canned.routes  # type: ignore[attr-defined]
    routes["/api/v1/version"] = _version("1")
    routes["/api/v1/executions/ex/stream"] = (200, "text/event-stream", _sse((1, "a.b")) + (
        'event: error\ndata: {"error": "invalid_input", "message": "bad resume"}\n\n'), 0.0)
    async with RemoteService(_url(canned), "k") as remote:
        received: list[int] = []
        with pytest.raises(InvalidInput, match="bad resume"):
            async for event in remote.subscribe("ex"):
                received.append(event.seq)
    assert received == [1]
