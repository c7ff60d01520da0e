"""``cache.memory``: an in-process key/value cache with per-entry TTL and LRU eviction.

The methods are coroutines so a networked cache (``cache.redis``, later) can offer the same
interface to ``step.cache_*``. Values are deep-copied in and out: a step that mutates what it
read must not change what the next execution reads.
"""

from __future__ import annotations

import copy
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from engine.durations import parse_duration
from engine.errors import StepError
from engine.steps.base import ModuleType


class MemoryCache:
    """Entries expire after their TTL; beyond ``max_entries`` the least recently used goes."""

    def __init__(self, name: str, config: Mapping[str, Any],
                 clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.max_entries = int(config.get("max_entries", 10_000))
        if self.max_entries < 1:
            raise StepError(f"module {name!r} (cache.memory): max_entries must be at least 1",
                            type="config")
        default_ttl = config.get("default_ttl")
        try:
            self.default_ttl = parse_duration(default_ttl) if default_ttl is not None else None
        except ValueError as exc:
            raise StepError(f"module {name!r} (cache.memory): default_ttl: {exc}",
                            type="config") from None
        self._clock = clock
        self._entries: OrderedDict[str, tuple[Any, float | None]] = OrderedDict()  # value, expiry

    async def get(self, key: str) -> tuple[bool, Any]:
        """``(hit, value)``; an expired entry is a miss and is dropped."""
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        value, expires = entry
        if expires is not None and expires <= self._clock():
            del self._entries[key]
            return False, None
        self._entries.move_to_end(key)
        return True, copy.deepcopy(value)

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value``; ``ttl`` seconds (None = the module's ``default_ttl``, else forever)."""
        ttl = self.default_ttl if ttl is None else ttl
        expires = self._clock() + ttl if ttl is not None else None
        self._entries[key] = (copy.deepcopy(value), expires)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def delete(self, key: str) -> bool:
        """True if a live entry was removed."""
        hit, _ = await self.get(key)
        self._entries.pop(key, None)
        return hit

    async def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        now = self._clock()
        return sum(1 for _, exp in self._entries.values() if exp is None or exp > now)


_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "max_entries": {
            "type": "integer", "minimum": 1, "default": 10000,
            "description": "Entries kept; past this the least recently used entry is evicted.",
        },
        "default_ttl": {
            "type": ["string", "number"],
            "description": "TTL for entries set without one (e.g. 5m); unset = no expiry.",
        },
    },
}

MODULE_TYPES: list[ModuleType] = [
    ModuleType(
        name="cache.memory",
        factory=MemoryCache,
        description="An in-process cache with per-entry TTL and LRU eviction (lost on restart).",
        schema=_SCHEMA,
    ),
]
