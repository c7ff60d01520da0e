"""A trigger payload is stored once (executions.trigger_payload), not again in its event.

Checked on the real SQLite file and PostgreSQL: the raw ``execution.started`` row holds a
reference, reads give the payload back, and events written by older versions (payload
inline) read back as they are.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.api import Engine
from engine.store.store import Store

PIPELINE = """
pipelines:
  big:
    record: full
    steps:
      - {name: pick, type: step.set, config: {values: {id: "{{ .order.id }}"}}}
      - {name: out, type: step.pipeline_output, config: {values: {id: "{{ .id }}"}}}
"""


def payload(n: int) -> dict[str, Any]:
    return {"order": {"id": f"o-{n}", "lines": [{"sku": f"sku-{i}", "qty": i} for i in range(2000)]}}


def raw_started(db: Path, execution_id: str) -> dict[str, Any]:
    with sqlite3.connect(db) as conn:
        (data,) = conn.execute("SELECT data FROM execution_events WHERE execution_id = ? AND seq = 1",
                               (execution_id,)).fetchone()
    result: dict[str, Any] = orjson.loads(data)
    return result


async def test_the_payload_is_stored_once_and_read_back_whole(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    sent = payload(1)
    async with Engine.open(PIPELINE, store=f"sqlite:///{db}") as engine:
        execution = await engine.run("big", sent)
        assert execution.status == "completed"
        events = await engine.events(execution.id)
    assert events[0].data["trigger"] == {"type": "manual", "payload": sent}
    row = raw_started(db, execution.id)
    assert row["trigger"] == {"type": "manual", "payload_ref": "execution"}
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT sum(length(data)) FROM execution_events").fetchone()[0]
        (row_payload,) = conn.execute("SELECT trigger_payload FROM executions").fetchone()
    size = len(orjson.dumps(sent))
    assert orjson.loads(row_payload) == sent
    assert stored < size / 10  # the events hold no second copy


async def test_events_written_with_the_payload_inline_read_back_as_they_are(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    async with Engine.open(PIPELINE, store=f"sqlite:///{db}") as engine:
        execution = await engine.run("big", payload(2))
    old = {"pipeline": "big", "trigger": {"type": "manual", "payload": {"as": "written then"}},
           "definition_hash": "h"}
    with sqlite3.connect(db) as conn:  # as a version before the reference wrote it
        conn.execute("UPDATE execution_events SET data = ? WHERE execution_id = ? AND seq = 1",
                     (orjson.dumps(old).decode(), execution.id))
    with Store.open(f"sqlite:///{db}") as store:
        assert store.events(execution.id)[0].data == old


@pytest.mark.postgres
async def test_postgres_stores_the_payload_once(pg_url: str) -> None:
    import psycopg

    sent = payload(3)
    async with Engine.open(PIPELINE, store=pg_url) as engine:
        execution = await engine.run("big", sent)
        assert (await engine.events(execution.id))[0].data["trigger"]["payload"] == sent
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT data FROM execution_events WHERE execution_id = %s AND seq = 1",
                           (execution.id,)).fetchone()
    assert row is not None
    assert orjson.loads(row[0])["trigger"] == {"type": "manual", "payload_ref": "execution"}
