"""What a mock's value must be for its mode, checked before the service is asked."""

from __future__ import annotations

from typing import Any, Final

from app.run.http_input import InputError

MODES: Final = ("fixed", "error", "recorded")
MODE_HINTS: Final = {
    "fixed": "The step returns this JSON value as its output instead of running.",
    "error": 'The step fails with this error instead of running: {"message": …, "type"?: …, "status"?: …}.',
    "recorded": "The step returns this output, recorded from an execution, instead of running.",
}
ERROR_TEMPLATE: Final = {"message": "mocked failure"}


def check_value(mode: str, value: Any) -> None:
    """InputError when ``value`` cannot be the value of a ``mode`` mock."""
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}: use fixed, error or recorded", "value")
    if mode == "error":
        if not isinstance(value, dict) or not isinstance(value.get("message"), str) or not value["message"]:
            raise InputError('value: an error mock needs an object with a "message", like '
                             '{"message": "timeout", "status": 504}', "value")
        status = value.get("status")
        if status is not None and (not isinstance(status, int) or isinstance(status, bool)):
            raise InputError('value: "status" must be a whole number, like 504', "value")
