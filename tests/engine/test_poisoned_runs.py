"""One bad run never damages another: values no store can hold are escaped the same way on
SQLite and PostgreSQL, and rows a store still refuses fail only their own execution.

Runs go through the Python embedding API (``Engine``) on a real SQLite file and the real
PostgreSQL; what was recorded is read back through a second store on the same database.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from engine.api import Engine
from engine.steps.base import Registry, StepType, default_registry
from engine.store.codec import MAX_DEPTH, dumps
from engine.store.recorder import ExecutionRefused
from engine.store.records import EventRecord, ExecutionRecord, StepRunRecord
from engine.store.store import Store

PIPELINE = """
pipelines:
  echo:
    record: full
    steps:
      - {name: first, type: step.set, config: {values: {copy: "{{ .data }}"}}}
      - {name: wait, type: step.delay, config: {duration: 5ms}}
      - {name: last, type: step.pipeline_output, config: {values: {n: "{{ .n }}", copy: "{{ .copy }}"}}}
"""

RUNS = 16
POISONED = 7


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


def _depth(value: Any) -> int:
    depth = 0
    while isinstance(value, list):
        value, depth = value[0], depth + 1
    return depth


# name -> (what the run gets in .data, what the store must give back, the same on both stores)
POISONS: dict[str, tuple[Any, Any]] = {
    "lone surrogate in a nested value": ({"a": [{"b": "x\ud800y"}]}, {"a": [{"b": "x\ufffdy"}]}),
    "lone surrogate in a nested key": ({"a": [{"k\udfff": 1}]}, {"a": [{"k\ufffd": 1}]}),
    "surrogate pair": ({"a": "\ud83d\ude00"}, {"a": "\U0001f600"}),
    "NUL in a nested value": ({"a": {"b": ["x\x00y"]}}, {"a": {"b": ["x\ufffdy"]}}),
    "NUL in a nested key": ({"a": {"k\x00": True}}, {"a": {"k\ufffd": True}}),
    "non-finite floats": ({"a": [math.nan, math.inf, -math.inf, 1.5]}, {"a": [None, None, None, 1.5]}),
    "integer beyond 64 bits": ({"a": -(2**100)}, {"a": -(2**100)}),
    "integer beyond what Python prints": ({"a": 10**5000}, {"a": "[an integer of about 5001 digits]"}),
}


def _check_complete(reader: Store, execution_id: str) -> ExecutionRecord:
    """The execution is recorded whole: its row, its events 1..n without a gap, its steps."""
    record = reader.get_execution(execution_id)
    assert record is not None, f"execution {execution_id} is missing"
    events = reader.events(execution_id, limit=10_000)
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), execution_id
    assert record.event_count == len(events) and events[0].type == "execution.started"
    assert events[-1].type == "execution.completed" and record.status == "completed"
    assert [r.step for r in reader.timeline(execution_id)] == ["first", "wait", "last"]
    return record


async def _run_together(engine: Engine, poison: Any) -> list[Any]:
    inputs = [{"n": i, "data": {"ok": i}} for i in range(RUNS)]
    inputs[POISONED] = {"n": POISONED, "data": poison}
    return list(await asyncio.gather(*(engine.run("echo", x) for x in inputs)))


@pytest.mark.parametrize("case", list(POISONS))
async def test_a_poisoned_input_is_escaped_and_damages_no_other_run(case: str, store_url: str) -> None:
    poison, stored = POISONS[case]
    async with Engine.open(PIPELINE, store=store_url) as engine:
        results = await _run_together(engine, poison)
        # The runs started in one loop turn: their first rows went into the same batch.
        assert engine.store is not None and engine.store.recorder.batches < RUNS
    assert [r.status for r in results] == ["completed"] * RUNS
    with Store.open(store_url) as reader:
        for i, result in enumerate(results):
            record = _check_complete(reader, result.id)
            expected = stored if i == POISONED else {"ok": i}
            assert record.trigger_payload == {"n": i, "data": expected}
            assert record.output == {"n": i, "copy": expected}
            assert reader.events(result.id)[0].data["trigger"]["payload"]["data"] == expected


async def test_nesting_deeper_than_any_reader_takes_is_cut_the_same_on_both_stores(
        store_url: str) -> None:
    async with Engine.open(PIPELINE, store=store_url) as engine:
        results = await _run_together(engine, _deep(600))  # beyond orjson (254) and MAX_DEPTH
    assert [r.status for r in results] == ["completed"] * RUNS
    with Store.open(store_url) as reader:
        for result in results:
            _check_complete(reader, result.id)
        stored = reader.get_execution(results[POISONED].id)
        assert stored is not None
        data = stored.trigger_payload["data"]
        assert 0 < _depth(data) <= MAX_DEPTH
        cut = data
        while isinstance(cut, list):
            cut = cut[0]
        assert cut == f"[nested deeper than {MAX_DEPTH} levels]"


def test_the_codec_never_raises_and_writes_only_what_both_stores_hold() -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no")

    cyclic: list[Any] = []
    cyclic.append(cyclic)
    for value in [Unprintable(), {"k": Unprintable()}, {Unprintable(): 1}, cyclic, _deep(10_000),
                  {"\ud800": "\udc00\x00"}, 10**5000, {(1, "\ud800"): 1}]:
        text = dumps(value)
        text.encode("utf-8")  # no lone surrogate survives
        assert "\x00" not in text and "\\u0000" not in text and "NaN" not in text


# ---------------------------------------------------------------- rows a store still refuses


def _refused_type_registry() -> Registry:
    """The built-ins plus a plugin step that records an event whose *type* (a text column
    the codec does not escape) holds a lone surrogate: rows the store itself refuses."""
    registry = Registry()
    registry.steps.update(default_registry().steps)
    registry.modules.update(default_registry().modules)

    async def emit_odd(ctx: Any, config: dict[str, Any]) -> dict[str, Any]:
        if config.get("odd"):
            ctx.event("plugin.\ud800odd", {"note": "an event type no store can hold"})
        await asyncio.sleep(0.005)
        return {"emitted": bool(config.get("odd"))}

    registry.add_step(StepType(name="test.emit_odd", run=emit_odd, description="test plugin",
                               category="data", schema={"type": "object"}, output="emitted"))
    return registry


PLUGIN_PIPELINE = """
pipelines:
  odd:
    steps:
      - {name: before, type: step.set, config: {values: {x: 1}}}
      - {name: emit, type: test.emit_odd, config: {odd: "{{ .odd }}"}}
      - {name: after, type: step.delay, config: {duration: 5ms}}
      - {name: never, type: step.set, config: {values: {y: 2}}}
"""


async def test_rows_the_store_refuses_fail_only_their_own_execution(store_url: str) -> None:
    async with Engine.open(PLUGIN_PIPELINE, store=store_url,
                           registry=_refused_type_registry()) as engine:
        results = await asyncio.gather(*(engine.run("odd", {"odd": i == POISONED})
                                         for i in range(RUNS)))
    bad = results[POISONED]
    assert bad.status == "failed" and bad.error is not None and bad.error["type"] == "store"
    assert bad.id in bad.error["message"] and "refused" in bad.error["message"]
    assert [r.status for i, r in enumerate(results) if i != POISONED] == ["completed"] * (RUNS - 1)
    with Store.open(store_url) as reader:
        for i, result in enumerate(results):
            record = reader.get_execution(result.id)
            assert record is not None
            events = reader.events(result.id)
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            assert record.event_count == len(events)
            if i != POISONED:
                assert record.status == "completed" and events[-1].type == "execution.completed"
                continue
            # Closed as failed where its record stops; it ran no further step.
            assert record.status == "failed" and record.error == bad.error
            assert events[-1].type == "execution.failed" and events[-1].data["error"] == bad.error
            steps = reader.timeline(result.id)
            assert "never" not in [s.step for s in steps]
            assert all(s.status != "running" for s in steps)


async def test_a_refused_execution_is_reported_to_its_own_flush_only(store_url: str) -> None:
    """At the recorder: three executions share a batch, the middle one's rows are refused."""
    with Store.open(store_url) as store:
        recorder = store.recorder
        for eid in ("a", "bad", "c"):
            recorder.execution(ExecutionRecord(id=eid, pipeline="p", status="running",
                                               started_at=1.0, event_count=3))
            recorder.event(EventRecord(eid, 1, "execution.started", {"pipeline": "p"}, 1.0))
            recorder.step_run(StepRunRecord(eid, "s", "s", "step.set", 2, started_at=1.0))
            recorder.event(EventRecord(eid, 2, "step.started", {"step": "s"}, 1.0))
            recorder.event(EventRecord(eid, 3, "bad\ud800" if eid == "bad" else "log", {}, 1.0))
        await recorder.flush()  # no error: the others were recorded
        with pytest.raises(ExecutionRefused, match="refused the record of execution bad"):
            await recorder.flush("bad")
        await recorder.flush("a")
        # Later rows of the refused execution are dropped, not written after a gap.
        recorder.event(EventRecord("bad", 4, "log", {}, 2.0))
        await recorder.flush()
        assert recorder.refusal("bad") is not None and recorder.refusal("a") is None
        for eid in ("a", "c"):
            assert [e.type for e in store.events(eid)] == ["execution.started", "step.started", "log"]
            assert [s.status for s in store.timeline(eid)] == ["running"]
        assert [(e.seq, e.type) for e in store.events("bad")] == [(1, "execution.failed")]
        closed = store.get_execution("bad")
        assert closed is not None and closed.status == "failed" and closed.event_count == 1
        assert [s.status for s in store.timeline("bad")] == []
