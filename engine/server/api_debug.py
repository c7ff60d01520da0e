"""The debugger (breakpoints, paused executions, resume) and step mocks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from engine.server.bodies import (
    BreakpointRequest,
    Enabled,
    MockFromExecution,
    MockRequest,
    Removed,
    ResumeRequest,
)
from engine.server.deps import Service, needs
from engine.service.models import Breakpoint, Mock, PausedExecution

router = APIRouter()

Pipeline = Annotated[str | None, Query(max_length=200)]


@router.get("/debug/breakpoints", tags=["debugger"], dependencies=needs("read"))
async def list_breakpoints(service: Service) -> list[Breakpoint]:
    return await service.list_breakpoints()


@router.post("/debug/breakpoints", tags=["debugger"], status_code=201,
             dependencies=needs("debug"))
async def set_breakpoint(body: BreakpointRequest, service: Service) -> Breakpoint:
    return await service.set_breakpoint(body.pipeline, body.step, body.condition)


@router.patch("/debug/breakpoints/{breakpoint_id}", tags=["debugger"],
              dependencies=needs("debug"))
async def enable_breakpoint(breakpoint_id: str, body: Enabled, service: Service) -> Breakpoint:
    return await service.enable_breakpoint(breakpoint_id, body.enabled)


@router.delete("/debug/breakpoints/{breakpoint_id}", tags=["debugger"], status_code=204,
               dependencies=needs("debug"))
async def remove_breakpoint(breakpoint_id: str, service: Service) -> None:
    await service.remove_breakpoint(breakpoint_id)


@router.put("/debug/pause-new-runs/{pipeline}", tags=["debugger"], status_code=204,
            dependencies=needs("debug"))
async def pause_new_runs(pipeline: str, body: Enabled, service: Service) -> None:
    """While enabled, every new execution of the pipeline pauses before its first step."""
    await service.pause_new_runs(pipeline, body.enabled)


@router.get("/debug/paused", tags=["debugger"], dependencies=needs("read"))
async def paused(service: Service) -> list[PausedExecution]:
    return await service.paused()


@router.post("/debug/paused/{execution_id}/resume", tags=["debugger"], status_code=204,
             dependencies=needs("debug"))
async def resume(execution_id: str, body: ResumeRequest, service: Service) -> None:
    """``action``: continue, step_over, skip or abort; ``patch``: RFC 6902 on the context."""
    await service.resume(execution_id, body.action, body.patch)


@router.get("/mocks", tags=["mocks"], dependencies=needs("read"))
async def list_mocks(service: Service, pipeline: Pipeline = None) -> list[Mock]:
    return await service.list_mocks(pipeline)


@router.post("/mocks", tags=["mocks"], status_code=201, dependencies=needs("debug"))
async def set_mock(body: MockRequest, service: Service) -> Mock:
    return await service.set_mock(body.pipeline, body.step, mode=body.mode, output=body.output,
                                  error=body.error, delay_ms=body.delay_ms, enabled=body.enabled)


@router.post("/mocks/from-execution", tags=["mocks"], status_code=201,
             dependencies=needs("debug"))
async def mock_from_execution(body: MockFromExecution, service: Service) -> Mock:
    """A mock answering with the step's recorded output in that execution."""
    return await service.mock_from_execution(body.execution_id, body.step)


@router.delete("/mocks/{mock_id}", tags=["mocks"], status_code=204, dependencies=needs("debug"))
async def remove_mock(mock_id: str, service: Service) -> None:
    await service.remove_mock(mock_id)


@router.delete("/mocks", tags=["mocks"], dependencies=needs("debug"))
async def clear_mocks(service: Service, pipeline: Pipeline = None) -> Removed:
    """Remove every mock (of ``pipeline``, if given)."""
    return Removed(removed=await service.clear_mocks(pipeline))
