"""The PostgreSQL sink: the raw psycopg connection, COPY for new rows, upserts for the rest."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from engine.errors import StoreError
from engine.service.models import TERMINAL_STATUS
from engine.store.batch import (
    CLOSE_STEPS_SQL,
    EVENT_COLS,
    EXEC_COLS,
    STEP_COLS,
    STEP_KEY,
    Batch,
    Row,
    RowsRefused,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

# Executions remembered as written, at most: beyond, the memo starts afresh (a forgotten
# one costs at most one optimistic attempt, see PgSink).
_MAX_OPEN = 100_000
_ENDED = frozenset(TERMINAL_STATUS.values())


class PgSink:
    """PostgreSQL through the raw psycopg connection, one transaction per batch.

    Rows are COPYed when they are new, upserted otherwise: COPY inserts in bulk, while
    INSERT ... ON CONFLICT goes row by row (the 320 step runs of a 64-run batch: 2.6 ms by
    COPY, 11-18 ms by upsert; its 1,408 events take 11.7 ms by COPY, the commit 4.7 ms).
    Whether a row is new is known from what this sink committed: an execution it has not
    written, or a step run it has not written, is taken for new. The guess is wrong only
    for rows another writer put there (an execution resumed after a crash), or rows of an
    execution this sink forgot (finished, or beyond ``_MAX_OPEN``): the COPY then fails on
    the unique key. Whenever that COPY fails, short of a lost connection, the transaction
    is rolled back and the batch written again with every execution and step run upserted,
    so what is stored, and which rows are refused, is decided by the upserts exactly as if
    nothing had been taken for new. Events are always COPYed. JSON goes in as text, which
    the server casts to jsonb.

    A broken connection is dropped and the next batch opens a new one.
    """

    def __init__(self, engine: Engine):
        self._engine = engine
        self._proxy: Any = None
        self._exec_sql = _pg_upsert_sql("executions", EXEC_COLS, ("id",))
        self._step_sql = _pg_upsert_sql("step_runs", STEP_COLS, STEP_KEY)
        self._exec_copy = _copy_sql("executions", EXEC_COLS)
        self._step_copy = _copy_sql("step_runs", STEP_COLS)
        self._event_copy = _copy_sql("execution_events", EVENT_COLS)
        self._close_sql = CLOSE_STEPS_SQL.format(p="%s")
        # Unfinished executions this sink committed rows of -> the seqs of their step runs.
        self._open: dict[str, set[int]] = {}

    def write(self, batch: Batch, wait: bool = True) -> bool:
        import psycopg

        try:
            if self._proxy is None:
                self._proxy = self._engine.raw_connection()
            conn = self._proxy.driver_connection
            try:
                new_execs, old_execs = self._split(batch.executions, _exec_taken)
                new_steps, old_steps = self._split(batch.step_runs, _step_taken)
                try:
                    self._write(conn, batch, new_execs, old_execs, new_steps, old_steps)
                except (psycopg.OperationalError, psycopg.InterfaceError):
                    raise
                except Exception:
                    if not (new_execs or new_steps):
                        raise
                    # A row taken for new was not, or the rows are refused: the upserts
                    # decide, in a new transaction, as if nothing had been taken for new.
                    conn.rollback()
                    self._write(conn, batch, [], batch.executions, [], batch.step_runs)
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
        self._remember(batch)
        return True

    def _write(self, conn: Any, batch: Batch, new_execs: list[Row], old_execs: list[Row],
               new_steps: list[Row], old_steps: list[Row]) -> None:
        with conn.cursor() as cur:
            if new_execs:
                _copy(cur, self._exec_copy, new_execs)
            if new_steps:
                _copy(cur, self._step_copy, new_steps)
            if old_execs:
                cur.executemany(self._exec_sql, old_execs)
            if old_steps:
                cur.executemany(self._step_sql, old_steps)
            if batch.events:
                _copy(cur, self._event_copy, batch.events)
            if batch.close_steps:
                cur.executemany(self._close_sql, [(e, i) for i, e in batch.close_steps])

    def _split(self, rows: list[Row], taken: Callable[[dict[str, set[int]], Row], bool],
               ) -> tuple[list[Row], list[Row]]:
        """``rows`` as (new: COPY them, already written: upsert them)."""
        opened = self._open
        if not opened:
            return rows, []
        new: list[Row] = []
        old: list[Row] = []
        for row in rows:
            (old if taken(opened, row) else new).append(row)
        return new, old

    def _remember(self, batch: Batch) -> None:
        """After a commit: note the rows now in the tables, forget finished executions."""
        opened = self._open
        if len(opened) > _MAX_OPEN:
            opened.clear()
        for row in batch.executions:  # (id, pipeline, status, ...)
            if row[2] in _ENDED:
                opened.pop(row[0], None)
            else:
                opened.setdefault(row[0], set())
        for row in batch.step_runs:
            seqs = opened.get(row[0])
            if seqs is not None:
                seqs.add(row[4])

    def close(self) -> None:
        if self._proxy is not None:
            self._proxy.close()
            self._proxy = None


def _exec_taken(opened: dict[str, set[int]], row: Row) -> bool:
    return row[0] in opened  # (id, ...)


def _step_taken(opened: dict[str, set[int]], row: Row) -> bool:
    seqs = opened.get(row[0])  # (execution_id, path, step, type, seq, ...)
    return seqs is not None and row[4] in seqs


def _copy(cur: Any, sql: str, rows: list[Row]) -> None:
    with cur.copy(sql) as copy:
        write_row = copy.write_row
        for row in rows:
            write_row(row)


def _copy_sql(table: str, cols: Sequence[str]) -> str:
    return f"COPY {table} ({', '.join(cols)}) FROM STDIN"


def _pg_upsert_sql(table: str, cols: Sequence[str], key: Sequence[str]) -> str:
    updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in key)
    return (f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))}) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}")
