"""Small helpers the executions panes share: named widgets, and tasks ended with their widget."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from PySide6.QtCore import QObject

Q = TypeVar("Q", bound=QObject)


def named(obj: Q, name: str) -> Q:
    """``obj`` with its objectName set (tests and styles find widgets by it)."""
    obj.setObjectName(name)
    return obj


def cancel_all(tasks: list[asyncio.Task[Any]], *_signal_args: object) -> None:
    """Cancel ``tasks`` that are still pending and forget them all.

    Connected to a widget's ``destroyed`` (with ``functools.partial``, so that the widget is
    not kept alive by the connection); at application exit the loop may already be closed,
    and a task of a closed loop can no longer be cancelled.
    """
    for task in tasks:
        if not task.done() and not task.get_loop().is_closed():
            task.cancel()
    tasks.clear()
