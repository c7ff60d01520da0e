"""Typed errors a user can cause. Tracebacks are for bugs; these carry a message that says what to do."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Diagnostic:
    """One finding about a pipeline file, printed as ``file:line:col: severity: message``."""

    file: str
    line: int  # 1-based
    col: int  # 1-based
    message: str
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.severity}: {self.message}"


class WorkflowError(Exception):
    """Base of every error the engine raises on purpose."""


class ConfigError(WorkflowError):
    """A pipeline file could not be loaded; ``diagnostics`` holds every error found."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        errors = [d for d in diagnostics if d.severity == "error"]
        first = str(errors[0]) if errors else "invalid configuration"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(first + more)


class ExpressionError(WorkflowError):
    """A ``{{ }}`` expression failed to compile or to evaluate."""


class StepError(WorkflowError):
    """A step failed. ``type`` classifies it (e.g. ``timeout``, ``http``, ``validation``)."""

    def __init__(self, message: str, *, type: str = "step_error", status: int | None = None,
                 details: object = None):
        super().__init__(message)
        self.message = message
        self.type = type
        self.status = status
        self.details = details

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"message": self.message, "type": self.type}
        if self.status is not None:
            out["status"] = self.status
        if self.details is not None:
            out["details"] = self.details
        return out


class NotFoundError(WorkflowError):
    """An execution, pipeline, step or module that was asked for does not exist."""


class StoreError(WorkflowError):
    """The event store could not be opened or written."""
