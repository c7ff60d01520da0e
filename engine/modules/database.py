"""``database.sql``: a SQLAlchemy engine (SQLite or PostgreSQL) that steps query with named params.

Design decisions (documented here because steps and users depend on them):

- SQL is always ``sqlalchemy.text`` with NAMED ``:params`` bound by the driver; nothing is
  ever spliced into the statement text. Params that are objects become JSON text; lists
  stay lists on PostgreSQL (arrays, ``= ANY(:ids)``) and become JSON text on SQLite.
- Blocking driver work runs in a worker thread (``asyncio.to_thread``) so the event loop
  keeps serving other executions. Cancelling the awaiting task interrupts the statement
  (``sqlite3.Connection.interrupt`` / PostgreSQL cancel request) and the connection is
  discarded rather than returned to the pool.
- Rows come back as dicts of JSON-safe values: date/time values become ISO 8601 strings,
  ``Decimal`` becomes an ``int`` when integral and a ``float`` otherwise (precision beyond a
  double is lost; cast to text in SQL when exact digits matter), ``UUID`` becomes its string,
  ``bytes`` become UTF-8 text or, if not valid UTF-8, base64.
- ``last_id``: on SQLite the rowid of an ``INSERT``/``REPLACE`` (None for other statements);
  on any database, a statement with ``RETURNING`` gives the ``id`` column of its last row (or
  its first column when there is no ``id``). PostgreSQL without ``RETURNING`` gives None.
- Connecting and the ``init`` statements happen on first use, not at engine start, so opening
  a file never fails because a database is down; the first step that uses it reports that.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from engine.errors import StepError
from engine.steps.base import ModuleType
from engine.store.identity import StoreReached, check_connection

T = TypeVar("T")

# The first keyword of a statement, after leading comments and whitespace.
_LEADING_NOISE = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.DOTALL)
_CANCEL_GRACE = 5.0  # seconds to wait for an interrupted statement to give its thread back


def normalize_url(url: str) -> str:
    """Map plain ``postgresql://``/``postgres://`` to the psycopg 3 driver SQLAlchemy should use."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def json_safe(value: Any) -> Any:
    """Turn a driver value into something JSON can carry (see the module docstring)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        return float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    return str(value)


def _first_keyword(sql: str) -> str:
    noise = _LEADING_NOISE.match(sql)
    rest = sql[noise.end():] if noise else sql
    match = re.match(r"[A-Za-z]+", rest)
    return match.group(0).upper() if match else ""


class _Interrupted(Exception):
    """The awaiting task was cancelled before the statement started."""


class SqlDatabase:
    """One configured database. Steps call :meth:`query` and :meth:`execute`."""

    def __init__(self, name: str, config: Mapping[str, Any]):
        self.name = name
        url = config.get("url")
        if not isinstance(url, str) or not url.strip():
            raise StepError(f"module {name!r} (database.sql) needs a 'url', e.g. "
                            "sqlite:///data/app.db or postgresql://user@host/db", type="config")
        self.url = normalize_url(url.strip())
        try:
            self._parsed = make_url(self.url)
        except sa_exc.ArgumentError:  # its message quotes the url: it may hold a ${PASSWORD}
            raise StepError(f"module {name!r} (database.sql): 'url' is not a database URL; "
                            "use e.g. sqlite:///data/app.db or postgresql://user@host/db",
                            type="config") from None
        self.dialect = self._parsed.get_backend_name()  # "sqlite", "postgresql", ...
        self.pool_size: int | None = config.get("pool_size")
        self.init: list[str] = list(config.get("init") or [])
        self._engine: Engine | None = None
        self._ready = False
        self._ready_lock = asyncio.Lock()
        # An in-memory SQLite database lives in one connection: serialize every use of it.
        self._memory = self.dialect == "sqlite" and self._parsed.database in (None, "", ":memory:")
        self._serial = asyncio.Lock() if self._memory else None

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Cheap: builds the SQLAlchemy engine object; no connection is made yet."""
        self._get_engine()

    async def close(self) -> None:
        if self._engine is not None:
            engine, self._engine = self._engine, None
            self._ready = False
            await asyncio.to_thread(engine.dispose)

    def _get_engine(self) -> Engine:
        if self._engine is None:
            kwargs: dict[str, Any] = {}
            if self._memory:
                kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
            elif self.pool_size:
                kwargs["pool_size"] = self.pool_size
            try:
                self._engine = sa.create_engine(self.url, **kwargs)
            except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError):
                # Named by its driver only: the rest of the URL may come from ${VAR}s.
                raise StepError(f"database {self.name!r}: cannot use a "
                                f"{self._parsed.drivername!r} URL: use sqlite:///path or "
                                "postgresql://user@host/db", type="config") from None
            sa.event.listen(self._engine, "connect", self._check_connection)
        return self._engine

    def _check_connection(self, dbapi_connection: Any, _record: Any) -> None:
        """Every new connection: refuse the event store, however the URL spells it."""
        try:
            check_connection(dbapi_connection, self.dialect)
        except StoreReached as exc:
            dbapi_connection.close()
            raise StepError(f"database {self.name!r} may not be opened: {exc}, which holds "
                            "every tenant's runs and the API keys; give the module a database "
                            "of its own", type="config", details={"database": self.name}) from None

    async def _ensure_ready(self) -> None:
        if self._ready:
            return
        async with self._ready_lock:
            if self._ready:
                return
            if self.init:
                statements = list(self.init)

                def run_init(conn: Connection) -> None:
                    for statement in statements:
                        conn.execute(sa.text(statement))

                await self._run(run_init, what="init statement")
            self._ready = True

    # -- the API steps use ---------------------------------------------------------------

    async def query(self, sql: str,
                    params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a statement and return its rows as JSON-safe dicts (committed, so
        ``INSERT … RETURNING`` works here too)."""
        await self._ensure_ready()
        statement, bound = self._prepare(sql, params)

        def work(conn: Connection) -> list[dict[str, Any]]:
            result = conn.execute(statement, bound)
            if not result.returns_rows:
                return []
            return [{str(k): json_safe(v) for k, v in row.items()} for row in result.mappings()]

        return await self._run(work)

    async def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run a statement that changes data: ``{affected_rows, last_id}``, plus ``rows`` when
        the statement has ``RETURNING``."""
        await self._ensure_ready()
        statement, bound = self._prepare(sql, params)
        keyword = _first_keyword(sql)

        def work(conn: Connection) -> dict[str, Any]:
            result = conn.execute(statement, bound)
            out: dict[str, Any] = {"affected_rows": max(result.rowcount, 0), "last_id": None}
            if result.returns_rows:
                rows = [{str(k): json_safe(v) for k, v in row.items()}
                        for row in result.mappings()]
                out["rows"] = rows
                if result.rowcount < 0 or (self.dialect == "sqlite" and not out["affected_rows"]):
                    out["affected_rows"] = len(rows)  # SQLite reports no rowcount with RETURNING
                if rows:
                    last = rows[-1]
                    out["last_id"] = last["id"] if "id" in last else next(iter(last.values()), None)
            elif self.dialect == "sqlite" and keyword in ("INSERT", "REPLACE"):
                out["last_id"] = result.lastrowid
            return out

        return await self._run(work)

    # -- internals -----------------------------------------------------------------------

    def _prepare(self, sql: str, params: Mapping[str, Any] | None) -> tuple[Any, dict[str, Any]]:
        bound: dict[str, Any] = {}
        for key, value in (params or {}).items():
            if isinstance(value, Mapping):
                value = json.dumps(value)
            elif isinstance(value, list | tuple) and self.dialect == "sqlite":
                value = json.dumps(list(value))
            bound[str(key)] = value
        return sa.text(sql), bound

    async def _run(self, work: Callable[[Connection], T], *, what: str = "statement") -> T:
        """Run ``work`` in a worker thread inside a transaction; interrupt it on cancellation."""
        engine = self._get_engine()
        live: dict[str, Any] = {}
        cancelled = threading.Event()

        def job() -> T:
            with engine.connect() as conn:
                raw = conn.connection.dbapi_connection
                live["raw"] = raw
                try:
                    if cancelled.is_set():
                        raise _Interrupted
                    with conn.begin():
                        return work(conn)
                finally:
                    live.pop("raw", None)
                    if cancelled.is_set():
                        conn.invalidate()  # a cancel request may still be in flight: never reuse

        if self._serial is not None:
            await self._serial.acquire()
        task = asyncio.ensure_future(asyncio.to_thread(job))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled.set()
            await self._interrupt_until_done(task, live)
            raise
        except sa_exc.SQLAlchemyError as exc:
            message = _db_message(exc)
            if self.dialect == "sqlite" and message in ("not authorized", "authorization denied"):
                message += " (ATTACH and VACUUM INTO are refused: a module reaches its own file only)"
            raise StepError(f"database {self.name!r} ({self.dialect}) {what} failed: "
                            f"{message}", type="database",
                            details={"database": self.name}) from None
        finally:
            if self._serial is not None:
                self._serial.release()

    async def _interrupt_until_done(self, task: asyncio.Future[Any], live: dict[str, Any]) -> None:
        """Keep interrupting until the worker returns (the statement may not have started yet)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _CANCEL_GRACE
        while not task.done() and loop.time() < deadline:
            raw = live.get("raw")
            if raw is not None:
                try:
                    if hasattr(raw, "interrupt"):  # sqlite3: thread-safe, returns immediately
                        raw.interrupt()
                    elif hasattr(raw, "cancel_safe"):  # psycopg >= 3.2
                        await asyncio.to_thread(raw.cancel_safe, timeout=2.0)
                    elif hasattr(raw, "cancel"):
                        await asyncio.to_thread(raw.cancel)
                except Exception:  # best effort: the statement may have just ended
                    pass
            await asyncio.wait([task], timeout=0.05)
        if task.done() and not task.cancelled():
            task.exception()  # retrieved so asyncio does not warn; the caller was cancelled anyway


def _db_message(exc: sa_exc.SQLAlchemyError) -> str:
    """The database's own message, without SQLAlchemy's SQL echo and background link."""
    orig = getattr(exc, "orig", None)
    if orig is None:
        text = exc.args[0] if exc.args else str(exc)
    elif isinstance(orig, sa_exc.SQLAlchemyError):
        text = orig.args[0] if orig.args else str(orig)
    else:
        text = str(orig)
    text = str(text)
    text = re.sub(r"\s*\(Background on this error at:[^)]*\)", "", text)
    return text.strip() or type(exc).__name__


_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["url"],
    "properties": {
        "url": {
            "type": "string",
            "description": "SQLAlchemy URL: sqlite:///path/app.db, sqlite:// (in memory) or "
                           "postgresql://user:pass@host:5432/db (psycopg 3 is used).",
        },
        "pool_size": {
            "type": "integer", "minimum": 1,
            "description": "Connections kept open in the pool (SQLAlchemy's default when unset).",
        },
        "init": {
            "type": "array", "items": {"type": "string"},
            "description": "SQL statements run once before first use, e.g. "
                           "CREATE TABLE IF NOT EXISTS …",
        },
    },
}

MODULE_TYPES: list[ModuleType] = [
    ModuleType(
        name="database.sql",
        factory=SqlDatabase,
        description="A SQL database (SQLite or PostgreSQL) for step.db_query and step.db_exec.",
        schema=_SCHEMA,
    ),
]
