"""A small, real registry for the config tests (no tests here).

The loader only reads a step type's metadata (schema, sub-step keys, references), so these
hand-made types exercise it fully without depending on the built-in step modules.
"""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from engine.config.loader import load_text
from engine.config.model import Definition
from engine.connectors.builtin import register as register_connectors
from engine.errors import ConfigError
from engine.steps.base import ModuleType, Registry, StepContext, StepType


async def _noop(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    return {}


def _object(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "properties": properties,
            "required": list(required)}


_STEPS = {"type": "array", "items": {"type": "object"}}


def small_registry() -> Registry:
    registry = Registry()

    def step(name: str, schema: dict[str, Any], **extra: Any) -> None:
        registry.add_step(StepType(name=name, run=_noop, description=name, category="test",
                                   schema=schema, output="{}", **extra))

    step("step.set", _object({"values": {"type": "object"}}, ("values",)))
    step("step.log", _object({"message": {"type": "string"},
                              "level": {"enum": ["debug", "info", "warn", "error"]}},
                             ("message",)))
    step("step.delay", _object({"duration": {"type": ["string", "number"]}}, ("duration",)))
    step("step.json_response", _object({
        "status": {"type": "integer", "minimum": 100, "maximum": 599},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "body": {},
    }))
    step("step.db_exec", _object({"database": {"type": "string"}, "query": {"type": "string"},
                                  "params": {"type": "object"}}, ("database", "query")),
         module_refs=frozenset({"database"}))
    step("step.jq", _object({"expression": {"type": "string"}, "input": {}}, ("expression",)),
         program_keys=frozenset({"expression"}), raw_keys=frozenset({"expression"}))
    step("step.conditional", _object({"field": {"type": "string"},
                                      "routes": {"type": "object",
                                                 "additionalProperties": {"type": "string"}},
                                      "default": {"type": "string"}}, ("field", "routes")),
         step_refs=frozenset({"routes.*", "default"}))
    step("step.foreach", _object({"collection": {"type": "array"},
                                  "item_var": {"type": "string"},
                                  "concurrency": {"type": "integer", "minimum": 0},
                                  "steps": _STEPS}, ("collection", "steps")),
         substep_keys={"steps": "list"})
    step("step.while", _object({"condition": {"type": "string"},
                                "max_iterations": {"type": "integer", "minimum": 1},
                                "steps": _STEPS}, ("condition", "steps")),
         substep_keys={"steps": "list"}, program_keys=frozenset({"condition"}),
         raw_keys=frozenset({"condition"}))
    step("step.branch", _object({"field": {"type": "string"},
                                 "branches": {"type": "object",
                                              "additionalProperties": _STEPS},
                                 "default": _STEPS,
                                 "merge_step": {"type": "string"}}, ("field", "branches")),
         substep_keys={"branches": "map", "default": "list"},
         step_refs=frozenset({"merge_step"}))
    step("step.circuit_breaker", _object({"steps": _STEPS, "fallback": {"type": "object"},
                                          "failure_threshold": {"type": "integer",
                                                                "minimum": 1}},
                                         ("steps",)),
         substep_keys={"steps": "list", "fallback": "single"})
    step("step.workflow_call", _object({"workflow": {"type": "string"},
                                        "input": {"type": "object"},
                                        "mode": {"enum": ["sync", "async"]}}, ("workflow",)),
         pipeline_refs=frozenset({"workflow"}))
    # A config with alternative shapes, to check templates inside oneOf.
    step("step.pipeline_output", {"type": "object", "oneOf": [
        {"required": ["values"], "properties": {"values": {"type": "object"}}},
        {"required": ["source"], "properties": {"source": {"type": "string"}}},
    ]})

    registry.add_module(ModuleType("database.sql", lambda name, config: None, "SQL database",
                                   _object({"url": {"type": "string"},
                                            "pool_size": {"type": "integer", "minimum": 1},
                                            "echo": {"type": "boolean"}}, ("url",))))
    registry.add_module(ModuleType("cache.memory", lambda name, config: None, "cache",
                                   _object({"max_items": {"type": "integer"}})))
    register_connectors(registry)  # the real connector types: a file's connectors are checked
    return registry


REGISTRY = small_registry()


def yaml_text(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def load(text: str, path: str = "p.yaml", **kwargs: Any) -> Definition:
    kwargs.setdefault("registry", REGISTRY)
    kwargs.setdefault("env", {})
    return load_text(yaml_text(text), path, **kwargs)


def errors(text: str, path: str = "p.yaml", **kwargs: Any) -> list[str]:
    """Every diagnostic of a load that must fail, as ``file:line:col: severity: message``."""
    with pytest.raises(ConfigError) as caught:
        load(text, path, **kwargs)
    return [str(d) for d in caught.value.diagnostics]


def one_error(text: str, path: str = "p.yaml", **kwargs: Any) -> str:
    found = [e for e in errors(text, path, **kwargs) if ": error: " in e]
    assert len(found) == 1, found
    return found[0]
