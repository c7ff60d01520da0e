"""``wfstudio breakpoints``: debugger breakpoints for runs in a studio or server process."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from engine.cli.common import dump, jsonable, open_service, pick_id, table
from engine.cli.parser import FILE_HELP, json_option, store_option

BREAKPOINT_NOTE = ("Breakpoints persist in the store and stop runs in a studio or server "
                   "process using it; `wfstudio run` ignores them, and a replay, DLQ retry or "
                   "backfill started here continues past them with a note.")


async def _breakpoints(args: argparse.Namespace) -> int:
    action = args.action
    async with open_service(args, args.file if action == "set" else []) as service:
        if action == "list":
            points = await service.list_breakpoints()
            if args.json:
                print(dump([jsonable(b) for b in points]))
            elif not points:
                print("no breakpoints")
            else:
                table(["id", "pipeline", "step", "enabled", "hits", "condition"],
                       [[b.id, b.pipeline, b.step, "yes" if b.enabled else "no", str(b.hit_count),
                         b.condition or ""] for b in points], indent="")
            return 0
        if action == "set":
            point = await service.set_breakpoint(args.pipeline, args.step, args.condition)
        else:
            point_id = pick_id(args.id, [b.id for b in await service.list_breakpoints()],
                             "breakpoint")
            if action == "remove":
                await service.remove_breakpoint(point_id)
                print(f"removed breakpoint {point_id}")
                return 0
            point = await service.enable_breakpoint(point_id, action == "enable")
    state = "enabled" if point.enabled else "disabled"
    condition = f" when {point.condition}" if point.condition else ""
    print(f"breakpoint {point.id}: {point.pipeline}/{point.step}{condition} ({state})")
    return 0


def cmd_breakpoints(args: argparse.Namespace) -> int:
    return asyncio.run(_breakpoints(args))


def add_commands(sub: Any) -> None:
    """Add ``breakpoints`` and its subcommands."""
    points = sub.add_parser("breakpoints", help="debugger breakpoints (for studio/server runs)",
                            description=BREAKPOINT_NOTE)
    actions = points.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", parents=[store_option(), json_option()], help="breakpoints, with hit counts")
    p = actions.add_parser("set", parents=[store_option()], help="stop before a step",
                           description=BREAKPOINT_NOTE)
    p.add_argument("pipeline", metavar="PIPELINE", help="the pipeline's name")
    p.add_argument("step", metavar="STEP", help="step name or path (fan-out/profile)")
    p.add_argument("--condition", metavar="JQ", help="stop only when this jq expression is true")
    p.add_argument("--file", action="append", required=True, metavar="FILE", help=FILE_HELP)
    for name in ("remove", "enable", "disable"):
        p = actions.add_parser(name, parents=[store_option()], help=f"{name} a breakpoint")
        p.add_argument("id", metavar="ID", help="breakpoint id (or a unique prefix)")
    points.set_defaults(func=cmd_breakpoints)
