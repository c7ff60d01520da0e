"""JSON's names for the types of Python values, as messages and viewers say them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def schema_type(value: Any) -> str:
    """The JSON Schema type of ``value``: ``integer`` and ``number`` are told apart."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def value_type(value: Any) -> str:
    """JSON's (and jq's) type of ``value``: every number is a ``number``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__
