"""``wfstudio serve`` (the hosted server) and ``wfstudio keys`` (its API keys).

``add_server_commands(subparsers)`` adds both verbs to the CLI's parser.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
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
    worker = args.listen_fd is not None  # one of several processes started by _supervise
    first = args.worker_number in (None, 0)  # the one that warns about a store without keys
    from engine.config.envvars import allowed_env

    # Pipelines on a server see only the variables it allows (${VAR}, .env, jq's $ENV).
    env = allowed_env(args.allow_env or [], os.environ)
    service = await LocalService.open(args.files, store=url, env=env)
    try:
        keys = KeyStore(service.store)
        if first and keys.count_active() == 0:
            store = f" --store '{service.store.url}'" if url else ""
            print("wfstudio: this store has no API keys yet, so every request is refused.\n"
                  f"Create the first admin key with:\n  {FIRST_KEY}{store}", file=sys.stderr)
        app = create_app(service, keys=keys, deploy_dir=args.deploy_dir,
                         heartbeat=args.heartbeat)
        # httptools parses HTTP in C when installed (uvicorn's "auto"); per-request access
        # lines cost about a tenth of a request's CPU time, so they are opt-in.
        config = uvicorn.Config(app, host=host, port=port, log_level=args.log_level,
                                access_log=args.access_log, timeout_graceful_shutdown=5,
                                server_header=False)
        server = uvicorn.Server(config)
        if not worker:
            print(f"wfstudio: serving {', '.join(map(str, args.files)) or 'no files'} on "
                  f"http://{host}:{port} (API docs at /docs), store {service.store.url}",
                  file=sys.stderr)
        sockets = [socket.socket(fileno=args.listen_fd)] if worker else None
        await server.serve(sockets)
        return 0 if server.started else 1
    finally:
        await service.close()


def _worker_argv(args: argparse.Namespace, fd: int, number: int) -> list[str]:
    argv = [sys.executable, "-m", "engine.cli", "serve", *map(str, args.files),
            "--addr", args.addr, "--heartbeat", str(args.heartbeat),
            "--log-level", args.log_level, "--listen-fd", str(fd), "--worker-number", str(number)]
    if args.store:
        argv += ["--store", args.store]
    if args.deploy_dir:
        argv += ["--deploy-dir", args.deploy_dir]
    for name in args.allow_env or []:
        argv += ["--allow-env", name]
    if args.access_log:
        argv.append("--access-log")
    return argv


def _supervise(args: argparse.Namespace) -> int:
    """``--workers N``: bind the address once and run N server processes accepting on it.

    Each worker opens the store itself (see README: several processes on one store). A
    worker that exits stops the others; SIGINT/SIGTERM is passed on to all of them.
    """
    import signal
    import subprocess

    from sqlalchemy import make_url
    from sqlalchemy.exc import ArgumentError

    host, port = parse_addr(args.addr)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        print(f"wfstudio: cannot listen on {args.addr}: {exc.strerror}", file=sys.stderr)
        return 1
    listener.listen(2048)
    listener.set_inheritable(True)
    fd = listener.fileno()
    workers = [subprocess.Popen(_worker_argv(args, fd, n), pass_fds=(fd,))
               for n in range(args.workers)]
    url = _store_url(args)
    try:
        shown = make_url(url).render_as_string(hide_password=True) if url else "the default store"
    except ArgumentError:  # the workers say what is wrong with it
        shown = "(not a valid URL)"
    print(f"wfstudio: serving {', '.join(map(str, args.files)) or 'no files'} on "
          f"http://{host}:{port} with {args.workers} worker processes "
          f"(pids {', '.join(str(w.pid) for w in workers)}), store {shown}", file=sys.stderr)
    if url is None or url.startswith("sqlite"):
        print("wfstudio: note: on SQLite each worker keeps its own debugger pauses and store "
              "locks (a resume must reach the process holding the pause); PostgreSQL shares "
              "them across processes", file=sys.stderr)

    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM if signum == signal.SIGTERM else signal.SIGINT)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        failed = False
        while any(w.poll() is None for w in workers):
            exited = [w for w in workers if w.poll() is not None]
            if exited and not stopping:  # one worker gone: the others stop too
                failed = any(w.returncode != 0 for w in exited)
                print("wfstudio: a worker process exited; stopping the others", file=sys.stderr)
                stop(signal.SIGTERM, None)
            time.sleep(0.2)
        failed = failed or (not stopping and any(w.returncode != 0 for w in workers))
        return 1 if failed else 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        listener.close()


def _event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop where it is installed: about a fifth less CPU per request."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(name)s: %(message)s")
    logging.getLogger("wfstudio").setLevel(logging.INFO)
    if args.workers < 1:
        raise InvalidInput("--workers must be at least 1")
    from engine.config.envvars import check_allow_pattern

    try:
        args.allow_env = [check_allow_pattern(name) for name in args.allow_env or []]
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    if args.workers > 1 and args.listen_fd is None:
        return _supervise(args)
    with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
        return runner.run(_serve(args))


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
    p.add_argument("--allow-env", action="append", metavar="NAME",
                   help="an environment variable the pipelines may read (${NAME}, .env, jq's "
                        "$ENV), or a pattern such as 'APP_*'; repeatable (default: none)")
    p.add_argument("--heartbeat", type=float, default=15.0,
                   help="seconds between keep-alive comments on event streams (default 15)")
    p.add_argument("--log-level", default="info",
                   choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--access-log", action="store_true",
                   help="log every request (default: off; it costs CPU on every request)")
    p.add_argument("--workers", type=int, default=1,
                   help="server processes sharing the address (default 1); see the README "
                        "on several processes on one store")
    # A worker of --workers N: the listening socket it inherits, and which worker it is.
    p.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    p.add_argument("--worker-number", type=int, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("keys", help="manage the hosted server's API keys")
    actions = p.add_subparsers(dest="keys_action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a key and print its secret once")
    create.add_argument("--name", required=True, help="who or what uses the key")
    create.add_argument("--tenant", default="default")
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
        action.add_argument("--json", action="store_true")
        action.set_defaults(func=cmd_keys)


def main(argv: list[str] | None = None) -> int:
    """``python -m engine.cli_server serve|keys …``: the same as ``wfstudio serve|keys …``."""
    from engine.cli import main as wfstudio

    return wfstudio(argv)


if __name__ == "__main__":
    sys.exit(main())
