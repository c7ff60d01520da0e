"""Entry point of the built-in step types: they register exactly as a plugin's would."""

from __future__ import annotations

from engine.steps.base import Registry


def register(registry: Registry) -> None:
    from engine.steps import control, data, database, http, messaging, resilience

    for module in (data, control, http, database, messaging, resilience):
        for step_type in module.STEP_TYPES:
            registry.add_step(step_type)
