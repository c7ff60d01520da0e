"""Waiting on a condition, never on the clock: the suite must pass on a loaded machine.

A test that sleeps a fixed time and then asserts races whatever it waits for; these
helpers poll a probe until it holds and fail, saying what was awaited and what was last
seen, only after a generous timeout (a loaded 2-core machine can be 10x slower).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

TIMEOUT = 30.0  # seconds; only ever reached when the condition never holds


async def wait_for_condition(probe: Callable[[], Awaitable[T] | T], what: str,
                             timeout: float = TIMEOUT, interval: float = 0.01) -> T:
    """Poll ``probe`` (sync or async) until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        result = probe()
        last = await result if inspect.isawaitable(result) else result
        if last:
            return last  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last: {last!r}")
        await asyncio.sleep(interval)


def wait_until(probe: Callable[[], T], what: str, timeout: float = TIMEOUT,
               interval: float = 0.02) -> T:
    """The blocking twin of ``wait_for_condition`` (threads, subprocesses, sync tests)."""
    deadline = time.monotonic() + timeout
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


async def step_started(engine: Any, execution_id: str) -> bool:
    """Whether a ``step.started`` event of the execution is in the store (read as it lands)."""
    from engine.errors import NotFoundError

    try:
        return bool(await engine.events(execution_id, types=["step.started"]))
    except NotFoundError:  # the execution's first batch is not written yet
        return False
