"""The rows of one group commit: how records become rows, and what a sink must do with them.

Every value is encoded once (codec.py) when its row is made; sinks write rows as they are.
"""

from __future__ import annotations

from typing import Any, Protocol

from engine.errors import StoreError
from engine.store.codec import clean_text, dumps, dumps_or_none
from engine.store.records import ExecutionRecord, StepRunRecord

Row = tuple[Any, ...]


class RowsRefused(StoreError):
    """The store refused the rows themselves (an encoding, a value, a constraint): the same
    rows fail again, other rows would go in. Lock and connection failures are plain
    StoreErrors: nothing would go in."""

    def __init__(self, rows: int, reason: object):
        self.reason = str(reason)
        super().__init__(f"could not record {rows} rows: {reason}")


def _text(value: str | None) -> str | None:
    # Free text (a step's error message): NUL and lone surrogates escaped, as codec.dumps
    # does in JSON, so both stores hold the same row.
    if value is None or (value.isascii() and "\x00" not in value):
        return value
    return clean_text(value)


def execution_row(r: ExecutionRecord, owner: str | None = None) -> Row:
    """``owner``: the instance (open store) running the execution, for crash recovery."""
    payload = r.trigger_text if r.trigger_text is not None else dumps_or_none(r.trigger_payload)
    return (r.id, r.pipeline, r.status, r.trigger_type, payload,
            r.started_at, r.ended_at, r.duration_ms, dumps_or_none(r.output),
            dumps_or_none(r.error), r.definition_hash, r.parent_id, r.replay_of, r.tenant,
            r.event_count, owner)


def step_run_row(r: StepRunRecord) -> Row:
    return (r.execution_id, r.path, r.step, r.type, r.seq, r.iteration, r.attempt, r.status,
            r.started_at, r.ended_at, r.duration_ms, _text(r.error), r.output_size,
            dumps(r.flags) if r.flags else None)


EXEC_COLS = ("id", "pipeline", "status", "trigger_type", "trigger_payload", "started_at",
             "ended_at", "duration_ms", "output", "error", "definition_hash", "parent_id",
             "replay_of", "tenant", "event_count", "owner")
EXEC_JSON = frozenset({"trigger_payload", "output", "error"})
STEP_COLS = ("execution_id", "path", "step", "type", "seq", "iteration", "attempt", "status",
             "started_at", "ended_at", "duration_ms", "error", "output_size", "flags")
STEP_JSON = frozenset({"flags"})
STEP_KEY = ("execution_id", "seq")
EVENT_COLS = ("execution_id", "seq", "type", "data", "ts")


class Batch:
    """Serialized rows of one group commit. Every row starts with its execution id.

    ``close_steps``: (execution_id, error) pairs whose still-running step runs are marked
    failed in the same transaction (closing a refused execution). ``records``: the execution
    records the rows were made from, by id.
    """

    __slots__ = ("close_steps", "events", "executions", "records", "step_runs")

    def __init__(self, executions: list[Row], step_runs: list[Row], events: list[Row],
                 close_steps: list[tuple[str, str]] | None = None,
                 records: dict[str, ExecutionRecord] | None = None):
        self.executions = executions
        self.step_runs = step_runs
        self.events = events
        self.close_steps = close_steps or []
        self.records = records or {}

    def __len__(self) -> int:
        return len(self.executions) + len(self.step_runs) + len(self.events)

    def by_execution(self) -> dict[str, Batch]:
        """The same rows, one batch per execution (the rows stay encoded: no second encode)."""
        parts: dict[str, Batch] = {}
        for table, rows in enumerate((self.executions, self.step_runs, self.events)):
            for row in rows:
                part = parts.get(row[0])
                if part is None:
                    part = parts[row[0]] = Batch([], [], [])
                (part.executions, part.step_runs, part.events)[table].append(row)
        return parts


CLOSE_STEPS_SQL = ("UPDATE step_runs SET status = 'failed', error = {p} "
                   "WHERE execution_id = {p} AND status = 'running'")


class Sink(Protocol):
    """Writes a batch in one transaction, or raises StoreError having written nothing."""

    def write(self, batch: Batch, wait: bool = True) -> bool:
        """Write ``batch``. With ``wait=False`` a sink may decline (return False, having
        done nothing) instead of waiting for a lock another connection holds."""
        ...

    def close(self) -> None: ...
