"""``wfstudio executions list|show|timeline|events``: read recorded executions from the store."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from engine.cli.common import UsageError, dump, ms, store_url, when
from engine.cli.parser import Parser, json_option, positive, store_option

EXECUTION_STATUSES = ("running", "paused", "completed", "failed", "cancelled", "interrupted")


def _open_store(args: argparse.Namespace) -> Any:
    from engine.store.store import Store

    return Store.open(store_url(args))


def _find(store: Any, execution_id: str) -> Any:
    record = store.get_execution(execution_id)
    if record is not None:
        return record
    # Accept a unique prefix, as git does: ids are long. The text filter also matches
    # pipelines and errors, so page until two ids match or the list ends.
    matches: dict[str, Any] = {}
    cursor = None
    for _ in range(50):
        rows, cursor = store.list_executions(text=execution_id, limit=1000, cursor=cursor)
        matches.update((r.id, r) for r in rows if r.id.startswith(execution_id))
        if len(matches) > 1 or cursor is None:
            break
    if len(matches) > 1:
        raise UsageError(f"execution id {execution_id!r} is ambiguous: give more characters")
    if not matches:
        raise UsageError(f"no execution {execution_id!r} in {store.url}")
    return next(iter(matches.values()))


def cmd_executions(args: argparse.Namespace) -> int:
    if args.action == "list" and args.status is not None and args.status not in EXECUTION_STATUSES:
        raise UsageError(f"--status: unknown execution status {args.status!r} "
                         f"(one of {', '.join(EXECUTION_STATUSES)})")
    since = time.time() - _parse_age(args.since) if getattr(args, "since", None) else None
    store = _open_store(args)
    try:
        if args.action == "list":
            rows, cursor = store.list_executions(pipeline=args.pipeline, status=args.status,
                                                 since=since, text=args.text, limit=args.limit,
                                                 cursor=args.cursor)
            if args.json:
                print(dump({"executions": [vars(r) for r in rows], "next_cursor": cursor}))
                return 0
            if not rows:
                print("no executions")
            for r in rows:
                print(f"{r.id[:12]}  {when(r.started_at)}  {r.status:<11} "
                      f"{ms(r.duration_ms):>10}  {r.pipeline}"
                      + (f"  (child of {r.parent_id[:12]})" if r.parent_id else ""))
            if cursor:
                print(f"more: --cursor {cursor}")
            return 0
        record = _find(store, args.id)
        if args.action == "show":
            print(dump(vars(record)))
        elif args.action == "timeline":
            runs = store.timeline(record.id)
            if args.json:
                print(dump([vars(r) for r in runs]))
                return 0
            print(f"{record.pipeline} {record.id} {record.status} {ms(record.duration_ms)}")
            for run in runs:
                flags = f" [{', '.join(run.flags)}]" if run.flags else ""
                where = f"#{run.iteration}" if run.iteration else ""
                tries = f" attempt {run.attempt}" if run.attempt > 1 else ""
                error = f"  {run.error}" if run.error else ""
                print(f"  {run.path + where:<32} {run.status:<10} {ms(run.duration_ms):>10}"
                      f"{tries}{flags}{error}")
        else:
            events = store.events(record.id, after_seq=args.after, limit=args.limit,
                                  types=args.type or None)
            if not events and not args.json:
                print("no events" + (f" of type {', '.join(args.type)}" if args.type else "")
                      + (f" after seq {args.after}" if args.after else ""))
            for event in events:
                if args.json:
                    print(json.dumps(vars(event), default=str))
                else:
                    print(f"{event.seq:>5} {event.type:<22} {json.dumps(event.data, default=str)}")
        return 0
    finally:
        store.close()


def _parse_age(text: str) -> float:
    from engine.durations import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"--since: {exc}") from None


def add_commands(sub: Any) -> None:
    """Add ``executions`` and its subcommands."""
    executions = sub.add_parser("executions", help="read recorded executions: list, show, "
                                "timeline, events")
    actions = executions.add_subparsers(dest="action", metavar="ACTION", required=True)
    with_id = Parser(add_help=False)
    with_id.add_argument("id", metavar="ID", help="execution id (or a unique prefix)")
    p = actions.add_parser("list", parents=[store_option(), json_option()],
                           help="executions, newest first")
    p.add_argument("--pipeline", help="only this pipeline's executions")
    p.add_argument("--status", help=f"only this status: {', '.join(EXECUTION_STATUSES)}")
    p.add_argument("--since", help="only newer than this age, e.g. 1h, 2d")
    p.add_argument("--text", help="match id, pipeline or error text")
    p.add_argument("--limit", type=positive, default=50, help="at most this many (default 50)")
    p.add_argument("--cursor", help="continue a listing where `more: --cursor` said")
    actions.add_parser("show", parents=[with_id, store_option()],
                       help="an execution's summary as JSON")
    actions.add_parser("timeline", parents=[with_id, store_option(), json_option()],
                       help="its step runs with attempts, iterations and flags")
    p = actions.add_parser("events", parents=[with_id, store_option()],
                           help="its raw, append-only event stream")
    p.add_argument("--after", type=int, default=0, metavar="SEQ", help="events after this seq")
    p.add_argument("--type", action="append", help="only events of this type (repeatable)")
    p.add_argument("--limit", type=positive, default=1000, help="at most this many (default 1000)")
    p.add_argument("--json", action="store_true", help="print one JSON object per line")
    executions.set_defaults(func=cmd_executions)
