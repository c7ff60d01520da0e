"""``source.postgres_cdc``: row changes of PostgreSQL tables, by logical decoding.

Transport: SQL polling of the slot with ``pg_logical_slot_peek_binary_changes`` (pgoutput,
protocol 1), decoded here (``pgoutput.py``). Peeking consumes nothing: the slot moves on
(``pg_replication_slot_advance``) only to the end of the last transaction whose every
change ``intake.deliver`` returned as acknowledged, so a change is confirmed only once its
execution's start (or DLQ entry) is durable, and anything not confirmed is read again
after a stop, a crash or a refused batch (same ids, so the intake's dedup drops repeats).
psycopg 3 has no streaming replication protocol; polling every ``poll_interval`` (20 ms)
meets the latency goal without a second driver (insert -> execution started p95 ~55-60 ms,
``benchmarks/bench_sources_cdc.py``; psycopg2's streaming would save ~10 ms a change, see
docs/connectors/postgres-cdc.md), and a refused batch is simply read again by the next
peek. A look at an idle slot first asks for the WAL flush point (~0.1 ms) and peeks
(0.5-3 ms: a decoding pass) only when it moved.

An idle slot still pins WAL that other tables and databases write: every
``heartbeat_seconds`` without progress, a tiny transactional logical message is written;
its commit shows up in the slot and gives it a point to advance to.

One process reads a slot at a time: the run holds ``intake.lock("cdc:<slot>")`` (an
advisory lock across processes on a PostgreSQL store, in-process on SQLite).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.connectors import pg_cdc_catalog as catalog
from engine.connectors.pg_cdc_events import change_event, truncate_event
from engine.connectors.pgoutput import (
    Begin,
    Change,
    Commit,
    Decoder,
    Message,
    Relation,
    Truncate,
    lsn_text,
    parse_lsn,
)
from engine.connectors.types import ConnectorError, Delivery, Intake, Outcome, SourceType, source_schema
from engine.store.identity import StoreReached, check_async_postgres

if TYPE_CHECKING:
    from engine.steps.base import Registry

HEARTBEAT_PREFIX = "wfstudio.cdc.heartbeat"
LAG_EVERY = 1.0  # seconds between slot lag reports while idle
REFUSED_BACKOFF = (0.2, 5.0)  # wait before re-reading changes the intake refused

_IDENT = "^[A-Za-z_][A-Za-z0-9_$]*$"
SCHEMA = source_schema({
    "dsn": {"type": "string", "minLength": 1,
            "description": "libpq connection string or URL of the database to follow"},
    "publication": {"type": "string", "pattern": _IDENT, "maxLength": 63,
                    "description": "the publication naming the tables; created (for "
                                   "'tables') when absent"},
    "slot": {"type": "string", "pattern": "^[a-z0-9_]+$", "maxLength": 50,
             "description": "the logical replication slot (pgoutput); created when absent"},
    "tables": {"type": "array", "items": {
        "type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_$]*(\\.[A-Za-z_][A-Za-z0-9_$]*)?$"},
        "description": "schema.table (or table, in public) to publish when the publication "
                       "is created; the snapshot reads the publication's tables"},
    "mode": {"enum": ["snapshot", "stream"], "default": "stream",
             "description": "snapshot: the tables' rows first, then their changes; stream: "
                            "changes from the slot's creation on"},
    "heartbeat_seconds": {"type": "number", "minimum": 0.1, "default": 10,
                          "description": "seconds without progress before a heartbeat lets "
                                         "an idle slot advance (so it pins no WAL)"},
    "type_prefix": {"type": "string", "pattern": "^[A-Za-z0-9_.-]+$", "default": "pg",
                    "description": "events are typed <prefix>.<schema>.<table>.<op>"},
    "poll_interval": {"type": "number", "minimum": 0.001, "maximum": 60, "default": 0.02,
                      "description": "seconds between looks at an idle slot"},
    "batch_size": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 500,
                   "description": "changes read at most per look (whole transactions)"},
    "lag_alert": {"type": "number", "minimum": 0,
                  "description": "WAL bytes behind past which the source shows as lagging "
                                 "(e.g. 16777216; the runtime's default, 1000, is small)"},
}, required=["dsn", "publication", "slot"])

EXAMPLE = {"dsn": "postgresql://postgres@127.0.0.1:5432/shop", "publication": "wfstudio_orders",
           "slot": "wfstudio_orders", "tables": ["public.orders"], "mode": "snapshot"}


@dataclass
class _Transaction:
    end_lsn: int  # confirming this point takes the transaction off the slot
    deliveries: list[Delivery] = field(default_factory=list)


class PostgresCdcSource:
    def __init__(self, name: str, config: dict[str, Any]):
        self.name = name
        self.dsn = str(config["dsn"])
        self.publication = str(config["publication"])
        self.slot = str(config["slot"])
        if not re.fullmatch(r"[a-z0-9_]{1,50}", self.slot):  # it is spelled into a command
            raise ConnectorError(f"slot {self.slot!r}: use 1-50 lowercase letters, digits "
                                 "or underscores")
        self.tables = [str(t) for t in config.get("tables") or []]
        self.mode = str(config.get("mode", "stream"))
        self.heartbeat = float(config.get("heartbeat_seconds", 10))
        self.prefix = str(config.get("type_prefix", "pg"))
        self.poll_interval = float(config.get("poll_interval", 0.02))
        self.batch_size = int(config.get("batch_size", 500))
        self.decoder = Decoder()
        self._keys: dict[int, list[str]] = {}  # relation oid -> key columns
        self._attempts: dict[str, int] = {}  # event id -> reads in this process (refused ones)
        self._conn: Any = None
        self._source = ""
        self.confirmed = 0  # the slot's confirmed point as this process last set or saw it

    # ------------------------------------------------------------------ lifecycle

    async def run(self, intake: Intake) -> None:
        async with intake.lock(f"cdc:{self.slot}"):
            import psycopg

            try:
                self._conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
            except psycopg.OperationalError as exc:
                raise ConnectorError(f"cannot connect to PostgreSQL: {exc}".strip()) from None
            try:  # the event store holds every tenant's data: no source may read its changes
                await check_async_postgres(self._conn)
            except StoreReached as exc:
                raise ConnectorError(f"source {self.name!r}: the dsn reaches a database this "
                                     f"source may not read: {exc}; point it at your "
                                     "application's database") from None
            await _session(self._conn)
            info = self._conn.info
            self._source = f"postgresql://{info.host}:{info.port}/{info.dbname}/{self.slot}"
            await self._prepare(intake)
            await self._stream(intake)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def _prepare(self, intake: Intake) -> None:
        """The publication and the slot, made when absent (a snapshot first, in that mode)."""
        conn = self._conn
        await catalog.ensure_publication(conn, self.publication, self.tables)
        state = await catalog.slot_state(conn, self.slot)
        if state is not None:
            await catalog.check_slot(conn, self.slot, state)
            self.confirmed = parse_lsn(state.confirmed_flush) if state.confirmed_flush else 0
            return
        if self.mode == "snapshot":
            from engine.connectors.pg_cdc_snapshot import take_snapshot

            tables = await catalog.publication_tables(conn, self.publication)
            self.confirmed = await take_snapshot(
                self.dsn, self.slot, tables, source=self._source, prefix=self.prefix,
                batch_size=self.batch_size, deliver_all=lambda b: self._deliver_all(intake, b),
                session=_session)
            return
        cur = await conn.execute(
            "SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'pgoutput')",
            (self.slot,))
        self.confirmed = parse_lsn((await cur.fetchone())[0])

    async def _deliver_all(self, intake: Intake, batch: Sequence[Delivery]) -> None:
        """Deliver until every one is acknowledged (the snapshot cannot be re-read later)."""
        pending = list(batch)
        delay = REFUSED_BACKOFF[0]
        while pending:
            outcomes = await intake.deliver(pending)
            taken = sum(o.acknowledge for o in outcomes)
            intake.acknowledged(taken)
            pending = [Delivery(d.event, d.attempt + 1) for d, o in zip(pending, outcomes,
                                                                        strict=True)
                       if not o.acknowledge]
            if pending:
                await asyncio.sleep(delay)
                delay = min(delay * 2, REFUSED_BACKOFF[1])

    # ------------------------------------------------------------------ the stream

    async def _stream(self, intake: Intake) -> None:
        progress = time.monotonic()  # when the slot last advanced (or a heartbeat was sent)
        lag_at = 0.0
        delay = REFUSED_BACKOFF[0]
        seen_flush: str | None = None  # the WAL flush point an empty peek had read up to
        while True:
            # A peek decodes up to the flush point; if it has not moved since a peek that
            # found nothing, there is nothing new (one cheap query instead of a decode).
            cur = await self._conn.execute("SELECT pg_current_wal_flush_lsn()::text")
            flush = str((await cur.fetchone())[0])
            rows = [] if flush == seen_flush else await self._peek()
            seen_flush = flush if not rows else None
            transactions = await self._transactions(rows)
            if transactions:
                advanced, fully = await self._take(intake, transactions)
                if advanced:
                    progress = time.monotonic()
                    await self._report_lag(intake)
                    lag_at = time.monotonic()
                if fully:
                    delay = REFUSED_BACKOFF[0]
                    if len(rows) >= self.batch_size:
                        continue  # more may be waiting: look again at once
                else:  # the intake refused some: they are read again after a pause
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, REFUSED_BACKOFF[1])
                    continue
            now = time.monotonic()
            if now - progress >= self.heartbeat:
                await self._conn.execute("SELECT pg_logical_emit_message(true, %s, %s)",
                                         (HEARTBEAT_PREFIX, self.slot))
                progress = now
            if now - lag_at >= LAG_EVERY:
                await self._report_lag(intake)
                lag_at = now
            await asyncio.sleep(self.poll_interval)

    async def _peek(self) -> list[tuple[str, bytes]]:
        from psycopg import errors

        try:
            cur = await self._conn.execute(
                "SELECT lsn::text, data FROM pg_logical_slot_peek_binary_changes("
                "%s, NULL, %s, 'proto_version', '1', 'publication_names', %s, "
                "'messages', 'true')", (self.slot, self.batch_size, _quoted(self.publication)))
        except errors.UndefinedObject as exc:
            raise ConnectorError(f"the slot or publication is gone ({exc}); the source "
                                 "makes them again when it restarts".strip()) from None
        except errors.ObjectInUse as exc:
            raise ConnectorError(f"another process is reading the slot {self.slot!r}: "
                                 f"{exc}".strip()) from None
        return [(str(lsn), bytes(data)) for lsn, data in await cur.fetchall()]

    async def _transactions(self, rows: list[tuple[str, bytes]]) -> list[_Transaction]:
        """The complete transactions among ``rows``, each with its changes' deliveries."""
        done: list[_Transaction] = []
        begin: Begin | None = None
        changes: list[Delivery] = []
        for _lsn, data in rows:
            message = self.decoder.decode(data)
            if isinstance(message, Begin):
                begin, changes = message, []
            elif isinstance(message, Commit):
                if begin is not None:
                    done.append(_Transaction(message.end_lsn, changes))
                begin, changes = None, []
            elif isinstance(message, Change) and begin is not None:
                keys = await self._key_columns(message.relation)
                event = change_event(self._source, self.prefix, message, keys,
                                     commit_lsn=begin.final_lsn, index=len(changes),
                                     commit_time=begin.commit_time)
                changes.append(self._delivery(event))
            elif isinstance(message, Truncate) and begin is not None:
                for relation in message.relations:
                    event = truncate_event(self._source, self.prefix, relation,
                                           cascade=message.cascade,
                                           restart_identity=message.restart_identity,
                                           commit_lsn=begin.final_lsn, index=len(changes),
                                           commit_time=begin.commit_time)
                    changes.append(self._delivery(event))
            elif isinstance(message, Message) and not message.transactional:
                # Nothing to deliver, but a point to confirm (the LSN a message carries is
                # the end of its record, so it is not handed out again).
                done.append(_Transaction(message.lsn))
        return done

    def _delivery(self, event: dict[str, Any]) -> Delivery:
        attempt = self._attempts.get(event["id"], 0) + 1
        return Delivery(event, attempt, token=event["id"])

    async def _key_columns(self, relation: Relation) -> list[str]:
        keys = self._keys.get(relation.oid)
        if keys is None:
            keys = await catalog.key_columns(self._conn, relation.schema, relation.table)
            if not keys:  # no primary key: the replica identity the server reports
                keys = [c.name for c in relation.columns if c.key]
            self._keys[relation.oid] = keys
        return keys

    async def _take(self, intake: Intake, transactions: list[_Transaction]) -> tuple[bool, bool]:
        """Deliver, then confirm up to the last transaction acknowledged whole. Returns
        (the slot advanced, everything was acknowledged)."""
        batch = [d for t in transactions for d in t.deliveries]
        outcomes = await intake.deliver(batch) if batch else []
        by_id = dict(zip((d.event["id"] for d in batch), outcomes, strict=True))
        point, acknowledged, fully = 0, 0, True
        for transaction in transactions:
            if not all(by_id[d.event["id"]].acknowledge for d in transaction.deliveries):
                fully = False
                break
            point = transaction.end_lsn
            acknowledged += len(transaction.deliveries)
        for delivery in batch:
            if by_id[delivery.event["id"]] is Outcome.REFUSED:
                self._attempts[delivery.event["id"]] = delivery.attempt
            else:
                self._attempts.pop(delivery.event["id"], None)
        advanced = False
        if point > self.confirmed:
            await self._conn.execute(
                "SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (self.slot, lsn_text(point)))
            self.confirmed = point
            advanced = True
        if acknowledged:
            intake.acknowledged(acknowledged)
        return advanced, fully

    async def _report_lag(self, intake: Intake) -> None:
        cur = await self._conn.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) "
            "FROM pg_replication_slots WHERE slot_name = %s", (self.slot,))
        row = await cur.fetchone()
        intake.report_lag(float(row[0]) if row is not None and row[0] is not None else None)


async def _session(conn: Any) -> None:
    """Values in text as the decoder and snapshot expect them: ISO dates, UTC offsets."""
    await conn.execute("SET DateStyle = 'ISO, YMD'")
    await conn.execute("SET TimeZone = 'UTC'")
    await conn.execute("SET IntervalStyle = 'iso_8601'")


def _quoted(name: str) -> str:
    """publication_names is a list parsed like identifiers: quote so case is kept."""
    return '"' + name.replace('"', '""') + '"'


def factory(name: str, config: dict[str, Any]) -> PostgresCdcSource:
    return PostgresCdcSource(name, config)


def register(registry: Registry) -> None:
    kind = SourceType(
        "source.postgres_cdc", factory,
        "Row changes (insert, update, delete, truncate) of PostgreSQL tables by logical "
        "decoding (pgoutput); optionally the tables' rows first. One event per change, "
        "confirmed to the slot only once recorded.", SCHEMA, EXAMPLE,
        lag_unit="bytes of WAL", lag_alert=16 * 1024 * 1024)
    registry.add_source(kind)
