"""``wfstudio serve``: the hosted server, in one process or ``--workers N``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from engine.cli.common import store_url
from engine.cli.keys import FIRST_KEY
from engine.cli.parser import STORE_HELP
from engine.service.errors import InvalidInput

if TYPE_CHECKING:
    import uvicorn  # imported when serving: the CLI's other verbs start faster without it

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOP_GRACE = 30.0  # seconds a worker may take to stop before its supervisor kills it


def parse_addr(text: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` (127.0.0.1)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput(f"--addr {text!r}: use host:port, e.g. 127.0.0.1:8080")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2,
          "mib": 1024**2, "g": 1024**3, "gb": 1024**3, "gib": 1024**3}


def parse_size(text: str, option: str = "--max-body") -> int:
    """``10485760``, ``10MB``, ``512 KiB``, ``1.5mb``: bytes (K, M, G are powers of 1024)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = _UNITS.get(match[2].lower()) if match else None
    if match is None or unit is None:
        raise InvalidInput(f"{option} {text!r}: use a size in bytes, or with KB, MB or GB "
                           "(e.g. 10MB)")
    size = int(float(match[1]) * unit)
    if size < 1:
        raise InvalidInput(f"{option} {text!r}: the size must be at least 1 byte")
    return size


# ---------------------------------------------------------------- one server process


async def _serve(args: argparse.Namespace, stop: _Stop) -> int:
    from pathlib import Path

    import uvicorn

    from engine.server import KeyStore, create_app
    from engine.service.local import LocalService
    from engine.service.naming import ServerNames

    host, port = parse_addr(args.addr)
    url = store_url(args)
    worker = args.listen_fd is not None  # one of several processes started by _supervise
    first = args.worker_number in (None, 0)  # the one that warns about a store without keys
    from engine.config.envvars import allowed_env

    # Pipelines on a server see only the variables it allows (${VAR}, .env, jq's $ENV).
    env = allowed_env(args.allow_env or [], os.environ)
    # Files are named relative to their definition root: callers never see server paths.
    names = ServerNames(Path(args.deploy_dir) if args.deploy_dir else None)
    service = await LocalService.open(args.files, store=url, env=env, names=names)
    try:
        keys = KeyStore(service.store)
        if first and keys.count_active() == 0:
            store = f" --store '{service.store.url}'" if url else ""
            print("wfstudio: this store has no API keys yet, so every request is refused.\n"
                  f"Create the first admin key with:\n  {FIRST_KEY}{store}", file=sys.stderr)
        app = create_app(service, keys=keys, deploy_dir=args.deploy_dir,
                         heartbeat=args.heartbeat, max_body=parse_size(args.max_body),
                         max_input=parse_size(args.max_input, "--max-input"))
        from engine.server.heap import settle

        settle()  # before serving: the collector set for a server's allocations
        # httptools parses HTTP in C when installed (uvicorn's "auto"); per-request access
        # lines cost about a tenth of a request's CPU time, so they are opt-in.
        config = uvicorn.Config(app, host=host, port=port, log_level=args.log_level,
                                access_log=args.access_log, timeout_graceful_shutdown=5,
                                server_header=False)
        server = _server(config)
        if not worker:
            print(f"wfstudio: serving {', '.join(map(str, args.files)) or 'no files'} on "
                  f"http://{host}:{port} (API docs at /docs), store {service.store.url}",
                  file=sys.stderr)
        sockets = [socket.socket(fileno=args.listen_fd)] if worker else None
        if stop.count:  # stopped while the store was opening: never start serving
            return 0
        if not args.no_sources:  # the files' sources run while this process serves
            service.sources.autostart = True
            await service.sources.refresh()
        stop.server = server
        watch = (asyncio.create_task(_watch_parent(server, args.supervisor_pid))
                 if args.supervisor_pid else None)
        try:
            await server.serve(sockets)
        finally:
            stop.server = None
            if watch is not None:
                watch.cancel()
        return 0 if server.started or stop.count else 1
    finally:
        await service.close()


def _server(config: uvicorn.Config) -> uvicorn.Server:
    """uvicorn without its own signal handling: ``_Stop`` owns SIGINT/SIGTERM.

    uvicorn would restore the previous handlers after its shutdown and raise the signals
    again, which turns a clean stop into a KeyboardInterrupt (and a traceback) in the middle
    of closing the service, and a signal that came before it started is not seen at all.
    """
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Server(config)


class _Stop:
    """SIGINT/SIGTERM in a serving process, installed before anything is opened.

    The first stops gracefully (or keeps the server from starting), the second stops it at
    once (no waiting for open connections); one more, or a second while not serving,
    interrupts whatever is running.
    """

    def __init__(self) -> None:
        self.count = 0
        self.server: uvicorn.Server | None = None

    def __call__(self, _signum: int, _frame: Any) -> None:
        self.count += 1
        server = self.server
        if server is not None and not server.should_exit:
            server.should_exit = True
        elif server is not None and not server.force_exit:
            server.force_exit = True
        elif self.count > 1:
            raise KeyboardInterrupt


async def _watch_parent(server: uvicorn.Server, supervisor: int) -> None:
    """A worker whose supervisor has gone (killed outright) stops: nobody else would."""
    while not server.should_exit:
        if os.getppid() != supervisor:
            print(f"wfstudio: worker {os.getpid()}: the supervisor process has gone; stopping",
                  file=sys.stderr)
            server.should_exit = True
            return
        await asyncio.sleep(0.5)


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
    parse_size(args.max_body)  # said once, before any worker starts
    parse_size(args.max_input, "--max-input")
    from engine.config.envvars import check_allow_pattern

    try:
        args.allow_env = [check_allow_pattern(name) for name in args.allow_env or []]
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    if args.workers > 1 and args.listen_fd is None:
        return _supervise(args)
    stop = _Stop()
    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    try:
        with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
            return runner.run(_serve(args, stop))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------- --workers N


def _worker_argv(args: argparse.Namespace, fd: int, number: int) -> list[str]:
    argv = [sys.executable, "-m", "engine.cli", "serve", *map(str, args.files),
            "--addr", args.addr, "--heartbeat", str(args.heartbeat),
            "--log-level", args.log_level, "--max-body", args.max_body,
            "--max-input", args.max_input,
            "--listen-fd", str(fd), "--worker-number", str(number),
            "--supervisor-pid", str(os.getpid())]
    if args.store:
        argv += ["--store", args.store]
    if args.deploy_dir:
        argv += ["--deploy-dir", args.deploy_dir]
    for name in args.allow_env or []:
        argv += ["--allow-env", name]
    if args.access_log:
        argv.append("--access-log")
    if args.no_sources:
        argv.append("--no-sources")
    return argv


def _supervise(args: argparse.Namespace) -> int:
    """``--workers N``: bind the address once and run N server processes accepting on it.

    Each worker opens the store itself (see README: several processes on one store). A
    worker that exits stops the others. The workers run in their own process group, so a
    Ctrl-C at the terminal reaches the supervisor only, and it alone stops them: each
    SIGINT/SIGTERM it gets is passed on as one SIGTERM (the first stops them gracefully, the
    second at once, the third kills them), and a worker still running ``STOP_GRACE`` seconds
    after the first is killed. A worker whose supervisor dies stops by itself.
    """
    import subprocess

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

    workers: list[subprocess.Popen[bytes]] = []
    signals = 0
    stopped_at: float | None = None

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal signals, stopped_at
        signals += 1
        stopped_at = stopped_at or time.monotonic()
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM if signals < 3 else signal.SIGKILL)

    # Before the first worker starts: a signal now must not be lost or orphan a worker.
    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    try:
        for number in range(args.workers):
            if signals:
                break
            workers.append(subprocess.Popen(_worker_argv(args, fd, number), pass_fds=(fd,),
                                            process_group=0))
        if signals:  # came while they were starting: the ones started get theirs now
            signals -= 1
            stop(signal.SIGTERM, None)
        else:
            _announce(args, host, port, workers)
        failed = False
        while any(w.poll() is None for w in workers):
            exited = [w for w in workers if w.poll() is not None]
            if exited and not signals:  # one worker gone: the others stop too
                failed = any(w.returncode != 0 for w in exited)
                print("wfstudio: a worker process exited; stopping the others", file=sys.stderr)
                stop(signal.SIGTERM, None)
            if stopped_at is not None and time.monotonic() - stopped_at > STOP_GRACE:
                late = [w for w in workers if w.poll() is None]
                print(f"wfstudio: killing {len(late)} worker(s) still running {STOP_GRACE:g}s "
                      "after the stop", file=sys.stderr)
                for w in late:
                    w.kill()
                stopped_at = time.monotonic()
            time.sleep(0.1)
        stopping = signals > 0 and not failed
        failed = failed or (not stopping and any(w.returncode != 0 for w in workers))
        return 1 if failed else 0
    finally:
        for w in workers:  # whatever happened above, no worker outlives its supervisor
            if w.poll() is None:
                w.kill()
                w.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        listener.close()


def _announce(args: argparse.Namespace, host: str, port: int, workers: list[Any]) -> None:
    from sqlalchemy import make_url
    from sqlalchemy.exc import ArgumentError

    url = store_url(args)
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


def add_commands(sub: Any) -> None:
    """Add ``serve``."""
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
                   choices=["critical", "error", "warning", "info", "debug"],
                   help="the server's log level (default info)")
    p.add_argument("--max-body", default="10MB", metavar="BYTES",
                   help="the largest request body accepted, in bytes or with KB, MB or GB "
                        "(powers of 1024; default 10MB); larger ones are answered 413")
    p.add_argument("--max-input", default="1MB", metavar="BYTES",
                   help="the largest body of a request that starts a run with its input (a "
                        "run, a replay and its plan), like --max-body (default 1MB)")
    p.add_argument("--no-sources", action="store_true",
                   help="do not run the files' sources and schedules (serve the API and http "
                        "triggers only)")
    p.add_argument("--access-log", action="store_true",
                   help="log every request (default: off; it costs CPU on every request)")
    p.add_argument("--workers", type=int, default=1,
                   help="server processes sharing the address (default 1); see the README "
                        "on several processes on one store")
    # A worker of --workers N: the listening socket it inherits, which worker it is, and
    # its supervisor (if that is not its parent any more, it has died: the worker stops).
    p.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    p.add_argument("--worker-number", type=int, help=argparse.SUPPRESS)
    p.add_argument("--supervisor-pid", type=int, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_serve)
