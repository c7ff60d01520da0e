"""Control-flow step types, driven through the real engine and a real SQLite store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.api import Engine
from engine.errors import NotFoundError
from engine.store.records import StepRunRecord
from tests.waiting import wait_for_condition


def one(steps_yaml: str) -> str:
    """A file with one pipeline ``p``; ``steps_yaml`` is indented by 6 spaces."""
    return f"pipelines:\n  p:\n    steps:\n{steps_yaml}"


async def run(tmp_path: Path, yaml_text: str, payload: Any = None,
              name: str = "p") -> tuple[Any, list[StepRunRecord], list[Any]]:
    async with Engine.open(yaml_text, store=f"sqlite:///{tmp_path}/s.db") as engine:
        ex = await engine.run(name, payload or {})
        return ex, await engine.timeline(ex.id), await engine.events(ex.id)


def max_in_flight(intervals: list[tuple[float, float]]) -> int:
    """Most intervals open at one instant (an end at t closes before a start at t opens)."""
    points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    live = peak = 0
    for _, delta in points:
        live += delta
        peak = max(peak, live)
    return peak


def iteration_intervals(timeline: list[StepRunRecord], prefix: str) -> list[tuple[float, float]]:
    """Per loop iteration: from its first sub-step's start to its last sub-step's end."""
    spans: dict[int, tuple[float, float]] = {}
    for run_ in timeline:
        if run_.path.startswith(prefix) and run_.ended_at is not None:
            start, end = spans.get(run_.iteration, (run_.started_at, run_.ended_at))
            spans[run_.iteration] = (min(start, run_.started_at), max(end, run_.ended_at))
    return list(spans.values())


# ---------------------------------------------------------------- conditional

ROUTES = one("""\
      - name: route
        type: step.conditional
        config:
          field: "{{ .status }}"
          routes: {approved: ship, rejected: notify}
          default: review
      - name: review
        type: step.pipeline_output
        config: {values: {handled: review}}
      - name: ship
        type: step.pipeline_output
        config: {values: {handled: ship}}
      - name: notify
        type: step.pipeline_output
        config: {values: {handled: notify}}
""")


@pytest.mark.parametrize(("status", "handled"), [
    ("approved", "ship"), ("rejected", "notify"), ("other", "review")])
async def test_conditional_routes_by_value_with_default(tmp_path: Path, status: str,
                                                        handled: str) -> None:
    ex, timeline, events = await run(tmp_path, ROUTES, {"status": status})
    assert ex.status == "completed", ex.error
    assert ex.output == {"handled": handled}
    assert [r.step for r in timeline] == ["route", handled]
    routed = next(e.data for e in events if e.type == "step.routed")
    assert routed["next_step"] == handled and routed["matched_value"] == status
    output = next(e.data["output"] for e in events if e.type == "step.completed")
    assert output == {"matched_value": status, "next_step": handled}


async def test_conditional_without_route_or_default_names_value_and_routes(tmp_path: Path) -> None:
    ex, _, _ = await run(tmp_path, one("""\
      - name: route
        type: step.conditional
        config: {field: "{{ .status }}", routes: {approved: done, rejected: done}}
      - name: done
        type: step.set
        config: {values: {x: 1}}
"""), {"status": "lost"})
    assert ex.status == "failed"
    assert ex.error["message"] == (
        "step.conditional: no route for value \"lost\" of field '{{ .status }}' and no "
        "`default`; known routes: 'approved', 'rejected'")
    assert ex.error["type"] == "no_route"


async def test_conditional_field_as_path_and_non_string_route_keys(tmp_path: Path) -> None:
    yaml_text = one("""\
      - name: get-user
        type: step.set
        config: {values: {vip: "{{ .vip }}", level: "{{ .level }}"}}
      - name: by-flag
        type: step.conditional
        config: {field: steps.get-user.vip, routes: {true: vip, false: by-level}}
      - name: by-level
        type: step.conditional
        config: {field: level, routes: {1: one, 2: two}}
      - name: vip
        type: step.pipeline_output
        config: {values: {got: vip}}
      - name: one
        type: step.pipeline_output
        config: {values: {got: one}}
      - name: two
        type: step.pipeline_output
        config: {values: {got: two}}
""")
    ex, _, _ = await run(tmp_path, yaml_text, {"vip": True, "level": 1})
    assert ex.output == {"got": "vip"}, ex.error
    ex, _, _ = await run(tmp_path, yaml_text, {"vip": False, "level": 2.0})
    assert ex.output == {"got": "two"}, ex.error


async def test_conditional_if_then_else(tmp_path: Path) -> None:
    yaml_text = one("""\
      - name: size
        type: step.conditional
        config: {if: "{{ .qty > 10 }}", then: big, else: small}
      - name: small
        type: step.pipeline_output
        config: {values: {size: small}}
      - name: big
        type: step.pipeline_output
        config: {values: {size: big}}
""")
    ex, _, _ = await run(tmp_path, yaml_text, {"qty": 11})
    assert ex.output == {"size": "big"}
    ex, _, events = await run(tmp_path, yaml_text, {"qty": 2})
    assert ex.output == {"size": "small"}
    assert next(e.data for e in events if e.type == "step.routed")["matched_value"] is False


async def test_conditional_bare_if_without_else_continues(tmp_path: Path) -> None:
    yaml_text = one("""\
      - name: maybe
        type: step.conditional
        config: {if: ".qty > 10", then: big}
      - name: small
        type: step.pipeline_output
        config: {values: {size: small}}
      - name: big
        type: step.pipeline_output
        config: {values: {size: big}}
""")
    ex, _, _ = await run(tmp_path, yaml_text, {"qty": 50})
    assert ex.output == {"size": "big"}
    ex, _, events = await run(tmp_path, yaml_text, {"qty": 5})
    assert ex.output == {"size": "small"}
    assert not [e for e in events if e.type == "step.routed"]


# ---------------------------------------------------------------- branch

BRANCH = one("""\
      - name: tier
        type: step.branch
        config:
          field: "{{ .tier }}"
          merge_step: total
          branches:
            gold:
              - {name: discount, type: step.set, config: {values: {rate: 0.25}}}
              - {name: note, type: step.set, config: {values: {note: "gold at {{ .rate }}"}}}
            silver:
              - {name: small, type: step.set, config: {values: {rate: 0.1}}}
          default:
            - {name: none, type: step.set, config: {values: {rate: 0}}}
      - name: skipped-by-merge
        type: step.fail
        config: {message: merge_step should jump over me}
      - name: total
        type: step.set
        config: {values: {price: "{{ 100 * (1 - .rate) }}"}}
""")


async def test_branch_runs_the_chosen_list_inline_then_jumps(tmp_path: Path) -> None:
    ex, timeline, _ = await run(tmp_path, BRANCH, {"tier": "gold"})
    assert ex.status == "completed", ex.error
    assert ex.output["price"] == 75
    assert ex.output["note"] == "gold at 0.25"
    assert ex.output["matched_value"] == "gold" and ex.output["branch"] == "gold"
    assert [r.path for r in timeline] == ["tier", "tier/discount", "tier/note", "total"]


async def test_branch_default(tmp_path: Path) -> None:
    ex, timeline, _ = await run(tmp_path, BRANCH, {"tier": "bronze"})
    assert ex.status == "completed", ex.error
    assert ex.output["price"] == 100
    assert ex.output["branch"] == "default"
    assert [r.path for r in timeline] == ["tier", "tier/none", "total"]


async def test_branch_without_match_or_default_fails(tmp_path: Path) -> None:
    ex, _, _ = await run(tmp_path, one("""\
      - name: tier
        type: step.branch
        config:
          field: tier
          branches:
            gold: [{name: a, type: step.set, config: {values: {a: 1}}}]
"""), {"tier": "tin"})
    assert ex.status == "failed"
    assert ex.error["message"] == (
        "step.branch: no branch for value \"tin\" of field 'tier' and no `default` (it may be "
        "an empty list); known branches: 'gold'")


async def test_branch_failure_inside_fails_the_step(tmp_path: Path) -> None:
    ex, _, _ = await run(tmp_path, one("""\
      - name: tier
        type: step.branch
        config:
          field: tier
          branches:
            gold: [{name: boom, type: step.fail, config: {message: "no gold today"}}]
"""), {"tier": "gold"})
    assert ex.status == "failed"
    assert "tier/boom: no gold today" in ex.error["message"]


# ---------------------------------------------------------------- foreach

LOOP = """\
      - name: loop
        type: step.foreach
        config:
          collection: "{{ .items }}"
          concurrency: %d
          steps:
            - {name: work, type: step.delay, config: {duration: 40ms}}
            - name: calc
              type: step.set
              config: {values: {v: "{{ .item * 10 }}", at: "{{ .index }}"}}
"""


@pytest.mark.parametrize(("concurrency", "expected_peak"), [(0, 1), (2, 2), (10, 6)])
async def test_foreach_concurrency_is_bounded(tmp_path: Path, concurrency: int,
                                              expected_peak: int) -> None:
    ex, timeline, _ = await run(tmp_path, one(LOOP % concurrency), {"items": [1, 2, 3, 4, 5, 6]})
    assert ex.status == "completed", ex.error
    assert ex.output["results"] == [{"v": 10 * n, "at": n - 1} for n in range(1, 7)]
    assert ex.output["count"] == 6 and ex.output["error_count"] == 0
    assert "errors" not in ex.output
    assert sorted(r.iteration for r in timeline if r.path == "loop/calc") == list(range(6))
    assert max_in_flight(iteration_intervals(timeline, "loop/")) == expected_peak


async def test_foreach_custom_vars_and_object_collection(tmp_path: Path) -> None:
    ex, _, _ = await run(tmp_path, one("""\
      - name: loop
        type: step.foreach
        config:
          collection: "{{ .prices }}"
          item_var: entry
          index_var: n
          steps:
            - name: line
              type: step.set
              config: {values: {line: "{{ .n }}:{{ .entry.key }}={{ .entry.value }}"}}
      - name: after
        type: step.set
        config: {values: {leaked: "{{ .line }}"}}
"""), {"prices": {"a": 1, "b": 2}})
    assert ex.status == "completed", ex.error
    assert ex.output["results"] == [{"line": "0:a=1"}, {"line": "1:b=2"}]
    assert ex.output["leaked"] is None  # iterations run in their own scope


FAILING_LOOP = """\
      - name: loop
        type: step.foreach
        config:
          collection: "{{ .items }}"
          error_strategy: %s
          concurrency: %d
          steps:
            - name: boom
              type: step.fail
              if: "{{ .item == 2 }}"
              config: {message: "bad item {{ .item }}"}
            - {name: ok, type: step.set, config: {values: {v: "{{ .item }}"}}}
"""


async def test_foreach_fail_fast_stops_at_the_failed_item(tmp_path: Path) -> None:
    ex, timeline, _ = await run(tmp_path, one(FAILING_LOOP % ("fail_fast", 0)),
                                {"items": [1, 2, 3]})
    assert ex.status == "failed"
    assert ex.error["message"] == (
        "step.foreach: iteration 1 (item 2) failed: loop/boom: bad item 2")
    assert ex.error["type"] == "fail"
    assert max(r.iteration for r in timeline if r.path.startswith("loop/")) == 1


async def test_foreach_fail_fast_cancels_concurrent_iterations(tmp_path: Path) -> None:
    ex, timeline, _ = await run(tmp_path, one("""\
      - name: loop
        type: step.foreach
        config:
          collection: "{{ .items }}"
          concurrency: 3
          steps:
            - name: boom
              type: step.fail
              if: "{{ .item == 2 }}"
              config: {message: "bad {{ .item }}"}
            - {name: slow, type: step.delay, config: {duration: 1h}}
"""), {"items": [1, 2, 3, 4, 5]})
    assert ex.status == "failed"
    assert "iteration 1 (item 2) failed: loop/boom: bad 2" in ex.error["message"]
    slow = {r.iteration: r.status for r in timeline if r.path == "loop/slow"}
    assert slow == {0: "cancelled", 2: "cancelled"}  # items 4 and 5 never started


async def test_foreach_collect_errors_runs_everything(tmp_path: Path) -> None:
    ex, _, _ = await run(tmp_path, one(FAILING_LOOP % ("collect_errors", 2)),
                         {"items": [1, 2, 3, 2]})
    assert ex.status == "completed", ex.error
    assert ex.output["results"] == [{"v": 1}, None, {"v": 3}, None]
    assert ex.output["count"] == 4 and ex.output["error_count"] == 2
    assert ex.output["errors"] == [
        {"index": 1, "item": 2, "error": "loop/boom: bad item 2"},
        {"index": 3, "item": 2, "error": "loop/boom: bad item 2"},
    ]


async def test_foreach_rejects_a_scalar_collection(tmp_path: Path) -> None:
    ex, _, _ = await run(tmp_path, one("""\
      - name: loop
        type: step.foreach
        config:
          collection: "{{ .n }}"
          steps: [{name: a, type: step.set, config: {values: {a: 1}}}]
"""), {"n": 5})
    assert ex.status == "failed"
    assert ex.error["message"] == (
        "step.foreach: `collection` must be an array (or an object, iterated as {key, value} "
        "entries), got number 5")


# ---------------------------------------------------------------- while


async def test_while_carries_outputs_between_iterations(tmp_path: Path) -> None:
    ex, timeline, _ = await run(tmp_path, one("""\
      - name: loop
        type: step.while
        config:
          condition: "{{ (.counter // 0) < 3 }}"
          steps:
            - name: inc
              type: step.set
              config: {values: {counter: "{{ (.counter // 0) + 1 }}", at: "{{ .iteration }}"}}
"""))
    assert ex.status == "completed", ex.error
    assert ex.output["iterations"] == 3
    assert ex.output["last"] == {"counter": 3, "at": 2}
    assert [r.iteration for r in timeline if r.path == "loop/inc"] == [0, 1, 2]


async def test_while_bare_condition_sees_the_last_iteration_steps(tmp_path: Path) -> None:
    ex, _, _ = await run(tmp_path, one("""\
      - name: loop
        type: step.while
        config:
          condition: "(.steps.grow.size // 1) < 20"
          steps:
            - {name: grow, type: step.set, config: {values: {size: "{{ (.size // 1) * 3 }}"}}}
      - name: never
        type: step.while
        config:
          condition: "false"
          steps: [{name: x, type: step.fail, config: {message: not run}}]
      - name: out
        type: step.pipeline_output
        config: {values: {loop: "{{ .steps.loop }}", never: "{{ .steps.never }}"}}
"""))
    assert ex.status == "completed", ex.error
    assert ex.output == {"loop": {"iterations": 3, "last": {"size": 27}},  # 3, 9, 27
                         "never": {"iterations": 0, "last": None}}


async def test_while_exceeding_max_iterations_fails(tmp_path: Path) -> None:
    ex, timeline, _ = await run(tmp_path, one("""\
      - name: loop
        type: step.while
        config:
          condition: "true"
          max_iterations: 5
          steps: [{name: tick, type: step.set, config: {values: {t: 1}}}]
"""))
    assert ex.status == "failed"
    assert ex.error["message"] == (
        "step.while: condition 'true' is still true after 5 iterations (max_iterations); fix "
        "the condition or raise the limit")
    assert ex.error["type"] == "max_iterations"
    assert len([r for r in timeline if r.path == "loop/tick"]) == 5


async def test_while_bad_condition_fails_naming_it(tmp_path: Path) -> None:
    ex, _, _ = await run(tmp_path, one("""\
      - name: loop
        type: step.while
        config:
          condition: ".name | tonumber"
          steps: [{name: tick, type: step.set, config: {values: {t: 1}}}]
"""), {"name": "x"})
    assert ex.status == "failed"
    assert "step.while: cannot evaluate condition '.name | tonumber'" in ex.error["message"]


# ---------------------------------------------------------------- parallel


async def test_parallel_runs_children_concurrently(tmp_path: Path) -> None:
    ex, timeline, _ = await run(tmp_path, one("""\
      - name: fan
        type: step.parallel
        config:
          steps:
            - {name: a, type: step.delay, config: {duration: 100ms}}
            - {name: b, type: step.delay, config: {duration: 100ms}}
            - {name: c, type: step.set, config: {values: {x: "{{ .x }}"}}}
"""), {"x": 4})
    assert ex.status == "completed", ex.error
    assert ex.output["results"] == {"a": {}, "b": {}, "c": {"x": 4}}
    assert ex.output["errors"] == {}
    runs = {r.path: r for r in timeline}
    a, b = runs["fan/a"], runs["fan/b"]
    assert a.ended_at is not None and b.ended_at is not None
    # Both delays were in flight together: each started before the other finished.
    assert a.started_at < b.ended_at and b.started_at < a.ended_at


async def test_parallel_fail_fast_cancels_siblings(tmp_path: Path) -> None:
    ex, timeline, _ = await run(tmp_path, one("""\
      - name: fan
        type: step.parallel
        config:
          steps:
            - {name: slow, type: step.delay, config: {duration: 1h}}
            - {name: boom, type: step.fail, config: {message: "upstream 500", status: 502}}
"""))
    assert ex.status == "failed"
    assert ex.error["message"] == "step.parallel: branch 'boom' failed: fan/boom: upstream 500"
    assert ex.error["status"] == 502
    assert {r.path: r.status for r in timeline}["fan/slow"] == "cancelled"


async def test_parallel_collect_errors_and_continue_children(tmp_path: Path) -> None:
    ex, _, _ = await run(tmp_path, one("""\
      - name: fan
        type: step.parallel
        config:
          error_strategy: collect_errors
          steps:
            - {name: good, type: step.set, config: {values: {v: 1}}}
            - {name: bad, type: step.fail, config: {message: broke}}
            - {name: soft, type: step.fail, on_error: continue, config: {message: tolerated}}
"""))
    assert ex.status == "completed", ex.error
    assert ex.output["results"] == {"good": {"v": 1}, "soft": {"error": "tolerated"}}
    assert ex.output["errors"] == {"bad": "fan/bad: broke", "soft": "tolerated"}


# ---------------------------------------------------------------- workflow_call

CALLS = """\
pipelines:
  parent:
    steps:
      - name: call
        type: step.workflow_call
        config:
          workflow: child
          input: {n: "{{ .n }}"}
          mode: %s
  mapped:
    steps:
      - name: call
        type: step.workflow_call
        config:
          workflow: child
          input: {n: "{{ .n }}"}
          output_mapping: {doubled: "{{ .twice }}", text: "n={{ .n }}"}
  child:
    steps:
      - name: check
        type: step.fail
        if: "{{ .n < 0 }}"
        config: {message: "negative n {{ .n }}"}
      - name: dbl
        type: step.set
        config: {values: {twice: "{{ .n * 2 }}"}}
"""


async def test_workflow_call_sync_returns_the_child_output(tmp_path: Path) -> None:
    async with Engine.open(CALLS % "sync", store=f"sqlite:///{tmp_path}/s.db") as engine:
        ex = await engine.run("parent", {"n": 21})
        assert ex.status == "completed", ex.error
        assert ex.output["twice"] == 42
        children = [r for r in await engine.list_executions(pipeline="child")]
        assert [(c.parent_id, c.status) for c in children] == [(ex.id, "completed")]

        mapped = await engine.run("mapped", {"n": 5})
        assert mapped.status == "completed", mapped.error
        assert mapped.output["doubled"] == 10 and mapped.output["text"] == "n=5"


async def test_workflow_call_failed_child_fails_with_its_error_and_id(tmp_path: Path) -> None:
    async with Engine.open(CALLS % "sync", store=f"sqlite:///{tmp_path}/s.db") as engine:
        ex = await engine.run("parent", {"n": -1})
        (child,) = await engine.list_executions(pipeline="child")
    assert ex.status == "failed"
    assert ex.error["message"] == (
        f"step.workflow_call: workflow 'child' (execution {child.id}) ended failed: negative n -1")
    assert ex.error["type"] == "workflow_failed"
    assert child.parent_id == ex.id


async def test_workflow_call_async_returns_the_child_id(tmp_path: Path) -> None:
    async with Engine.open(CALLS % "async", store=f"sqlite:///{tmp_path}/s.db") as engine:
        ex = await engine.run("parent", {"n": 3})
        assert ex.status == "completed", ex.error
        child_id = ex.output["execution_id"]

        async def child_completed() -> bool:
            if child_id in engine.running:
                return False
            try:
                return (await engine.get_execution(child_id)).status == "completed"
            except NotFoundError:
                return False

        await wait_for_condition(child_completed, "the child execution to complete")
        child = await engine.get_execution(child_id)
    assert child.status == "completed"
    assert child.parent_id == ex.id
    assert child.output["twice"] == 6


async def test_workflow_call_unknown_pipeline_and_bad_mapping(tmp_path: Path) -> None:
    yaml_text = """\
pipelines:
  parent:
    steps:
      - name: call
        type: step.workflow_call
        config: {workflow: "{{ .target }}", output_mapping: {x: "{{ .n | tonumber }}"}}
  child:
    steps:
      - name: s
        type: step.set
        config: {values: {n: "{{ .n }}"}}
"""
    async with Engine.open(yaml_text, store=f"sqlite:///{tmp_path}/s.db") as engine:
        ghost = await engine.run("parent", {"target": "ghost"})
        bad = await engine.run("parent", {"target": "child", "n": "abc"})
    assert ghost.status == "failed"
    assert "no pipeline named 'ghost'" in ghost.error["message"]
    assert bad.status == "failed"
    assert bad.error["message"].startswith(
        "step.workflow_call: output_mapping.x of workflow 'child': jq error in '.n | tonumber'")


async def test_branch_stop_inside_the_branch_ends_the_pipeline(tmp_path: Path) -> None:
    ex, timeline, _ = await run(tmp_path, one("""\
      - name: tier
        type: step.branch
        config:
          field: tier
          branches:
            gold: [{name: early, type: step.pipeline_output, config: {values: {done: gold}}}]
      - name: never
        type: step.fail
        config: {message: unreachable}
"""), {"tier": "gold"})
    assert ex.status == "completed", ex.error
    assert ex.output == {"done": "gold"}
    assert [r.path for r in timeline] == ["tier", "tier/early"]


async def test_templated_integer_options_are_checked_at_run_time(tmp_path: Path) -> None:
    ex, _, _ = await run(tmp_path, one("""\
      - name: loop
        type: step.foreach
        config:
          collection: [1, 2]
          concurrency: "{{ .c }}"
          steps: [{name: a, type: step.set, config: {values: {a: 1}}}]
"""), {"c": "lots"})
    assert ex.status == "failed"
    assert ex.error["message"] == "`concurrency` must be an integer >= 0, got \"lots\""
