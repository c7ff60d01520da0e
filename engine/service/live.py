"""Live events: the recorder's events fanned out to in-process subscribers.

``EventHub.publish`` is a recorder listener: it runs synchronously inside
``Recorder.event()`` on the event-loop thread, in the middle of an execution. So it only
appends each event to the subscribers' bounded mailboxes; it never awaits, never waits for
a consumer, and a subscriber whose mailbox is full is dropped (its iterator then raises
``Unavailable`` saying from which seq to resubscribe) instead of slowing the execution.

A subscription to one execution stitches the store and the live tail together without a
gap or a duplicate: the live mailbox is registered first, then the recorder is flushed (so
every event emitted before registration is committed), then the stored events are read,
then the mailbox is read, skipping whatever seq was already yielded from the store.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Final

from engine.service.errors import InvalidInput, Unavailable
from engine.service.models import TERMINAL_EVENTS
from engine.store.records import EventRecord

if TYPE_CHECKING:
    from engine.store.recorder import Recorder
    from engine.store.store import Store

DEFAULT_MAXSIZE: Final = 10_000
PAGE_SIZE: Final = 1000


class _End:
    """The last item a dropped or closed subscriber's mailbox receives."""

    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason  # "dropped" | "closed"


class _Subscriber:
    """One subscriber's bounded mailbox: a deque, and the future its consumer waits on.

    Not an asyncio.Queue: its put_nowait costs ~0.8 µs (task accounting, an Event, the
    getters' deque) and publish pays that once per subscriber per event; this does the
    one-producer, one-consumer job at a fraction of it (benchmarks/bench_live.py).
    """

    __slots__ = ("execution_id", "items", "maxsize", "waiter", "wanted")

    def __init__(self, execution_id: str | None, wanted: frozenset[str] | None, maxsize: int):
        self.execution_id = execution_id
        # None: every type. Checked in publish, so filtered-out events take no room.
        self.wanted = wanted
        self.maxsize = maxsize
        self.items: deque[EventRecord | _End] = deque()
        self.waiter: asyncio.Future[None] | None = None

    def offer(self, item: EventRecord | _End) -> bool:
        """Append ``item`` unless the mailbox is full; wake the consumer if it waits."""
        items = self.items
        if len(items) >= self.maxsize and not isinstance(item, _End):
            return False
        items.append(item)
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)
        return True

    async def wait(self) -> None:
        """Until something is offered (only called with the mailbox empty)."""
        waiter = self.waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self.waiter = None


class EventHub:
    """Fans recorded events out to subscribers of one execution or of all executions.

    Use from one event loop (the one the recorder's executions run on). ``maxsize`` bounds
    each subscriber's mailbox: that many undelivered events and the subscriber is dropped.
    """

    def __init__(self, maxsize: int = DEFAULT_MAXSIZE, page_size: int = PAGE_SIZE):
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self.page_size = page_size
        self._by_execution: dict[str, set[_Subscriber]] = {}
        self._all: set[_Subscriber] = set()
        self.dropped = 0  # subscribers dropped for being too slow (diagnostics)

    # ------------------------------------------------------------------ wiring

    def attach(self, recorder: Recorder) -> None:
        """Receive every event ``recorder`` records from now on."""
        if self.publish not in recorder.listeners:
            recorder.listeners.append(self.publish)

    def detach(self, recorder: Recorder) -> None:
        """Stop receiving ``recorder``'s events (current subscribers stay registered)."""
        while self.publish in recorder.listeners:
            recorder.listeners.remove(self.publish)

    def subscriber_count(self) -> int:
        return len(self._all) + sum(len(subs) for subs in self._by_execution.values())

    def close(self) -> None:
        """End every subscription: each iterator raises ``Unavailable`` (e.g. at shutdown)."""
        for sub in [*self._all, *(s for subs in self._by_execution.values() for s in subs)]:
            self._end(sub, _End("closed"))

    # ------------------------------------------------------------------ the hot path

    def publish(self, event: EventRecord) -> None:
        """Hand ``event`` to its execution's subscribers and to the "all" subscribers.

        Called from ``Recorder.event()``: O(subscribers), never blocks. Receivers share the
        EventRecord object, so they must treat it as read-only.
        """
        subs = self._by_execution.get(event.execution_id)
        if subs:
            self._offer(subs, event)
        if self._all:
            self._offer(self._all, event)

    def _offer(self, subs: Iterable[_Subscriber], event: EventRecord) -> None:
        full: list[_Subscriber] | None = None
        for sub in subs:
            if sub.wanted is not None and event.type not in sub.wanted:
                continue
            if not sub.offer(event):
                if full is None:
                    full = []
                full.append(sub)
        if full:  # outside the loop: dropping changes the set being iterated
            for sub in full:
                self.dropped += 1
                self._end(sub, _End("dropped"))

    def _end(self, sub: _Subscriber, marker: _End) -> None:
        """Unregister ``sub`` and replace what it has not read by ``marker``.

        The backlog is discarded (it can be read back from the store), which frees its
        memory at once and guarantees room for the marker.
        """
        self._unregister(sub)
        sub.items.clear()
        sub.offer(marker)

    # ------------------------------------------------------------------ registry

    def _register(self, sub: _Subscriber) -> None:
        if sub.execution_id is None:
            self._all.add(sub)
        else:
            self._by_execution.setdefault(sub.execution_id, set()).add(sub)

    def _unregister(self, sub: _Subscriber) -> None:
        if sub.execution_id is None:
            self._all.discard(sub)
            return
        subs = self._by_execution.get(sub.execution_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_execution[sub.execution_id]

    # ------------------------------------------------------------------ subscribing

    async def subscribe(self, store: Store, recorder: Recorder, execution_id: str | None = None,
                        after_seq: int = 0,
                        types: set[str] | None = None) -> AsyncIterator[EventRecord]:
        """Events of one execution (stored, then live), or the live events of all executions.

        One execution: every event with seq > ``after_seq`` exactly once, in seq order, then
        the iterator ends after the execution's terminal event (at once if that event is
        already stored). The hub does not check that the execution exists: an id that never
        runs waits forever (the service checks first).

        ``execution_id=None`` ("all"): only events recorded from the moment iteration
        starts; nothing is read from the store (there is no common seq across executions
        to resume from, so ``after_seq`` must be 0), and the iterator never ends by itself.

        ``types`` keeps only those event types. A subscriber that falls ``maxsize`` events
        behind raises ``Unavailable`` (its ``details`` say where to resume). Registration
        lasts until the iterator ends, raises, is closed (``aclose()``, or ``break`` inside
        ``contextlib.aclosing``) or its task is cancelled; an abandoned iterator is closed by
        the event loop when it is garbage-collected.
        """
        if execution_id is None and after_seq:
            raise InvalidInput("after_seq resumes one execution's events; the stream of all "
                               "executions is live only: subscribe without after_seq, or to "
                               "one execution")
        if after_seq < 0:
            raise InvalidInput(f"after_seq must be 0 or more, not {after_seq}")
        # One generator body (no inner generator to delegate to), so that closing this
        # iterator runs the ``finally`` below at once.
        wanted: frozenset[str] | None = None
        if types is not None:
            # For one execution the terminal event always passes: it ends the iterator.
            wanted = frozenset(types) | (TERMINAL_EVENTS if execution_id is not None
                                          else frozenset())
        sub = _Subscriber(execution_id, wanted, self.maxsize)
        self._register(sub)  # first: from here on nothing emitted can be missed
        items = sub.items
        try:
            if execution_id is None:
                delivered = 0
                while True:
                    while not items:
                        await sub.wait()
                    item = items.popleft()
                    if isinstance(item, _End):
                        raise _ended(item, f"after {delivered} events; resubscribe (events "
                                           "missed meanwhile can be read per execution with "
                                           "events(id, after_seq))", {"delivered": delivered})
                    delivered += 1
                    yield item
            last = after_seq  # every wanted event with seq <= last has been yielded
            await recorder.flush()  # everything emitted before registration is now stored
            while True:
                page = await self._read(store, execution_id, last, wanted)
                for event in page:
                    last = event.seq
                    if types is None or event.type in types:
                        yield event
                    if event.type in TERMINAL_EVENTS:
                        return
                if len(page) < self.page_size:
                    break
            if last == after_seq > 0 and await self._ended_by(store, execution_id, last):
                return  # resumed after the terminal event: nothing more will come
            while True:
                while not items:
                    await sub.wait()
                item = items.popleft()
                if isinstance(item, _End):
                    raise _ended(item, f"after seq {last}; resubscribe with after_seq={last}",
                                 {"execution_id": execution_id, "after_seq": last})
                if item.seq <= last:
                    continue  # already yielded from the store
                last = item.seq
                if types is None or item.type in types:
                    yield item
                if item.type in TERMINAL_EVENTS:
                    return
        finally:
            self._unregister(sub)

    async def _read(self, store: Store, execution_id: str, after_seq: int,
                    wanted: frozenset[str] | None, limit: int | None = None) -> list[EventRecord]:
        types = sorted(wanted) if wanted is not None else None
        limit = self.page_size if limit is None else limit
        if store.dialect == "sqlite":
            # A local file answers in microseconds (and in-memory SQLite shares one
            # connection with the recorder on this thread): read inline.
            return store.events(execution_id, after_seq=after_seq, types=types, limit=limit)
        return await asyncio.to_thread(store.events, execution_id, after_seq=after_seq,
                                       types=types, limit=limit)

    async def _ended_by(self, store: Store, execution_id: str, seq: int) -> bool:
        """Whether the execution's terminal event is stored with a seq <= ``seq``.

        (Not the execution's status: it may have finished after the read, its terminal
        event then being in the mailbox.)
        """
        terminal = await self._read(store, execution_id, 0, TERMINAL_EVENTS, limit=1)
        return bool(terminal) and terminal[0].seq <= seq


def _ended(marker: _End, where: str, details: dict[str, object]) -> Unavailable:
    if marker.reason == "dropped":
        return Unavailable(f"subscriber too slow: dropped {where}", details)
    return Unavailable(f"event stream closed (the engine is shutting down) {where}", details)
