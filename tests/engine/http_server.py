"""A real HTTP server on 127.0.0.1 for tests (standard library only, one thread per request).

Endpoints (any method):

- ``/echo``                  200, JSON ``{method, path, query, headers, body, raw_body}``
- ``/status/<code>``         that status; JSON ``{"status": code}`` (``?text=...`` sends text)
- ``/slow?delay=<seconds>``  sleeps, then 200 JSON ``{"slept": seconds}``
- ``/hang``                  answers nothing until the client closes the connection (at most
                             60 s), then counts that in ``server.hangups(path)``
- ``/flaky/<key>?fail=<n>&status=<code>``  the first ``n`` requests per key answer ``code``
                             (default 503), later ones 200 JSON ``{"attempt": k}``
- ``/text``                  200 ``text/plain`` "hello"
- ``/bad-json``              200 ``application/json`` whose body is not JSON

``server.hits(path)`` counts requests per path; ``server.requests`` keeps each request.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] if len(v) == 1 else v for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        request = {"method": self.command, "path": parts.path, "query": query,
                   "headers": {k.lower(): v for k, v in self.headers.items()},
                   "body": body, "raw_body": raw}
        with self.server.lock:
            self.server.requests.append(request)
            self.server.counts[parts.path] = self.server.counts.get(parts.path, 0) + 1
            count = self.server.counts[parts.path]
        segments = [s for s in parts.path.split("/") if s]
        route = segments[0] if segments else ""
        try:
            if route == "echo":
                self._send(200, request)
            elif route == "status" and len(segments) == 2:
                code = int(segments[1])
                if "text" in query:
                    self._send(code, str(query["text"]), "text/plain; charset=utf-8")
                else:
                    self._send(code, {"status": code})
            elif route == "slow":
                delay = float(query.get("delay", 1))
                time.sleep(delay)
                self._send(200, {"slept": delay})
            elif route == "hang":
                self._wait_for_hangup(parts.path)
            elif route == "flaky":
                fail = int(query.get("fail", 1))
                if count <= fail:
                    self._send(int(query.get("status", 503)), {"error": "flaky", "attempt": count})
                else:
                    self._send(200, {"attempt": count})
            elif route == "text":
                self._send(200, "hello", "text/plain; charset=utf-8")
            elif route == "bad-json":
                self._send(200, "{not json", "application/json")
            else:
                self._send(404, {"error": f"no route {parts.path}"})
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeouts): nothing to answer

    def _wait_for_hangup(self, path: str) -> None:
        """Block until the client closes the connection: what a cancelled request does."""
        readable, _, _ = select.select([self.connection], [], [], 60)
        if readable and not self.connection.recv(1, socket.MSG_PEEK):
            with self.server.lock:
                self.server.hangups[path] = self.server.hangups.get(path, 0) + 1
        self.close_connection = True

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Test-Server", "1")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a request sleeping in /slow must not hold up shutdown

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.counts: dict[str, int] = {}
        self.hangups: dict[str, int] = {}


class LoopbackServer:
    """``with LoopbackServer() as server: server.url("/echo")``."""

    def __init__(self) -> None:
        self._server = _Server()
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True, name="loopback-http")

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self._server.lock:
            return list(self._server.requests)

    def hits(self, path: str) -> int:
        with self._server.lock:
            return self._server.counts.get(path, 0)

    def hangups(self, path: str) -> int:
        """How many ``/hang`` requests on ``path`` the client closed."""
        with self._server.lock:
            return self._server.hangups.get(path, 0)

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
