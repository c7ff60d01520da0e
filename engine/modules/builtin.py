"""Entry point of the built-in module types: they register exactly as a plugin's would."""

from __future__ import annotations

from engine.steps.base import Registry


def register(registry: Registry) -> None:
    from engine.modules import broker, cache, database, featureflags, http_client

    for module in (database, cache, broker, http_client, featureflags):
        for module_type in module.MODULE_TYPES:
            registry.add_module(module_type)
