"""The initial snapshot of the PostgreSQL CDC source (``mode: snapshot``).

The rows are read in the snapshot a new replication slot exported, so they are exactly
the tables as of the slot's starting point and the stream carries on from there without a
gap or an overlap. The slot is made TEMPORARY (it dies with the process) and copied into
the named, permanent slot only once every row's delivery was acknowledged: the named slot
existing means the snapshot is complete. A process killed mid-snapshot leaves nothing, and
its restart takes a new snapshot (at a new LSN, so rows delivered before the kill are
delivered again with their current values, under new ids: at least once, nothing lost).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from engine.connectors import pg_cdc_catalog as catalog
from engine.connectors.pg_cdc_events import snapshot_event
from engine.connectors.pgoutput import convert, parse_lsn
from engine.connectors.types import ConnectorError, Delivery

DeliverAll = Callable[[Sequence[Delivery]], Awaitable[None]]


def _create_exported_slot(dsn: str, name: str) -> tuple[Any, int, str]:
    """A temporary pgoutput slot on a replication connection, which is returned open: the
    exported snapshot lives as long as that connection runs no other command."""
    import psycopg

    conn = psycopg.connect(dsn, autocommit=True, replication="database")
    try:
        # Replication commands only speak the simple query protocol: libpq's exec.
        result = conn.pgconn.exec_(
            f'CREATE_REPLICATION_SLOT "{name}" TEMPORARY LOGICAL pgoutput '
            "(SNAPSHOT 'export')".encode())
        if result.status != 2:  # PGRES_TUPLES_OK
            message = (result.error_message or b"").decode(errors="replace").strip()
            raise ConnectorError(f"could not create the snapshot's replication slot: {message}")
        point = (result.get_value(0, 1) or b"").decode()
        snapshot = (result.get_value(0, 2) or b"").decode()
    except BaseException:
        conn.close()
        raise
    return conn, parse_lsn(point), snapshot


async def take_snapshot(dsn: str, slot: str, tables: list[tuple[str, str]], *, source: str,
                        prefix: str, batch_size: int, deliver_all: DeliverAll,
                        session: Callable[[Any], Awaitable[None]]) -> int:
    """Deliver every row of ``tables`` (each acknowledged), then make the slot ``slot`` at
    the snapshot's point. Returns that point (an LSN)."""
    import psycopg
    from psycopg import sql

    temporary = f"{slot[:40]}_snap_{os.getpid():x}"
    replication, point, exported = await asyncio.to_thread(_create_exported_slot, dsn,
                                                           temporary)
    try:
        reader = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        try:
            await session(reader)
            await reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            await reader.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(
                sql.Literal(exported)))
            for schema, table in tables:
                typed = await catalog.columns(reader, schema, table)
                keys = await catalog.key_columns(reader, schema, table)
                if not typed:
                    raise ConnectorError(f"the table {schema}.{table} has no columns to read")
                query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
                    sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(n))
                                       for n, _ in typed),
                    sql.Identifier(schema, table),
                    sql.SQL(", ").join(sql.Identifier(k) for k in keys) if keys
                    else sql.SQL("ctid"))
                ordinal = 0
                async with reader.cursor(name="wfstudio_snapshot") as cursor:
                    await cursor.execute(query)
                    while rows := await cursor.fetchmany(batch_size):
                        batch = []
                        for values in rows:
                            row = {n: (None if v is None else convert(oid, v))
                                   for (n, oid), v in zip(typed, values, strict=True)}
                            batch.append(Delivery(snapshot_event(
                                source, prefix, schema, table, row, keys, snapshot_lsn=point,
                                ordinal=ordinal)))
                            ordinal += 1
                        await deliver_all(batch)
            await reader.execute("COMMIT")
            await reader.execute("SELECT pg_copy_logical_replication_slot(%s, %s, false)",
                                 (temporary, slot))
        finally:
            await reader.close()
    finally:
        await asyncio.to_thread(replication.close)  # drops the temporary slot
    return point
