"""Request and small response bodies of the HTTP API (the service's own DTOs are in
``engine.service.models``). The remote client sends and reads these same shapes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from engine.server.keys import Scope
from engine.service.models import MockMode, ResumeAction, RunOptions

_ID = Field(min_length=1, max_length=200)


class RunRequest(BaseModel):
    input: Any = None
    options: RunOptions = Field(default_factory=RunOptions)


class CancelResult(BaseModel):
    cancelled: bool  # false: the execution had already finished


class YamlText(BaseModel):
    yaml: str = Field(max_length=5_000_000)
    file: str = Field("<text>", min_length=1, max_length=200, pattern=r"^[^/\\\x00-\x1f]+$",
                      description="a file name for the diagnostics (no directories)")


class Deployment(BaseModel):
    yaml: str = Field(max_length=5_000_000)
    file: str = Field(min_length=1, max_length=500, pattern=r"^[^\x00-\x1f]+$",
                      description="a path relative to the server's deploy directory")


class BreakpointRequest(BaseModel):
    pipeline: str = _ID
    step: str = Field(min_length=1, max_length=1000)
    condition: str | None = Field(None, max_length=10_000)


class Enabled(BaseModel):
    enabled: bool = True


class ResumeRequest(BaseModel):
    action: ResumeAction = "continue"
    patch: list[dict[str, Any]] | None = None


class MockRequest(BaseModel):
    pipeline: str = _ID
    step: str = Field(min_length=1, max_length=1000)
    mode: MockMode = "fixed"
    output: Any = None
    error: dict[str, Any] | None = None
    delay_ms: float = Field(0.0, ge=0, le=3_600_000, allow_inf_nan=False)
    enabled: bool = True


class MockFromExecution(BaseModel):
    execution_id: str = _ID
    step: str = Field(min_length=1, max_length=1000)


class Removed(BaseModel):
    removed: int


class DlqRetryRequest(BaseModel):
    ids: list[str] = Field(min_length=1, max_length=10_000)
    patch: list[dict[str, Any]] | None = None
    force: bool = Field(False, description="retry entries that used up their max_retries too")


class DlqPurgeRequest(BaseModel):
    older_than: float = Field(ge=0, le=10 * 365 * 86400, allow_inf_nan=False,
                              description="seconds since the entry last changed")


class Purged(BaseModel):
    purged: int


class SchemaRequest(BaseModel):
    type: str = _ID
    schema_: dict[str, Any] = Field(alias="schema")

    model_config = {"populate_by_name": True}


class EventCheck(BaseModel):
    type: str = _ID
    data: Any = None


class EventCheckResult(BaseModel):
    errors: list[str]  # empty: the data matches the latest schema of the type


class KeyRequest(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    tenant: str | None = Field(None, description="default: the caller's tenant (the only one "
                                                 "an admin key may create keys for)")
    scopes: list[Scope] = Field(default_factory=lambda: list[Scope](["read"]), min_length=1)
    expires_in: float | None = Field(None, gt=0, le=100 * 365 * 86400, allow_inf_nan=False,
                                     description="seconds until the key expires (none: never)")


class Accepted(BaseModel):
    execution_id: str
