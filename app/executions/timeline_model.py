"""What the timeline draws, without Qt: lanes (a tree), bars in numpy arrays, and markers.

Lanes follow the structure the engine writes into step paths: a sub-step ``a/b`` sits under
``a``; the sub-steps of a loop sit under one lane per iteration (``#3``), and the iterations of
a big loop under groups of :data:`CHUNK` (``#100-199``). The same step path in different
iterations is therefore a different lane; parallel branches are different paths, hence
different lanes. A collapsed lane shows every bar of its subtree in its own row.

Bars live in flat arrays (start, end, colour, lane) so a frame culls and merges them with a
few numpy operations: nothing here is per-bar Python at paint time. Building from a stored
timeline is pure Python + numpy and runs in a worker thread; live events are folded in on
the GUI thread with :meth:`TimelineModel.apply_event` (cheap, O(1) per event).
"""

from __future__ import annotations

import bisect
import gc
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

import numpy as np

from app.executions.timeline_style import COLOR_INDEX, MARKER_INDEX, color_key
from engine.service.models import (
    TERMINAL_EVENTS,
    TERMINAL_STATUS,
    DebugContextPatchedData,
    DebugPausedData,
    DebugResumedData,
    Event,
    EventType,
    ExecutionSummary,
    StepCompletedData,
    StepFailedData,
    StepIdempotentHitData,
    StepMockedData,
    StepRetryingData,
    StepRoutedData,
    StepRun,
    StepSkippedData,
    StepStartedData,
    Timeline,
)

CHUNK = 100  # iterations per group lane once a loop has more than this
EXPAND_ITERATIONS = 10  # a loop with at most this many iterations shows them expanded
LOOP_TYPES = frozenset({"step.foreach", "step.while"})
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled", "compensated", "interrupted"})
# Event types read at load for markers (step runs themselves come from the timeline).
MARKER_EVENTS: Final[list[str]] = [
    EventType.STEP_RETRYING, EventType.STEP_ROUTED, EventType.STEP_MOCKED, EventType.STEP_IDEMPOTENT_HIT,
    EventType.DEBUG_PAUSED, EventType.DEBUG_RESUMED, EventType.DEBUG_CONTEXT_PATCHED]

STEP, ITERATION, CHUNK_GROUP, GROUP = "step", "iteration", "chunk", "group"
# Bar kinds: a lane's own run; a run of a lane with sub-lanes (drawn as a thin bracket); a
# run drawn in the row of a collapsed ancestor.
FULL, SUMMARY, FOLDED = 0, 1, 2
# Vertical extent of each kind in row units, relative to the row centre (y grows downwards).
BAND = {FULL: (-0.36, 0.36), SUMMARY: (-0.36, -0.2), FOLDED: (-0.12, 0.36)}
_SEGMENT = re.compile(r"^(?P<name>.*?)(?:\[(?P<it>\d+)\])?(?:@(?P<attempt>\d+))?$")


@dataclass(slots=True)
class Node:
    id: int
    parent: int
    kind: str
    name: str  # step name, or "" for iterations/chunks
    path: str  # the step path (step lanes); the loop's path for iterations/chunks
    iteration: int  # iteration number (ITERATION), first iteration (CHUNK), else the run's
    depth: int
    key: tuple[Any, ...]  # stable across reloads: where the user's expand/collapse is kept
    children: list[int] = field(default_factory=list)
    by_name: dict[str, int] = field(default_factory=dict)
    by_iteration: dict[int, int] = field(default_factory=dict)  # loops: chunk -> node; chunks: it -> node
    runs: int = 0  # own step runs
    unsorted: bool = False  # children created out of iteration order

    @property
    def label(self) -> str:
        if self.kind == ITERATION:
            return f"#{self.iteration}"
        if self.kind == CHUNK_GROUP:
            last = max(self.by_iteration, default=self.iteration)
            return f"#{self.iteration}-{last}"
        return self.name


@dataclass(slots=True)
class PauseSpan:
    """A debugger pause drawn as a bar: from ``debug.paused`` to ``debug.resumed``."""

    path: str
    step: str
    seq: int  # of debug.paused
    reason: str
    started_at: float
    ended_at: float | None = None
    action: str = ""  # how it was resumed
    run_seq: int = 0  # the step run that followed (what clicking the pause selects)


@dataclass(slots=True)
class Marker:
    kind: int  # index into MARKER_KINDS
    x: float  # seconds since the execution started
    node: int
    run: int  # bar index, -1 when it marks no run
    seq: int
    text: str


@dataclass(slots=True)
class Layout:
    rows: list[int]  # node id of each visible row, top to bottom
    row_depth: list[int]  # indentation of each row (hidden chunk levels do not count)
    row_open: list[bool]  # each row: a lane with sub-lanes, shown expanded
    node_row: np.ndarray  # per node: its row, or -1 when hidden (chunk levels of small loops too)
    bar_row: np.ndarray  # per bar: the row it is drawn in
    bar_kind: np.ndarray  # per bar: FULL, SUMMARY or FOLDED
    marker_row: np.ndarray
    span_start: np.ndarray  # per node: earliest start in its subtree (nan when empty)
    span_end: np.ndarray
    order: np.ndarray  # bar indices sorted by row
    row_first: np.ndarray  # order[row_first[r]:row_first[r + 1]] are the bars of row r


def _float(value: float | None) -> float:
    return float("nan") if value is None else float(value)


class TimelineModel:
    def __init__(self, execution: ExecutionSummary, loops: set[str] | None = None):
        self.execution = execution
        self.t0 = execution.started_at
        self.nodes: list[Node] = [Node(0, -1, GROUP, "", "", 0, -1, ())]
        self.loops: set[str] = set(loops or ())
        self._node_of: dict[tuple[str, int], int] = {}
        self._parse_cache: dict[str, tuple[str | None, str, int | None]] = {}
        self._pairs: set[tuple[str, int]] = set()
        self._paths: set[str] = set()
        self._paths_with_children: set[str] = set()
        # bars: step runs and pause spans
        self.items: list[StepRun | PauseSpan] = []
        self._cap = 0
        self.start = np.empty(0)
        self.end = np.empty(0)
        self.color = np.empty(0, np.int8)
        self.node = np.empty(0, np.int32)
        self.by_seq: dict[int, int] = {}  # step run seq -> bar index
        self._by_path: dict[str, list[int]] = {}  # path -> bar indices of its step runs, in seq order
        self._seqs_by_path: dict[str, list[int]] = {}  # path -> their seqs (bisected)
        self.markers: list[Marker] = []
        self._marker_keys: dict[tuple[int, int], Marker] = {}  # (seq, kind): each folds in once
        self._retry_notes: dict[tuple[str, int], str] = {}  # (path, attempt) -> why it was retried
        self._open_pauses: dict[str, int] = {}  # path -> bar index of a pause not yet resumed
        self._pending_edits: dict[str, list[Marker]] = {}
        # per lane, grown with the tree: what a layout needs without walking the nodes
        self._lane_parent = np.full(64, -1, np.int32)
        self._lane_depth = np.full(64, -1, np.int32)
        self._lane_has_children = np.zeros(64, bool)
        self.step_runs = 0  # bars that are step runs (the others are debugger pauses)
        self.last_seq = 0
        self.needs_rebuild = False  # a lane turned out to be a loop after its children were placed
        self.structure_version = 0  # bumps when lanes are added (a relayout is due)
        self.data_version = 0  # bumps when bars or markers change
        self.running = execution.status not in TERMINAL_STATUSES

    # ------------------------------------------------------------------ building

    @classmethod
    def build(cls, timeline: Timeline, events: Sequence[Event] = ()) -> TimelineModel:
        """A model of a stored timeline and its marker events (see MARKER_EVENTS)."""
        # Tens of thousands of small objects: the cyclic GC would rescan them (and every
        # pydantic model of the timeline) many times over; nothing built here forms cycles.
        paused = gc.isenabled()
        gc.disable()
        try:
            return cls._build(timeline, events)
        finally:
            if paused:
                gc.enable()

    @classmethod
    def _build(cls, timeline: Timeline, events: Sequence[Event]) -> TimelineModel:
        steps = timeline.steps
        loops = {run.path for run in steps if run.type in LOOP_TYPES}
        pairs = {(run.path, run.iteration) for run in steps}
        paths = {run.path for run in steps}
        model = cls(timeline.execution, loops)
        # A lane whose children run in iterations it did not run in is a loop, whatever its type
        # (plugins): decided before placing anything so the tree is built once. Skipped runs are
        # recorded with iteration 0 whatever their iteration, so they cannot tell.
        for path, it in {(run.path, run.iteration) for run in steps if run.status != "skipped"}:
            parent, _, bracket = model._parse(path)
            if parent is not None and parent not in model.loops and (
                    bracket is not None or (parent in paths and (parent, it) not in pairs)):
                model.loops.add(parent)
        model._pairs, model._paths = pairs, paths
        model._paths_with_children = {p for p in (model._parse(path)[0] for path in paths) if p is not None}
        model._add_runs(steps)
        model.last_seq = max((run.seq for run in steps), default=0)
        for event in events:
            model.apply_event(event)
        model.last_seq = max((run.seq for run in steps), default=0)  # the timeline's snapshot
        return model

    def rebuild(self) -> TimelineModel:
        """The same data placed again (after a late loop discovery), keeping what is known."""
        runs = [item for item in self.items if isinstance(item, StepRun)]
        fresh = TimelineModel(self.execution, self.loops)
        fresh._pairs = {(r.path, r.iteration) for r in runs}
        fresh._paths = {r.path for r in runs}
        fresh._retry_notes = dict(self._retry_notes)
        fresh._add_runs(runs)
        moved: dict[int, int] = {}
        for index, item in enumerate(self.items):
            if isinstance(item, StepRun):
                moved[index] = fresh.by_seq[item.seq]
            else:
                moved[index] = fresh._add_pause(item)
                if item.ended_at is None:
                    fresh._open_pauses[item.path] = moved[index]
        for marker in self.markers:
            run = moved.get(marker.run, -1)
            node = fresh._pause_lane(self.nodes[marker.node].path, marker.seq) if run < 0 else -1
            fresh._marker(marker.kind, run, marker.x, marker.seq, marker.text, node=node, replace_text=True)
        fresh.last_seq = self.last_seq
        fresh.running = self.running
        return fresh

    def _grow(self, extra: int) -> None:
        need = len(self.items) + extra
        if need <= self._cap:
            return
        cap = max(need, self._cap * 2, 256)
        for name, dtype in (("start", np.float64), ("end", np.float64), ("color", np.int8),
                            ("node", np.int32)):
            old = getattr(self, name)
            new = np.empty(cap, dtype)
            new[: len(self.items)] = old[: len(self.items)]
            setattr(self, name, new)
        self._cap = cap

    def _add_runs(self, runs: list[StepRun]) -> None:
        """Append step runs (in seq order); vectorised where it matters."""
        if not runs:
            return
        self._grow(len(runs))
        first = len(self.items)
        t0 = self.t0
        node_for = self.node_for
        by_path = self._by_path
        seqs_by_path = self._seqs_by_path
        by_seq = self.by_seq
        nodes = self.nodes
        colors = COLOR_INDEX
        count = len(runs)
        starts = [0.0] * count
        ends = [0.0] * count
        lanes = [0] * count
        codes = [0] * count
        for i, run in enumerate(runs):
            index = first + i
            nid = node_for(run.path, run.iteration)
            nodes[nid].runs += 1
            lanes[i] = nid
            starts[i] = run.started_at
            ends[i] = _float(run.ended_at)
            codes[i] = colors[color_key(run.status, run.flags)] if run.flags or run.status != "completed" \
                else 0
            by_seq[run.seq] = index
            bucket = by_path.get(run.path)
            if bucket is None:
                by_path[run.path] = [index]
                seqs_by_path[run.path] = [run.seq]
            else:
                bucket.append(index)
                seqs_by_path[run.path].append(run.seq)
        end = first + count
        self.start[first:end] = np.asarray(starts) - t0
        self.end[first:end] = np.asarray(ends) - t0
        self.color[first:end] = codes
        self.node[first:end] = lanes
        self.items.extend(runs)
        self.step_runs += count
        for i, run in enumerate(runs):
            if run.attempt > 1 or run.flags:
                self._flag_markers(first + i, run)
        self.data_version += 1

    def _flag_markers(self, index: int, run: StepRun) -> None:
        """Markers a run's flags call for (texts come from the events when they are read)."""
        start = float(self.start[index])
        if run.attempt > 1 or "retried" in run.flags:
            self._marker(MARKER_INDEX["retry"], index, start, run.seq,
                         self._retry_notes.get((run.path, run.attempt), f"attempt {run.attempt}"))
        if "mocked" in run.flags:
            self._marker(MARKER_INDEX["mock"], index, start, run.seq, "answered by a mock")
        if "idempotent_hit" in run.flags:
            self._marker(MARKER_INDEX["cached"], index, start, run.seq, "answered from the idempotency store")
        if "routed" in run.flags:
            end = float(self.end[index])
            self._marker(MARKER_INDEX["route"], index, start if np.isnan(end) else end, run.seq, "routed")

    # ------------------------------------------------------------------ lanes

    def _parse(self, path: str) -> tuple[str | None, str, int | None]:
        """(parent run path, own name, the loop iteration written into the parent segment)."""
        found = self._parse_cache.get(path)
        if found is not None:
            return found
        parent_raw, slash, name = path.rpartition("/")
        if not slash:
            found = (None, path, None)
        else:
            head, slash2, last = parent_raw.rpartition("/")
            match = _SEGMENT.match(last)
            assert match is not None  # the pattern matches any text
            bracket = match.group("it")
            found = ((head + slash2 + match.group("name")), name,
                     int(bracket) if bracket is not None else None)
        self._parse_cache[path] = found
        return found

    def node_for(self, path: str, iteration: int) -> int:
        """The lane of runs of ``path`` in ``iteration`` (created, with its ancestors, if new)."""
        nid = self._node_of.get((path, iteration))
        if nid is not None:
            return nid
        parent_path, name, bracket = self._parse(path)
        if parent_path is None:
            parent = 0
        elif parent_path in self.loops:
            loop = self.node_for(parent_path, bracket if bracket is not None else 0)
            parent = self._iteration_node(loop, iteration)
        else:
            parent = self.node_for(parent_path, iteration)
        nid = self._child(parent, name, path, iteration)
        self._node_of[(path, iteration)] = nid
        return nid

    def node_for_run(self, run: StepRun) -> int:
        return self.node_for(run.path, run.iteration)

    def _new_node(self, parent: int, kind: str, name: str, path: str, iteration: int,
                  key_part: Any) -> int:
        owner = self.nodes[parent]
        nid = len(self.nodes)
        node = Node(nid, parent, kind, name, path, iteration, owner.depth + 1, (*owner.key, key_part))
        self.nodes.append(node)
        owner.children.append(nid)
        if nid >= self._lane_parent.size:
            grow = self._lane_parent.size
            self._lane_parent = np.concatenate([self._lane_parent, np.full(grow, -1, np.int32)])
            self._lane_depth = np.concatenate([self._lane_depth, np.full(grow, -1, np.int32)])
            self._lane_has_children = np.concatenate([self._lane_has_children, np.zeros(grow, bool)])
        self._lane_parent[nid] = parent
        self._lane_depth[nid] = node.depth
        self._lane_has_children[parent] = True
        self.structure_version += 1
        return nid

    def _child(self, parent: int, name: str, path: str, iteration: int) -> int:
        owner = self.nodes[parent]
        nid = owner.by_name.get(name)
        if nid is None:
            nid = self._new_node(parent, STEP, name, path, iteration, name)
            owner.by_name[name] = nid
        return nid

    def _iteration_node(self, loop: int, iteration: int) -> int:
        owner = self.nodes[loop]
        chunk_no = iteration // CHUNK
        chunk = owner.by_iteration.get(chunk_no)
        if chunk is None:
            chunk = self._new_node(loop, CHUNK_GROUP, "", owner.path, chunk_no * CHUNK, ("chunk", chunk_no))
            owner.by_iteration[chunk_no] = chunk
            if len(owner.children) > 1 and self.nodes[owner.children[-2]].kind == CHUNK_GROUP \
                    and self.nodes[owner.children[-2]].iteration > chunk_no * CHUNK:
                owner.unsorted = True
        group = self.nodes[chunk]
        nid = group.by_iteration.get(iteration)
        if nid is None:
            nid = self._new_node(chunk, ITERATION, "", owner.path, iteration, ("#", iteration))
            group.by_iteration[iteration] = nid
            if len(group.children) > 1 and self.nodes[group.children[-2]].iteration > iteration:
                group.unsorted = True
        return nid

    def iterations(self, loop: int) -> int:
        return sum(len(self.nodes[c].by_iteration) for c in self.nodes[loop].children
                   if self.nodes[c].kind == CHUNK_GROUP)

    def is_loop(self, nid: int) -> bool:
        node = self.nodes[nid]
        return node.kind == STEP and node.path in self.loops

    # ------------------------------------------------------------------ markers and pauses

    def _marker(self, kind: int, run: int, x: float, seq: int, text: str, node: int = -1,
                replace_text: bool = False) -> Marker:
        """Add a marker once per (seq, kind): ``seq`` is the run's for run markers, the event's else."""
        found = self._marker_keys.get((seq, kind))
        if found is not None:
            if replace_text and text:
                found.text = text
                found.x = float(x)
            return found
        marker = Marker(kind, float(x), int(self.node[run]) if run >= 0 else node, run, seq, text)
        self._marker_keys[(seq, kind)] = marker
        self.markers.append(marker)
        self.data_version += 1
        return marker

    def _run_after(self, path: str, seq: int) -> int:
        """The first step run of ``path`` started after event ``seq`` (-1 when none yet)."""
        bucket = self._by_path.get(path)
        if not bucket:
            return -1
        at = bisect.bisect_right(self._seqs_by_path[path], seq)
        return bucket[at] if at < len(bucket) else -1

    def _run_before(self, path: str, seq: int) -> int:
        """The last step run of ``path`` started before event ``seq`` (-1 when none)."""
        bucket = self._by_path.get(path)
        if not bucket:
            return -1
        at = bisect.bisect_left(self._seqs_by_path[path], seq)
        return bucket[at - 1] if at > 0 else -1

    def _pause_lane(self, path: str, seq: int) -> int:
        following = self._run_after(path, seq)
        if following >= 0:
            return int(self.node[following])
        before = self._run_before(path, seq)  # live: the step has not started yet
        if before >= 0:
            return int(self.node[before])
        return self.node_for(path, 0)

    def _add_pause(self, span: PauseSpan) -> int:
        self._grow(1)
        nid = self._pause_lane(span.path, span.seq)
        index = len(self.items)
        self.items.append(span)
        self.start[index] = span.started_at - self.t0
        self.end[index] = _float(span.ended_at) - self.t0
        self.color[index] = COLOR_INDEX["paused"]
        self.node[index] = nid
        self.data_version += 1
        return index

    def apply_event(self, event: Event) -> bool:
        """Fold one event in; True when something visible changed. Idempotent per event."""
        if event.seq > self.last_seq:
            self.last_seq = event.seq
        handler = _HANDLERS.get(event.type)
        return handler(self, event) if handler is not None else False

    # One handler per event kind (the _HANDLERS table below): each reads its typed payload.

    def _on_step_started(self, event: Event) -> bool:
        if event.seq in self.by_seq:
            return False
        data = cast(StepStartedData, event.data)
        attempt = int(data.get("attempt", 1) or 1)
        flags = ["retried"] if attempt > 1 else []
        if data.get("reused"):
            flags.append("reused")
        run = StepRun(execution_id=event.execution_id, path=str(data.get("path", "")),
                      step=str(data.get("step", "")), type=str(data.get("type", "")), seq=event.seq,
                      iteration=int(data.get("iteration", 0) or 0), attempt=attempt,
                      status="running", started_at=event.ts, flags=flags)
        self._place_live(run)
        self._add_runs([run])
        return True

    def _on_step_completed(self, event: Event) -> bool:
        return self._end_step(event, "completed")

    def _on_step_failed(self, event: Event) -> bool:
        return self._end_step(event, "failed")

    def _end_step(self, event: Event, status: str) -> bool:
        data = cast(StepCompletedData | StepFailedData, event.data)
        index = self._run_of(data, event.seq)
        if index < 0:
            return False
        run = self.items[index]
        assert isinstance(run, StepRun)
        if run.status != "running":
            return False
        run.status = status
        run.ended_at = event.ts
        run.duration_ms = data.get("duration_ms")
        if status == "failed":
            error = cast(StepFailedData, data).get("error") or {}
            run.error = str(error.get("message", error)) if isinstance(error, dict) else str(error)
        self.end[index] = event.ts - self.t0
        self.color[index] = COLOR_INDEX[color_key(run.status, run.flags)]
        self.data_version += 1
        return True

    def _on_step_skipped(self, event: Event) -> bool:
        if event.seq in self.by_seq:
            return False
        data = cast(StepSkippedData, event.data)
        run = StepRun(execution_id=event.execution_id, path=str(data.get("path", "")),
                      step=str(data.get("step", "")), type="", seq=event.seq, status="skipped",
                      started_at=event.ts, ended_at=event.ts, duration_ms=0.0,
                      error=f"skipped ({data.get('reason', '')})")
        self._place_live(run)
        self._add_runs([run])
        return True

    def _on_step_retrying(self, event: Event) -> bool:
        data = cast(StepRetryingData, event.data)
        path = str(data.get("path", ""))
        attempt = int(data.get("attempt", 2) or 2)
        error = data.get("error") or {}
        message = error.get("message", "") if isinstance(error, dict) else str(error)
        note = f"retry {attempt} after {data.get('delay_ms', 0):.0f} ms: {message}"
        self._retry_notes[(path, attempt)] = note
        # the failed attempt: no step.failed is recorded for it, only this event
        bucket = self._by_path.get(path, [])
        at = bisect.bisect_left(self._seqs_by_path.get(path, []), event.seq)
        for index in reversed(bucket[max(0, at - 64): at]):  # concurrent iterations: look back a bit
            run = self.items[index]
            assert isinstance(run, StepRun)
            if run.attempt == attempt - 1:
                if run.status == "running":
                    run.status, run.ended_at, run.error = "failed", event.ts, message
                    self.end[index] = event.ts - self.t0
                    self.color[index] = COLOR_INDEX["failed"]
                break
        following = self._run_after(path, event.seq)  # loading: the retried run is there
        if following >= 0:
            run = self.items[following]
            assert isinstance(run, StepRun)
            marker = self._marker_keys.get((run.seq, MARKER_INDEX["retry"]))
            if marker is not None and run.attempt == attempt:
                marker.text = note
        self.data_version += 1
        return True

    def _on_step_routed(self, event: Event) -> bool:
        data = cast(StepRoutedData, event.data)
        index = self._run_of(data, event.seq)
        if index < 0:
            return False
        run = self.items[index]
        assert isinstance(run, StepRun)
        if "routed" not in run.flags:
            run.flags.append("routed")
        matched = data.get("matched_value")
        self._marker(MARKER_INDEX["route"], index, event.ts - self.t0, run.seq,
                     f"routed → {data.get('next_step')}"
                     + (f" (matched {matched!r})" if matched is not None else ""), replace_text=True)
        return True

    def _on_step_mocked(self, event: Event) -> bool:
        data = cast(StepMockedData, event.data)
        index = self._flag_run_before(str(data.get("path", "")), event.seq, "mocked")
        if index < 0:
            return False
        self._marker(MARKER_INDEX["mock"], index, self.start[index], self.items[index].seq,
                     f"answered by mock {data.get('mock_id', '')}".strip(), replace_text=True)
        return True

    def _on_step_idempotent_hit(self, event: Event) -> bool:
        data = cast(StepIdempotentHitData, event.data)
        index = self._flag_run_before(str(data.get("path", "")), event.seq, "idempotent_hit")
        if index < 0:
            return False
        self._marker(MARKER_INDEX["cached"], index, self.start[index], self.items[index].seq,
                     f"idempotency hit (key {data.get('key')!r})", replace_text=True)
        return True

    def _flag_run_before(self, path: str, seq: int, flag: str) -> int:
        """Flag (and recolour) the run of ``path`` that event ``seq`` is about; its index or -1."""
        index = self._run_before(path, seq)
        if index < 0:
            return -1
        run = self.items[index]
        assert isinstance(run, StepRun)
        if flag not in run.flags:
            run.flags.append(flag)
        self.color[index] = COLOR_INDEX[color_key(run.status, run.flags)]
        return index

    def _on_debug_paused(self, event: Event) -> bool:
        if (event.seq, MARKER_INDEX["pause"]) in self._marker_keys:
            return False
        data = cast(DebugPausedData, event.data)
        path = str(data.get("path", data.get("step", "")))
        span = PauseSpan(path, str(data.get("step", "")), event.seq, str(data.get("reason", "")),
                         event.ts)
        following = self._run_after(path, event.seq)
        if following >= 0:
            span.run_seq = self.items[following].seq
        index = self._add_pause(span)
        self._open_pauses[path] = index
        self.execution.status = "paused"
        bp = data.get("breakpoint_id")
        self._marker(MARKER_INDEX["pause"], index, span.started_at - self.t0, event.seq,
                     f"paused ({span.reason}{', breakpoint ' + str(bp) if bp else ''})")
        return True

    def _on_debug_resumed(self, event: Event) -> bool:
        data = cast(DebugResumedData, event.data)
        path = str(data.get("path", data.get("step", "")))
        index = self._open_pauses.pop(path, -1)
        if index < 0:
            return False
        span = self.items[index]
        assert isinstance(span, PauseSpan)
        span.ended_at, span.action = event.ts, str(data.get("action", ""))
        self.end[index] = event.ts - self.t0
        if self.running and not self._open_pauses:
            self.execution.status = "running"
        self.data_version += 1
        return True

    def _on_debug_context_patched(self, event: Event) -> bool:
        if (event.seq, MARKER_INDEX["edit"]) in self._marker_keys:
            return False
        data = cast(DebugContextPatchedData, event.data)
        path = str(data.get("path", data.get("step", "")))
        patch = data.get("patch") or []
        ops = ", ".join(f"{op.get('op')} {op.get('path')}" for op in patch[:4] if isinstance(op, dict))
        more = f" (+{len(patch) - 4})" if len(patch) > 4 else ""
        text = f"context edited by {data.get('by', 'someone')}: {ops}{more}"
        index = self._open_pauses.get(path, -1)
        if index >= 0:
            self._marker(MARKER_INDEX["edit"], index, event.ts - self.t0, event.seq, text)
        else:
            self._marker(MARKER_INDEX["edit"], -1, event.ts - self.t0, event.seq, text,
                         node=self._pause_lane(path, event.seq))
        return True

    def _on_execution_ended(self, event: Event) -> bool:
        self.running = False
        self.execution.status = TERMINAL_STATUS[event.type]
        self.execution.ended_at = event.ts
        self.data_version += 1
        return True

    def _place_live(self, run: StepRun) -> None:
        """Loop detection for a run arriving live; a late discovery asks for a rebuild."""
        if run.type in LOOP_TYPES:
            self.loops.add(run.path)
        parent, _, bracket = self._parse(run.path)
        if parent is not None and parent not in self.loops and run.status != "skipped" and (
                bracket is not None
                or (parent in self._paths and (parent, run.iteration) not in self._pairs)):
            self.loops.add(parent)
            self.needs_rebuild = parent in self._paths_with_children
        self._pairs.add((run.path, run.iteration))
        self._paths.add(run.path)
        if parent is not None:
            self._paths_with_children.add(parent)

    def _run_of(self, data: Mapping[str, Any], seq: int) -> int:
        started = data.get("started_seq")
        if isinstance(started, int):
            return self.by_seq.get(started, -1)
        return self._run_before(str(data.get("path", "")), seq)  # reused steps carry no started_seq

    # ------------------------------------------------------------------ queries

    @property
    def bar_count(self) -> int:
        return len(self.items)

    def run_index(self, path: str, seq: int = 0) -> int:
        """The bar of step run ``seq`` (or the first run of ``path`` when seq is 0); -1 if none."""
        if seq:
            index = self.by_seq.get(seq, -1)
            if index >= 0:
                return index
        bucket = self._by_path.get(path)
        return bucket[0] if bucket else -1

    def ancestors(self, nid: int) -> list[int]:
        out = []
        parent = self.nodes[nid].parent
        while parent > 0:
            out.append(parent)
            parent = self.nodes[parent].parent
        return out

    def duration(self, now: float | None = None) -> float:
        """Seconds covered: to the execution's end, or its latest activity (``now`` while running)."""
        n = self.bar_count
        last = 0.0
        if n:
            ends = self.end[:n]
            finite = ends[~np.isnan(ends)]
            last = max(float(self.start[:n].max()), float(finite.max()) if finite.size else 0.0)
        ended = self.execution.ended_at
        if ended is not None and not self.running:
            last = max(last, ended - self.t0)
        elif now is not None:
            last = max(last, now - self.t0)
        return max(last, 1e-6)

    def chunk_hidden(self, node: Node) -> bool:
        """A loop's chunk level is only shown once it has more than CHUNK iterations."""
        return node.kind == CHUNK_GROUP and len(self.nodes[node.parent].children) == 1 \
            and len(node.by_iteration) <= CHUNK

    # ------------------------------------------------------------------ layout

    def layout(self, choices: dict[tuple[Any, ...], bool]) -> Layout:
        """Visible rows for the user's expand/collapse ``choices`` (node key -> expanded)."""
        nodes = self.nodes
        rows: list[int] = []
        count = len(nodes)
        node_row = np.full(count, -1, np.int32)
        iteration_counts: dict[int, int] = {}

        def expanded(node: Node) -> bool:
            chosen = choices.get(node.key)
            if chosen is not None:
                return chosen
            if node.kind == CHUNK_GROUP:
                return False
            if node.kind == ITERATION:
                loop = nodes[node.parent].parent
                if loop not in iteration_counts:
                    iteration_counts[loop] = self.iterations(loop)
                return iteration_counts[loop] <= EXPAND_ITERATIONS
            return True

        row_depth: list[int] = []
        row_open: list[bool] = []
        stack = [(c, 0) for c in reversed(self._sorted_children(nodes[0]))]
        while stack:
            nid, depth = stack.pop()
            node = nodes[nid]
            if self.chunk_hidden(node):
                stack.extend((c, depth) for c in reversed(self._sorted_children(node)))
                continue
            node_row[nid] = len(rows)
            rows.append(nid)
            row_depth.append(depth)
            is_open = bool(node.children) and expanded(node)
            row_open.append(is_open)
            if is_open:
                stack.extend((c, depth + 1) for c in reversed(self._sorted_children(node)))
        parents, depths, has_children = self._tree_arrays()
        disp = node_row.copy()
        # hidden nodes are drawn in their nearest shown ancestor's row; parents precede children
        for depth in range(1, int(depths.max(initial=0)) + 1):
            level = np.nonzero((depths == depth) & (node_row < 0))[0]
            if level.size:
                disp[level] = disp[parents[level]]
        n = self.bar_count
        lanes = self.node[:n]
        bar_row = disp[lanes]
        bar_kind = np.where(node_row[lanes] < 0, FOLDED, np.where(has_children[lanes], SUMMARY, FULL))
        bar_kind = bar_kind.astype(np.int8)
        marker_nodes = np.fromiter((m.node for m in self.markers), np.int32, len(self.markers))
        marker_row = disp[marker_nodes] if len(self.markers) else np.empty(0, np.int32)
        span_start = np.full(count, np.inf)
        span_end = np.full(count, -np.inf)
        if n:
            ends = np.where(np.isnan(self.end[:n]), self.start[:n], self.end[:n])
            np.minimum.at(span_start, lanes, self.start[:n])
            np.maximum.at(span_end, lanes, ends)
            for depth in range(int(depths.max(initial=0)), 0, -1):
                level = np.nonzero(depths == depth)[0]
                np.minimum.at(span_start, parents[level], span_start[level])
                np.maximum.at(span_end, parents[level], span_end[level])
        order = np.argsort(bar_row, kind="stable").astype(np.int32)
        row_first = np.searchsorted(bar_row[order], np.arange(len(rows) + 1)).astype(np.int32)
        return Layout(rows, row_depth, row_open, node_row, bar_row, bar_kind, marker_row, span_start,
                      span_end, order, row_first)

    def _tree_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(parent, depth, has children) per node."""
        count = len(self.nodes)
        return self._lane_parent[:count], self._lane_depth[:count], self._lane_has_children[:count]

    def _sorted_children(self, node: Node) -> list[int]:
        if node.unsorted:
            node.children.sort(key=lambda c: self.nodes[c].iteration)
            node.unsorted = False
        return node.children


@dataclass(frozen=True)
class LaneInfo:
    """One lane as tests and other panes see it."""

    label: str
    kind: str
    path: str
    iteration: int
    depth: int
    runs: int  # own step runs
    children: int
    row: int  # -1 when not shown (inside a collapsed lane)


# What apply_event does with each kind of event; the others change nothing visible.
_HANDLERS: Final[dict[str, Callable[[TimelineModel, Event], bool]]] = {
    EventType.STEP_STARTED: TimelineModel._on_step_started,
    EventType.STEP_COMPLETED: TimelineModel._on_step_completed,
    EventType.STEP_FAILED: TimelineModel._on_step_failed,
    EventType.STEP_SKIPPED: TimelineModel._on_step_skipped,
    EventType.STEP_RETRYING: TimelineModel._on_step_retrying,
    EventType.STEP_ROUTED: TimelineModel._on_step_routed,
    EventType.STEP_MOCKED: TimelineModel._on_step_mocked,
    EventType.STEP_IDEMPOTENT_HIT: TimelineModel._on_step_idempotent_hit,
    EventType.DEBUG_PAUSED: TimelineModel._on_debug_paused,
    EventType.DEBUG_RESUMED: TimelineModel._on_debug_resumed,
    EventType.DEBUG_CONTEXT_PATCHED: TimelineModel._on_debug_context_patched,
    **dict.fromkeys(TERMINAL_EVENTS, TimelineModel._on_execution_ended),
}
