"""The store: opening and migrating, queries, definitions, idempotency keys, DLQ entries."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select

from engine.errors import StoreError
from engine.store import models
from engine.store.records import EventRecord, ExecutionRecord, StepRunRecord
from engine.store.store import HEAD_REVISION, MIGRATIONS, Store


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database nothing was ever written to."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'new.db'}"
    return request.getfixturevalue("fresh_pg_url")()


@pytest.fixture
def store(store_url: str):
    with Store.open(store_url) as s:
        yield s


def _revision(store: Store) -> str | None:
    with store.read() as conn:
        return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def write(store: Store, *records: ExecutionRecord | StepRunRecord | EventRecord) -> None:
    """Hand records to the recorder and commit them (no event loop needed)."""
    for r in records:
        if isinstance(r, ExecutionRecord):
            store.recorder.execution(r)
        elif isinstance(r, StepRunRecord):
            store.recorder.step_run(r)
        else:
            store.recorder.event(r)
    store.recorder.flush_sync()


# ---------------------------------------------------------------------- opening, migrations


def test_open_creates_every_table_at_the_head_revision(empty_url: str) -> None:
    with Store.open(empty_url) as store:
        tables = set(inspect(store.sa_engine).get_table_names())
        assert set(models.Base.metadata.tables) <= tables
        assert _revision(store) == HEAD_REVISION


def test_opening_again_keeps_the_data_and_the_revision(empty_url: str) -> None:
    with Store.open(empty_url) as store:
        write(store, ExecutionRecord(id="e1", pipeline="p", status="completed", started_at=1.0))
    for _ in range(2):
        with Store.open(empty_url) as store:
            assert _revision(store) == HEAD_REVISION
            assert store.get_execution("e1") is not None


def test_head_revision_constant_matches_the_migration_scripts() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


def test_migrations_produce_exactly_the_models(empty_url: str) -> None:
    with Store.open(empty_url) as store, store.sa_engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, models.Base.metadata) == []


def test_a_store_from_a_newer_version_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    Store.open(url).close()
    with sqlite3.connect(tmp_path / "store.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StoreError, match="newer version"):
        Store.open(url)


def test_concurrent_first_opens_of_one_sqlite_file_all_succeed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def open_it() -> None:
        barrier.wait()
        try:
            Store.open(url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Store.open(url) as store:
        assert _revision(store) == HEAD_REVISION


@pytest.mark.postgres
def test_concurrent_first_opens_of_one_postgres_database_all_succeed(
        fresh_pg_url: Callable[[], str]) -> None:
    url = fresh_pg_url()
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def open_it() -> None:
        barrier.wait()
        try:
            Store.open(url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_sqlite_connections_use_wal_and_foreign_keys(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store, store.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0


def test_no_url_means_store_db_in_the_user_data_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    with Store.open() as store:
        assert store.dialect == "sqlite"
        assert store.url.endswith("/data/wfstudio/store.db")
    assert (tmp_path / "data" / "wfstudio" / "store.db").is_file()


def test_a_plain_path_opens_a_sqlite_file(tmp_path: Path) -> None:
    with Store.open(str(tmp_path / "plain.db")) as store:
        assert store.dialect == "sqlite"
    assert (tmp_path / "plain.db").is_file()


def test_in_memory_sqlite_works(tmp_path: Path) -> None:
    with Store.open("sqlite://") as store:
        write(store, ExecutionRecord(id="m", pipeline="p", status="running", started_at=1.0),
              EventRecord("m", 1, "execution.started", {"a": 1}, 1.0))
        assert store.events("m")[0].data == {"a": 1}


@pytest.mark.postgres
def test_postgresql_urls_run_on_psycopg3(pg_store_database: str) -> None:
    with Store.open(pg_store_database) as store:
        assert store.dialect == "postgresql"
        assert store.sa_engine.dialect.driver == "psycopg"
        assert store.url == pg_store_database


@pytest.mark.parametrize(("url", "message"), [
    ("mysql://u@h/db", "unsupported store URL"),
    ("postgresql+asyncpg://u@h/db", "psycopg 3"),
    ("sqlite:///{tmp}/no/such/dir/s.db", "directory exists"),
    ("postgresql://postgres:hunter2@127.0.0.1:1/db", "database server is running"),
])
def test_bad_or_unreachable_stores_raise_store_error(url: str, message: str,
                                                     tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=message) as info:
        Store.open(url.format(tmp=tmp_path))
    assert "hunter2" not in str(info.value)


def test_a_closed_store_says_so(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    store.close()
    store.close()  # twice is fine
    with pytest.raises(StoreError, match="closed"):
        store.get_execution("x")


# ---------------------------------------------------------------------- definitions


def test_definitions_are_saved_once_by_hash(store: Store) -> None:
    store.save_definition("h1", {"a.yaml": "pipelines: {}", "b.yaml": "x: 1"})
    store.save_definition("h1", {"a.yaml": "something else"})
    assert store.get_definition("h1") == {"a.yaml": "pipelines: {}", "b.yaml": "x: 1"}
    assert store.get_definition("nope") is None


# ---------------------------------------------------------------------- executions


def _execution(i: int, **kw: object) -> ExecutionRecord:
    values: dict[str, object] = dict(id=f"ex-{i:03d}", pipeline="orders", status="completed",
                                     started_at=1000.0 + i)
    values.update(kw)
    return ExecutionRecord(**values)  # type: ignore[arg-type]


def test_executions_round_trip_every_field(store: Store) -> None:
    rec = ExecutionRecord(
        id="full", pipeline="p", status="failed", trigger_type="http",
        trigger_payload={"n": [1, 2.5, None, "x"], "big": 10**30}, started_at=1700000000.125,
        ended_at=1700000001.5, duration_ms=1375.0, output={"ok": False},
        error={"message": "boom", "type": "http", "step": "s"}, definition_hash="abc",
        parent_id="parent", replay_of="orig", tenant="acme", event_count=7)
    write(store, rec)
    assert store.get_execution("full") == rec
    assert store.get_execution("missing") is None


def test_list_pages_newest_first_through_ties_without_gaps(store: Store) -> None:
    # Ten executions share one start time: the cursor must also order by id.
    recs = [_execution(i, started_at=5000.0 if i < 10 else 1000.0 + i) for i in range(25)]
    write(store, *recs)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page, cursor = store.list_executions(limit=4, cursor=cursor)
        seen += [r.id for r in page]
        pages += 1
        if cursor is None:
            break
    expected = sorted(recs, key=lambda r: (r.started_at, r.id), reverse=True)
    assert seen == [r.id for r in expected]
    assert pages == 7


def test_list_filters(store: Store) -> None:
    write(store,
          _execution(1, pipeline="orders", status="completed"),
          _execution(2, pipeline="orders", status="failed",
                     error={"message": "Card DECLINED 100%", "type": "x"}),
          _execution(3, pipeline="billing", status="failed", tenant="acme"),
          _execution(4, pipeline="billing_v2", status="running"),
          _execution(5, pipeline="orders", status="cancelled"))

    def ids(**kw: object) -> list[str]:
        return [r.id for r in store.list_executions(**kw)[0]]  # type: ignore[arg-type]

    assert ids(pipeline="orders") == ["ex-005", "ex-002", "ex-001"]
    assert ids(status="failed") == ["ex-003", "ex-002"]
    assert ids(status=["failed", "cancelled"]) == ["ex-005", "ex-003", "ex-002"]
    assert ids(pipeline="orders", status="failed") == ["ex-002"]
    assert ids(since=1002, until=1004) == ["ex-003", "ex-002"]
    assert ids(tenant="acme") == ["ex-003"]
    assert ids(text="declined") == ["ex-002"]  # the error, case-insensitively
    assert ids(text="100%") == ["ex-002"]  # % is a literal, not a wildcard
    assert ids(text="ing_") == ["ex-004"]  # so is _
    assert ids(text="EX-00") == ["ex-005", "ex-004", "ex-003", "ex-002", "ex-001"]
    assert ids(text="nothing-like-this") == []
    page, cursor = store.list_executions(pipeline="orders", limit=2)
    assert [r.id for r in page] == ["ex-005", "ex-002"]
    assert [r.id for r in store.list_executions(pipeline="orders", cursor=cursor)[0]] == [
        "ex-001"]


def test_a_bad_cursor_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="invalid cursor"):
        store.list_executions(cursor="not a cursor")


# ---------------------------------------------------------------------- timeline and events


def test_timeline_is_ordered_by_seq_with_flags(store: Store) -> None:
    runs = [
        StepRunRecord("t", "loop", "loop", "step.foreach", 2, status="completed"),
        StepRunRecord("t", "loop/item", "item", "step.set", 5, iteration=1, status="completed"),
        StepRunRecord("t", "loop/item", "item", "step.set", 3, iteration=0, status="failed",
                      error="bad", flags=["retried"]),
        StepRunRecord("t", "loop/item", "item", "step.set", 4, iteration=0, attempt=2,
                      status="completed", flags=["mocked", "patched"], output_size=42),
    ]
    write(store, *runs)
    write(store, StepRunRecord("other", "loop", "loop", "step.set", 1))
    timeline = store.timeline("t")
    assert [(r.seq, r.path, r.iteration, r.attempt) for r in timeline] == [
        (2, "loop", 0, 1), (3, "loop/item", 0, 1), (4, "loop/item", 0, 2), (5, "loop/item", 1, 1)]
    assert timeline[1].error == "bad" and timeline[1].flags == ["retried"]
    assert timeline[2] == runs[3]
    assert store.timeline("none") == []


def test_events_page_by_seq_and_filter_by_type(store: Store) -> None:
    kinds = ["execution.started"] + ["step.started", "step.completed"] * 5
    write(store, *(EventRecord("ev", i + 1, k, {"i": i + 1}, 10.0 + i)
                   for i, k in enumerate(kinds)))
    write(store, EventRecord("other", 1, "log", {}, 1.0))
    events = store.events("ev")
    assert [e.seq for e in events] == list(range(1, 12))
    assert events[0] == EventRecord("ev", 1, "execution.started", {"i": 1}, 10.0)
    assert [e.seq for e in store.events("ev", after_seq=8)] == [9, 10, 11]
    assert [e.seq for e in store.events("ev", after_seq=2, limit=3)] == [3, 4, 5]
    assert [e.seq for e in store.events("ev", types=["step.completed"])] == [3, 5, 7, 9, 11]
    assert [e.seq for e in store.events("ev", types="execution.started")] == [1]
    assert store.count_events() == 12
    assert store.count_events("ev") == 11


# ---------------------------------------------------------------------- idempotency


def test_idempotency_lifecycle(store: Store) -> None:
    now = 1000.0
    assert store.idem_lookup("p", "charge", "k1", now) == (False, None)
    assert store.idem_claim("p", "charge", "k1", "exec-a", now, 30) is True
    assert store.idem_claim("p", "charge", "k1", "exec-b", now + 1, 30) is False
    assert store.idem_claim("p", "charge", "k1", "exec-a", now + 1, 30) is True  # re-entrant
    assert store.idem_lookup("p", "charge", "k1", now + 1) == (False, None)  # still pending
    store.idem_complete("p", "charge", "k1", {"charged": 12.5}, now + 2, 60)
    assert store.idem_lookup("p", "charge", "k1", now + 3) == (True, {"charged": 12.5})
    assert store.idem_claim("p", "charge", "k1", "exec-c", now + 3, 30) is False
    # other pipeline, step or key: independent
    assert store.idem_lookup("p", "charge", "k2", now + 3) == (False, None)
    assert store.idem_lookup("q", "charge", "k1", now + 3) == (False, None)
    # the stored output expires with its TTL; then the key can be claimed again
    assert store.idem_lookup("p", "charge", "k1", now + 62) == (False, None)
    assert store.idem_claim("p", "charge", "k1", "exec-d", now + 62, 30) is True


def test_an_expired_claim_is_taken_over_and_release_frees_the_key(store: Store) -> None:
    assert store.idem_claim("p", "s", "k", "crashed", 100.0, 10) is True
    assert store.idem_claim("p", "s", "k", "other", 105.0, 10) is False
    assert store.idem_claim("p", "s", "k", "other", 111.0, 10) is True  # the lease ran out
    store.idem_release("p", "s", "k")
    assert store.idem_claim("p", "s", "k", "third", 112.0, 10) is True
    store.idem_complete("p", "s", "k", None, 113.0, 100)
    store.idem_release("p", "s", "k")  # a completed record is not released
    assert store.idem_lookup("p", "s", "k", 114.0) == (True, None)


def test_long_idempotency_keys_work(store: Store) -> None:
    key = "order:" + "x" * 5000
    assert store.idem_claim("p", "s", key, "o", 1.0, 10)
    assert store.idem_claim("p", "s", key + "y", "o", 1.0, 10) is True  # a different key
    store.idem_complete("p", "s", key, [1], 2.0, 10)
    assert store.idem_lookup("p", "s", key, 3.0) == (True, [1])
    assert store.idem_lookup("p", "s", key + "y", 3.0) == (False, None)


def _claim_race(stores: list[Store], key: str) -> list[bool]:
    """Every store claims ``key`` at the same moment, each from its own thread."""
    barrier = threading.Barrier(len(stores))
    results: list[bool] = []
    errors: list[BaseException] = []

    def claim(store: Store, owner: str) -> None:
        barrier.wait()
        try:
            results.append(store.idem_claim("p", "charge", key, owner, time.time(), 30))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(s, f"owner-{i}"))
               for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return results


def test_exactly_one_of_many_concurrent_claimants_wins(store_url: str) -> None:
    """Each thread has its own Store (as separate processes would) on one database."""
    stores = [Store.open(store_url) for _ in range(8)]
    try:
        for round_ in range(5):
            results = _claim_race(stores, f"key-{round_}")
            assert sorted(results) == [False] * (len(stores) - 1) + [True]
    finally:
        for s in stores:
            s.close()


# ---------------------------------------------------------------------- dead-letter queue


def test_dlq_add_writes_a_pending_entry(store: Store) -> None:
    entry_id = store.dlq_add("orders", "charge", "ex-1", {"order": 7}, "card declined",
                             "http", 5)
    t = models.dlq_entries
    with store.read() as conn:
        row = conn.execute(select(t).where(t.c.id == entry_id)).one()._mapping
    assert row["pipeline"] == "orders" and row["step"] == "charge"
    assert row["execution_id"] == "ex-1" and row["payload"] == {"order": 7}
    assert row["error"] == "card declined" and row["error_type"] == "http"
    assert row["status"] == "pending" and row["retry_count"] == 0 and row["max_retries"] == 5
    assert row["tenant"] == "default" and row["created"] == row["updated"] > 0
    assert store.dlq_add("orders", None, None, None, "x", None) != entry_id
