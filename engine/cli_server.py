"""``wfstudio serve`` (the hosted server) and ``wfstudio keys`` (its API keys).

``add_server_commands(subparsers)`` adds both verbs to the CLI's parser.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from typing import Any

from engine.service.errors import InvalidInput

STORE_HELP = "event store URL (default: $WFSTUDIO_STORE or the SQLite file in your data dir)"
FIRST_KEY = "wfstudio keys create --name admin --scope admin"


def _store_url(args: argparse.Namespace) -> str | None:
    url: str | None = args.store or os.environ.get("WFSTUDIO_STORE")
    return url


def parse_addr(text: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` (127.0.0.1)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput(f"--addr {text!r}: use host:port, e.g. 127.0.0.1:8080")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


# ---------------------------------------------------------------- serve


async def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from engine.server import KeyStore, create_app
    from engine.service.local import LocalService

    host, port = parse_addr(args.addr)
    url = _store_url(args)
    service = await LocalService.open(args.files, store=url)
    try:
        keys = KeyStore(service.store)
        if keys.count_active() == 0:
            store = f" --store '{service.store.url}'" if url else ""
            print("wfstudio: this store has no API keys yet, so every request is refused.\n"
                  f"Create the first admin key with:\n  {FIRST_KEY}{store}", file=sys.stderr)
        app = create_app(service, keys=keys, deploy_dir=args.deploy_dir,
                         heartbeat=args.heartbeat)
        config = uvicorn.Config(app, host=host, port=port, log_level=args.log_level,
                                timeout_graceful_shutdown=5, server_header=False)
        server = uvicorn.Server(config)
        print(f"wfstudio: serving {', '.join(map(str, args.files)) or 'no files'} on "
              f"http://{host}:{port} (API docs at /docs), store {service.store.url}",
              file=sys.stderr)
        await server.serve()
        return 0 if server.started else 1
    finally:
        await service.close()


def cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(name)s: %(message)s")
    logging.getLogger("wfstudio").setLevel(logging.INFO)
    return asyncio.run(_serve(args))


# ---------------------------------------------------------------- keys


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

    store = Store.open(_store_url(args))
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


# ---------------------------------------------------------------- wiring


def add_server_commands(sub: Any) -> None:
    """Add ``serve`` and ``keys`` to the CLI's subparsers."""
    from engine.server.keys import SCOPES

    p = sub.add_parser("serve", help="run the hosted server (HTTP API, live events, http triggers)")
    p.add_argument("files", nargs="*", metavar="FILE", help="pipeline files to serve")
    p.add_argument("--addr", default="127.0.0.1:8080", help="host:port (default 127.0.0.1:8080)")
    p.add_argument("--store", help=STORE_HELP)
    p.add_argument("--deploy-dir", help="accept pipeline files deployed over the API into "
                                        "this directory (default: deployments are refused)")
    p.add_argument("--heartbeat", type=float, default=15.0,
                   help="seconds between keep-alive comments on event streams (default 15)")
    p.add_argument("--log-level", default="info",
                   choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("keys", help="manage the hosted server's API keys")
    actions = p.add_subparsers(dest="keys_action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a key and print its secret once")
    create.add_argument("--name", required=True, help="who or what uses the key")
    create.add_argument("--tenant", default="default")
    create.add_argument("--scope", action="append", choices=SCOPES,
                        help="read, run, debug or admin (repeatable; default read)")
    create.add_argument("--expires", help="lifetime, e.g. 30d or 12h (default: never)")
    listing = actions.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--tenant", help="only this tenant's keys")
    revoke = actions.add_parser("revoke", help="revoke a key")
    revoke.add_argument("id", help="the key's id (or its wfs_<id> prefix)")
    for action in (create, listing, revoke):
        action.add_argument("--store", help=STORE_HELP)
        action.add_argument("--json", action="store_true")
        action.set_defaults(func=cmd_keys)


def main(argv: list[str] | None = None) -> int:
    """``python -m engine.cli_server serve|keys …``: the same as ``wfstudio serve|keys …``."""
    from engine.cli import main as wfstudio

    return wfstudio(argv)


if __name__ == "__main__":
    sys.exit(main())
