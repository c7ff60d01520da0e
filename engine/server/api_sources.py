"""Sources: the connectors that start executions from outside events (webhooks, streams,
queues), as the caller's tenant sees them.

Scopes: looking (``GET``) needs ``read``; a test event starts a run with the caller's data,
so it needs ``run`` (its body is capped like a run's input, see ``engine.server.gate``);
starting or stopping a source needs ``admin``: a source takes every event of its transport
for the whole tenant, so pausing it holds up everyone's production traffic, which is more
than a ``run`` key (given to CI jobs and webhook callers) should be able to do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from engine.server.deps import Service, needs
from engine.service.models import SourceDelivery, SourceInfo, TestEvent

router = APIRouter()

Name = Annotated[str, Path(min_length=1, max_length=200, description="the connector's name")]


@router.get("/sources", tags=["sources"], dependencies=needs("read"))
async def list_sources(service: Service) -> list[SourceInfo]:
    """The sources of the loaded files the caller's tenant sees, by name, with their state
    and counters since they last started."""
    return await service.list_sources()


@router.post("/sources/{name}/start", tags=["sources"], dependencies=needs("admin"))
async def start_source(name: Name, service: Service) -> SourceInfo:
    """Start reading from the source's transport (already running: unchanged)."""
    return await service.start_source(name)


@router.post("/sources/{name}/stop", tags=["sources"], dependencies=needs("admin"))
async def stop_source(name: Name, service: Service) -> SourceInfo:
    """Stop reading; what was not recorded is not acknowledged, so the transport keeps it.
    Executions already started run on."""
    return await service.stop_source(name)


@router.post("/sources/{name}/test-events", tags=["sources"], dependencies=needs("run"))
async def send_test_event(name: Name, body: TestEvent, service: Service) -> SourceDelivery:
    """Take in a made-up event exactly as one from the transport would be (routing, schema
    check, dedup by ``id``), without using the transport: the source may be stopped. A
    second event with the same ``id`` is a ``duplicate`` and starts nothing."""
    return await service.send_test_event(name, body)


@router.get("/sources/{name}/deliveries", tags=["sources"], dependencies=needs("read"))
async def source_deliveries(name: Name, service: Service,
                            limit: Annotated[int, Query(ge=1, le=1000)] = 50
                            ) -> list[SourceDelivery]:
    """The events the source took in, newest first, each with what it became."""
    return await service.source_deliveries(name, limit)
