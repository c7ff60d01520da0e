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
from sqlalchemy.dialects import postgresql, sqlite

from engine.store import models

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


def _insert(store: Store) -> Any:
    return postgresql.insert if store.dialect == "postgresql" else sqlite.insert


def take(store: Store, tenant: str, admissions: Sequence[Admission],
         dead: Sequence[DeadLetter] = ()) -> tuple[list[Taken], list[Taken]]:
    """Record a batch in one transaction; returns what happened to each admission and
    each dead letter, in order.

    A handful of statements per batch, not per event: one multi-row insert of dedup rows
    (``ON CONFLICT DO NOTHING RETURNING``: the ids it returns are the new events), one of
    execution starts or DLQ entries for those, one update counting the redeliveries.
    """
    now = time.time()
    dlq = models.dlq_entries
    entries = {d.event_id: uuid.uuid4().hex for d in dead}
    rows = [_row(tenant, a.source, a.event_id, a.type, a.pipeline, STARTED, a.execution_id,
                 None, 1, now, a.envelope) for a in admissions]
    rows += [_row(tenant, d.source, d.event_id, d.type, d.pipeline, DEAD, None,
                  entries[d.event_id], d.attempt, now, None) for d in dead]
    with store.begin() as conn:
        new = _insert_new(store, conn, rows)
        starts = [a for a in admissions if (a.source, a.event_id, a.execution_id) in new]
        if starts:
            conn.execute(models.executions.insert(), [{
                "id": a.execution_id, "pipeline": a.pipeline, "status": "running",
                "trigger_type": a.trigger_type, "trigger_payload": a.recorded_trigger,
                "started_at": now, "definition_hash": a.definition_hash, "tenant": tenant,
                "event_count": 0, "owner": store.instance_id} for a in starts])
        letters = [d for d in dead if (d.source, d.event_id, None) in new]
        if letters:
            conn.execute(dlq.insert(), [{
                "id": entries[d.event_id], "tenant": tenant, "pipeline": d.pipeline,
                "step": None, "execution_id": None, "payload": d.envelope, "error": d.error,
                "error_type": d.error_type, "status": "pending", "retry_count": 0,
                "max_retries": d.max_retries, "created": now, "updated": now,
                "last_retry_id": None, "owner": None, "resolved": None} for d in letters])
        again = [(r["source"], r["event_id"]) for r in rows
                 if (r["source"], r["event_id"], r["execution_id"]) not in new]
        earlier = _redelivered(conn, tenant, again, now) if again else {}
    started = [Taken(True, a.execution_id) if (a.source, a.event_id, a.execution_id) in new
               else earlier.get((a.source, a.event_id), Taken(False)) for a in admissions]
    lettered = [Taken(True, dlq_entry=entries[d.event_id])
                if (d.source, d.event_id, None) in new
                else earlier.get((d.source, d.event_id), Taken(False)) for d in dead]
    return started, lettered


def _row(tenant: str, source: str, event_id: str, type: str | None, pipeline: str,
         status: str, execution_id: str | None, dlq_entry: str | None, deliveries: int,
         now: float, payload: Any) -> dict[str, Any]:
    return {"tenant": tenant, "source": source, "event_id": event_id, "type": type,
            "pipeline": pipeline, "status": status, "execution_id": execution_id,
            "dlq_entry": dlq_entry, "deliveries": deliveries, "received": now, "updated": now,
            "payload": payload}


def _insert_new(store: Store, conn: Connection,
                rows: list[dict[str, Any]]) -> set[tuple[str, str, str | None]]:
    """Insert the dedup rows that are not there yet; returns (source, event id, execution
    id) of those inserted. An id twice in one batch: its first row only."""
    first: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        first.setdefault((row["source"], row["event_id"]), row)
    if not first:
        return set()
    se = models.source_events
    stmt = (_insert(store)(se).on_conflict_do_nothing()
            .returning(se.c.source, se.c.event_id, se.c.execution_id))
    inserted = conn.execute(stmt, list(first.values())) if len(first) == 1 else None
    if inserted is not None:
        return {(r.source, r.event_id, r.execution_id) for r in inserted}
    # executemany cannot return rows on every driver: multi-row VALUES instead, in chunks
    # that stay under the drivers' bound-parameter limits (SQLite 32,766; PostgreSQL 65,535)
    values = list(first.values())
    new: set[tuple[str, str, str | None]] = set()
    for at in range(0, len(values), 1000):
        stmt = (_insert(store)(se).values(values[at:at + 1000]).on_conflict_do_nothing()
                .returning(se.c.source, se.c.event_id, se.c.execution_id))
        new.update((r.source, r.event_id, r.execution_id) for r in conn.execute(stmt))
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
    se = models.source_events
    now = time.time()
    with store.begin() as conn:
        for source, event_id, execution_id in ended:
            conn.execute(update(se).where(
                se.c.tenant == tenant, se.c.source == source, se.c.event_id == event_id,
                se.c.execution_id == execution_id, se.c.status == STARTED,
            ).values(status=DONE, payload=None, updated=now))


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
