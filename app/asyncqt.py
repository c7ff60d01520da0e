"""Run service coroutines from Qt slots without ever blocking the GUI thread.

The studio runs on a qasync event loop: Qt events and asyncio tasks share one thread, so a
slot starts a task with :func:`spawn` and the task updates widgets when the awaited call
returns. Failures a user can cause (typed service errors) are reported through the one
:data:`errors` hub, which the main window shows as a dialog; anything else is a bug and is
reported the same way with its type, so the window never dies from a background task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from PySide6.QtCore import QObject, Signal

from engine.service.errors import ServiceError

log = logging.getLogger("wfstudio.app")


class ErrorHub(QObject):
    """Where background failures go; the main window listens and shows them."""

    reported = Signal(str, str)  # (title, message)

    def report(self, title: str, message: str) -> None:
        log.warning("%s: %s", title, message)
        self.reported.emit(title, message)


errors = ErrorHub()
_tasks: set[asyncio.Task[Any]] = set()  # strong references until done (asyncio keeps weak ones)
_background: set[asyncio.Task[Any]] = set()  # live streams: they end only when cancelled


def describe(exc: BaseException) -> str:
    """A message for a person: typed errors say what to do; others name their type."""
    if isinstance(exc, ServiceError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc} ({getattr(exc, 'filename', '') or ''})".strip()
    return f"{type(exc).__name__}: {exc}"


def spawn(coro: Coroutine[Any, Any, Any], *, what: str = "The operation",
          background: bool = False) -> asyncio.Task[Any]:
    """Schedule ``coro`` on the running loop; report its failure instead of raising.

    ``background`` marks a task that runs until cancelled (a live subscription): it is not
    counted by :func:`pending`, which tells when the studio has finished what it was asked.
    """
    task = asyncio.ensure_future(coro)
    tasks = _background if background else _tasks
    tasks.add(task)

    def done(t: asyncio.Task[Any]) -> None:
        tasks.discard(t)
        if t.cancelled():
            return
        exc = t.exception()
        if exc is not None:
            if not isinstance(exc, ServiceError | OSError):
                log.error("%s failed", what, exc_info=exc)
            errors.report(f"{what} failed", describe(exc))

    task.add_done_callback(done)
    return task


async def settle(timeout: float = 10.0) -> None:
    """Let the tasks the studio was asked for finish (cancelling what outlasts ``timeout``),
    then stop the live streams: the studio is closing and its service closes next."""
    if _tasks:
        _, late = await asyncio.wait(set(_tasks), timeout=timeout)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
    streams = set(_background)
    for task in streams:
        task.cancel()
    if streams:
        await asyncio.wait(streams)


def pending() -> int:
    """Tasks started by :func:`spawn` that have not finished (tests wait for zero)."""
    return len(_tasks)
