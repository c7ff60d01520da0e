"""The PostgreSQL sink: new rows are COPYed, rows already written are upserted, and a row
wrongly taken for new changes nothing of what is stored (the upserts decide)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest

from engine.store.records import EventRecord, ExecutionRecord, StepRunRecord
from engine.store.sink_pg import PgSink
from engine.store.store import Store

pytestmark = pytest.mark.postgres


@pytest.fixture
def store(pg_store_url: str) -> Iterator[Store]:
    with Store.open(pg_store_url) as s:
        yield s


@pytest.fixture
def reader(pg_store_url: str) -> Iterator[Store]:
    """A second Store on the same database: sees only what was committed."""
    with Store.open(pg_store_url) as s:
        yield s


def _sink(store: Store) -> PgSink:
    sink = store.recorder._sink
    assert isinstance(sink, PgSink)
    return sink


async def test_an_execution_spanning_batches_ends_in_its_latest_state(
        store: Store, reader: Store) -> None:
    rec = store.recorder
    ex = ExecutionRecord(id="long", pipeline="p", status="running", started_at=1.0)
    first = StepRunRecord("long", "a", "a", "step.set", 2, started_at=1.0)
    rec.execution(ex)
    rec.step_run(first)
    rec.event(EventRecord("long", 1, "execution.started", {}, 1.0))
    rec.event(EventRecord("long", 2, "step.started", {"step": "a"}, 1.0))
    await rec.flush()
    assert "long" in _sink(store)._open  # written and unfinished: its next rows are upserts
    first.status, first.ended_at = "completed", 2.0
    second = StepRunRecord("long", "b", "b", "step.set", 4, started_at=2.0)  # new: COPYed
    rec.step_run(first)
    rec.step_run(second)
    rec.event(EventRecord("long", 3, "step.completed", {"step": "a"}, 2.0))
    rec.event(EventRecord("long", 4, "step.started", {"step": "b"}, 2.0))
    ex.event_count = 4
    rec.execution(ex)
    await rec.flush()
    assert [(r.path, r.status) for r in reader.timeline("long")] == [
        ("a", "completed"), ("b", "running")]
    second.status = "completed"
    ex.status, ex.event_count, ex.output = "completed", 5, {"done": True}
    rec.step_run(second)
    rec.event(EventRecord("long", 5, "execution.completed", {}, 3.0))
    rec.execution(ex)
    await rec.flush()
    got = reader.get_execution("long")
    assert got is not None and (got.status, got.event_count, got.output) == (
        "completed", 5, {"done": True})
    assert [(r.path, r.status) for r in reader.timeline("long")] == [
        ("a", "completed"), ("b", "completed")]
    assert reader.count_events("long") == 5 and rec.batches == 3
    assert "long" not in _sink(store)._open  # finished: forgotten


async def test_an_execution_another_writer_began_is_upserted(
        pg_store_url: str, store: Store, reader: Store) -> None:
    """This sink never wrote it, so takes its rows for new; the COPY fails on the key and
    the batch goes in as upserts, in one transaction, with nothing refused."""
    other = Store.open(pg_store_url)
    try:
        ex = ExecutionRecord(id="resumed", pipeline="p", status="running", started_at=1.0)
        run = StepRunRecord("resumed", "a", "a", "step.set", 2, started_at=1.0)
        other.recorder.execution(ex)
        other.recorder.step_run(run)
        other.recorder.event(EventRecord("resumed", 1, "execution.started", {}, 1.0))
        await other.recorder.flush()
    finally:
        other.close()
    rec = store.recorder
    run.status, run.ended_at, run.output_size = "completed", 2.0, 7
    ex.status, ex.event_count = "completed", 2
    rec.step_run(run)
    rec.execution(ex)
    rec.event(EventRecord("resumed", 2, "execution.completed", {}, 2.0))
    rec.execution(ExecutionRecord(id="fresh", pipeline="p", status="completed",
                                  started_at=1.0))  # same batch, genuinely new
    await rec.flush("resumed")
    assert rec.batches == 1
    got = reader.get_execution("resumed")
    assert got is not None and (got.status, got.event_count) == ("completed", 2)
    assert [(r.status, r.output_size) for r in reader.timeline("resumed")] == [("completed", 7)]
    assert reader.count_events("resumed") == 2
    assert reader.get_execution("fresh") is not None


async def test_values_the_copy_refuses_are_decided_by_the_upserts(
        store: Store, reader: Store) -> None:
    """A float where the column is an integer: COPY refuses the text "3.0", the upsert
    casts it, as the Core sink does; the batch is recorded."""
    rec = store.recorder
    ex = ExecutionRecord(id="odd", pipeline="p", status="completed", started_at=1.0,
                         event_count=cast(Any, 3.0))
    rec.execution(ex)
    rec.step_run(StepRunRecord("odd", "a", "a", "step.set", 2, status="completed",
                               output_size=cast(Any, 12.0)))
    await rec.flush("odd")
    got = reader.get_execution("odd")
    assert got is not None and got.event_count == 3
    assert [r.output_size for r in reader.timeline("odd")] == [12]


async def test_the_memo_of_unfinished_executions_is_bounded(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.store.sink_pg as sink_pg

    monkeypatch.setattr(sink_pg, "_MAX_OPEN", 3)
    rec = store.recorder
    for i in range(6):
        rec.execution(ExecutionRecord(id=f"r{i}", pipeline="p", status="running",
                                      started_at=1.0))
        await rec.flush()
    assert len(_sink(store)._open) <= 4
    for i in range(6):  # forgotten or not, each is updated in place
        rec.execution(ExecutionRecord(id=f"r{i}", pipeline="p", status="completed",
                                      started_at=1.0))
    await rec.flush()
    page, _ = store.list_executions(limit=10)
    assert sorted((r.id, r.status) for r in page) == [(f"r{i}", "completed") for i in range(6)]
