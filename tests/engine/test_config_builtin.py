"""The loader with the real registry: the format page's example and every built-in type's example."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.config.loader import load_text
from engine.errors import ConfigError
from engine.format.step_refs import find_paths
from engine.steps.base import default_registry

FORMAT_PAGE = Path(__file__).resolve().parents[2] / "docs" / "pipeline-format.md"

# A module to satisfy each module reference key the built-in types use.
MODULE_FOR_KEY = {
    "database": ("database.sql", {"url": "sqlite:///:memory:"}),
    "cache": ("cache.memory", {}),
    "broker": ("broker.memory", {}),
    "client": ("http.client", {}),
    "module": ("featureflags", {"flags": {}}),
}


def test_the_format_page_example_loads_with_the_default_registry(tmp_path: Path) -> None:
    text = FORMAT_PAGE.read_text().split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "modules.yaml").write_text(
        "modules:\n  - {name: cache, type: cache.memory}\n")
    definition = load_text(text, str(tmp_path / "orders.yaml"), env={"DATA_DIR": "/srv"})
    assert definition.modules["db"].config == {"url": "sqlite:////srv/orders.db"}
    assert list(definition.modules) == ["db", "cache"]
    pipeline = definition.pipelines["create-order"]
    assert [s.name for s in pipeline.steps] == ["check", "price", "store", "respond"]
    assert pipeline.steps[2].retry is not None and pipeline.steps[2].retry.max_attempts == 3
    assert pipeline.steps[2].compensate is not None
    assert (pipeline.trigger.type, pipeline.timeout) == ("http", 30.0)


def test_the_format_page_lists_every_built_in_type() -> None:
    text = FORMAT_PAGE.read_text()
    registry = default_registry()
    undocumented = [n for n in [*registry.steps, *registry.modules, *registry.sources,
                                *registry.sinks] if f"`{n}`" not in text]
    assert undocumented == [], f"docs/pipeline-format.md §4 does not describe {undocumented}"


def _example_document(type_name: str, example: dict[str, Any]) -> dict[str, Any]:
    step_type = default_registry().steps[type_name]
    modules: list[dict[str, Any]] = []
    targets: list[str] = []
    pipelines: dict[str, Any] = {}
    for pattern in step_type.module_refs:
        for _, name in find_paths(example, pattern):
            kind, config = MODULE_FOR_KEY[pattern.split(".")[0]]
            modules.append({"name": name, "type": kind, "config": config})
    for pattern in step_type.step_refs:
        targets.extend(name for _, name in find_paths(example, pattern)
                       if isinstance(name, str) and "{{" not in name)
    connectors = [{"name": name, "type": "sink.webhook", "config": {"url": "http://127.0.0.1:9/x"}}
                  for pattern in step_type.sink_refs for _, name in find_paths(example, pattern)]
    for pattern in step_type.pipeline_refs:
        for _, name in find_paths(example, pattern):
            pipelines[name] = {"steps": [{"name": "x", "type": "step.log",
                                          "config": {"message": "child"}}]}
    steps = [{"name": "under-test", "type": type_name, "config": example}]
    steps += [{"name": t, "type": "step.log", "config": {"message": t}}
              for t in dict.fromkeys(targets)]
    pipelines["main"] = {"steps": steps}
    return {"modules": modules, "connectors": connectors, "pipelines": pipelines}


@pytest.mark.parametrize("type_name", sorted(default_registry().steps))
def test_every_builtin_example_config_is_valid(type_name: str) -> None:
    example = default_registry().steps[type_name].example
    if example is None:
        pytest.skip(f"{type_name} has no example")
    text = yaml.safe_dump(_example_document(type_name, example), sort_keys=False)
    definition = load_text(text, f"{type_name}.yaml", env={})
    step = definition.pipelines["main"].steps[0]
    assert step.type == type_name
    for key, kind in default_registry().steps[type_name].substep_keys.items():
        if key in example:
            expected = [f"{key}/{v}" for v in example[key]] if kind == "map" else [key]
            assert set(expected) <= set(step.substeps)


def _errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_text(text, "b.yaml", env={})
    return [str(d) for d in caught.value.diagnostics if d.severity == "error"]


def test_real_schemas_report_positioned_errors() -> None:
    found = _errors("""\
modules: [{name: db, type: database.sql, config: {url: "sqlite://"}}]
pipelines:
  p:
    steps:
      - name: loop
        type: step.foreach
        config: {collection: "{{ .items }}", steps: [], concurrency: -1}
      - name: route
        type: step.conditional
        config: {field: "{{ .kind }}", routes: {a: loop, b: "{{ .next }}", c: nowhere}}
      - name: call
        type: step.http_cal
        config: {url: "http://x"}
      - name: q
        type: step.db_query
        config: {database: db, query: "SELECT 1", mode: many}
""")
    assert found[0] == ("b.yaml:7:53: error: step 'loop' (step.foreach): config.steps: [] "
                        "should be non-empty")
    assert found[1] == ("b.yaml:7:70: error: step 'loop' (step.foreach): config.concurrency: -1 "
                        "is less than the minimum of 0")
    assert found[2].startswith("b.yaml:10:79: error: step 'route' (step.conditional) "
                               "config.routes.c: no step named 'nowhere' in pipeline 'p'")
    assert found[3] == ("b.yaml:12:15: error: unknown step type 'step.http_cal' (did you mean "
                        "'step.http_call'?)")
    assert re.match(r"b\.yaml:16:57: error: step 'q' \(step\.db_query\): config\.mode: "
                    r"\"many\" is not one of: ", found[4])
    assert len(found) == 5


def test_sub_steps_of_real_composites_are_validated() -> None:
    found = _errors("""\
pipelines:
  p:
    steps:
      - name: fan-out
        type: step.parallel
        config:
          steps:
            - {name: a, type: step.set, config: {values: 3}}
            - {name: b, type: step.log, config: {message: hi}, retry: {max_attempts: 0}}
""")
    assert found == [
        "b.yaml:8:58: error: step 'a' (step.set): config.values: expected object, got integer 3",
        "b.yaml:9:86: error: 'max_attempts' must be a whole number of at least 1, got 0",
    ]
