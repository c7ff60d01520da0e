"""Server-Sent Events: the service's live events as ``text/event-stream``.

Each event is ``id: <execution_id>:<seq>``, ``event: <type>``, ``data: <the Event as JSON>``.
A comment line is sent every ``heartbeat`` seconds of silence, so proxies keep the
connection open and a client can tell a quiet stream from a dead one. A stream that the
service ends with an error (e.g. a subscriber too slow to keep up) sends a last
``event: error`` whose data is the error body, then closes; the client resumes with
``Last-Event-ID``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import orjson

from engine.server.recent import Key, RecentEvents
from engine.service.errors import InvalidInput, ServiceError, Unavailable
from engine.service.local import LocalService
from engine.service.models import Event
from engine.store import codec
from engine.store.records import EventRecord

log = logging.getLogger("wfstudio.server")

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
OPENING = b": connected\n\nretry: 2000\n\n"  # a comment, then the reconnection delay
HEARTBEAT = b": heartbeat\n\n"


def parse_event_id(text: str) -> Key:
    """``<execution_id>:<seq>`` → (execution_id, seq)."""
    execution_id, _, seq = text.strip().rpartition(":")
    if not execution_id or not seq.isdigit() or len(seq) > 10:
        raise InvalidInput(f"Last-Event-ID {text[:100]!r} is not <execution_id>:<seq>")
    return execution_id, int(seq)


def encode(event: Event) -> bytes:
    # the store's encoder: it never raises (integers beyond 64 bits, say, that orjson refuses)
    data = codec.dumps(event.model_dump()).encode()
    return (f"id: {event.execution_id}:{event.seq}\nevent: {event.type}\n".encode()
            + b"data: " + data + b"\n\n")


def encode_control(kind: str, body: dict[str, Any]) -> bytes:
    """A stream-level message (no id: it does not move the client's resume point)."""
    return f"event: {kind}\n".encode() + b"data: " + orjson.dumps(body, default=str) + b"\n\n"


async def _next(events: AsyncIterator[Event]) -> Event:
    return await anext(events)


async def sse_body(events: AsyncIterator[Event], *, heartbeat: float,
                   types: frozenset[str] | None = None, prelude: bytes = b"") -> AsyncIterator[bytes]:
    """The response body: ``events`` encoded, with heartbeats while nothing happens."""
    yield OPENING + prelude
    pending: asyncio.Task[Event] | None = None
    try:
        while True:
            if pending is None:
                # One task per item, never cancelled while waiting: cancelling an async
                # generator's __anext__ would end the generator.
                pending = asyncio.ensure_future(_next(events))
            done, _ = await asyncio.wait({pending}, timeout=heartbeat)
            if not done:
                yield HEARTBEAT
                continue
            task, pending = pending, None
            try:
                event = task.result()
            except StopAsyncIteration:
                return
            except ServiceError as exc:
                yield encode_control("error", exc.to_dict())
                return
            except Exception:
                log.exception("event stream failed")
                yield encode_control("error", {"error": "internal",
                                               "message": "internal server error"})
                return
            if types is None or event.type in types:
                yield encode(event)
    finally:
        # Runs when the client goes away too (the response task is cancelled): shield the
        # clean-up so the subscription is unregistered now, not when garbage-collected.
        with anyio.CancelScope(shield=True):
            if pending is not None:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
            await events.aclose()  # type: ignore[attr-defined]


def _event(record: EventRecord) -> Event:
    return Event.model_validate(record, from_attributes=True)


async def _held(service: LocalService, items: list[tuple[int, Key]]) -> list[tuple[int, Event]]:
    """The caller's tenant's events among the ring's ``items`` (position, key), read back
    from the store, in ring order. The recorder is flushed first: the ring lists events as
    they are recorded, before their batch is written."""
    mine = [(position, key) for position, key in items if service.owns(key[0])]
    if not mine:
        return []
    await service.store.recorder.flush()
    spans: dict[str, tuple[int, int]] = {}  # execution id -> (lowest, highest) seq wanted
    for _position, (execution_id, seq) in mine:
        low, high = spans.get(execution_id, (seq, seq))
        spans[execution_id] = (min(low, seq), max(high, seq))
    store = service.store

    def read() -> dict[Key, EventRecord]:
        found: dict[Key, EventRecord] = {}
        for execution_id, (low, high) in spans.items():
            for record in store.events(execution_id, after_seq=low - 1, limit=high - low + 1):
                found[(execution_id, record.seq)] = record
        return found

    found = read() if store.dialect == "sqlite" else await asyncio.to_thread(read)
    # An event the store does not hold (its execution was refused by the store) is skipped.
    return [(position, _event(found[key])) for position, key in mine if key in found]


async def all_events(service: LocalService, recent: RecentEvents,
                     resume: Key | None) -> AsyncIterator[Event]:
    """The live events of every execution; after ``resume`` (an event still in the ring),
    first the events recorded since, without a gap or a duplicate.

    The live subscription may register a little after the ring is read, or a little
    before: each live event's ring position says whether it was already sent (skip it) or
    whether some events between the last one sent and it must be sent first.
    """
    last = recent.position(resume) if resume is not None else None
    live = service.subscribe(None)
    try:
        if last is not None:
            items = recent.between(last)
            for _position, held in await _held(service, items):  # the caller's tenant's only
                yield held
            if items:
                last = items[-1][0]
        async for event in live:
            if last is not None:
                position = recent.position((event.execution_id, event.seq))
                if position is not None:
                    if position <= last:
                        continue  # already sent from the ring
                    try:
                        missed = recent.between(last, position)
                    except LookupError:
                        raise Unavailable("the stream fell too far behind to resume without "
                                          "a gap: reconnect without Last-Event-ID") from None
                    for _position, held in await _held(service, missed):
                        yield held
                    last = position
            yield event
    finally:
        await live.aclose()  # type: ignore[attr-defined]
