"""``wfstudio schemas``: the event schema registry (list, add, validate), over local files
and a store or on a running server with ``--server`` (as ``wfstudio sources``).

A source whose config names a ``schema`` dead-letters every event whose data does not
match that type's latest version; ``validate`` checks a payload the same way first.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from engine.cli.common import dump, jsonable, table
from engine.cli.inputs import parse_json, read_text
from engine.cli.parser import json_option
from engine.cli.sources import KEY_ENV, SERVER_ENV, open_target, target_options


async def _schemas(args: argparse.Namespace) -> int:
    action = args.action
    document = None
    if action in ("add", "validate"):  # read before connecting: a bad file costs nothing
        option = "schema file" if action == "add" else "event file"
        document = parse_json(read_text(args.path, option), args.path,
                              "object" if action == "add" else "any")
    async with open_target(args) as service:
        if action == "list":
            schemas = await service.list_schemas()
            if args.json:
                print(dump([jsonable(s) for s in schemas]))
            elif not schemas:
                print("no event schemas (declare them under 'schemas:' in a pipeline file, or "
                      "register one with `wfstudio schemas add TYPE FILE.json`)")
            else:
                table(["type", "version", "where", "required"],
                      [[s.type, str(s.version), "declared in a file" if s.version == 0 else "registry",
                        ",".join(map(str, s.schema_.get("required", []))) or "-"]
                       for s in schemas], indent="")
            return 0
        if action == "add":
            assert isinstance(document, dict)
            added = await service.register_schema(args.type, document)
            print(dump(jsonable(added)) if args.json
                  else f"registered {added.type} version {added.version}")
            return 0
        violations = await service.validate_event(args.type, document)
    if args.json:
        print(dump({"valid": not violations, "violations": violations}))
    elif violations:
        print(f"{args.path}: {len(violations)} violation{'s' if len(violations) > 1 else ''} "
              f"of {args.type}:")
        for violation in violations:  # each "<path in the data>: <what is wrong>"
            print(f"  {violation}")
    else:
        print(f"{args.path}: valid {args.type}")
    return 1 if violations else 0


def cmd_schemas(args: argparse.Namespace) -> int:
    return asyncio.run(_schemas(args))


def add_commands(sub: Any) -> None:
    """Add ``schemas`` and its subcommands."""
    schemas = sub.add_parser(
        "schemas", help="the event schema registry: list, add, validate",
        description="Event schemas (JSON Schema, by CloudEvents type): those declared under "
        "'schemas:' in the pipeline files (version 0) and those registered in the store, each "
        "registration a new version. Over --file/--store, or on a running server with "
        f"--server/--key (or ${SERVER_ENV}/${KEY_ENV}).")
    actions = schemas.add_subparsers(dest="action", metavar="ACTION", required=True)
    both = [target_options(), json_option()]
    actions.add_parser("list", parents=both, help="every type's versions")
    p = actions.add_parser("add", parents=both, help="register a new version of a type's schema",
                           description="Register FILE (a JSON Schema, draft 2020-12) as the "
                           "next version of TYPE; events are checked against the latest one.")
    p.add_argument("type", metavar="TYPE", help="the event type, e.g. order.created")
    p.add_argument("path", metavar="FILE.json", help="the JSON Schema")
    p = actions.add_parser("validate", parents=both, help="check event data against a type's schema",
                           description="Check the JSON in FILE against TYPE's latest schema; "
                           "print each violation with its path in the data and exit 1 when "
                           "there is any.")
    p.add_argument("type", metavar="TYPE", help="the event type, e.g. order.created")
    p.add_argument("path", metavar="FILE.json", help="the event's data")
    schemas.set_defaults(func=cmd_schemas)
