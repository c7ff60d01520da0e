"""Live events as Server-Sent Events (see ``engine.server.sse`` for the wire format)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from engine.server.deps import Service, needs
from engine.server.sse import HEADERS, all_events, encode_control, parse_event_id, sse_body
from engine.service.errors import InvalidInput

router = APIRouter(tags=["executions"])

_STREAM: dict[int | str, dict[str, Any]] = {
    200: {"description": "text/event-stream of `id: <execution_id>:<seq>`, `event: <type>`, "
                         "`data: <Event JSON>`; comment lines are heartbeats",
          "content": {"text/event-stream": {"schema": {"type": "string"}}}},
}
Types = Annotated[list[str] | None, Query(max_length=100,
                                          description="only these event types (repeatable)")]
LastEventId = Annotated[str | None, Header(max_length=300)]


def _types(types: list[str] | None) -> frozenset[str] | None:
    return frozenset(types) if types else None


@router.get("/executions/{execution_id}/stream", response_class=StreamingResponse,
            responses=_STREAM, dependencies=needs("read"))
async def stream_execution(execution_id: str, request: Request, service: Service,
                           after_seq: Annotated[int, Query(ge=0, le=2**31)] = 0,
                           type: Types = None,
                           last_event_id: LastEventId = None) -> StreamingResponse:
    """One execution's events after ``after_seq`` (stored, then live); ends after the
    execution's last event. ``Last-Event-ID`` (a reconnecting client) wins over ``after_seq``."""
    if last_event_id:
        resumed_id, after_seq = parse_event_id(last_event_id)
        if resumed_id != execution_id:
            raise InvalidInput("Last-Event-ID names another execution than this stream's")
    await service.get_execution(execution_id)  # 404 now, not inside a 200 stream
    events = service.subscribe(execution_id, after_seq)
    body = sse_body(events, heartbeat=request.app.state.heartbeat, types=_types(type))
    return StreamingResponse(body, media_type="text/event-stream", headers=HEADERS)


@router.get("/stream", response_class=StreamingResponse, responses=_STREAM,
            dependencies=needs("read"))
async def stream_all(request: Request, service: Service, type: Types = None,
                     last_event_id: LastEventId = None) -> StreamingResponse:
    """Every execution's events as they are recorded; never ends by itself.

    With ``Last-Event-ID`` the events recorded since that one are sent first, if this
    server still holds it (the last few thousand events of this process); otherwise the
    stream starts with an ``event: stream.gap`` message and continues live.
    """
    recent = request.app.state.recent
    resume = parse_event_id(last_event_id) if last_event_id else None
    prelude = b""
    # Another tenant's event id is treated as one no longer held: it says nothing of theirs.
    if resume is not None and (recent.position(resume) is None or not service.owns(resume[0])):
        prelude = encode_control("stream.gap", {
            "after": last_event_id, "message": "the events after this id are no longer held "
            "by the server: read what you missed per execution (events after_seq)"})
        resume = None
    events = all_events(service, recent, resume)
    body = sse_body(events, heartbeat=request.app.state.heartbeat, types=_types(type),
                    prelude=prelude)
    return StreamingResponse(body, media_type="text/event-stream", headers=HEADERS)
