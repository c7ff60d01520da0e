"""Which engine processes have a store open, and the PostgreSQL notification channel.

Every ``Store`` gets an instance id. A store must be able to tell a live instance from one
whose process died (SIGKILL, power loss) to recover what the dead one left running:

- **PostgreSQL**: each instance holds a session advisory lock keyed by its id on a
  dedicated connection, and registers a row in ``instances``. The server drops the lock
  when the connection goes, so ``pg_try_advisory_xact_lock(key)`` succeeding proves the
  instance dead, at once and without clocks or heartbeats. The same connection LISTENs
  for notifications (pause/resume commands, breakpoint changes) in a background thread.
- **SQLite** (one machine): every process holds a shared ``flock`` on ``<file>-presence``;
  a store that gets the lock exclusively at open is the only one open, so whatever the
  file says is running was left by a dead process. No ``flock`` (Windows): no recovery.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, delete

from engine.store import models

log = logging.getLogger(__name__)

CHANNELS = ("wfstudio_debug", "wfstudio_debug_reply", "wfstudio_breakpoints")
Listener = Callable[[str, str], None]  # (channel, payload), called on the listener thread


def lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key for ``name`` (sha256, stable across processes)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def instance_key(instance_id: str) -> int:
    return lock_key(f"wfstudio.instance:{instance_id}")


def new_instance_id() -> str:
    return uuid.uuid4().hex[:16]


class PgPresence:
    """Holds this instance's liveness lock and delivers notifications, on its own thread."""

    def __init__(self, engine: Engine, instance_id: str, *, sweep: Callable[[], None] | None = None,
                 sweep_interval: float = 30.0):
        self.engine = engine
        self.instance_id = instance_id
        self.sweep = sweep
        self.sweep_interval = sweep_interval
        self._listeners: dict[str, list[Listener]] = {}
        self._listeners_lock = threading.Lock()
        self._stop = threading.Event()
        self._proxy: Any = None
        self._conn: Any = None
        self._connect()  # the first connection is made here: a failure fails the store's open
        self._thread = threading.Thread(target=self._loop, name=f"wfstudio-presence-{instance_id}",
                                        daemon=True)
        self._thread.start()

    def _connect(self) -> None:
        proxy = self.engine.raw_connection()
        conn: Any = proxy.driver_connection
        proxy.detach()  # holds the lock for the store's lifetime: never back into the pool
        conn.autocommit = True
        conn.execute("SELECT pg_advisory_lock(%s)", (instance_key(self.instance_id),))
        for channel in CHANNELS:
            conn.execute(f"LISTEN {channel}")
        # (Re-)register: a sweep by another process may have removed the row while our
        # connection was down; the lock is ours again, so the row is true again.
        conn.execute("INSERT INTO instances (id, host, pid, started) VALUES (%s, %s, %s, %s) "
                     "ON CONFLICT (id) DO NOTHING",
                     (self.instance_id, socket.gethostname()[:200], os.getpid(), time.time()))
        self._proxy = proxy
        self._conn = conn

    def listen(self, channel: str, listener: Listener) -> None:
        with self._listeners_lock:
            self._listeners.setdefault(channel, []).append(listener)

    def unlisten(self, channel: str, listener: Listener) -> None:
        with self._listeners_lock:
            if listener in self._listeners.get(channel, []):
                self._listeners[channel].remove(listener)

    def _loop(self) -> None:
        import psycopg

        next_sweep = time.monotonic() + self.sweep_interval
        while not self._stop.is_set():
            try:
                if self._proxy is None:
                    self._connect()
                for note in self._conn.notifies(timeout=0.1):
                    self._dispatch(note.channel, note.payload)
                if self.sweep is not None and time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self.sweep_interval
                    self.sweep()
            except (psycopg.Error, OSError) as exc:
                if self._stop.is_set():
                    break
                log.warning("store presence connection lost (%s); reconnecting", exc)
                self._drop()
                self._stop.wait(1.0)
            except Exception:  # a failing sweep must not end the thread
                log.exception("store presence loop failed")
                self._stop.wait(1.0)

    def _dispatch(self, channel: str, payload: str) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners.get(channel, ()))
        for listener in listeners:
            try:
                listener(channel, payload)
            except Exception:
                log.exception("notification listener failed")

    def _drop(self) -> None:
        if self._proxy is not None:
            with contextlib.suppress(Exception):  # already broken
                self._proxy.close()
            self._proxy = None

    def close(self) -> None:
        """Stop listening, release the liveness lock and unregister (a clean shutdown)."""
        self._stop.set()
        self._thread.join(5)
        self._drop()
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(models.instances).where(models.instances.c.id == self.instance_id))
        except Exception as exc:  # the database is gone: the next sweep removes the row
            log.warning("could not unregister store instance %s: %s", self.instance_id, exc)


class SqlitePresence:
    """A shared ``flock`` on ``<database>-presence`` while the store is open.

    The opener tries the lock exclusively first: if it gets it, ``alone`` is True and it
    keeps it exclusive (other openers wait) until ``settle()``, after its recovery.
    """

    def __init__(self, database: str):
        self.alone = False
        self._fd: int | None = None
        try:
            import fcntl
        except ImportError:  # Windows: no recovery of other processes' executions
            return
        try:
            fd = os.open(f"{database}-presence", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            log.warning("no crash recovery for %s: %s", database, exc)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.alone = True
        except OSError:
            fcntl.flock(fd, fcntl.LOCK_SH)  # waits only while an opener is recovering
        self._fd = fd

    def settle(self) -> None:
        """Let other processes open the store too (after this one's recovery)."""
        if self._fd is not None and self.alone:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_SH)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None
