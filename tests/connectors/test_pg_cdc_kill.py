"""Kill test of the PostgreSQL CDC source: 2,000 inserted rows, ``wfstudio serve`` (SQLite
store file) SIGKILLed three times while it consumes the slot, started again: every change
has exactly one completed execution.

The slot and publication are made before the server starts, so the inserts wait in the
slot; their event ids are read from the slot (peeked: nothing consumed) with the source's
decoder, and each row's key is checked too, independently of the ids.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.connectors.pgoutput import Begin, Change, Commit, Decoder, lsn_text
from engine.store.store import Store
from tests.connectors.kill_harness import Server, assert_exactly_once, kill_and_count
from tests.connectors.pg_cdc_support import CdcDatabase, cdc_db, pipeline_file  # noqa: F401

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(900)]

ROWS = 2000
PER_TRANSACTION = 4


def _event_ids(db: CdcDatabase) -> list[str]:
    rows = db.sql("SELECT data FROM pg_logical_slot_peek_binary_changes(%s, NULL, NULL, "
                  "'proto_version', '1', 'publication_names', %s)", (db.slot, db.publication))
    decoder, ids, commit_lsn, index = Decoder(), [], 0, 0
    for (data,) in rows:
        message = decoder.decode(bytes(data))
        if isinstance(message, Begin):
            commit_lsn, index = message.final_lsn, 0
        elif isinstance(message, Change):
            ids.append(f"{lsn_text(commit_lsn)}:{index}")
            index += 1
        elif isinstance(message, Commit):
            assert message.commit_lsn == commit_lsn
    return ids


def _keys_per_completed_run(store: str) -> dict[int, int]:
    with Store.open(store) as opened, opened.read() as conn:
        payloads = conn.exec_driver_sql(
            "SELECT trigger_payload FROM executions WHERE trigger_type = 'event' "
            "AND status = 'completed'").all()
    counts: dict[int, int] = {}
    for (payload,) in payloads:
        envelope = json.loads(payload) if isinstance(payload, str) else payload
        key = int(envelope["data"]["after"]["id"])
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_every_change_has_exactly_one_completed_execution_across_kills(
        tmp_path: Path, cdc_db: CdcDatabase) -> None:  # noqa: F811
    db = cdc_db
    db.sql("CREATE TABLE items (id int PRIMARY KEY, name text)")
    db.sql(f"CREATE PUBLICATION {db.publication} FOR TABLE items")
    db.sql("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (db.slot,))
    import psycopg

    with psycopg.connect(db.dsn, autocommit=True) as conn:
        for first in range(1, ROWS + 1, PER_TRANSACTION):
            conn.execute("INSERT INTO items (id, name) SELECT i, 'row ' || i "
                         "FROM generate_series(%s::int, %s::int) i",
                         (first, first + PER_TRANSACTION - 1))
    event_ids = _event_ids(db)
    assert len(event_ids) == ROWS

    steps = ("      - {name: mark, type: step.set, config: {values: {row: \"{{ .data.after.id }}\"}}}\n"
             "      - {name: out, type: step.pipeline_output, config: {values: {row: \"{{ .row }}\"}}}\n")
    file = tmp_path / "cdc.yaml"
    file.write_text(pipeline_file(db, steps=steps, batch_size=100))
    store = f"sqlite:///{tmp_path / 'store.db'}"
    server = Server(file, store, tmp_path / "serve.log")
    try:
        counts = kill_and_count(server, event_ids, kills=3)
    finally:
        server.kill()
    assert_exactly_once(counts, event_ids)
    assert _keys_per_completed_run(store) == {key: 1 for key in range(1, ROWS + 1)}
    assert db.pending_changes() == 0  # everything taken in was confirmed to the slot
