"""``wfstudio``: validate, run and inspect pipelines and read the event store.

The verbs over the studio service (replay, diff, dlq, mocks, breakpoints, backfill) are in
``engine.cli_service``.

Errors a user can cause print one line to stderr (``wfstudio: …``) and exit non-zero; never
a traceback. Exit codes:

- 0: success.
- 1: invalid pipeline files (their diagnostics are printed), a failed execution (``run``,
  ``replay``, a ``dlq retry`` that did not complete, a ``backfill`` with failed runs), a
  request that conflicts with the current state (``Conflict``: e.g. resolving an entry a
  retry holds) and any other engine or store error.
- 2: bad usage or input: bad arguments, invalid JSON, an unknown or ambiguous id or name
  (``NotFound``), input the service rejects (``InvalidInput``: a patch that does not apply,
  a step that does not exist, a pipeline that is not loaded).
- 130: interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine import __version__
from engine.cli_server import add_server_commands
from engine.cli_service import add_commands as add_service_commands
from engine.cli_service import dump as _dump
from engine.cli_service import ms as _ms
from engine.cli_service import print_outcome
from engine.cli_service import store_url as _store_url
from engine.cli_service import when as _when
from engine.errors import ConfigError, NotFoundError, WorkflowError
from engine.service.errors import InvalidInput

EXAMPLES = Path(__file__).resolve().parent.parent / "resources" / "workspace"


class UsageError(Exception):
    """Bad command-line input: exit 2 with the message."""


# ---------------------------------------------------------------- validate / inspect


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


# ---------------------------------------------------------------- run / demo


def _read_input(args: argparse.Namespace) -> Any:
    if args.input is not None and args.input_file is not None:
        raise UsageError("give either --input or --input-file, not both")
    if args.input_file is not None:
        try:
            text = Path(args.input_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read --input-file {args.input_file}: {exc.strerror}") from None
        source = args.input_file
    elif args.input is not None:
        text, source = args.input, "--input"
    else:
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{source}: invalid JSON at line {exc.lineno} column {exc.colno}: "
                         f"{exc.msg}") from None


async def _run(args: argparse.Namespace) -> int:
    from engine.api import Engine

    payload = _read_input(args)
    store: str | None = None if args.no_record else (_store_url(args) or "default")
    async with Engine.open(Path(args.file), store=store) as engine:
        pipeline = args.pipeline
        if pipeline is None:
            names = list(engine.pipelines)
            if len(names) != 1:
                raise UsageError(f"{args.file} has {len(names)} pipelines ({', '.join(names)}): "
                                 "choose one with -p")
            pipeline = names[0]
        execution = await engine.run(pipeline, payload)
    if args.json:
        print(_dump(execution.to_dict()))
    else:
        print_outcome(execution.pipeline, execution.id, execution.status, execution.duration_ms,
                      execution.error, execution.output)
    return 0 if execution.ok else 1


def cmd_run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


async def _demo(args: argparse.Namespace) -> int:
    """Run every sample of the example workspace (resources/workspace/samples.json)."""
    from platformdirs import user_data_dir

    from engine.sample_api import SampleApi

    folder = Path(args.folder)
    samples_file = folder / "samples.json"
    try:
        samples = json.loads(samples_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read {samples_file}: {exc}") from None
    data_dir = Path(user_data_dir("wfstudio")) / "demo"
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DATA_DIR", str(data_dir))
    store = _store_url(args) or "default"
    failures = 0
    with SampleApi() as api:
        os.environ["SAMPLE_API_URL"] = api.url
        for sample in samples:
            failures += not await _demo_sample(folder, sample, store)
    print(f"\n{len(samples) - failures}/{len(samples)} samples as expected; "
          "inspect them with `wfstudio executions list`")
    return 1 if failures else 0


async def _demo_sample(folder: Path, sample: dict[str, Any], store: str) -> bool:
    from engine.api import Engine

    async with Engine.open(folder / sample["file"], store=store) as engine:
        started = time.perf_counter()
        execution = await engine.run(sample["pipeline"], sample.get("input", {}))
        elapsed = (time.perf_counter() - started) * 1000
    expected = sample.get("expect", "completed")
    mark = "ok " if execution.status == expected else "BAD"
    where = f"{sample['file']}:{sample['pipeline']}"
    print(f"{mark} {where:<30} {execution.status:<12} "
          f"{elapsed:7.1f}ms  {sample.get('title', '')}")
    shown = execution.response["body"] if execution.response else execution.output
    if execution.error:
        shown = {"error": execution.error.get("message"), "step": execution.error.get("step")}
    text = json.dumps(shown, default=str)
    print(f"      {text[:150]}{'…' if len(text) > 150 else ''}")
    return execution.status == expected


def cmd_demo(args: argparse.Namespace) -> int:
    return asyncio.run(_demo(args))


# ---------------------------------------------------------------- executions


def _open_store(args: argparse.Namespace) -> Any:
    from engine.store.store import Store

    return Store.open(_store_url(args))


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
    store = _open_store(args)
    try:
        if args.action == "list":
            since = time.time() - _parse_age(args.since) if args.since else None
            rows, cursor = store.list_executions(pipeline=args.pipeline, status=args.status,
                                                 since=since, text=args.text, limit=args.limit,
                                                 cursor=args.cursor)
            if args.json:
                print(_dump({"executions": [vars(r) for r in rows], "next_cursor": cursor}))
                return 0
            if not rows:
                print("no executions")
            for r in rows:
                print(f"{r.id[:12]}  {_when(r.started_at)}  {r.status:<11} "
                      f"{_ms(r.duration_ms):>10}  {r.pipeline}"
                      + (f"  (child of {r.parent_id[:12]})" if r.parent_id else ""))
            if cursor:
                print(f"more: --cursor {cursor}")
            return 0
        if args.id is None:
            raise UsageError(f"executions {args.action} needs an execution id")
        record = _find(store, args.id)
        if args.action == "show":
            print(_dump(vars(record)))
        elif args.action == "timeline":
            runs = store.timeline(record.id)
            if args.json:
                print(_dump([vars(r) for r in runs]))
                return 0
            print(f"{record.pipeline} {record.id} {record.status} {_ms(record.duration_ms)}")
            for run in runs:
                flags = f" [{', '.join(run.flags)}]" if run.flags else ""
                where = f"#{run.iteration}" if run.iteration else ""
                tries = f" attempt {run.attempt}" if run.attempt > 1 else ""
                error = f"  {run.error}" if run.error else ""
                print(f"  {run.path + where:<32} {run.status:<10} {_ms(run.duration_ms):>10}"
                      f"{tries}{flags}{error}")
        else:
            events = store.events(record.id, after_seq=args.after, limit=args.limit,
                                  types=args.type or None)
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


# ---------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wfstudio",
        description="Validate, run, debug and replay workflow pipelines; read the event store.",
        epilog="`wfstudio` alone, or `wfstudio studio [PATH]`, opens the desktop studio.")
    parser.add_argument("--version", action="version", version=f"wfstudio {__version__}")
    store_help = "event store URL (default: $WFSTUDIO_STORE or the SQLite file in your data dir)"
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("validate", help="check pipeline files; exit 1 on errors")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("inspect", help="show a file's modules, pipelines and steps")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("run", help="run a pipeline and print its result")
    p.add_argument("file", metavar="FILE")
    p.add_argument("-p", "--pipeline")
    p.add_argument("--input", help="trigger payload as JSON")
    p.add_argument("--input-file", help="file holding the trigger payload as JSON")
    p.add_argument("--json", action="store_true", help="print {execution_id, status, output, error}")
    p.add_argument("--store", help=store_help)
    p.add_argument("--no-record", action="store_true", help="record nothing")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="run the example workspace's samples headless")
    p.add_argument("folder", nargs="?", default=str(EXAMPLES))
    p.add_argument("--store", help=store_help)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("executions", help="read recorded executions")
    p.add_argument("action", choices=["list", "show", "timeline", "events"])
    p.add_argument("id", nargs="?", help="execution id (or a unique prefix)")
    p.add_argument("--store", help=store_help)
    p.add_argument("--pipeline")
    p.add_argument("--status")
    p.add_argument("--since", help="only newer than this age, e.g. 1h, 2d")
    p.add_argument("--text", help="match id, pipeline or error text")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--cursor")
    p.add_argument("--after", type=int, default=0, help="events after this seq")
    p.add_argument("--type", action="append", help="only events of this type (repeatable)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_executions)

    add_service_commands(sub, store_help)
    add_server_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        code: int = args.func(args)
        return code
    except ConfigError as exc:
        for diagnostic in exc.diagnostics:
            print(diagnostic, file=sys.stderr)
        return 1
    except (UsageError, InvalidInput, NotFoundError) as exc:
        print(f"wfstudio: {exc}", file=sys.stderr)
        return 2
    except WorkflowError as exc:
        print(f"wfstudio: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("wfstudio: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
