"""The graph's automatic layout (plain Python): placement, composites, lanes, drop positions."""

from __future__ import annotations

import itertools
from pathlib import Path

from app.editor.graph.catalog import TypeCatalog, ref_slots
from app.editor.graph.layout import START, V_GAP, Box, layout_pipeline
from app.editor.outline import FALLBACK_SHAPES, parse_outline

WORKSPACE = Path(__file__).resolve().parents[2] / "resources" / "workspace"


def _pipeline(name: str, pipeline: str):  # type: ignore[no-untyped-def]
    return parse_outline((WORKSPACE / name).read_text(), FALLBACK_SHAPES).pipelines[pipeline]


def _inside(inner: Box, outer: Box) -> bool:
    return (
        outer.x < inner.x and inner.right < outer.right and outer.y < inner.y and inner.bottom < outer.bottom
    )


def test_routing_places_every_step_top_down_in_list_order():
    p = _pipeline("routing.yaml", "triage")
    lay = layout_pipeline(p, FALLBACK_SHAPES)
    assert set(lay.boxes) == set(p.nodes) | {START}
    tops = [lay.boxes[s.id].y for s in p.steps]
    assert tops == sorted(tops) and len(set(tops)) == len(tops)
    assert lay.boxes[START].bottom < lay.boxes["classify"].y
    queue = lay.boxes["queue"]
    for child in ("queue/billing-queue", "queue/platform-queue", "queue/general-queue"):
        assert _inside(lay.boxes[child], queue)
    arms = [s for s in lay.slots if s.owner == "queue"]
    assert [(s.slot, s.label) for s in arms] == [
        ("branches.billing", "billing"),
        ("branches.platform", "platform"),
        ("default", "default"),
    ]
    assert arms[0].list_path == ("pipelines", "triage", "steps", 5, "config", "branches", "billing")


def test_routes_and_jumps_run_in_separate_lanes_left_of_the_nodes():
    p = _pipeline("routing.yaml", "triage")
    lay = layout_pipeline(p, FALLBACK_SHAPES)
    lanes = {(e.source, e.target, e.kind, e.label): e for e in lay.edges if e.kind in ("route", "jump")}
    assert set(lanes) == {
        ("route", "page-on-call", "route", "urgent"),
        ("route", "queue", "route", "normal"),
        ("route", "auto-reply", "route", "default"),
        ("done-urgent", "reply", "route", "then"),
        ("queue", "reply", "jump", "merge_step"),
    }
    xs = {key: e.points[1][0] for key, e in lanes.items()}
    left = min(b.x for k, b in lay.boxes.items() if k != START)
    assert all(x < left for x in xs.values())
    # spans that overlap never share a lane
    assert xs[("route", "auto-reply", "route", "default")] != xs[("route", "queue", "route", "normal")]
    assert xs[("done-urgent", "reply", "route", "then")] != xs[("queue", "reply", "jump", "merge_step")]
    # each ends on its target's left side
    for (_, target, _, _), edge in lanes.items():
        assert edge.points[-1][0] == lay.boxes[target].x
    branch = {(e.target, e.label) for e in lay.edges if e.kind == "branch"}
    assert branch == {
        ("queue/billing-queue", "billing"),
        ("queue/platform-queue", "platform"),
        ("queue/general-queue", "default"),
    }


def test_collapsed_composite_hides_its_steps_and_keeps_edges_to_it():
    p = _pipeline("routing.yaml", "triage")
    lay = layout_pipeline(p, FALLBACK_SHAPES, collapsed={"queue"})
    assert "queue/billing-queue" not in lay.boxes
    assert lay.groups["queue"] is True
    assert lay.boxes["queue"].h == lay.boxes["reply"].h
    assert not [s for s in lay.slots if s.owner == "queue"]
    assert any(e.source == "queue" and e.label == "merge_step" for e in lay.edges)


def test_nested_composites_and_compensation():
    fan = layout_pipeline(_pipeline("fanout.yaml", "score-users"), FALLBACK_SHAPES)
    assert _inside(fan.boxes["fan-out/enrich"], fan.boxes["fan-out"])
    assert _inside(fan.boxes["fan-out/enrich/score"], fan.boxes["fan-out/enrich"])
    assert fan.depth["fan-out/enrich/score"] == 2
    orders = layout_pipeline(_pipeline("orders.yaml", "create-order"), FALLBACK_SHAPES)
    store, undo = orders.boxes["store"], orders.boxes["store/unstore"]
    assert undo.x > store.right and store.y <= undo.y and undo.bottom <= store.bottom
    assert [e.kind for e in orders.edges if e.target == "store/unstore"] == ["compensate"]


def test_insertion_between_nodes_into_arms_and_at_the_ends():
    p = _pipeline("routing.yaml", "triage")
    lay = layout_pipeline(p, FALLBACK_SHAPES)
    classify, route = lay.boxes["classify"], lay.boxes["route"]
    gap = lay.insertion_at(classify.cx, (classify.bottom + route.y) / 2)
    assert gap is not None and gap.slot.list_path == ("pipelines", "triage", "steps") and gap.index == 1
    assert classify.bottom < gap.y < route.y
    top = lay.insertion_at(classify.cx, classify.y - V_GAP)
    assert top is not None and top.index == 0
    bottom = lay.insertion_at(classify.cx, lay.boxes["reply"].bottom + 200)
    assert bottom is not None and bottom.index == 8
    billing = lay.boxes["queue/billing-queue"]
    arm = lay.insertion_at(billing.cx, billing.bottom + 4)
    assert arm is not None and arm.slot.slot == "branches.billing" and arm.index == 1
    header = lay.boxes["queue"]
    outer = lay.insertion_at(header.x + 30, header.y + 10)  # the header belongs to the outer list
    assert outer is not None and outer.slot.owner is None and outer.index == 5


def test_empty_composite_gets_a_drop_slot():
    text = """pipelines:
  p:
    steps:
      - {name: loop, type: step.foreach, config: {collection: "{{ .items }}"}}
"""
    p = parse_outline(text, FALLBACK_SHAPES).pipelines["p"]
    lay = layout_pipeline(p, FALLBACK_SHAPES)
    body = next(s for s in lay.slots if s.owner == "loop")
    assert body.children == () and body.list_path == ("pipelines", "p", "steps", 0, "config", "steps")
    ins = lay.insertion_at(body.column.cx, body.column.cy)
    assert ins is not None and ins.slot == body and ins.index == 0


def test_big_pipeline_columns_do_not_overlap():
    steps = "\n".join(f"      - {{name: s{i}, type: step.set}}" for i in range(300))
    p = parse_outline(f"pipelines:\n  p:\n    steps:\n{steps}\n", FALLBACK_SHAPES).pipelines["p"]
    lay = layout_pipeline(p, FALLBACK_SHAPES)
    boxes = [lay.boxes[f"s{i}"] for i in range(300)]
    assert all(a.bottom < b.y for a, b in itertools.pairwise(boxes))
    assert len([e for e in lay.edges if e.kind == "next"]) == 299


def test_ref_slots_and_new_steps_from_the_catalog():
    p = _pipeline("routing.yaml", "triage")
    slots = ref_slots(p.nodes["route"], FALLBACK_SHAPES["step.conditional"].step_refs)
    found = {(s.config_path, s.label, s.value) for s in slots}
    assert (("routes", "urgent"), "urgent", "page-on-call") in found
    assert (("default",), "default", "auto-reply") in found
    assert (("then",), "then", None) in found  # not set yet: offered for wiring
    step = TypeCatalog().new_step("step.http_call", ["x"])
    assert step == {"name": "http-call", "type": "step.http_call"}


def test_the_outline_reads_values_and_references_as_the_engine_does():
    # YAML 1.2 scalars, keys as their text and list-valued references: one rule for both sides.
    from engine.config.yamlpos import parse_yaml

    text = ("pipelines:\n  p:\n    trigger: {type: manual, ok: TRUE, n: 0x1F, big: 1_000, off: .inf}\n"
            "    steps:\n"
            "      - {name: route, type: step.conditional,\n"
            "         config: {routes: {a: [one, two], true: one}, default: NULL}}\n"
            "      - {name: one, type: step.set, config: {values: {x: 010, y: 1:20, z: +.5}}}\n"
            "      - {name: two, type: step.set, config: {}}\n")
    engine = parse_yaml(text, "p.yaml")
    assert not engine.diagnostics
    want = engine.value["pipelines"]["p"]
    p = parse_outline(text, FALLBACK_SHAPES).pipelines["p"]
    assert p.trigger == want["trigger"]
    assert [n.value for n in p.steps] == want["steps"]
    routes = sorted((e.label, p.nodes[e.target].name) for e in p.edges if e.kind == "route")
    assert routes == [("a", "one"), ("a", "two"), ("true", "one")]
    slots = ref_slots(p.nodes["route"], FALLBACK_SHAPES["step.conditional"].step_refs)
    assert [(s.config_path, s.value) for s in slots][:3] == [
        (("routes", "a", 0), "one"), (("routes", "a", 1), "two"), (("routes", "true"), "one")]
