"""``wfstudio mocks``: step mocks, answers given instead of running a step."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from engine.cli.common import (
    SERVICE_NOTE,
    dump,
    duration_arg,
    find_execution_id,
    jsonable,
    open_service,
    pick_id,
    short,
    table,
)
from engine.cli.inputs import parse_json
from engine.cli.parser import FILE_HELP, json_option, store_option


def _mock_line(mock: Any) -> str:
    answer = (f"error {mock.error.get('message')!r}" if mock.mode == "error"
              else short(mock.output))
    delay = f" after {mock.delay_ms:g}ms" if mock.delay_ms else ""
    return f"mock {mock.id}: {mock.pipeline}/{mock.step} ({mock.mode}) → {answer}{delay}"


async def _mocks(args: argparse.Namespace) -> int:
    action = args.action
    delay_ms, output = 0.0, None
    if action == "set":
        delay_ms = duration_arg(args.delay, "--delay") * 1000 if args.delay else 0.0
        output = parse_json(args.output, "--output") if args.output is not None else None
    async with open_service(args, args.file if action == "set" else []) as service:
        if action == "list":
            mocks = await service.list_mocks(args.pipeline)
            if args.json:
                print(dump([jsonable(m) for m in mocks]))
            elif not mocks:
                print("no mocks")
            else:
                table(["id", "pipeline", "step", "mode", "enabled", "hits", "delay", "answer"],
                       [[m.id, m.pipeline, m.step, m.mode, "yes" if m.enabled else "no",
                         str(m.hit_count), f"{m.delay_ms:g}ms",
                         m.error.get("message", "") if m.error else short(m.output)]
                        for m in mocks], indent="")
            return 0
        if action == "set":
            if args.error is not None:
                mock = await service.set_mock(args.pipeline, args.step, mode="error",
                                              error={"message": args.error}, delay_ms=delay_ms)
            else:
                mock = await service.set_mock(args.pipeline, args.step, output=output,
                                              delay_ms=delay_ms)
        elif action == "capture":
            execution_id = await find_execution_id(service, args.execution_id)
            mock = await service.mock_from_execution(execution_id, args.step)
        elif action == "remove":
            mock_id = pick_id(args.id, [m.id for m in await service.list_mocks()], "mock")
            await service.remove_mock(mock_id)
            print(f"removed mock {mock_id}")
            return 0
        else:
            gone = await service.clear_mocks(args.pipeline)
            print(f"removed {gone} mock(s)")
            return 0
    print(dump(jsonable(mock)) if getattr(args, "json", False) else _mock_line(mock))
    return 0


def cmd_mocks(args: argparse.Namespace) -> int:
    return asyncio.run(_mocks(args))


def add_commands(sub: Any) -> None:
    """Add ``mocks`` and its subcommands."""
    mocks = sub.add_parser("mocks", help="step mocks: answers given instead of running a step",
                           description=SERVICE_NOTE)
    actions = mocks.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = actions.add_parser("list", parents=[store_option(), json_option()],
                           help="mocks, by pipeline and step")
    p.add_argument("--pipeline", help="only this pipeline's mocks")
    p = actions.add_parser("set", parents=[store_option(), json_option()],
                           help="mock a step (replaces its mock)")
    p.add_argument("pipeline", metavar="PIPELINE", help="the pipeline's name")
    p.add_argument("step", metavar="STEP", help="step name or path (fan-out/profile)")
    answer = p.add_mutually_exclusive_group(required=True)
    answer.add_argument("--output", metavar="JSON", help="the output the step returns")
    answer.add_argument("--error", metavar="MESSAGE", help="the step fails with this message")
    p.add_argument("--delay", metavar="DURATION", help="answer after this long, e.g. 200ms")
    p.add_argument("--file", action="append", required=True, metavar="FILE", help=FILE_HELP)
    p = actions.add_parser("capture", parents=[store_option(), json_option()],
                           help="mock a step with its recorded output in an execution")
    p.add_argument("execution_id", metavar="EXECUTION_ID", help="execution id (or a unique prefix)")
    p.add_argument("step", metavar="STEP", help="the step whose recorded output answers it")
    p = actions.add_parser("remove", parents=[store_option()], help="remove one mock")
    p.add_argument("id", metavar="ID", help="mock id (or a unique prefix)")
    p = actions.add_parser("clear", parents=[store_option()], help="remove every mock (of a pipeline)")
    p.add_argument("--pipeline", help="only this pipeline's mocks")
    mocks.set_defaults(func=cmd_mocks)
