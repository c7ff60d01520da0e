"""Live events (events-and-store.md §7): the EventHub on a real engine and a real store."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from engine.api import Engine
from engine.service.errors import InvalidInput, Unavailable
from engine.service.live import TERMINAL_EVENTS, EventHub
from engine.store.codec import dumps, loads
from engine.store.records import EventRecord

# A step.delay in the middle: subscribers can join while the execution is running.
PIPELINES = """
pipelines:
  slow:
    steps:
      - {name: a, type: step.set, config: {values: {x: "{{ .n }}"}}}
      - {name: say, type: step.log, config: {message: "n is {{ .n }}"}}
      - {name: pause, type: step.delay, config: {duration: "{{ .wait }}"}}
      - {name: b, type: step.set, config: {values: {y: "{{ .x }}"}}}
      - {name: out, type: step.pipeline_output, config: {values: {x: "{{ .x }}", y: "{{ .y }}"}}}
  stepped:
    steps:
      - {name: s1, type: step.set, config: {values: {k: 1}}}
      - {name: d1, type: step.delay, config: {duration: 15ms}}
      - {name: s2, type: step.set, config: {values: {k: 2}}}
      - {name: d2, type: step.delay, config: {duration: 15ms}}
      - {name: s3, type: step.set, config: {values: {k: 3}}}
      - {name: d3, type: step.delay, config: {duration: 15ms}}
      - {name: s4, type: step.set, config: {values: {k: 4}}}
  five:
    steps:
      - {name: a, type: step.set, config: {values: {x: "{{ .n }}"}}}
      - {name: b, type: step.set, config: {values: {y: "{{ .x }}"}}}
      - {name: c, type: step.log, config: {message: "x={{ .x }}"}}
      - {name: d, type: step.set, config: {values: {z: true}}}
      - {name: e, type: step.pipeline_output, config: {values: {x: "{{ .x }}"}}}
  failing:
    steps:
      - {name: a, type: step.set, config: {values: {x: 1}}}
      - {name: boom, type: step.fail, config: {message: no luck}}
  forever:
    steps:
      - {name: a, type: step.set, config: {values: {x: 1}}}
      - {name: wait, type: step.delay, config: {duration: 1h}}
  busy:
    steps:
""" + "".join(  # events all along, yielding to the loop (sleep(0)) after every step
    f"      - {{name: s{i}, type: step.set, config: {{values: {{k: {i}}}}}}}\n"
    f"      - {{name: d{i}, type: step.delay, config: {{duration: 0ms}}}}\n" for i in range(60))


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'live.db'}"


def same(event: EventRecord) -> tuple[Any, ...]:
    """What must match between a live event and its stored row (data as JSON round-trips)."""
    return (event.execution_id, event.seq, event.type, loads(dumps(event.data)), event.ts)


def when_recorded(engine: Engine, match: Callable[[EventRecord], bool]) -> asyncio.Future[EventRecord]:
    """A future resolved when the recorder records an event that ``match``es."""
    assert engine.recorder is not None
    future: asyncio.Future[EventRecord] = asyncio.get_running_loop().create_future()

    def listener(event: EventRecord) -> None:
        if not future.done() and match(event):
            future.set_result(event)
            engine.recorder.listeners.remove(listener)  # type: ignore[union-attr]

    engine.recorder.listeners.append(listener)
    return future


def step_started(name: str) -> Callable[[EventRecord], bool]:
    return lambda e: e.type == "step.started" and e.data.get("step") == name


async def collect(hub: EventHub, engine: Engine, execution_id: str | None = None,
                  **kwargs: Any) -> list[EventRecord]:
    assert engine.store is not None and engine.recorder is not None
    events = hub.subscribe(engine.store, engine.recorder, execution_id, **kwargs)

    async def drain() -> list[EventRecord]:
        return [e async for e in events]

    return await asyncio.wait_for(drain(), 10)  # a missed terminal event fails, never hangs


async def until_registered(hub: EventHub, count: int) -> None:
    for _ in range(1000):
        if hub.subscriber_count() >= count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"expected {count} subscribers, have {hub.subscriber_count()}")


async def stored(engine: Engine, execution_id: str) -> list[EventRecord]:
    events = await engine.events(execution_id, limit=100_000)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].type in TERMINAL_EVENTS
    return events


@pytest.fixture
def hub() -> EventHub:
    return EventHub()


# ---------------------------------------------------------------------- one execution


async def test_join_mid_execution_gets_every_event_once_in_order(store_url: str, hub: EventHub) -> None:
    async with Engine.open(PIPELINES, store=store_url) as engine:
        hub.attach(engine.recorder)  # type: ignore[arg-type]
        paused = when_recorded(engine, step_started("pause"))
        run = asyncio.ensure_future(engine.run("slow", {"n": 7, "wait": "150ms"}))
        first = await paused
        # Joined while the delay runs: execution.started .. step.started(pause) were emitted
        # before the subscription and (at the 50 ms batching interval) are normally not yet
        # committed: the subscription's flush commits them.
        received = await collect(hub, engine, first.execution_id)
        execution = await run
        assert execution.status == "completed"
        assert [e.seq for e in received] == list(range(1, len(received) + 1))
        assert [same(e) for e in received] == [same(e) for e in await stored(engine, execution.id)]
        assert received[-1].type == "execution.completed"
        assert hub.subscriber_count() == 0


async def test_joining_at_any_moment_never_gaps_or_duplicates(tmp_path: Path, hub: EventHub) -> None:
    async with Engine.open(PIPELINES, store=sqlite_url(tmp_path)) as engine:
        hub.attach(engine.recorder)  # type: ignore[arg-type]
        execution_id = uuid.uuid4().hex
        # One subscriber even before the execution exists; the others join every few ms,
        # while events are pending, being committed, or already stored; some after the end.
        early = asyncio.ensure_future(collect(hub, engine, execution_id))
        await until_registered(hub, 1)
        run = asyncio.ensure_future(engine.run("stepped", {}, execution_id=execution_id))

        async def join_later(delay: float) -> list[EventRecord]:
            await asyncio.sleep(delay)
            return await collect(hub, engine, execution_id)

        results = await asyncio.gather(early, *(join_later(i * 0.004) for i in range(25)))
        await run
        expected = [same(e) for e in await stored(engine, execution_id)]
        assert len(expected) == 2 + 2 * 7  # the execution's start and end, each step's
        for received in results:
            assert [same(e) for e in received] == expected
        assert hub.subscriber_count() == 0


async def test_joining_while_events_keep_coming_reads_overlap_once(store_url: str,
                                                                   hub: EventHub) -> None:
    # The execution emits an event on every loop iteration, so events emitted after a
    # subscriber registered are committed by its flush too: they reach it twice (from the
    # store and from its queue) and must be yielded once.
    async with Engine.open(PIPELINES, store=store_url) as engine:
        hub.attach(engine.recorder)  # type: ignore[arg-type]
        execution_id = uuid.uuid4().hex
        run = asyncio.ensure_future(engine.run("busy", {}, execution_id=execution_id))
        joined: list[asyncio.Future[list[EventRecord]]] = []
        for _ in range(100):  # a subscriber joins on each of the first 100 loop iterations
            joined.append(asyncio.ensure_future(collect(hub, engine, execution_id)))
            await asyncio.sleep(0)
        results = await asyncio.gather(*joined)
        await run
        expected = [same(e) for e in await stored(engine, execution_id)]
        assert len(expected) > 200
        for received in results:
            assert [same(e) for e in received] == expected


async def test_late_join_reads_the_store_and_ends(tmp_path: Path) -> None:
    hub = EventHub(page_size=4)  # several pages
    async with Engine.open(PIPELINES, store=sqlite_url(tmp_path)) as engine:
        hub.attach(engine.recorder)  # type: ignore[arg-type]
        execution = await engine.run("slow", {"n": 1, "wait": "1ms"})
        expected = await stored(engine, execution.id)
        assert len(expected) > 8
        received = await collect(hub, engine, execution.id)
        assert [same(e) for e in received] == [same(e) for e in expected]
        assert hub.subscriber_count() == 0


async def test_after_seq_resumes_without_repeating(tmp_path: Path, hub: EventHub) -> None:
    async with Engine.open(PIPELINES, store=sqlite_url(tmp_path)) as engine:
        hub.attach(engine.recorder)  # type: ignore[arg-type]
        # Mid-execution: the first events were "received" elsewhere; resume after seq 3.
        paused = when_recorded(engine, step_started("pause"))
        run = asyncio.ensure_future(engine.run("slow", {"n": 2, "wait": "80ms"}))
        execution_id = (await paused).execution_id
        resumed = await collect(hub, engine, execution_id, after_seq=3)
        await run
        expected = await stored(engine, execution_id)
        assert [same(e) for e in resumed] == [same(e) for e in expected[3:]]
        # Finished: resume after any seq; after the terminal event there is nothing left.
        n = len(expected)
        for after in (1, n - 2, n - 1):
            again = await collect(hub, engine, execution_id, after_seq=after)
            assert [e.seq for e in again] == list(range(after + 1, n + 1))
        assert await collect(hub, engine, execution_id, after_seq=n) == []
        assert await collect(hub, engine, execution_id, after_seq=n + 10) == []
        assert hub.subscriber_count() == 0


async def test_types_filter_keeps_only_those_and_still_ends(tmp_path: Path, hub: EventHub) -> None:
    async with Engine.open(PIPELINES, store=sqlite_url(tmp_path)) as engine:
        hub.attach(engine.recorder)  # type: ignore[arg-type]
        paused = when_recorded(engine, step_started("pause"))
        run = asyncio.ensure_future(engine.run("slow", {"n": 3, "wait": "60ms"}))
        execution_id = (await paused).execution_id
        wanted = {"step.completed", "log"}
        received = await collect(hub, engine, execution_id, types=wanted)
        await run
        expected = [e for e in await stored(engine, execution_id) if e.type in wanted]
        assert [same(e) for e in received] == [same(e) for e in expected]
        assert [e.data["step"] for e in received if e.type == "step.completed"] == [
            "a", "say", "pause", "b", "out"]
        late = await collect(hub, engine, execution_id, types={"execution.completed"})
        assert [e.type for e in late] == ["execution.completed"]


async def test_failed_and_cancelled_executions_end_the_subscription(tmp_path: Path,
                                                                    hub: EventHub) -> None:
    async with Engine.open(PIPELINES, store=sqlite_url(tmp_path)) as engine:
        hub.attach(engine.recorder)  # type: ignore[arg-type]
        failed_id = uuid.uuid4().hex
        watching = asyncio.ensure_future(collect(hub, engine, failed_id))
        await until_registered(hub, 1)
        execution = await engine.run("failing", {}, execution_id=failed_id)
        assert execution.status == "failed"
        received = await asyncio.wait_for(watching, 5)
        assert received[-1].type == "execution.failed"
        assert [same(e) for e in received] == [same(e) for e in await stored(engine, failed_id)]

        waiting = when_recorded(engine, step_started("wait"))
        run = asyncio.ensure_future(engine.run("forever", {}))
        cancelled_id = (await waiting).execution_id
        watching = asyncio.ensure_future(collect(hub, engine, cancelled_id))
        await until_registered(hub, 1)
        assert await engine.cancel(cancelled_id)
        with contextlib.suppress(asyncio.CancelledError):
            await run
        received = await asyncio.wait_for(watching, 5)
        assert received[-1].type == "execution.cancelled"
        assert [same(e) for e in received] == [same(e) for e in await stored(engine, cancelled_id)]


# ---------------------------------------------------------------------- all executions


async def test_all_subscriber_sees_concurrent_executions_each_in_order(tmp_path: Path,
                                                                      hub: EventHub) -> None:
    async with Engine.open(PIPELINES, store=sqlite_url(tmp_path)) as engine:
        hub.attach(engine.recorder)  # type: ignore[arg-type]
        received: list[EventRecord] = []

        async def watch_all(count: int) -> None:
            ended = 0
            async with contextlib.aclosing(hub.subscribe(engine.store, engine.recorder)) as events:  # type: ignore[arg-type]
                async for event in events:
                    received.append(event)
                    ended += event.type in TERMINAL_EVENTS
                    if ended == count:
                        break

        watcher = asyncio.ensure_future(watch_all(6))
        await until_registered(hub, 1)
        executions = await asyncio.gather(
            *(engine.run("stepped", {}) for _ in range(3)),
            *(engine.run("slow", {"n": i, "wait": "10ms"}) for i in range(3)))
        await asyncio.wait_for(watcher, 5)
        assert hub.subscriber_count() == 0
        by_execution: dict[str, list[EventRecord]] = {}
        for event in received:
            by_execution.setdefault(event.execution_id, []).append(event)
        assert set(by_execution) == {e.id for e in executions}
        for execution in executions:
            mine = by_execution[execution.id]
            assert [same(e) for e in mine] == [same(e) for e in await stored(engine, execution.id)]
        # They really ran concurrently: their events interleave in the stream.
        order = [e.execution_id for e in received]
        assert any(order[i] != order[i + 1] and order[i + 1] in order[:i] for i in range(len(order) - 1))


async def test_all_subscriber_type_filter(tmp_path: Path, hub: EventHub) -> None:
    async with Engine.open(PIPELINES, store=sqlite_url(tmp_path)) as engine:
        hub.attach(engine.recorder)  # type: ignore[arg-type]
        events = hub.subscribe(engine.store, engine.recorder, types={"execution.completed"})  # type: ignore[arg-type]
        nxt = asyncio.ensure_future(events.__anext__())
        await until_registered(hub, 1)
        first = await engine.run("five", {"n": 1})
        event = await asyncio.wait_for(nxt, 5)
        assert (event.execution_id, event.type) == (first.id, "execution.completed")
        await events.aclose()
        assert hub.subscriber_count() == 0


async def test_all_rejects_after_seq_and_negative_after_seq_is_invalid(tmp_path: Path,
                                                                      hub: EventHub) -> None:
    async with Engine.open(PIPELINES, store=sqlite_url(tmp_path)) as engine:
        with pytest.raises(InvalidInput, match="live only"):
            await collect(hub, engine, None, after_seq=5)
        with pytest.raises(InvalidInput, match="0 or more"):
            await collect(hub, engine, "some-id", after_seq=-1)
        assert hub.subscriber_count() == 0


async def test_detach_stops_publishing(tmp_path: Path, hub: EventHub) -> None:
    async with Engine.open(PIPELINES, store=sqlite_url(tmp_path)) as engine:
        recorder = engine.recorder
        assert recorder is not None
        hub.attach(recorder)
        hub.attach(recorder)  # idempotent
        assert recorder.listeners.count(hub.publish) == 1
        events = hub.subscribe(engine.store, recorder)  # type: ignore[arg-type]
        nxt = asyncio.ensure_future(events.__anext__())
        await until_registered(hub, 1)
        hub.detach(recorder)
        assert hub.publish not in recorder.listeners
        unseen = await engine.run("five", {"n": 1})
        hub.attach(recorder)
        seen = await engine.run("five", {"n": 2})
        event = await asyncio.wait_for(nxt, 5)
        assert (event.execution_id, event.seq) == (seen.id, 1)
        assert unseen.id != seen.id
        await events.aclose()


# ---------------------------------------------------------------------- slow subscribers


async def test_slow_subscribers_are_dropped_and_executions_are_unaffected(tmp_path: Path) -> None:
    hub = EventHub(maxsize=5)
    async with Engine.open(PIPELINES, store=sqlite_url(tmp_path)) as engine:
        store, recorder = engine.store, engine.recorder
        assert store is not None and recorder is not None
        baseline = await engine.run("five", {"n": 0})
        per_run = len(await stored(engine, baseline.id))

        hub.attach(recorder)
        # Each reads one event, then never again.
        slow_all = hub.subscribe(store, recorder)
        first_all = asyncio.ensure_future(slow_all.__anext__())
        target = uuid.uuid4().hex
        slow_one = hub.subscribe(store, recorder, target)
        first_one = asyncio.ensure_future(slow_one.__anext__())
        await until_registered(hub, 2)

        executions = await asyncio.gather(
            engine.run("five", {"n": 1}, execution_id=target),
            *(engine.run("five", {"n": i}) for i in range(2, 30)))
        assert all(e.status == "completed" for e in executions)
        for execution in executions:
            assert len(await stored(engine, execution.id)) == per_run
        assert store.count_events() == per_run * (len(executions) + 1)
        assert hub.dropped == 2 and hub.subscriber_count() == 0

        # Each got its first event, or was dropped before it could even read that one.
        async def delivered_then_dropped(nxt: asyncio.Future[EventRecord],
                                         events: AsyncIterator[EventRecord]) -> tuple[int, Unavailable]:
            try:
                await asyncio.wait_for(nxt, 5)
            except Unavailable as exc:
                return 0, exc
            with pytest.raises(Unavailable) as info:
                await events.__anext__()
            return 1, info.value

        got, error = await delivered_then_dropped(first_all, slow_all)
        assert str(error).startswith(f"subscriber too slow: dropped after {got} events; resubscribe")
        got, error = await delivered_then_dropped(first_one, slow_one)
        assert str(error) == (f"subscriber too slow: dropped after seq {got}; "
                              f"resubscribe with after_seq={got}")
        assert error.details == {"execution_id": target, "after_seq": got}
        rest = await collect(hub, engine, target, after_seq=got)
        assert [e.seq for e in rest] == list(range(got + 1, per_run + 1))


async def test_a_drop_spares_the_fast_subscribers(tmp_path: Path) -> None:
    # A run of "five" records its 23 events without yielding to the loop: a mailbox must
    # hold one run's worth; the slow one overflows during the second run.
    hub = EventHub(maxsize=40)
    async with Engine.open(PIPELINES, store=sqlite_url(tmp_path)) as engine:
        store, recorder = engine.store, engine.recorder
        assert store is not None and recorder is not None
        hub.attach(recorder)
        slow = hub.subscribe(store, recorder)
        first = asyncio.ensure_future(slow.__anext__())
        fast_received: list[EventRecord] = []

        async def fast() -> None:
            async with contextlib.aclosing(hub.subscribe(store, recorder)) as events:
                async for event in events:
                    fast_received.append(event)
                    if event.type in TERMINAL_EVENTS and len(
                            {e.execution_id for e in fast_received if e.type in TERMINAL_EVENTS}) == 5:
                        break

        fast_task = asyncio.ensure_future(fast())
        await until_registered(hub, 2)
        executions = [await engine.run("five", {"n": i}) for i in range(5)]
        await asyncio.wait_for(fast_task, 5)
        await asyncio.wait_for(first, 5)
        assert hub.dropped == 1
        with pytest.raises(Unavailable):
            await slow.__anext__()
        expected = [same(e) for x in executions for e in await stored(engine, x.id)]
        assert [same(e) for e in fast_received] == expected


# ---------------------------------------------------------------------- no leaks


async def test_subscriptions_are_released_however_the_consumer_stops(tmp_path: Path,
                                                                    hub: EventHub) -> None:
    async with Engine.open(PIPELINES, store=sqlite_url(tmp_path)) as engine:
        store, recorder = engine.store, engine.recorder
        assert store is not None and recorder is not None
        hub.attach(recorder)
        waiting = when_recorded(engine, step_started("wait"))
        run = asyncio.ensure_future(engine.run("forever", {}))
        running_id = (await waiting).execution_id

        # break inside aclosing: released at once
        async with asyncio.timeout(5), contextlib.aclosing(
                hub.subscribe(store, recorder, running_id)) as events:
            async for _event in events:
                assert hub.subscriber_count() == 1
                break
        assert hub.subscriber_count() == 0

        # explicit aclose, one execution and all
        for execution_id in (running_id, None):
            events = hub.subscribe(store, recorder, execution_id)
            nxt = asyncio.ensure_future(events.__anext__())
            await until_registered(hub, 1)
            if execution_id is not None:
                await asyncio.wait_for(nxt, 5)
            else:
                nxt.cancel()  # cancelled while waiting in the queue
                with contextlib.suppress(asyncio.CancelledError):
                    await nxt
                assert hub.subscriber_count() == 0
            await events.aclose()
            assert hub.subscriber_count() == 0

        # a consumer task cancelled while it waits for the next live event
        async def consume(execution_id: str | None) -> None:
            async for _event in hub.subscribe(store, recorder, execution_id):  # type: ignore[arg-type]
                pass

        tasks = [asyncio.ensure_future(consume(running_id)), asyncio.ensure_future(consume(None))]
        await until_registered(hub, 2)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert hub.subscriber_count() == 0

        # break without aclosing: the event loop closes the abandoned generator
        async def abandon() -> None:
            async for _event in hub.subscribe(store, recorder, running_id):  # type: ignore[arg-type]
                break

        await asyncio.wait_for(abandon(), 5)
        gc.collect()
        for _ in range(10):
            await asyncio.sleep(0)
        assert hub.subscriber_count() == 0

        await engine.cancel(running_id)
        with contextlib.suppress(asyncio.CancelledError):
            await run


async def test_close_ends_every_subscription(tmp_path: Path, hub: EventHub) -> None:
    async with Engine.open(PIPELINES, store=sqlite_url(tmp_path)) as engine:
        store, recorder = engine.store, engine.recorder
        assert store is not None and recorder is not None
        hub.attach(recorder)
        waiting = when_recorded(engine, step_started("wait"))
        run = asyncio.ensure_future(engine.run("forever", {}))
        running_id = (await waiting).execution_id

        async def drain(execution_id: str | None) -> list[EventRecord]:
            return [e async for e in hub.subscribe(store, recorder, execution_id)]

        tasks = [asyncio.ensure_future(drain(running_id)), asyncio.ensure_future(drain(None))]
        await until_registered(hub, 2)
        hub.close()
        assert hub.subscriber_count() == 0
        one, everything = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
        assert isinstance(one, Unavailable) and "shutting down" in str(one)
        assert one.details["execution_id"] == running_id and one.details["after_seq"] >= 4
        assert isinstance(everything, Unavailable)
        await engine.cancel(running_id)
        with contextlib.suppress(asyncio.CancelledError):
            await run


# ---------------------------------------------------------------------- at scale


async def test_200_concurrent_executions_with_a_live_all_subscriber(tmp_path: Path,
                                                                   hub: EventHub) -> None:
    async with Engine.open(PIPELINES, store=sqlite_url(tmp_path)) as engine:
        store, recorder = engine.store, engine.recorder
        assert store is not None and recorder is not None
        hub.attach(recorder)
        received: list[EventRecord] = []
        runs = 200

        async def watch(events: AsyncIterator[EventRecord]) -> None:
            ended = 0
            async for event in events:
                received.append(event)
                if event.type in TERMINAL_EVENTS:
                    ended += 1
                    if ended == runs:
                        return

        events = hub.subscribe(store, recorder)
        watcher = asyncio.ensure_future(watch(events))
        await until_registered(hub, 1)
        executions = await asyncio.gather(*(engine.run("five", {"n": i}) for i in range(runs)))
        await asyncio.wait_for(watcher, 10)
        await events.aclose()  # type: ignore[attr-defined]
        assert hub.subscriber_count() == 0 and hub.dropped == 0

        assert len({(e.execution_id, e.seq) for e in received}) == len(received)  # once each
        by_execution: dict[str, list[EventRecord]] = {}
        for event in received:
            by_execution.setdefault(event.execution_id, []).append(event)
        assert set(by_execution) == {e.id for e in executions}
        total = 0
        for execution in executions:
            saved = await stored(engine, execution.id)  # stored once each, seq 1..N
            assert [same(e) for e in by_execution[execution.id]] == [same(e) for e in saved]
            total += len(saved)
        assert len(received) == total == store.count_events()
