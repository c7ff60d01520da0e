"""What crosses the service interface: JSON-ready pydantic models, the same locally and over HTTP."""

# No ``from __future__ import annotations`` here: the event payloads below are TypedDicts whose
# NotRequired keys must be seen at runtime (``__required_keys__``: the vocabulary's test reads it).
from collections.abc import Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, NotRequired

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


class ConnectorTypeInfo(BaseModel):
    """A source or sink type (``connectors:`` entries), for the editor's forms."""

    name: str  # e.g. "source.redis_streams"
    kind: Literal["source", "sink"]
    description: str
    schema_: dict[str, Any] = Field(alias="schema")  # of the connector's ``config``
    example: dict[str, Any] | None = None
    secret_keys: list[str] = Field(default_factory=list)

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
    type: str  # an EventType (below): plain strings on the wire
    data: dict[str, Any]
    ts: float


# ---------------------------------------------------------------------- the events' vocabulary
# What the engine records of an execution (Event.type) and what each event's ``data`` holds.
# A StrEnum: a member IS its string, so the store, the wire and comparisons with stored
# strings see exactly the names they always did ("step.started", ...).


class EventType(StrEnum):
    EXECUTION_STARTED = "execution.started"
    EXECUTION_COMPLETED = "execution.completed"
    EXECUTION_FAILED = "execution.failed"
    EXECUTION_CANCELLED = "execution.cancelled"
    EXECUTION_INTERRUPTED = "execution.interrupted"  # written by recovery, not the executor
    EXECUTION_COMPENSATED = "execution.compensated"
    STEP_STARTED = "step.started"
    # Legacy: written by stores of 0.1.0 and earlier (a step's input and output as events of
    # their own); readers accept them, new runs put them in step.started / step.completed.
    STEP_INPUT = "step.input"
    STEP_OUTPUT = "step.output"
    STEP_COMPLETED = "step.completed"
    STEP_FAILED = "step.failed"
    STEP_SKIPPED = "step.skipped"
    STEP_RETRYING = "step.retrying"
    STEP_ROUTED = "step.routed"
    STEP_MOCKED = "step.mocked"
    STEP_IDEMPOTENT_HIT = "step.idempotent_hit"
    STEP_COMPENSATING = "step.compensating"
    STEP_COMPENSATED = "step.compensated"
    DEBUG_PAUSED = "debug.paused"
    DEBUG_RESUMED = "debug.resumed"
    DEBUG_CONTEXT_PATCHED = "debug.context_patched"
    # what step types record while they run (StepCtx.log and .event; plugins may add their own)
    LOG = "log"
    RATE_LIMIT_EXCEEDED = "rate_limit.exceeded"
    RATE_LIMIT_RECOVERED = "rate_limit.recovered"
    CIRCUIT_STATE_CHANGED = "circuit.state_changed"


# The events that end an execution: exactly one is its last event.
TERMINAL_EVENTS: Final = frozenset({
    EventType.EXECUTION_COMPLETED, EventType.EXECUTION_FAILED, EventType.EXECUTION_CANCELLED,
    EventType.EXECUTION_COMPENSATED, EventType.EXECUTION_INTERRUPTED})
# The execution status each end event leaves (the part after "execution.").
TERMINAL_STATUS: Final[dict[str, str]] = {kind: kind.split(".", 1)[1] for kind in TERMINAL_EVENTS}
# What the debugger records: a pause, its resumption and any context edit in between.
DEBUG_EVENTS: Final = frozenset({
    EventType.DEBUG_PAUSED, EventType.DEBUG_RESUMED, EventType.DEBUG_CONTEXT_PATCHED})
# Read from old stores only: new runs never write them (see EventType).
LEGACY_EVENTS: Final = frozenset({EventType.STEP_INPUT, EventType.STEP_OUTPUT})
# The events that may carry a step run's recorded input / output, new form first. Only
# those whose data has the key carry it: a legacy step.completed has no output.
INPUT_EVENTS: Final = (EventType.STEP_STARTED, EventType.STEP_INPUT)
OUTPUT_EVENTS: Final = (EventType.STEP_COMPLETED, EventType.STEP_OUTPUT)


def carries_input(kind: str, data: Mapping[str, Any]) -> bool:
    """Whether an event of type ``kind`` records a step run's input (either form)."""
    return "input" in data and kind in INPUT_EVENTS


def carries_output(kind: str, data: Mapping[str, Any]) -> bool:
    """Whether an event of type ``kind`` records a step run's output (either form)."""
    return "output" in data and kind in OUTPUT_EVENTS


# Each event's ``data``. NotRequired keys are absent (never null) when they do not apply.
# Events after step.started name their run exactly with ``attempt``, ``started_seq`` (the
# seq of its step.started) and, inside a loop, ``iteration``: concurrent iterations share a path.


class TriggerData(TypedDict):
    type: str  # manual, http, schedule, replay, dlq_retry, backfill, ...
    payload: Any  # the trigger payload as recorded (redacted per the record level)


class ReplayData(TypedDict):
    mode: ReplayMode
    from_step: NotRequired[str]  # mode from_step: the first top-level step re-run
    patch: NotRequired[list[dict[str, Any]]]  # RFC 6902 applied to the original payload
    payload_replaced: NotRequired[bool]  # mode modified with a whole replacement payload
    definition: NotRequired[Literal["current"]]  # ran the current definition, not the original's


class ExecutionStartedData(TypedDict):
    pipeline: str
    trigger: TriggerData
    definition_hash: str
    parent_id: NotRequired[str]  # a sub-pipeline run: the calling execution
    replay_of: NotRequired[str]  # a replay: the original execution
    replay: NotRequired[ReplayData]  # a replay: how it was asked for (engine/service/replay.py)
    # why a linked run exists: {dlq_entry, execution_id} for a DLQ retry (engine/service/dlq.py),
    # {backfill, source_execution?} for a backfill item (engine/service/backfill.py)
    origin: NotRequired[dict[str, Any]]


class ExecutionCompletedData(TypedDict):
    output: Any  # redacted per the record level
    duration_ms: float


class ExecutionFailedData(TypedDict):
    error: dict[str, Any]  # {message, type, status?, details?, step?}
    step: str | None  # the failing step's path, when a step failed
    duration_ms: NotRequired[float]  # absent when the store refused the record (recorder.py)
    compensated: NotRequired[list[str]]  # strategy compensate: the steps undone (some failed)


class ExecutionCancelledData(TypedDict):
    reason: str  # "cancelled by request", "aborted in the debugger", "cancelled"


class ExecutionCompensatedData(TypedDict):
    steps: list[str]  # the compensated steps' names, in the order they were undone
    error: dict[str, Any]  # the failure that started the compensation
    duration_ms: float


class ExecutionInterruptedData(TypedDict):
    error: dict[str, Any]  # {message, type: "interrupted", step?}
    reason: Literal["process_stopped"]
    instance: str | None  # the engine process that was running it, when known
    step: NotRequired[str]  # the step path that was running


class StepStartedData(TypedDict):
    step: str  # the step's name
    path: str  # its path: "fan-out/profile" for a sub-step
    type: str  # its step type ("step.set", ...)
    attempt: int  # 1, then 2, 3, ... for retries
    index: NotRequired[int]  # position in its step list (absent for reused steps)
    iteration: NotRequired[int]  # inside a loop: the iteration
    reused: NotRequired[bool]  # replay from_step: taken from the original, not run
    # the rendered config (redacted per the record level); absent when rendering it failed
    # (step.failed follows), for reused steps, and in stores of 0.1.0 and earlier (step.input)
    input: NotRequired[dict[str, Any]]


class StepInputData(TypedDict):
    """Legacy (0.1.0 and earlier): now step.started's ``input``."""

    step: str
    path: str
    attempt: int
    started_seq: int
    iteration: NotRequired[int]
    input: dict[str, Any]  # the rendered config (redacted per the record level)


class StepOutputData(TypedDict):
    """Legacy (0.1.0 and earlier): now step.completed's ``output``."""

    step: str
    path: str
    output: Any  # redacted per the record level
    attempt: NotRequired[int]  # absent for reused steps
    started_seq: NotRequired[int]  # absent for reused steps
    iteration: NotRequired[int]
    reused: NotRequired[bool]


class StepCompletedData(TypedDict):
    step: str
    path: str
    duration_ms: float
    attempt: NotRequired[int]  # absent for reused steps
    started_seq: NotRequired[int]  # absent for reused steps
    iteration: NotRequired[int]
    reused: NotRequired[bool]
    # the output (redacted per the record level); absent in stores of 0.1.0 and earlier,
    # which recorded it in a step.output event before this one
    output: NotRequired[Any]


class StepFailedData(TypedDict):
    """The last attempt failed (a failed attempt that is retried records step.retrying instead)."""

    step: str
    path: str
    attempt: int
    started_seq: int
    iteration: NotRequired[int]
    error: dict[str, Any]  # {message, type, status?, details?}
    duration_ms: float


class StepSkippedData(TypedDict):
    step: str
    path: str
    reason: Literal["if", "skip_if", "debugger"]
    iteration: NotRequired[int]


class StepRetryingData(TypedDict):
    step: str
    path: str
    attempt: int  # the attempt about to start
    delay_ms: float  # the wait before it
    error: dict[str, Any]  # why the previous attempt failed
    iteration: NotRequired[int]


class StepRoutedData(TypedDict):
    step: str
    path: str
    attempt: int
    started_seq: int
    iteration: NotRequired[int]
    next_step: str  # the step it jumps to
    matched_value: Any  # the value the route matched (null for a default route)


class StepMockedData(TypedDict):
    step: str
    path: str
    mock_id: str
    started_seq: int
    iteration: int  # 0 outside a loop
    attempt: int


class StepIdempotentHitData(TypedDict):
    step: str
    path: str
    key: str  # the rendered idempotency key (JSON text for a non-string key)


class StepCompensatingData(TypedDict):
    step: str
    path: str  # "compensation/<name>" for the pipeline's own compensation steps


class StepCompensatedData(TypedDict):
    step: str
    path: str
    error: NotRequired[str]  # the compensation failed: why


class DebugPausedData(TypedDict):
    step: str
    path: str
    reason: PauseReason
    breakpoint_id: NotRequired[str]  # reason breakpoint: which one


class DebugResumedData(TypedDict):
    step: str
    path: str
    action: ResumeAction


class DebugContextPatchedData(TypedDict):
    step: str
    path: str
    patch: list[dict[str, Any]]  # the RFC 6902 patch applied to the paused context
    by: str  # who applied it


class LogData(TypedDict):
    step: str
    path: str
    level: str  # debug, info, warn, error (step.log's level as written)
    message: str


class RateLimitExceededData(TypedDict):
    """step.rate_limit: the bucket ran dry (once per transition, not per refused call)."""

    step: str
    path: str
    key: str  # the bucket
    retry_after_s: float


class RateLimitRecoveredData(TypedDict):
    step: str
    path: str
    key: str


# "from" is a keyword: the functional form
CircuitStateChangedData = TypedDict("CircuitStateChangedData", {
    "step": str,
    "path": str,
    "from": Literal["closed", "open", "half_open"],
    "to": Literal["closed", "open", "half_open"],
    "reason": str,  # why it changed
    "failures": int,  # consecutive failures counted when it changed
})


# Each event type's payload, for checks that the recorded data matches its declaration.
EVENT_DATA: Final[dict[EventType, type]] = {
    EventType.EXECUTION_STARTED: ExecutionStartedData,
    EventType.EXECUTION_COMPLETED: ExecutionCompletedData,
    EventType.EXECUTION_FAILED: ExecutionFailedData,
    EventType.EXECUTION_CANCELLED: ExecutionCancelledData,
    EventType.EXECUTION_INTERRUPTED: ExecutionInterruptedData,
    EventType.EXECUTION_COMPENSATED: ExecutionCompensatedData,
    EventType.STEP_STARTED: StepStartedData,
    EventType.STEP_INPUT: StepInputData,
    EventType.STEP_OUTPUT: StepOutputData,
    EventType.STEP_COMPLETED: StepCompletedData,
    EventType.STEP_FAILED: StepFailedData,
    EventType.STEP_SKIPPED: StepSkippedData,
    EventType.STEP_RETRYING: StepRetryingData,
    EventType.STEP_ROUTED: StepRoutedData,
    EventType.STEP_MOCKED: StepMockedData,
    EventType.STEP_IDEMPOTENT_HIT: StepIdempotentHitData,
    EventType.STEP_COMPENSATING: StepCompensatingData,
    EventType.STEP_COMPENSATED: StepCompensatedData,
    EventType.DEBUG_PAUSED: DebugPausedData,
    EventType.DEBUG_RESUMED: DebugResumedData,
    EventType.DEBUG_CONTEXT_PATCHED: DebugContextPatchedData,
    EventType.LOG: LogData,
    EventType.RATE_LIMIT_EXCEEDED: RateLimitExceededData,
    EventType.RATE_LIMIT_RECOVERED: RateLimitRecoveredData,
    EventType.CIRCUIT_STATE_CHANGED: CircuitStateChangedData,
}


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


SourceState = Literal["running", "lagging", "failing", "stopped"]


class SourceInfo(BaseModel):
    """A source connector of a loaded file, with its counters since it last started."""

    name: str
    type: str
    file: str
    pipelines: list[str]  # those whose ``event`` trigger names it
    state: SourceState
    config: dict[str, Any] = {}  # with secrets masked
    delivered: int = 0  # deliveries the transport handed over (redeliveries included)
    acknowledged: int = 0  # deliveries acknowledged back to the transport
    redelivered: int = 0  # deliveries of events already taken in (nothing new started)
    dead_lettered: int = 0
    filtered: int = 0  # events no pipeline takes (their type matches no trigger)
    started: int = 0  # executions started
    in_flight: int = 0  # executions running now
    lag: float | None = None  # behind the head, in the source's unit (None: not known)
    lag_unit: str = ""
    last_error: str | None = None
    since: float | None = None  # when it started (unix seconds)
    event_schema: dict[str, Any] = {}  # JSON Schema of a test event's data (from its schema)


class TestEvent(RequestModel):
    """What "send test event" hands a source: a CloudEvent's type, subject and data."""

    type: str | None = Field(default=None, max_length=200)  # default: the first trigger's
    subject: str | None = Field(default=None, max_length=1000)
    data: Any = None
    id: str | None = Field(default=None, max_length=200)  # default: a new id


class SourceDelivery(BaseModel):
    """One event a source took in, linked to what it became."""

    source: str
    event_id: str
    type: str | None = None
    pipeline: str | None = None
    outcome: Literal["started", "done", "dead_lettered", "duplicate", "filtered", "refused"]
    execution_id: str | None = None
    execution_status: str | None = None
    dlq_entry: str | None = None
    deliveries: int = 1
    received: float = 0.0
