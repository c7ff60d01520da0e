"""Executor semantics (pipeline-format.md §2): ordering, control flow, errors, saga, recording."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from engine.api import Engine, Execution
from engine.errors import NotFoundError
from engine.store.store import Store
from tests.waiting import step_started, wait_for_condition


def _store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/events.db"


async def run(tmp_path: Path, yaml: str, payload: Any = None, pipeline: str = "p") -> tuple[Execution, list[Any], list[Any]]:
    """Run once and return the execution with its recorded events and step runs."""
    async with Engine.open(yaml, store=_store(tmp_path)) as engine:
        execution = await engine.run(pipeline, payload or {})
        events = await engine.events(execution.id)
        timeline = await engine.timeline(execution.id)
    return execution, events, timeline


def types(events: list[Any]) -> list[str]:
    return [e.type for e in events]


async def test_steps_run_in_order_and_see_the_context(tmp_path: Path) -> None:
    ex, events, timeline = await run(tmp_path, """
pipelines:
  p:
    steps:
      - {name: a, type: step.set, config: {values: {x: "{{ .n + 1 }}", who: "{{ .meta.pipeline }}"}}}
      - {name: b, type: step.set, config: {values: {x: "{{ .x * 10 }}", first: "{{ .steps.a.x }}"}}}
      - {name: c, type: step.set, config: {values: {trig: "{{ .trigger.n }}"}}}
""", {"n": 1, "keep": "me"})
    assert ex.status == "completed"
    # current = trigger fields with every output shallow-merged over them, last writer wins
    assert ex.output == {"n": 1, "keep": "me", "x": 20, "who": "p", "first": 2, "trig": 1}
    assert [r.path for r in timeline] == ["a", "b", "c"]
    assert types(events)[0] == "execution.started" and types(events)[-1] == "execution.completed"
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    started = events[0].data
    assert started["trigger"] == {"type": "manual", "payload": {"n": 1, "keep": "me"}}
    assert started["definition_hash"]


async def test_response_step_stops_the_pipeline(tmp_path: Path) -> None:
    ex, _, timeline = await run(tmp_path, """
pipelines:
  p:
    steps:
      - {name: reply, type: step.json_response, config: {status: 201, body: {id: "{{ .id }}"}}}
      - {name: never, type: step.fail, config: {message: must not run}}
""", {"id": 7})
    assert ex.status == "completed"
    assert ex.response is not None and ex.response["status"] == 201
    assert ex.response["body"] == {"id": 7}
    assert [r.path for r in timeline] == ["reply"]


async def test_backward_jumps_loop_and_are_recorded(tmp_path: Path) -> None:
    ex, events, timeline = await run(tmp_path, """
pipelines:
  p:
    steps:
      - {name: init, type: step.set, config: {values: {i: 0}}}
      - {name: inc, type: step.set, config: {values: {i: "{{ .i + 1 }}"}}}
      - name: again
        type: step.conditional
        config: {if: "{{ .i < 3 }}", then: inc, else: done}
      - {name: skipped-by-route, type: step.fail, config: {message: unreachable}}
      - {name: done, type: step.set, config: {values: {final: "{{ .i }}"}}}
""")
    assert ex.status == "completed", ex.error
    assert ex.output["final"] == 3
    routed = [e.data for e in events if e.type == "step.routed"]
    assert [r["next_step"] for r in routed] == ["inc", "inc", "done"]
    assert [r.path for r in timeline].count("inc") == 3
    assert "skipped-by-route" not in [r.path for r in timeline]


async def test_jump_limit_fails_instead_of_looping_forever(tmp_path: Path) -> None:
    ex, _, _ = await run(tmp_path, """
pipelines:
  p:
    max_jumps: 5
    steps:
      - {name: spin, type: step.conditional, config: {if: "{{ true }}", then: spin}}
""")
    assert ex.status == "failed"
    assert ex.error is not None and "more than 5 jumps" in ex.error["message"]
    assert ex.error["step"] == "spin"


async def test_if_and_skip_if_use_the_one_truthiness_rule(tmp_path: Path) -> None:
    ex, events, timeline = await run(tmp_path, """
pipelines:
  p:
    steps:
      - {name: a, type: step.set, if: "{{ .flag }}", config: {values: {a: 1}}}
      - {name: b, type: step.set, skip_if: "{{ .empty }}", config: {values: {b: 1}}}
      - {name: c, type: step.set, if: ".count > 1", config: {values: {c: 1}}}
""", {"flag": "off", "empty": [], "count": 2})
    assert ex.status == "completed"
    skipped = {e.data["step"]: e.data["reason"] for e in events if e.type == "step.skipped"}
    assert skipped == {"a": "if"}
    assert "a" not in ex.output and ex.output["b"] == 1 and ex.output["c"] == 1
    assert {r.path: r.status for r in timeline} == {"a": "skipped", "b": "completed", "c": "completed"}


async def test_on_error_continue_stores_the_error_and_goes_on(tmp_path: Path) -> None:
    ex, events, timeline = await run(tmp_path, """
pipelines:
  p:
    steps:
      - {name: boom, type: step.fail, on_error: continue, config: {message: "bad {{ .n }}"}}
      - {name: after, type: step.set, config: {values: {saw: "{{ .steps.boom.error }}"}}}
""", {"n": 4})
    assert ex.status == "completed"
    assert ex.output["saw"] == "bad 4"
    assert {r.path: r.status for r in timeline} == {"boom": "failed", "after": "completed"}
    failed = [e.data for e in events if e.type == "step.failed"]
    assert failed[0]["error"]["message"] == "bad 4"


async def test_on_error_stop_fails_with_the_step_and_step_overrides_pipeline(tmp_path: Path) -> None:
    ex, _, timeline = await run(tmp_path, """
pipelines:
  p:
    on_error: continue
    steps:
      - {name: soft, type: step.fail, config: {message: ignored}}
      - {name: hard, type: step.fail, on_error: stop, config: {message: fatal, status: 422}}
      - {name: never, type: step.set, config: {values: {x: 1}}}
""")
    assert ex.status == "failed"
    assert ex.error == {"message": "fatal", "type": "fail", "status": 422, "step": "hard"}
    assert [r.path for r in timeline] == ["soft", "hard"]


async def test_step_timeout_cancels_the_running_step(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    ex, _, timeline = await run(tmp_path, """
pipelines:
  p:
    steps:
      - {name: slow, type: step.delay, timeout: 100ms, config: {duration: 30s}}
""")
    assert loop.time() - started < 10  # the 30 s delay was really interrupted
    assert ex.status == "failed"
    assert ex.error is not None and ex.error["type"] == "timeout"
    assert "timed out after 0.1s" in ex.error["message"]
    assert timeline[0].status == "failed"


async def test_pipeline_timeout(tmp_path: Path) -> None:
    ex, events, _ = await run(tmp_path, """
pipelines:
  p:
    timeout: 150ms
    steps:
      - {name: slow, type: step.delay, config: {duration: 30s}}
""")
    assert ex.status == "failed"
    assert ex.error == {"message": "pipeline 'p' timed out after 0.15s", "type": "timeout"}
    assert events[-1].type == "execution.failed"


async def test_retry_records_every_attempt_then_fails(tmp_path: Path) -> None:
    ex, events, timeline = await run(tmp_path, """
pipelines:
  p:
    steps:
      - name: flaky
        type: step.fail
        retry: {max_attempts: 3, initial_delay: 10ms, multiplier: 2, jitter: 0.5}
        config: {message: nope}
""")
    assert ex.status == "failed"
    assert [(r.attempt, r.status) for r in timeline] == [(1, "failed"), (2, "failed"), (3, "failed")]
    assert "retried" in timeline[1].flags
    retrying = [e.data for e in events if e.type == "step.retrying"]
    assert [r["attempt"] for r in retrying] == [2, 3]
    assert 5 <= retrying[0]["delay_ms"] <= 15 and 10 <= retrying[1]["delay_ms"] <= 30
    assert types(events).count("step.failed") == 1


async def test_retry_succeeds_against_a_flaky_http_server(tmp_path: Path, http_server: Any) -> None:
    ex, events, timeline = await run(tmp_path, f"""
pipelines:
  p:
    steps:
      - name: call
        type: step.http_call
        retry: {{max_attempts: 4, initial_delay: 10ms}}
        config: {{url: "{http_server.url("/flaky/retry-test")}?fail=2"}}
""")
    assert ex.status == "completed", ex.error
    assert ex.output["body"] == {"attempt": 3}
    assert [r.status for r in timeline] == ["failed", "failed", "completed"]
    assert types(events).count("step.retrying") == 2


SAGA = """
modules:
  - name: db
    type: database.sql
    config:
      url: "sqlite:///{db}"
      init: ["CREATE TABLE IF NOT EXISTS log (id INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT)"]
pipelines:
  p:
    on_error: compensate
    compensation:
      - {{name: notify, type: step.db_exec, config: {{database: db, query: "INSERT INTO log (what) VALUES ('notified ' || :step)", params: {{step: "{{{{ .compensating.step }}}}"}}}}}}
    steps:
      - name: first
        type: step.db_exec
        config: {{database: db, query: "INSERT INTO log (what) VALUES ('first')"}}
        compensate: {{name: undo-first, type: step.db_exec, config: {{database: db, query: "DELETE FROM log WHERE id = :id", params: {{id: "{{{{ .compensating.output.last_id }}}}"}}}}}}
      - name: second
        type: step.db_exec
        config: {{database: db, query: "INSERT INTO log (what) VALUES ('second')"}}
        compensate: {{name: undo-second, type: {undo_second}, config: {{database: db, query: "DELETE FROM log WHERE id = :id", params: {{id: "{{{{ .compensating.output.last_id }}}}"}}}}}}
      - {{name: boom, type: step.fail, config: {{message: out of stock}}}}
"""


async def test_saga_compensates_most_recent_first(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    ex, events, _ = await run(tmp_path, SAGA.format(db=db, undo_second="step.db_exec"))
    assert ex.status == "compensated"
    assert ex.error is not None and ex.error["step"] == "boom"
    order = [e.data["step"] for e in events if e.type == "step.compensating"]
    assert order == ["second", "first", "notify"]
    rows = sqlite3.connect(db).execute("SELECT what FROM log").fetchall()
    assert rows == [("notified boom",)]
    assert events[-1].type == "execution.compensated"


async def test_a_failing_compensation_is_recorded_and_the_others_still_run(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    broken = SAGA.format(db=db, undo_second="step.db_exec").replace(
        "DELETE FROM log WHERE id = :id\", params: {id: \"{{ .compensating.output.last_id }}\"}}}\n      - {name: boom",
        "DELETE FROM nowhere\"}}\n      - {name: boom")
    assert "nowhere" in broken
    ex, events, _ = await run(tmp_path, broken)
    assert ex.status == "failed"
    compensated = {e.data["step"]: e.data.get("error") for e in events if e.type == "step.compensated"}
    assert compensated["second"] and "nowhere" in compensated["second"]
    assert compensated["first"] is None and compensated["notify"] is None
    rows = sqlite3.connect(db).execute("SELECT what FROM log ORDER BY id").fetchall()
    assert rows == [("second",), ("notified boom",)]


async def test_failure_with_nothing_to_compensate_is_failed(tmp_path: Path) -> None:
    ex, _, _ = await run(tmp_path, """
pipelines:
  p:
    on_error: compensate
    steps:
      - {name: boom, type: step.fail, config: {message: early}}
""")
    assert ex.status == "failed"


IDEMPOTENT = """
modules:
  - name: db
    type: database.sql
    config:
      url: "sqlite:///{db}"
      init: ["CREATE TABLE IF NOT EXISTS charges (id INTEGER PRIMARY KEY AUTOINCREMENT, ref TEXT)"]
pipelines:
  p:
    steps:
      - {{name: wait, type: step.delay, config: {{duration: 20ms}}}}
      - name: charge
        type: step.db_exec
        idempotency_key: "charge-{{{{ .ref }}}}"
        idempotency_ttl: 1h
        config: {{database: db, query: "INSERT INTO charges (ref) VALUES (:ref)", params: {{ref: "{{{{ .ref }}}}"}}}}
"""


async def test_idempotency_key_runs_the_step_once_even_concurrently(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    async with Engine.open(IDEMPOTENT.format(db=db), store=_store(tmp_path)) as engine:
        runs = await asyncio.gather(*(engine.run("p", {"ref": "r-1"}) for _ in range(6)))
        later = await engine.run("p", {"ref": "r-1"})
        other = await engine.run("p", {"ref": "r-2"})
        hits = [
            [e for e in await engine.events(r.id) if e.type == "step.idempotent_hit"]
            for r in [*runs, later]
        ]
    assert all(r.status == "completed" for r in [*runs, later, other])
    assert sqlite3.connect(db).execute("SELECT ref FROM charges ORDER BY id").fetchall() == [
        ("r-1",), ("r-2",)]
    assert sum(1 for h in hits if not h) == 1  # exactly one execution ran the step
    assert {r.output["last_id"] for r in [*runs, later]} == {1}
    assert hits[-1][0].data["key"] == "charge-r-1"


async def test_cancel_reaches_the_running_step(tmp_path: Path) -> None:
    async with Engine.open("""
pipelines:
  p:
    steps:
      - {name: sleep, type: step.delay, config: {duration: 60s}}
""", store=_store(tmp_path)) as engine:
        task = asyncio.ensure_future(engine.run("p", {}))
        await wait_for_condition(lambda: engine.running, "the execution to start")
        (execution_id,) = engine.running
        await wait_for_condition(lambda: step_started(engine, execution_id), "the step to start")
        assert await engine.cancel(execution_id)
        ex = await asyncio.wait_for(task, 30)
        timeline = await engine.timeline(ex.id)
        events = await engine.events(ex.id)
    assert ex.status == "cancelled"
    assert timeline[0].status == "cancelled"
    assert events[-1].type == "execution.cancelled"
    assert events[-1].data["reason"] == "cancelled by request"


async def test_substeps_are_recorded_with_path_and_iteration(tmp_path: Path) -> None:
    ex, events, timeline = await run(tmp_path, """
pipelines:
  p:
    steps:
      - name: fan-out
        type: step.foreach
        config:
          collection: "{{ .items }}"
          steps:
            - {name: double, type: step.set, config: {values: {v: "{{ .item * 2 }}"}}}
            - name: inner
              type: step.foreach
              config:
                collection: "{{ [1, 2] }}"
                item_var: j
                steps:
                  - {name: leaf, type: step.set, config: {values: {w: "{{ .j }}"}}}
""", {"items": [1, 2, 3]})
    assert ex.status == "completed", ex.error
    doubles = [(r.path, r.iteration) for r in timeline if r.step == "double"]
    assert doubles == [("fan-out/double", 0), ("fan-out/double", 1), ("fan-out/double", 2)]
    leaves = {(r.path, r.iteration) for r in timeline if r.step == "leaf"}
    assert leaves == {(f"fan-out/inner[{i}]/leaf", j) for i in range(3) for j in range(2)}
    started = [e.data for e in events if e.type == "step.started" and e.data["step"] == "double"]
    assert [s["iteration"] for s in started] == [0, 1, 2]


async def test_workflow_call_runs_a_linked_child_execution(tmp_path: Path) -> None:
    async with Engine.open("""
pipelines:
  parent:
    steps:
      - {name: call, type: step.workflow_call, config: {workflow: child, input: {n: "{{ .n }}"}}}
  child:
    steps:
      - {name: out, type: step.pipeline_output, config: {values: {sq: "{{ .n * .n }}"}}}
""", store=_store(tmp_path)) as engine:
        parent = await engine.run("parent", {"n": 7})
        children = await engine.list_executions(pipeline="child")
    assert parent.status == "completed", parent.error
    assert len(children) == 1
    child = children[0]
    assert child.parent_id == parent.id and child.trigger_type == "workflow_call"
    assert child.output == {"sq": 49}
    assert parent.output["sq"] == 49


async def test_events_are_durable_when_run_returns(tmp_path: Path) -> None:
    async with Engine.open("""
pipelines:
  p:
    steps:
      - {name: a, type: step.set, config: {values: {x: 1}}}
""", store=_store(tmp_path)) as engine:
        ex = await engine.run("p", {})
        # Read through a second, independent connection before the engine closes.
        other = Store.open(_store(tmp_path))
        try:
            record = other.get_execution(ex.id)
            events = other.events(ex.id)
        finally:
            other.close()
    assert record is not None and record.status == "completed"
    assert record.event_count == len(events) == 4  # the step's input and output ride on its start and end


async def test_record_off_still_runs(tmp_path: Path) -> None:
    async with Engine.open("""
pipelines:
  p:
    steps:
      - {name: a, type: step.set, config: {values: {x: "{{ .n }}"}}}
""", store=None) as engine:
        ex = await engine.run("p", {"n": 5})
        with pytest.raises(Exception, match="records nothing"):
            await engine.events(ex.id)
    assert ex.output == {"n": 5, "x": 5}


async def test_unknown_pipeline_and_execution_are_clear_errors(tmp_path: Path) -> None:
    async with Engine.open("""
pipelines:
  p:
    steps:
      - {name: a, type: step.set, config: {values: {x: 1}}}
""", store=_store(tmp_path)) as engine:
        with pytest.raises(NotFoundError, match=r"no pipeline named 'q' \(pipelines: p\)"):
            await engine.run("q")
        with pytest.raises(NotFoundError, match="no execution 'nope'"):
            await engine.timeline("nope")


async def test_redacted_recording_hides_secrets_but_the_step_sees_them(tmp_path: Path) -> None:
    ex, events, _ = await run(tmp_path, """
pipelines:
  p:
    steps:
      - {name: a, type: step.set, config: {values: {echo: "{{ .password }}", mail: "{{ .email }}"}}}
""", {"password": "hunter2", "email": "ada@example.com"})
    assert ex.output["echo"] == "hunter2"  # the run itself is not altered
    text = str([e.data for e in events])
    assert "hunter2" not in text.replace("'echo': '[REDACTED]'", "") or "[REDACTED]" in text
    assert "ada@example.com" not in text
    assert events[0].data["trigger"]["payload"]["password"] == "[REDACTED]"


async def test_dlq_receives_failed_executions(tmp_path: Path) -> None:
    async with Engine.open("""
pipelines:
  p:
    dlq: {max_retries: 5}
    steps:
      - {name: boom, type: step.fail, config: {message: "cannot handle {{ .id }}"}}
""", store=_store(tmp_path)) as engine:
        ex = await engine.run("p", {"id": 9})
    rows = sqlite3.connect(tmp_path / "events.db").execute(
        "SELECT pipeline, step, execution_id, error, max_retries FROM dlq_entries").fetchall()
    assert rows == [("p", "boom", ex.id, "cannot handle 9", 5)]


async def test_a_skipped_substep_belongs_to_its_iteration(tmp_path: Path) -> None:
    yaml = """
pipelines:
  p:
    steps:
      - name: loop
        type: step.foreach
        config:
          collection: "{{ [1, 2, 3] }}"
          steps:
            - {name: odd-only, type: step.set, if: "{{ .item % 2 == 1 }}", config: {values: {x: 1}}}
"""
    execution, events, timeline = await run(tmp_path, yaml)
    assert execution.status == "completed"
    skipped = [(r.iteration, r.status) for r in timeline if r.step == "odd-only"]
    assert sorted(skipped) == [(0, "completed"), (1, "skipped"), (2, "completed")]
    assert [e.data["iteration"] for e in events if e.type == "step.skipped"] == [1]


FIVE_STEPS = """
pipelines:
  p:
    record: full
    steps:
      - {name: a, type: step.set, config: {values: {x: "{{ .n + 1 }}"}}}
      - {name: b, type: step.set, config: {values: {x: "{{ .x * 2 }}"}}}
      - {name: route, type: step.conditional, config: {if: "{{ .x > 1 }}", then: d, else: c}}
      - {name: c, type: step.set, config: {values: {low: true}}}
      - {name: d, type: step.set, config: {values: {high: true}}}
      - {name: e, type: step.pipeline_output, config: {values: {x: "{{ .x }}"}}}
"""


async def test_a_step_records_its_input_with_its_start_and_its_output_with_its_end(
        tmp_path: Path) -> None:
    ex, events, timeline = await run(tmp_path, FIVE_STEPS, {"n": 1})
    assert ex.status == "completed" and ex.output == {"x": 4}
    assert [r.path for r in timeline] == ["a", "b", "route", "d", "e"]
    # Two events a step (step.input and step.output made it four), the route, start and end.
    assert types(events) == ["execution.started",
                             "step.started", "step.completed", "step.started", "step.completed",
                             "step.started", "step.routed", "step.completed",
                             "step.started", "step.completed", "step.started", "step.completed",
                             "execution.completed"]
    started = {e.data["path"]: e for e in events if e.type == "step.started"}
    completed = {e.data["path"]: e.data for e in events if e.type == "step.completed"}
    assert started["a"].data["input"] == {"values": {"x": 2}}
    assert started["b"].data["input"] == {"values": {"x": 4}}
    assert completed["a"]["output"] == {"x": 2} and completed["b"]["output"] == {"x": 4}
    assert completed["route"]["output"] == {"matched_value": True, "next_step": "d"}
    assert all(completed[p]["started_seq"] == started[p].seq for p in completed)
    routed = next(e for e in events if e.type == "step.routed")
    assert routed.seq == started["route"].seq + 1 and routed.data["started_seq"] == started["route"].seq
    assert not {"step.input", "step.output"} & set(types(events))


@pytest.mark.parametrize(("level", "email", "secret"), [
    ("full", "jane@example.com", "[REDACTED]"),
    ("redacted", "j***@example.com", "[REDACTED]"),
    ("metadata", "string", "string"),
])
async def test_the_recorded_input_and_output_follow_the_record_level(
        tmp_path: Path, level: str, email: str, secret: str) -> None:
    ex, events, _ = await run(tmp_path, f"""
pipelines:
  p:
    record: {level}
    steps:
      - {{name: a, type: step.set, config: {{values: {{email: "{{{{ .email }}}}", password: hunter2}}}}}}
""", {"email": "jane@example.com"})
    assert ex.status == "completed"
    started = next(e.data for e in events if e.type == "step.started")
    completed = next(e.data for e in events if e.type == "step.completed")
    assert started["input"] == {"values": {"email": email, "password": secret}}
    assert completed["output"] == {"email": email, "password": secret}


async def test_a_config_that_cannot_be_rendered_starts_without_input_then_fails(
        tmp_path: Path) -> None:
    ex, events, timeline = await run(tmp_path, """
pipelines:
  p:
    steps:
      - {name: a, type: step.set, config: {values: {x: "{{ error(\\"no such value\\") }}"}}}
""")
    assert ex.status == "failed"
    assert types(events) == ["execution.started", "step.started", "step.failed", "execution.failed"]
    assert "input" not in events[1].data
    assert events[2].data["started_seq"] == events[1].seq == timeline[0].seq
    assert timeline[0].status == "failed"
