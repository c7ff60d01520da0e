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
- 141: the reader of stdout has gone (``wfstudio executions list | head -1``); nothing printed.

JSON given on the command line is read by ``engine.cli_input`` (one set of rules for every
option); argparse's own usage errors print the subcommand's usage and exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from engine import __version__
from engine.cli.inputs import parse_json, read_text
from engine.cli.serve import add_server_commands
from engine.cli.common import add_commands as add_service_commands
from engine.cli.common import dump as _dump
from engine.cli.common import ms as _ms
from engine.cli.common import print_outcome
from engine.cli.common import store_url as _store_url
from engine.cli.common import when as _when
from engine.errors import ConfigError, NotFoundError, WorkflowError
from engine.service.errors import InvalidInput

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "resources" / "workspace"


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
        return parse_json(read_text(args.input_file, "--input-file"), "--input-file", "object")
    if args.input is not None:
        return parse_json(args.input, "--input", "object")
    return {}


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


EXECUTION_STATUSES = ("running", "paused", "completed", "failed", "cancelled", "interrupted")


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


# ---------------------------------------------------------------- entry point


class Parser(argparse.ArgumentParser):
    """argparse, explaining the one mistake it cannot: a value that starts with ``-``."""

    def error(self, message: str) -> NoReturn:
        match = re.fullmatch(r"argument (?:\S+/)?(-\S+): expected one argument", message)
        if match:
            message += (f" (a value that starts with '-' goes after '=', e.g. "
                        f"{match[1]}=-1)")
        super().error(message)

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
        # argparse drops a value of exactly "--" (`--input=--`) as if it ended the options,
        # leaving a list where a string belongs: it is the value.
        if action.nargs is None and arg_strings == ["--"]:
            value = self._get_value(action, "--")
            self._check_value(action, value)
            return value
        return super()._get_values(action, arg_strings)


def _walk(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every subcommand's parser under it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                yield from _walk(child)


def _describe_subcommands(parser: argparse.ArgumentParser) -> None:
    """A subcommand without a description shows its one-line help atop its own --help."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for listed in action._choices_actions:
                child = action.choices[listed.dest]
                if child.description is None and listed.help:
                    child.description = listed.help[0].upper() + listed.help[1:] + "."


def cmd_studio(args: argparse.Namespace) -> int:
    # engine/ never loads Qt: the `wfstudio` launcher (app.launcher) opens the studio itself.
    raise UsageError("the studio opens through the `wfstudio` command (`wfstudio studio "
                     f"{args.path or ''}".rstrip() + "`), not `python -m engine.cli`")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="wfstudio",
        description="Validate, run, debug and replay workflow pipelines; read the event store.",
        epilog="`wfstudio` alone, or `wfstudio studio [PATH]`, opens the desktop studio.")
    parser.add_argument("--version", action="version", version=f"wfstudio {__version__}",
                        help="print the version and exit")
    store_help = "event store URL (default: $WFSTUDIO_STORE or the SQLite file in your data dir)"
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("studio", help="open the desktop studio (also `wfstudio` alone)",
                       description="Open the desktop studio on a folder of pipeline files (or "
                       "the folder of one file); without PATH, the example workspace.")
    p.add_argument("path", nargs="?", metavar="PATH", help="a folder or a pipeline file")
    p.set_defaults(func=cmd_studio)

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

    p = sub.add_parser("run", help="run a pipeline and print its result",
                       description="Run a pipeline once with a JSON object as its trigger "
                       "payload; exit 1 if the execution fails. Runs the engine directly: "
                       "mocks and breakpoints do not apply.")
    p.add_argument("file", metavar="FILE", help="the pipeline file")
    p.add_argument("-p", "--pipeline", help="which pipeline (needed when FILE has several)")
    p.add_argument("--input", metavar="JSON", help="trigger payload, a JSON object")
    p.add_argument("--input-file", metavar="FILE", help="file holding the trigger payload as JSON")
    p.add_argument("--json", action="store_true", help="print {execution_id, status, output, error}")
    p.add_argument("--store", help=store_help)
    p.add_argument("--no-record", action="store_true", help="record nothing")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="run the example workspace's samples headless",
                       description="Run every sample of a workspace's samples.json and check "
                       "each ends as expected; exit 1 otherwise.")
    p.add_argument("folder", nargs="?", default=str(EXAMPLES), metavar="FOLDER",
                   help="a workspace with samples.json (default: the example workspace)")
    p.add_argument("--store", help=store_help)
    p.set_defaults(func=cmd_demo)

    executions = sub.add_parser("executions", help="read recorded executions: list, show, "
                                "timeline, events")
    actions = executions.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = Parser(add_help=False)
    common.add_argument("--store", help=store_help)
    with_id = Parser(add_help=False)
    with_id.add_argument("id", metavar="ID", help="execution id (or a unique prefix)")
    as_json = Parser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON")
    p = actions.add_parser("list", parents=[common, as_json], help="executions, newest first")
    p.add_argument("--pipeline", help="only this pipeline's executions")
    p.add_argument("--status", help=f"only this status: {', '.join(EXECUTION_STATUSES)}")
    p.add_argument("--since", help="only newer than this age, e.g. 1h, 2d")
    p.add_argument("--text", help="match id, pipeline or error text")
    p.add_argument("--limit", type=_positive, default=50, help="at most this many (default 50)")
    p.add_argument("--cursor", help="continue a listing where `more: --cursor` said")
    actions.add_parser("show", parents=[with_id, common], help="an execution's summary as JSON")
    actions.add_parser("timeline", parents=[with_id, common, as_json],
                       help="its step runs with attempts, iterations and flags")
    p = actions.add_parser("events", parents=[with_id, common],
                           help="its raw, append-only event stream")
    p.add_argument("--after", type=int, default=0, metavar="SEQ", help="events after this seq")
    p.add_argument("--type", action="append", help="only events of this type (repeatable)")
    p.add_argument("--limit", type=_positive, default=1000, help="at most this many (default 1000)")
    p.add_argument("--json", action="store_true", help="print one JSON object per line")
    executions.set_defaults(func=cmd_executions)

    add_service_commands(sub, store_help)
    add_server_commands(sub)
    for each in _walk(parser):
        each.set_defaults(_parser=each)  # the deepest one's usage goes with its errors
        _describe_subcommands(each)
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _silence_stdout() -> None:
    """The reader of stdout has gone (``| head``): later writes, and the flush at exit, go
    nowhere instead of raising BrokenPipeError again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (captured in tests)
        pass


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # a closed pipe shows here, while it can still be handled
        return code
    except BrokenPipeError:
        _silence_stdout()
        return 141  # as a process killed by SIGPIPE, the shell's convention


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # said by the subcommand that was given them, with its usage
            args._parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as exc:  # --help, --version, or a usage error (printed already)
        return 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 2
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

