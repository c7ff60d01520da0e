"""The timeline pane against the real embedded service: lanes, colours, markers, selection, live."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor

from app.executions.timeline import TimelinePane
from app.executions.timeline_model import CHUNK
from app.executions.timeline_style import COLOR_INDEX, MARKER_KINDS, timeline_style
from app.selection import SelectionHub
from engine.service.local import LocalService
from engine.service.models import RunOptions
from tests.contract.legacy_store import rewrite_as_legacy

USERS = {"users": [{"name": "ada", "email": "a@x", "orders": 7, "age": 36},
                   {"name": "bo", "email": "b@x", "orders": 3, "age": 54}]}

PIPELINES = """
name: timeline-tests
modules:
  - {name: mem, type: cache.memory}
pipelines:
  broken:
    steps:
      - {name: prepare, type: step.set, config: {values: {x: 1}}}
      - {name: boom, type: step.fail, config: {message: "no such customer"}}
  flaky:
    steps:
      # attempt 1 marks the cache and fails; attempt 2 sees the mark and succeeds
      - name: call
        type: step.foreach
        retry: {max_attempts: 3, initial_delay: 10ms}
        config:
          collection: [1]
          steps:
            - {name: seen, type: step.cache_get, config: {cache: mem, key: tried}}
            - {name: mark, type: step.cache_set, config: {cache: mem, key: tried, value: 1}}
            - name: boom
              type: step.fail
              if: "{{ .steps.seen.hit | not }}"
              config: {message: first attempt fails}
      - {name: after, type: step.set, config: {values: {ok: true}}}
  many:
    steps:
      - name: each
        type: step.foreach
        config:
          collection: "{{ .items }}"
          item_var: it
          steps:
            - {name: work, type: step.set, config: {values: {v: "{{ .it }}"}}}
  slow:
    steps:
      - name: each
        type: step.foreach
        config:
          collection: [1, 2, 3]
          concurrency: 1
          steps:
            - {name: wait, type: step.delay, config: {duration: 300ms}}
  nested:
    steps:
      - name: outer
        type: step.foreach
        config:
          collection: [1, 2]
          item_var: o
          steps:
            - name: inner
              type: step.foreach
              config:
                collection: [1, 2, 3]
                item_var: i
                steps:
                  - {name: leaf, type: step.set, config: {values: {v: "{{ .i }}"}}}
      - name: branches
        type: step.parallel
        config:
          steps:
            - {name: left, type: step.set, config: {values: {l: 1}}}
            - {name: right, type: step.set, config: {values: {r: 1}}}
  stops:
    steps:
      - {name: a, type: step.set, config: {values: {x: 1}}}
      - {name: b, type: step.set, config: {values: {y: "{{ .x }}"}}}
"""


@pytest.fixture
def pipelines(qloop: asyncio.AbstractEventLoop, service: LocalService, tmp_path: Path) -> LocalService:
    qloop.run_until_complete(service.put_definition(PIPELINES, str(tmp_path / "timeline-tests.yaml")))
    return service


@pytest.fixture
def hub() -> SelectionHub:
    return SelectionHub()


@pytest.fixture
def pane(qtbot, hub: SelectionHub, service: LocalService) -> TimelinePane:  # type: ignore[no-untyped-def]
    widget = TimelinePane(hub)
    qtbot.addWidget(widget)
    widget.resize(1100, 640)
    widget.show()
    widget.set_service(service)
    return widget


def run(qloop: asyncio.AbstractEventLoop, service: LocalService, pipeline: str, payload: object = None,
        wait: bool = True) -> str:
    result = qloop.run_until_complete(service.run(pipeline, payload or {}, RunOptions(wait=wait)))
    return result.execution_id


def wait_until(qloop: asyncio.AbstractEventLoop, condition: Callable[[], object], timeout: float = 30.0) -> None:
    """Run the loop until ``condition()`` (a value or an awaitable) is true."""

    async def poll() -> None:
        async with asyncio.timeout(timeout):
            while True:
                value = condition()
                if asyncio.iscoroutine(value):
                    value = await value
                if value:
                    return
                await asyncio.sleep(0.02)

    qloop.run_until_complete(poll())


def pixel(pane: TimelinePane, point: QPoint) -> QColor:
    image = pane.plot.viewport().grab().toImage()
    return image.pixelColor(point)


def near(a: QColor, b: QColor, tolerance: int = 12) -> bool:
    return all(abs(x - y) <= tolerance for x, y in
               ((a.red(), b.red()), (a.green(), b.green()), (a.blue(), b.blue())))


def label_point(pane: TimelinePane, row: int) -> QPoint:
    """Where lane ``row``'s name is, on the plot's viewport."""
    labels = pane.labels
    a, b = labels._row_mapping()
    local = QPointF(60, a * row + b)
    return pane.plot.mapFromScene(labels.mapToScene(local))


def test_lanes_for_sub_steps_iterations_and_branches(qloop, pane, service) -> None:  # type: ignore[no-untyped-def]
    execution = run(qloop, service, "score-users", USERS)
    qloop.run_until_complete(pane.load(execution))

    lanes = pane.lanes()
    by_path: dict[tuple[str, str], list] = {}
    for lane in lanes:
        by_path.setdefault((lane.kind, lane.path), []).append(lane)
    iterations = by_path[("iteration", "fan-out")]
    assert [lane.label for lane in iterations] == ["#0", "#1"]
    # each sub-step and each parallel branch has one lane per iteration, one run in each
    for path in ("fan-out/enrich", "fan-out/enrich/score", "fan-out/enrich/fingerprint", "fan-out/row"):
        found = by_path[("step", path)]
        assert sorted(lane.iteration for lane in found) == [0, 1], path
        assert all(lane.runs == 1 for lane in found), path
    # top-level steps: one lane each, and nesting is shown by depth
    for path in ("fan-out", "fan-in", "out"):
        assert [lane.depth for lane in by_path[("step", path)]] == [0]
    assert {lane.depth for lane in by_path[("step", "fan-out/enrich/score")]} == {3}
    # a small execution shows every lane
    assert all(lane.row >= 0 for lane in lanes)
    assert len(lanes) == 13
    model = pane.model
    assert model is not None and model.bar_count == 11
    assert "score-users" in pane.title.text() and "completed" in pane.title.text()


def test_nested_loops_and_top_level_branches(qloop, pane, pipelines) -> None:  # type: ignore[no-untyped-def]
    execution = run(qloop, pipelines, "nested")
    qloop.run_until_complete(pane.load(execution))
    shown = [(lane.depth, lane.label, lane.runs) for lane in pane.lanes()]
    inner = [(1, "#0", 0), (2, "inner", 1), (3, "#0", 0), (4, "leaf", 1), (3, "#1", 0), (4, "leaf", 1),
             (3, "#2", 0), (4, "leaf", 1)]
    # the outer iteration is written into the inner loop's sub-step paths (outer/inner[1]/leaf)
    assert shown == [(0, "outer", 1), *inner, *[(1, "#1", 0), *inner[1:]],
                     (0, "branches", 1), (1, "left", 1), (1, "right", 1)]
    # folding the outer loop's second iteration hides its 7 sub-lanes, and only those
    assert pane.set_expanded("outer", iteration=1, expanded=False)
    hidden = [lane for lane in pane.lanes() if lane.row < 0]
    assert len(hidden) == 7 and all(lane.path.startswith("outer/inner") for lane in hidden)
    assert not pane.set_expanded("no-such-step")


def test_big_loop_is_grouped_and_collapsible(qloop, qtbot, pane, pipelines) -> None:  # type: ignore[no-untyped-def]
    execution = run(qloop, pipelines, "many", {"items": list(range(250))})
    qloop.run_until_complete(pane.load(execution))
    lanes = pane.lanes()
    chunks = [lane for lane in lanes if lane.kind == "chunk"]
    assert [c.label for c in chunks] == ["#0-99", "#100-199", "#200-249"]
    assert all(c.row >= 0 for c in chunks)
    iterations = [lane for lane in lanes if lane.kind == "iteration"]
    assert len(iterations) == 250 and all(lane.row < 0 for lane in iterations)  # folded into the groups
    # the folded iterations' bars are drawn in their group's row
    model, layout = pane.model, pane.state.layout
    assert model is not None and layout is not None
    work = model.run_index("each/work", 0)
    assert int(layout.bar_row[work]) == chunks[0].row

    # clicking the group's name unfolds it: 100 iteration lanes appear
    qtbot.mouseClick(pane.plot.viewport(), Qt.MouseButton.LeftButton, pos=label_point(pane, chunks[0].row))
    shown = [lane for lane in pane.lanes() if lane.kind == "iteration" and lane.row >= 0]
    assert len(shown) == CHUNK
    # and clicking again folds it
    qtbot.mouseClick(pane.plot.viewport(), Qt.MouseButton.LeftButton, pos=label_point(pane, chunks[0].row))
    assert not [lane for lane in pane.lanes() if lane.kind == "iteration" and lane.row >= 0]

    pane.collapse_all()
    assert [lane.label for lane in pane.lanes() if lane.row >= 0] == ["each"]
    pane.expand_all()
    assert len([lane for lane in pane.lanes() if lane.row >= 0]) == 1 + 3 + 250


def test_failed_step_is_a_red_bar(qloop, pane, pipelines) -> None:  # type: ignore[no-untyped-def]
    execution = run(qloop, pipelines, "broken")
    qloop.run_until_complete(pane.load(execution))
    style = timeline_style()
    failed = pane.bar_point("boom")
    ok = pane.bar_point("prepare")
    assert failed is not None and ok is not None
    assert near(pixel(pane, failed), style.bars[COLOR_INDEX["failed"]].color())
    assert near(pixel(pane, ok), style.bars[COLOR_INDEX["completed"]].color())
    tip = pane.hover_text(failed)
    assert "boom" in tip and "failed" in tip and "no such customer" in tip


def test_retry_marker_and_both_attempts(qloop, pane, pipelines) -> None:  # type: ignore[no-untyped-def]
    execution = run(qloop, pipelines, "flaky")
    qloop.run_until_complete(pane.load(execution))
    model = pane.model
    assert model is not None
    call_lane = next(lane for lane in pane.lanes() if lane.path == "call")
    assert call_lane.runs == 2  # attempt 1 (failed) and attempt 2 share the lane
    attempts = sorted((item.attempt, item.status) for item in model.items if getattr(item, "path", "") == "call")
    assert attempts == [(1, "failed"), (2, "completed")]
    retries = [m for m in model.markers if MARKER_KINDS[m.kind] == "retry"]
    assert len(retries) == 1
    retried = model.items[retries[0].run]
    assert retried.attempt == 2 and "first attempt fails" in retries[0].text
    # the second attempt's sub-steps run again in the same lanes (call@2/seen -> seen)
    seen = next(lane for lane in pane.lanes() if lane.path == "call/seen")
    assert seen.runs == 2
    tip = pane.hover_text(pane.bar_point("call", retried.seq))
    assert "attempt 2" in tip and "retry 2 after" in tip


def test_route_and_mock_markers(qloop, pane, service) -> None:  # type: ignore[no-untyped-def]
    qloop.run_until_complete(service.set_mock("triage", "page-on-call", output={"handled_by": "mock"}))
    execution = run(qloop, service, "triage", {"id": "T-1", "severity": 9, "product": "billing"})
    qloop.run_until_complete(pane.load(execution))
    model = pane.model
    assert model is not None
    found = sorted((MARKER_KINDS[m.kind], model.items[m.run].path) for m in model.markers)
    assert found == [("mock", "page-on-call"), ("route", "done-urgent"), ("route", "route")]
    route = next(m for m in model.markers if model.items[m.run].path == "route")
    assert route.text.startswith("routed → page-on-call")
    mocked = pane.bar_point("page-on-call")
    assert mocked is not None
    assert near(pixel(pane, mocked), timeline_style().bars[COLOR_INDEX["mocked"]].color())
    assert "answered by mock" in pane.hover_text(mocked)


def test_clicking_a_bar_selects_the_step_run(qloop, qtbot, pane, hub, service) -> None:  # type: ignore[no-untyped-def]
    execution = run(qloop, service, "score-users", USERS)
    qloop.run_until_complete(pane.load(execution))
    model = pane.model
    assert model is not None
    row = model.items[model.run_index("fan-in")]
    point = pane.bar_point("fan-in")
    assert point is not None
    with qtbot.waitSignal(hub.stepRunSelected, timeout=2000) as signal:
        qtbot.mouseClick(pane.plot.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert signal.args == [execution, "fan-in", row.seq]
    assert pane.selected_run() is not None and pane.selected_run().seq == row.seq

    # a sub-step of the second iteration
    second = next(item for item in model.items
                  if getattr(item, "path", "") == "fan-out/enrich/score" and item.iteration == 1)
    point = pane.bar_point(second.path, second.seq)
    with qtbot.waitSignal(hub.stepRunSelected, timeout=2000) as signal:
        qtbot.mouseClick(pane.plot.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert signal.args == [execution, "fan-out/enrich/score", second.seq]


def test_selection_from_elsewhere_unfolds_and_scrolls(qloop, pane, hub, pipelines) -> None:  # type: ignore[no-untyped-def]
    execution = run(qloop, pipelines, "many", {"items": list(range(250))})
    qloop.run_until_complete(pane.load(execution))
    model = pane.model
    assert model is not None
    target = next(item for item in model.items
                  if getattr(item, "path", "") == "each/work" and item.iteration == 180)
    assert pane.bar_point(target.path, target.seq) is not None  # drawn folded in its group's row
    layout = pane.state.layout
    assert layout is not None and layout.bar_kind[model.by_seq[target.seq]] == 2  # FOLDED

    hub.select_step_run(execution, target.path, target.seq)
    assert pane.selected_run() is not None and pane.selected_run().seq == target.seq
    layout = pane.state.layout
    assert layout is not None and layout.bar_kind[model.by_seq[target.seq]] == 0  # its own lane now
    lane = next(lane for lane in pane.lanes() if lane.kind == "iteration" and lane.iteration == 180)
    assert lane.row >= 0
    assert pane.bar_point(target.path, target.seq) is not None  # scrolled into view

    # a selection for an execution not shown yet is applied when it loads
    other = run(qloop, pipelines, "stops")
    hub.select_step_run(other, "b", 0)
    qloop.run_until_complete(pane.load(other))
    assert pane.selected_run() is not None and pane.selected_run().path == "b"


def test_live_bars_appear_before_the_end(qloop, pane, pipelines) -> None:  # type: ignore[no-untyped-def]
    execution = run(qloop, pipelines, "slow", wait=False)
    qloop.run_until_complete(pane.load(execution))
    model = pane.model
    assert model is not None and model.running and pane.following

    def finished_some() -> bool:
        current = pane.model
        return current is not None and any(
            getattr(item, "path", "") == "each/wait" and item.status == "completed" for item in current.items)

    wait_until(qloop, finished_some)
    status = qloop.run_until_complete(pipelines.get_execution(execution)).status
    assert status == "running"  # seen while it still runs
    assert any(lane.kind == "iteration" for lane in pane.lanes())
    assert "live" in pane.title.text()

    wait_until(qloop, lambda: pane.model is not None and not pane.model.running and not pane.following
               and not pane.loading)
    assert pane.model.bar_count == 4
    assert pane.model.execution.status == "completed"
    assert sorted(lane.iteration for lane in pane.lanes() if lane.kind == "iteration") == [0, 1, 2]


def test_pause_and_context_edit_are_shown(qloop, pane, pipelines) -> None:  # type: ignore[no-untyped-def]
    qloop.run_until_complete(pipelines.set_breakpoint("stops", "b"))
    execution = run(qloop, pipelines, "stops", wait=False)

    async def paused() -> bool:
        return any(p.execution_id == execution for p in await pipelines.paused())

    wait_until(qloop, paused)
    qloop.run_until_complete(pane.load(execution))
    model = pane.model
    assert model is not None
    spans = [item for item in model.items if type(item).__name__ == "PauseSpan"]
    assert len(spans) == 1 and spans[0].ended_at is None and spans[0].path == "b"
    assert pane.following

    qloop.run_until_complete(pipelines.resume(execution, "continue",
                                              patch=[{"op": "add", "path": "/current/x", "value": 5}]))
    wait_until(qloop, lambda: pane.model is not None and not pane.model.running and not pane.following
               and not pane.loading)
    model = pane.model
    assert model is not None
    kinds = sorted(MARKER_KINDS[m.kind] for m in model.markers)
    assert kinds == ["edit", "pause"]
    edit = next(m for m in model.markers if MARKER_KINDS[m.kind] == "edit")
    assert "add /current/x" in edit.text
    span = next(item for item in model.items if type(item).__name__ == "PauseSpan")
    assert span.ended_at is not None and span.action == "continue"
    assert model.nodes[int(model.node[model.items.index(span)])].path == "b"  # on b's lane
    index = model.items.index(span)
    pane.zoom_to_fit()
    layout = pane.state.layout
    assert layout is not None
    middle = QPointF(float(model.start[index] + model.end[index]) / 2, float(layout.bar_row[index]))
    tip = pane.hover_text(pane.plot.mapFromScene(pane.vb.mapViewToScene(middle)))
    assert "paused at b" in tip and "resumed: continue" in tip, tip


def test_unknown_execution_is_a_message(qloop, pane) -> None:  # type: ignore[no-untyped-def]
    qloop.run_until_complete(pane.load("no-such-execution"))
    assert pane.model is None
    assert not pane.message.isHidden() and "no-such-execution" in pane.message.text()


def test_loading_another_execution_stops_following(qloop, pane, pipelines) -> None:  # type: ignore[no-untyped-def]
    slow = run(qloop, pipelines, "slow", wait=False)
    qloop.run_until_complete(pane.load(slow))
    assert pane.following
    done = run(qloop, pipelines, "stops")
    qloop.run_until_complete(pane.load(done))
    assert not pane.following and pane.execution_id == done
    pane.follow_live(False)
    qloop.run_until_complete(pane.load(slow))
    assert not pane.following  # follow is off: a snapshot
    pane.follow_live(True)
    assert pane.following
    pane.close()
    assert not pane.following

    async def ended() -> bool:
        return (await pipelines.get_execution(slow)).status != "running"

    wait_until(qloop, ended)


def test_theme_switch_repaints_in_the_new_colours(qloop, qapp, pane, pipelines) -> None:  # type: ignore[no-untyped-def]
    from app import theme

    execution = run(qloop, pipelines, "broken")
    qloop.run_until_complete(pane.load(execution))
    failed = pane.bar_point("boom")
    assert failed is not None
    light = pixel(pane, failed)
    try:
        theme.apply("dark", qapp)
        qapp.processEvents()
        dark = timeline_style()
        assert dark.dark
        assert near(pixel(pane, failed), dark.bars[COLOR_INDEX["failed"]].color())
        assert not near(pixel(pane, failed), light, tolerance=4)
        assert pane.plot.backgroundBrush().color() == dark.base
    finally:
        theme.apply("light", qapp)


def test_an_execution_in_the_old_event_shape_draws_the_same(qloop, pane, service, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Stores of 0.1.0 and earlier hold step.input / step.output events of their own."""
    qloop.run_until_complete(service.set_mock("triage", "page-on-call", output={"handled_by": "mock"}))
    shown = []
    for legacy in (False, True):
        execution = run(qloop, service, "triage", {"id": "T-1", "severity": 9, "product": "billing"})
        if legacy:
            written = rewrite_as_legacy(f"sqlite:///{tmp_path / 'store.db'}", execution)
            assert "step.output" in {kind for _s, kind, _d, _t in written}
        qloop.run_until_complete(pane.load(execution))
        model = pane.model
        assert model is not None
        runs = [(getattr(i, "path", ""), getattr(i, "status", ""), getattr(i, "flags", []))
                for i in model.items]
        markers = sorted((MARKER_KINDS[m.kind], model.items[m.run].path, m.text) for m in model.markers)
        shown.append((runs, markers, [(n.kind, n.label, n.runs) for n in model.nodes]))
    assert shown[1] == shown[0]
    assert [k for k, _p, _t in shown[1][1]] == ["mock", "route", "route"]
