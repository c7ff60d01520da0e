"""sink.webhook against a real loopback HTTP server: modes, signatures, retries, giving up."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from engine.connectors import signatures
from engine.connectors.envelope import make
from engine.connectors.types import ConnectorError
from engine.connectors.webhook_sink import WebhookSink
from tests.connectors.kill_harness import free_port


@dataclass
class Receiver:
    """Answers the scripted statuses in turn (then 200), and keeps every request."""

    url: str
    script: list[int] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            self.requests.append((headers, body))
            return self.script.pop(0) if self.script else 200


@contextlib.contextmanager
def receiving() -> Iterator[Receiver]:
    """A threaded HTTP server on a free loopback port that answers as its Receiver says."""
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = holder["r"].answer({k.lower(): v for k, v in self.headers.items()}, body)
            reply = json.dumps({"status": status}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["r"] = Receiver(f"http://127.0.0.1:{server.server_address[1]}/in")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder["r"]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


def event() -> dict[str, Any]:
    return make("/orders", "order.shipped", {"order": 7}, subject="o-7")


async def test_retries_5xx_and_429_then_succeeds(receiver: Receiver) -> None:
    receiver.script = [503, 429]
    sink = WebhookSink("out", {"url": receiver.url, "secret": "k", "backoff": 0.01,
                               "max_attempts": 5})
    sent = event()
    try:
        result = await sink.send(sent)
    finally:
        await sink.close()
    assert result == {"status": 200, "attempts": 3}
    assert len(receiver.requests) == 3
    for headers, body in receiver.requests:  # the same event each time, freshly signed
        assert headers["content-type"] == "application/cloudevents+json"
        assert json.loads(body) == sent
        assert headers["x-webhook-id"] == sent["id"]
        presented = signatures.precheck("generic", headers)
        signatures.verify(presented, ["k"], body)  # raises if the signature is wrong


async def test_binary_mode_and_each_signing_scheme(receiver: Receiver) -> None:
    for scheme in signatures.SCHEMES:
        sink = WebhookSink("out", {"url": receiver.url, "mode": "binary", "secret": ["k1", "k0"],
                                   "scheme": scheme})
        try:
            await sink.send(event())
        finally:
            await sink.close()
        headers, body = receiver.requests[-1]
        assert json.loads(body) == {"order": 7}
        assert headers["ce-type"] == "order.shipped" and headers["ce-subject"] == "o-7"
        assert headers["ce-specversion"] == "1.0" and headers["content-type"] == "application/json"
        signatures.verify(signatures.precheck(scheme, headers), ["k1"], body)
        with pytest.raises(signatures.SignatureError):
            signatures.verify(signatures.precheck(scheme, headers), ["k0"], body)


async def test_gives_up_after_max_attempts_with_a_clear_error(receiver: Receiver) -> None:
    receiver.script = [500] * 10
    sink = WebhookSink("out", {"url": receiver.url, "backoff": 0.01, "max_attempts": 3})
    try:
        with pytest.raises(ConnectorError, match=r"in 3 attempts; last: HTTP 500"):
            await sink.send(event())
    finally:
        await sink.close()
    assert len(receiver.requests) == 3


async def test_a_4xx_is_not_retried(receiver: Receiver) -> None:
    receiver.script = [422]
    sink = WebhookSink("out", {"url": receiver.url, "backoff": 0.01})
    try:
        with pytest.raises(ConnectorError, match="HTTP 422"):
            await sink.send(event())
    finally:
        await sink.close()
    assert len(receiver.requests) == 1


async def test_connection_errors_are_retried_then_reported() -> None:
    url = f"http://user:pw@127.0.0.1:{free_port()}/nobody?token=x"  # nothing listens there
    sink = WebhookSink("out", {"url": url, "backoff": 0.01, "max_attempts": 2})
    try:
        with pytest.raises(ConnectorError) as raised:
            await sink.send(event())
    finally:
        await sink.close()
    message = str(raised.value)
    assert "in 2 attempts" in message and "ConnectError" in message
    assert "pw" not in message and "token" not in message  # no credentials in the error


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    sink = WebhookSink("out", {"url": "http://127.0.0.1/x", "backoff": 1, "max_backoff": 8})
    for attempt, step in [(1, 1), (2, 2), (3, 4), (4, 8), (9, 8)]:
        delays = {sink.delay(attempt, None) for _ in range(50)}
        assert all(step / 2 <= d <= step for d in delays)
        assert len(delays) > 1  # jittered
    assert sink.delay(1, "3") == 3 and sink.delay(1, "120") == 8


def test_refuses_a_url_that_is_not_http() -> None:
    with pytest.raises(ConnectorError, match="not an http"):
        WebhookSink("out", {"url": "ftp://example.com/x"})
