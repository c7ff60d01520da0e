"""``wfstudio keys create|list|revoke``: the hosted server's API keys."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from engine.cli.common import store_url
from engine.cli.parser import STORE_HELP
from engine.service.errors import InvalidInput

FIRST_KEY = "wfstudio keys create --name admin --scope admin"


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "never"


def _describe(key: Any) -> str:
    state = "active" if key.active else "revoked"
    if key.active and key.expired():
        state = "expired"
    return (f"{key.id}  {key.prefix}  {key.name!r}  tenant {key.tenant}  "
            f"scopes {','.join(key.scopes)}  expires {_when(key.expires)}  "
            f"last used {_when(key.last_used)}  {state}")


def cmd_keys(args: argparse.Namespace) -> int:
    from engine.durations import parse_duration
    from engine.server.keys import KeyStore
    from engine.store.store import Store

    store = Store.open(store_url(args))
    try:
        keys = KeyStore(store)
        if args.keys_action == "create":
            expires = None
            if args.expires:
                try:
                    expires = time.time() + parse_duration(args.expires)
                except ValueError as exc:
                    raise InvalidInput(f"--expires: {exc}") from None
            key, secret = keys.create(args.name, args.tenant, args.scope or ["read"], expires)
            if args.json:
                print(json.dumps({"key": key.model_dump(), "secret": secret}, indent=2))
            else:
                print(f"created {_describe(key)}")
                print("secret (shown this once; it is stored only as a hash):")
                print(secret)
        elif args.keys_action == "list":
            listed = keys.list(args.tenant)
            if args.json:
                print(json.dumps([k.model_dump() for k in listed], indent=2))
            elif not listed:
                print(f"no API keys; create one with `{FIRST_KEY}`")
            else:
                for key in listed:
                    print(_describe(key))
        else:
            key_id = args.id.removeprefix("wfs_").split("_", 1)[0]  # an id, prefix or secret
            revoked = keys.revoke(key_id)
            print(f"revoked {revoked.id} ({revoked.name!r}, tenant {revoked.tenant})")
        return 0
    finally:
        store.close()


def add_commands(sub: Any) -> None:
    """Add ``keys`` and its subcommands."""
    from engine.server.keys import SCOPES

    p = sub.add_parser("keys", help="manage the hosted server's API keys")
    actions = p.add_subparsers(dest="keys_action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a key and print its secret once")
    create.add_argument("--name", required=True, help="who or what uses the key")
    create.add_argument("--tenant", default="default", help="the tenant it belongs to "
                        "(default: default)")
    create.add_argument("--scope", action="append", choices=SCOPES,
                        help="read, run, debug, admin (implies the first three) or deploy "
                             "(repeatable; default read)")
    create.add_argument("--expires", help="lifetime, e.g. 30d or 12h (default: never)")
    listing = actions.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--tenant", help="only this tenant's keys")
    revoke = actions.add_parser("revoke", help="revoke a key")
    revoke.add_argument("id", help="the key's id (or its wfs_<id> prefix)")
    for action in (create, listing, revoke):
        action.add_argument("--store", help=STORE_HELP)
        action.add_argument("--json", action="store_true", help="print JSON")
        action.set_defaults(func=cmd_keys)
