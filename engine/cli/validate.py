"""``wfstudio validate`` and ``wfstudio inspect``: check and describe pipeline files."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any


def cmd_validate(args: argparse.Namespace) -> int:
    from engine.config.loader import validate_paths

    diagnostics = validate_paths(args.files)
    for diagnostic in diagnostics:
        print(diagnostic, file=sys.stderr if diagnostic.severity == "error" else sys.stdout)
    errors = sum(d.severity == "error" for d in diagnostics)
    warnings = len(diagnostics) - errors
    if errors:
        print(f"{errors} error(s), {warnings} warning(s)", file=sys.stderr)
        return 1
    print(f"ok: {len(args.files)} file(s) valid" + (f", {warnings} warning(s)" if warnings else ""))
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from engine.config.loader import load_file

    definition = load_file(args.file)
    print(f"{args.file}: {definition.name or '(unnamed)'} {definition.version}".rstrip())
    print(f"  definition hash {definition.hash[:12]}")
    for module in definition.modules.values():
        print(f"  module {module.name}: {module.type}")
    for pipeline in definition.pipelines.values():
        trigger = pipeline.trigger
        detail = ""
        if trigger.type == "http":
            detail = f" {trigger.config.get('method', '')} {trigger.config.get('path', '')}"
        print(f"  pipeline {pipeline.name} [{trigger.type}{detail}] on_error={pipeline.on_error}")
        if pipeline.description:
            print(f"    {pipeline.description}")
        _print_steps(pipeline.steps, "    ")
        if pipeline.compensation:
            print("    compensation:")
            _print_steps(pipeline.compensation, "      ")
    for warning in definition.warnings:
        print(warning)
    return 0


def _print_steps(steps: Sequence[Any], indent: str) -> None:
    for number, step in enumerate(steps, 1):
        extras = []
        if step.if_:
            extras.append(f"if {step.if_}")
        if step.retry and step.retry.max_attempts > 1:
            extras.append(f"retry x{step.retry.max_attempts}")
        if step.timeout:
            extras.append(f"timeout {step.timeout:g}s")
        if step.compensate:
            extras.append("compensated")
        tail = f"  ({', '.join(extras)})" if extras else ""
        print(f"{indent}{number}. {step.name}: {step.type}{tail}")
        for key, children in step.substeps.items():
            print(f"{indent}   {key}:")
            _print_steps(children, indent + "     ")


def add_commands(sub: Any) -> None:
    """Add ``validate`` and ``inspect``."""
    p = sub.add_parser("validate", help="check pipeline files; exit 1 on errors",
                       description="Check pipeline files: YAML, the schema, step types and "
                       "their configs, expressions and references. Prints file:line:col "
                       "diagnostics; exit 1 if any is an error.")
    p.add_argument("files", nargs="+", metavar="FILE", help="pipeline files to check")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("inspect", help="show a file's modules, pipelines and steps",
                       description="Print a pipeline file's definition hash, modules, and each "
                       "pipeline's trigger, error policy and steps (with conditions, retries, "
                       "timeouts and compensations).")
    p.add_argument("file", metavar="FILE", help="the pipeline file")
    p.set_defaults(func=cmd_inspect)
