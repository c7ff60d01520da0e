"""``wfstudio backfill`` (run a pipeline over past payloads or JSON Lines) and
``wfstudio backfills`` (list, show, cancel).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from engine.cli.common import (
    SERVICE_NOTE,
    ProgressBar,
    dump,
    find_by_id,
    jsonable,
    moment_arg,
    open_service,
    table,
    validated,
    when,
)
from engine.cli.inputs import parse_json_lines, read_text
from engine.cli.parser import FILE_HELP, json_option, store_option
from engine.service.errors import InvalidInput


def _backfill_line(b: Any) -> str:
    took = f" in {b.ended - b.created:.1f}s" if b.ended else ""
    error = f": {b.error}" if b.error else ""
    return (f"backfill {b.id} of {b.pipeline} {b.status}{took}: {b.done}/{b.total} run, "
            f"{b.succeeded} succeeded, {b.failed} failed{error}")


async def _backfill(args: argparse.Namespace) -> int:
    from engine.service.models import BackfillRequest

    jsonl = None
    if args.jsonl is not None:
        if args.since or args.until or args.source_pipeline:
            raise InvalidInput("give either --jsonl or past executions (--since, --until, "
                               "--source-pipeline) to backfill from, not both")
        jsonl = read_text(args.jsonl, "--jsonl")
        parse_json_lines(jsonl, "--jsonl", "object")  # the service reads it again; errors here
    request = validated(lambda: BackfillRequest(
        pipeline=args.pipeline, source_pipeline=args.source_pipeline,
        since=moment_arg(args.since, "--since"), until=moment_arg(args.until, "--until"), jsonl=jsonl,
        concurrency=args.concurrency, limit=args.limit), "backfill")
    async with open_service(args, args.file) as service:
        backfill = await service.start_backfill(request)
        bar = ProgressBar("backfill")
        interrupted = False
        try:
            while backfill.status in ("pending", "running"):
                bar.update(backfill.done, backfill.total)
                await asyncio.sleep(0.1)
                backfill = await service.get_backfill(backfill.id)
        except asyncio.CancelledError:  # Ctrl-C: asyncio.run cancels this task
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # handled here: let the cleanup below await normally
            interrupted = True
            backfill = await service.cancel_backfill(backfill.id)
        bar.finish(f"{backfill.status}, {backfill.done}/{backfill.total} run")
    print(dump(jsonable(backfill)) if args.json else _backfill_line(backfill))
    if interrupted:
        print("wfstudio: interrupted: the backfill was cancelled", file=sys.stderr)
        return 130
    return 0 if backfill.status == "completed" and not backfill.failed else 1


def cmd_backfill(args: argparse.Namespace) -> int:
    return asyncio.run(_backfill(args))


async def _backfills(args: argparse.Namespace) -> int:
    async with open_service(args) as service:
        if args.action == "list":
            items = await service.list_backfills()
            if args.json:
                print(dump([jsonable(b) for b in items]))
            elif not items:
                print("no backfills")
            else:
                table(["id", "created", "status", "done", "ok", "failed", "pipeline", "source"],
                       [[b.id[:12], when(b.created), b.status, f"{b.done}/{b.total}",
                         str(b.succeeded), str(b.failed), b.pipeline, str(b.source.get("kind", ""))]
                        for b in items], indent="")
            return 0
        backfill_id = await find_by_id(args.id, service.get_backfill, service.list_backfills,
                                   "backfill")
        backfill = await (service.get_backfill(backfill_id) if args.action == "show"
                          else service.cancel_backfill(backfill_id))
    print(dump(jsonable(backfill)) if args.json else _backfill_line(backfill))
    return 0


def cmd_backfills(args: argparse.Namespace) -> int:
    return asyncio.run(_backfills(args))


def add_commands(sub: Any) -> None:
    """Add ``backfill`` and ``backfills``."""
    p = sub.add_parser("backfill", parents=[store_option(), json_option()],
                       help="run a pipeline over past payloads or a JSON Lines file",
                       description="Run PIPELINE once per input: the trigger payloads of past "
                       "executions (of PIPELINE or --source-pipeline, between --since and "
                       "--until), or one JSON value per line of --jsonl. Shows progress; Ctrl-C "
                       "cancels the backfill. Exit 1 if any run failed. " + SERVICE_NOTE)
    p.add_argument("pipeline", metavar="PIPELINE", help="the pipeline to run")
    p.add_argument("--file", action="append", required=True, metavar="FILE", help=FILE_HELP)
    p.add_argument("--since", metavar="WHEN", help="an age (1d) or a date/time (2024-05-01T12:00)")
    p.add_argument("--until", metavar="WHEN", help="an age (2h) or a date/time")
    p.add_argument("--source-pipeline", metavar="P", help="take the payloads of this pipeline's runs")
    p.add_argument("--jsonl", metavar="FILE", help="payloads, one JSON value per line")
    p.add_argument("--concurrency", type=int, default=4, help="runs at a time (default 4)")
    p.add_argument("--limit", type=int, help="at most this many inputs")
    p.set_defaults(func=cmd_backfill)

    backfills = sub.add_parser("backfills", help="list, show or cancel backfills")
    actions = backfills.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", parents=[store_option(), json_option()], help="backfills, newest first")
    for name in ("show", "cancel"):
        p = actions.add_parser(name, parents=[store_option(), json_option()], help=f"{name} a backfill")
        p.add_argument("id", metavar="ID", help="backfill id (or a unique prefix)")
    backfills.set_defaults(func=cmd_backfills)
