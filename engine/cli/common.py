"""The ``wfstudio`` verbs that go through the studio service: replay, diff, dlq, mocks,
breakpoints, backfill; plus the output helpers every ``wfstudio`` command shares.

Each verb opens a ``LocalService`` on the store (loading the pipeline files it is given),
works through the service's methods only, and closes it. Bad input is raised as the
service's own ``InvalidInput`` (and unknown ids as ``NotFound``), so ``engine.cli.main``
maps every error of these verbs the same way: one line, exit 2 for input, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from engine.cli.inputs import parse_json, parse_json_lines, read_text
from engine.service.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from pydantic import BaseModel

    from engine.service.local import LocalService
    from engine.service.models import ReplayMode, ReplayOptions, StepDiff, ValueChange

# ---------------------------------------------------------------- output helpers


def store_url(args: argparse.Namespace) -> str | None:
    url: str | None = args.store or os.environ.get("WFSTUDIO_STORE")
    return url


def dump(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


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


def _model(model: BaseModel) -> Any:
    return model.model_dump(mode="json", by_alias=True)


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= width else text[:width - 1] + "…"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], indent: str = "  ") -> None:
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


# ---------------------------------------------------------------- input helpers


def _patch(text: str | None, option: str = "--patch") -> list[dict[str, Any]] | None:
    if text is None:
        return None
    patch: list[dict[str, Any]] = parse_json(text, option, "patch")
    return patch


def _duration(text: str, option: str) -> float:
    from engine.durations import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise InvalidInput(f"{option}: {exc}") from None


def _moment(text: str | None, option: str) -> float | None:
    """An age (``1d``: one day ago) or an ISO date/time, as unix seconds."""
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        pass
    try:
        return time.time() - _duration(text, option)
    except InvalidInput:
        raise InvalidInput(f"{option}: {text!r} is neither an age (e.g. 2h, 1d) nor a date/time "
                           "(e.g. 2024-05-01T12:00)") from None


def _validated(factory: Callable[[], Any], what: str) -> Any:
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
async def _service(args: argparse.Namespace, files: Sequence[str] = ()) -> AsyncIterator[LocalService]:
    from engine.service.local import LocalService

    async with await LocalService.open(files, store=store_url(args)) as service:
        yield service


def _pick(ident: str, ids: Iterable[str], what: str) -> str:
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


async def _execution_id(service: LocalService, ident: str) -> str:
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
        return _pick(ident, found, "execution")
    except NotFound:
        raise NotFound(f"no execution {ident!r} in {service.store.url}") from None


async def _by_id(ident: str, get: Callable[[str], Awaitable[Any]],
                 listing: Callable[[], Awaitable[Iterable[Any]]], what: str) -> str:
    try:
        return str((await get(ident)).id)
    except NotFound:
        return _pick(ident, [item.id for item in await listing()], what)


async def _dlq_id(service: LocalService, ident: str) -> str:
    from engine.service.models import DlqFilter

    async def listing() -> list[Any]:
        return list(await service.list_dlq(DlqFilter(limit=1000)))

    return await _by_id(ident, service.get_dlq, listing, "DLQ entry")


# ---------------------------------------------------------------- replay


def _replay_options(args: argparse.Namespace) -> ReplayOptions:
    from engine.service.models import ReplayOptions

    if args.patch is not None and args.payload is not None:
        raise InvalidInput("give either --patch or --payload, not both")
    mocks: dict[str, Any] = {}
    for item in args.mock or []:
        step, sep, value = item.partition("=")
        if not sep or not step:
            raise InvalidInput(f"--mock {item!r}: use STEP=JSON, e.g. --mock 'charge={{\"ok\": true}}'")
        mocks[step] = parse_json(value, f"--mock {step}")
    patch = _patch(args.patch)
    payload = parse_json(args.payload, "--payload", "object") if args.payload is not None else None
    changed = patch is not None or args.payload is not None or bool(mocks) or bool(args.current)
    # Recorded mocks alone leave the mode exact: the replay still runs the original payload.
    mode: ReplayMode = "from_step" if args.from_step else "modified" if changed else "exact"
    return _validated(lambda: ReplayOptions(
        mode=mode, from_step=args.from_step, patch=patch, payload=payload,
        use_current_definition=bool(args.current), mocks=mocks,
        use_recorded_mocks=list(args.recorded_mock or []),
        breakpoints=False), "replay options")  # no debugger here to resume a stop


async def _replay(args: argparse.Namespace) -> int:
    options = _replay_options(args)
    async with _service(args, [args.current] if args.current else []) as service:
        execution_id = await _execution_id(service, args.id)
        if args.plan:
            plan = await service.replay_plan(execution_id, options)
            if args.json:
                print(dump(_model(plan)))
                return 0
            print(f"replay plan of {plan.execution_id} ({plan.pipeline}, mode {plan.mode})")
            print(f"definition: {'changed, runs ' if plan.definition_changed else 'unchanged, '}"
                  f"{plan.definition_hash[:12]}")
            print(f"payload: {json.dumps(plan.payload, default=str, ensure_ascii=False)}")
            _table(["step", "action", "reason"], [[s.path, s.action, s.reason] for s in plan.steps])
            return 0
        result = await service.replay(execution_id, options)
        summary = await service.get_execution(result.execution_id)
    if args.json:
        print(dump({"execution_id": result.execution_id, "pipeline": summary.pipeline,
                    "status": result.status, "output": result.output, "error": result.error,
                    "duration_ms": result.duration_ms, "replay_of": execution_id}))
    else:
        print_outcome(summary.pipeline, result.execution_id, result.status, result.duration_ms,
                      result.error, result.output,
                      f" (replay of {execution_id[:12]}, {options.mode})")
    return 0 if result.status == "completed" else 1


def cmd_replay(args: argparse.Namespace) -> int:
    return asyncio.run(_replay(args))


# ---------------------------------------------------------------- diff


def _changes(label: str, changes: Sequence[ValueChange], limit: int = 20) -> None:
    for change in changes[:limit]:
        print(f"  {label}{change.path or '(root)'}: {_short(change.value_a)} → "
              f"{_short(change.value_b)}")
    if len(changes) > limit:
        print(f"  … and {len(changes) - limit} more {label.strip() or 'change'}(s)")


def _step_label(step: StepDiff) -> str:
    return step.path + (f"#{step.iteration}" if step.iteration else "")


async def _diff(args: argparse.Namespace) -> int:
    async with _service(args) as service:
        a = await _execution_id(service, args.a)
        b = await _execution_id(service, args.b)
        diff = await service.diff(a, b)
    if args.json:
        print(dump(_model(diff)))
        return 0
    print(f"a  {diff.a}  {diff.pipeline_a}  {diff.status_a}")
    print(f"b  {diff.b}  {diff.pipeline_b}  {diff.status_b}")
    print(f"definition: {'changed' if diff.definition_changed else 'same'}")
    s = diff.summary
    print(f"steps: {s.get('same', 0)} same, {s.get('changed', 0)} changed, "
          f"{s.get('only_a', 0)} only in a, {s.get('only_b', 0)} only in b")
    if diff.trigger_changes:
        print("trigger payload:")
        _changes("", diff.trigger_changes)
    if diff.output_changes:
        print("output:")
        _changes("", diff.output_changes)
    print()
    rows = [["" if st.same else "≠", _step_label(st), str(st.attempt), st.status_a or "-",
             st.status_b or "-", st.route_a or "-", st.route_b or "-", ms(st.duration_ms_a),
             ms(st.duration_ms_b)] for st in diff.steps]
    _table(["", "step", "try", "status a", "status b", "route a", "route b", "time a", "time b"],
           rows, indent="")
    first = diff.first_divergence
    print()
    if first is None:
        print("no divergence: every step has the same status, route and output")
    else:
        print(f"first divergence: {_step_label(first)} attempt {first.attempt}")
        if first.status_a != first.status_b:
            print(f"  status: {first.status_a or '(did not run)'} → {first.status_b or '(did not run)'}")
        if first.route_a != first.route_b:
            print(f"  route: {first.route_a or '-'} → {first.route_b or '-'}")
        _changes("input ", first.input_changes)
        _changes("output ", first.output_changes)
    if diff.definition_changed:
        print("\ndefinition diff:")
        for line in diff.definition_change:
            print(line)
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    return asyncio.run(_diff(args))


# ---------------------------------------------------------------- dead-letter queue


async def _dlq(args: argparse.Namespace) -> int:
    from engine.service.models import DlqFilter

    action = args.action
    if action == "retry":
        return await _dlq_retry(args)
    older_than = _duration(args.older_than, "--older-than") if action == "purge" else 0.0
    async with _service(args) as service:
        if action == "list":
            entries = await service.list_dlq(_validated(lambda: DlqFilter(
                pipeline=args.pipeline, status=args.status, text=args.text, limit=args.limit),
                "dlq list"))
            if args.json:
                print(dump([_model(e) for e in entries]))
            elif not entries:
                print("no DLQ entries")
            else:
                _table(["id", "created", "status", "tries", "pipeline", "step", "error"],
                       [[e.id[:12], when(e.created), e.status, f"{e.retry_count}/{e.max_retries}",
                         e.pipeline, e.step or "-", (e.error or "")[:70]] for e in entries],
                       indent="")
            return 0
        if action == "stats":
            stats = await service.dlq_stats()
            print(dump(stats) if args.json
                  else "  ".join(f"{status} {count}" for status, count in stats.items()))
            return 0
        if action == "purge":
            gone = await service.purge_dlq(older_than)
            print(f"purged {gone} resolved or discarded entr{'y' if gone == 1 else 'ies'} "
                  f"older than {args.older_than}")
            return 0
        entry_id = await _dlq_id(service, args.id)
        if action == "show":
            print(dump(_model(await service.get_dlq(entry_id))))
            return 0
        entry = await (service.resolve_dlq(entry_id) if action == "resolve"
                       else service.discard_dlq(entry_id))
        print(f"{entry.status} {entry.id} ({entry.pipeline})")
        return 0


async def _dlq_retry(args: argparse.Namespace) -> int:
    from engine.service.models import DlqFilter

    patch = _patch(args.patch)
    if not args.ids and not args.all_pending:
        raise InvalidInput("dlq retry needs entry ids or --all-pending")
    async with _service(args, args.file or []) as service:
        ids = [await _dlq_id(service, ident) for ident in args.ids]
        if args.all_pending:
            pending = await service.list_dlq(DlqFilter(pipeline=args.pipeline, status="pending",
                                                       limit=1000))
            ids.extend(e.id for e in reversed(pending))  # oldest first
        ids = list(dict.fromkeys(ids))
        if not ids:
            print("no pending DLQ entries")
            return 0
        entries = [await service.get_dlq(i) for i in ids]
        loaded = {p.name for p in await service.list_pipelines()}
        missing = sorted({e.pipeline for e in entries if e.pipeline not in loaded})
        if missing:
            raise InvalidInput(f"pipeline{'s' if len(missing) > 1 else ''} "
                               f"{', '.join(map(repr, missing))} of the entries to retry "
                               f"{'are' if len(missing) > 1 else 'is'} not loaded: pass the "
                               "file(s) defining them with --file FILE; nothing was retried")
        bar = ProgressBar("dlq retry")
        results = await service.retry_dlq(ids, patch, progress=bar.update)
        completed = sum(r.status == "completed" for r in results)
        bar.finish(f"{completed}/{len(results)} completed")
    if args.json:
        print(dump([_model(r) for r in results]))
    else:
        _table(["entry", "status", "execution", "error"],
               [[r.entry_id[:12], r.status, (r.execution_id or "-")[:12], r.error or ""]
                for r in results], indent="")
    return 0 if completed == len(results) else 1


def cmd_dlq(args: argparse.Namespace) -> int:
    return asyncio.run(_dlq(args))


# ---------------------------------------------------------------- mocks


def _mock_line(mock: Any) -> str:
    answer = (f"error {mock.error.get('message')!r}" if mock.mode == "error"
              else _short(mock.output))
    delay = f" after {mock.delay_ms:g}ms" if mock.delay_ms else ""
    return f"mock {mock.id}: {mock.pipeline}/{mock.step} ({mock.mode}) → {answer}{delay}"


async def _mocks(args: argparse.Namespace) -> int:
    action = args.action
    delay_ms, output = 0.0, None
    if action == "set":
        delay_ms = _duration(args.delay, "--delay") * 1000 if args.delay else 0.0
        output = parse_json(args.output, "--output") if args.output is not None else None
    async with _service(args, args.file if action == "set" else []) as service:
        if action == "list":
            mocks = await service.list_mocks(args.pipeline)
            if args.json:
                print(dump([_model(m) for m in mocks]))
            elif not mocks:
                print("no mocks")
            else:
                _table(["id", "pipeline", "step", "mode", "enabled", "hits", "delay", "answer"],
                       [[m.id, m.pipeline, m.step, m.mode, "yes" if m.enabled else "no",
                         str(m.hit_count), f"{m.delay_ms:g}ms",
                         m.error.get("message", "") if m.error else _short(m.output)]
                        for m in mocks], indent="")
            return 0
        if action == "set":
            if args.error is not None:
                mock = await service.set_mock(args.pipeline, args.step, mode="error",
                                              error={"message": args.error}, delay_ms=delay_ms)
            else:
                mock = await service.set_mock(args.pipeline, args.step, output=output,
                                              delay_ms=delay_ms)
        elif action == "capture":
            execution_id = await _execution_id(service, args.execution_id)
            mock = await service.mock_from_execution(execution_id, args.step)
        elif action == "remove":
            mock_id = _pick(args.id, [m.id for m in await service.list_mocks()], "mock")
            await service.remove_mock(mock_id)
            print(f"removed mock {mock_id}")
            return 0
        else:
            gone = await service.clear_mocks(args.pipeline)
            print(f"removed {gone} mock(s)")
            return 0
    print(dump(_model(mock)) if getattr(args, "json", False) else _mock_line(mock))
    return 0


def cmd_mocks(args: argparse.Namespace) -> int:
    return asyncio.run(_mocks(args))


# ---------------------------------------------------------------- breakpoints


async def _breakpoints(args: argparse.Namespace) -> int:
    action = args.action
    async with _service(args, args.file if action == "set" else []) as service:
        if action == "list":
            points = await service.list_breakpoints()
            if args.json:
                print(dump([_model(b) for b in points]))
            elif not points:
                print("no breakpoints")
            else:
                _table(["id", "pipeline", "step", "enabled", "hits", "condition"],
                       [[b.id, b.pipeline, b.step, "yes" if b.enabled else "no", str(b.hit_count),
                         b.condition or ""] for b in points], indent="")
            return 0
        if action == "set":
            point = await service.set_breakpoint(args.pipeline, args.step, args.condition)
        else:
            point_id = _pick(args.id, [b.id for b in await service.list_breakpoints()],
                             "breakpoint")
            if action == "remove":
                await service.remove_breakpoint(point_id)
                print(f"removed breakpoint {point_id}")
                return 0
            point = await service.enable_breakpoint(point_id, action == "enable")
    state = "enabled" if point.enabled else "disabled"
    condition = f" when {point.condition}" if point.condition else ""
    print(f"breakpoint {point.id}: {point.pipeline}/{point.step}{condition} ({state})")
    return 0


def cmd_breakpoints(args: argparse.Namespace) -> int:
    return asyncio.run(_breakpoints(args))


# ---------------------------------------------------------------- backfill


def _backfill_line(b: Any) -> str:
    took = f" in {b.ended - b.created:.1f}s" if b.ended else ""
    error = f": {b.error}" if b.error else ""
    return (f"backfill {b.id} of {b.pipeline} {b.status}{took}: {b.done}/{b.total} run, "
            f"{b.succeeded} succeeded, {b.failed} failed{error}")


async def _backfill(args: argparse.Namespace) -> int:
    from engine.service.models import BackfillRequest

    jsonl = None
    if args.jsonl is not None:
        if args.since or args.until or args.source_pipeline:
            raise InvalidInput("give either --jsonl or past executions (--since, --until, "
                               "--source-pipeline) to backfill from, not both")
        jsonl = read_text(args.jsonl, "--jsonl")
        parse_json_lines(jsonl, "--jsonl", "object")  # the service reads it again; errors here
    request = _validated(lambda: BackfillRequest(
        pipeline=args.pipeline, source_pipeline=args.source_pipeline,
        since=_moment(args.since, "--since"), until=_moment(args.until, "--until"), jsonl=jsonl,
        concurrency=args.concurrency, limit=args.limit), "backfill")
    async with _service(args, args.file) as service:
        backfill = await service.start_backfill(request)
        bar = ProgressBar("backfill")
        interrupted = False
        try:
            while backfill.status in ("pending", "running"):
                bar.update(backfill.done, backfill.total)
                await asyncio.sleep(0.1)
                backfill = await service.get_backfill(backfill.id)
        except asyncio.CancelledError:  # Ctrl-C: asyncio.run cancels this task
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # handled here: let the cleanup below await normally
            interrupted = True
            backfill = await service.cancel_backfill(backfill.id)
        bar.finish(f"{backfill.status}, {backfill.done}/{backfill.total} run")
    print(dump(_model(backfill)) if args.json else _backfill_line(backfill))
    if interrupted:
        print("wfstudio: interrupted: the backfill was cancelled", file=sys.stderr)
        return 130
    return 0 if backfill.status == "completed" and not backfill.failed else 1


def cmd_backfill(args: argparse.Namespace) -> int:
    return asyncio.run(_backfill(args))


async def _backfills(args: argparse.Namespace) -> int:
    async with _service(args) as service:
        if args.action == "list":
            items = await service.list_backfills()
            if args.json:
                print(dump([_model(b) for b in items]))
            elif not items:
                print("no backfills")
            else:
                _table(["id", "created", "status", "done", "ok", "failed", "pipeline", "source"],
                       [[b.id[:12], when(b.created), b.status, f"{b.done}/{b.total}",
                         str(b.succeeded), str(b.failed), b.pipeline, str(b.source.get("kind", ""))]
                        for b in items], indent="")
            return 0
        backfill_id = await _by_id(args.id, service.get_backfill, service.list_backfills,
                                   "backfill")
        backfill = await (service.get_backfill(backfill_id) if args.action == "show"
                          else service.cancel_backfill(backfill_id))
    print(dump(_model(backfill)) if args.json else _backfill_line(backfill))
    return 0


def cmd_backfills(args: argparse.Namespace) -> int:
    return asyncio.run(_backfills(args))


# ---------------------------------------------------------------- the parsers

SERVICE_NOTE = ("Mocks apply to runs through the service: the studio, the server and these "
                "commands' replays, DLQ retries and backfills (not `wfstudio run`).")
BREAKPOINT_NOTE = ("Breakpoints persist in the store and stop runs in a studio or server "
                   "process using it; `wfstudio run` ignores them, and a replay, DLQ retry or "
                   "backfill started here continues past them with a note.")
FILE_HELP = "a pipeline file to load (repeatable)"


def add_commands(sub: Any, store_help: str) -> None:
    """Add the service verbs to the ``wfstudio`` subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", help=store_help)
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("replay", parents=[common, as_json],
                       help="re-execute a recorded execution (exact, modified or from a step)",
                       description="Replay a recorded execution as a new, linked one. The mode "
                       "follows the options: from_step with --from-step; modified with --patch, "
                       "--payload, --mock or --current; exact otherwise (--recorded-mock keeps "
                       "it exact). " + SERVICE_NOTE)
    p.add_argument("id", metavar="ID", help="execution id (or a unique prefix)")
    p.add_argument("--from-step", metavar="STEP", help="re-run from this top-level step, reusing "
                   "the recorded outputs of the steps before it")
    p.add_argument("--patch", metavar="JSON", help="RFC 6902 patch of the trigger payload")
    p.add_argument("--payload", metavar="JSON", help="a replacement trigger payload")
    p.add_argument("--mock", action="append", metavar="STEP=JSON",
                   help="answer STEP with this output in the replay (repeatable)")
    p.add_argument("--recorded-mock", action="append", metavar="STEP",
                   help="answer STEP with its recorded output (repeatable)")
    p.add_argument("--current", metavar="FILE",
                   help="replay with the pipeline as defined in FILE now, not the recorded one")
    p.add_argument("--plan", action="store_true", help="show what would be reused, mocked and "
                   "run, without running")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("diff", parents=[common, as_json], help="compare two executions step by step")
    p.add_argument("a", metavar="A", help="execution id (or a unique prefix)")
    p.add_argument("b", metavar="B", help="execution id (or a unique prefix)")
    p.set_defaults(func=cmd_diff)

    dlq = sub.add_parser("dlq", help="the dead-letter queue: list, retry, resolve, discard, purge")
    actions = dlq.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = actions.add_parser("list", parents=[common, as_json], help="entries, newest first")
    p.add_argument("--pipeline", help="only this pipeline's entries")
    p.add_argument("--status", help="only this status: pending, retrying, resolved or discarded")
    p.add_argument("--text", help="in the id, pipeline, step, execution or error (any case)")
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    p = actions.add_parser("stats", parents=[common, as_json], help="entry counts by status")
    p = actions.add_parser("show", parents=[common], help="one entry as JSON")
    p.add_argument("id", metavar="ID", help="entry id (or a unique prefix)")
    p = actions.add_parser("retry", parents=[common, as_json],
                           help="re-run entries' pipelines with their payloads",
                           description="Re-run each entry's pipeline with its payload as a new "
                           "execution; an entry whose retry completes is resolved. The pipelines "
                           "must be loaded: pass their files with --file. Exit 1 unless every "
                           "retry completed. " + SERVICE_NOTE)
    p.add_argument("ids", nargs="*", metavar="ID", help="entry ids (or unique prefixes)")
    p.add_argument("--all-pending", action="store_true", help="retry every pending entry")
    p.add_argument("--pipeline", help="with --all-pending: only this pipeline's entries")
    p.add_argument("--patch", metavar="JSON", help="RFC 6902 patch applied to each payload")
    p.add_argument("--file", action="append", metavar="FILE", help=FILE_HELP)
    for name, text in (("resolve", "mark a pending entry handled"),
                       ("discard", "give up on a pending entry")):
        p = actions.add_parser(name, parents=[common], help=text)
        p.add_argument("id", metavar="ID", help="entry id (or a unique prefix)")
    p = actions.add_parser("purge", parents=[common],
                           help="delete resolved and discarded entries older than an age")
    p.add_argument("--older-than", required=True, metavar="AGE", help="e.g. 7d, 12h")
    dlq.set_defaults(func=cmd_dlq)

    mocks = sub.add_parser("mocks", help="step mocks: answers given instead of running a step",
                           description=SERVICE_NOTE)
    actions = mocks.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = actions.add_parser("list", parents=[common, as_json], help="mocks, by pipeline and step")
    p.add_argument("--pipeline", help="only this pipeline's mocks")
    p = actions.add_parser("set", parents=[common, as_json], help="mock a step (replaces its mock)")
    p.add_argument("pipeline", metavar="PIPELINE", help="the pipeline's name")
    p.add_argument("step", metavar="STEP", help="step name or path (fan-out/profile)")
    answer = p.add_mutually_exclusive_group(required=True)
    answer.add_argument("--output", metavar="JSON", help="the output the step returns")
    answer.add_argument("--error", metavar="MESSAGE", help="the step fails with this message")
    p.add_argument("--delay", metavar="DURATION", help="answer after this long, e.g. 200ms")
    p.add_argument("--file", action="append", required=True, metavar="FILE", help=FILE_HELP)
    p = actions.add_parser("capture", parents=[common, as_json],
                           help="mock a step with its recorded output in an execution")
    p.add_argument("execution_id", metavar="EXECUTION_ID", help="execution id (or a unique prefix)")
    p.add_argument("step", metavar="STEP", help="the step whose recorded output answers it")
    p = actions.add_parser("remove", parents=[common], help="remove one mock")
    p.add_argument("id", metavar="ID", help="mock id (or a unique prefix)")
    p = actions.add_parser("clear", parents=[common], help="remove every mock (of a pipeline)")
    p.add_argument("--pipeline", help="only this pipeline's mocks")
    mocks.set_defaults(func=cmd_mocks)

    points = sub.add_parser("breakpoints", help="debugger breakpoints (for studio/server runs)",
                            description=BREAKPOINT_NOTE)
    actions = points.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", parents=[common, as_json], help="breakpoints, with hit counts")
    p = actions.add_parser("set", parents=[common], help="stop before a step",
                           description=BREAKPOINT_NOTE)
    p.add_argument("pipeline", metavar="PIPELINE", help="the pipeline's name")
    p.add_argument("step", metavar="STEP", help="step name or path (fan-out/profile)")
    p.add_argument("--condition", metavar="JQ", help="stop only when this jq expression is true")
    p.add_argument("--file", action="append", required=True, metavar="FILE", help=FILE_HELP)
    for name in ("remove", "enable", "disable"):
        p = actions.add_parser(name, parents=[common], help=f"{name} a breakpoint")
        p.add_argument("id", metavar="ID", help="breakpoint id (or a unique prefix)")
    points.set_defaults(func=cmd_breakpoints)

    p = sub.add_parser("backfill", parents=[common, as_json],
                       help="run a pipeline over past payloads or a JSON Lines file",
                       description="Run PIPELINE once per input: the trigger payloads of past "
                       "executions (of PIPELINE or --source-pipeline, between --since and "
                       "--until), or one JSON value per line of --jsonl. Shows progress; Ctrl-C "
                       "cancels the backfill. Exit 1 if any run failed. " + SERVICE_NOTE)
    p.add_argument("pipeline", metavar="PIPELINE", help="the pipeline to run")
    p.add_argument("--file", action="append", required=True, metavar="FILE", help=FILE_HELP)
    p.add_argument("--since", metavar="WHEN", help="an age (1d) or a date/time (2024-05-01T12:00)")
    p.add_argument("--until", metavar="WHEN", help="an age (2h) or a date/time")
    p.add_argument("--source-pipeline", metavar="P", help="take the payloads of this pipeline's runs")
    p.add_argument("--jsonl", metavar="FILE", help="payloads, one JSON value per line")
    p.add_argument("--concurrency", type=int, default=4, help="runs at a time (default 4)")
    p.add_argument("--limit", type=int, help="at most this many inputs")
    p.set_defaults(func=cmd_backfill)

    backfills = sub.add_parser("backfills", help="list, show or cancel backfills")
    actions = backfills.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", parents=[common, as_json], help="backfills, newest first")
    for name in ("show", "cancel"):
        p = actions.add_parser(name, parents=[common, as_json], help=f"{name} a backfill")
        p.add_argument("id", metavar="ID", help="backfill id (or a unique prefix)")
    backfills.set_defaults(func=cmd_backfills)
