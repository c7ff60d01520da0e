"""Many executions at once: breakpoints on some, mocks on others, a live subscriber on all."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from engine.service.local import LocalService
from engine.service.models import Event, RunOptions
from tests.waiting import wait_for_condition

PIPELINES = """
pipelines:
  paused:
    steps:
      - {name: a, type: step.set, config: {values: {x: "{{ .n }}"}}}
      - {name: wait, type: step.delay, config: {duration: 5ms}}
      - {name: b, type: step.set, config: {values: {y: "{{ .x * 2 }}"}}}
  mocked:
    steps:
      - {name: fetch, type: step.fail, config: {message: "the real step must not run"}}
      - {name: out, type: step.pipeline_output, config: {values: {got: "{{ .steps.fetch.value }}", n: "{{ .n }}"}}}
"""


async def test_200_concurrent_executions_every_event_once_in_order(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(PIPELINES)
    async with await LocalService.open([tmp_path / "p.yaml"],
                                       store=f"sqlite:///{tmp_path}/s.db") as svc:
        await svc.set_breakpoint("paused", "b", condition=".n % 3 == 0")
        await svc.set_mock("mocked", "fetch", output={"value": "mocked"}, delay_ms=2)
        seen: dict[str, list[Event]] = defaultdict(list)
        subscribed = asyncio.Event()

        async def listen() -> None:
            subscribed.set()
            async for event in svc.subscribe(None):
                seen[event.execution_id].append(event)

        async def resumer() -> None:
            while True:
                for paused in await svc.paused():
                    await svc.resume(paused.execution_id, "continue",
                                     [{"op": "add", "path": "/current/patched", "value": True}])
                await asyncio.sleep(0.005)

        listener = asyncio.ensure_future(listen())
        await subscribed.wait()
        await wait_for_condition(lambda: svc.hub.subscriber_count() == 1, "the live subscription")
        helper = asyncio.ensure_future(resumer())
        runs = await asyncio.gather(*(
            svc.run("paused" if n % 2 else "mocked", {"n": n}) for n in range(200)))
        helper.cancel()
        stored_of = {r.execution_id: await svc.events(r.execution_id, limit=10_000) for r in runs}
        await wait_for_condition(  # the subscriber drains the last events
            lambda: all(len(seen[i]) >= len(stored_of[i]) for i in stored_of),
            "every stored event to reach the live subscriber")
        listener.cancel()
        await asyncio.gather(listener, helper, return_exceptions=True)

        assert {r.status for r in runs} == {"completed"}
        mocked = [r for n, r in enumerate(runs) if n % 2 == 0]
        assert all(r.output["got"] == "mocked" for r in mocked)
        pauses = 0
        for run in runs:
            stored = stored_of[run.execution_id]
            assert [e.seq for e in stored] == list(range(1, len(stored) + 1))
            live = seen[run.execution_id]
            assert [(e.seq, e.type) for e in live] == [(e.seq, e.type) for e in stored]
            pauses += sum(e.type == "debug.paused" for e in stored)
        expected = [n for n in range(200) if n % 2 and n % 3 == 0]
        assert pauses == len(expected) == 33
        for n in expected:
            assert runs[n].output["patched"] is True and runs[n].output["y"] == 2 * n


async def test_concurrent_pauses_are_independent(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(PIPELINES)
    async with await LocalService.open([tmp_path / "p.yaml"],
                                       store=f"sqlite:///{tmp_path}/s.db") as svc:
        await svc.set_breakpoint("paused", "b", condition=".n % 3 == 0")
        started = [await svc.run("paused", {"n": n}, RunOptions(wait=False)) for n in range(30)]

        async def statuses() -> list[str]:
            return [(await svc.get_execution(s.execution_id)).status for s in started]

        # Ten pause; the other twenty finish while those ten wait.
        await wait_for_condition(lambda: _count(svc.paused(), 10), "ten pauses")
        settled = await wait_for_condition(
            lambda: _settled(statuses(), completed=20),
            "twenty runs to complete beside the ten paused")
        assert settled.count("paused") == 10
        paused = await svc.paused()
        assert sorted(p.context["current"]["n"] for p in paused) == list(range(0, 30, 3))
        for p in paused:
            await svc.resume(p.execution_id, "continue",
                             [{"op": "replace", "path": "/current/x", "value": 1000}])
        await wait_for_condition(lambda: _settled(statuses(), completed=30),
                                 "all thirty runs to complete")
        outputs = {(await svc.get_execution(s.execution_id)).output["n"]:
                   (await svc.get_execution(s.execution_id)).output["y"] for s in started}
        assert all(outputs[n] == (2000 if n % 3 == 0 else 2 * n) for n in range(30))


async def _count(items: Awaitable[list[Any]], n: int) -> bool:
    return len(await items) == n


async def _settled(statuses: Awaitable[list[str]], completed: int) -> list[str] | None:
    """The statuses once ``completed`` runs have completed (the rest must not be running)."""
    current = await statuses
    return current if current.count("completed") == completed else None
