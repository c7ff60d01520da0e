"""Expressions (pipeline-format.md §3): type preservation, interpolation, fast lane, prelude, truthiness."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import ExpressionError
from engine.expressions import (
    check_program,
    check_template,
    compile_condition,
    compile_value,
    evaluate,
    split_template,
    truthy,
)
from engine.format.templates import has_template

VARS: dict[str, Any] = {
    "qty": 3,
    "name": "ada",
    "tags": ["a", "b"],
    "missing": None,
    "steps": {"get-user": {"row": {"id": 7, "email": "ada@example.com"}}},
    "trigger": {"body": {"id": "t-1"}},
    "meta": {"execution_id": "e-1"},
}


def render(template: Any) -> Any:
    return compile_value(template).render(VARS)


@pytest.mark.parametrize(("template", "expected"), [
    ("{{ .qty * 2 }}", 6),
    ("{{ .qty > 1 }}", True),
    ("{{ .tags }}", ["a", "b"]),
    ("{{ {n: .name} }}", {"n": "ada"}),
    ("{{ .missing }}", None),
    ("{{ .steps.get-user.row }}", {"id": 7, "email": "ada@example.com"}),
    ("{{ .steps.get-user.row.id }}", 7),
    ("{{ .trigger.body.id }}", "t-1"),
    ("{{ .meta.execution_id }}", "e-1"),
    ("{{ .tags[] }}", ["a", "b"]),  # several results become a list
    ("{{ empty }}", None),  # none becomes null
    ("{{ .nope.deeper }}", None),
])
def test_a_single_block_keeps_its_json_type(template: str, expected: Any) -> None:
    assert render(template) == expected


@pytest.mark.parametrize(("template", "expected"), [
    ("qty={{ .qty }}", "qty=3"),
    ("{{ .name }}-{{ .qty }}", "ada-3"),
    ("tags: {{ .tags }}", 'tags: ["a","b"]'),
    ("[{{ .missing }}]", "[]"),
    ("{{ {a: {b: 1}} }} end", '{"a":{"b":1}} end'),
    ("braces in strings {{ \"}}\" }}", "braces in strings }}"),
])
def test_text_around_blocks_interpolates(template: str, expected: str) -> None:
    assert render(template) == expected


def test_structures_resolve_recursively_and_constants_pass_unchanged() -> None:
    config = {"a": ["{{ .qty }}", 2, True, None], "b": {"c": "x {{ .name }}"}, "d": 1.5}
    assert render(config) == {"a": [3, 2, True, None], "b": {"c": "x ada"}, "d": 1.5}
    constant = {"k": [1, "two"]}
    assert compile_value(constant).render(VARS) is constant  # no copying on the hot path


def test_hyphenated_paths_never_reach_jq() -> None:
    # As jq, ".steps.get-user" would be a subtraction and fail; the fast lane reads the path.
    assert evaluate(".steps.get-user.row.email", VARS) == "ada@example.com"
    with pytest.raises(ExpressionError, match=r"\.id is applied to a string"):
        evaluate(".name.id", VARS)


def test_prelude_helpers() -> None:
    assert render("{{ .name | upper }}") == "ADA"
    assert render("{{ \"ABC\" | lower }}") == "abc"
    assert render("{{ .missing | default(5) }}") == 5
    uid = render("{{ uuid }}")
    assert re.fullmatch(r"[0-9a-f-]{36}", uid)
    assert render("{{ uuid }}") != uid
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", render("{{ now_iso }}"))


def test_syntax_errors_are_reported_with_a_column() -> None:
    message = check_template("total: {{ .qty + }}")
    assert message is not None and "syntax error" in message and "column" in message
    assert check_template("{{ .qty") == "unterminated '{{' at character 1 in '{{ .qty'"
    assert check_program("map(") is not None
    assert check_program(".steps.get-user.row") is None
    assert check_template("no templates here") is None
    with pytest.raises(ExpressionError, match="jq syntax error"):
        compile_value("{{ .a | | }}")


def test_runtime_errors_are_expression_errors() -> None:
    with pytest.raises(ExpressionError, match="cannot be parsed as a number"):
        render("{{ .name | tonumber }}")


@pytest.mark.parametrize("value", [None, False, 0, 0.0, "", [], {}, "false", "FALSE", "0",
                                   "no", "Off", " off "])
def test_falsy_values(value: Any) -> None:
    assert truthy(value) is False


@pytest.mark.parametrize("value", [True, 1, -1, 0.5, "x", "true", "yes", [0], {"a": None}, "00"])
def test_truthy_values(value: Any) -> None:
    assert truthy(value) is True


def test_conditions_take_templates_or_bare_programs() -> None:
    assert compile_condition("{{ .qty > 2 }}").render(VARS) is True
    assert compile_condition(".qty > 5").render(VARS) is False
    assert compile_condition(".name").render(VARS) == "ada"


def test_has_template() -> None:
    assert has_template({"a": [1, {"b": "x {{ .y }}"}]})
    assert not has_template({"a": [1, {"b": "x { y }"}]})


# ---------------------------------------------------------------- properties

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False,
                                                                         allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                      children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_template_text_compiles_or_raises_expression_error(text: str) -> None:
    try:
        compiled = compile_value(text)
    except ExpressionError:
        assert check_template(text) is not None
        return
    assert check_template(text) is None
    try:
        result = compiled.render(VARS)
    except ExpressionError:
        return
    if "{{" not in text:
        assert result == text


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_values_without_templates_render_to_themselves(value: Any) -> None:
    if has_template(value):
        return
    assert compile_value(value).render(VARS) == value


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_a_path_block_returns_the_value_with_its_type(value: Any) -> None:
    assert compile_value("{{ .v }}").render({"v": value}) == value
    assert compile_value("{{ .v | . }}").render({"v": value}) == json.loads(json.dumps(value))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="ab{} .|\"", max_size=12), max_size=5))
def test_splitting_never_loses_text(pieces: list[str]) -> None:
    text = "".join(pieces)
    try:
        parts = split_template(text)
    except ExpressionError:
        return
    rebuilt = "".join(p if not is_program else "{{" + p + "}}" for is_program, p in parts)
    assert rebuilt == text
