"""Typed service errors. The remote client maps HTTP statuses back to these same classes."""

from __future__ import annotations

from typing import Any, ClassVar

from engine.errors import NotFoundError, WorkflowError


class ServiceError(WorkflowError):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "error"

    def __init__(self, message: str, details: Any = None):
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body


class NotFound(ServiceError, NotFoundError):
    status = 404
    code = "not_found"


class InvalidInput(ServiceError):
    status = 422
    code = "invalid_input"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class Unavailable(ServiceError):
    status = 503
    code = "unavailable"


ERRORS_BY_CODE: dict[str, type[ServiceError]] = {
    cls.code: cls for cls in (ServiceError, NotFound, InvalidInput, Conflict, Unauthorized,
                              Forbidden, Unavailable)
}
