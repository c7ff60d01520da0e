"""Expressions never see the process environment unless they name it (issue 11, item 3;
docs/pipeline-format.md §2.1): ``.env.NAME``, ``$ENV.NAME`` and ``env.NAME`` read a
variable, while a whole-context value (``{{ . }}``, ``keys``, ``..``, ``tojson``, step.jq's
``.``, a step returning ``ctx.vars``, the debugger's snapshot) holds none, so none is
recorded. Driven through the real engine on a real SQLite file whose rows are searched
for the variables' values; ``tests/server/test_env_whole_context.py`` does the same over a
real ``wfstudio serve --allow-env``."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from engine.api import Engine
from engine.context import Scope
from engine.expressions import evaluate, render
from engine.modules.builtin import register as register_modules
from engine.steps.base import Registry, StepContext, StepType
from engine.steps.builtin import register as register_steps

SHOWN = "wfs-env-shown-5d1e0b"
HIDDEN = "wfs-env-hidden-9c27aa"
ENV = {"WFS_ENV_SHOWN": SHOWN, "WFS_ENV_HIDDEN": HIDDEN}

PIPELINE = """\
pipelines:
  p:
    record: full
    steps:
      - name: whole
        type: step.set
        config:
          values:
            all: "{{ . }}"
            keys: "{{ keys }}"
            text: "{{ tojson }}"
            walk: "{{ [..] }}"
            entries: "{{ to_entries | map(.key) }}"
            paths: "{{ [paths] | length }}"
            in_text: "context: {{ . }}"
      - name: named
        type: step.set
        config:
          values:
            dot: "{{ .env.WFS_ENV_SHOWN }}"
            var: "{{ $ENV.WFS_ENV_SHOWN }}"
            fn: "{{ env.WFS_ENV_SHOWN }}"
            quoted: '{{ .["env"].WFS_ENV_SHOWN }}'
            python: "{{ .qty }}-{{ $ENV.WFS_ENV_SHOWN | ascii_upcase }}"
            libjq: "{{ .env.WFS_ENV_SHOWN | @base64 | @base64d }}"
      - {name: jq_root, type: step.jq, config: {expression: "."}}
      - {name: jq_obj, type: step.jq, config: {expression: "{all: ., n: (keys | length)}"}}
      - {name: jq_input, type: step.jq, config: {input: "{{ . }}", expression: "keys"}}
      - {name: own, type: test.vars}
      - name: each
        type: step.foreach
        config:
          collection: "{{ [1, 2] }}"
          steps:
            - {name: inner, type: step.set, config: {values: {me: "{{ . }}", e: "{{ $ENV.WFS_ENV_SHOWN }}"}}}
      - {name: out, type: step.pipeline_output, config: {values: "{{ . }}"}}
"""


async def _return_vars(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    return {"vars": ctx.vars}  # a step that hands out its whole context


def _registry() -> Registry:
    registry = Registry()
    register_steps(registry)
    register_modules(registry)
    registry.add_step(StepType(name="test.vars", run=_return_vars, description="ctx.vars",
                               category="test", schema={"type": "object"}, output="{vars}"))
    return registry


def _stored_text(path: Path) -> str:
    """Every value of every row of every table, as text."""
    with sqlite3.connect(path) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        parts = []
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):
                parts.extend(value.decode("utf-8", "replace") if isinstance(value, bytes)
                             else str(value) for value in row)
    return "\n".join(parts)


async def test_whole_context_values_hold_no_environment_and_none_is_recorded(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    async with Engine.open(PIPELINE, store=f"sqlite:///{store}", env=ENV,
                           registry=_registry()) as engine:
        ex = await engine.run("p", {"qty": 3})
        assert ex.status == "completed", ex.error
    steps = ex.output["steps"]
    whole = steps["whole"]
    assert "env" not in whole["all"] and set(whole["all"]) == {"qty", "steps", "trigger", "meta"}
    assert whole["keys"] == ["meta", "qty", "steps", "trigger"]
    assert "env" not in whole["entries"] and "env" not in whole["text"]
    assert steps["named"] == {"dot": SHOWN, "var": SHOWN, "fn": SHOWN, "quoted": SHOWN,
                              "python": f"3-{SHOWN.upper()}", "libjq": SHOWN}
    assert "env" not in steps["jq_root"]["result"] and "env" not in steps["jq_obj"]["all"]
    assert "env" not in steps["jq_input"]["result"]
    assert "env" not in steps["own"]["vars"] and steps["own"]["vars"]["qty"] == 3
    assert [r["me"].get("item") for r in steps["each"]["results"]] == [1, 2]
    assert all("env" not in r["me"] and r["e"] == SHOWN for r in steps["each"]["results"])
    assert "env" not in ex.output

    stored = _stored_text(store)
    assert SHOWN in stored  # the rows searched hold what the run recorded
    assert HIDDEN not in stored


def test_the_rule_at_the_expression_level() -> None:
    scope = Scope.root({"a": 1}, {"execution_id": "e-1"}, ENV)
    vars = scope.vars
    for program in (".", "keys", "[..]", "tojson", "[paths]", "to_entries", "[.[]]",
                    "with_entries(.)", "{x: .}"):
        assert HIDDEN not in str(evaluate(program, vars)), program
    assert evaluate(".env", vars) == ENV and evaluate("$ENV", vars) == ENV
    assert evaluate("env | keys", vars) == sorted(ENV)
    assert evaluate(".env.WFS_ENV_SHOWN", vars) == SHOWN
    assert render("{{ .a }}/{{ $ENV.WFS_ENV_SHOWN }}", vars) == f"1/{SHOWN}"
    # A program that names the environment reads it as before, in `.` too.
    assert evaluate("{all: ., e: $ENV.WFS_ENV_SHOWN}", vars)["all"]["env"] == ENV
    # The context's text form names no variable (a step serialising ctx.vars itself).
    assert HIDDEN not in str(vars) and HIDDEN not in repr(vars)
    assert "env" not in scope.snapshot()


def test_data_that_is_not_a_run_context_keeps_its_env_key() -> None:
    # step.jq's `input` and a called workflow's output are data: an `env` key there is theirs.
    data = {"env": "prod", "a": 2}
    assert evaluate(".", data) == data
    assert evaluate("keys", data) == ["a", "env"]
    assert evaluate("[.[]] | length", data) == 2
    assert render({"x": "{{ . }}"}, data) == {"x": data}
