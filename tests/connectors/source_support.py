"""What the transport tests share: a service running a file's ``inbox`` source, its info,
the completed executions of its ``handle`` pipeline, and a store that refuses starts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from engine.service.local import LocalService
from engine.service.models import ExecutionFilter, SourceInfo

# A real SQLite trigger: the store refuses every event start until it is dropped.
REFUSE = ("CREATE TRIGGER refuse_starts BEFORE INSERT ON source_events "
          "WHEN NEW.status = 'started' BEGIN SELECT RAISE(ABORT, 'the test refuses'); END")


@asynccontextmanager
async def serving(file: Path, store: str) -> AsyncIterator[LocalService]:
    service = await LocalService.open([file], store=store)
    try:
        await service.start_source("inbox")
        yield service
    finally:
        await service.close()


async def source(service: LocalService) -> SourceInfo:
    [info] = await service.list_sources()
    return info


async def completed(service: LocalService) -> list[Any]:
    page = await service.list_executions(ExecutionFilter(pipeline="handle", status="completed",
                                                         limit=1000))
    return page.items
