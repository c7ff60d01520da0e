"""A tiny loopback HTTP service the example workspace calls, so the examples run offline.

``GET /flaky/quote?sku=X`` answers 503 twice per sku, then ``{sku, price, attempt}``;
``GET /health`` answers ``{ok: true}``.
"""

from __future__ import annotations

import json
import threading
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

FAILURES_BEFORE_SUCCESS = 2


class _Handler(BaseHTTPRequestHandler):
    server: SampleApi

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/health":
            self._reply(200, {"ok": True})
        elif url.path == "/flaky/quote":
            sku = parse_qs(url.query).get("sku", ["?"])[0]
            with self.server.lock:
                self.server.calls[sku] += 1
                attempt = self.server.calls[sku]
            if attempt <= FAILURES_BEFORE_SUCCESS:
                self._reply(503, {"error": "quote service warming up", "attempt": attempt})
            else:
                price = 10 + zlib.crc32(sku.encode()) % 9000 / 100
                self._reply(200, {"sku": sku, "price": price, "attempt": attempt})
        else:
            self._reply(404, {"error": f"no route {url.path}"})

    def _reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # keep the demo's output clean
        pass


class SampleApi(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> SampleApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
