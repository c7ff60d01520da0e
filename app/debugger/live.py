"""Following the all-executions event stream for the few event types a pane cares about.

A pane that must change when something happens elsewhere (an execution pauses in another
window, a breakpoint is hit) follows ``service.subscribe(None)`` here. A stream that ends
(the server restarted, a slow subscriber was dropped, the connection was lost) is
resubscribed with a growing delay, and ``reconnected`` tells the pane to reload what it
shows, since events may have been missed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import shiboken6
from PySide6.QtCore import QObject, Signal

from app import asyncqt
from engine.service.protocol import StudioService

log = logging.getLogger("wfstudio.app")

FIRST_RETRY_S = 0.5
MAX_RETRY_S = 10.0


class EventFollower(QObject):
    matched = Signal(str, str, int)  # (event type, execution id, seq)
    reconnected = Signal()  # the stream was lost and is followed again: reload

    def __init__(self, types: frozenset[str], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.types = types
        self._task: asyncio.Task[None] | None = None
        self.destroyed.connect(lambda *_: self.stop())  # only touches Python attributes

    def follow(self, service: StudioService | None) -> None:
        """Follow ``service``'s stream (None: stop following)."""
        self.stop()
        if service is not None:
            self._task = asyncqt.spawn(self._run(service), what="Following live events", background=True)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def following(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self, service: StudioService) -> None:
        delay = FIRST_RETRY_S
        first = True
        while True:
            if not first:
                self.reconnected.emit()
            first = False
            try:
                async with contextlib.aclosing(service.subscribe(None)) as stream:  # type: ignore[type-var]
                    async for event in stream:
                        delay = FIRST_RETRY_S
                        if event.type in self.types:
                            self.matched.emit(event.type, event.execution_id, event.seq)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the stream ended: a typed Unavailable, or a transport error
                if not shiboken6.isValid(self):
                    return  # the pane is gone
                log.info("live events stopped (%s); resubscribing in %.1fs", asyncqt.describe(exc), delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_S)
