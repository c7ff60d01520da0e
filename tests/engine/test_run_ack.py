"""The studio service's run and replay without waiting return only once the start is
committed: another connection to the store sees the execution at once (SQLite, PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text

from engine.service.local import LocalService
from engine.service.models import ReplayOptions, RunOptions
from engine.store.store import Store

PIPELINE = """
pipelines:
  slow:
    steps:
      - {name: wait, type: step.delay, config: {duration: 300ms}}
      - {name: done, type: step.set, config: {values: {ok: true}}}
"""


def _started(reader: Store, execution_id: str) -> bool:
    record = reader.get_execution(execution_id)
    events = reader.events(execution_id, limit=1)
    return (record is not None and record.status == "running"
            and [(e.seq, e.type) for e in events] == [(1, "execution.started")])


async def test_run_and_replay_without_waiting_answer_once_the_start_is_committed(
        store_url: str, tmp_path: Path) -> None:
    file = tmp_path / "slow.yaml"
    file.write_text(PIPELINE)
    async with await LocalService.open([file], store=store_url) as service:
        with Store.open(store_url) as reader:  # a second connection: sees commits only
            started = await service.run("slow", {"n": 1}, RunOptions(wait=False))
            assert started.status == "running" and _started(reader, started.execution_id)
            # Many at once share the commit; each is in the store when its answer comes.
            for answer in [await service.run("slow", {"n": i}, RunOptions(wait=False))
                           for i in range(5)]:
                assert _started(reader, answer.execution_id)
            finished = await service.run("slow", {"n": 9})
            replayed = await service.replay(finished.execution_id, ReplayOptions(wait=False))
            assert replayed.status == "running" and _started(reader, replayed.execution_id)


CALLER = """
pipelines:
  parent:
    steps:
      - {name: call, type: step.workflow_call, config: {workflow: child, mode: async}}
  child:
    steps:
      - {name: wait, type: step.delay, config: {duration: 50ms}}
"""


async def test_a_child_started_without_waiting_is_recorded_before_the_parent_names_it(
        store_url: str, tmp_path: Path) -> None:
    file = tmp_path / "calls.yaml"
    file.write_text(CALLER)
    async with await LocalService.open([file], store=store_url) as service:
        parent = await service.run("parent", {})
        assert parent.status == "completed", parent.error
    # Events reach the store in the order they are handed over: the child's start goes
    # first, so no commit can hold the parent's mention of the child without the child.
    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            child_id = conn.execute(text("SELECT id FROM executions WHERE parent_id = :p"),
                                    {"p": parent.execution_id}).scalar_one()
            child_start = conn.execute(text(
                "SELECT id FROM execution_events WHERE execution_id = :e AND type = 'execution.started'"),
                {"e": child_id}).scalar_one()
            parent_done = conn.execute(text(
                "SELECT id FROM execution_events WHERE execution_id = :e AND type = 'step.completed'"),
                {"e": parent.execution_id}).scalar_one()
    finally:
        engine.dispose()
    assert child_start < parent_done
