"""The built-in module types, used directly: they are plain classes with coroutine methods."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from jsonschema import Draft202012Validator

from engine.errors import StepError
from engine.modules import broker, cache, database, featureflags, http_client
from engine.modules.broker import MemoryBroker
from engine.modules.cache import MemoryCache
from engine.modules.database import SqlDatabase, json_safe, normalize_url
from engine.modules.featureflags import FeatureFlags
from engine.modules.http_client import HttpClient

# ---------------------------------------------------------------- registration


def test_every_module_type_has_a_valid_strict_schema() -> None:
    names = []
    for module in (database, cache, broker, http_client, featureflags):
        for module_type in module.MODULE_TYPES:
            names.append(module_type.name)
            Draft202012Validator.check_schema(module_type.schema)
            assert module_type.schema["additionalProperties"] is False
            assert module_type.description
    assert names == ["database.sql", "cache.memory", "broker.memory", "http.client",
                     "featureflags"]


def test_module_schemas_reject_unknown_keys() -> None:
    validator = Draft202012Validator(database.MODULE_TYPES[0].schema)
    assert not list(validator.iter_errors({"url": "sqlite://"}))
    assert list(validator.iter_errors({"url": "sqlite://", "pool": 3}))
    assert list(validator.iter_errors({}))  # url is required


# ---------------------------------------------------------------- database.sql


def test_plain_postgres_urls_use_psycopg3() -> None:
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"


def test_json_safe_values() -> None:
    from decimal import Decimal
    from uuid import UUID

    when = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)
    assert json_safe(when) == "2024-05-01T12:30:00+00:00"
    assert json_safe(dt.date(2024, 5, 1)) == "2024-05-01"
    assert json_safe(Decimal("12.50")) == 12.5
    assert json_safe(Decimal("12.00")) == 12 and isinstance(json_safe(Decimal("12.00")), int)
    assert json_safe(UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert json_safe(b"abc") == "abc"
    assert json_safe(b"\xff\x00") == "/wA="  # not UTF-8: base64
    assert json_safe({"a": [Decimal("1.5"), None]}) == {"a": [1.5, None]}


def test_database_without_url_is_a_config_error() -> None:
    with pytest.raises(StepError, match="needs a 'url'") as info:
        SqlDatabase("db", {})
    assert info.value.type == "config"


@dataclass
class Db:
    module: SqlDatabase
    table: str


@pytest.fixture(params=["sqlite", "postgres"])
async def db_case(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Db]:
    """The same tests against a SQLite file and the real PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/app.db"
        key = "INTEGER PRIMARY KEY AUTOINCREMENT"
    else:
        url = request.getfixturevalue("pg_url")
        key = "SERIAL PRIMARY KEY"
    table = f"items_{request.node.name.split('[')[0][-20:]}".replace("-", "_")
    module = SqlDatabase("db", {"url": url, "init": [
        f"DROP TABLE IF EXISTS {table}",
        f"CREATE TABLE {table} (id {key}, name TEXT NOT NULL, qty INTEGER, price NUMERIC(10,2))",
    ]})
    await module.start()
    try:
        yield Db(module, table)
    finally:
        await module.close()


async def test_query_and_execute_with_named_params(db_case: Db) -> None:
    db, t = db_case.module, db_case.table
    first = await db.execute(f"INSERT INTO {t}(name, qty, price) VALUES (:name, :qty, :price)",
                             {"name": "apple", "qty": 3, "price": 1.25})
    assert first["affected_rows"] == 1
    if db.dialect == "sqlite":
        assert first["last_id"] == 1
    else:
        assert first["last_id"] is None  # PostgreSQL: only with RETURNING
    await db.execute(f"INSERT INTO {t}(name, qty, price) VALUES (:name, :qty, :price)",
                     {"name": "pear", "qty": 5, "price": 2})
    rows = await db.query(f"SELECT name, qty, price FROM {t} WHERE qty >= :min ORDER BY id",
                          {"min": 3})
    assert rows == [{"name": "apple", "qty": 3, "price": 1.25},
                    {"name": "pear", "qty": 5, "price": 2}]
    updated = await db.execute(f"UPDATE {t} SET qty = qty + 1 WHERE qty < :limit", {"limit": 10})
    assert updated == {"affected_rows": 2, "last_id": None}


async def test_returning_gives_last_id_and_rows(db_case: Db) -> None:
    db, t = db_case.module, db_case.table
    await db.execute(f"INSERT INTO {t}(name) VALUES (:n)", {"n": "a"})
    out = await db.execute(f"INSERT INTO {t}(name) VALUES (:n) RETURNING id, name", {"n": "b"})
    assert out["last_id"] == 2
    assert out["rows"] == [{"id": 2, "name": "b"}]
    assert out["affected_rows"] == 1


async def test_param_values_never_become_sql(db_case: Db) -> None:
    db, t = db_case.module, db_case.table
    evil = f"x'); DROP TABLE {t}; --"
    await db.execute(f"INSERT INTO {t}(name) VALUES (:name)", {"name": evil})
    assert await db.query(f"SELECT name FROM {t}") == [{"name": evil}]


async def test_object_params_are_stored_as_json_text(db_case: Db) -> None:
    db, t = db_case.module, db_case.table
    await db.execute(f"INSERT INTO {t}(name) VALUES (:name)", {"name": {"a": 1}})
    rows = await db.query(f"SELECT name FROM {t}")
    assert rows == [{"name": '{"a": 1}'}]


async def test_missing_param_is_a_step_error_naming_the_database(db_case: Db) -> None:
    db, t = db_case.module, db_case.table
    with pytest.raises(StepError) as info:
        await db.query(f"SELECT * FROM {t} WHERE id = :id", {})
    assert info.value.type == "database"
    assert "database 'db'" in info.value.message
    assert "bind parameter 'id'" in info.value.message
    assert "Traceback" not in info.value.message and "sqlalche.me" not in info.value.message


async def test_invalid_sql_is_a_step_error_with_the_database_message(db_case: Db) -> None:
    db = db_case.module
    with pytest.raises(StepError) as info:
        await db.query("SELEC nothing", {})
    assert "database 'db'" in info.value.message
    assert "syntax error" in info.value.message
    assert "[SQL:" not in info.value.message


async def test_a_failed_statement_rolls_back(db_case: Db) -> None:
    db, t = db_case.module, db_case.table
    with pytest.raises(StepError):
        await db.execute(f"INSERT INTO {t}(name, qty) VALUES (NULL, :q)", {"q": 1})
    assert await db.query(f"SELECT COUNT(*) AS n FROM {t}") == [{"n": 0}]


async def test_init_runs_on_first_use_not_on_start(tmp_path: Path) -> None:
    path = tmp_path / "lazy.db"
    module = SqlDatabase("db", {"url": f"sqlite:///{path}",
                                "init": ["CREATE TABLE IF NOT EXISTS t (x INTEGER)"]})
    await module.start()
    assert not path.exists()  # opening an engine makes no connection
    assert await module.query("SELECT COUNT(*) AS n FROM t") == [{"n": 0}]
    assert path.exists()
    await module.close()


async def test_init_failure_names_the_module(tmp_path: Path) -> None:
    module = SqlDatabase("orders", {"url": f"sqlite:///{tmp_path}/x.db", "init": ["CREAT x"]})
    await module.start()
    with pytest.raises(StepError, match=r"database 'orders'.*init statement failed"):
        await module.query("SELECT 1 AS one")
    await module.close()


async def test_in_memory_sqlite_is_one_database_across_threads() -> None:
    module = SqlDatabase("mem", {"url": "sqlite://", "init": ["CREATE TABLE t (x INTEGER)"]})
    await module.start()
    await asyncio.gather(*(module.execute("INSERT INTO t VALUES (:x)", {"x": i})
                           for i in range(20)))
    assert await module.query("SELECT COUNT(*) AS n FROM t") == [{"n": 20}]
    await module.close()


async def test_sqlite_blob_and_list_params(tmp_path: Path) -> None:
    module = SqlDatabase("db", {"url": f"sqlite:///{tmp_path}/b.db",
                                "init": ["CREATE TABLE b (data BLOB, tags TEXT)"]})
    await module.execute("INSERT INTO b VALUES (:data, :tags)",
                         {"data": b"\x00\xff", "tags": ["a", "b"]})
    assert await module.query("SELECT data, tags FROM b") == [{"data": "AP8=",
                                                               "tags": '["a", "b"]'}]
    await module.close()


async def test_cancelling_a_sqlite_query_interrupts_it(tmp_path: Path) -> None:
    module = SqlDatabase("db", {"url": f"sqlite:///{tmp_path}/c.db",
                                "init": ["CREATE TABLE t (x INTEGER)"]})
    endless = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
               "SELECT COUNT(*) AS c FROM n, t")
    await module.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(module.query(endless), timeout=0.3)
    # A reader still running would hold its lock and make this write fail ("database is
    # locked"); it succeeds because the statement was interrupted.
    assert (await module.execute("INSERT INTO t VALUES (2)"))["affected_rows"] == 1
    await module.close()


@pytest.mark.postgres
async def test_cancelling_a_postgres_query_cancels_it_on_the_server(pg_url: str) -> None:
    module = SqlDatabase("pg", {"url": pg_url})
    marker = "wfs_cancel_probe"
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(module.query(f"SELECT pg_sleep(60) AS {marker}"), timeout=0.5)

    def still_running() -> int:
        with psycopg.connect(pg_url) as conn:
            row = conn.execute("SELECT COUNT(*) FROM pg_stat_activity WHERE state = 'active' "
                               "AND pid <> pg_backend_pid() AND query LIKE %s",
                               (f"%pg_sleep(60) AS {marker}%",)).fetchone()
            return int(row[0]) if row else 0

    assert await asyncio.to_thread(still_running) == 0
    assert await module.query("SELECT 1 AS one") == [{"one": 1}]
    await module.close()


@pytest.mark.postgres
async def test_postgres_types_become_json_safe(pg_url: str) -> None:
    module = SqlDatabase("pg", {"url": pg_url})
    rows = await module.query(
        "SELECT CAST('2024-05-01 12:30:00+00' AS timestamptz) AS ts, CAST(:p AS numeric) AS n, "
        "CAST('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11' AS uuid) AS id, "
        "CAST(:doc AS jsonb) AS doc, x.id AS pick FROM (SELECT 2 AS id) x "
        "WHERE x.id = ANY(:ids)",
        {"p": "19.99", "doc": {"k": [1, 2]}, "ids": [1, 2, 3]})
    assert len(rows) == 1
    row = rows[0]
    assert row["ts"].startswith("2024-05-01T12:30:00")
    assert row["n"] == 19.99
    assert row["id"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert row["doc"] == {"k": [1, 2]}
    assert row["pick"] == 2
    await module.close()


async def test_unreachable_postgres_is_a_step_error() -> None:
    module = SqlDatabase("remote", {"url": "postgresql://postgres@127.0.0.1:1/nowhere"})
    await module.start()  # cheap: no connection yet
    with pytest.raises(StepError, match="database 'remote'") as info:
        await module.query("SELECT 1")
    assert info.value.type == "database"
    await module.close()


# ---------------------------------------------------------------- cache.memory


class Clock:
    """A controllable time source handed to the cache (its constructor takes one)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_cache_get_set_delete_and_ttl() -> None:
    clock = Clock()
    c = MemoryCache("cache", {}, clock=clock)
    assert await c.get("k") == (False, None)
    await c.set("k", {"v": 1}, ttl=10)
    assert await c.get("k") == (True, {"v": 1})
    clock.now += 9.9
    assert (await c.get("k"))[0] is True
    clock.now += 0.2
    assert await c.get("k") == (False, None)
    await c.set("forever", 1)
    clock.now += 10**6
    assert await c.get("forever") == (True, 1)
    assert await c.delete("forever") is True
    assert await c.delete("forever") is False


async def test_cache_default_ttl_and_lru_eviction() -> None:
    clock = Clock()
    c = MemoryCache("cache", {"max_entries": 2, "default_ttl": "1m"}, clock=clock)
    await c.set("a", 1)
    await c.set("b", 2)
    await c.get("a")  # a is now the most recently used
    await c.set("c", 3)
    assert (await c.get("b"))[0] is False
    assert (await c.get("a"))[0] and (await c.get("c"))[0]
    clock.now += 61
    assert len(c) == 0


async def test_cache_values_are_copies() -> None:
    c = MemoryCache("cache", {})
    value = {"items": [1]}
    await c.set("k", value)
    value["items"].append(2)
    _, got = await c.get("k")
    got["items"].append(3)
    assert await c.get("k") == (True, {"items": [1]})


def test_cache_bad_config_is_a_config_error() -> None:
    with pytest.raises(StepError, match="default_ttl"):
        MemoryCache("cache", {"default_ttl": "soon"})
    with pytest.raises(StepError, match="max_entries"):
        MemoryCache("cache", {"max_entries": 0})


# ---------------------------------------------------------------- broker.memory


async def test_broker_keeps_history_and_delivers_to_subscribers() -> None:
    b = MemoryBroker("events", {"history": 2})
    received: list[dict[str, Any]] = []
    plain: list[str] = []

    async def handler(message: dict[str, Any]) -> None:
        received.append(message)

    unsubscribe = b.subscribe("orders.*", handler)
    b.subscribe("orders.created", lambda m: plain.append(m["id"]))
    ids = [await b.publish("orders.created", {"n": i}) for i in range(3)]
    await b.publish("users.created", {"n": 9})
    await b.drain()
    assert [m["payload"] for m in b.messages("orders.created")] == [{"n": 1}, {"n": 2}]
    assert [m["payload"]["n"] for m in received] == [0, 1, 2]
    assert plain == ids
    assert b.topics() == ["orders.created", "users.created"]
    unsubscribe()
    await b.publish("orders.created", {"n": 3})
    await b.drain()
    assert len(received) == 3
    await b.close()


async def test_a_failing_subscriber_does_not_fail_the_publisher(caplog: Any) -> None:
    b = MemoryBroker("events", {})

    def broken(message: dict[str, Any]) -> None:
        raise RuntimeError("subscriber bug")

    b.subscribe("t", broken)
    message_id = await b.publish("t", 1)
    await b.drain()
    assert b.messages("t")[0]["id"] == message_id
    assert "subscriber of 't' failed" in caplog.text
    await b.close()


# ---------------------------------------------------------------- http.client


async def test_http_client_module_sends_base_url_and_headers(http_server: Any) -> None:
    module = HttpClient("api", {"base_url": http_server.base_url,
                                "headers": {"Authorization": "Bearer t"}, "timeout": "2s"})
    assert module._client is None  # made on first use
    response = await module.client.get("/echo", params={"a": "1"})
    assert response.json()["headers"]["authorization"] == "Bearer t"
    assert response.json()["query"] == {"a": "1"}
    assert module.client.timeout.read == 2.0
    client = module.client
    await module.close()
    assert client.is_closed


def test_http_client_bad_timeout_is_a_config_error() -> None:
    with pytest.raises(StepError, match="timeout"):
        HttpClient("api", {"timeout": "fast"})


# ---------------------------------------------------------------- featureflags


def flags(**spec: Any) -> FeatureFlags:
    return FeatureFlags("featureflags", {"flags": spec})


def test_boolean_and_disabled_flags() -> None:
    ff = flags(on=True, off=False, master={"enabled": False, "rollout": 100})
    assert ff.evaluate("on", "u1") == {"enabled": True, "variant": None, "reason": "rollout"}
    assert ff.evaluate("off", "u1")["enabled"] is False
    assert ff.evaluate("master", "u1") == {"enabled": False, "variant": None,
                                           "reason": "disabled"}
    assert ff.evaluate("nope", "u1") == {"enabled": False, "variant": None,
                                         "reason": "unknown_flag"}


def test_rules_match_attributes_first_rule_wins() -> None:
    ff = flags(checkout={"rollout": 0, "rules": [
        {"match": {"country": "DE", "plan": ["pro", "enterprise"]}, "variant": "blue"},
        {"match": {"country": "DE"}, "enabled": False},
        {"match": {"key": "vip-1"}},
    ]})
    assert ff.evaluate("checkout", {"key": "u1", "country": "DE", "plan": "pro"}) == {
        "enabled": True, "variant": "blue", "reason": "rule"}
    assert ff.evaluate("checkout", {"id": "u2", "country": "DE", "plan": "free"})["enabled"] is False
    assert ff.evaluate("checkout", "vip-1")["enabled"] is True
    assert ff.evaluate("checkout", {"key": "u3", "country": "FR"}) == {
        "enabled": False, "variant": None, "reason": "rollout"}


def test_rollout_is_stable_and_proportional() -> None:
    ff = flags(beta={"rollout": 25}, other={"rollout": 25})
    users = [f"user-{i}" for i in range(2000)]
    first = [ff.evaluate("beta", u)["enabled"] for u in users]
    again = [flags(beta={"rollout": 25}).evaluate("beta", u)["enabled"] for u in users]
    assert first == again  # stable across instances (and processes: no random seed)
    share = sum(first) / len(users)
    assert 0.20 < share < 0.30
    other = [ff.evaluate("other", u)["enabled"] for u in users]
    assert other != first  # buckets of different flags are independent
    assert ff.evaluate("beta", None)["enabled"] is False  # no key: partial rollout is off


def test_variants_by_weight() -> None:
    ff = flags(color={"variants": {"red": 3, "blue": 1}}, even={"variants": ["a", "b"]})
    picks = [ff.evaluate("color", f"u{i}")["variant"] for i in range(2000)]
    assert set(picks) == {"red", "blue"}
    assert 0.68 < picks.count("red") / len(picks) < 0.82
    assert ff.evaluate("color", "u7") == ff.evaluate("color", "u7")
    assert {ff.evaluate("even", f"u{i}")["variant"] for i in range(50)} == {"a", "b"}


def test_bad_flag_config_is_a_config_error() -> None:
    with pytest.raises(StepError, match="rollout must be between 0 and 100"):
        flags(x={"rollout": 150})
    with pytest.raises(StepError, match="weights"):
        flags(x={"variants": {"a": 0}})
    with pytest.raises(StepError, match="rules\\[0\\]"):
        flags(x={"rules": ["not-a-rule"]})
