"""The loaded form of a pipeline file: plain dataclasses the executor, validator and studio read.

Positions (``Pos``) travel with every node so any later diagnostic can name ``file:line:col``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Pos:
    file: str
    line: int  # 1-based
    col: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NOWHERE = Pos("<unknown>", 1, 1)


@dataclass
class RetryPolicy:
    max_attempts: int = 1
    initial_delay: float = 0.1  # seconds
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.0  # fraction of the delay, 0..1


@dataclass
class StepDef:
    name: str
    type: str
    config: dict[str, Any] = field(default_factory=dict)
    if_: str | None = None
    skip_if: str | None = None
    on_error: str | None = None  # stop | continue | compensate; None = the pipeline's
    timeout: float | None = None  # seconds
    retry: RetryPolicy | None = None
    compensate: StepDef | None = None
    idempotency_key: str | None = None
    idempotency_ttl: float | None = None  # seconds
    error_status: int | None = None
    pos: Pos = NOWHERE
    # Sub-steps of composite types, parsed and validated like top-level steps.
    # Keys: "steps", "step", "fallback", "branches/<value>" (see StepType.substep_keys).
    substeps: dict[str, list[StepDef]] = field(default_factory=dict)
    # Filled by the engine after loading: compiled templates, resolved type object.
    compiled: Any = None


@dataclass
class TriggerDef:
    type: str = "manual"  # manual | http | schedule | event
    config: dict[str, Any] = field(default_factory=dict)
    pos: Pos = NOWHERE


@dataclass
class PipelineDef:
    name: str
    steps: list[StepDef]
    description: str = ""
    trigger: TriggerDef = field(default_factory=TriggerDef)
    on_error: str = "stop"
    timeout: float | None = None
    compensation: list[StepDef] = field(default_factory=list)
    outputs: Any = None
    dlq: bool = False
    dlq_max_retries: int = 3
    record: str = "redacted"  # full | redacted | metadata
    max_jumps: int = 10_000
    pos: Pos = NOWHERE

    def step(self, name: str) -> StepDef | None:
        for step in self.steps:
            if step.name == name:
                return step
        return None


@dataclass
class ModuleDef:
    name: str
    type: str
    config: dict[str, Any] = field(default_factory=dict)
    pos: Pos = NOWHERE


@dataclass
class Definition:
    """A loaded root file with its imports merged, ready to run."""

    path: str  # the root file ("<text>" when loaded from a string)
    name: str = ""
    version: str = ""
    description: str = ""
    modules: dict[str, ModuleDef] = field(default_factory=dict)
    pipelines: dict[str, PipelineDef] = field(default_factory=dict)
    connectors: list[dict[str, Any]] = field(default_factory=list)
    schemas: dict[str, Any] = field(default_factory=dict)
    environments: dict[str, Any] = field(default_factory=dict)
    # Exact source texts of the root and every import, keyed by path: the definition snapshot.
    sources: dict[str, str] = field(default_factory=dict)
    hash: str = ""  # sha256 over ``sources``; content-addresses the snapshot
    # What ``${VAR}`` substitution put in (name -> value): errors show the name instead.
    substituted: dict[str, str] = field(default_factory=dict)
    warnings: list[Any] = field(default_factory=list)  # Diagnostics of severity "warning"
