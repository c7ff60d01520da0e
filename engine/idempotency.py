"""Idempotency keys: one in-process lock per key, the store's table across processes.

On a shared PostgreSQL store the lock is the store's distributed lock instead: then one
process at a time runs the step for a key, and a pending claim found under the lock was
left by a process that died holding it (its lock went with it), so it is taken over at
once instead of after the key's TTL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.store.store import Store


class IdempotencyKeys:
    """Step outputs by (pipeline, step path, key). Without a store they live in memory."""

    def __init__(self, store: Store | None):
        self.store = store
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}
        self._memory: dict[tuple[str, str, str], tuple[float, Any]] = {}

    @asynccontextmanager
    async def lock(self, pipeline: str, step: str, key: str) -> AsyncIterator[None]:
        if self.store is not None and self.store.distributed:
            async with self.store.lock(f"idempotency:{pipeline}:{step}:{key}"):
                yield
            return
        ident = (pipeline, step, key)
        lock = self._locks.setdefault(ident, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and self._locks.get(ident) is lock:
                del self._locks[ident]

    def lookup(self, pipeline: str, step: str, key: str) -> tuple[bool, Any]:
        now = time.time()
        if self.store is not None:
            return self.store.idem_lookup(pipeline, step, key, now)
        entry = self._memory.get((pipeline, step, key))
        if entry is None or entry[0] <= now:
            return False, None
        return True, entry[1]

    def claim(self, pipeline: str, step: str, key: str, owner: str, ttl: float) -> bool:
        if self.store is not None:
            return self.store.idem_claim(pipeline, step, key, owner, time.time(), ttl,
                                         take_over=self.store.distributed)
        return True  # in memory the asyncio lock already serializes claimants

    def complete(self, pipeline: str, step: str, key: str, output: Any, ttl: float) -> None:
        now = time.time()
        if self.store is not None:
            self.store.idem_complete(pipeline, step, key, output, now, ttl)
        else:
            self._memory[(pipeline, step, key)] = (now + ttl, output)

    def release(self, pipeline: str, step: str, key: str) -> None:
        if self.store is not None:
            self.store.idem_release(pipeline, step, key)
