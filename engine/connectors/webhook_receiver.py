"""One webhook request, from its headers to the intake's acknowledgement, as a bare ASGI app.

The order is what makes a public endpoint safe to expose without an API key:

1. the method (POST) and the signature headers (present, well formed, timestamp within
   the tolerance): answered 405/401 without reading a byte of the body;
2. the announced size, then the size counted while reading: 413 past ``max_body``;
3. the HMAC of the body under each configured secret, compared in constant time: 401;
4. the event: CloudEvents structured mode (``application/cloudevents+json``), binary mode
   (``ce-*`` headers) or plain JSON: 400 when it is none of them;
5. ``intake.deliver``: the reply is 2xx only once the intake has recorded the event
   (started, dead-lettered, or a duplicate of one recorded before); 503 when the store
   refused it, so the sender retries later.

Every refusal is ``{"error", "message"}``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from engine import json_input
from engine.connectors import signatures
from engine.connectors.envelope import InvalidEnvelope, from_record, make
from engine.connectors.types import ConnectorError, Delivery, Intake, Outcome

DEFAULT_MAX_BODY = 1024 * 1024
log = logging.getLogger("wfstudio.sources")

MAX_BATCH = 256  # deliveries recorded in one transaction at most
RETRY_AFTER = "5"  # seconds a sender is asked to wait after a 503
# The header carrying a delivery's own id, by scheme (a redelivery repeats it); a Stripe
# event carries its id in the body.
ID_HEADERS = {"github": "x-github-delivery", "generic": "x-webhook-id"}
_CE_ATTRIBUTES = ("id", "source", "type", "subject", "time", "dataschema")


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


@dataclass
class WebhookConfig:
    """A webhook source's config, checked once (the connector's schema already ran)."""

    name: str
    path: str
    secrets: tuple[str, ...]
    scheme: str = "generic"
    tolerance: float = signatures.DEFAULT_TOLERANCE
    max_body: int = DEFAULT_MAX_BODY
    type: str | None = None  # the CloudEvents type of plain JSON bodies
    source: str | None = None  # the CloudEvents source of plain JSON bodies
    id_header: str | None = None
    signature_header: str = "X-Webhook-Signature"
    timestamp_header: str = "X-Webhook-Timestamp"

    @classmethod
    def parse(cls, name: str, config: Mapping[str, Any]) -> WebhookConfig:
        path = str(config.get("path") or "")
        if not path.startswith("/") or path.startswith("/api/") or "?" in path:
            raise ConnectorError(f"webhook {name!r}: path {path!r} must start with '/', not "
                                 "with '/api/', and have no query")
        secret = config.get("secret")
        secrets = tuple(str(s) for s in (secret if isinstance(secret, list) else [secret]) if s)
        if not secrets:
            raise ConnectorError(f"webhook {name!r}: set secret (one, or a list while rotating): "
                                 "a public webhook path is authenticated by its signature only")
        scheme = str(config.get("scheme", "generic"))
        if scheme not in signatures.SCHEMES:
            raise ConnectorError(f"webhook {name!r}: scheme {scheme!r} is not one of "
                                 f"{', '.join(signatures.SCHEMES)}")
        return cls(name=name, path=path, secrets=secrets, scheme=scheme,
                   tolerance=float(config.get("tolerance", signatures.DEFAULT_TOLERANCE)),
                   max_body=int(config.get("max_body", DEFAULT_MAX_BODY)),
                   type=config.get("type"), source=config.get("source"),
                   id_header=config.get("id_header"),
                   signature_header=str(config.get("signature_header", "X-Webhook-Signature")),
                   timestamp_header=str(config.get("timestamp_header", "X-Webhook-Timestamp")))


class WebhookEndpoint:
    """The ASGI app of one running webhook source (served by the server or its own listener)."""

    def __init__(self, config: WebhookConfig, intake: Intake):
        self.config = config
        self.intake = intake
        self._pending: list[tuple[Delivery, asyncio.Future[Outcome]]] = []
        self._draining = False
        self._drainer: asyncio.Future[None] | None = None

    @property
    def tenant(self) -> str:
        return self.intake.tenant

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            status, body, headers = await self.handle(scope, receive)
        except Refused as refused:
            status, headers = refused.status, refused.headers
            body = {"error": refused.code, "message": refused.message}
        except Exception as exc:  # not acknowledged: the sender retries (a duplicate if recorded)
            log.error("webhook %r: %s", self.config.name, exc, exc_info=exc)
            status, headers = 503, {"Retry-After": RETRY_AFTER}
            body = {"error": "unavailable", "message": "the event could not be taken now; send "
                    "it again later"}
        await _send_json(send, status, body, headers)

    async def handle(self, scope: Scope, receive: Receive) -> tuple[int, dict[str, Any], dict[str, str]]:
        config = self.config
        if scope["method"] != "POST":
            raise Refused(405, "method_not_allowed", f"a webhook takes POST, not {scope['method']}",
                          {"Allow": "POST"})
        headers = _headers(scope)
        try:
            presented = signatures.precheck(config.scheme, headers, tolerance=config.tolerance,
                                            signature_header=config.signature_header,
                                            timestamp_header=config.timestamp_header)
        except signatures.SignatureError as exc:
            raise Refused(401, exc.code, exc.message) from None
        raw = await _read_capped(receive, headers.get("content-length"), config.max_body)
        try:
            signatures.verify(presented, config.secrets, raw)
        except signatures.SignatureError as exc:
            raise Refused(401, exc.code, exc.message) from None
        event = self.event(headers, raw)
        outcome = await self._deliver(Delivery(event))
        if outcome is Outcome.REFUSED:
            raise Refused(503, "unavailable", "the event could not be recorded now; send it again "
                          "later", {"Retry-After": RETRY_AFTER})
        self.intake.acknowledged(1)
        if outcome is Outcome.DUPLICATE:
            return 200, {"id": event["id"], "outcome": "duplicate", "duplicate": True}, {}
        status = 200 if outcome is Outcome.FILTERED else 202
        return status, {"id": event["id"], "outcome": outcome.value, "duplicate": False}, {}

    async def _deliver(self, delivery: Delivery) -> Outcome:
        """The intake's outcome for ``delivery``. Requests that arrive while a batch is being
        recorded wait and go together in the next one: one transaction (one commit) for
        all of them instead of one each. Each is answered only once its batch is recorded."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._pending.append((delivery, future))
        if not self._draining:
            self._draining = True
            self._drainer = asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                try:
                    outcomes = await self.intake.deliver([d for d, _ in batch])
                except BaseException as exc:  # every waiter learns it; none is answered 2xx
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if not future.done():  # its client may have gone: nothing to answer
                        future.set_result(outcome)
        finally:
            self._draining = False
            for _, future in self._pending:  # cancelled mid-batch: the rest are not recorded
                if not future.done():
                    future.set_result(Outcome.REFUSED)
            self._pending = []

    # ------------------------------------------------------------------ the event

    def event(self, headers: Mapping[str, str], raw: bytes) -> dict[str, Any]:
        """The CloudEvents envelope the request carries (structured, binary or plain JSON)."""
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        try:
            if media == "application/cloudevents+json":
                return from_record(_json(raw))
            if "ce-specversion" in headers:
                return self._binary(headers, media, raw)
            return self._plain(headers, media, raw)
        except InvalidEnvelope as exc:
            raise Refused(400, "invalid_event", str(exc)) from None

    def _binary(self, headers: Mapping[str, str], media: str, raw: bytes) -> dict[str, Any]:
        if headers["ce-specversion"].strip() != "1.0":
            raise InvalidEnvelope(f"ce-specversion must be '1.0', got {headers['ce-specversion']!r}")
        found = {name: headers.get(f"ce-{name}") for name in _CE_ATTRIBUTES}
        missing = [f"ce-{n}" for n in ("id", "source", "type") if not found[n]]
        if missing:
            raise InvalidEnvelope(f"binary mode needs the headers {', '.join(missing)}")
        extensions = {name[3:]: value for name, value in headers.items()
                      if name.startswith("ce-") and name[3:] not in (*_CE_ATTRIBUTES, "specversion")}
        if found["dataschema"]:
            extensions["dataschema"] = found["dataschema"]
        data: Any = None
        if raw.strip():
            data = _json(raw) if _is_json(media) else raw.decode("utf-8", "replace")
        return make(str(found["source"]), str(found["type"]), data, id=found["id"],
                    subject=found["subject"], time=found["time"], extensions=extensions,
                    datacontenttype=media or "application/json")

    def _plain(self, headers: Mapping[str, str], media: str, raw: bytes) -> dict[str, Any]:
        if media and not _is_json(media):
            raise Refused(415, "unsupported_media_type", f"the body is {media!r}: send JSON "
                          "(application/json) or a CloudEvent (application/cloudevents+json, or "
                          "ce-* headers)")
        body = _json(raw)
        config = self.config
        event_id = self._plain_id(headers, body, raw)
        event_type = config.type
        if event_type is None:
            if config.scheme == "stripe" and isinstance(body, dict) and body.get("type"):
                event_type = str(body["type"])
            elif config.scheme == "github" and headers.get("x-github-event"):
                event_type = "github." + headers["x-github-event"]
            else:
                event_type = "webhook.received"
        source = config.source or f"wfstudio://webhook{config.path}"
        return make(source, event_type, body, id=event_id)

    def _plain_id(self, headers: Mapping[str, str], body: Any, raw: bytes) -> str:
        config = self.config
        header = (config.id_header or ID_HEADERS.get(config.scheme, "")).lower()
        if header and headers.get(header):
            return headers[header].strip()[:200]
        if config.scheme == "stripe" and isinstance(body, dict) and isinstance(body.get("id"), str):
            return body["id"][:200]
        # Nothing names the delivery: the same bytes are the same event.
        return "sha256:" + hashlib.sha256(raw).hexdigest()


# ---------------------------------------------------------------------- ASGI plumbing


def _headers(scope: Scope) -> dict[str, str]:
    """Lower-case names, the first value of each (latin-1, as HTTP/1.1 carries them)."""
    out: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        if name not in out:
            out[name] = raw_value.decode("latin-1")
    return out


async def _read_capped(receive: Receive, declared: str | None, limit: int) -> bytes:
    too_large = Refused(413, "too_large", f"the request body exceeds {limit} bytes")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Refused(400, "disconnected", "the client left before sending the whole body")
        if message["type"] != "http.request":
            continue
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def _json(raw: bytes) -> Any:
    if not raw.strip():
        raise Refused(400, "invalid_json", "the body is empty: a webhook carries a JSON event")
    try:
        return json_input.loads(raw)
    except json_input.JsonInputError as exc:
        raise Refused(400, "invalid_json", f"the body is not JSON: {exc}") from None


async def _send_json(send: Send, status: int, body: Any, headers: Mapping[str, str]) -> None:
    content = orjson.dumps(body)
    raw_headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(content)).encode())]
    raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": content})


async def stopped(scope: Scope, receive: Receive, send: Send) -> None:
    await _send_json(send, 503, {"error": "unavailable", "message": "the webhook source at "
                                 f"{scope.get('path', '')} is not running; send it again later"},
                     {"Retry-After": RETRY_AFTER})


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    await _send_json(send, 404, {"error": "not_found",
                                 "message": f"no webhook at {scope.get('path', '')}"}, {})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
