"""Executions in the event shape of 0.1.0 and earlier, written straight into a real store.

Up to 0.1.0 every step attempt recorded four events: ``step.started``, ``step.input`` (its
rendered config), ``step.output`` and ``step.completed``. Now the input rides on
``step.started`` and the output on ``step.completed``. ``to_legacy`` turns a run's events
into exactly the rows the old executor wrote for that run (order, seqs, ``started_seq``,
data keys), and ``rewrite_as_legacy`` puts them in its store (a SQLite file or a PostgreSQL
database, through the plain driver) as an older version left them, renumbering the
``step_runs`` keys with them. Readers can then be checked on both forms of one run.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

# (seq, type, data, ts) of one event
Row = tuple[int, str, dict[str, Any], float]


def to_legacy(rows: list[Row]) -> tuple[list[Row], dict[int, int]]:
    """The old executor's events for the same run, and each new seq's old seq."""
    out: list[tuple[int | None, str, dict[str, Any], float]] = []  # (new seq, type, data, ts)
    for seq, kind, data, ts in rows:
        if kind == "step.started" and "input" in data:
            out.append((seq, kind, {k: v for k, v in data.items() if k != "input"}, ts))
            legacy_input = {"step": data["step"], "path": data["path"], "attempt": data["attempt"],
                            "started_seq": seq}
            if "iteration" in data:
                legacy_input["iteration"] = data["iteration"]
            legacy_input["input"] = data["input"]
            out.append((None, "step.input", legacy_input, ts))
        elif kind == "step.completed" and "output" in data:
            output = {k: v for k, v in data.items() if k != "duration_ms"}
            at = len(out)
            last = out[-1] if out else None
            # step.output came before the step.routed of its run (one synchronous block)
            if (last is not None and last[1] == "step.routed" and "started_seq" in data
                    and last[2].get("started_seq") == data["started_seq"]):
                at -= 1
            out.insert(at, (None, "step.output", output, ts))
            out.append((seq, kind, {k: v for k, v in data.items() if k != "output"}, ts))
        else:
            out.append((seq, kind, data, ts))
    renumber = {old: index + 1 for index, (old, _k, _d, _t) in enumerate(out) if old is not None}
    legacy: list[Row] = []
    for index, (_old, kind, data, ts) in enumerate(out):
        if isinstance(data.get("started_seq"), int):
            data = {**data, "started_seq": renumber[data["started_seq"]]}
        legacy.append((index + 1, kind, data, ts))
    return legacy, renumber


class _Db:
    """The store's database through its plain driver (sqlite3 or psycopg), one transaction."""

    def __init__(self, url: str):
        self.sqlite = url.startswith("sqlite")
        if self.sqlite:
            self.conn: Any = sqlite3.connect(url.split(":///", 1)[1], timeout=30)
        else:
            import psycopg

            self.conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        cursor = self.conn.execute(sql if self.sqlite else sql.replace("?", "%s"), params)
        return list(cursor.fetchall()) if cursor.description else []

    def __enter__(self) -> _Db:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.conn.commit()
        else:
            self.conn.rollback()
        self.conn.close()


def rewrite_as_legacy(url: str, execution_id: str) -> list[Row]:
    """Replace a finished execution's events in the store at ``url`` by the old shape; returns
    the rows written. Only step events change: other rows keep their stored text."""
    with _Db(url) as db:
        stored = db.run("SELECT seq, type, data, ts FROM execution_events WHERE execution_id = ? "
                        "ORDER BY seq", (execution_id,))
        text = {int(seq): data for seq, _kind, data, _ts in stored}
        rows: list[Row] = [(int(seq), kind, json.loads(data), float(ts))
                           for seq, kind, data, ts in stored]
        legacy, renumber = to_legacy(rows)
        assert legacy[0] == rows[0] and rows[0][1] == "execution.started"
        # A row only renumbered keeps the text it was stored as.
        raw_of = {renumber[seq]: text[seq] for seq, _kind, data, _ts in rows
                  if legacy[renumber[seq] - 1][2] == data}
        db.run("DELETE FROM execution_events WHERE execution_id = ? AND seq > 1", (execution_id,))
        for seq, kind, data, ts in legacy[1:]:  # execution.started stays as it is
            raw = raw_of.get(seq) or json.dumps(data, separators=(",", ":"), ensure_ascii=False)
            db.run("INSERT INTO execution_events (execution_id, seq, type, data, ts) "
                   "VALUES (?, ?, ?, ?, ?)", (execution_id, seq, kind, raw, ts))
        # Keys only grow: renumber from the last one so no two rows ever share a key.
        for old in sorted(renumber, reverse=True):
            if renumber[old] != old:
                db.run("UPDATE step_runs SET seq = ? WHERE execution_id = ? AND seq = ?",
                       (renumber[old], execution_id, old))
        db.run("UPDATE executions SET event_count = ? WHERE id = ?", (len(legacy), execution_id))
    return legacy
