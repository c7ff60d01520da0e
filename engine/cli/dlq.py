"""``wfstudio dlq``: the dead-letter queue (list, stats, show, retry, resolve, discard, purge)."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING, Any

from engine.cli.common import (
    SERVICE_NOTE,
    ProgressBar,
    dump,
    duration_arg,
    find_by_id,
    jsonable,
    open_service,
    table,
    validated,
    when,
)
from engine.cli.inputs import parse_patch
from engine.cli.parser import FILE_HELP, json_option, store_option
from engine.service.errors import InvalidInput

if TYPE_CHECKING:
    from engine.service.local import LocalService


async def _dlq_id(service: LocalService, ident: str) -> str:
    from engine.service.models import DlqFilter

    async def listing() -> list[Any]:
        return list(await service.list_dlq(DlqFilter(limit=1000)))

    return await find_by_id(ident, service.get_dlq, listing, "DLQ entry")


async def _dlq(args: argparse.Namespace) -> int:
    from engine.service.models import DlqFilter

    action = args.action
    if action == "retry":
        return await _dlq_retry(args)
    older_than = duration_arg(args.older_than, "--older-than") if action == "purge" else 0.0
    async with open_service(args) as service:
        if action == "list":
            entries = await service.list_dlq(validated(lambda: DlqFilter(
                pipeline=args.pipeline, status=args.status, text=args.text, limit=args.limit),
                "dlq list"))
            if args.json:
                print(dump([jsonable(e) for e in entries]))
            elif not entries:
                print("no DLQ entries")
            else:
                table(["id", "created", "status", "tries", "pipeline", "step", "error"],
                       [[e.id[:12], when(e.created), e.status, f"{e.retry_count}/{e.max_retries}",
                         e.pipeline, e.step or "-", (e.error or "")[:70]] for e in entries],
                       indent="")
            return 0
        if action == "stats":
            stats = await service.dlq_stats()
            print(dump(stats) if args.json
                  else "  ".join(f"{status} {count}" for status, count in stats.items()))
            return 0
        if action == "purge":
            gone = await service.purge_dlq(older_than)
            print(f"purged {gone} resolved or discarded entr{'y' if gone == 1 else 'ies'} "
                  f"older than {args.older_than}")
            return 0
        entry_id = await _dlq_id(service, args.id)
        if action == "show":
            print(dump(jsonable(await service.get_dlq(entry_id))))
            return 0
        entry = await (service.resolve_dlq(entry_id) if action == "resolve"
                       else service.discard_dlq(entry_id))
        print(f"{entry.status} {entry.id} ({entry.pipeline})")
        return 0


async def _dlq_retry(args: argparse.Namespace) -> int:
    from engine.service.models import DlqFilter

    patch = parse_patch(args.patch)
    if not args.ids and not args.all_pending:
        raise InvalidInput("dlq retry needs entry ids or --all-pending")
    async with open_service(args, args.file or []) as service:
        ids = [await _dlq_id(service, ident) for ident in args.ids]
        if args.all_pending:
            pending = await service.list_dlq(DlqFilter(pipeline=args.pipeline, status="pending",
                                                       limit=1000))
            ids.extend(e.id for e in reversed(pending))  # oldest first
        ids = list(dict.fromkeys(ids))
        if not ids:
            print("no pending DLQ entries")
            return 0
        entries = [await service.get_dlq(i) for i in ids]
        loaded = {p.name for p in await service.list_pipelines()}
        missing = sorted({e.pipeline for e in entries if e.pipeline not in loaded})
        if missing:
            raise InvalidInput(f"pipeline{'s' if len(missing) > 1 else ''} "
                               f"{', '.join(map(repr, missing))} of the entries to retry "
                               f"{'are' if len(missing) > 1 else 'is'} not loaded: pass the "
                               "file(s) defining them with --file FILE; nothing was retried")
        bar = ProgressBar("dlq retry")
        results = await service.retry_dlq(ids, patch, progress=bar.update)
        completed = sum(r.status == "completed" for r in results)
        bar.finish(f"{completed}/{len(results)} completed")
    if args.json:
        print(dump([jsonable(r) for r in results]))
    else:
        table(["entry", "status", "execution", "error"],
               [[r.entry_id[:12], r.status, (r.execution_id or "-")[:12], r.error or ""]
                for r in results], indent="")
    return 0 if completed == len(results) else 1


def cmd_dlq(args: argparse.Namespace) -> int:
    return asyncio.run(_dlq(args))


def add_commands(sub: Any) -> None:
    """Add ``dlq`` and its subcommands."""
    dlq = sub.add_parser("dlq", help="the dead-letter queue: list, retry, resolve, discard, purge")
    actions = dlq.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = actions.add_parser("list", parents=[store_option(), json_option()], help="entries, newest first")
    p.add_argument("--pipeline", help="only this pipeline's entries")
    p.add_argument("--status", help="only this status: pending, retrying, resolved or discarded")
    p.add_argument("--text", help="in the id, pipeline, step, execution or error (any case)")
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    p = actions.add_parser("stats", parents=[store_option(), json_option()], help="entry counts by status")
    p = actions.add_parser("show", parents=[store_option()], help="one entry as JSON")
    p.add_argument("id", metavar="ID", help="entry id (or a unique prefix)")
    p = actions.add_parser("retry", parents=[store_option(), json_option()],
                           help="re-run entries' pipelines with their payloads",
                           description="Re-run each entry's pipeline with its payload as a new "
                           "execution; an entry whose retry completes is resolved. The pipelines "
                           "must be loaded: pass their files with --file. Exit 1 unless every "
                           "retry completed. " + SERVICE_NOTE)
    p.add_argument("ids", nargs="*", metavar="ID", help="entry ids (or unique prefixes)")
    p.add_argument("--all-pending", action="store_true", help="retry every pending entry")
    p.add_argument("--pipeline", help="with --all-pending: only this pipeline's entries")
    p.add_argument("--patch", metavar="JSON", help="RFC 6902 patch applied to each payload")
    p.add_argument("--file", action="append", metavar="FILE", help=FILE_HELP)
    for name, text in (("resolve", "mark a pending entry handled"),
                       ("discard", "give up on a pending entry")):
        p = actions.add_parser(name, parents=[store_option()], help=text)
        p.add_argument("id", metavar="ID", help="entry id (or a unique prefix)")
    p = actions.add_parser("purge", parents=[store_option()],
                           help="delete resolved and discarded entries older than an age")
    p.add_argument("--older-than", required=True, metavar="AGE", help="e.g. 7d, 12h")
    dlq.set_defaults(func=cmd_dlq)
