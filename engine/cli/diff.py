"""``wfstudio diff``: compare two executions step by step."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from engine.cli.common import dump, find_execution_id, jsonable, ms, open_service, short, table
from engine.cli.parser import json_option, store_option

if TYPE_CHECKING:
    from engine.service.models import StepDiff, ValueChange


def _changes(label: str, changes: Sequence[ValueChange], limit: int = 20) -> None:
    for change in changes[:limit]:
        print(f"  {label}{change.path or '(root)'}: {short(change.value_a)} → "
              f"{short(change.value_b)}")
    if len(changes) > limit:
        print(f"  … and {len(changes) - limit} more {label.strip() or 'change'}(s)")


def _step_label(step: StepDiff) -> str:
    return step.path + (f"#{step.iteration}" if step.iteration else "")


async def _diff(args: argparse.Namespace) -> int:
    async with open_service(args) as service:
        a = await find_execution_id(service, args.a)
        b = await find_execution_id(service, args.b)
        diff = await service.diff(a, b)
    if args.json:
        print(dump(jsonable(diff)))
        return 0
    print(f"a  {diff.a}  {diff.pipeline_a}  {diff.status_a}")
    print(f"b  {diff.b}  {diff.pipeline_b}  {diff.status_b}")
    print(f"definition: {'changed' if diff.definition_changed else 'same'}")
    s = diff.summary
    print(f"steps: {s.get('same', 0)} same, {s.get('changed', 0)} changed, "
          f"{s.get('only_a', 0)} only in a, {s.get('only_b', 0)} only in b")
    if diff.trigger_changes:
        print("trigger payload:")
        _changes("", diff.trigger_changes)
    if diff.output_changes:
        print("output:")
        _changes("", diff.output_changes)
    print()
    rows = [["" if st.same else "≠", _step_label(st), str(st.attempt), st.status_a or "-",
             st.status_b or "-", st.route_a or "-", st.route_b or "-", ms(st.duration_ms_a),
             ms(st.duration_ms_b)] for st in diff.steps]
    table(["", "step", "try", "status a", "status b", "route a", "route b", "time a", "time b"],
           rows, indent="")
    first = diff.first_divergence
    print()
    if first is None:
        print("no divergence: every step has the same status, route and output")
    else:
        print(f"first divergence: {_step_label(first)} attempt {first.attempt}")
        if first.status_a != first.status_b:
            print(f"  status: {first.status_a or '(did not run)'} → {first.status_b or '(did not run)'}")
        if first.route_a != first.route_b:
            print(f"  route: {first.route_a or '-'} → {first.route_b or '-'}")
        _changes("input ", first.input_changes)
        _changes("output ", first.output_changes)
    if diff.definition_changed:
        print("\ndefinition diff:")
        for line in diff.definition_change:
            print(line)
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    return asyncio.run(_diff(args))


def add_commands(sub: Any) -> None:
    """Add ``diff``."""
    p = sub.add_parser("diff", parents=[store_option(), json_option()],
                       help="compare two executions step by step")
    p.add_argument("a", metavar="A", help="execution id (or a unique prefix)")
    p.add_argument("b", metavar="B", help="execution id (or a unique prefix)")
    p.set_defaults(func=cmd_diff)
