"""engine.format: the format's rules the engine and the studio share, and that they stay light."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.config.yamlpos import parse_yaml
from engine.format import json_types, step_refs, templates, yaml12

# ---------------------------------------------------------------- YAML 1.2 scalars

SCALARS: list[tuple[str, Any]] = [
    ("true", True), ("False", False), ("TRUE", True), ("tRUE", "tRUE"),
    ("yes", "yes"), ("no", "no"), ("on", "on"), ("off", "off"), ("y", "y"),
    ("null", None), ("Null", None), ("~", None), ("nil", "nil"),
    ("010", 10), ("-7", -7), ("+3", 3), ("0o17", 15), ("0x1F", 31), ("0b101", "0b101"),
    ("1_000", "1_000"), ("1:20", "1:20"), ("2024-01-02", "2024-01-02"),
    ("1.5", 1.5), (".5", 0.5), ("1e3", 1000.0), ("-1.5E-2", -0.015), ("1.", 1.0),
    (".inf", math.inf), ("-.Inf", -math.inf), ("+.INF", math.inf),
    ("order-1", "order-1"), ("1.2.3", "1.2.3"), ("0x", "0x"),
]


@pytest.mark.parametrize(("text", "expected"), SCALARS)
def test_plain_scalars_follow_the_core_schema(text: str, expected: Any) -> None:
    value = yaml12.plain_value(text)
    assert value == expected and type(value) is type(expected)


def test_nan_is_a_float() -> None:
    assert yaml12.resolve(".nan") == "float" and math.isnan(yaml12.plain_value(".NaN"))
    assert yaml12.resolve("") == "null" and yaml12.resolve("nan") == "str"


@pytest.mark.parametrize(("text", "expected"), SCALARS)
def test_the_studio_loader_and_the_engine_reader_agree(text: str, expected: Any) -> None:
    document = f"v: {text}\nq: '{text}'\n"
    engine = parse_yaml(document, "x.yaml").value
    studio = yaml12.load(document)
    assert engine == studio == {"v": expected, "q": text}
    assert type(engine["v"]) is type(studio["v"])


# Plain-scalar-ish text: digits, signs, dots, letters the resolvers look at.
_scalar_text = st.text(alphabet="0123456789+-._eExXoObB:inftaulsNT~", min_size=1, max_size=8)


@settings(max_examples=400, deadline=None)
@given(_scalar_text)
def test_any_plain_scalar_reads_the_same_on_both_sides(text: str) -> None:
    engine = parse_yaml(f"v: {text}\n", "x.yaml")
    try:
        studio = yaml12.load(f"v: {text}\n")
    except Exception:  # not a plain scalar at all (a YAML syntax error): the engine refuses too
        assert engine.diagnostics
        return
    if engine.diagnostics:  # e.g. "<<" alone, which the engine reads as a merge key
        return
    got, want = engine.value["v"], studio["v"]
    assert type(got) is type(want)
    assert got == want or (isinstance(got, float) and math.isnan(got) and math.isnan(want))
    assert yaml12.plain_value(text) == got or (isinstance(got, float) and math.isnan(got))


# ---------------------------------------------------------------- templates


def test_blocks_end_at_the_first_closing_pair_outside_strings_and_braces() -> None:
    text = 'Hi {{ {a: {b: 1}} }} and {{ "}}" + .x }}!'
    assert templates.split(text) == [
        (False, "Hi ", 0), (True, " {a: {b: 1}} ", 5), (False, " and ", 20),
        (True, ' "}}" + .x ', 27), (False, "!", 40)]
    assert templates.split('{{ "a\\"}}" }}') == [(True, ' "a\\"}}" ', 2)]
    assert templates.split("plain") == [(False, "plain", 0)]
    assert templates.split("") == []


def test_an_unclosed_block_says_where_it_opened() -> None:
    with pytest.raises(templates.UnclosedBlock) as caught:
        templates.split("ok {{ .a }} then {{ .qty")
    assert caught.value.start == 17
    assert str(caught.value) == "'{{' at character 18 is never closed with '}}'"


def test_lookups_are_plain_dotted_paths() -> None:
    assert templates.is_lookup(" .steps.get-user.row ") and templates.is_lookup(".")
    assert not templates.is_lookup(".a | length") and not templates.is_lookup(".a[0]")
    assert templates.LOOKUP.match(".steps.get-user").group(1) == "steps.get-user"  # type: ignore[union-attr]


def test_template_detection() -> None:
    assert templates.is_template("x {{ .y }}") and not templates.is_template({"a": "{{ .y }}"})
    assert templates.has_template({"a": [1, {"b": "x {{ .y }}"}]})
    assert not templates.has_template({"a": [1, {"b": "x { y }"}]})


def test_jq_messages_count_columns_from_the_users_program() -> None:
    raw = ("jq: error: syntax error, unexpected INVALID_CHARACTER at <top-level>, line 1, column 40:\n"
           "jq: 1 compile error")
    assert templates.jq_message(raw, 30) == "syntax error, unexpected INVALID_CHARACTER at column 10"
    assert templates.jq_message(raw, 50).endswith("at column 1")
    assert templates.jq_message("  ") == "invalid program"


# ---------------------------------------------------------------- step references

CONFIG = {"routes": {"a": "first", "b": ["x", 2, "y"], "c": None}, "default": "last",
          "merge_step": None, "items": [{"to": "p"}, {"to": "q"}]}


def test_reference_paths_name_every_target_as_the_engine_reads_them() -> None:
    assert list(step_refs.find_paths(CONFIG, "routes.*")) == [
        (("routes", "a"), "first"), (("routes", "b", 0), "x"), (("routes", "b", 2), "y")]
    assert list(step_refs.find_paths(CONFIG, "default")) == [(("default",), "last")]
    assert list(step_refs.find_paths(CONFIG, "merge_step")) == []  # null names nothing
    assert list(step_refs.find_paths(CONFIG, "items.*.to")) == [(("items", 0, "to"), "p"),
                                                                (("items", 1, "to"), "q")]
    assert list(step_refs.find_paths(CONFIG, "missing.*")) == []
    assert list(step_refs.find_paths("not a mapping", "default")) == []


def test_reference_labels() -> None:
    assert step_refs.label("routes.*", ("routes", "a")) == "a"
    assert step_refs.label("routes.*", ("routes", "b", 2)) == "b"
    assert step_refs.label("default", ("default",)) == "default"
    assert step_refs.label("then.target", ("then", "target")) == "then"


# ---------------------------------------------------------------- type names


@pytest.mark.parametrize(("value", "schema", "plain"), [
    (None, "null", "null"), (True, "boolean", "boolean"), (3, "integer", "number"),
    (2.5, "number", "number"), ("s", "string", "string"), ([1], "array", "array"),
    ((1,), "tuple", "array"), ({"a": 1}, "object", "object"), (b"x", "bytes", "bytes"),
])
def test_type_names(value: Any, schema: str, plain: str) -> None:
    assert json_types.schema_type(value) == schema
    assert json_types.value_type(value) == plain


# ---------------------------------------------------------------- light to import


def test_importing_the_rules_loads_nothing_heavy() -> None:
    code = ("import sys; import engine.format.yaml12, engine.format.templates, "
            "engine.format.step_refs, engine.format.json_types; "
            "heavy = ('sqlalchemy', 'jq', 'fastapi', 'PySide6', 'jsonschema', 'engine.config', "
            "'engine.service', 'engine.expressions'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          timeout=120)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
