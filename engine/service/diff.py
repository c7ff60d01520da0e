"""The diff of two executions (events-and-store.md §5), read from the store only.

Step runs come from ``step_runs`` (status, duration, flags, order); their recorded input,
output and route come from the event stream, read in pages: the input on ``step.started``
and the output on ``step.completed``, or, in stores of 0.1.0 and earlier, on ``step.input``
and ``step.output`` events of their own. Events that do not name their run's start seq
are given to the open run of that path they belong to (see ``_take``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from engine.service.errors import NotFound
from engine.service.models import (
    LEGACY_EVENTS,
    EventType,
    ExecutionDiff,
    StepDiff,
    ValueChange,
    carries_output,
)
from engine.store.records import EventRecord, ExecutionRecord, StepRunRecord
from engine.store.store import Store

EVENT_PAGE = 2000  # events read per query: bounded memory per page on long executions
_EVENT_TYPES = (EventType.STEP_STARTED, EventType.STEP_COMPLETED, EventType.STEP_FAILED,
                EventType.STEP_RETRYING, EventType.STEP_ROUTED, *LEGACY_EVENTS)


class _Absent:
    """Nothing was recorded (unlike a recorded ``null``)."""

    def __repr__(self) -> str:
        return "<absent>"


ABSENT: Any = _Absent()

# ---------------------------------------------------------------------- JSON values


def _escape(key: Any) -> str:
    text = str(key)
    if "~" in text or "/" in text:
        text = text.replace("~", "~0").replace("/", "~1")
    return text


def _leaf_equal(x: Any, y: Any) -> bool:
    """Equal as JSON leaves: ``true`` is not ``1`` (Python says it is), ``1`` is ``1.0``."""
    if (type(x) is bool) != (type(y) is bool):
        return False
    if isinstance(x, dict | list) or isinstance(y, dict | list):
        return False  # a container against anything else: a type change at this node
    return bool(x == y)


def json_changes(a: Any, b: Any, base: str = "") -> list[ValueChange]:
    """Every differing leaf of two JSON values, as JSON Pointers below ``base``, in document order.

    Objects are compared key by key (a key missing on one side is a change whose missing
    value is None), arrays index by index, and a type change is one change at that node.
    The walk is iterative and visits each node once: linear in the size of the values.
    """
    changes: list[ValueChange] = []
    stack: list[tuple[str, Any, Any]] = [(base, a, b)]
    while stack:
        path, x, y = stack.pop()
        if x is y:
            continue
        if x is ABSENT or y is ABSENT:
            changes.append(ValueChange(path=path, value_a=None if x is ABSENT else x,
                                       value_b=None if y is ABSENT else y))
            continue
        tx, ty = type(x), type(y)
        if tx is dict and ty is dict:
            children = [(f"{path}/{_escape(k)}", v, y.get(k, ABSENT)) for k, v in x.items()]
            children.extend((f"{path}/{_escape(k)}", ABSENT, v) for k, v in y.items()
                            if k not in x)
            stack.extend(reversed(children))
        elif tx is list and ty is list:
            nx, ny = len(x), len(y)
            stack.extend((f"{path}/{i}", x[i] if i < nx else ABSENT, y[i] if i < ny else ABSENT)
                         for i in reversed(range(max(nx, ny))))
        elif not _leaf_equal(x, y):
            changes.append(ValueChange(path=path, value_a=x, value_b=y))
    return changes


# ---------------------------------------------------------------------- one execution's runs


@dataclass(slots=True)
class _Run:
    """A step run with what its events recorded."""

    rec: StepRunRecord
    input: Any = ABSENT
    output: Any = ABSENT
    route: str | None = None


def _events(store: Store, execution_id: str) -> Iterator[EventRecord]:
    after = 0
    while True:
        page = store.events(execution_id, after_seq=after, types=_EVENT_TYPES, limit=EVENT_PAGE)
        yield from page
        if len(page) < EVENT_PAGE:
            return
        after = page[-1].seq


def _take(open_runs: list[_Run] | None, data: dict[str, Any], attempt: Any,
          ts: float) -> _Run | None:
    """Remove and return the open run a completed/output/failed/retrying event of its path
    closes: the one whose start seq it names, else the one it belongs to.

    Usually one run of a path is open. Several are open only when loop iterations run
    concurrently (``foreach`` with ``concurrency``); the event then says which one when it
    carries ``iteration``/``attempt``, and otherwise it belongs to the run that ended at the
    event's time: the executor stamps the run's end and emits the event in one synchronous
    block, while other iterations end in other turns of the event loop.
    """
    if not open_runs:
        return None
    started = data.get("started_seq")
    named = next((r for r in open_runs if r.rec.seq == started), None) if started else None
    if named is not None:
        open_runs.remove(named)
        return named
    iteration = data.get("iteration")
    pool = [r for r in open_runs
            if (iteration is None or r.rec.iteration == iteration)
            and (attempt is None or r.rec.attempt == attempt)] or open_runs
    if len(pool) == 1:
        chosen = pool[0]
    else:
        chosen = min(pool, key=lambda r: (r.rec.ended_at is None,
                                          abs((r.rec.ended_at or 0.0) - ts), r.rec.seq))
    open_runs.remove(chosen)
    return chosen


def _load_runs(store: Store, execution_id: str) -> list[_Run]:
    """The execution's step runs in order, with their recorded input, output and route."""
    runs = [_Run(rec) for rec in store.timeline(execution_id)]
    by_seq = {run.rec.seq: run for run in runs}
    open_by_path: dict[str, list[_Run]] = {}
    finished: dict[str, _Run] = {}  # the last run per path that recorded an output
    for event in _events(store, execution_id):
        data = event.data
        path = data.get("path") or data.get("step") or ""
        kind = event.type
        if kind == EventType.STEP_STARTED:
            run = by_seq.get(event.seq)
            if run is not None:
                open_by_path.setdefault(path, []).append(run)
                if "input" in data:
                    run.input = data["input"]
        elif kind == EventType.STEP_INPUT:
            # Legacy: emitted right after its step.started, before the step can yield to others.
            run = by_seq.get(event.seq - 1)
            if run is None or run.rec.path != path:
                candidates = open_by_path.get(path)
                run = candidates[-1] if candidates else None
            if run is not None:
                run.input = data.get("input")
        elif kind == EventType.STEP_ROUTED:
            # It names its run; a legacy one without started_seq follows that run's step.output.
            started = data.get("started_seq")
            run = by_seq.get(started) if isinstance(started, int) else finished.get(path)
            if run is not None:
                run.route = data.get("next_step")
        elif kind == EventType.STEP_COMPLETED and "output" not in data:
            continue  # legacy: its step.output before it closed the run already
        else:
            attempt = data.get("attempt")
            if kind == EventType.STEP_RETRYING and isinstance(attempt, int):
                attempt -= 1  # it announces the next attempt; the failed one is before it
            run = _take(open_by_path.get(path), data, attempt, event.ts)
            if run is not None and carries_output(kind, data):
                run.output = data.get("output")
                finished[path] = run
    return runs


# ---------------------------------------------------------------------- alignment


def _keyed(runs: list[_Run]) -> list[tuple[tuple[str, int, int, int], _Run]]:
    """(path, iteration, attempt, occurrence) per run: a step re-entered by a jump repeats."""
    seen: dict[tuple[str, int, int], int] = {}
    out = []
    for run in runs:
        key = (run.rec.path, run.rec.iteration, run.rec.attempt)
        occurrence = seen.get(key, 0)
        seen[key] = occurrence + 1
        out.append(((*key, occurrence), run))
    return out


_Pair = tuple[_Run | None, _Run | None, int]  # run in A, run in B, occurrence


def _align(runs_a: list[_Run], runs_b: list[_Run]) -> list[_Pair]:
    """Pairs in A's order; runs only in B come just before the pair of the next B run that
    is in both (after the runs only in A there), like removed-then-added lines of a diff."""
    keyed_b = _keyed(runs_b)
    b_index = {key: i for i, (key, _run) in enumerate(keyed_b)}
    keyed_a = _keyed(runs_a)
    a_to_b: dict[int, int] = {}
    for ai, (key, _run) in enumerate(keyed_a):
        bi = b_index.get(key)
        if bi is not None:
            a_to_b[ai] = bi
    b_to_a = {bi: ai for ai, bi in a_to_b.items()}
    only_b_before: dict[int, list[_Pair]] = {}  # A index (len(A): the end) -> B-only runs
    anchor = len(keyed_a)
    for bi in reversed(range(len(keyed_b))):
        key, run = keyed_b[bi]
        if bi in b_to_a:
            anchor = b_to_a[bi]
        else:
            only_b_before.setdefault(anchor, []).append((None, run, key[3]))
    pairs: list[_Pair] = []
    for ai, (key, run) in enumerate(keyed_a):
        pairs.extend(reversed(only_b_before.get(ai, [])))
        bi = a_to_b.get(ai)
        pairs.append((run, runs_b[bi] if bi is not None else None, key[3]))
    pairs.extend(reversed(only_b_before.get(len(keyed_a), [])))
    return pairs


def _step_diff(a: _Run | None, b: _Run | None, occurrence: int) -> StepDiff:
    some = a if a is not None else b
    assert some is not None
    diff = StepDiff(path=some.rec.path, iteration=some.rec.iteration, attempt=some.rec.attempt,
                    occurrence=occurrence)
    if a is not None:
        diff.status_a, diff.route_a = a.rec.status, a.route
        diff.duration_ms_a, diff.flags_a = a.rec.duration_ms, list(a.rec.flags)
    if b is not None:
        diff.status_b, diff.route_b = b.rec.status, b.route
        diff.duration_ms_b, diff.flags_b = b.rec.duration_ms, list(b.rec.flags)
    if a is None or b is None:
        diff.same = False
        return diff
    # A reused (replayed) step records no input: inputs are compared when both sides have one.
    if a.input is not ABSENT and b.input is not ABSENT:
        diff.input_changes = json_changes(a.input, b.input)
    if a.output is not ABSENT or b.output is not ABSENT:
        diff.output_changes = json_changes(a.output, b.output)
    diff.same = (a.rec.status == b.rec.status and a.route == b.route
                 and not diff.output_changes)
    return diff


# ---------------------------------------------------------------------- definitions


def _definition_change(store: Store, hash_a: str, hash_b: str) -> list[str]:
    """A unified diff per file of the two definition snapshots."""
    sources_a = store.get_definition(hash_a) if hash_a else None
    sources_b = store.get_definition(hash_b) if hash_b else None
    missing = [h or "(none)" for h, s in ((hash_a, sources_a), (hash_b, sources_b)) if s is None]
    if missing:
        return [f"# no source diff: definition snapshot {' and '.join(missing)} is not in the "
                "store"]
    assert sources_a is not None and sources_b is not None
    if set(sources_a) != set(sources_b) and len(sources_a) == len(sources_b) == 1:
        # one file each under different names (moved or renamed): compare them together
        pairs = [(next(iter(sources_a)), next(iter(sources_b)))]
    else:
        names = sorted(set(sources_a) | set(sources_b))
        pairs = [(name, name) for name in names]
    lines: list[str] = []
    for name_a, name_b in pairs:
        text_a, text_b = sources_a.get(name_a, ""), sources_b.get(name_b, "")
        if text_a == text_b:
            continue
        lines.extend(difflib.unified_diff(
            text_a.splitlines(), text_b.splitlines(),
            fromfile=f"a/{name_a}" if name_a in sources_a else "/dev/null",
            tofile=f"b/{name_b}" if name_b in sources_b else "/dev/null", lineterm=""))
    return lines


# ---------------------------------------------------------------------- the diff


def _execution(store: Store, execution_id: str) -> ExecutionRecord:
    record = store.get_execution(execution_id)
    if record is None:
        raise NotFound(f"no execution {execution_id!r} in the store {store.url}: check the id "
                       "(list the executions to find it)", details={"id": execution_id})
    return record


def diff_executions(store: Store, a: str, b: str) -> ExecutionDiff:
    """Compare execution ``b`` with execution ``a`` step by step (pure reads).

    Runs are aligned by (path, iteration, attempt) and occurrence: the k-th run of a key in
    A pairs with the k-th in B (a step re-entered by a backward jump runs several times).
    A step is ``same`` when it ran in both with the same status, the same route and an
    equal recorded output. Input changes are reported but do not by themselves make a
    step differ: an input is rendered from the trigger and earlier outputs, whose changes
    are reported where they happen; a step given other input that still produced the same
    output did not diverge. Durations and flags (reused, mocked, retried...) are shown,
    not compared, so a reused step with the original's output is the same step.
    ``first_divergence`` is the first differing step in A's order (else in B's order).

    ``definition_change`` is a unified diff per source file of the two definition
    snapshots; when a snapshot is missing it is one line that says so.
    Raises NotFound naming a missing execution id.
    """
    rec_a, rec_b = _execution(store, a), _execution(store, b)
    pairs = _align(_load_runs(store, a), _load_runs(store, b))
    steps = [_step_diff(ra, rb, k) for ra, rb, k in pairs]

    first: StepDiff | None = None
    first_b: tuple[int, StepDiff] | None = None
    summary = {"same": 0, "changed": 0, "only_a": 0, "only_b": 0}
    for (ra, rb, _k), diff in zip(pairs, steps, strict=True):
        if ra is None:
            summary["only_b"] += 1
        elif rb is None:
            summary["only_a"] += 1
        else:
            summary["same" if diff.same else "changed"] += 1
        if diff.same:
            continue
        if ra is not None:
            if first is None:
                first = diff
        elif rb is not None and (first_b is None or rb.rec.seq < first_b[0]):
            first_b = (rb.rec.seq, diff)

    changed_definition = rec_a.definition_hash != rec_b.definition_hash
    return ExecutionDiff(
        a=a, b=b, pipeline_a=rec_a.pipeline, pipeline_b=rec_b.pipeline,
        status_a=rec_a.status, status_b=rec_b.status,
        definition_changed=changed_definition,
        definition_change=(_definition_change(store, rec_a.definition_hash,
                                              rec_b.definition_hash)
                           if changed_definition else []),
        trigger_changes=json_changes(rec_a.trigger_payload, rec_b.trigger_payload),
        output_changes=json_changes(rec_a.output, rec_b.output),
        steps=steps,
        first_divergence=first if first is not None else (first_b[1] if first_b else None),
        summary=summary,
    )
