"""Waiting helpers of the contract suite: they only use the service interface."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from engine.service.models import Backfill, ExecutionSummary, PausedExecution
from engine.service.protocol import StudioService

T = TypeVar("T")
UNFINISHED = ("running", "paused", "pending")


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str,
                     timeout: float = 30.0) -> T:
    """Poll ``probe`` until it returns something other than None (or fail saying ``what``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await probe()
        if value is not None:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


async def wait_paused(service: StudioService, execution_id: str) -> PausedExecution:
    async def probe() -> PausedExecution | None:
        return next((p for p in await service.paused() if p.execution_id == execution_id), None)
    return await eventually(probe, f"execution {execution_id} to pause")


async def wait_finished(service: StudioService, execution_id: str) -> ExecutionSummary:
    async def probe() -> ExecutionSummary | None:
        summary = await service.get_execution(execution_id)
        return None if summary.status in UNFINISHED else summary
    return await eventually(probe, f"execution {execution_id} to finish")


async def wait_backfill(service: StudioService, backfill_id: str,
                        statuses: tuple[str, ...] = ("completed", "failed", "cancelled")
                        ) -> Backfill:
    async def probe() -> Backfill | None:
        backfill = await service.get_backfill(backfill_id)
        return backfill if backfill.status in statuses else None
    return await eventually(probe, f"backfill {backfill_id} to reach {statuses}")


def seqs(events: list[Any]) -> list[int]:
    return [e.seq for e in events]
