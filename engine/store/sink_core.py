"""The SQLAlchemy Core sink: any backend; the reference the raw-driver sinks are measured against."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Text, bindparam, cast, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import InterfaceError, OperationalError

from engine.errors import StoreError
from engine.store import models
from engine.store.batch import (
    EVENT_COLS,
    EXEC_COLS,
    EXEC_JSON,
    STEP_COLS,
    STEP_JSON,
    STEP_KEY,
    Batch,
    RowsRefused,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine


class CoreSink:
    """Any backend through SQLAlchemy Core: in-memory SQLite, and the measured reference
    the raw-driver sinks are compared with (``Store.open(url, core_recorder=True)``).

    Statements are built once. JSON arrives pre-serialized, so JSON columns bind as text
    and are cast to the column type on PostgreSQL (SQLite stores JSON as text anyway).
    """

    def __init__(self, engine: Engine):
        self._engine = engine
        dialect = engine.dialect.name
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self._json_cast = dialect == "postgresql"
        self._exec_stmt = self._upsert(models.executions, EXEC_COLS, EXEC_JSON, ("id",))
        self._step_stmt = self._upsert(models.step_runs, STEP_COLS, STEP_JSON, STEP_KEY)
        self._event_stmt = models.execution_events.insert().values(
            {c: bindparam(c) for c in EVENT_COLS})
        steps = models.step_runs
        self._close_stmt = (update(steps).where(steps.c.execution_id == bindparam("eid"),
                                                steps.c.status == "running")
                            .values(status="failed", error=bindparam("err")))

    def _upsert(self, table: Any, cols: Sequence[str], json_cols: frozenset[str],
                key: Sequence[str]) -> Any:
        values: dict[str, Any] = {}
        for c in cols:
            if c in json_cols:
                param = bindparam(c, type_=Text())
                values[c] = cast(param, table.c[c].type) if self._json_cast else param
            else:
                values[c] = bindparam(c)
        stmt = self._insert(table).values(values)
        return stmt.on_conflict_do_update(
            index_elements=list(key),
            set_={c: stmt.excluded[c] for c in cols if c not in key})

    def write(self, batch: Batch, wait: bool = True) -> bool:
        try:
            with self._engine.begin() as conn:
                if batch.executions:
                    conn.execute(self._exec_stmt, [dict(zip(EXEC_COLS, r, strict=True))
                                                   for r in batch.executions])
                if batch.step_runs:
                    conn.execute(self._step_stmt, [dict(zip(STEP_COLS, r, strict=True))
                                                   for r in batch.step_runs])
                if batch.events:
                    conn.execute(self._event_stmt, [dict(zip(EVENT_COLS, r, strict=True))
                                                    for r in batch.events])
                if batch.close_steps:
                    conn.execute(self._close_stmt, [{"eid": e, "err": i}
                                                    for e, i in batch.close_steps])
        except (OperationalError, InterfaceError) as exc:
            raise StoreError(f"could not record {len(batch)} rows: {exc.orig}") from exc
        except Exception as exc:  # an encoding, a value, a constraint: these rows
            reason = getattr(exc, "orig", None) or exc
            raise RowsRefused(len(batch), reason) from exc
        return True

    def close(self) -> None:
        pass
