"""The store's side of taking events in: dedup records, starts and dead letters, in one
transaction per batch, so that an acknowledged event has exactly one of them.

A new event gets a ``source_events`` row (status ``started``, its envelope kept) and its
execution's ``executions`` row (``running``, owned by this instance) together; a
redelivered one (same tenant, source and CloudEvents id) finds its row and starts nothing.
When the execution ends, ``finish`` marks the row ``done`` and drops the envelope. An
execution that crash recovery marked ``interrupted`` is run again from the kept envelope
(``interrupted`` / ``claim_rerun``), by exactly one process.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select, tuple_, update

from engine.store import models
from engine.store.codec import dumps

if TYPE_CHECKING:
    from engine.store.store import Store

STARTED, DONE, DEAD = "started", "done", "dead"
# An execution in one of these has ended; "interrupted" is run again instead.
ENDED_EXECUTION = ("completed", "failed", "cancelled", "compensated")


@dataclass
class Admission:
    """An event that is to start ``execution_id`` of ``pipeline``."""

    source: str
    event_id: str
    type: str | None
    pipeline: str
    execution_id: str
    envelope: Any  # as received (kept until the execution ends)
    recorded_trigger: Any  # as the execution's row keeps it (redacted per ``record``)
    definition_hash: str
    attempt: int = 1
    trigger_type: str = "event"  # "schedule" for a schedule's fires


@dataclass
class DeadLetter:
    """An event that goes to the DLQ instead (its schema failed, or it came too often)."""

    source: str
    event_id: str
    type: str | None
    pipeline: str
    envelope: Any
    error: str
    error_type: str
    max_retries: int = 3
    attempt: int = 1


@dataclass
class Taken:
    new: bool  # False: a redelivery of an event already taken in
    execution_id: str | None = None  # the one it started (new) or started before
    dlq_entry: str | None = None


@dataclass
class Unfinished:
    """An event whose execution a dead process left interrupted."""

    tenant: str
    source: str
    event_id: str
    pipeline: str
    execution_id: str
    envelope: Any


# The hot statements go to the driver as text (``exec_driver_sql``): a multi-row insert
# compiled by SQLAlchemy for every batch cost more than the rest of the intake together
# (profiled: a third of a Redis-fed run's time). Placeholders: ``?`` on SQLite, ``%s``
# on PostgreSQL (psycopg); JSON goes in as text, cast to jsonb on PostgreSQL.
SE_COLS = ("tenant", "source", "event_id", "type", "pipeline", "status", "execution_id",
           "dlq_entry", "deliveries", "received", "updated", "payload")
EX_COLS = ("id", "pipeline", "status", "trigger_type", "trigger_payload", "started_at",
           "definition_hash", "tenant", "event_count", "owner")
DLQ_COLS = ("id", "tenant", "pipeline", "step", "execution_id", "payload", "error",
            "error_type", "status", "retry_count", "max_retries", "created", "updated")
_JSON = {"payload", "trigger_payload"}
CHUNK = 1000  # rows per multi-row insert: under both drivers' bound-parameter limits


class _Sql:
    def __init__(self, dialect: str):
        pg = dialect == "postgresql"
        self.p = "%s" if pg else "?"

        def value(col: str) -> str:
            return f"{self.p}::jsonb" if pg and col in _JSON else self.p
        self.se_row = "(" + ", ".join(value(c) for c in SE_COLS) + ")"
        self.se_insert = f"INSERT INTO source_events ({', '.join(SE_COLS)}) VALUES "
        self.se_tail = " ON CONFLICT DO NOTHING RETURNING source, event_id, execution_id"
        self.ex_insert = (f"INSERT INTO executions ({', '.join(EX_COLS)}) VALUES ("
                          + ", ".join(value(c) for c in EX_COLS) + ")")
        self.dlq_insert = (f"INSERT INTO dlq_entries ({', '.join(DLQ_COLS)}) VALUES ("
                           + ", ".join(value(c) for c in DLQ_COLS) + ")")
        p = self.p
        self.finish = (f"UPDATE source_events SET status = '{DONE}', payload = NULL, "
                       f"updated = {p} WHERE tenant = {p} AND source = {p} AND event_id = {p} "
                       f"AND execution_id = {p} AND status = '{STARTED}'")


_SQL: dict[str, _Sql] = {}


def _sql(store: Store) -> _Sql:
    sql = _SQL.get(store.dialect)
    if sql is None:
        sql = _SQL[store.dialect] = _Sql(store.dialect)
    return sql


def take(store: Store, tenant: str, admissions: Sequence[Admission],
         dead: Sequence[DeadLetter] = ()) -> tuple[list[Taken], list[Taken]]:
    """Record a batch in one transaction; returns what happened to each admission and
    each dead letter, in order.

    A handful of statements per batch, not per event: a multi-row insert of dedup rows
    (``ON CONFLICT DO NOTHING RETURNING``: the ids it returns are the new events), the
    execution starts or DLQ entries of those, one update counting the redeliveries.
    """
    now = time.time()
    sql = _sql(store)
    entries = {d.event_id: uuid.uuid4().hex for d in dead}
    rows: list[tuple[Any, ...]] = [
        (tenant, a.source, a.event_id, a.type, a.pipeline, STARTED, a.execution_id, None, 1,
         now, now, dumps(a.envelope)) for a in admissions]
    rows += [(tenant, d.source, d.event_id, d.type, d.pipeline, DEAD, None, entries[d.event_id],
              d.attempt, now, now, None) for d in dead]
    with store.begin() as conn:
        new = _insert_new(conn, sql, rows)
        starts = [(a.execution_id, a.pipeline, "running", a.trigger_type,
                   dumps(a.recorded_trigger), now, a.definition_hash, tenant, 0,
                   store.instance_id)
                  for a in admissions if (a.source, a.event_id, a.execution_id) in new]
        if starts:
            conn.exec_driver_sql(sql.ex_insert, starts)
        letters = [(entries[d.event_id], tenant, d.pipeline, None, None, dumps(d.envelope),
                    d.error, d.error_type, "pending", 0, d.max_retries, now, now)
                   for d in dead if (d.source, d.event_id, None) in new]
        if letters:
            conn.exec_driver_sql(sql.dlq_insert, letters)
        again = [(r[1], r[2]) for r in rows if (r[1], r[2], r[6]) not in new]
        earlier = _redelivered(conn, tenant, again, now) if again else {}
    started = [Taken(True, a.execution_id) if (a.source, a.event_id, a.execution_id) in new
               else earlier.get((a.source, a.event_id), Taken(False)) for a in admissions]
    lettered = [Taken(True, dlq_entry=entries[d.event_id])
                if (d.source, d.event_id, None) in new
                else earlier.get((d.source, d.event_id), Taken(False)) for d in dead]
    return started, lettered


def _insert_new(conn: Connection, sql: _Sql,
                rows: list[tuple[Any, ...]]) -> set[tuple[str, str, str | None]]:
    """Insert the dedup rows that are not there yet; returns (source, event id, execution
    id) of those inserted. An id twice in one batch: its first row only."""
    first: dict[tuple[str, str], tuple[Any, ...]] = {}
    for row in rows:
        first.setdefault((row[1], row[2]), row)
    values = list(first.values())
    new: set[tuple[str, str, str | None]] = set()
    for at in range(0, len(values), CHUNK):
        chunk = values[at:at + CHUNK]
        statement = sql.se_insert + ", ".join([sql.se_row] * len(chunk)) + sql.se_tail
        params = tuple(v for row in chunk for v in row)
        new.update((r[0], r[1], r[2]) for r in conn.exec_driver_sql(statement, params))
    return new


def _redelivered(conn: Connection, tenant: str, keys: list[tuple[str, str]],
                 now: float) -> dict[tuple[str, str], Taken]:
    """Count one more delivery of events already taken in; what each became the first time."""
    se = models.source_events
    found: dict[tuple[str, str], Taken] = {}
    for source in {s for s, _ in keys}:
        ids = [e for s, e in keys if s == source]
        where = (se.c.tenant == tenant, se.c.source == source, se.c.event_id.in_(ids))
        conn.execute(update(se).where(*where).values(deliveries=se.c.deliveries + 1,
                                                     updated=now))
        for r in conn.execute(select(se.c.event_id, se.c.execution_id, se.c.dlq_entry)
                              .where(*where)):
            found[(source, r.event_id)] = Taken(False, r.execution_id, r.dlq_entry)
    return found


def finish(store: Store, tenant: str, ended: Sequence[tuple[str, str, str]]) -> None:
    """Mark these (source, event id, execution id) done and drop their envelopes; a row
    another attempt has taken over since is left alone."""
    if not ended:
        return
    now = time.time()
    with store.begin() as conn:
        conn.exec_driver_sql(_sql(store).finish, [(now, tenant, source, event_id, execution_id)
                                                  for source, event_id, execution_id in ended])


def settle_ended(store: Store, tenant: str, source: str) -> int:
    """Mark done the started events whose execution ended without ``finish`` (its process
    died between the two); otherwise they would stay ``started``, envelope kept, forever.
    Returns how many."""
    se, ex = models.source_events, models.executions
    ended = select(ex.c.id).where(ex.c.id == se.c.execution_id,
                                  ex.c.status.in_(ENDED_EXECUTION)).exists()
    with store.begin() as conn:
        return int(conn.execute(update(se).where(
            se.c.tenant == tenant, se.c.source == source, se.c.status == STARTED, ended,
        ).values(status=DONE, payload=None, updated=time.time())).rowcount)


def interrupted(store: Store, tenant: str, source: str, limit: int = 500) -> list[Unfinished]:
    """Started events whose execution was marked interrupted (its process died), or whose
    execution row is gone."""
    se, ex = models.source_events, models.executions
    query = (select(se.c.source, se.c.event_id, se.c.pipeline, se.c.execution_id, se.c.payload)
             .select_from(se.outerjoin(ex, ex.c.id == se.c.execution_id))
             .where(se.c.tenant == tenant, se.c.source == source, se.c.status == STARTED,
                    (ex.c.status == "interrupted") | ex.c.id.is_(None))
             .order_by(se.c.received).limit(limit))
    with store.read() as conn:
        return [Unfinished(tenant, r.source, r.event_id, r.pipeline or "", r.execution_id or "",
                           r.payload) for r in conn.execute(query)]


def claim_rerun(store: Store, unfinished: Unfinished, admission: Admission) -> bool:
    """Point the event at a new execution (``admission``) in place of the interrupted one,
    writing its start; False when another process claimed it first."""
    se, ex = models.source_events, models.executions
    now = time.time()
    with store.begin() as conn:
        moved = conn.execute(update(se).where(
            se.c.tenant == unfinished.tenant, se.c.source == unfinished.source,
            se.c.event_id == unfinished.event_id, se.c.status == STARTED,
            se.c.execution_id == unfinished.execution_id,
        ).values(execution_id=admission.execution_id, updated=now)).rowcount
        if not moved:
            return False
        conn.execute(ex.insert().values(
            id=admission.execution_id, pipeline=admission.pipeline, status="running",
            trigger_type=admission.trigger_type, trigger_payload=admission.recorded_trigger,
            started_at=now,
            definition_hash=admission.definition_hash, tenant=unfinished.tenant,
            event_count=0, owner=store.instance_id, replay_of=unfinished.execution_id or None))
    return True


@dataclass
class DeliveryRow:
    source: str
    event_id: str
    type: str | None
    pipeline: str | None
    status: str
    execution_id: str | None
    dlq_entry: str | None
    deliveries: int
    received: float
    execution_status: str | None


def recent(store: Store, tenant: str, source: str, limit: int = 50) -> list[DeliveryRow]:
    """The source's latest deliveries, newest first, with their executions' status."""
    se, ex = models.source_events, models.executions
    query = (select(se.c.source, se.c.event_id, se.c.type, se.c.pipeline, se.c.status,
                    se.c.execution_id, se.c.dlq_entry, se.c.deliveries, se.c.received,
                    ex.c.status.label("execution_status"))
             .select_from(se.outerjoin(ex, ex.c.id == se.c.execution_id))
             .where(se.c.tenant == tenant, se.c.source == source)
             .order_by(se.c.received.desc(), se.c.event_id.desc()).limit(limit))
    with store.read() as conn:
        return [DeliveryRow(**r._mapping) for r in conn.execute(query)]


def last_event_id(store: Store, tenant: str, source: str, prefix: str) -> str | None:
    """The greatest event id of a source among those starting with ``prefix`` (a schedule's
    ids are ``<pipeline>@<UTC time>``, fixed-width: the greatest is its last fire)."""
    from sqlalchemy import func

    se = models.source_events
    query = select(func.max(se.c.event_id)).where(
        se.c.tenant == tenant, se.c.source == source,
        se.c.event_id.startswith(prefix, autoescape=True))
    with store.read() as conn:
        found: str | None = conn.execute(query).scalar()
    return found


def lookup(store: Store, tenant: str, source: str, event_ids: Sequence[str]) -> dict[str, DeliveryRow]:
    """The rows of these events of a source, by event id (for tests and the CLI)."""
    se, ex = models.source_events, models.executions
    query = (select(se.c.source, se.c.event_id, se.c.type, se.c.pipeline, se.c.status,
                    se.c.execution_id, se.c.dlq_entry, se.c.deliveries, se.c.received,
                    ex.c.status.label("execution_status"))
             .select_from(se.outerjoin(ex, ex.c.id == se.c.execution_id))
             .where(tuple_(se.c.tenant, se.c.source).in_([(tenant, source)]),
                    se.c.event_id.in_(list(event_ids))))
    with store.read() as conn:
        return {r.event_id: DeliveryRow(**r._mapping) for r in conn.execute(query)}
