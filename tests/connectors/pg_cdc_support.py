"""Shared parts of the PostgreSQL CDC tests: a database of the test's own, its slots
dropped at the end (a leftover slot pins WAL for ever), and the pipeline file."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"


@dataclass
class CdcDatabase:
    dsn: str
    slot: str
    publication: str
    extra_slots: list[str] = field(default_factory=list)

    def sql(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def slots(self) -> dict[str, dict[str, Any]]:
        rows = self.sql("SELECT slot_name, confirmed_flush_lsn::text, temporary, active "
                        "FROM pg_replication_slots WHERE database = current_database()")
        return {r[0]: {"confirmed": r[1], "temporary": r[2], "active": r[3]} for r in rows}

    def confirmed_at_least(self, lsn: str) -> bool:
        rows = self.sql("SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots "
                        "WHERE slot_name = %s", (lsn, self.slot))
        return bool(rows and rows[0][0])

    def pending_changes(self) -> int:
        """Rows the slot would hand out now (peeked: nothing consumed)."""
        rows = self.sql("SELECT count(*) FROM pg_logical_slot_peek_binary_changes(%s, NULL, "
                        "NULL, 'proto_version', '1', 'publication_names', %s) "
                        "WHERE get_byte(data, 0) IN (73, 85, 68)",  # I, U, D
                        (self.slot, self.publication))
        return int(rows[0][0])

    def peek_rows(self) -> int:
        """Every message the slot would hand the source now, messages included."""
        rows = self.sql("SELECT count(*) FROM pg_logical_slot_peek_binary_changes(%s, NULL, "
                        "NULL, 'proto_version', '1', 'publication_names', %s, "
                        "'messages', 'true')", (self.slot, self.publication))
        return int(rows[0][0])

    def wal_lsn(self) -> str:
        return str(self.sql("SELECT pg_current_wal_lsn()::text")[0][0])

    def drop_slots(self) -> None:
        for name in self.slots():
            self.sql("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                     "WHERE slot_name = %s AND active_pid IS NOT NULL", (name,))
            self.sql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                     "WHERE slot_name = %s AND NOT active", (name,))


@pytest.fixture
def cdc_db(fresh_pg_url: Callable[[], str]) -> Iterator[CdcDatabase]:
    """A new database with a unique slot and publication name; its slots go at the end
    (before the session drops the database, which a slot would block)."""
    suffix = uuid.uuid4().hex[:10]
    db = CdcDatabase(fresh_pg_url(), slot=f"wfs_cdc_{suffix}", publication=f"wfs_pub_{suffix}")
    try:
        yield db
    finally:
        from tests.waiting import wait_until

        db.drop_slots()
        wait_until(lambda: _dropped(db),
                   "the test's replication slots to be dropped", timeout=30, interval=0.2)


def pipeline_file(db: CdcDatabase, *, mode: str = "stream", tables: list[str] | None = None,
                  types: str = "pg.*", steps: str | None = None, **config: Any) -> str:
    settings = {"dsn": db.dsn, "publication": db.publication, "slot": db.slot, "mode": mode,
                "tables": tables if tables is not None else ["public.items"], **config}
    import json

    body = steps or ("      - {name: out, type: step.pipeline_output, "
                     "config: {values: {op: \"{{ .data.op }}\"}}}\n")
    return ("connectors:\n"
            "  - name: changes\n"
            "    type: source.postgres_cdc\n"
            f"    config: {json.dumps(settings)}\n"
            "pipelines:\n"
            "  on_change:\n"
            "    record: full\n"
            f"    trigger: {{type: event, config: {{connector: changes, type: \"{types}\"}}}}\n"
            "    steps:\n" + body)


def _dropped(db: CdcDatabase) -> bool:
    db.drop_slots()  # a slot whose reader was just terminated may still show as active
    return not db.slots()
