"""Durations shared by config, steps and the CLI: ``250ms``, ``5s``, ``2m``, ``1h``, ``1d`` or seconds."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(value: object) -> float:
    """Return seconds; raise ``ValueError`` with a message naming the accepted forms."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: use e.g. 250ms, 5s, 2m, 1h, 1d or seconds")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"invalid duration {value!r}: must not be negative")
        return float(value)
    if isinstance(value, str):
        match = _PATTERN.match(value)
        if match:
            return float(match.group(1)) * _UNITS[match.group(2) or "s"]
    raise ValueError(f"invalid duration {value!r}: use e.g. 250ms, 5s, 2m, 1h, 1d or seconds")
