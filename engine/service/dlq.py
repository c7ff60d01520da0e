"""The dead-letter queue (events-and-store.md §6): list, count, retry, resolve, discard, purge.

Entries live in the store's ``dlq_entries`` table; the engine writes them (``Store.dlq_add``)
and this module moves them through their states:

    pending --retry--> retrying --(execution completed)--> resolved
                                 --(execution did not)----> pending (retry_count + 1)
    pending --resolve--> resolved        pending --discard--> discarded

Decisions (the service's callers rely on them):

- A retry **claims** its entries with a conditional ``UPDATE … WHERE status = 'pending'`` in
  one transaction, before anything runs. If any requested entry is already ``retrying``
  (another retry, maybe in another process, holds it) the whole call raises ``Conflict`` and
  claims nothing, so a bulk retry never half-starts.
- Entries that are resolved or discarded are not retried: their result is ``skipped`` with
  the reason. So is an entry whose ``retry_count`` reached ``max_retries`` — unless the caller
  passes ``force=True`` (a person who has looked at it and wants one more try).
- A JSON Patch is checked against every entry that would run before any runs; one that does
  not apply is ``InvalidInput`` and nothing changes. The patched payload goes to the new
  execution only; the entry keeps the payload it arrived with.
- ``retry_count`` counts retry executions, successful or not. A runner that raises before an
  execution exists (e.g. the pipeline is no longer loaded) puts the entry back to pending
  without counting, and the result is ``skipped`` with the reason.
- A failed retry of a pipeline with ``dlq`` enabled must not leave a second entry for the same
  payload: the entry the engine writes for the retry execution itself is folded into the
  retried entry (entries a ``step.dlq_send`` writes during the retry are kept).
- ``purge(older_than)`` deletes only resolved and discarded entries last changed more than
  ``older_than`` seconds ago; pending and retrying entries are always kept.
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import jsonpatch
from sqlalchemy import Connection, and_, delete, func, or_, select, update

from engine.service.errors import Conflict, InvalidInput, NotFound
from engine.service.models import DlqEntry, DlqFilter, DlqRetryResult, RunResult
from engine.store import models
from engine.store.store import Store

# (pipeline, payload, origin, trigger_type) -> the finished execution
Runner = Callable[[str, Any, dict[str, Any], str], Awaitable[RunResult]]
Progress = Callable[[int, int], None]  # (done, total)

STATUSES = ("pending", "retrying", "resolved", "discarded")
TRIGGER_TYPE = "dlq_retry"
_PATCH_ERRORS = (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError,
                 KeyError, IndexError, ValueError)


@dataclass
class _Claim:
    entry: DlqEntry
    payload: Any


class DlqManager:
    """The DLQ operations of the studio service over one store.

    ``tenant``: when set, every operation sees only that tenant's entries (hosted mode).
    ``concurrency``: how many retry executions a bulk retry runs at once.
    """

    def __init__(self, store: Store, runner: Runner, *, tenant: str | None = None,
                 concurrency: int = 4):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.store = store
        self.runner = runner
        self.tenant = tenant
        self.concurrency = concurrency

    # ------------------------------------------------------------------ reading

    def list(self, filter: DlqFilter | None = None) -> builtins.list[DlqEntry]:
        """Entries newest first, filtered by pipeline, status and text (case-insensitive)."""
        f = filter if filter is not None else DlqFilter.model_validate({})
        t = models.dlq_entries
        conds = self._scope()
        if f.pipeline:
            conds.append(t.c.pipeline == f.pipeline)
        if f.status:
            if f.status not in STATUSES:
                raise InvalidInput(f"unknown DLQ status {f.status!r}: use one of "
                                   f"{', '.join(STATUSES)}")
            conds.append(t.c.status == f.status)
        if f.text:
            conds.append(or_(*(column.icontains(f.text, autoescape=True) for column in
                               (t.c.id, t.c.pipeline, t.c.step, t.c.execution_id, t.c.error))))
        query = (select(t).where(and_(True, *conds))
                 .order_by(t.c.created.desc(), t.c.id.desc()).limit(f.limit))
        with self.store.read() as conn:
            return [_entry(row) for row in conn.execute(query).mappings()]

    def stats(self) -> dict[str, int]:
        """Entry counts by status (every status present, zero when none) and ``total``."""
        t = models.dlq_entries
        query = (select(t.c.status, func.count()).where(and_(True, *self._scope()))
                 .group_by(t.c.status))
        counts = dict.fromkeys(STATUSES, 0)
        with self.store.read() as conn:
            for status, count in conn.execute(query):
                counts[status] = int(count)
        counts["total"] = sum(counts.values())
        return counts

    def get(self, entry_id: str) -> DlqEntry:
        with self.store.read() as conn:
            return self._get(conn, entry_id)

    # ------------------------------------------------------------------ retry

    async def retry(self, entry_ids: Sequence[str], patch: builtins.list[dict[str, Any]] | None = None,
                    progress: Progress | None = None, *, force: bool = False
                    ) -> builtins.list[DlqRetryResult]:
        """Re-run each entry's pipeline with its payload (patched first when ``patch`` is given).

        Returns one result per distinct id, in the order given. ``progress(done, total)`` is
        called after each entry (skipped ones included). ``force`` retries entries whose
        retries are used up.
        """
        ids = list(dict.fromkeys(entry_ids))
        if not ids:
            return []
        compiled = _compile_patch(patch)
        with self.store.read() as conn:
            entries = self._get_many(conn, ids)
        results: dict[str, DlqRetryResult] = {}
        runnable: builtins.list[DlqEntry] = []
        for entry in entries:
            reason = _not_retryable(entry, force)
            if reason is None:
                runnable.append(entry)
            elif entry.status != "retrying":  # retrying is a Conflict, decided by the claim
                results[entry.id] = DlqRetryResult(entry_id=entry.id, status="skipped",
                                                   error=reason)
        payloads = {e.id: _patched(e, compiled) for e in runnable}
        busy = [e.id for e in entries if e.status == "retrying"]
        if busy:
            raise _busy(busy)
        claims = [_Claim(e, payloads[e.id]) for e in self._claim(runnable, force)]

        total, done = len(ids), 0

        def report() -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total)

        for _ in range(len(results)):
            report()
        gate = asyncio.Semaphore(self.concurrency)

        async def one(claim: _Claim) -> DlqRetryResult:
            async with gate:
                return await self._retry_one(claim)

        tasks = [asyncio.ensure_future(one(c)) for c in claims]
        try:
            for finished in asyncio.as_completed(tasks):
                result = await finished
                results[result.entry_id] = result
                report()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # Claims whose retry never finished (the call was cancelled) go back to pending.
            self._release([c.entry.id for c in claims if c.entry.id not in results])
        return [results[i] for i in ids]

    def _claim(self, entries: builtins.list[DlqEntry], force: bool) -> builtins.list[DlqEntry]:
        """Mark every entry retrying in one transaction, or none (``Conflict``)."""
        t = models.dlq_entries
        now = time.time()
        with self.store.begin() as conn:
            lost: builtins.list[str] = []
            for entry in entries:
                cond = [t.c.id == entry.id, t.c.status == "pending"]
                if not force:
                    cond.append(t.c.retry_count < t.c.max_retries)
                # The owner lets a restart put the entry back if this process dies mid-retry.
                claimed = conn.execute(update(t).where(*cond).values(
                    status="retrying", updated=now, owner=self.store.instance_id))
                if claimed.rowcount != 1:
                    lost.append(entry.id)
            if lost:
                # Someone changed these since we read them: raising rolls back every claim.
                raise _busy(lost, changed=True)
        return entries

    async def _retry_one(self, claim: _Claim) -> DlqRetryResult:
        entry = claim.entry
        origin = {"dlq_entry": entry.id, "execution_id": entry.execution_id}
        try:
            result = await self.runner(entry.pipeline, claim.payload, origin, TRIGGER_TYPE)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # no execution was started: not counted as a retry
            self._release([entry.id])
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            return DlqRetryResult(entry_id=entry.id, status="skipped",
                                  error=f"could not run pipeline {entry.pipeline!r}: {message}")
        self._settle(entry, result)
        error = None if result.status == "completed" else _message(result.error, result.status)
        return DlqRetryResult(entry_id=entry.id, execution_id=result.execution_id,
                              status=result.status, error=error)

    def _settle(self, entry: DlqEntry, result: RunResult) -> None:
        t = models.dlq_entries
        now = time.time()
        values: dict[str, Any] = {"retry_count": t.c.retry_count + 1, "updated": now,
                                  "last_retry_id": result.execution_id}
        if result.status == "completed":
            values.update(status="resolved", resolved=now)
        else:
            values.update(status="pending", error=_message(result.error, result.status),
                          error_type=str((result.error or {}).get("type") or result.status))
        with self.store.begin() as conn:
            conn.execute(update(t).where(t.c.id == entry.id).values(**values))

    def _release(self, entry_ids: Iterable[str]) -> None:
        ids = builtins.list(entry_ids)
        if not ids:
            return
        t = models.dlq_entries
        with self.store.begin() as conn:
            conn.execute(update(t).where(t.c.id.in_(ids), t.c.status == "retrying")
                         .values(status="pending", updated=time.time()))

    # ------------------------------------------------------------------ resolve, discard, purge

    def resolve(self, entry_id: str) -> DlqEntry:
        """Mark a pending entry handled by hand. Resolving a resolved entry changes nothing."""
        return self._finish(entry_id, "resolved")

    def discard(self, entry_id: str) -> DlqEntry:
        """Give up on a pending entry. Discarding a discarded entry changes nothing."""
        return self._finish(entry_id, "discarded")

    def _finish(self, entry_id: str, status: str) -> DlqEntry:
        t = models.dlq_entries
        now = time.time()
        values: dict[str, Any] = {"status": status, "updated": now}
        if status == "resolved":
            values["resolved"] = now
        with self.store.begin() as conn:
            changed = conn.execute(update(t).where(t.c.id == entry_id, t.c.status == "pending",
                                                   *self._scope()).values(**values))
            entry = self._get(conn, entry_id)
        if changed.rowcount == 1 or entry.status == status:
            return entry
        verb = "resolve" if status == "resolved" else "discard"
        if entry.status == "retrying":
            raise Conflict(f"cannot {verb} DLQ entry {entry_id!r}: a retry of it is running; "
                           "wait for it to finish")
        raise Conflict(f"cannot {verb} DLQ entry {entry_id!r}: it is already {entry.status}")

    def purge(self, older_than: float) -> int:
        """Delete resolved and discarded entries last changed more than ``older_than`` seconds
        ago; returns how many. Pending and retrying entries are never purged."""
        if older_than < 0:
            raise InvalidInput(f"older_than must be a number of seconds >= 0, not {older_than}")
        t = models.dlq_entries
        cutoff = time.time() - older_than
        with self.store.begin() as conn:
            gone = conn.execute(delete(t).where(t.c.status.in_(("resolved", "discarded")),
                                                t.c.updated < cutoff, *self._scope()))
        return int(gone.rowcount)

    # ------------------------------------------------------------------ helpers

    def _scope(self) -> builtins.list[Any]:
        return [] if self.tenant is None else [models.dlq_entries.c.tenant == self.tenant]

    def _get(self, conn: Connection, entry_id: str) -> DlqEntry:
        t = models.dlq_entries
        row = conn.execute(select(t).where(t.c.id == entry_id, *self._scope())).mappings().first()
        if row is None:
            raise NotFound(f"no DLQ entry {entry_id!r}")
        return _entry(row)

    def _get_many(self, conn: Connection, ids: builtins.list[str]) -> builtins.list[DlqEntry]:
        t = models.dlq_entries
        rows = conn.execute(select(t).where(t.c.id.in_(ids), *self._scope())).mappings()
        found = {row["id"]: _entry(row) for row in rows}
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFound(f"no DLQ entr{'y' if len(missing) == 1 else 'ies'} "
                           f"{', '.join(map(repr, missing))}; nothing was retried",
                           details={"missing": missing})
        return [found[i] for i in ids]


def _entry(row: Any) -> DlqEntry:
    return DlqEntry(id=row["id"], pipeline=row["pipeline"], step=row["step"],
                    execution_id=row["execution_id"], payload=row["payload"], error=row["error"],
                    error_type=row["error_type"], status=row["status"],
                    retry_count=row["retry_count"], max_retries=row["max_retries"],
                    last_retry_id=row["last_retry_id"], created=row["created"],
                    updated=row["updated"], resolved=row["resolved"])


def _not_retryable(entry: DlqEntry, force: bool) -> str | None:
    if entry.status in ("resolved", "discarded"):
        return f"entry is {entry.status}; only pending entries are retried"
    if entry.status == "retrying":
        return "a retry of this entry is already running"
    if not force and entry.retry_count >= entry.max_retries:
        return (f"retries used up ({entry.retry_count} of {entry.max_retries}); retry with "
                "force to try again, or resolve or discard it")
    return None


def _busy(ids: builtins.list[str], changed: bool = False) -> Conflict:
    names = ", ".join(map(repr, ids))
    why = ("changed while the retry started (another retry took it)" if changed
           else "already being retried")
    return Conflict(f"DLQ entr{'y' if len(ids) == 1 else 'ies'} {names} {why}; nothing was "
                    "retried. Wait for that retry to finish, or leave these entries out.",
                    details={"entries": ids})


def _compile_patch(patch: Any) -> jsonpatch.JsonPatch | None:
    if patch is None:
        return None
    if not isinstance(patch, builtins.list) or not all(isinstance(op, dict) for op in patch):
        raise InvalidInput("patch must be a JSON Patch (RFC 6902): a list of operations like "
                           '{"op": "replace", "path": "/qty", "value": 2}')
    try:
        return jsonpatch.JsonPatch(patch)
    except _PATCH_ERRORS as exc:
        raise InvalidInput(f"invalid JSON Patch: {exc}") from None


def _patched(entry: DlqEntry, compiled: jsonpatch.JsonPatch | None) -> Any:
    if compiled is None:
        return entry.payload
    try:
        return compiled.apply(entry.payload)  # a patched copy; the entry keeps its payload
    except _PATCH_ERRORS as exc:
        raise InvalidInput(f"the patch does not apply to the payload of DLQ entry "
                           f"{entry.id!r}: {exc}; nothing was retried",
                           details={"entry": entry.id}) from None


def _message(error: dict[str, Any] | None, status: str) -> str:
    if error and error.get("message"):
        return str(error["message"])
    return f"the retry ended {status}"
