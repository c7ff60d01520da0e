"""``wfstudio sources``: the sources of pipeline files (list, start, stop, send, deliveries),
in this process over ``--file``/``--store`` or on a running server with ``--server``.

A source runs in the process that started it: here, ``start``/``stop`` only make sense on
a server (``wfstudio serve`` starts every source of its files by itself). ``send`` takes a
test event in through the source's intake, as one from its transport would be (routing,
schema check, dedup by id), and waits for the execution it started to end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from engine.cli.common import UsageError, dump, jsonable, open_service, table, validated, when
from engine.cli.inputs import parse_json, read_text
from engine.cli.parser import FILE_HELP, Parser, json_option, positive, store_option

if TYPE_CHECKING:
    from engine.service.models import SourceDelivery, SourceInfo
    from engine.service.protocol import StudioService

SERVER_ENV, KEY_ENV = "WFSTUDIO_SERVER", "WFSTUDIO_API_KEY"
UNFINISHED = ("running", "paused", "pending")


# ---------------------------------------------------------------- where the service is


def target_options() -> Parser:
    """``--file``/``--store`` (this process) or ``--server``/``--key`` (a running server)."""
    parent = Parser(add_help=False, parents=[store_option()])
    parent.add_argument("--file", action="append", metavar="FILE", help=FILE_HELP)
    parent.add_argument("--server", metavar="URL",
                        help=f"a running server (`wfstudio serve`), e.g. http://127.0.0.1:8000 "
                        f"(default: ${SERVER_ENV})")
    parent.add_argument("--key", metavar="KEY",
                        help=f"the server's API key (default: ${KEY_ENV}; the variable keeps "
                        "it out of the process list)")
    return parent


def server_url(args: argparse.Namespace) -> str | None:
    url: str | None = args.server or os.environ.get(SERVER_ENV) or None
    if url is None:
        return None
    if args.store or args.file:
        raise UsageError("--server talks to a server, which has its own store and files: "
                         "drop --store/--file, or drop --server to work on local files")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--server {url!r}: give the server's URL, e.g. http://127.0.0.1:8000")
    return url


@asynccontextmanager
async def open_target(args: argparse.Namespace) -> AsyncIterator[StudioService]:
    """The service these commands work through: a server's, or one over local files."""
    url = server_url(args)
    if url is None:
        async with open_service(args, args.file or []) as local:
            yield local
        return
    key = args.key or os.environ.get(KEY_ENV)
    if not key:
        raise UsageError(f"--server needs an API key: --key KEY or ${KEY_ENV} "
                         "(`wfstudio keys create` on the server makes one)")
    from engine.client import RemoteService

    async with RemoteService(url, key) as remote:
        yield remote


# ---------------------------------------------------------------- the commands


async def _sources(args: argparse.Namespace) -> int:
    action = args.action
    remote = server_url(args) is not None
    if action in ("start", "stop") and not remote:
        raise UsageError(f"sources {action} acts on a running server (pass --server URL): a "
                         "source runs in the process that started it, which for a local "
                         "command ends with the command; `wfstudio serve FILE` runs every "
                         "source of FILE")
    data = _event_data(args) if action == "send" else None
    async with open_target(args) as service:
        if action == "list":
            sources = await service.list_sources()
            if args.json:
                print(dump([jsonable(s) for s in sources]))
            elif not sources:
                print("no sources (a source is a connector of a source type that a pipeline's "
                      "event trigger names" + ("" if remote or args.file else
                                               "; pass the pipeline files with --file") + ")")
            else:
                _print_sources(sources)
            return 0
        if action in ("start", "stop"):
            info = await (service.start_source(args.name) if action == "start"
                          else service.stop_source(args.name))
            print(dump(jsonable(info)) if args.json else f"{info.name} {info.state}")
            return 0
        if action == "deliveries":
            found = await service.source_deliveries(args.name, args.limit)
            if args.json:
                print(dump([jsonable(d) for d in found]))
            elif not found:
                print(f"no deliveries of {args.name!r} yet")
            else:
                _print_deliveries(found)
            return 0
        return await _send(service, args, data)


def _event_data(args: argparse.Namespace) -> Any:
    if args.data is not None and args.data_file is not None:
        raise UsageError("give the event's data with --data JSON or --data-file FILE, not both")
    if args.data_file is not None:
        return parse_json(read_text(args.data_file, "--data-file"), "--data-file")
    return None if args.data is None else parse_json(args.data, "--data")


async def _send(service: StudioService, args: argparse.Namespace, data: Any) -> int:
    from engine.service.models import TestEvent

    event = validated(lambda: TestEvent(type=args.type, subject=args.subject, data=data,
                                        id=args.id), "sources send")
    delivery = await service.send_test_event(args.name, event)
    status = None
    if delivery.outcome == "started" and delivery.execution_id and args.wait:
        status = await _wait_ended(service, delivery.execution_id, args.timeout)
        delivery = delivery.model_copy(update={"execution_status": status})
    if args.json:
        print(dump(jsonable(delivery)))
    else:
        print(_describe(delivery))
        if delivery.outcome == "dead_lettered" and delivery.dlq_entry:
            entry = await service.get_dlq(delivery.dlq_entry)
            print(f"error: {entry.error}")
    if status in UNFINISHED:
        print(f"wfstudio: execution {delivery.execution_id} had not ended after --timeout "
              f"{args.timeout}s; it runs on", file=sys.stderr)
    failed = delivery.outcome in ("dead_lettered", "filtered") or status in (
        "failed", "cancelled", *UNFINISHED)
    return 1 if failed else 0


async def _wait_ended(service: StudioService, execution_id: str, timeout: float) -> str:
    """The execution's status once it has ended (or as it is when ``timeout`` passes)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.02
    while True:
        status = (await service.get_execution(execution_id)).status
        if status not in UNFINISHED or loop.time() > deadline:
            return status
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


def _describe(d: SourceDelivery) -> str:
    if d.outcome == "dead_lettered":
        return f"{d.event_id} dead-lettered: DLQ entry {d.dlq_entry} ({d.pipeline})"
    if d.outcome == "filtered":
        return (f"{d.event_id} filtered: no pipeline of the source takes events of type "
                f"{d.type!r}; nothing was started")
    if d.outcome == "duplicate":
        what = (f"execution {d.execution_id}" if d.execution_id
                else f"DLQ entry {d.dlq_entry}")
        return (f"{d.event_id} duplicate: taken in before as {what} "
                f"(delivered {d.deliveries} times); nothing new was started")
    return (f"{d.event_id} {d.outcome}: {d.pipeline} {d.execution_id} "
            f"{d.execution_status or 'running'}")


def _print_sources(sources: Sequence[SourceInfo]) -> None:
    def lag(s: SourceInfo) -> str:
        return "-" if s.lag is None else f"{s.lag:g} {s.lag_unit}"
    table(["name", "type", "state", "pipelines", "started", "dead", "lag", "last error"],
          [[s.name, s.type, s.state, ",".join(s.pipelines), str(s.started), str(s.dead_lettered),
            lag(s), (s.last_error or "")[:70]] for s in sources], indent="")


def _print_deliveries(found: Sequence[SourceDelivery]) -> None:
    table(["received", "event", "type", "outcome", "execution", "status", "dlq", "times"],
          [[when(d.received), _clip(d.event_id, 40), d.type or "-", d.outcome,
            (d.execution_id or "-")[:12], d.execution_status or "-", (d.dlq_entry or "-")[:12],
            str(d.deliveries)] for d in found], indent="")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def cmd_sources(args: argparse.Namespace) -> int:
    return asyncio.run(_sources(args))


def add_commands(sub: Any) -> None:
    """Add ``sources`` and its subcommands."""
    sources = sub.add_parser(
        "sources", help="the sources of pipeline files: list, start, stop, send, deliveries",
        description="The connectors that start executions from outside events (a stream, a "
        "queue, a webhook), in this process over --file/--store or on a running server with "
        f"--server/--key (or ${SERVER_ENV}/${KEY_ENV}).")
    actions = sources.add_subparsers(dest="action", metavar="ACTION", required=True)
    both = [target_options(), json_option()]
    actions.add_parser("list", parents=both, help="the sources, with their state and counters")
    for name, text in (("start", "start reading from a source's transport (on a server)"),
                       ("stop", "stop reading; the transport keeps what was not taken in "
                        "(on a server)")):
        p = actions.add_parser(name, parents=both, help=text)
        p.add_argument("name", metavar="NAME", help="the source's connector name")
    p = actions.add_parser(
        "send", parents=both, help="take a test event in through a source",
        description="Take a made-up event in through the source's intake, exactly as one from "
        "its transport would be (routing by type, the source's schema check, dedup by id), "
        "without using the transport, and wait for the execution it starts to end. Exit 1 "
        "when the event was dead-lettered, no pipeline takes it, or its execution failed or "
        "did not end within --timeout.")
    p.add_argument("name", metavar="NAME", help="the source's connector name")
    p.add_argument("--type", help="the CloudEvents type (default: the one the source's "
                   "trigger takes)")
    p.add_argument("--subject", help="the CloudEvents subject")
    p.add_argument("--id", help="the CloudEvents id (default: a new one); an id sent before "
                   "is a duplicate and starts nothing")
    p.add_argument("--data", metavar="JSON", help="the event's data")
    p.add_argument("--data-file", metavar="FILE", help="the event's data, from a JSON file")
    p.add_argument("--no-wait", dest="wait", action="store_false",
                   help="answer once the execution has started")
    p.add_argument("--timeout", type=positive, default=600, metavar="SECONDS",
                   help="how long to wait for the execution to end (default 600)")
    p = actions.add_parser("deliveries", parents=both,
                           help="the events a source took in, newest first")
    p.add_argument("name", metavar="NAME", help="the source's connector name")
    p.add_argument("--limit", type=positive, default=50, help="at most this many (default 50, "
                   "at most 1000)")
    sources.set_defaults(func=cmd_sources)
