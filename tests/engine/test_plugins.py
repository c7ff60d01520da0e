"""Plugins register step and module types through entry points, exactly like the built-ins."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.api import Engine
from engine.errors import ConfigError
from engine.steps.base import Registry

PLUGIN = '''
from engine.steps.base import ModuleType, StepType


class Greeter:
    def __init__(self, name, config):
        self.greeting = config.get("greeting", "hello")


async def run_greet(ctx, config):
    greeter = ctx.module(config["module"])
    return {"message": f"{greeter.greeting}, {config['who']}!"}


def register(registry):
    registry.add_step(StepType(
        name="acme.greet", run=run_greet, description="Greet someone", category="acme",
        schema={"type": "object", "additionalProperties": False, "required": ["who", "module"],
                "properties": {"who": {"type": "string"}, "module": {"type": "string"}}},
        output="{message}", module_refs=frozenset({"module"})))
    registry.add_module(ModuleType(
        name="acme.greeter", factory=Greeter, description="Says hello",
        schema={"type": "object", "properties": {"greeting": {"type": "string"}}}))
'''


@pytest.fixture
def installed_plugin(tmp_path: Path) -> Iterator[Path]:
    """A real distribution on sys.path: a module plus dist-info with entry_points.txt."""
    (tmp_path / "acme_steps.py").write_text(PLUGIN)
    info = tmp_path / "acme_steps-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-steps\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[wfstudio.steps]\nacme = acme_steps:register\n")
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("acme_steps", None)
        importlib.invalidate_caches()


async def test_a_plugin_type_is_loaded_validated_and_run_like_a_builtin(
        installed_plugin: Path, tmp_path: Path) -> None:
    registry = Registry()
    registry.load_entry_points()
    assert "acme.greet" in registry.steps and "step.set" in registry.steps
    assert {"group": "wfstudio.steps", "name": "acme", "value": "acme_steps:register",
            "distribution": "acme-steps"} in registry.plugins

    pipeline = """
modules:
  - {name: hi, type: acme.greeter, config: {greeting: ahoy}}
pipelines:
  p:
    steps:
      - {name: greet, type: acme.greet, config: {who: "{{ .name }}", module: hi}}
"""
    async with Engine.open(pipeline, store=f"sqlite:///{tmp_path}/s.db", registry=registry) as engine:
        execution = await engine.run("p", {"name": "Ada"})
    assert execution.output["message"] == "ahoy, Ada!"

    with pytest.raises(ConfigError, match="'who' is required"):  # the plugin's own schema
        await Engine.open(pipeline.replace("who:", "whom:"), store=None, registry=registry)
