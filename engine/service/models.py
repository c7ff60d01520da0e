"""What crosses the service interface: JSON-ready pydantic models, the same locally and over HTTP."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, with_config
from typing_extensions import TypedDict

ResumeAction = Literal["continue", "step_over", "skip", "abort"]
PauseReason = Literal["breakpoint", "step_over", "pause"]
ReplayMode = Literal["exact", "modified", "from_step"]
MockMode = Literal["fixed", "error", "recorded"]


class RequestModel(BaseModel):
    """What a caller sends: an unknown field or a value of the wrong JSON type is an error
    naming it (``"wait": 0`` or a misspelt ``"wiat"`` is refused, never silently ignored)."""

    model_config = ConfigDict(extra="forbid", strict=True)


# RFC 6902 operations, as the JSON Schema states them (a patch is a list of these). The
# values stay plain dicts (type checkers see them so): jsonpatch applies them as they came.
JsonPointer = Annotated[str, Field(pattern=r"^(/([^~]|~[01])*)*$", max_length=10_000)]


@with_config(ConfigDict(extra="forbid"))
class PatchValueOperation(TypedDict):
    op: Literal["add", "replace", "test"]
    path: JsonPointer
    value: Any


@with_config(ConfigDict(extra="forbid"))
class PatchRemoveOperation(TypedDict):
    op: Literal["remove"]
    path: JsonPointer


PatchFromOperation = TypedDict(  # "from" is a keyword: the functional form
    "PatchFromOperation", {"op": Literal["move", "copy"], "path": JsonPointer, "from": JsonPointer})
PatchFromOperation.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
PatchOperation = Annotated[PatchValueOperation | PatchRemoveOperation | PatchFromOperation,
                           Field(discriminator="op")]
if TYPE_CHECKING:
    JsonPatch = list[dict[str, Any]]
else:
    JsonPatch = list[PatchOperation]


class VersionInfo(BaseModel):
    engine_version: str
    api_version: str = "1"
    backend: Literal["local", "remote"]
    store: str = ""  # the store URL with any password hidden


class PipelineInfo(BaseModel):
    name: str
    file: str
    description: str = ""
    trigger: dict[str, Any] = Field(default_factory=dict)  # {type, config}
    steps: list[dict[str, Any]] = Field(default_factory=list)  # [{name, type}]
    definition_hash: str = ""


class DefinitionText(BaseModel):
    file: str
    text: str
    hash: str
    pipelines: list[str]


class DiagnosticInfo(BaseModel):
    file: str
    line: int
    col: int
    message: str
    severity: Literal["error", "warning"] = "error"


class StepTypeInfo(BaseModel):
    name: str
    description: str
    category: str
    schema_: dict[str, Any] = Field(alias="schema")
    output: str
    example: dict[str, Any] | None = None
    # Structure the editor draws without knowing types by name (plugins included):
    # config key -> "list" | "single" | "map" of sub-steps, and config paths naming steps.
    substep_keys: dict[str, str] = Field(default_factory=dict)
    step_refs: list[str] = Field(default_factory=list)
    module_refs: list[str] = Field(default_factory=list)
    program_keys: list[str] = Field(default_factory=list)

    model_config = {"populate_by_name": True}


class RunOptions(RequestModel):
    wait: bool = True  # False: return as soon as the execution has started
    mocks: bool = True  # consult enabled step mocks
    breakpoints: bool = True  # stop at enabled breakpoints
    record: Literal["full", "redacted", "metadata"] | None = None  # overrides the pipeline's


class RunResult(BaseModel):
    execution_id: str
    status: str
    output: Any = None
    error: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    duration_ms: float | None = None


class ExecutionFilter(RequestModel):
    pipeline: str | None = None
    status: str | None = None
    since: float | None = None  # unix seconds
    until: float | None = None
    text: str | None = None
    limit: int = Field(50, ge=1, le=1000)
    cursor: str | None = None


class ExecutionSummary(BaseModel):
    id: str
    pipeline: str
    status: str
    trigger_type: str = "manual"
    trigger_payload: Any = None
    started_at: float
    ended_at: float | None = None
    duration_ms: float | None = None
    output: Any = None
    error: dict[str, Any] | None = None
    definition_hash: str = ""
    parent_id: str | None = None
    replay_of: str | None = None
    tenant: str = "default"
    event_count: int = 0


class ExecutionPage(BaseModel):
    items: list[ExecutionSummary]
    next_cursor: str | None = None


class StepRun(BaseModel):
    execution_id: str
    path: str
    step: str
    type: str
    seq: int
    iteration: int = 0
    attempt: int = 1
    status: str
    started_at: float
    ended_at: float | None = None
    duration_ms: float | None = None
    error: str | None = None
    output_size: int = 0
    flags: list[str] = Field(default_factory=list)


class Timeline(BaseModel):
    execution: ExecutionSummary
    steps: list[StepRun]


class Event(BaseModel):
    execution_id: str
    seq: int
    type: str
    data: dict[str, Any]
    ts: float


class ReplayOptions(RequestModel):
    mode: ReplayMode = "exact"
    from_step: str | None = None  # mode from_step: the first step to re-run (a top-level name)
    patch: JsonPatch | None = None  # RFC 6902 on the trigger payload (mode modified)
    payload: Any = None  # a replacement payload (mode modified); wins over ``patch``
    use_current_definition: bool = False  # default: the definition the original ran
    mocks: dict[str, Any] = Field(default_factory=dict)  # step path -> output, for this replay
    use_recorded_mocks: list[str] = Field(default_factory=list)  # step paths answered from the record
    breakpoints: bool = True  # stop at enabled breakpoints (off for headless replays)
    wait: bool = True


class ReplayPlanStep(BaseModel):
    step: str
    path: str
    action: Literal["reuse", "mock", "run", "skip"]
    reason: str = ""


class ReplayPlan(BaseModel):
    execution_id: str
    pipeline: str
    mode: ReplayMode
    definition_hash: str  # the definition the replay will run
    definition_changed: bool  # differs from the original's
    payload: Any = None
    steps: list[ReplayPlanStep]


class ValueChange(BaseModel):
    path: str  # JSON Pointer into the value
    value_a: Any = None
    value_b: Any = None


class StepDiff(BaseModel):
    path: str
    iteration: int = 0
    attempt: int = 1
    status_a: str | None = None  # None: the step did not run in that execution
    status_b: str | None = None
    route_a: str | None = None
    route_b: str | None = None
    duration_ms_a: float | None = None
    duration_ms_b: float | None = None
    input_changes: list[ValueChange] = Field(default_factory=list)
    output_changes: list[ValueChange] = Field(default_factory=list)
    same: bool = True
    # timeline markers of each side (reused, mocked, retried, routed, ...): shown, not compared
    flags_a: list[str] = Field(default_factory=list)
    flags_b: list[str] = Field(default_factory=list)
    occurrence: int = 0  # k-th run of this (path, iteration, attempt): re-entered by a jump


class ExecutionDiff(BaseModel):
    a: str
    b: str
    pipeline_a: str
    pipeline_b: str
    status_a: str
    status_b: str
    definition_changed: bool
    definition_change: list[str] = Field(default_factory=list)  # unified diff lines of the sources
    trigger_changes: list[ValueChange] = Field(default_factory=list)
    output_changes: list[ValueChange] = Field(default_factory=list)
    steps: list[StepDiff]
    first_divergence: StepDiff | None = None
    summary: dict[str, int] = Field(default_factory=dict)  # same, changed, only_a, only_b


class Breakpoint(BaseModel):
    id: str
    pipeline: str
    step: str  # a step path: "charge" or "fan-out/profile"
    condition: str | None = None
    enabled: bool = True
    hit_count: int = 0


class PausedExecution(BaseModel):
    execution_id: str
    pipeline: str
    step: str
    path: str
    reason: PauseReason
    breakpoint_id: str | None = None
    paused_at: float
    context: dict[str, Any]  # {current, steps, trigger, meta}: what a patch applies to


class Mock(BaseModel):
    id: str
    pipeline: str
    step: str  # step path
    mode: MockMode = "fixed"
    output: Any = None
    error: dict[str, Any] | None = None  # {message, type?, status?} for mode "error"
    delay_ms: float = 0.0
    enabled: bool = True
    hit_count: int = 0
    source_execution_id: str | None = None


class DlqFilter(RequestModel):
    pipeline: str | None = None
    status: str | None = None  # pending | retrying | resolved | discarded
    text: str | None = Field(None, max_length=200)  # in the id, pipeline, step, execution or error
    limit: int = Field(100, ge=1, le=1000)


class DlqEntry(BaseModel):
    id: str
    pipeline: str
    step: str | None = None
    execution_id: str | None = None
    payload: Any = None
    error: str | None = None
    error_type: str | None = None
    status: str
    retry_count: int = 0
    max_retries: int = 3
    last_retry_id: str | None = None
    created: float
    updated: float
    resolved: float | None = None


class DlqRetryResult(BaseModel):
    entry_id: str
    execution_id: str | None = None
    status: str  # the retry execution's status, or "skipped" with a reason in ``error``
    error: str | None = None


class BackfillRequest(RequestModel):
    pipeline: str = Field(min_length=1, max_length=200)
    # past payloads of this pipeline (default: ``pipeline``)
    source_pipeline: str | None = Field(None, min_length=1, max_length=200)
    since: float | None = Field(None, ge=0, le=1e11, allow_inf_nan=False)  # unix seconds
    until: float | None = Field(None, ge=0, le=1e11, allow_inf_nan=False)
    jsonl: str | None = None  # JSON Lines text; one payload per line (instead of past payloads)
    concurrency: int = Field(4, ge=1, le=64)
    limit: int | None = Field(None, ge=1, le=10_000_000)


class Backfill(BaseModel):
    id: str
    pipeline: str
    source: dict[str, Any]
    status: str  # pending | running | completed | failed | cancelled
    total: int = 0
    done: int = 0
    succeeded: int = 0
    failed: int = 0
    concurrency: int = 1
    error: str | None = None
    created: float
    updated: float
    ended: float | None = None


class EventSchemaInfo(BaseModel):
    type: str
    version: int
    schema_: dict[str, Any] = Field(alias="schema")

    model_config = {"populate_by_name": True}


class PluginInfo(BaseModel):
    group: str
    name: str
    value: str
    distribution: str = ""
