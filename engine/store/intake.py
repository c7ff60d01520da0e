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

from sqlalchemy import Connection, and_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from engine.store import models

if TYPE_CHECKING:
    from engine.store.store import Store

STARTED, DONE, DEAD = "started", "done", "dead"


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
    each dead letter, in order."""
    now = time.time()
    se, ex, dlq = models.source_events, models.executions, models.dlq_entries
    insert = _insert(store)
    started: list[Taken] = []
    lettered: list[Taken] = []
    with store.begin() as conn:
        for a in admissions:
            row = {"tenant": tenant, "source": a.source, "event_id": a.event_id, "type": a.type,
                   "pipeline": a.pipeline, "status": STARTED, "execution_id": a.execution_id,
                   "dlq_entry": None, "deliveries": 1, "received": now, "updated": now,
                   "payload": a.envelope}
            if conn.execute(insert(se).values(row).on_conflict_do_nothing()).rowcount:
                conn.execute(ex.insert().values(
                    id=a.execution_id, pipeline=a.pipeline, status="running",
                    trigger_type="event", trigger_payload=a.recorded_trigger, started_at=now,
                    definition_hash=a.definition_hash, tenant=tenant, event_count=0,
                    owner=store.instance_id))
                started.append(Taken(True, a.execution_id))
            else:
                started.append(_redelivered(conn, tenant, a.source, a.event_id, now))
        for d in dead:
            entry = uuid.uuid4().hex
            row = {"tenant": tenant, "source": d.source, "event_id": d.event_id, "type": d.type,
                   "pipeline": d.pipeline, "status": DEAD, "execution_id": None,
                   "dlq_entry": entry, "deliveries": d.attempt, "received": now, "updated": now,
                   "payload": None}
            if conn.execute(insert(se).values(row).on_conflict_do_nothing()).rowcount:
                conn.execute(dlq.insert().values(
                    id=entry, tenant=tenant, pipeline=d.pipeline, step=None, execution_id=None,
                    payload=d.envelope, error=d.error, error_type=d.error_type,
                    status="pending", retry_count=0, max_retries=d.max_retries, created=now,
                    updated=now))
                lettered.append(Taken(True, dlq_entry=entry))
            else:
                lettered.append(_redelivered(conn, tenant, d.source, d.event_id, now))
    return started, lettered


def _redelivered(conn: Connection, tenant: str, source: str, event_id: str,
                 now: float) -> Taken:
    se = models.source_events
    key = and_(se.c.tenant == tenant, se.c.source == source, se.c.event_id == event_id)
    conn.execute(update(se).where(key).values(deliveries=se.c.deliveries + 1, updated=now))
    found = conn.execute(select(se.c.execution_id, se.c.dlq_entry).where(key)).first()
    return Taken(False, found.execution_id if found else None, found.dlq_entry if found else None)


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
            trigger_type="event", trigger_payload=admission.recorded_trigger, started_at=now,
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
