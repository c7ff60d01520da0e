"""Runs, executions (list, get, timeline, events), replay and diff."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Response

from engine.server.bodies import CancelResult, RunRequest
from engine.server.deps import Service, needs
from engine.service.models import (
    Event,
    ExecutionDiff,
    ExecutionFilter,
    ExecutionPage,
    ExecutionSummary,
    ReplayOptions,
    ReplayPlan,
    RunResult,
    Timeline,
)
from engine.store.codec import dumps

router = APIRouter()

Id = Annotated[str, Query(min_length=1, max_length=200)]
Seconds = Annotated[float | None, Query(allow_inf_nan=False, ge=0, le=1e11)]


@router.post("/pipelines/{name}/runs", tags=["runs"], status_code=201, response_model=RunResult,
             dependencies=needs("run"))
async def run(name: str, body: RunRequest, service: Service) -> Response:
    """Start an execution. ``options.wait`` (default true): answer when it has finished;
    false: as soon as its start is recorded (status ``running``)."""
    result = await service.run(name, body.input, body.options)
    # The output is the run's own value: one JSON cannot carry (a lone surrogate, an integer
    # beyond 64 bits) is answered as the store holds it (codec.py), never a broken response.
    try:
        content = orjson.dumps(result.model_dump())
    except TypeError:
        content = dumps(result.model_dump()).encode()
    return Response(content, 201, media_type="application/json")


@router.post("/executions/{execution_id}/cancel", tags=["runs"], dependencies=needs("run"))
async def cancel(execution_id: str, service: Service) -> CancelResult:
    return CancelResult(cancelled=await service.cancel(execution_id))


@router.get("/executions", tags=["executions"], dependencies=needs("read"))
async def list_executions(
        service: Service,
        pipeline: Annotated[str | None, Query(max_length=200)] = None,
        status: Annotated[str | None, Query(max_length=32)] = None,
        since: Seconds = None, until: Seconds = None,
        text: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        cursor: Annotated[str | None, Query(max_length=500)] = None) -> ExecutionPage:
    """Newest first; ``next_cursor`` pages on."""
    return await service.list_executions(ExecutionFilter(
        pipeline=pipeline, status=status, since=since, until=until, text=text, limit=limit,
        cursor=cursor))


@router.get("/executions/diff", tags=["replay and diff"], dependencies=needs("read"))
async def diff(a: Id, b: Id, service: Service) -> ExecutionDiff:
    """Step-by-step comparison of two executions (``a`` and ``b`` are execution ids)."""
    return await service.diff(a, b)


@router.get("/executions/{execution_id}", tags=["executions"], dependencies=needs("read"))
async def get_execution(execution_id: str, service: Service) -> ExecutionSummary:
    return await service.get_execution(execution_id)


@router.get("/executions/{execution_id}/timeline", tags=["executions"],
            dependencies=needs("read"))
async def timeline(execution_id: str, service: Service) -> Timeline:
    return await service.timeline(execution_id)


@router.get("/executions/{execution_id}/events", tags=["executions"], dependencies=needs("read"))
async def events(execution_id: str, service: Service,
                 after_seq: Annotated[int, Query(ge=0, le=2**31)] = 0,
                 type: Annotated[list[str] | None, Query(max_length=100)] = None,
                 limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> list[Event]:
    """Events with seq > ``after_seq`` in order; ``type`` (repeatable) keeps only those types."""
    return await service.events(execution_id, after_seq, type or None, limit)


@router.post("/executions/{execution_id}/replay", tags=["replay and diff"], status_code=201,
             dependencies=needs("run"))
async def replay(execution_id: str, service: Service,
                 options: ReplayOptions | None = None) -> RunResult:
    return await service.replay(execution_id, options)


@router.post("/executions/{execution_id}/replay/plan", tags=["replay and diff"],
             dependencies=needs("read"))
async def replay_plan(execution_id: str, service: Service,
                      options: ReplayOptions | None = None) -> ReplayPlan:
    """What a replay with these options would reuse, mock, run and skip (nothing runs)."""
    return await service.replay_plan(execution_id, options)
