"""No step output can contain the context it is written into, and no walk over a recorded
value recurses without end.

``{{ . }}`` in a ``step.set`` once returned a copy of the context that still held the live
``steps`` dict; recorded under ``steps``, the output contained itself and redaction died of
a RecursionError (a traceback from ``wfstudio run``). Every expression path is driven here
through the real engine on a real SQLite store, and the CLI in-process."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from engine.api import Engine
from engine.cli import main
from engine.context import Scope
from engine.redaction import CYCLE, TOO_DEEP, redact, redact_secrets, shape
from engine.store.codec import MAX_DEPTH


def assert_acyclic(value: Any, path: tuple[int, ...] = ()) -> None:
    """No container holds itself (shared ones elsewhere in the value are fine)."""
    if isinstance(value, dict | list):
        assert id(value) not in path, "the value contains itself"
        children = value.values() if isinstance(value, dict) else value
        for child in children:
            assert_acyclic(child, (*path, id(value)))


SELF_REFERENCES = """\
pipelines:
  p:
    record: full
    steps:
      - {name: all, type: step.set, config: {values: {all: "{{ . }}"}}}
      - {name: shapes, type: step.set, config: {values: {both: "{{ [., .steps] }}", s: "{{ .steps }}",
                                                           m: "{{ {x: .} }}"}}}
      - {name: jq_root, type: step.jq, config: {expression: "."}}
      - {name: jq_obj, type: step.jq, config: {expression: "{all: ., steps: .steps}"}}
      - {name: jq_input, type: step.jq, config: {input: "{{ . }}", expression: "."}}
      - name: each
        type: step.foreach
        config:
          collection: "{{ [., .steps] }}"
          steps:
            - {name: inner, type: step.set, config: {values: {it: "{{ .item }}", me: "{{ . }}"}}}
"""


async def test_outputs_holding_the_context_never_contain_themselves(tmp_path: Path) -> None:
    async with Engine.open(SELF_REFERENCES, store=f"sqlite:///{tmp_path}/s.db") as engine:
        ex = await engine.run("p", {"a": 1})
        assert ex.status == "completed", ex.error
        assert_acyclic(ex.output)
        json.dumps(ex.output)  # a cycle would raise "Circular reference detected"
        assert ex.output["all"]["a"] == 1
        assert set(ex.output["s"]) == {"all"}  # `steps` as it was when the step ran
        outputs = [e.data.get("output") for e in await engine.events(ex.id) if e.type == "step.completed"]
        assert len(outputs) >= 7
        for output in outputs:  # as recorded (redacted), and read back
            assert "[cycle]" not in json.dumps(output)


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("program", ["{{ . }}", "{{ .steps }}", "{{ [.] }}"])
def test_wfstudio_run_of_a_step_set_of_the_context(tmp_path: Path, program: str) -> None:
    file = tmp_path / "self.yaml"
    file.write_text("pipelines:\n  p:\n    steps:\n"
                    f"      - {{name: all, type: step.set, config: {{values: {{all: \"{program}\"}}}}}}\n"
                    f"      - {{name: twice, type: step.set, config: {{values: {{again: \"{program}\"}}}}}}\n")
    code, out, err = _cli(["run", str(file), "--input", '{"a": 1}', "--store",
                           f"sqlite:///{tmp_path}/s.db", "--json"])
    assert "Traceback" not in err and code == 0, err
    assert "[cycle]" not in out


def test_a_deep_output_prints_as_the_store_holds_it(tmp_path: Path) -> None:
    """jq can build values deeper than any recursion limit: redaction and printing cut them
    at the codec's depth instead of dying."""
    file = tmp_path / "deep.yaml"
    file.write_text("pipelines:\n  p:\n    steps:\n"
                    '      - {name: d, type: step.jq, config: {expression: "reduce range(3000) as $i (0; [.])"}}\n')
    code, out, err = _cli(["run", str(file), "--store", f"sqlite:///{tmp_path}/s.db"])
    assert "Traceback" not in err and code == 0, err
    assert TOO_DEEP in out


def test_scope_record_copies_an_output_that_is_or_holds_its_own_containers() -> None:
    scope = Scope.root({"a": 1}, {}, {})
    scope.record("first", {"b": 2})
    scope.record("whole", scope.vars)  # a step that returned its ctx.vars
    scope.record("holds", {"v": scope.vars, "s": scope.steps, "c": scope.current})
    assert_acyclic(scope.snapshot())
    assert_acyclic(scope.vars)
    assert scope.steps["holds"]["s"] == {"first": {"b": 2}, "whole": scope.steps["whole"]}


def _cyclic() -> dict[str, Any]:
    value: dict[str, Any] = {"name": "x", "token": "s3cret", "items": []}
    value["items"].append(value)
    value["self"] = value
    return value


@pytest.mark.parametrize("walk", [lambda v: redact(v, "full"), lambda v: redact(v, "redacted"),
                                  redact_secrets, lambda v: redact(v, "metadata"), shape])
def test_redaction_walks_end_on_cycles_and_depth(walk: Any) -> None:
    cut = walk(_cyclic())
    text = json.dumps(cut)
    assert CYCLE in text and "s3cret" not in text
    deep: Any = "leaf"
    for _ in range(5000):
        deep = [deep]
    assert TOO_DEEP in json.dumps(walk({"d": deep}))


def test_shared_values_are_not_cycles() -> None:
    shared = {"token": "s3cret", "n": 1}
    out = redact({"a": shared, "b": [shared, shared]}, "full")
    assert CYCLE not in json.dumps(out)
    assert out["b"][0] == {"token": "[REDACTED]", "n": 1} or "s3cret" not in json.dumps(out)
    deep: Any = "leaf"
    for _ in range(MAX_DEPTH - 1):
        deep = [deep]
    assert TOO_DEEP not in json.dumps(redact(deep, "full"))
