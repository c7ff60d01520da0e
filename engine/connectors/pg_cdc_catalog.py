"""The catalog side of the PostgreSQL CDC source: the publication, the slot, table keys.

Every statement names objects through ``psycopg.sql.Identifier`` (config values are never
pasted into SQL text).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.connectors.types import ConnectorError


@dataclass
class SlotState:
    plugin: str
    database: str
    confirmed_flush: str | None
    active_pid: int | None


def split_table(name: str) -> tuple[str, str]:
    """``schema.table`` or ``table`` (schema ``public``)."""
    schema, dot, table = name.partition(".")
    return (schema, table) if dot else ("public", schema)


async def ensure_publication(conn: Any, publication: str, tables: list[str]) -> bool:
    """Create the publication for ``tables`` when it does not exist; True if created."""
    from psycopg import errors, sql

    cur = await conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,))
    if await cur.fetchone() is not None:
        return False
    if not tables:
        raise ConnectorError(
            f"the publication {publication!r} does not exist: create it (CREATE PUBLICATION "
            f"{publication} FOR TABLE ...) or list the tables in the connector's 'tables'")
    names = sql.SQL(", ").join(sql.Identifier(*split_table(t)) for t in tables)
    try:
        await conn.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
            sql.Identifier(publication), names))
    except errors.DuplicateObject:
        return False  # another process made it meanwhile
    except errors.UndefinedTable as exc:
        raise ConnectorError(f"cannot publish the tables {tables}: {exc}".strip()) from None
    return True


async def publication_tables(conn: Any, publication: str) -> list[tuple[str, str]]:
    cur = await conn.execute(
        "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s "
        "ORDER BY schemaname, tablename", (publication,))
    return [(str(s), str(t)) for s, t in await cur.fetchall()]


async def slot_state(conn: Any, slot: str) -> SlotState | None:
    cur = await conn.execute(
        "SELECT plugin, database, confirmed_flush_lsn::text, active_pid "
        "FROM pg_replication_slots WHERE slot_name = %s", (slot,))
    row = await cur.fetchone()
    if row is None:
        return None
    return SlotState(str(row[0]), str(row[1]), row[2], row[3])


async def check_slot(conn: Any, slot: str, state: SlotState) -> None:
    """A slot of another plugin or database cannot be read by this source: say so."""
    cur = await conn.execute("SELECT current_database()")
    database = (await cur.fetchone())[0]
    if state.plugin != "pgoutput" or state.database != database:
        raise ConnectorError(
            f"the replication slot {slot!r} belongs to database {state.database!r} with "
            f"plugin {state.plugin!r}; this source needs a pgoutput slot of {database!r}: "
            "name another slot, or drop that one (pg_drop_replication_slot)")


async def key_columns(conn: Any, schema: str, table: str) -> list[str]:
    """The primary key's columns in key order (else the replica identity index's)."""
    cur = await conn.execute(
        "SELECT i.indexrelid, a.attname FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE n.nspname = %s AND c.relname = %s AND (i.indisprimary OR i.indisreplident) "
        "ORDER BY i.indisprimary DESC, k.ord", (schema, table))
    rows = await cur.fetchall()
    # The first index's columns only (the primary key when there is one).
    return [str(name) for index, name in rows if index == rows[0][0]]


async def columns(conn: Any, schema: str, table: str) -> list[tuple[str, int]]:
    """(name, type OID) of the table's live columns, in order."""
    cur = await conn.execute(
        "SELECT a.attname, a.atttypid::int FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum", (schema, table))
    return [(str(n), int(t)) for n, t in await cur.fetchall()]
