"""``wfstudio``: validate, run and inspect pipelines and read the event store.

One module per noun: ``validate`` (and inspect), ``run`` (and demo), ``executions``,
``replay``, ``diff``, ``dlq``, ``mocks``, ``breakpoints``, ``backfill`` (and backfills),
``sources``, ``schemas``, ``serve``, ``keys``; each adds its commands to the parser.
``common`` holds what they share (printing, the service and its ids), ``inputs`` the one
reader of JSON options, ``parser`` argparse as this CLI uses it.

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

JSON given on the command line is read by ``engine.cli.inputs`` (one set of rules for every
option); argparse's own usage errors print the subcommand's usage and exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from engine import __version__
from engine.cli import (
    backfill,
    breakpoints,
    diff,
    dlq,
    executions,
    keys,
    mocks,
    replay,
    run,
    schemas,
    serve,
    sources,
    validate,
)
from engine.cli.common import UsageError
from engine.cli.parser import Parser, describe_subcommands, walk
from engine.errors import ConfigError, NotFoundError, WorkflowError
from engine.service.errors import InvalidInput

# In the order `wfstudio --help` lists them (after studio).
COMMANDS = (validate, run, executions, replay, diff, dlq, mocks, breakpoints, backfill, sources,
            schemas, serve, keys)


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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("studio", help="open the desktop studio (also `wfstudio` alone)",
                       description="Open the desktop studio on a folder of pipeline files (or "
                       "the folder of one file); without PATH, the example workspace.")
    p.add_argument("path", nargs="?", metavar="PATH", help="a folder or a pipeline file")
    p.set_defaults(func=cmd_studio)

    for command in COMMANDS:
        command.add_commands(sub)
    for each in walk(parser):
        each.set_defaults(_parser=each)  # the deepest one's usage goes with its errors
        describe_subcommands(each)
    return parser


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
