"""The diff of two executions (events-and-store.md §5), on real engines and real stores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.api import Engine
from engine.executor import MockAnswer, Reused, RunControls
from engine.service import diff as diff_module
from engine.service.diff import diff_executions, json_changes
from engine.service.errors import NotFound
from engine.service.models import ExecutionDiff, StepDiff, ValueChange
from engine.store.store import Store
from tests.contract.legacy_store import rewrite_as_legacy


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


def _diff_in_both_shapes(store: Store, url: str, a: str, b: str) -> ExecutionDiff:
    """The diff of ``a`` and ``b``; then both are rewritten in the event shape of 0.1.0 and
    earlier (step.input / step.output events of their own) and must diff exactly the same."""
    diff = diff_executions(store, a, b)
    for execution_id in {a, b}:
        rewrite_as_legacy(url, execution_id)
    assert diff_executions(store, a, b) == diff
    return diff


async def _two_runs(url: str, yaml: str, payload_a: Any, payload_b: Any,
                    pipeline: str = "p") -> ExecutionDiff:
    async with Engine.open(yaml, store=url) as engine:
        a = await engine.run(pipeline, payload_a)
        b = await engine.run(pipeline, payload_b)
        assert engine.store is not None
        return _diff_in_both_shapes(engine.store, url, a.id, b.id)


def _step(diff: ExecutionDiff, path: str, iteration: int = 0, attempt: int = 1,
          occurrence: int = 0) -> StepDiff:
    found = [s for s in diff.steps if (s.path, s.iteration, s.attempt, s.occurrence)
             == (path, iteration, attempt, occurrence)]
    assert len(found) == 1, [(s.path, s.iteration, s.attempt, s.occurrence) for s in diff.steps]
    return found[0]


def _changes(changes: list[ValueChange]) -> list[tuple[str, Any, Any]]:
    return [(c.path, c.value_a, c.value_b) for c in changes]


# ---------------------------------------------------------------------- JSON values


def test_json_changes_reports_leaves_with_json_pointers() -> None:
    a = {"user": {"name": "ann", "tags": ["x", "y"], "a/b": 1, "t~": 1}, "gone": {"deep": 1},
         "n": 1, "flag": True, "kind": {"k": 1}}
    b = {"user": {"name": "bob", "tags": ["x"], "a/b": 2, "t~": 1}, "new": None,
         "n": 1.0, "flag": 1, "kind": [1]}
    assert _changes(json_changes(a, b)) == [
        ("/user/name", "ann", "bob"),
        ("/user/tags/1", "y", None),
        ("/user/a~1b", 1, 2),
        ("/gone", {"deep": 1}, None),  # a removed key: the whole value, None on the other side
        ("/flag", True, 1),  # JSON true is not 1
        ("/kind", {"k": 1}, [1]),  # a type change is one change at that node
        ("/new", None, None),  # added as null: still a change (the key did not exist)
    ]
    assert json_changes(a, a) == []
    assert json_changes({"n": 1}, {"n": 1.0}) == []  # one JSON number
    assert _changes(json_changes(None, {"x": 1})) == [("", None, {"x": 1})]
    assert _changes(json_changes([1, 2], [1, 2, 3], "/out")) == [("/out/2", None, 3)]


class CountedLeaf:
    """A JSON leaf that counts how often it is compared: the diff's work, not its clock."""

    def __init__(self, value: Any, tally: list[int]) -> None:
        self.value, self.tally = value, tally

    def __eq__(self, other: object) -> bool:
        self.tally[0] += 1
        return isinstance(other, CountedLeaf) and self.value == other.value

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self.value)


def _rows(n: int, tally: list[int], changed: int | None = None) -> dict[str, Any]:
    return {"rows": [{"id": CountedLeaf(i, tally), "v": CountedLeaf(-1 if i == changed else i, tally)}
                     for i in range(n)]}


@pytest.mark.parametrize("n", [1_000, 4_000, 16_000])
def test_json_changes_compares_each_leaf_once(n: int) -> None:
    # Linear: as many comparisons as leaf pairs, whatever the size (a walk that compared
    # whole subtrees on the way down would compare each leaf once per level above it).
    tally = [0]
    changes = json_changes(_rows(n, tally), _rows(n, tally, changed=n // 2))
    assert [(c.path, c.value_a.value, c.value_b.value) for c in changes] == [
        (f"/rows/{n // 2}/v", n // 2, -1)]
    assert tally[0] == 2 * n


def test_json_changes_is_not_recursive() -> None:
    tally = [0]
    deep_a: Any = CountedLeaf(1, tally)
    deep_b: Any = CountedLeaf(2, tally)
    for _ in range(5000):  # far deeper than Python's recursion limit
        deep_a, deep_b = {"k": deep_a}, {"k": deep_b}
    changes = json_changes(deep_a, deep_b)
    assert len(changes) == 1 and changes[0].path == "/k" * 5000
    assert tally[0] == 1


# ---------------------------------------------------------------------- executions

PAYLOAD_YAML = """
pipelines:
  p:
    steps:
      - {name: greet, type: step.set, config: {values: {greeting: hi}}}
      - name: profile
        type: step.set
        config:
          values:
            user: {name: "{{ .name }}", tags: "{{ .tags }}"}
            "a/b": "{{ .name }}"
      - {name: done, type: step.set, config: {values: {done: true}}}
"""


async def test_identical_runs_have_no_divergence(tmp_path: Path) -> None:
    diff = await _two_runs(_url(tmp_path), PAYLOAD_YAML, {"name": "ann", "tags": ["x"]},
                           {"name": "ann", "tags": ["x"]})
    assert diff.first_divergence is None
    assert diff.summary == {"same": 3, "changed": 0, "only_a": 0, "only_b": 0}
    assert [s.path for s in diff.steps] == ["greet", "profile", "done"]
    assert all(s.same and not s.input_changes and not s.output_changes for s in diff.steps)
    assert all(s.status_a == s.status_b == "completed" for s in diff.steps)
    assert all(s.duration_ms_a is not None and s.duration_ms_b is not None for s in diff.steps)
    assert not diff.definition_changed and diff.definition_change == []
    assert diff.trigger_changes == [] and diff.output_changes == []
    assert diff.status_a == diff.status_b == "completed"
    assert diff.pipeline_a == diff.pipeline_b == "p"


async def test_a_different_payload_diverges_at_the_first_changed_output(
        store_url: str) -> None:
    diff = await _two_runs(store_url, PAYLOAD_YAML, {"name": "ann", "tags": ["x", "y"]},
                           {"name": "bob", "tags": ["x"]})
    assert diff.first_divergence is not None and diff.first_divergence.path == "profile"
    profile = _step(diff, "profile")
    assert not profile.same
    assert _changes(profile.output_changes) == [
        ("/user/name", "ann", "bob"), ("/user/tags/1", "y", None), ("/a~1b", "ann", "bob")]
    assert _changes(profile.input_changes) == [
        ("/values/user/name", "ann", "bob"), ("/values/user/tags/1", "y", None),
        ("/values/a~1b", "ann", "bob")]
    assert _step(diff, "greet").same and _step(diff, "done").same
    assert diff.summary == {"same": 2, "changed": 1, "only_a": 0, "only_b": 0}
    assert _changes(diff.trigger_changes) == [("/name", "ann", "bob"), ("/tags/1", "y", None)]
    assert ("/user/name", "ann", "bob") in _changes(diff.output_changes)
    assert not diff.definition_changed


async def test_a_route_change_diverges_with_both_routes(tmp_path: Path) -> None:
    diff = await _two_runs(_url(tmp_path), """
pipelines:
  p:
    steps:
      - {name: route, type: step.conditional, config: {if: "{{ .vip }}", then: gold, else: basic}}
      - {name: gold, type: step.set, config: {values: {tier: gold}}}
      - {name: skip-basic, type: step.conditional, config: {if: "{{ true }}", then: end}}
      - {name: basic, type: step.set, config: {values: {tier: basic}}}
      - {name: end, type: step.set, config: {values: {done: true}}}
""", {"vip": True}, {"vip": False})
    first = diff.first_divergence
    assert first is not None and first.path == "route"
    assert (first.route_a, first.route_b) == ("gold", "basic")
    assert ("/next_step", "gold", "basic") in _changes(first.output_changes)
    assert [(s.path, s.status_a, s.status_b) for s in diff.steps] == [
        ("route", "completed", "completed"),
        ("gold", "completed", None),
        ("skip-basic", "completed", None),
        ("basic", None, "completed"),
        ("end", "completed", "completed"),
    ]
    assert _step(diff, "skip-basic").route_a == "end"
    assert _step(diff, "end").same
    assert diff.summary == {"same": 1, "changed": 1, "only_a": 2, "only_b": 1}
    final = _changes(diff.output_changes)
    assert ("/vip", True, False) in final and ("/tier", "gold", "basic") in final


async def test_a_step_failing_in_one_run_only(tmp_path: Path) -> None:
    diff = await _two_runs(_url(tmp_path), """
pipelines:
  p:
    steps:
      - {name: start, type: step.set, config: {values: {ok: true}}}
      - {name: parse, type: step.json_parse, config: {source: "{{ .text }}"}}
      - {name: after, type: step.set, config: {values: {after: true}}}
""", {"text": '{"n": 1}'}, {"text": "not json"})
    assert (diff.status_a, diff.status_b) == ("completed", "failed")
    first = diff.first_divergence
    assert first is not None and first.path == "parse"
    assert (first.status_a, first.status_b) == ("completed", "failed")
    assert _changes(first.output_changes) == [("", {"value": {"n": 1}}, None)]
    assert _changes(first.input_changes) == [("/source", '{"n": 1}', "not json")]
    after = _step(diff, "after")
    assert (after.status_a, after.status_b, after.same) == ("completed", None, False)
    assert diff.summary == {"same": 1, "changed": 1, "only_a": 1, "only_b": 0}


async def test_a_retry_in_one_run_only(tmp_path: Path, http_server: Any) -> None:
    yaml = """
pipelines:
  p:
    steps:
      - name: call
        type: step.http_call
        retry: {max_attempts: 2, initial_delay: 1ms}
        config: {url: "{{ .url }}"}
"""
    diff = await _two_runs(_url(tmp_path), yaml, {"url": http_server.url("/flaky/a?fail=0")},
                           {"url": http_server.url("/flaky/b?fail=1")})
    assert [(s.path, s.attempt, s.status_a, s.status_b) for s in diff.steps] == [
        ("call", 1, "completed", "failed"), ("call", 2, None, "completed")]
    first = diff.first_divergence
    assert first is not None and (first.path, first.attempt) == ("call", 1)
    retried = _step(diff, "call", attempt=2)
    assert "retried" in retried.flags_b and retried.flags_a == []
    assert diff.summary == {"same": 0, "changed": 1, "only_a": 0, "only_b": 1}
    assert diff.status_a == diff.status_b == "completed"


FOREACH_YAML = """
pipelines:
  p:
    steps:
      - name: fan-out
        type: step.foreach
        config:
          collection: "{{ .items }}"
          steps:
            - {name: double, type: step.set, config: {values: {v: "{{ .item * 2 }}"}}}
"""


async def test_loop_iterations_align_by_iteration(tmp_path: Path) -> None:
    diff = await _two_runs(_url(tmp_path), FOREACH_YAML, {"items": [1, 2, 3]},
                           {"items": [1, 5, 3, 4]})
    doubles = [(s.iteration, s.same, s.status_a, s.status_b) for s in diff.steps
               if s.path == "fan-out/double"]
    assert doubles == [(0, True, "completed", "completed"), (1, False, "completed", "completed"),
                       (2, True, "completed", "completed"), (3, False, None, "completed")]
    assert _changes(_step(diff, "fan-out/double", iteration=1).output_changes) == [("/v", 4, 10)]
    fan_out = _step(diff, "fan-out")
    assert ("/results/1/v", 4, 10) in _changes(fan_out.output_changes)
    assert ("/count", 3, 4) in _changes(fan_out.output_changes)
    # the loop step starts before its iterations: it is where the runs first differ
    assert diff.first_divergence is not None and diff.first_divergence.path == "fan-out"
    assert diff.summary == {"same": 2, "changed": 2, "only_a": 0, "only_b": 1}


async def test_concurrent_iterations_get_their_own_outputs(tmp_path: Path,
                                                           http_server: Any) -> None:
    """Iterations of one path run at once; each output must land on its own iteration."""
    yaml = f"""
pipelines:
  p:
    steps:
      - name: fan-out
        type: step.foreach
        config:
          collection: "{{{{ .delays }}}}"
          concurrency: 3
          steps:
            - name: call
              type: step.http_call
              config: {{url: "{http_server.url("/slow")}?delay={{{{ .item }}}}"}}
"""
    # A finishes iteration 1 first; B finishes iteration 0 first.
    diff = await _two_runs(_url(tmp_path), yaml, {"delays": [0.15, 0.01, 0.08]},
                           {"delays": [0.01, 0.15, 0.08]})
    bodies = {s.iteration: [c for c in _changes(s.output_changes) if c[0].startswith("/body")]
              for s in diff.steps if s.path == "fan-out/call"}
    assert bodies == {0: [("/body/slept", 0.15, 0.01)], 1: [("/body/slept", 0.01, 0.15)], 2: []}
    inputs = {s.iteration: _changes(s.input_changes) for s in diff.steps
              if s.path == "fan-out/call"}
    assert inputs[2] == [] and inputs[0][0][1].endswith("delay=0.15")


async def test_backward_jumps_align_occurrence_by_occurrence(tmp_path: Path) -> None:
    diff = await _two_runs(_url(tmp_path), """
pipelines:
  p:
    steps:
      - {name: init, type: step.set, config: {values: {i: 0}}}
      - {name: inc, type: step.set, config: {values: {i: "{{ .i + 1 }}"}}}
      - {name: again, type: step.conditional, config: {if: "{{ .i < .limit }}", then: inc, else: done}}
      - {name: done, type: step.set, config: {values: {final: "{{ .i }}"}}}
""", {"limit": 2}, {"limit": 3})
    assert [(s.path, s.occurrence, s.status_a, s.status_b, s.same) for s in diff.steps] == [
        ("init", 0, "completed", "completed", True),
        ("inc", 0, "completed", "completed", True),
        ("again", 0, "completed", "completed", True),
        ("inc", 1, "completed", "completed", True),
        ("again", 1, "completed", "completed", False),
        ("inc", 2, None, "completed", False),
        ("again", 2, None, "completed", False),
        ("done", 0, "completed", "completed", False),
    ]
    first = diff.first_divergence
    assert first is not None and (first.path, first.occurrence) == ("again", 1)
    assert (first.route_a, first.route_b) == ("done", "inc")
    assert _step(diff, "again", occurrence=2).route_b == "done"
    assert _changes(_step(diff, "done").output_changes) == [("/final", 2, 3)]
    assert diff.summary == {"same": 4, "changed": 2, "only_a": 0, "only_b": 2}


async def test_different_definitions_show_the_edited_line(tmp_path: Path) -> None:
    before = PAYLOAD_YAML
    after = PAYLOAD_YAML.replace("greeting: hi", "greeting: hello")
    with Store.open(_url(tmp_path)) as store:
        async with Engine.open(before, store=store) as engine:
            a = await engine.run("p", {"name": "ann", "tags": []})
        async with Engine.open(after, store=store) as engine:
            b = await engine.run("p", {"name": "ann", "tags": []})
        diff = diff_executions(store, a.id, b.id)
    assert diff.definition_changed
    lines = diff.definition_change
    assert lines[0].startswith("--- a/") and lines[1].startswith("+++ b/")
    assert any(line.startswith("@@") for line in lines)
    assert "-      - {name: greet, type: step.set, config: {values: {greeting: hi}}}" in lines
    assert "+      - {name: greet, type: step.set, config: {values: {greeting: hello}}}" in lines
    assert [line for line in lines if line[:1] in "+-" and line[:3] not in ("---", "+++")] == [
        "-      - {name: greet, type: step.set, config: {values: {greeting: hi}}}",
        "+      - {name: greet, type: step.set, config: {values: {greeting: hello}}}"]
    assert _changes(_step(diff, "greet").output_changes) == [("/greeting", "hi", "hello")]
    assert diff.first_divergence is not None and diff.first_divergence.path == "greet"


async def test_executions_of_different_pipelines_still_diff(tmp_path: Path) -> None:
    with Store.open(_url(tmp_path)) as store:
        async with Engine.open(PAYLOAD_YAML, store=store) as engine:
            a = await engine.run("p", {"name": "ann", "tags": []})
        async with Engine.open("""
pipelines:
  q:
    steps:
      - {name: greet, type: step.set, config: {values: {greeting: hi}}}
      - {name: other, type: step.set, config: {values: {x: 1}}}
""", store=store) as engine:
            b = await engine.run("q", {})
        diff = diff_executions(store, a.id, b.id)
        # a snapshot that is gone: the change is named in one line, not an error
        with store.begin() as conn:
            conn.exec_driver_sql("DELETE FROM definitions")
        missing = diff_executions(store, a.id, b.id)
    assert (diff.pipeline_a, diff.pipeline_b) == ("p", "q")
    assert diff.definition_changed and any(line.startswith("+  q:") for line in diff.definition_change)
    assert _step(diff, "greet").same
    assert diff.summary == {"same": 1, "changed": 0, "only_a": 2, "only_b": 1}
    assert diff.first_divergence is not None and diff.first_divergence.path == "profile"
    assert missing.definition_changed and len(missing.definition_change) == 1
    assert "is not in the store" in missing.definition_change[0]


async def test_a_replay_with_reused_and_mocked_steps(tmp_path: Path) -> None:
    yaml = """
pipelines:
  p:
    steps:
      - {name: a, type: step.set, config: {values: {x: "{{ .n }}"}}}
      - {name: b, type: step.set, config: {values: {y: "{{ .x + 1 }}"}}}
      - {name: c, type: step.set, config: {values: {z: 3}}}
"""
    async with Engine.open(yaml, store=_url(tmp_path)) as engine:
        original = await engine.run("p", {"n": 1})
        controls = RunControls(reused=[Reused("a", "a", "step.set", {"x": 1})], start_at="b",
                               replay_mocks={"c": MockAnswer(id="m1", output={"z": 30})})
        replay = await engine.run("p", {"n": 1}, replay_of=original.id, controls=controls)
        assert engine.store is not None
        diff = _diff_in_both_shapes(engine.store, _url(tmp_path), original.id, replay.id)
    a = _step(diff, "a")
    assert a.same and a.flags_b == ["reused"] and a.input_changes == []
    assert _step(diff, "b").same
    c = _step(diff, "c")
    assert not c.same and "mocked" in c.flags_b
    assert _changes(c.output_changes) == [("/z", 3, 30)]
    assert diff.first_divergence is not None and diff.first_divergence.path == "c"
    assert diff.summary == {"same": 2, "changed": 1, "only_a": 0, "only_b": 0}


async def test_events_are_read_in_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with Engine.open(FOREACH_YAML, store=_url(tmp_path)) as engine:
        a = await engine.run("p", {"items": list(range(20))})
        b = await engine.run("p", {"items": [*range(10), 99, *range(11, 20)]})
        assert engine.store is not None
        whole = diff_executions(engine.store, a.id, b.id)
        monkeypatch.setattr(diff_module, "EVENT_PAGE", 3)
        paged = diff_executions(engine.store, a.id, b.id)
    assert paged == whole
    assert _changes(_step(paged, "fan-out/double", iteration=10).output_changes) == [
        ("/v", 20, 198)]
    assert paged.summary["changed"] == 2


async def test_an_unknown_execution_is_not_found(tmp_path: Path) -> None:
    async with Engine.open(PAYLOAD_YAML, store=_url(tmp_path)) as engine:
        known = await engine.run("p", {"name": "ann", "tags": []})
        assert engine.store is not None
        with pytest.raises(NotFound, match="no execution 'missing-b'") as caught:
            diff_executions(engine.store, known.id, "missing-b")
        assert caught.value.status == 404
        with pytest.raises(NotFound, match="'missing-a'"):
            diff_executions(engine.store, "missing-a", known.id)


async def test_diff_of_two_thousand_step_executions(tmp_path: Path) -> None:
    steps = "\n".join(f'      - {{name: s{i}, type: step.set, config: {{values: '
                      f'{{v{i % 10}: "{{{{ .n + {i} }}}}"}}}}}}' for i in range(1000))
    yaml = f"pipelines:\n  p:\n    steps:\n{steps}\n"
    async with Engine.open(yaml, store=_url(tmp_path)) as engine:
        a = await engine.run("p", {"n": 1})
        b = await engine.run("p", {"n": 2})
        assert engine.store is not None
        diff = diff_executions(engine.store, a.id, b.id)
    assert diff.summary == {"same": 0, "changed": 1000, "only_a": 0, "only_b": 0}
    assert diff.first_divergence is not None and diff.first_divergence.path == "s0"
