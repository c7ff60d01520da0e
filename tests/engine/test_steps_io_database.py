"""Database step types through the real engine: SQLite files and the real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from engine.api import Engine, Execution
from engine.errors import ConfigError


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/app.db"
    return str(request.getfixturevalue("pg_url"))


def orders_file(url: str, steps_yaml: str, table: str, fresh: bool = True) -> str:
    """A file with a ``db`` module whose init (re)creates ``table``; ``fresh=False`` keeps rows."""
    drop = f"DROP TABLE IF EXISTS {table}" if fresh else "SELECT 1"
    key = "INTEGER PRIMARY KEY AUTOINCREMENT" if url.startswith("sqlite") else "SERIAL PRIMARY KEY"
    return f"""\
modules:
  - name: db
    type: database.sql
    config:
      url: "{url}"
      init:
        - {drop}
        - CREATE TABLE IF NOT EXISTS {table} (id {key}, sku TEXT NOT NULL, qty INTEGER, total NUMERIC(10, 2))
pipelines:
  p:
    steps:
{steps_yaml}"""


def table_name() -> str:
    return f"orders_{uuid.uuid4().hex[:8]}"


async def run(tmp_path: Path, text: str, payload: Any = None) -> Execution:
    async with Engine.open(text, store=f"sqlite:///{tmp_path}/s.db") as engine:
        return await engine.run("p", payload if payload is not None else {})


async def test_exec_then_query_with_templated_params(tmp_path: Path, db_url: str) -> None:
    t = table_name()
    ex = await run(tmp_path, orders_file(db_url, f"""\
      - name: store
        type: step.db_exec
        config:
          database: db
          query: INSERT INTO {t}(sku, qty, total) VALUES (:sku, :qty, :total) RETURNING id
          params: {{sku: "{{{{ .sku }}}}", qty: "{{{{ .qty }}}}", total: "{{{{ .qty * 19.5 }}}}"}}
      - name: again
        type: step.db_exec
        config:
          database: db
          query: INSERT INTO {t}(sku, qty, total) VALUES (:sku, 1, 1)
          params: {{sku: other}}
      - name: one
        type: step.db_query
        config:
          database: db
          query: SELECT id, sku, qty, total FROM {t} WHERE id = :id
          params: {{id: "{{{{ .steps.store.last_id }}}}"}}
          mode: single
      - name: all
        type: step.db_query
        config: {{database: db, query: "SELECT sku FROM {t} ORDER BY id"}}
      - name: none
        type: step.db_query
        config: {{database: db, query: "SELECT * FROM {t} WHERE qty > :q", params: {{q: 99}},
                 mode: single}}
      - name: summary
        type: step.set
        config:
          values:
            stored: "{{{{ .steps.store }}}}"
            again: "{{{{ .steps.again }}}}"
            one: "{{{{ .steps.one }}}}"
            all: "{{{{ .steps.all }}}}"
            none: "{{{{ .steps.none }}}}"
""", t), {"sku": "A-1", "qty": 2})
    assert ex.status == "completed", ex.error
    out = ex.output
    assert out["stored"] == {"affected_rows": 1, "last_id": 1, "rows": [{"id": 1}]}
    sqlite = db_url.startswith("sqlite")
    assert out["again"] == {"affected_rows": 1, "last_id": 2 if sqlite else None}
    assert out["one"] == {"row": {"id": 1, "sku": "A-1", "qty": 2, "total": 39}, "found": True}
    assert out["all"] == {"rows": [{"sku": "A-1"}, {"sku": "other"}], "count": 2}
    assert out["none"] == {"row": None, "found": False}


async def test_update_and_delete_report_affected_rows(tmp_path: Path, db_url: str) -> None:
    t = table_name()
    ex = await run(tmp_path, orders_file(db_url, f"""\
      - name: seed
        type: step.db_exec
        config: {{database: db, query: "INSERT INTO {t}(sku, qty) VALUES ('a', 1), ('b', 2), ('c', 3)"}}
      - name: bump
        type: step.db_exec
        config: {{database: db, query: "UPDATE {t} SET qty = qty + 1 WHERE qty >= :min",
                 params: {{min: 2}}}}
      - name: drop
        type: step.db_exec
        config: {{database: db, query: "DELETE FROM {t} WHERE sku = :sku", params: {{sku: a}}}}
      - name: out
        type: step.set
        config: {{values: {{bumped: "{{{{ .steps.bump.affected_rows }}}}",
                           dropped: "{{{{ .steps.drop }}}}"}}}}
""", t))
    assert ex.status == "completed", ex.error
    assert ex.output["bumped"] == 2
    assert ex.output["dropped"] == {"affected_rows": 1, "last_id": None}


async def test_invalid_sql_fails_naming_the_database(tmp_path: Path, db_url: str) -> None:
    t = table_name()
    ex = await run(tmp_path, orders_file(db_url, """\
      - name: broken
        type: step.db_query
        config: {database: db, query: "SELEC * FROM nowhere"}
""", t))
    assert ex.status == "failed"
    assert ex.error is not None
    assert ex.error["type"] == "database" and ex.error["step"] == "broken"
    assert "database 'db'" in ex.error["message"]
    assert "syntax error" in ex.error["message"]
    assert "Traceback" not in ex.error["message"]


async def test_missing_param_fails_naming_it(tmp_path: Path, db_url: str) -> None:
    t = table_name()
    ex = await run(tmp_path, orders_file(db_url, f"""\
      - name: lookup
        type: step.db_query
        config: {{database: db, query: "SELECT * FROM {t} WHERE id = :order_id"}}
""", t))
    assert ex.status == "failed"
    assert ex.error is not None and ex.error["type"] == "database"
    assert "order_id" in ex.error["message"] and "database 'db'" in ex.error["message"]


async def test_a_template_in_the_query_is_refused(tmp_path: Path) -> None:
    t = table_name()
    ex = await run(tmp_path, orders_file(f"sqlite:///{tmp_path}/a.db", f"""\
      - name: unsafe
        type: step.db_query
        config: {{database: db, query: "SELECT * FROM {t} WHERE sku = '{{{{ .sku }}}}'"}}
""", t), {"sku": "x' OR '1'='1"})
    assert ex.status == "failed"
    assert ex.error is not None and ex.error["type"] == "config"
    assert ":name" in ex.error["message"] and "params" in ex.error["message"]


async def test_a_module_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    text = """\
modules:
  - {name: db, type: cache.memory}
pipelines:
  p:
    steps:
      - name: q
        type: step.db_query
        config: {database: db, query: SELECT 1}
"""
    ex = await run(tmp_path, text)
    assert ex.status == "failed"
    assert ex.error is not None and "is not a database.sql module" in ex.error["message"]


async def test_an_undefined_database_module_is_a_load_error(tmp_path: Path) -> None:
    text = """\
pipelines:
  p:
    steps:
      - name: q
        type: step.db_query
        config: {database: nope, query: SELECT 1}
"""
    with pytest.raises(ConfigError, match="no module named 'nope'"):
        await run(tmp_path, text)


async def test_compensation_deletes_by_last_id(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/saga.db"
    t = table_name()
    text = orders_file(url, f"""\
      - name: store
        type: step.db_exec
        config: {{database: db, query: "INSERT INTO {t}(sku, qty) VALUES (:sku, 1)",
                 params: {{sku: "{{{{ .sku }}}}"}}}}
        compensate:
          type: step.db_exec
          config: {{database: db, query: "DELETE FROM {t} WHERE id = :id",
                   params: {{id: "{{{{ .steps.store.last_id }}}}"}}}}
      - name: boom
        type: step.fail
        config: {{message: payment declined}}
""", t).replace("    steps:\n", "    on_error: compensate\n    steps:\n", 1)
    ex = await run(tmp_path, text, {"sku": "A"})
    assert ex.status == "compensated", ex.error
    check = orders_file(url, f"""\
      - name: count
        type: step.db_query
        config: {{database: db, query: "SELECT COUNT(*) AS n FROM {t}", mode: single}}
""", t, fresh=False)
    done = await run(tmp_path, check)
    assert done.status == "completed", done.error
    assert done.output["row"] == {"n": 0}


@pytest.mark.postgres
async def test_step_timeout_cancels_the_postgres_query(tmp_path: Path, pg_url: str) -> None:
    marker = f"probe_{uuid.uuid4().hex[:8]}"
    text = f"""\
modules:
  - {{name: db, type: database.sql, config: {{url: "{pg_url}"}}}}
pipelines:
  p:
    steps:
      - name: slow
        type: step.db_query
        timeout: 300ms
        config: {{database: db, query: "SELECT pg_sleep(60) AS {marker}"}}
"""
    ex = await run(tmp_path, text)
    assert ex.status == "failed"
    assert ex.error is not None and ex.error["type"] == "timeout"

    def active() -> int:
        with psycopg.connect(pg_url) as conn:
            row = conn.execute("SELECT COUNT(*) FROM pg_stat_activity WHERE state = 'active' "
                               "AND pid <> pg_backend_pid() AND query LIKE %s",
                               (f"%{marker}%",)).fetchone()
            return int(row[0]) if row else 0

    assert await asyncio.to_thread(active) == 0
