"""``wfstudio replay``: re-execute a recorded execution (exact, modified or from a step)."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import TYPE_CHECKING, Any

from engine.cli.common import (
    SERVICE_NOTE,
    dump,
    find_execution_id,
    jsonable,
    open_service,
    print_outcome,
    table,
    validated,
)
from engine.cli.inputs import parse_json, parse_patch
from engine.cli.parser import json_option, store_option
from engine.service.errors import InvalidInput

if TYPE_CHECKING:
    from engine.service.models import ReplayMode, ReplayOptions


def _replay_options(args: argparse.Namespace) -> ReplayOptions:
    from engine.service.models import ReplayOptions

    if args.patch is not None and args.payload is not None:
        raise InvalidInput("give either --patch or --payload, not both")
    mocks: dict[str, Any] = {}
    for item in args.mock or []:
        step, sep, value = item.partition("=")
        if not sep or not step:
            raise InvalidInput(f"--mock {item!r}: use STEP=JSON, e.g. --mock 'charge={{\"ok\": true}}'")
        mocks[step] = parse_json(value, f"--mock {step}")
    patch = parse_patch(args.patch)
    payload = parse_json(args.payload, "--payload", "object") if args.payload is not None else None
    changed = patch is not None or args.payload is not None or bool(mocks) or bool(args.current)
    # Recorded mocks alone leave the mode exact: the replay still runs the original payload.
    mode: ReplayMode = "from_step" if args.from_step else "modified" if changed else "exact"
    return validated(lambda: ReplayOptions(
        mode=mode, from_step=args.from_step, patch=patch, payload=payload,
        use_current_definition=bool(args.current), mocks=mocks,
        use_recorded_mocks=list(args.recorded_mock or []),
        breakpoints=False), "replay options")  # no debugger here to resume a stop


async def _replay(args: argparse.Namespace) -> int:
    options = _replay_options(args)
    async with open_service(args, [args.current] if args.current else []) as service:
        execution_id = await find_execution_id(service, args.id)
        if args.plan:
            plan = await service.replay_plan(execution_id, options)
            if args.json:
                print(dump(jsonable(plan)))
                return 0
            print(f"replay plan of {plan.execution_id} ({plan.pipeline}, mode {plan.mode})")
            print(f"definition: {'changed, runs ' if plan.definition_changed else 'unchanged, '}"
                  f"{plan.definition_hash[:12]}")
            print(f"payload: {json.dumps(plan.payload, default=str, ensure_ascii=False)}")
            table(["step", "action", "reason"], [[s.path, s.action, s.reason] for s in plan.steps])
            return 0
        result = await service.replay(execution_id, options)
        summary = await service.get_execution(result.execution_id)
    if args.json:
        print(dump({"execution_id": result.execution_id, "pipeline": summary.pipeline,
                    "status": result.status, "output": result.output, "error": result.error,
                    "duration_ms": result.duration_ms, "replay_of": execution_id}))
    else:
        print_outcome(summary.pipeline, result.execution_id, result.status, result.duration_ms,
                      result.error, result.output,
                      f" (replay of {execution_id[:12]}, {options.mode})")
    return 0 if result.status == "completed" else 1


def cmd_replay(args: argparse.Namespace) -> int:
    return asyncio.run(_replay(args))


def add_commands(sub: Any) -> None:
    """Add ``replay``."""
    p = sub.add_parser("replay", parents=[store_option(), json_option()],
                       help="re-execute a recorded execution (exact, modified or from a step)",
                       description="Replay a recorded execution as a new, linked one. The mode "
                       "follows the options: from_step with --from-step; modified with --patch, "
                       "--payload, --mock or --current; exact otherwise (--recorded-mock keeps "
                       "it exact). " + SERVICE_NOTE)
    p.add_argument("id", metavar="ID", help="execution id (or a unique prefix)")
    p.add_argument("--from-step", metavar="STEP", help="re-run from this top-level step, reusing "
                   "the recorded outputs of the steps before it")
    p.add_argument("--patch", metavar="JSON", help="RFC 6902 patch of the trigger payload")
    p.add_argument("--payload", metavar="JSON", help="a replacement trigger payload")
    p.add_argument("--mock", action="append", metavar="STEP=JSON",
                   help="answer STEP with this output in the replay (repeatable)")
    p.add_argument("--recorded-mock", action="append", metavar="STEP",
                   help="answer STEP with its recorded output (repeatable)")
    p.add_argument("--current", metavar="FILE",
                   help="replay with the pipeline as defined in FILE now, not the recorded one")
    p.add_argument("--plan", action="store_true", help="show what would be reused, mocked and "
                   "run, without running")
    p.set_defaults(func=cmd_replay)
