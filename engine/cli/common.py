"""What the ``wfstudio`` commands share: printing, option values, and the studio service
with its ids.

The verbs over the service (replay, diff, dlq, mocks, breakpoints, backfill) each open a
``LocalService`` on the store (loading the pipeline files they are given), work through its
methods only, and close it. Bad input is raised as the service's own ``InvalidInput`` (and
unknown ids as ``NotFound``), so ``engine.cli.main`` maps every error the same way: one
line, exit 2 for input, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from engine.service.errors import InvalidInput, NotFound
from engine.store import codec

if TYPE_CHECKING:
    from pydantic import BaseModel

    from engine.service.local import LocalService


class UsageError(Exception):
    """Bad command-line input: exit 2 with the message."""


# ---------------------------------------------------------------- output


def store_url(args: argparse.Namespace) -> str | None:
    url: str | None = args.store or os.environ.get("WFSTUDIO_STORE")
    return url


def dump(value: Any) -> str:
    try:
        return json.dumps(value, indent=2, default=str, ensure_ascii=False)
    except (ValueError, RecursionError):  # a cycle, or nesting beyond the recursion limit
        # As the store holds it (engine.store.codec: "[cycle]", the depth marker).
        return json.dumps(codec.loads(codec.dumps(value)), indent=2, ensure_ascii=False)


def when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}ms"


def print_outcome(pipeline: str, execution_id: str, status: str, duration_ms: float | None,
                  error: dict[str, Any] | None, output: Any, note: str = "") -> None:
    """The human summary of a finished run or replay: a status line, the error, the output."""
    print(f"{pipeline} {execution_id} {status} in {ms(duration_ms)}{note}")
    if error:
        print(f"error: {error.get('message')} (step {error.get('step')})")
    print(dump(output))


def jsonable(model: BaseModel) -> Any:
    return model.model_dump(mode="json", by_alias=True)


def short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= width else text[:width - 1] + "…"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], indent: str = "  ") -> None:
    """Print aligned columns; the last one is not padded."""
    rows = [list(map(str, r)) for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    for row in [list(headers), *rows]:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=False)] + list(row[-1:])
        print((indent + "  ".join(cells)).rstrip())


class ProgressBar:
    """``\\r[#####.....] 3/10`` on a terminal; elsewhere silent until the final line."""

    def __init__(self, label: str, stream: IO[str] | None = None, width: int = 30):
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._drawn = 0

    def update(self, done: int, total: int) -> None:
        if not self.tty:
            return
        filled = self.width * done // total if total else self.width
        line = f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total}"
        self._drawn = len(line)
        self.stream.write(line)
        self.stream.flush()

    def finish(self, line: str) -> None:
        text = f"{self.label}: {line}"
        if self.tty:  # overwrite the bar, padding over what is left of it
            text = "\r" + text.ljust(self._drawn)
        self.stream.write(text + "\n")
        self.stream.flush()


# ---------------------------------------------------------------- options


def duration_arg(text: str, option: str) -> float:
    from engine.durations import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise InvalidInput(f"{option}: {exc}") from None


def moment_arg(text: str | None, option: str) -> float | None:
    """An age (``1d``: one day ago) or an ISO date/time, as unix seconds."""
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        pass
    try:
        return time.time() - duration_arg(text, option)
    except InvalidInput:
        raise InvalidInput(f"{option}: {text!r} is neither an age (e.g. 2h, 1d) nor a date/time "
                           "(e.g. 2024-05-01T12:00)") from None


def validated(factory: Callable[[], Any], what: str) -> Any:
    """Build a service model, turning pydantic's complaint into one InvalidInput line."""
    from pydantic import ValidationError

    try:
        return factory()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidInput(f"{what}: {where}: {first.get('msg')}") from None


# ---------------------------------------------------------------- the service and ids


@asynccontextmanager
async def open_service(args: argparse.Namespace, files: Sequence[str] = ()) -> AsyncIterator[LocalService]:
    from engine.service.local import LocalService

    async with await LocalService.open(files, store=store_url(args)) as service:
        yield service


def pick_id(ident: str, ids: Iterable[str], what: str) -> str:
    """``ident`` itself or the one id it is a prefix of, as git accepts short hashes."""
    ids = list(ids)
    if ident in ids:
        return ident
    matches = sorted({i for i in ids if ident and i.startswith(ident)})
    if len(matches) == 1:
        return matches[0]
    if matches:
        shown = ", ".join(m[:12] for m in matches[:3]) + (", …" if len(matches) > 3 else "")
        raise InvalidInput(f"{what} id {ident!r} is ambiguous ({len(matches)} match: {shown}): "
                           "give more characters")
    raise NotFound(f"no {what} {ident!r}")


async def find_execution_id(service: LocalService, ident: str) -> str:
    from engine.service.models import ExecutionFilter

    try:
        return (await service.get_execution(ident)).id
    except NotFound:
        pass
    found: set[str] = set()
    cursor = None
    for _ in range(20):  # the text filter also matches pipelines and errors: page through
        page = await service.list_executions(ExecutionFilter(text=ident or None, limit=1000,
                                                             cursor=cursor))
        found.update(e.id for e in page.items if e.id.startswith(ident))
        cursor = page.next_cursor
        if len(found) > 1 or cursor is None:
            break
    try:
        return pick_id(ident, found, "execution")
    except NotFound:
        raise NotFound(f"no execution {ident!r} in {service.store.url}") from None


async def find_by_id(ident: str, get: Callable[[str], Awaitable[Any]],
                 listing: Callable[[], Awaitable[Iterable[Any]]], what: str) -> str:
    try:
        return str((await get(ident)).id)
    except NotFound:
        return pick_id(ident, [item.id for item in await listing()], what)


SERVICE_NOTE = ("Mocks apply to runs through the service: the studio, the server and these "
                "commands' replays, DLQ retries and backfills (not `wfstudio run`).")
