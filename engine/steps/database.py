"""Database step types over a ``database.sql`` module.

``query`` is never template-resolved (it is a raw key): SQL takes values only through named
``:params``, so nothing a request sends can change a statement's text. A ``{{ }}`` in a
query is refused with a message that says how to write it as a param instead.
"""

from __future__ import annotations

from typing import Any

from engine.errors import StepError
from engine.steps.base import StepContext, StepType

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _database(ctx: StepContext, config: dict[str, Any]) -> Any:
    name = config.get("database")
    if not name:
        raise StepError(f"step {ctx.step.name!r}: 'database' must name a database.sql module",
                        type="config")
    module = ctx.module(str(name))
    if not (hasattr(module, "query") and hasattr(module, "execute")):
        raise StepError(f"step {ctx.step.name!r}: module {name!r} is not a database.sql module",
                        type="config")
    return module


def _query(ctx: StepContext, config: dict[str, Any]) -> str:
    query = config.get("query")
    if not isinstance(query, str) or not query.strip():
        raise StepError(f"step {ctx.step.name!r}: 'query' is empty", type="config")
    if "{{" in query:
        raise StepError(f"step {ctx.step.name!r}: the query contains a {{{{ }}}} template; SQL "
                        "must not be built from values: write :name in the query and put "
                        "name: \"{{ … }}\" under params", type="config")
    return query


def _params(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    params = config.get("params") or {}
    if not isinstance(params, dict):
        raise StepError(f"step {ctx.step.name!r}: 'params' must be a map of name: value",
                        type="config")
    return params


async def run_db_query(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    database = _database(ctx, config)
    rows = await database.query(_query(ctx, config), _params(ctx, config))
    if (config.get("mode") or "list") == "single":
        return {"row": rows[0] if rows else None, "found": bool(rows)}
    return {"rows": rows, "count": len(rows)}


async def run_db_exec(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    database = _database(ctx, config)
    result: dict[str, Any] = await database.execute(_query(ctx, config), _params(ctx, config))
    return result


def _schema(mode: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "database": {"type": "string", "description": "Name of a database.sql module."},
        "query": {"type": "string",
                  "description": "SQL with named :params (never built from templates)."},
        "params": {"type": "object",
                   "description": "Values for the query's :params, by name (templates allowed)."},
    }
    if mode:
        properties["mode"] = {"type": "string", "enum": ["list", "single"], "default": "list",
                              "description": "list: every row; single: the first row or null."}
    return {"$schema": SCHEMA_DIALECT, "type": "object", "additionalProperties": False,
            "required": ["database", "query"], "properties": properties}


STEP_TYPES: list[StepType] = [
    StepType(
        name="step.db_query",
        run=run_db_query,
        description="Run a SQL query with named params and return its rows.",
        category="database",
        schema=_schema(mode=True),
        output="mode list: {rows, count}; mode single: {row (null when none), found}. Values are "
               "JSON-safe (dates as ISO strings, decimals as numbers).",
        raw_keys=frozenset({"query"}),
        module_refs=frozenset({"database"}),
        example={"database": "db", "query": "SELECT * FROM users WHERE id = :id",
                 "params": {"id": "{{ .user_id }}"}, "mode": "single"},
    ),
    StepType(
        name="step.db_exec",
        run=run_db_exec,
        description="Run a SQL statement that changes data (INSERT, UPDATE, DELETE, DDL).",
        category="database",
        schema=_schema(mode=False),
        output="{affected_rows, last_id}: last_id is the SQLite rowid of an INSERT, or the id "
               "column of RETURNING rows (then also rows); otherwise null.",
        raw_keys=frozenset({"query"}),
        module_refs=frozenset({"database"}),
        example={"database": "db", "query": "INSERT INTO orders(sku, qty) VALUES (:sku, :qty)",
                 "params": {"sku": "{{ .sku }}", "qty": "{{ .qty }}"}},
    ),
]
