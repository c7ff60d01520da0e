"""The dead-letter queue, backfills and event schemas."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from engine.server.bodies import (
    DlqPurgeRequest,
    DlqRetryRequest,
    EventCheck,
    EventCheckResult,
    Purged,
    SchemaRequest,
)
from engine.server.deps import Service, needs
from engine.service.models import (
    Backfill,
    BackfillRequest,
    DlqEntry,
    DlqFilter,
    DlqRetryResult,
    EventSchemaInfo,
)

router = APIRouter()
DlqStatus = Literal["pending", "retrying", "resolved", "discarded"]  # engine.service.dlq.STATUSES


@router.get("/dlq", tags=["dead-letter queue"], dependencies=needs("read"))
async def list_dlq(service: Service,
                   pipeline: Annotated[str | None, Query(max_length=200)] = None,
                   status: Annotated[DlqStatus | None, Query()] = None,
                   text: Annotated[str | None, Query(max_length=200)] = None,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[DlqEntry]:
    return await service.list_dlq(DlqFilter(pipeline=pipeline, status=status, text=text, limit=limit))


@router.get("/dlq/stats", tags=["dead-letter queue"], dependencies=needs("read"))
async def dlq_stats(service: Service) -> dict[str, int]:
    """Entry counts by status."""
    return await service.dlq_stats()


@router.post("/dlq/retry", tags=["dead-letter queue"], dependencies=needs("run"))
async def retry_dlq(body: DlqRetryRequest, service: Service) -> list[DlqRetryResult]:
    """Re-run the entries' payloads (optionally JSON-patched); answers when all have run."""
    return await service.retry_dlq(body.ids, body.patch, force=body.force)


@router.post("/dlq/purge", tags=["dead-letter queue"], dependencies=needs("admin"))
async def purge_dlq(body: DlqPurgeRequest, service: Service) -> Purged:
    """Delete resolved and discarded entries unchanged for ``older_than`` seconds."""
    return Purged(purged=await service.purge_dlq(body.older_than))


@router.get("/dlq/{entry_id}", tags=["dead-letter queue"], dependencies=needs("read"))
async def get_dlq(entry_id: str, service: Service) -> DlqEntry:
    return await service.get_dlq(entry_id)


@router.post("/dlq/{entry_id}/resolve", tags=["dead-letter queue"], dependencies=needs("run"))
async def resolve_dlq(entry_id: str, service: Service) -> DlqEntry:
    return await service.resolve_dlq(entry_id)


@router.post("/dlq/{entry_id}/discard", tags=["dead-letter queue"], dependencies=needs("run"))
async def discard_dlq(entry_id: str, service: Service) -> DlqEntry:
    return await service.discard_dlq(entry_id)


@router.post("/backfills", tags=["backfills"], status_code=201, dependencies=needs("run"))
async def start_backfill(body: BackfillRequest, service: Service) -> Backfill:
    """Start re-running past payloads (or JSON Lines); poll ``GET /backfills/{id}``."""
    return await service.start_backfill(body)


@router.get("/backfills", tags=["backfills"], dependencies=needs("read"))
async def list_backfills(service: Service) -> list[Backfill]:
    return await service.list_backfills()


@router.get("/backfills/{backfill_id}", tags=["backfills"], dependencies=needs("read"))
async def get_backfill(backfill_id: str, service: Service) -> Backfill:
    return await service.get_backfill(backfill_id)


@router.post("/backfills/{backfill_id}/cancel", tags=["backfills"], dependencies=needs("run"))
async def cancel_backfill(backfill_id: str, service: Service) -> Backfill:
    return await service.cancel_backfill(backfill_id)


@router.get("/schemas", tags=["event schemas"], dependencies=needs("read"))
async def list_schemas(service: Service) -> list[EventSchemaInfo]:
    return await service.list_schemas()


@router.post("/schemas", tags=["event schemas"], status_code=201, dependencies=needs("admin"))
async def register_schema(body: SchemaRequest, service: Service) -> EventSchemaInfo:
    """Register a new version of an event type's JSON Schema."""
    return await service.register_schema(body.type, body.schema_)


@router.post("/schemas/validate", tags=["event schemas"], dependencies=needs("read"))
async def validate_event(body: EventCheck, service: Service) -> EventCheckResult:
    """Check ``data`` against the latest schema of ``type``."""
    return EventCheckResult(errors=await service.validate_event(body.type, body.data))
