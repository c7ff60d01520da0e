"""The last events recorded in this process, in recording order, by key.

The stream of all executions is live only (the service's ``subscribe(None)``); this ring lets
a client that reconnects with ``Last-Event-ID`` get what it missed during a short
disconnect. It is fed by a recorder listener, synchronously and in the same order as the
live hub, so each event's position in the ring is its place in that order.

It holds each event's key (execution id, seq), not the event: the events of a run share
their payload with its context, so holding the last 10,000 of them kept a few hundred runs'
payloads alive (at 100 KB bodies, some 300,000 objects every full garbage collection walked,
for as long as the ring held them). A resuming stream reads the events back from the store
(``sse.all_events``), which holds what the listeners were given.
"""

from __future__ import annotations

from collections import deque
from itertools import islice
from typing import TYPE_CHECKING

from engine.store.records import EventRecord

if TYPE_CHECKING:
    from engine.store.recorder import Recorder

Key = tuple[str, int]  # (execution_id, seq)


class RecentEvents:
    """The ring. ``publish`` runs for every event the process records (about twenty a
    triggered run), so it only appends a key; the key -> position index is brought up to
    date when a stream asks for a position."""

    def __init__(self, size: int = 10_000):
        self.size = size
        self._events: deque[Key] = deque(maxlen=max(size, 1))
        self._positions: dict[Key, int] = {}
        self._next = 0  # the position the next event gets
        self._indexed = 0  # the events before this position are in _positions (if held)

    def attach(self, recorder: Recorder) -> None:
        if self.size > 0 and self.publish not in recorder.listeners:
            recorder.listeners.append(self.publish)

    def detach(self, recorder: Recorder) -> None:
        while self.publish in recorder.listeners:
            recorder.listeners.remove(self.publish)

    def publish(self, event: EventRecord) -> None:
        self._events.append((event.execution_id, event.seq))  # drops the oldest once full
        self._next += 1

    def _index(self) -> None:
        """Add the events published since the last call to the index; drop the positions of
        events that left the ring once they are as many as those held."""
        first = self.first
        if self._indexed < first or len(self._positions) > 2 * len(self._events):
            self._positions = {}
            self._indexed = first
        start = self._indexed - first
        for position, key in enumerate(islice(self._events, start, None), self._indexed):
            self._positions[key] = position
        self._indexed = self._next

    @property
    def first(self) -> int:
        """The position of the oldest event still held."""
        return self._next - len(self._events)

    def position(self, key: Key) -> int | None:
        """Where this event is in the ring; None if it is not (or no longer) held."""
        if self._indexed != self._next:
            self._index()
        found = self._positions.get(key)
        return found if found is not None and found >= self.first else None

    def between(self, after: int, before: int | None = None) -> list[tuple[int, Key]]:
        """The keys of the events with ``after`` < position < ``before``, with their positions.

        Raises ``LookupError`` if some of them have already left the ring.
        """
        first = self.first
        if after + 1 < first:
            raise LookupError(after)
        start = after + 1 - first
        stop = len(self._events) if before is None else max(start, before - first)
        return list(enumerate(islice(self._events, start, stop), after + 1))
