"""The PostgreSQL sink: the raw psycopg connection, COPY for events, pipelined upserts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from engine.errors import StoreError
from engine.store.batch import CLOSE_STEPS_SQL, EVENT_COLS, EXEC_COLS, STEP_COLS, STEP_KEY, Batch, RowsRefused

if TYPE_CHECKING:
    from sqlalchemy import Engine


class PgSink:
    """PostgreSQL through the raw psycopg connection: COPY for events, pipelined upserts.

    Measured on 64-run batches (benchmarks/bench_store.py): ~30 ms against ~80 ms through
    SQLAlchemy Core's executemany. JSON goes in as text, which the server casts to jsonb.
    A broken connection is dropped and the next batch opens a new one.
    """

    def __init__(self, engine: Engine):
        self._engine = engine
        self._proxy: Any = None
        self._exec_sql = _pg_upsert_sql("executions", EXEC_COLS, ("id",))
        self._step_sql = _pg_upsert_sql("step_runs", STEP_COLS, STEP_KEY)
        self._copy_sql = f"COPY execution_events ({', '.join(EVENT_COLS)}) FROM STDIN"
        self._close_sql = CLOSE_STEPS_SQL.format(p="%s")

    def write(self, batch: Batch, wait: bool = True) -> bool:
        import psycopg

        try:
            if self._proxy is None:
                self._proxy = self._engine.raw_connection()
            conn = self._proxy.driver_connection
            try:
                with conn.cursor() as cur:
                    if batch.executions:
                        cur.executemany(self._exec_sql, batch.executions)
                    if batch.step_runs:
                        cur.executemany(self._step_sql, batch.step_runs)
                    if batch.events:
                        with cur.copy(self._copy_sql) as copy:
                            for row in batch.events:
                                copy.write_row(row)
                    if batch.close_steps:
                        cur.executemany(self._close_sql, [(e, i) for i, e in batch.close_steps])
                conn.commit()
            except BaseException:
                if not conn.closed:
                    conn.rollback()
                raise
        except (psycopg.OperationalError, psycopg.InterfaceError, SQLAlchemyError) as exc:
            if self._proxy is not None:
                self._proxy.invalidate()  # a lost connection: reconnect for the next batch
                self._proxy = None
            reason = getattr(exc, "orig", None) or exc
            raise StoreError(f"could not record {len(batch)} rows: {reason}") from exc
        except Exception as exc:  # psycopg.DataError, IntegrityError, an encoding: these rows
            raise RowsRefused(len(batch), exc) from exc
        return True

    def close(self) -> None:
        if self._proxy is not None:
            self._proxy.close()
            self._proxy = None


def _pg_upsert_sql(table: str, cols: Sequence[str], key: Sequence[str]) -> str:
    updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in key)
    return (f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))}) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}")
