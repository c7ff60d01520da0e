"""Crash recovery: what a dead engine process left half-done is closed, never left dangling.

An execution's rows are written in batches (recorder.py), so a process killed mid-run
leaves an ``executions`` row saying ``running`` (or ``paused``) and a prefix of its events.
Recovery finds the executions whose owner instance is dead (presence.py says how that is
proven) and, per execution, in one transaction: sets status ``interrupted`` with an error
saying the process stopped, appends an ``execution.interrupted`` event after its last
stored one, marks its running step runs ``interrupted`` and drops its pause. DLQ entries
the dead instance was retrying go back to ``pending``; its backfills become ``failed``.

On PostgreSQL it runs when a store opens and then every sweep interval, serialized by a
transaction advisory lock; on SQLite when a store opens and no other process has it open.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, delete, func, insert, or_, select, true, union, update

from engine.service.models import EventType
from engine.store import models
from engine.store.codec import dumps
from engine.store.presence import instance_key, lock_key

log = logging.getLogger(__name__)

ACTIVE_EXECUTION = ("running", "paused")
INTERRUPTED = "interrupted"
RECOVERY_LOCK = lock_key("wfstudio.recovery")


@dataclass
class Recovered:
    executions: list[str] = field(default_factory=list)
    dlq_entries: int = 0
    backfills: int = 0
    dead_instances: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.executions or self.dlq_entries or self.backfills or self.dead_instances)


def recover_pg(conn: Connection, me: str) -> Recovered:
    """Close what dead instances left (PostgreSQL), inside the caller's transaction.

    Every owner named by an unfinished row, and every registered instance, is probed: its
    liveness lock being free proves it dead (the registry is not trusted for that).
    """
    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({RECOVERY_LOCK})")
    ex, dlq, bf = models.executions, models.dlq_entries, models.backfills
    inst, pe = models.instances, models.paused_executions
    owners = union(
        select(ex.c.owner).where(ex.c.status.in_(ACTIVE_EXECUTION)),
        select(dlq.c.owner).where(dlq.c.status == "retrying"),
        select(bf.c.owner).where(bf.c.status.in_(("pending", "running"))),
        select(pe.c.owner), select(inst.c.id))
    candidates = {row[0] for row in conn.execute(owners)} - {None, me}
    # Succeeding proves the owner's connection (and process) gone; held to commit, so two
    # recoveries never close the same thing twice.
    dead = sorted(i for i in candidates
                  if conn.exec_driver_sql(f"SELECT pg_try_advisory_xact_lock({instance_key(i)})")
                  .scalar())
    found = _close_owned(conn, dead)
    if dead:
        conn.execute(delete(inst).where(inst.c.id.in_(dead)))
    return found


def recover_sqlite(conn: Connection) -> Recovered:
    """Close every unfinished thing (SQLite, the caller being the only process on the file)."""
    return _close_owned(conn, None)


def _close_owned(conn: Connection, dead: list[str] | None) -> Recovered:
    """Close what ``dead`` instances own, and what has no owner (rows from before owners
    were recorded). ``dead`` None: everything unfinished (no other process is alive)."""
    now = time.time()
    found = Recovered(dead_instances=dead or [])

    def orphaned(owner: Any) -> Any:
        return true() if dead is None else or_(owner.is_(None), owner.in_(dead))

    ex = models.executions
    rows = conn.execute(select(ex.c.id, ex.c.started_at, ex.c.owner)
                        .where(ex.c.status.in_(ACTIVE_EXECUTION), orphaned(ex.c.owner))).all()
    for execution_id, started_at, owner in rows:
        if _interrupt(conn, execution_id, started_at, owner, now):
            found.executions.append(execution_id)

    dlq = models.dlq_entries
    found.dlq_entries = conn.execute(
        update(dlq).where(dlq.c.status == "retrying", orphaned(dlq.c.owner))
        .values(status="pending", owner=None, updated=now)).rowcount
    bf = models.backfills
    found.backfills = conn.execute(
        update(bf).where(bf.c.status.in_(("pending", "running")), orphaned(bf.c.owner))
        .values(status="failed", updated=now, ended=now,
                error="interrupted: the engine process running this backfill stopped")).rowcount
    pe = models.paused_executions
    conn.execute(delete(pe).where(orphaned(pe.c.owner)))
    if found:
        log.warning("recovered after a stopped engine process: %d executions interrupted, "
                    "%d DLQ entries back to pending, %d backfills failed",
                    len(found.executions), found.dlq_entries, found.backfills)
    return found


def _interrupt(conn: Connection, execution_id: str, started_at: float, owner: str | None,
               now: float) -> bool:
    ev, ex, sr = models.execution_events, models.executions, models.step_runs
    last = conn.scalar(select(func.coalesce(func.max(ev.c.seq), 0))
                       .where(ev.c.execution_id == execution_id)) or 0
    running = conn.execute(select(sr.c.path).where(sr.c.execution_id == execution_id,
                                                   sr.c.status == "running")
                           .order_by(sr.c.seq.desc()).limit(1)).scalar()
    message = ("the engine process running this execution stopped before it finished"
               + (f" (instance {owner})" if owner else ""))
    error: dict[str, Any] = {"message": message, "type": INTERRUPTED}
    if running:
        error["step"] = running
    seq = int(last) + 1
    changed = conn.execute(
        update(ex).where(ex.c.id == execution_id, ex.c.status.in_(ACTIVE_EXECUTION))
        .values(status=INTERRUPTED, ended_at=now, error=error, event_count=seq,
                duration_ms=max(0.0, (now - started_at) * 1000.0))).rowcount
    if changed != 1:
        return False  # it finished (or someone else recovered it) meanwhile
    data = {"error": error, "reason": "process_stopped", "instance": owner,
            **({"step": running} if running else {})}
    conn.execute(insert(ev).values(execution_id=execution_id, seq=seq,
                                   type=EventType.EXECUTION_INTERRUPTED, data=dumps(data), ts=now))
    conn.execute(update(sr).where(sr.c.execution_id == execution_id, sr.c.status == "running")
                 .values(status=INTERRUPTED, ended_at=now, error=message))
    return True

