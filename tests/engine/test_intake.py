"""The store's side of taking events in (engine/store/intake.py), on SQLite and PostgreSQL:
one dedup row per event, written with its start or its DLQ entry; redeliveries start
nothing; an interrupted execution is taken over by exactly one claimant."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from engine.store import intake
from engine.store.records import ExecutionRecord
from engine.store.store import Store


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url) as opened:
        yield opened


def executions(store: Store) -> list[ExecutionRecord]:
    return store.list_executions(limit=1000)[0]


def admission(event_id: str, source: str = "orders") -> intake.Admission:
    envelope = {"specversion": "1.0", "id": event_id, "source": "test", "type": "t",
                "data": {"email": "a@example.com"}}
    return intake.Admission(source, event_id, "t", "handle", uuid.uuid4().hex, envelope,
                            {**envelope, "data": {"email": "***"}}, "hash")


def letter(event_id: str) -> intake.DeadLetter:
    return intake.DeadLetter("orders", event_id, "t", "handle", {"id": event_id}, "bad data",
                             "schema_violation")


def test_new_events_start_executions_and_redeliveries_start_nothing(store: Store) -> None:
    first = [admission("e1"), admission("e2")]
    started, _ = intake.take(store, "default", first)
    assert [t.new for t in started] == [True, True]
    rows = {r.id: r for r in executions(store)}
    assert set(rows) == {a.execution_id for a in first}
    assert rows[first[0].execution_id].status == "running"
    # the execution's row holds the trigger as recorded (redacted); the dedup row the envelope
    assert rows[first[0].execution_id].trigger_payload["data"] == {"email": "***"}

    again = [admission("e1"), admission("e3")]
    started, _ = intake.take(store, "default", again)
    assert [t.new for t in started] == [False, True]
    assert started[0].execution_id == first[0].execution_id  # what it started the first time
    assert len(executions(store)) == 3
    rows_by_id = intake.lookup(store, "default", "orders", ["e1", "e2", "e3"])
    assert rows_by_id["e1"].deliveries == 2 and rows_by_id["e2"].deliveries == 1


def test_an_id_twice_in_one_batch_starts_one_execution(store: Store) -> None:
    started, _ = intake.take(store, "default", [admission("same"), admission("same")])
    assert [t.new for t in started] == [True, False]
    assert len(executions(store)) == 1


def test_dedup_is_per_tenant_and_source(store: Store) -> None:
    intake.take(store, "default", [admission("e1")])
    assert intake.take(store, "acme", [admission("e1")])[0][0].new
    assert intake.take(store, "default", [admission("e1", source="other")])[0][0].new
    assert len(executions(store)) == 3


def test_dead_letters_are_written_once_with_their_dedup_row(store: Store) -> None:
    _, lettered = intake.take(store, "default", [], [letter("bad")])
    assert lettered[0].new and lettered[0].dlq_entry
    _, again = intake.take(store, "default", [], [letter("bad")])
    assert not again[0].new and again[0].dlq_entry == lettered[0].dlq_entry
    with store.read() as conn:
        entries = conn.exec_driver_sql("SELECT id, error, error_type FROM dlq_entries").all()
    assert [(e.id, e.error_type) for e in entries] == [(lettered[0].dlq_entry, "schema_violation")]
    assert executions(store) == []


def test_finish_drops_the_envelope_and_leaves_a_taken_over_row_alone(store: Store) -> None:
    a = admission("e1")
    intake.take(store, "default", [a])
    intake.finish(store, "default", [("orders", "e1", "another-execution")])
    assert intake.lookup(store, "default", "orders", ["e1"])["e1"].status == "started"
    intake.finish(store, "default", [("orders", "e1", a.execution_id)])
    row = intake.lookup(store, "default", "orders", ["e1"])["e1"]
    assert row.status == "done"
    with store.read() as conn:
        assert conn.exec_driver_sql("SELECT payload FROM source_events").scalar() is None


def test_an_interrupted_execution_is_claimed_by_exactly_one_rerun(store: Store) -> None:
    a = admission("e1")
    intake.take(store, "default", [a])
    assert intake.interrupted(store, "default", "orders") == []  # running: not ours to rerun
    with store.begin() as conn:
        conn.exec_driver_sql("UPDATE executions SET status = 'interrupted'")
    [found] = intake.interrupted(store, "default", "orders")
    assert found.execution_id == a.execution_id and found.envelope["data"]["email"] == "a@example.com"
    first, second = admission("e1"), admission("e1")
    assert intake.claim_rerun(store, found, first) is True
    assert intake.claim_rerun(store, found, second) is False  # lost the race: nothing written
    ids = {r.id for r in executions(store)}
    assert ids == {a.execution_id, first.execution_id}
    rerun = store.get_execution(first.execution_id)
    assert rerun is not None and rerun.replay_of == a.execution_id
    assert intake.interrupted(store, "default", "orders") == []


def test_recent_lists_newest_first_with_the_execution_status(store: Store) -> None:
    for i in range(5):
        intake.take(store, "default", [admission(f"e{i}")])
    rows = intake.recent(store, "default", "orders", limit=3)
    assert [r.event_id for r in rows] == ["e4", "e3", "e2"]
    assert all(r.execution_status == "running" for r in rows)
    assert intake.recent(store, "acme", "orders") == []


def test_an_event_whose_execution_ended_without_finish_is_settled(store: Store) -> None:
    """A process that died between an execution's end and its ``finish`` leaves the event
    started, envelope kept; the next look settles it (and leaves running ones alone)."""
    ended, running = admission("ended"), admission("running")
    intake.take(store, "default", [ended, running])
    with store.begin() as conn:
        conn.exec_driver_sql(f"UPDATE executions SET status = 'completed' "
                             f"WHERE id = '{ended.execution_id}'")
    assert intake.settle_ended(store, "default", "orders") == 1
    rows = intake.lookup(store, "default", "orders", ["ended", "running"])
    assert rows["ended"].status == "done" and rows["running"].status == "started"
    assert intake.settle_ended(store, "default", "orders") == 0
