"""app.editor.step_rules without Qt: unique step names and what a rename rewrites."""

from __future__ import annotations

import pytest
from ruamel.yaml.comments import CommentedMap

from app.editor import step_rules, yaml_edit
from app.editor.outline import FALLBACK_SHAPES, PipelineOutline, parse_outline
from app.editor.step_rules import EditError

TEXT = """\
pipelines:
  tickets:
    steps:
      - name: classify
        type: step.set
        config: {values: {level: "{{ .severity }}"}}
      - name: route
        type: step.conditional
        config:
          routes: {urgent: page, normal: queue}
          default: page
      - name: page
        type: step.log
        config: {message: "{{ .steps.classify.level }} {{ .steps[\\"classify\\"].level }} {{ .steps.classify2 }}"}
      - name: fan
        type: step.foreach
        config:
          steps:
            - {name: classify, type: step.set, config: {values: {}}}
            - {name: pick, type: step.conditional, config: {then: classify}}
      - name: queue
        type: step.log
        config: {message: "{{ .steps.page.output }}"}
  other:
    steps:
      - {name: elsewhere, type: step.log, config: {message: "{{ .steps.classify.level }}"}}
"""
STEPS = ("pipelines", "tickets", "steps")


def tree_of(text: str) -> CommentedMap:
    return yaml_edit.load_tree(yaml_edit.make_yaml(text), text)


def pipeline_of(text: str, name: str = "tickets") -> PipelineOutline:
    return parse_outline(text, FALLBACK_SHAPES).pipelines[name]


def test_unique_names_number_the_stem() -> None:
    assert step_rules.unique_name("fetch", {"score"}) == "fetch"
    assert step_rules.unique_name("fetch", {"fetch"}) == "fetch-2"
    assert step_rules.unique_name("fetch", {"fetch", "fetch-2", "fetch-3"}) == "fetch-4"
    assert step_rules.unique_name("fetch-2", {"fetch-2"}) == "fetch-3"  # not fetch-2-2
    assert step_rules.unique_name("-7", {"-7"}) == "-7-2"  # no stem left: the whole name is one


def test_default_names_come_from_the_type() -> None:
    assert step_rules.default_name({"type": "http.request"}) == "request"
    assert step_rules.default_name({"type": "plugin.send email"}) == "send-email"
    assert step_rules.default_name({}) == "step"
    assert step_rules.default_name({"type": "x.!!"}) == "step"


def test_step_names_are_the_pipelines_own_sub_steps_included() -> None:
    tree = tree_of(TEXT)
    assert step_rules.step_names(tree, STEPS) == {"classify", "route", "page", "fan", "pick", "queue"}
    nested = (*STEPS, 3, "config", "steps")  # a sub-step list still counts the whole pipeline
    assert step_rules.step_names(tree, nested) == step_rules.step_names(tree, STEPS)
    assert step_rules.step_names(tree, ("pipelines", "other", "steps")) == {"elsewhere"}


def test_step_at_says_what_is_wrong() -> None:
    tree = tree_of(TEXT)
    assert step_rules.step_name_at(tree, (*STEPS, 1)) == "route"
    with pytest.raises(EditError, match=r"no step at pipelines\.tickets\.steps\[9\] any more"):
        step_rules.step_at(tree, (*STEPS, 9))
    with pytest.raises(EditError, match=r"pipelines\.tickets\.steps\[1\]\.config is not a step"):
        step_rules.step_at(tree, (*STEPS, 1, "config"))


def test_renaming_rewrites_references_that_reach_the_step_and_templates_reading_it() -> None:
    tree, pipeline = tree_of(TEXT), pipeline_of(TEXT)
    target = step_rules.node_by_path(pipeline, (*STEPS, 0))
    assert target is not None and target.name == "classify"
    changes = step_rules.reference_changes(tree, FALLBACK_SHAPES, pipeline, target, "classify", "grade")
    page_message = (*STEPS, 2, "config", "message")
    assert changes == {
        page_message: '{{ .steps.grade.level }} {{ .steps["grade"].level }} {{ .steps.classify2 }}',
    }  # fan/pick's `then: classify` names its sibling, not the top-level step; `other` is another pipeline


def test_renaming_a_routed_step_rewrites_the_routes_and_default() -> None:
    tree, pipeline = tree_of(TEXT), pipeline_of(TEXT)
    target = step_rules.node_by_path(pipeline, (*STEPS, 2))
    assert target is not None
    changes = step_rules.reference_changes(tree, FALLBACK_SHAPES, pipeline, target, "page", "page-on-call")
    config = (*STEPS, 1, "config")
    assert changes == {
        (*config, "routes", "urgent"): "page-on-call",
        (*config, "default"): "page-on-call",
        (*STEPS, 4, "config", "message"): '{{ .steps["page-on-call"].output }}',  # not an identifier
    }


def test_renaming_a_sub_step_follows_its_siblings_references_only() -> None:
    tree, pipeline = tree_of(TEXT), pipeline_of(TEXT)
    target = step_rules.node_by_path(pipeline, (*STEPS, 3, "config", "steps", 0))
    assert target is not None
    changes = step_rules.reference_changes(tree, FALLBACK_SHAPES, pipeline, target, "classify", "grade")
    assert changes[(*STEPS, 3, "config", "steps", 1, "config", "then")] == "grade"
    assert (*STEPS, 1, "config", "default") not in changes


def test_path_text() -> None:
    assert step_rules.path_text(("pipelines", "a", "steps", 2, "config")) == "pipelines.a.steps[2].config"
