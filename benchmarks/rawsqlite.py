"""The raw-sqlite3 baseline: the rows one run wrote, written again with nothing but sqlite3.

``snapshot`` notes every table's highest rowid; after one run, ``capture`` reads the rows
that run added, whatever the tables are (the schema may change under the benchmarks: a
new table is picked up, a removed one is not looked for). ``RawWriter`` then writes those rows
again for N fresh execution ids, into a copy of the same store (same schema, indexes and
prior rows), ``batch`` runs per transaction (``RawWriter``). JSON texts are re-encoded from
their parsed value for every run, as recording must, with orjson (the fastest encoder at
hand, the one the store uses); other values are written as they are. ``FloorWriter`` is the
least any recording store can do: one row per run holding the payload, encoded once.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson


class Json:
    """A JSON text column value, kept parsed so that each re-write pays the encoding."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


@dataclass
class TableRows:
    table: str
    cols: list[str]  # the columns written; an INTEGER PRIMARY KEY (rowid alias) is left to SQLite
    rows: list[list[Any]] = field(default_factory=list)


@dataclass
class RunRows:
    execution_id: str
    tables: list[TableRows]

    @property
    def count(self) -> int:
        return sum(len(t.rows) for t in self.tables)


def _tables(conn: sqlite3.Connection) -> list[str]:
    return [name for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY rowid")]


def snapshot(db: Path) -> dict[str, int]:
    """Every rowid table's highest rowid (WITHOUT ROWID tables are not tracked)."""
    conn = sqlite3.connect(db)
    try:
        marks = {}
        for table in _tables(conn):
            try:
                marks[table] = conn.execute(f'SELECT coalesce(max(rowid), 0) FROM "{table}"').fetchone()[0]
            except sqlite3.OperationalError:  # WITHOUT ROWID
                continue
        return marks
    finally:
        conn.close()


def _value_bytes(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, bytes):
        return len(value)
    return 8


def new_rows(db: Path, since: dict[str, int]) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    """The rows added to each table since ``since``: {table: (column names, rows)}."""
    conn = sqlite3.connect(db)
    try:
        found = {}
        for table, mark in since.items():
            cur = conn.execute(f'SELECT * FROM "{table}" WHERE rowid > ?', (mark,))
            rows = cur.fetchall()
            if rows:
                found[table] = ([d[0] for d in cur.description], rows)
        return found
    finally:
        conn.close()


def stored_row_bytes(db: Path, since: dict[str, int]) -> int:
    """Bytes of the values in the rows added since ``since`` (text as UTF-8, numbers as 8)."""
    return sum(_value_bytes(v) for _, rows in new_rows(db, since).values() for row in rows for v in row)


def capture(db: Path, since: dict[str, int], execution_id: str) -> RunRows:
    conn = sqlite3.connect(db)
    try:
        aliases = {}
        for table in since:
            info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
            pks = [r for r in info if r[5]]
            if len(pks) == 1 and pks[0][2].upper() == "INTEGER":
                aliases[table] = pks[0][1]
    finally:
        conn.close()
    tables = []
    for table, (cols, rows) in new_rows(db, since).items():
        keep = [i for i, c in enumerate(cols) if c != aliases.get(table)]
        out = TableRows(table, [cols[i] for i in keep])
        for row in rows:
            values: list[Any] = []
            for i in keep:
                v = row[i]
                if isinstance(v, str) and v[:1] in ("{", "[") and v != execution_id:
                    with contextlib.suppress(ValueError):
                        v = Json(json.loads(v))
                values.append(v)
            out.rows.append(values)
        tables.append(out)
    return RunRows(execution_id, tables)


class RawWriter:
    """Raw sqlite3 appending ``run``'s rows, re-keyed, ``batch`` runs per commit, into a copy
    of ``source_db``; ``write_for`` can be called repeatedly (slices interleaved with the
    engine's, so that both see the same machine load)."""

    def __init__(self, source_db: Path, run: RunRows, target_db: Path, batch: int):
        src = sqlite3.connect(source_db)
        self.db = sqlite3.connect(target_db, isolation_level=None)
        src.backup(self.db)
        src.close()
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # what the store sets
        self.db.execute("PRAGMA foreign_keys=ON")
        self.statements = [(f'INSERT OR REPLACE INTO "{t.table}" ({", ".join(t.cols)}) '
                            f'VALUES ({", ".join("?" * len(t.cols))})', t.rows) for t in run.tables]
        self.old = run.execution_id
        self.batch = batch
        self.done = 0

    def _rekey(self, row: list[Any], new: str) -> tuple[Any, ...]:
        return tuple(new if v == self.old else orjson.dumps(v.value).decode()
                     if isinstance(v, Json) else v for v in row)

    def write_for(self, seconds: float) -> tuple[int, float]:
        """(runs written, seconds taken), writing for about ``seconds``."""
        db = self.db
        first = self.done
        started = time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            db.execute("BEGIN")
            for _ in range(self.batch):
                new = uuid.uuid4().hex  # random, like the engine's ids (engine/store/ids.py)
                for sql, rows in self.statements:
                    db.executemany(sql, [self._rekey(row, new) for row in rows])
            db.execute("COMMIT")
            self.done += self.batch
        return self.done - first, time.perf_counter() - started

    def close(self) -> None:
        self.db.close()


class FloorWriter:
    """The least any recording store can do: raw sqlite3 storing only each run's payload,
    encoded once, one row a run, ``batch`` runs per commit."""

    def __init__(self, target_db: Path, payload: Callable[[int], Any], batch: int = 1):
        self.db = sqlite3.connect(target_db, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, payload TEXT)")
        self.payload = payload
        self.batch = batch
        self.done = 0

    def write_for(self, seconds: float) -> tuple[int, float]:
        first = self.done
        started = time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT INTO runs VALUES (?, ?)",
                                [(uuid.uuid4().hex, orjson.dumps(self.payload(n)).decode())
                                 for n in range(self.done, self.done + self.batch)])
            self.db.execute("COMMIT")
            self.done += self.batch
        return self.done - first, time.perf_counter() - started

    def close(self) -> None:
        self.db.close()


def file_bytes(db: Path) -> int:
    """The store's size on disk with its WAL checkpointed into it."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())
