"""Request and small response bodies of the HTTP API (the service's own DTOs are in
``engine.service.models``). The remote client sends and reads these same shapes.

Every request body is a ``RequestModel``: unknown fields and values of the wrong JSON type
are refused (422 naming the field). What a field may hold is stated in its schema, so the
OpenAPI document says what the server accepts.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from engine.server.keys import Scope
from engine.service.models import JsonPatch, MockMode, RequestModel, ResumeAction, RunOptions

_ID = Field(min_length=1, max_length=200)
# A relative path of .yaml/.yml files: no leading "/", no segment starting with "." (so no
# "..", no hidden files), no backslashes or control characters; 60 characters a segment
# (a file name of 255 bytes at most, with the temporary name a deployment writes first).
_SEGMENT = r"[^/\\\x00-\x1f.][^/\\\x00-\x1f]{0,59}"
DEPLOY_FILE = rf"^({_SEGMENT}/)*{_SEGMENT}\.ya?ml$"
_TENANT = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class RunRequest(RequestModel):
    input: Any = None
    options: RunOptions = Field(default_factory=RunOptions)


class CancelResult(BaseModel):
    cancelled: bool  # false: the execution had already finished


class YamlText(RequestModel):
    yaml: str = Field(max_length=5_000_000)
    file: str = Field("<text>", min_length=1, max_length=200, pattern=r"^[^/\\\x00-\x1f]+$",
                      description="a file name for the diagnostics (no directories)")


class Deployment(RequestModel):
    yaml: str = Field(max_length=5_000_000)
    file: str = Field(min_length=1, max_length=500, pattern=DEPLOY_FILE,
                      description="a .yaml/.yml path relative to the server's deploy directory")


class BreakpointRequest(RequestModel):
    pipeline: str = _ID
    step: str = Field(min_length=1, max_length=1000)
    condition: str | None = Field(None, max_length=10_000)


class Enabled(RequestModel):
    enabled: bool = True


class ResumeRequest(RequestModel):
    action: ResumeAction = "continue"
    patch: JsonPatch | None = Field(None, description="RFC 6902 operations on the paused "
                                    "context (paths under /current or /steps)")


class MockRequest(RequestModel):
    pipeline: str = _ID
    step: str = Field(min_length=1, max_length=1000)
    mode: MockMode = "fixed"
    output: Any = None
    error: dict[str, Any] | None = None
    delay_ms: float = Field(0.0, ge=0, le=3_600_000, allow_inf_nan=False)
    enabled: bool = True


class MockFromExecution(RequestModel):
    execution_id: str = _ID
    step: str = Field(min_length=1, max_length=1000)


class Removed(BaseModel):
    removed: int


class DlqRetryRequest(RequestModel):
    ids: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(min_length=1,
                                                                          max_length=10_000)
    patch: JsonPatch | None = Field(None, description="RFC 6902 operations on each payload")
    force: bool = Field(False, description="retry entries that used up their max_retries too")


class DlqPurgeRequest(RequestModel):
    older_than: float = Field(ge=0, le=10 * 365 * 86400, allow_inf_nan=False,
                              description="seconds since the entry last changed")


class Purged(BaseModel):
    purged: int


class SchemaRequest(RequestModel):
    type: str = _ID
    schema_: dict[str, Any] = Field(alias="schema")

    model_config = ConfigDict(populate_by_name=True)  # merged with RequestModel's


class EventCheck(RequestModel):
    type: str = _ID
    data: Any = None


class EventCheckResult(BaseModel):
    errors: list[str]  # empty: the data matches the latest schema of the type


class KeyRequest(RequestModel):
    name: str = Field(min_length=1, max_length=200)
    tenant: str | None = Field(None, pattern=_TENANT,
                               description="default: the caller's tenant (the only one an admin "
                                           "key may create keys for)")
    scopes: list[Scope] = Field(default_factory=lambda: list[Scope](["read"]), min_length=1)
    expires_in: float | None = Field(None, ge=1, le=100 * 365 * 86400, allow_inf_nan=False,
                                     description="seconds until the key expires (none: never)")


class Accepted(BaseModel):
    execution_id: str
