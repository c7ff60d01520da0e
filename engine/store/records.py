"""Plain records the executor hands to the recorder and the store hands back to readers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ExecutionRecord:
    """The ``executions`` summary row. The executor mutates it and calls ``Recorder.execution``."""

    id: str
    pipeline: str
    status: str  # running | paused | completed | failed | cancelled | compensated
    trigger_type: str = "manual"
    trigger_payload: Any = None  # already redacted per the pipeline's ``record`` level
    started_at: float = 0.0  # unix seconds
    ended_at: float | None = None
    duration_ms: float | None = None
    output: Any = None
    error: dict[str, Any] | None = None  # {message, type, step?}
    definition_hash: str = ""
    parent_id: str | None = None
    replay_of: str | None = None
    tenant: str = "default"
    event_count: int = 0
    # trigger_payload as the store holds it, encoded once by the recorder (it never changes)
    trigger_text: str | None = field(default=None, repr=False, compare=False)


@dataclass
class StepRunRecord:
    """One ``step_runs`` row: a step attempt (or loop iteration), keyed by (execution_id, seq)."""

    execution_id: str
    path: str  # "fan-out/profile"
    step: str  # the step's own name
    type: str
    seq: int  # seq of its step.started event: the timeline's order
    iteration: int = 0  # loop iteration (0 outside loops)
    attempt: int = 1
    status: str = "running"  # running | completed | failed | skipped | cancelled | compensated
    started_at: float = 0.0
    ended_at: float | None = None
    duration_ms: float | None = None
    error: str | None = None
    output_size: int = 0
    # markers the timeline shows: mocked, retried, routed, paused, patched, reused, idempotent_hit
    flags: list[str] = field(default_factory=list)


@dataclass
class EventRecord:
    execution_id: str
    seq: int  # 1-based, unique per execution
    type: str
    data: dict[str, Any]
    ts: float  # unix seconds
