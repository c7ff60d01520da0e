"""``broker.memory``: in-process publish/subscribe topics.

Each topic keeps its last ``history`` messages so the studio and tests can inspect what a
pipeline published. Subscribers are async (or plain) callables; each delivery runs as its
own task so a slow subscriber never blocks the publishing step, and a failing subscriber is
logged rather than failing the publisher. Topic patterns use shell wildcards (``orders.*``).
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import fnmatch
import inspect
import logging
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from engine.errors import StepError
from engine.steps.base import ModuleType

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Any]


class MemoryBroker:
    """Messages are ``{id, topic, payload, published_at}`` dicts."""

    def __init__(self, name: str, config: Mapping[str, Any]):
        self.name = name
        self.history = int(config.get("history", 100))
        if self.history < 0:
            raise StepError(f"module {name!r} (broker.memory): history must not be negative",
                            type="config")
        self._topics: dict[str, deque[dict[str, Any]]] = {}
        self._subscribers: list[tuple[str, Handler]] = []
        self._deliveries: set[asyncio.Task[Any]] = set()

    async def publish(self, topic: str, payload: Any) -> str:
        """Keep the message in the topic's history, hand it to matching subscribers; its id."""
        message = {
            "id": uuid.uuid4().hex,
            "topic": topic,
            "payload": copy.deepcopy(payload),
            "published_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        kept = self._topics.setdefault(topic, deque(maxlen=self.history or None))
        if self.history:
            kept.append(message)
        for pattern, handler in list(self._subscribers):
            if fnmatch.fnmatchcase(topic, pattern):
                task = asyncio.ensure_future(self._deliver(handler, copy.deepcopy(message)))
                self._deliveries.add(task)
                task.add_done_callback(self._deliveries.discard)
        return str(message["id"])

    def subscribe(self, pattern: str, handler: Handler) -> Callable[[], None]:
        """Call ``handler(message)`` for every later message on a matching topic; returns an
        unsubscribe function."""
        entry = (pattern, handler)
        self._subscribers.append(entry)

        def unsubscribe() -> None:
            if entry in self._subscribers:
                self._subscribers.remove(entry)

        return unsubscribe

    def messages(self, topic: str) -> list[dict[str, Any]]:
        """The kept messages of ``topic``, oldest first (copies)."""
        return copy.deepcopy(list(self._topics.get(topic, ())))

    def topics(self) -> list[str]:
        return sorted(self._topics)

    async def drain(self) -> None:
        """Wait until every delivery started so far has finished (tests, orderly shutdown)."""
        while self._deliveries:
            await asyncio.gather(*list(self._deliveries), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._deliveries):
            task.cancel()
        await asyncio.gather(*list(self._deliveries), return_exceptions=True)
        self._subscribers.clear()

    async def _deliver(self, handler: Handler, message: dict[str, Any]) -> None:
        try:
            result = handler(message)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("broker %r: subscriber of %r failed", self.name, message["topic"])


_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "history": {
            "type": "integer", "minimum": 0, "default": 100,
            "description": "Messages kept per topic for inspection (0 = keep none).",
        },
    },
}

MODULE_TYPES: list[ModuleType] = [
    ModuleType(
        name="broker.memory",
        factory=MemoryBroker,
        description="In-process publish/subscribe topics; keeps recent messages per topic.",
        schema=_SCHEMA,
    ),
]
