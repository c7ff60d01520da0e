"""The pure data step types, driven through the real engine and a real SQLite store."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from engine.api import Engine
from engine.errors import ConfigError
from tests.waiting import step_started, wait_for_condition


def pipeline(steps_yaml: str, name: str = "p") -> str:
    """A one-pipeline file; ``steps_yaml`` is the steps list indented by 6 spaces."""
    return f"pipelines:\n  {name}:\n    steps:\n{steps_yaml}"


async def run(tmp_path: Path, steps_yaml: str, payload: Any = None) -> tuple[Any, list, list]:
    async with Engine.open(pipeline(steps_yaml), store=f"sqlite:///{tmp_path}/s.db") as engine:
        ex = await engine.run("p", payload or {})
        return ex, await engine.timeline(ex.id), await engine.events(ex.id)


# ---------------------------------------------------------------- set / log


async def test_set_keeps_json_types_and_feeds_later_steps(tmp_path: Path) -> None:
    ex, _, _ = await run(tmp_path, """\
      - name: price
        type: step.set
        config: {values: {total: "{{ .qty * 2.5 }}", tags: "{{ [.sku] }}", label: "n={{ .qty }}"}}
      - name: double
        type: step.set
        config: {values: {twice: "{{ .steps.price.total * 2 }}"}}
""", {"qty": 4, "sku": "A-1"})
    assert ex.status == "completed", ex.error
    assert ex.output["total"] == 10.0
    assert ex.output["tags"] == ["A-1"]
    assert ex.output["label"] == "n=4"
    assert ex.output["twice"] == 20.0


async def test_log_records_a_log_event_with_level(tmp_path: Path) -> None:
    ex, _, events = await run(tmp_path, """\
      - name: say
        type: step.log
        config: {message: "order {{ .id }} ok", level: warn}
      - name: dump
        type: step.log
        config: {message: "{{ {id: .id} }}"}
""", {"id": 7})
    assert ex.status == "completed", ex.error
    logs = [e.data for e in events if e.type == "log"]
    assert {"level": "warn", "message": "order 7 ok"}.items() <= logs[0].items()
    assert logs[0]["step"] == "say"
    assert logs[1]["level"] == "info"
    assert json.loads(logs[1]["message"]) == {"id": 7}


# ---------------------------------------------------------------- validate


async def test_validate_required_fields_lists_every_missing_field(tmp_path: Path) -> None:
    steps = """\
      - name: check
        type: step.validate
        config: {strategy: required_fields, required_fields: [sku, qty, customer.email]}
      - name: after
        type: step.set
        config: {values: {checked: true}}
"""
    ok, _, _ = await run(tmp_path, steps, {"sku": "A", "qty": 1, "customer": {"email": "a@b"}})
    assert ok.status == "completed", ok.error
    assert ok.output["checked"] is True

    bad, timeline, _ = await run(tmp_path, steps, {"qty": None, "customer": {}})
    assert bad.status == "failed"
    message = bad.error["message"]
    assert "3 violations" in message
    assert "sku: is required but missing" in message
    assert "qty: is required but null" in message
    assert "customer.email: is required but missing" in message
    assert bad.error["type"] == "validation" and bad.error["status"] == 400
    assert bad.error["step"] == "check"
    assert [r.step for r in timeline] == ["check"]


async def test_validate_json_schema_reports_every_violation_with_its_path(tmp_path: Path) -> None:
    steps = """\
      - name: check
        type: step.validate
        config:
          strategy: json_schema
          source: "{{ .body }}"
          schema:
            type: object
            required: [sku, qty]
            properties:
              qty: {type: integer, minimum: 1}
              lines: {type: array, items: {type: object, required: [id]}}
"""
    ok, _, _ = await run(tmp_path, steps, {"body": {"sku": "A", "qty": 2, "lines": [{"id": 1}]}})
    assert ok.status == "completed", ok.error

    bad, _, events = await run(tmp_path, steps, {"body": {"qty": 0, "lines": [{"id": 1}, {}]}})
    assert bad.status == "failed"
    message = bad.error["message"]
    assert "3 violations" in message
    assert "$: 'sku' is a required property" in message
    assert "$.qty: 0 is less than the minimum of 1" in message
    assert "$.lines[1]: 'id' is a required property" in message
    failed = next(e.data for e in events if e.type == "step.failed")
    violation = {"path": "$.qty", "message": "0 is less than the minimum of 1"}
    assert violation in failed["error"]["details"]


async def test_validate_defaults_to_current_data_without_reserved_keys(tmp_path: Path) -> None:
    # additionalProperties: false works because steps/trigger/meta/env are not part of it.
    steps = """\
      - name: check
        type: step.validate
        config:
          strategy: json_schema
          schema: {type: object, additionalProperties: false, properties: {a: {type: integer}}}
"""
    ok, _, _ = await run(tmp_path, steps, {"a": 1})
    assert ok.status == "completed", ok.error
    bad, _, _ = await run(tmp_path, steps, {"a": 1, "b": 2})
    assert bad.status == "failed"
    assert "Additional properties are not allowed ('b' was unexpected)" in bad.error["message"]


async def test_validate_rejects_a_non_object_source_and_a_broken_schema(tmp_path: Path) -> None:
    ex, _, _ = await run(tmp_path, """\
      - name: check
        type: step.validate
        config: {required_fields: [a], source: "{{ .items }}"}
""", {"items": [1, 2]})
    assert ex.status == "failed"
    assert "source is array [1,2]" in ex.error["message"]

    ex, _, _ = await run(tmp_path, """\
      - name: check
        type: step.validate
        config: {strategy: json_schema, schema: {type: 12}}
""")
    assert ex.status == "failed"
    assert "`schema` is not a valid JSON Schema at type" in ex.error["message"]
    assert ex.error["type"] == "config"


# ---------------------------------------------------------------- jq


async def test_jq_reads_the_whole_context_and_spreads_object_results(tmp_path: Path) -> None:
    ex, _, _ = await run(tmp_path, """\
      - name: load
        type: step.set
        config: {values: {items: [{n: a, q: 2}, {n: b, q: 0}, {n: c, q: 5}]}}
      - name: pick
        type: step.jq
        config:
          expression: "{kept: [.steps.load.items[] | select(.q > 0) | .n], run: .meta.pipeline}"
""")
    assert ex.status == "completed", ex.error
    assert ex.output["result"] == {"kept": ["a", "c"], "run": "p"}
    assert ex.output["kept"] == ["a", "c"]  # spread into the output too


async def test_jq_with_input_and_scalar_and_multiple_results(tmp_path: Path) -> None:
    ex, _, _ = await run(tmp_path, """\
      - name: count
        type: step.jq
        config: {expression: "length", input: "{{ .list }}"}
      - name: each
        type: step.jq
        config: {expression: ".[] * 10", input: "{{ .list }}"}
      - name: same
        type: step.jq
        config: {expression: ".", input: "{{ .list }}"}
      - name: none
        type: step.jq
        config: {expression: "empty"}
      - name: out
        type: step.pipeline_output
        config:
          values:
            count: "{{ .steps.count }}"
            each: "{{ .steps.each.result }}"
            same: "{{ .steps.same.result }}"
            none: "{{ .steps.none }}"
""", {"list": [1, 2, 3]})
    assert ex.status == "completed", ex.error
    assert ex.output == {"count": {"result": 3}, "each": [10, 20, 30], "same": [1, 2, 3],
                         "none": {"result": None}}


async def test_jq_runtime_error_fails_with_the_program(tmp_path: Path) -> None:
    ex, _, _ = await run(tmp_path, """\
      - name: bad
        type: step.jq
        config: {expression: ".name | tonumber"}
""", {"name": "abc"})
    assert ex.status == "failed"
    assert ex.error["type"] == "expression"
    assert "step.jq" in ex.error["message"] and ".name | tonumber" in ex.error["message"]


# ---------------------------------------------------------------- transform


async def test_transform_chains_extract_map_filter_convert(tmp_path: Path) -> None:
    ex, _, _ = await run(tmp_path, """\
      - name: shape
        type: step.transform
        config:
          source: "{{ .body }}"
          operations:
            - {type: extract, config: {path: data.rows}}
            - {type: map, config: {mappings: {qty_text: qty, mail: email}}}
            - {type: filter, config: {fields: [id, qty, email]}}
            - {type: convert, config: {from: string, to: integer, fields: [qty]}}
""", {"body": {"data": {"rows": [
        {"id": 1, "qty_text": "3", "mail": "a@x", "junk": True},
        {"id": 2, "qty_text": "10", "junk": False},
    ]}}})
    assert ex.status == "completed", ex.error
    assert ex.output["data"] == [{"id": 1, "qty": 3, "email": "a@x"}, {"id": 2, "qty": 10}]


async def test_transform_whole_value_conversions_and_extract_default(tmp_path: Path) -> None:
    ex, _, _ = await run(tmp_path, """\
      - name: parse
        type: step.transform
        config:
          source: '{"b": [1, 2], "a": true}'
          operations: [{type: convert, config: {from: json, to: object}},
                       {type: extract, config: {path: b.1}}]
      - name: dump
        type: step.transform
        config:
          source: {b: 1, a: [true, null]}
          operations: [{type: convert, config: {from: object, to: json}}]
      - name: fallback
        type: step.transform
        config:
          source: {a: 1}
          operations: [{type: extract, config: {path: missing.deep, default: none}}]
      - name: flag
        type: step.transform
        config:
          source: " Yes "
          operations: [{type: convert, config: {from: string, to: boolean}}]
      - name: out
        type: step.pipeline_output
        config:
          values:
            parse: "{{ .steps.parse.data }}"
            dump: "{{ .steps.dump.data }}"
            fallback: "{{ .steps.fallback.data }}"
            flag: "{{ .steps.flag.data }}"
""")
    assert ex.status == "completed", ex.error
    assert ex.output == {"parse": 2, "dump": '{"a":[true,null],"b":1}', "fallback": "none",
                         "flag": True}


@pytest.mark.parametrize(("operation", "source", "expected"), [
    ("{type: extract, config: {path: a.b}}", "{a: {c: 1}}",
     "operation 0 (extract): path 'a.b' not found: no 'b' in object {\"c\":1}"),
    ("{type: convert, config: {from: string, to: integer, fields: [n]}}", "{n: 'x1'}",
     "operation 0 (convert): cannot convert string to integer: field 'n' (\"x1\")"),
    ("{type: convert, config: {from: json, to: object}}", "'{not json'",
     "cannot convert json to object: Expecting property name"),
    ("{type: filter, config: {fields: [a]}}", "'text'",
     "operation 0 (filter) needs an object or an array of objects, got string \"text\""),
    ("{type: convert, config: {from: boolean, to: integer}}", "true",
     "converting boolean to integer is not supported; supported: json->object"),
])
async def test_transform_failures_say_which_operation_and_why(
        tmp_path: Path, operation: str, source: str, expected: str) -> None:
    ex, _, _ = await run(tmp_path, f"""\
      - name: shape
        type: step.transform
        config: {{source: {source}, operations: [{operation}]}}
""")
    assert ex.status == "failed"
    assert expected in ex.error["message"]
    assert ex.error["message"].startswith("step.transform: operation 0")


# ---------------------------------------------------------------- json_parse / hash / regex


async def test_json_parse_parses_into_target_and_reports_position(tmp_path: Path) -> None:
    ex, _, _ = await run(tmp_path, """\
      - name: parse
        type: step.json_parse
        config: {source: "{{ .raw }}", target: doc}
      - name: again
        type: step.json_parse
        config: {source: "{{ .doc }}"}
""", {"raw": '{"a": [1, {"b": null}]}'})
    assert ex.status == "completed", ex.error
    assert ex.output["doc"] == {"a": [1, {"b": None}]}
    assert ex.output["value"] == {"a": [1, {"b": None}]}  # already structured: passes through

    bad, _, _ = await run(tmp_path, """\
      - name: parse
        type: step.json_parse
        config: {source: "{{ .raw }}"}
""", {"raw": '{\n  "a": 1,\n  "b": }'})
    assert bad.status == "failed"
    assert "invalid JSON at line 3 column 8: Expecting value" in bad.error["message"]
    assert bad.error["type"] == "parse"


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "sha256", "sha512"])
async def test_hash_algorithms(tmp_path: Path, algorithm: str) -> None:
    ex, _, _ = await run(tmp_path, f"""\
      - name: h
        type: step.hash
        config: {{input: "{{{{ .text }}}}", algorithm: {algorithm}}}
      - name: obj
        type: step.hash
        config: {{input: "{{{{ .obj }}}}", algorithm: {algorithm}}}
      - name: out
        type: step.pipeline_output
        config: {{values: {{text: "{{{{ .steps.h.hash }}}}", obj: "{{{{ .steps.obj.hash }}}}"}}}}
""", {"text": "héllo", "obj": {"b": 1, "a": [2]}})
    assert ex.status == "completed", ex.error
    assert ex.output["text"] == hashlib.new(algorithm, "héllo".encode()).hexdigest()
    canonical = b'{"a":[2],"b":1}'
    assert ex.output["obj"] == hashlib.new(algorithm, canonical).hexdigest()


async def test_hash_default_is_sha256_and_unknown_algorithm_is_rejected(tmp_path: Path) -> None:
    ex, _, _ = await run(tmp_path, """\
      - name: h
        type: step.hash
        config: {input: abc}
""")
    assert ex.output["hash"] == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    with pytest.raises(ConfigError, match="sha3"):
        await run(tmp_path, """\
      - name: h
        type: step.hash
        config: {input: abc, algorithm: sha3}
""")


async def test_regex_match_groups_named_groups_and_flags(tmp_path: Path) -> None:
    ex, _, _ = await run(tmp_path, r"""
      - name: m
        type: step.regex_match
        config: {input: "{{ .ref }}", pattern: '(?P<prefix>[a-z]{3})-(\d+)(x)?', ignore_case: true}
      - name: miss
        type: step.regex_match
        config: {input: "{{ .ref }}", pattern: 'ORD', full_match: true}
      - name: num
        type: step.regex_match
        config: {input: "{{ .n }}", pattern: '^\d+$'}
      - name: out
        type: step.pipeline_output
        config:
          values: {m: "{{ .steps.m }}", miss: "{{ .steps.miss }}", num: "{{ .steps.num.matched }}"}
""".lstrip("\n"), {"ref": "see ORD-42 now", "n": 1234})
    assert ex.status == "completed", ex.error
    assert ex.output["m"] == {"matched": True, "match": "ORD-42", "groups": ["ORD", "42", None],
                              "named": {"prefix": "ORD"}}
    assert ex.output["miss"] == {"matched": False, "match": None, "groups": [], "named": {}}
    assert ex.output["num"] is True


async def test_regex_match_bad_pattern_and_bad_input(tmp_path: Path) -> None:
    ex, _, _ = await run(tmp_path, """\
      - name: m
        type: step.regex_match
        config: {input: abc, pattern: "(unclosed"}
""")
    assert ex.status == "failed"
    assert "invalid pattern '(unclosed': missing ), unterminated subpattern" in ex.error["message"]
    ex, _, _ = await run(tmp_path, """\
      - name: m
        type: step.regex_match
        config: {input: "{{ .obj }}", pattern: a}
""", {"obj": {"a": 1}})
    assert ex.status == "failed"
    assert "`input` must be a string, got object" in ex.error["message"]


# ---------------------------------------------------------------- delay / fail / pipeline_output


async def test_delay_is_interrupted_by_a_step_timeout(tmp_path: Path) -> None:
    ex, timeline, _ = await run(tmp_path, """\
      - name: wait
        type: step.delay
        timeout: 50ms
        config: {duration: 1h}
""")
    assert ex.status == "failed"
    assert ex.error["type"] == "timeout"
    assert [(r.step, r.status) for r in timeline] == [("wait", "failed")]


async def test_delay_is_interrupted_by_cancel(tmp_path: Path) -> None:
    yaml_text = pipeline("""\
      - name: wait
        type: step.delay
        config: {duration: 1h}
""")
    async with Engine.open(yaml_text, store=f"sqlite:///{tmp_path}/s.db") as engine:
        task = asyncio.ensure_future(engine.run("p", {}))
        await wait_for_condition(lambda: engine.running, "the execution to start")
        (execution_id,) = engine.running
        await wait_for_condition(lambda: step_started(engine, execution_id), "the delay to start")
        assert await engine.cancel(execution_id)
        ex = await asyncio.wait_for(task, 30)
        assert ex.status == "cancelled"
        timeline = await engine.timeline(ex.id)
    assert [(r.step, r.status) for r in timeline] == [("wait", "cancelled")]


async def test_delay_rejects_a_bad_duration(tmp_path: Path) -> None:
    ex, _, _ = await run(tmp_path, """\
      - name: wait
        type: step.delay
        config: {duration: "{{ .d }}"}
""", {"d": "soon"})
    assert ex.status == "failed"
    assert "step.delay: invalid duration 'soon'" in ex.error["message"]


async def test_fail_raises_with_message_type_and_status(tmp_path: Path) -> None:
    ex, _, events = await run(tmp_path, """\
      - name: stop-here
        type: step.fail
        config: {message: "order {{ .id }} is not payable", status: 422}
      - name: never
        type: step.set
        config: {values: {x: 1}}
""", {"id": 9})
    assert ex.status == "failed"
    assert ex.error == {"message": "order 9 is not payable", "type": "fail", "status": 422,
                        "step": "stop-here"}
    assert not any(e.data.get("step") == "never" for e in events)


async def test_pipeline_output_stops_and_becomes_the_result(tmp_path: Path) -> None:
    ex, timeline, _ = await run(tmp_path, """\
      - name: out
        type: step.pipeline_output
        config: {values: {id: "{{ .id }}", twice: "{{ .id * 2 }}"}}
      - name: never
        type: step.fail
        config: {message: unreachable}
""", {"id": 3})
    assert ex.status == "completed", ex.error
    assert ex.output == {"id": 3, "twice": 6}
    assert [r.step for r in timeline] == ["out"]

    ex, _, _ = await run(tmp_path, """\
      - name: out
        type: step.pipeline_output
        config: {source: "{{ .items }}"}
""", {"items": [1, 2]})
    assert ex.output == [1, 2]

    ex, _, _ = await run(tmp_path, """\
      - name: out
        type: step.pipeline_output
        config: {}
""", {"a": 1})
    assert ex.output == {"a": 1}
