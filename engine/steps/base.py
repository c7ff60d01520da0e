"""What a step type is, what it returns, and what it may ask of the executor.

A step type is a ``StepType``: metadata the studio's palette and property panel read
(JSON Schema, description, category, output description) plus an async ``run``.
The executor resolves ``{{ }}`` templates in the config before calling ``run``, except
for keys listed in ``raw_keys`` (conditions re-evaluated per iteration) and sub-step keys.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from engine.config.model import StepDef
    from engine.connectors.types import Sink, SinkType, SourceType


@dataclass
class StepResult:
    """A step's output plus the control flow it asks for."""

    output: Any = None
    stop: bool = False  # end the pipeline successfully after this step
    jump: str | None = None  # continue at this step name (routing)
    matched_value: Any = None  # recorded in step.routed when jumping
    response: dict[str, Any] | None = None  # {status, headers, body|raw, content_type} for HTTP


@dataclass
class SubRun:
    """What running a list of sub-steps produced."""

    outputs: dict[str, Any]  # by step name, in this scope
    last_output: Any = None
    stopped: bool = False
    response: dict[str, Any] | None = None
    errors: dict[str, str] = field(default_factory=dict)  # steps that failed under on_error: continue


class StepContext(Protocol):
    """What a running step can see and do. Implemented by the executor."""

    @property
    def execution_id(self) -> str: ...

    @property
    def pipeline(self) -> str: ...

    @property
    def step(self) -> StepDef: ...

    @property
    def path(self) -> str:
        """Where the step sits: ``fan-out/profile`` for a sub-step."""

    @property
    def vars(self) -> Mapping[str, Any]:
        """The expression view: current's keys plus ``steps``, ``trigger``, ``meta``, ``env``."""

    def resolve(self, value: Any, extra: Mapping[str, Any] | None = None) -> Any:
        """Resolve templates in ``value`` against ``vars`` (plus ``extra`` variables)."""

    def evaluate(self, program: str, extra: Mapping[str, Any] | None = None) -> Any:
        """Evaluate a bare jq program (no ``{{ }}``) against ``vars`` (plus ``extra``)."""

    def module(self, name: str) -> Any:
        """The live instance of the module ``name``; raises StepError if it does not exist."""

    def sink(self, name: str) -> Sink:
        """The sink of connector ``name`` (a ``sink.*`` connector of the file), made on first
        use and closed with the engine; raises StepError if there is no such sink."""

    def log(self, level: str, message: str) -> None:
        """Record a ``log`` event for this step."""

    def event(self, type: str, data: dict[str, Any]) -> None:
        """Record a step-specific event (e.g. ``circuit.state_changed``) with step and path."""

    async def run_substeps(self, key: str, *, extra: Mapping[str, Any] | None = None,
                           iteration: int | None = None, isolated: bool = True,
                           only: int | None = None) -> SubRun:
        """Run ``step.substeps[key]`` with full step semantics, recorded under this step's path.

        ``extra`` adds variables (e.g. ``item``/``index``). ``isolated`` runs them in a child
        scope whose outputs do not leak into the pipeline's context (loops, parallel);
        ``isolated=False`` runs them inline (``step.branch``). ``only=i`` runs just the i-th
        sub-step of the list (``step.parallel`` runs each child as its own concurrent call).
        """

    async def call_workflow(self, pipeline: str, payload: Any, *, wait: bool = True) -> dict[str, Any]:
        """Run another pipeline as its own execution linked to this one; returns its summary."""

    async def send_to_dlq(self, payload: Any, error: str) -> str:
        """Write a DLQ entry for this execution; returns its id."""

    def shared_state(self, kind: str) -> dict[str, Any]:
        """Process-wide state for this (pipeline, step) kept across executions (breakers, limits)."""


RunFn = Callable[[StepContext, dict[str, Any]], Awaitable["StepResult | dict[str, Any] | None"]]


@dataclass
class StepType:
    name: str  # e.g. "step.set"
    run: RunFn
    description: str
    category: str  # palette group: data, control, http, database, cache, messaging, resilience, ...
    schema: dict[str, Any]  # JSON Schema of ``config``
    output: str  # human description of the output
    raw_keys: frozenset[str] = frozenset()  # config keys NOT resolved before run
    # config key -> "list" (list of steps), "single" (one step), "map" (value -> list of steps)
    substep_keys: Mapping[str, str] = field(default_factory=dict)
    # keys holding bare jq programs (not ``{{ }}``), checked by validate
    program_keys: frozenset[str] = frozenset()
    # Reference checks for validate. Each entry is a dotted config path; "*" matches every key
    # of a map (e.g. "routes.*"). Values found there must name, respectively: a step of the
    # same pipeline, a module of the file, a pipeline of the file. Template values are skipped.
    step_refs: frozenset[str] = frozenset()
    module_refs: frozenset[str] = frozenset()
    pipeline_refs: frozenset[str] = frozenset()
    sink_refs: frozenset[str] = frozenset()  # values must name a sink connector of the file
    example: dict[str, Any] | None = None  # a config a palette can drop in


@dataclass
class ModuleType:
    name: str  # e.g. "database.sql"
    factory: Callable[[str, dict[str, Any]], Any]  # (module name, config) -> instance
    description: str
    schema: dict[str, Any]


class Registry:
    """Step and module types by name. Built-ins and plugins register through entry points."""

    STEP_GROUP = "wfstudio.steps"
    MODULE_GROUP = "wfstudio.modules"
    CONNECTOR_GROUP = "wfstudio.connectors"

    def __init__(self) -> None:
        self.steps: dict[str, StepType] = {}
        self.modules: dict[str, ModuleType] = {}
        self.sources: dict[str, SourceType] = {}
        self.sinks: dict[str, SinkType] = {}
        self.plugins: list[dict[str, str]] = []

    def add_step(self, step_type: StepType) -> None:
        self.steps[step_type.name] = step_type

    def add_module(self, module_type: ModuleType) -> None:
        self.modules[module_type.name] = module_type

    def add_source(self, source_type: SourceType) -> None:
        self.sources[source_type.name] = source_type

    def add_sink(self, sink_type: SinkType) -> None:
        self.sinks[sink_type.name] = sink_type

    def connector(self, name: str) -> SourceType | SinkType | None:
        return self.sources.get(name) or self.sinks.get(name)

    def load_entry_points(self) -> None:
        from importlib.metadata import entry_points

        for group in (self.STEP_GROUP, self.MODULE_GROUP, self.CONNECTOR_GROUP):
            for ep in entry_points(group=group):
                register = ep.load()
                register(self)
                dist = ep.dist.name if ep.dist else ""
                self.plugins.append({"group": group, "name": ep.name, "value": ep.value,
                                     "distribution": dist})


_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry, filled from entry points on first use."""
    global _default
    if _default is None:
        registry = Registry()
        registry.load_entry_points()
        if "step.set" not in registry.steps:  # running from a checkout that was never installed
            from engine.connectors.builtin import register as register_connectors
            from engine.modules.builtin import register as register_modules
            from engine.steps.builtin import register as register_steps

            register_steps(registry)
            register_modules(registry)
            register_connectors(registry)
        _default = registry
    return _default
