"""Step mocks: answers the executor gives instead of running a step (events-and-store.md §6).

Mocks live in the store's ``step_mocks`` table and are indexed here by (pipeline, step), where
step is a step path (``fan-out/profile``) or a plain step name matching that step anywhere.
Each mock belongs to a tenant: a run only meets its own tenant's mocks, and a call that
names a tenant sees only that tenant's mocks.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import delete, select, update

from engine.executor import ExecutionRun, MockAnswer
from engine.service.errors import InvalidInput, NotFound
from engine.service.models import Mock, MockMode
from engine.store import models
from engine.store.store import Store


class MockBook:
    def __init__(self, store: Store | None):
        self.store = store
        self._mocks: dict[str, Mock] = {}
        self._tenants: dict[str, str] = {}  # mock id -> tenant
        self._index: dict[tuple[str, str, str], Mock] = {}
        if store is not None:
            with store.read() as conn:
                for row in conn.execute(select(models.step_mocks)).mappings():
                    self._mocks[row["id"]] = _mock(row)
                    self._tenants[row["id"]] = row["tenant"]
        self._reindex()

    def list(self, pipeline: str | None = None, *, tenant: str | None = None) -> list[Mock]:
        mocks = [m for m in self._mocks.values()
                 if (pipeline is None or m.pipeline == pipeline)
                 and (tenant is None or self._tenants[m.id] == tenant)]
        return sorted(mocks, key=lambda m: (m.pipeline, m.step, m.id))

    def set(self, pipeline: str, step: str, *, mode: MockMode = "fixed", output: Any = None,
            error: dict[str, Any] | None = None, delay_ms: float = 0.0, enabled: bool = True,
            source_execution_id: str | None = None, tenant: str = "default") -> Mock:
        """Create the mock of (pipeline, step), replacing an existing one."""
        if mode == "error" and not (isinstance(error, dict) and error.get("message")):
            raise InvalidInput("an error mock needs error={'message': ...}")
        if mode not in ("fixed", "error", "recorded"):
            raise InvalidInput(f"unknown mock mode {mode!r}: use fixed, error or recorded")
        if delay_ms < 0:
            raise InvalidInput("delay_ms must not be negative")
        existing = self._index_all().get((tenant, pipeline, step))
        if (source_execution_id is None and existing is not None and existing.mode == mode
                and existing.output == output):
            source_execution_id = existing.source_execution_id  # switched or delayed: still recorded
        mock = Mock(id=existing.id if existing else uuid.uuid4().hex[:12], pipeline=pipeline,
                    step=step, mode=mode, output=output, error=error if mode == "error" else None,
                    delay_ms=delay_ms, enabled=enabled,
                    hit_count=existing.hit_count if existing else 0,
                    source_execution_id=source_execution_id)
        if self.store is not None:
            now = time.time()
            values = {"pipeline": pipeline, "step": step, "mode": mode, "output": output,
                      "error": mock.error, "delay_ms": delay_ms, "enabled": enabled,
                      "hit_count": mock.hit_count, "source_execution_id": source_execution_id,
                      "updated": now}
            with self.store.begin() as conn:
                if existing:
                    conn.execute(update(models.step_mocks)
                                 .where(models.step_mocks.c.id == mock.id).values(**values))
                else:
                    conn.execute(models.step_mocks.insert().values(id=mock.id, tenant=tenant,
                                                                    created=now, **values))
        self._mocks[mock.id] = mock
        self._tenants[mock.id] = tenant
        self._reindex()
        return mock

    def remove(self, mock_id: str, *, tenant: str | None = None) -> None:
        if mock_id not in self._mocks or tenant not in (None, self._tenants[mock_id]):
            raise NotFound(f"no mock {mock_id!r}")
        if self.store is not None:
            with self.store.begin() as conn:
                conn.execute(delete(models.step_mocks).where(models.step_mocks.c.id == mock_id))
        del self._mocks[mock_id]
        self._tenants.pop(mock_id, None)
        self._reindex()

    def clear(self, pipeline: str | None = None, *, tenant: str | None = None) -> int:
        doomed = [m.id for m in self.list(pipeline, tenant=tenant)]
        if self.store is not None and doomed:
            with self.store.begin() as conn:
                conn.execute(delete(models.step_mocks).where(models.step_mocks.c.id.in_(doomed)))
        for mock_id in doomed:
            del self._mocks[mock_id]
            self._tenants.pop(mock_id, None)
        self._reindex()
        return len(doomed)

    def _index_all(self) -> dict[tuple[str, str, str], Mock]:
        return {(self._tenants[m.id], m.pipeline, m.step): m for m in self._mocks.values()}

    def _reindex(self) -> None:
        self._index = {key: m for key, m in self._index_all().items() if m.enabled}

    # ------------------------------------------------------------------ the executor's hook

    def mock_for(self, run: ExecutionRun, step: Any, path: str) -> MockAnswer | None:
        if not self._index:
            return None
        key = (run.record.tenant, run.pipeline.name)
        mock = self._index.get((*key, path)) or self._index.get((*key, step.name))
        if mock is None:
            return None
        mock.hit_count += 1
        if self.store is not None:
            with self.store.begin() as conn:
                conn.execute(update(models.step_mocks).where(models.step_mocks.c.id == mock.id)
                             .values(hit_count=models.step_mocks.c.hit_count + 1))
        return MockAnswer(id=mock.id, output=mock.output, error=mock.error, delay_ms=mock.delay_ms)


def _mock(row: Any) -> Mock:
    return Mock(id=row["id"], pipeline=row["pipeline"], step=row["step"], mode=row["mode"],
                output=row["output"], error=row["error"], delay_ms=row["delay_ms"] or 0.0,
                enabled=bool(row["enabled"]), hit_count=row["hit_count"] or 0,
                source_execution_id=row["source_execution_id"])
