"""The PostgreSQL CDC source against the machine's PostgreSQL (logical decoding, pgoutput):
each test has its own database, slot and publication, and drops its slots at the end."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from engine.connectors.pgoutput import parse_lsn
from engine.service.local import LocalService
from engine.service.models import ExecutionFilter, ExecutionSummary
from tests.connectors.pg_cdc_support import CdcDatabase, cdc_db, pipeline_file  # noqa: F401
from tests.waiting import wait_for_condition

pytestmark = pytest.mark.postgres

ITEMS = """
CREATE TABLE items (
  id int PRIMARY KEY, name text, price numeric(10, 2), active boolean, meta jsonb,
  seen timestamptz, ref uuid, ratio double precision, big text);
ALTER TABLE items ALTER COLUMN big SET STORAGE EXTERNAL;
"""


async def _open(tmp_path: Path, text: str, store: str | None = None) -> LocalService:
    file = tmp_path / "cdc.yaml"
    file.write_text(text)
    return await LocalService.open([file], store=store or f"sqlite:///{tmp_path / 'store.db'}")


async def _completed(service: LocalService, count: int) -> list[ExecutionSummary]:
    """Wait for ``count`` completed executions; return them oldest first, in full."""
    async def probe() -> list[ExecutionSummary] | None:
        page = await service.list_executions(ExecutionFilter(pipeline="on_change", limit=1000))
        done = [e for e in page.items if e.status == "completed"]
        return done if len(done) >= count else None
    try:
        found = await wait_for_condition(probe, f"{count} completed executions", timeout=60)
    except AssertionError as exc:  # say what the source saw
        raise AssertionError(f"{exc}; sources: {await service.list_sources()}") from None
    full = [await service.get_execution(e.id) for e in found]
    return sorted(full, key=lambda e: (parse_lsn(e.trigger_payload["data"]["lsn"]),
                                       e.trigger_payload["data"]["index"]))


async def _slot_made(db: CdcDatabase) -> None:
    await wait_for_condition(lambda: db.slot in db.slots(), "the source to make its slot")


async def test_insert_update_delete_carry_before_and_after(
        tmp_path: Path, cdc_db: CdcDatabase, store_url: str) -> None:  # noqa: F811
    db = cdc_db
    db.sql(ITEMS)
    db.sql("ALTER TABLE items REPLICA IDENTITY FULL")
    service = await _open(tmp_path, pipeline_file(db), store_url)
    try:
        await service.start_source("changes")
        await _slot_made(db)
        db.sql("INSERT INTO items VALUES (1, 'lamp', 12.50, true, '{\"tags\": [\"a\"]}', "
               "'2026-05-01 10:00:00.25+02', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 0.5, "
               "NULL)")
        db.sql("UPDATE items SET name = 'desk lamp', price = 13 WHERE id = 1")
        db.sql("DELETE FROM items WHERE id = 1")
        runs = await _completed(service, 3)
    finally:
        await service.close()
    events = [r.trigger_payload for r in runs]
    assert [e["type"] for e in events] == ["pg.public.items.insert", "pg.public.items.update",
                                           "pg.public.items.delete"]
    assert [e["subject"] for e in events] == ["1", "1", "1"]
    assert [r.output for r in runs] == [{"op": "insert"}, {"op": "update"}, {"op": "delete"}]
    inserted = {"id": 1, "name": "lamp", "price": 12.5, "active": True,
                "meta": {"tags": ["a"]}, "seen": "2026-05-01T08:00:00.250000Z",
                "ref": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "ratio": 0.5, "big": None}
    insert, update, delete = (e["data"] for e in events)
    assert (insert["before"], insert["after"]) == (None, inserted)
    assert update["before"] == inserted  # REPLICA IDENTITY FULL: the whole old row
    assert update["after"] == {**inserted, "name": "desk lamp", "price": 13}
    assert (delete["before"], delete["after"]) == ({**inserted, "name": "desk lamp",
                                                   "price": 13}, None)
    for data in (insert, update, delete):
        assert (data["schema"], data["table"]) == ("public", "items")
        assert data["commit_time"].endswith("Z")
    # The id is the commit's LSN and the change's place in its transaction.
    assert [e["id"] for e in events] == [f"{d['lsn']}:0" for d in (insert, update, delete)]
    assert len({d["lsn"] for d in (insert, update, delete)}) == 3


async def test_key_only_before_and_unchanged_toast(tmp_path: Path,
                                                    cdc_db: CdcDatabase) -> None:  # noqa: F811
    """Default replica identity: a delete carries only the key; an update that leaves a
    TOASTed value alone says so instead of inventing it. Changes of one transaction share
    its LSN and are numbered in order."""
    db = cdc_db
    db.sql(ITEMS)
    service = await _open(tmp_path, pipeline_file(db))
    try:
        await service.start_source("changes")
        await _slot_made(db)
        db.sql("BEGIN; INSERT INTO items (id, name, big) SELECT 7, 'big', "
               "string_agg(md5(i::text), '') FROM generate_series(1, 400) i; "
               "INSERT INTO items (id, name) VALUES (8, 'small'); COMMIT")
        db.sql("UPDATE items SET name = 'bigger' WHERE id = 7")
        db.sql("DELETE FROM items WHERE id = 8")
        runs = await _completed(service, 4)
    finally:
        await service.close()
    first, second, update, delete = (r.trigger_payload for r in runs)
    assert first["data"]["lsn"] == second["data"]["lsn"]
    assert (first["id"].split(":")[1], second["id"].split(":")[1]) == ("0", "1")
    assert len(first["data"]["after"]["big"]) == 400 * 32
    assert update["data"]["before"] is None  # default identity, key unchanged: no old row
    assert "big" not in update["data"]["after"]
    assert update["data"]["unchanged_toast"] == ["big"]
    assert update["data"]["after"]["name"] == "bigger"
    assert delete["data"]["before"] == {"id": 8}
    assert delete["subject"] == "8"


async def test_snapshot_mode_reads_the_rows_then_the_stream(tmp_path: Path,
                                                            cdc_db: CdcDatabase) -> None:  # noqa: F811
    db = cdc_db
    db.sql(ITEMS)
    db.sql("INSERT INTO items (id, name, price) SELECT i, 'n' || i, i * 1.5 "
           "FROM generate_series(1, 25) i")
    service = await _open(tmp_path, pipeline_file(db, mode="snapshot", batch_size=10))
    try:
        await service.start_source("changes")
        snapshot = await _completed(service, 25)
        await _slot_made(db)  # made only once the snapshot's rows are all taken in
        db.sql("INSERT INTO items (id, name) VALUES (26, 'after')")
        runs = await _completed(service, 26)
        slots = db.slots()
    finally:
        await service.close()
    rows = sorted((r.trigger_payload for r in snapshot), key=lambda e: int(e["subject"]))
    assert [e["subject"] for e in rows] == [str(i) for i in range(1, 26)]
    assert {e["type"] for e in rows} == {"pg.public.items.snapshot"}
    assert rows[3]["data"]["after"] == {"id": 4, "name": "n4", "price": 6, "active": None,
                                        "meta": None, "seen": None, "ref": None,
                                        "ratio": None, "big": None}
    point = rows[0]["data"]["lsn"]
    assert rows[0]["id"] == f"snapshot:{point}:public.items:1"
    last = max(runs, key=lambda r: r.started_at).trigger_payload
    assert (last["type"], last["subject"]) == ("pg.public.items.insert", "26")
    assert list(slots) == [db.slot] and not slots[db.slot]["temporary"]


async def test_stream_mode_takes_only_new_changes(tmp_path: Path,
                                                  cdc_db: CdcDatabase) -> None:  # noqa: F811
    db = cdc_db
    db.sql(ITEMS)
    db.sql("INSERT INTO items (id, name) VALUES (1, 'old'), (2, 'old')")
    service = await _open(tmp_path, pipeline_file(db, mode="stream"))
    try:
        await service.start_source("changes")
        await _slot_made(db)
        db.sql("INSERT INTO items (id, name) VALUES (3, 'new')")
        db.sql("TRUNCATE items")
        runs = await _completed(service, 2)

        async def acknowledged() -> Any:  # the slot's advance may end after the executions
            [info] = await service.list_sources()
            return info if info.acknowledged >= 2 else None
        info = await wait_for_condition(acknowledged, "both changes to be acknowledged")
    finally:
        await service.close()
    assert [r.trigger_payload["type"] for r in runs] == ["pg.public.items.insert",
                                                         "pg.public.items.truncate"]
    assert runs[0].trigger_payload["subject"] == "3"
    assert info.started == 2 and info.acknowledged == 2


class _Gate:
    """An HTTP server whose requests wait until the test opens the gate."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.arrived = threading.Event()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                gate.arrived.set()
                gate.open.wait(60)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.open.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gate() -> Iterator[_Gate]:
    opened = _Gate()
    yield opened
    opened.close()


async def test_a_change_is_confirmed_only_after_the_intake_took_it(
        tmp_path: Path, cdc_db: CdcDatabase, gate: _Gate) -> None:  # noqa: F811
    """With one execution allowed at a time and the first one held, the second change's
    delivery waits; stopping the source then leaves it unconfirmed in the slot, and the
    next start reads it again: one execution per change, none lost."""
    db = cdc_db
    db.sql(ITEMS)
    steps = ("      - {name: wait, type: step.http_call, config: {url: \"" + gate.url
             + "\", timeout: 60s}}\n"
             "      - {name: out, type: step.pipeline_output, config: {values: {op: \"{{ .data.op }}\"}}}\n")
    service = await _open(tmp_path, pipeline_file(db, steps=steps, max_in_flight=1))
    try:
        await service.start_source("changes")
        await _slot_made(db)
        db.sql("INSERT INTO items (id, name) VALUES (1, 'first')")
        await wait_for_condition(gate.arrived.is_set, "the first execution to reach the gate")
        first_done = db.wal_lsn()
        await wait_for_condition(lambda: db.confirmed_at_least(first_done),
                                 "the first change to be confirmed")
        db.sql("INSERT INTO items (id, name) VALUES (2, 'second')")
        runtime = service.sources.get("changes")
        await wait_for_condition(lambda: runtime.counters.delivered >= 2,
                                 "the second change to be handed to the intake")
        await service.stop_source("changes")
        assert db.pending_changes() == 1  # the second insert: still in the slot
        gate.open.set()
        await service.start_source("changes")
        runs = await _completed(service, 2)
        await wait_for_condition(lambda: db.pending_changes() == 0,
                                 "the second change to be confirmed")
    finally:
        await service.close()
    assert [r.trigger_payload["subject"] for r in runs] == ["1", "2"]


async def test_heartbeat_advances_an_idle_slot_and_lag_is_reported(
        tmp_path: Path, cdc_db: CdcDatabase) -> None:  # noqa: F811
    """WAL written by a table outside the publication shows as lag (bytes), and the
    heartbeat moves the slot past it though no change of ours came."""
    db = cdc_db
    db.sql(ITEMS)
    db.sql("CREATE TABLE other (id serial PRIMARY KEY, pad text)")
    service = await _open(tmp_path, pipeline_file(db, heartbeat_seconds=0.3))
    try:
        await service.start_source("changes")
        await _slot_made(db)
        db.sql("INSERT INTO other (pad) SELECT repeat('x', 500) FROM generate_series(1, 2000)")
        written = db.wal_lsn()
        await wait_for_condition(lambda: db.confirmed_at_least(written),
                                 "the heartbeat to carry the slot past the unrelated WAL")

        async def lag_reported() -> tuple[float] | None:  # a tuple: a lag of 0 is an answer
            [info] = await service.list_sources()
            return (info.lag,) if info.lag is not None and info.lag < 1_000_000 else None
        [lag] = await wait_for_condition(lag_reported, "a small lag after the heartbeat")
        assert lag >= 0
        [info] = await service.list_sources()
        assert info.lag_unit == "bytes of WAL" and info.started == 0
    finally:
        await service.close()


async def test_lag_grows_while_the_slot_is_held_back(tmp_path: Path,
                                                     cdc_db: CdcDatabase) -> None:  # noqa: F811
    db = cdc_db
    db.sql(ITEMS)
    db.sql("CREATE TABLE other (id serial PRIMARY KEY, pad text)")
    service = await _open(tmp_path, pipeline_file(db, heartbeat_seconds=3600))
    try:
        await service.start_source("changes")
        await _slot_made(db)
        db.sql("INSERT INTO other (pad) SELECT repeat('x', 500) FROM generate_series(1, 2000)")

        async def lag() -> float | None:
            [info] = await service.list_sources()
            return info.lag if info.lag is not None and info.lag > 1_000_000 else None
        assert await wait_for_condition(lag, "the lag to show the unrelated WAL") > 1_000_000
    finally:
        await service.close()


async def test_a_missing_publication_without_tables_is_a_clear_error(
        tmp_path: Path, cdc_db: CdcDatabase) -> None:  # noqa: F811
    db = cdc_db
    service = await _open(tmp_path, pipeline_file(db, tables=[]))
    try:
        await service.start_source("changes")

        async def failing() -> str | None:
            [info] = await service.list_sources()
            return info.last_error
        error = await wait_for_condition(failing, "the source to report its error")
    finally:
        await service.close()
    assert f"the publication {db.publication!r} does not exist" in error
    assert "tables" in error
    assert not db.slots()


async def test_two_services_on_one_pg_store_take_turns_on_the_slot(
        tmp_path: Path, cdc_db: CdcDatabase, pg_store_url: str) -> None:  # noqa: F811
    """The slot's lock: a second service sharing the PostgreSQL store waits while the first
    reads; each change still starts one execution."""
    db = cdc_db
    db.sql(ITEMS)
    text = pipeline_file(db)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = await _open(tmp_path / "a", text, pg_store_url)
    second = await _open(tmp_path / "b", text, pg_store_url)
    try:
        await first.start_source("changes")
        await _slot_made(db)
        await second.start_source("changes")
        db.sql("INSERT INTO items (id, name) SELECT i, 'x' FROM generate_series(1, 5) i")
        await _completed(first, 5)
        assert second.sources.get("changes").counters.delivered == 0  # waiting on the lock
        await first.stop_source("changes")
        db.sql("INSERT INTO items (id, name) VALUES (6, 'y')")
        await wait_for_condition(lambda: second.sources.get("changes").counters.started == 1,
                                 "the second service to take over the slot")
        runs = await _completed(second, 6)
    finally:
        await asyncio.gather(first.close(), second.close())
    assert sorted(int(r.trigger_payload["subject"]) for r in runs) == [1, 2, 3, 4, 5, 6]


async def test_a_snapshot_cut_short_leaves_no_slot_and_is_taken_again(
        tmp_path: Path, cdc_db: CdcDatabase, gate: _Gate) -> None:  # noqa: F811
    """The named slot appears only once every snapshot row was taken in: stopped halfway,
    the source leaves no slot (its temporary one dies with its connection), and the next
    start snapshots again at a new LSN: every row at least once, nothing lost."""
    db = cdc_db
    db.sql(ITEMS)
    db.sql("INSERT INTO items (id, name) SELECT i, 'n' || i FROM generate_series(1, 5) i")
    steps = ("      - {name: wait, type: step.http_call, config: {url: \"" + gate.url
             + "\", timeout: 60s}}\n"
             "      - {name: out, type: step.pipeline_output, config: {values: {op: \"{{ .data.op }}\"}}}\n")
    service = await _open(tmp_path, pipeline_file(db, mode="snapshot", steps=steps,
                                                  batch_size=1, max_in_flight=1))
    try:
        await service.start_source("changes")
        await wait_for_condition(gate.arrived.is_set, "the first row's execution to start")
        runtime = service.sources.get("changes")
        await wait_for_condition(lambda: runtime.counters.delivered >= 2,
                                 "the second row to wait for the intake")
        slots = db.slots()
        assert db.slot not in slots
        assert [s["temporary"] for s in slots.values()] == [True]
        await service.stop_source("changes")
        await wait_for_condition(lambda: not db.slots(), "the temporary slot to go")
        gate.open.set()
        await service.start_source("changes")
        runs = await _completed(service, 6)  # row 1 of the first snapshot, then all five
        await _slot_made(db)
    finally:
        await service.close()
    events = [r.trigger_payload for r in runs]
    points = sorted({e["data"]["lsn"] for e in events}, key=parse_lsn)
    assert len(points) == 2
    second = sorted(int(e["subject"]) for e in events if e["data"]["lsn"] == points[1])
    assert second == [1, 2, 3, 4, 5]
    assert [e["subject"] for e in events if e["data"]["lsn"] == points[0]] == ["1"]


async def test_someone_elses_lone_message_is_stepped_over(tmp_path: Path,
                                                         cdc_db: CdcDatabase) -> None:  # noqa: F811
    """A non-transactional logical message (another tool's) carries nothing to deliver; the
    slot is confirmed past it, so it is not handed out again on every look."""
    db = cdc_db
    db.sql(ITEMS)
    service = await _open(tmp_path, pipeline_file(db, heartbeat_seconds=3600))
    try:
        await service.start_source("changes")
        await _slot_made(db)
        [(lsn,)] = db.sql("SELECT pg_logical_emit_message(false, 'someone.else', 'hi')::text")
        await wait_for_condition(lambda: db.confirmed_at_least(lsn), "the slot to reach it")
        await wait_for_condition(lambda: db.peek_rows() == 0, "the slot to be past it")
        [info] = await service.list_sources()
        assert (info.delivered, info.last_error) == (0, None)
    finally:
        await service.close()
