"""CloudEvents made from decoded PostgreSQL changes (stream and snapshot alike).

One change is one event: type ``<prefix>.<schema>.<table>.<op>``, subject the primary key,
and an id that is the same each time the change is read again (the transaction's commit
LSN and the change's place in it; a snapshot row: the snapshot's LSN and its key), which
is what the intake's dedup is keyed by.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.connectors.envelope import make
from engine.connectors.pgoutput import UNCHANGED_TOAST, Change, Relation, lsn_text


def event_type(prefix: str, schema: str, table: str, op: str) -> str:
    return f"{prefix}.{schema}.{table}.{op}"


def subject(key_columns: list[str], row: dict[str, Any] | None) -> str | None:
    """The key's values as text (several joined by ","), None when the table has no key."""
    if not key_columns or not row or any(c not in row for c in key_columns):
        return None
    return ",".join("" if row[c] is None else str(row[c]) for c in key_columns)


def change_event(source: str, prefix: str, change: Change, key_columns: list[str], *,
                 commit_lsn: int, index: int, commit_time: datetime) -> dict[str, Any]:
    relation = change.relation
    after = change.after
    unchanged: list[str] = []
    if after is not None:
        after = dict(after)
        for name, value in list(after.items()):
            if value is UNCHANGED_TOAST:
                # The old row (REPLICA IDENTITY FULL) has the value; otherwise say it is absent.
                if change.before is not None and change.before.get(name) is not UNCHANGED_TOAST \
                        and name in change.before and not change.before_is_key_only:
                    after[name] = change.before[name]
                else:
                    del after[name]
                    unchanged.append(name)
    data: dict[str, Any] = {
        "op": change.op, "schema": relation.schema, "table": relation.table,
        "before": change.before, "after": after, "lsn": lsn_text(commit_lsn), "index": index,
        "commit_time": _rfc3339(commit_time)}
    if unchanged:
        data["unchanged_toast"] = unchanged
    keyed = after if after is not None else change.before
    return make(source, event_type(prefix, relation.schema, relation.table, change.op), data,
                id=f"{lsn_text(commit_lsn)}:{index}", subject=subject(key_columns, keyed),
                time=commit_time)


def truncate_event(source: str, prefix: str, relation: Relation, *, cascade: bool,
                   restart_identity: bool, commit_lsn: int, index: int,
                   commit_time: datetime) -> dict[str, Any]:
    data = {"op": "truncate", "schema": relation.schema, "table": relation.table,
            "before": None, "after": None, "lsn": lsn_text(commit_lsn), "index": index,
            "commit_time": _rfc3339(commit_time), "cascade": cascade,
            "restart_identity": restart_identity}
    return make(source, event_type(prefix, relation.schema, relation.table, "truncate"), data,
                id=f"{lsn_text(commit_lsn)}:{index}", time=commit_time)


def snapshot_event(source: str, prefix: str, schema: str, table: str, row: dict[str, Any],
                   key_columns: list[str], *, snapshot_lsn: int, ordinal: int) -> dict[str, Any]:
    key = subject(key_columns, row)
    data = {"op": "snapshot", "schema": schema, "table": table, "before": None, "after": row,
            "lsn": lsn_text(snapshot_lsn), "index": ordinal, "commit_time": None}
    # Keyed rows are named by their key; a table without one by the row's place in the
    # ordered read (the same within one snapshot, which is all an id must hold for).
    name = key if key is not None else f"#{ordinal}"
    return make(source, event_type(prefix, schema, table, "snapshot"), data,
                id=f"snapshot:{lsn_text(snapshot_lsn)}:{schema}.{table}:{name}", subject=key)


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
