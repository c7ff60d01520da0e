"""``engine.json_input``: the one rule for JSON the engine is given from outside. The fast
path (orjson) and the exact path (the standard library) give the same value or the same
refusal; integers stay exact; the limits sit exactly where they are documented."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.json_input import MAX_DEPTH, JsonInputError, _strict, loads

NO_SURROGATES = st.characters(exclude_categories=("Cs",))
SCALARS = (st.none() | st.booleans() | st.integers(-(10**60), 10**60)
           | st.text(NO_SURROGATES, max_size=20) | st.floats(allow_nan=False, allow_infinity=False))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(NO_SURROGATES, max_size=8), inner, max_size=4),
                      max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(VALUES, st.booleans())
def test_both_paths_read_any_valid_value_exactly(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert loads(text) == value == loads(text.encode()) == _strict(text, None)
    assert json.dumps(loads(text)) == json.dumps(value)  # types too (an int stays an int)


@pytest.mark.parametrize("number", [2**63, -(2**63) - 1, 2**64, 10**40 + 1, -(10**100), 10**4299])
def test_integers_beyond_64_bits_stay_exact(number: int) -> None:
    value = loads(f'{{"n": {number}}}'.encode())
    assert type(value["n"]) is int and value["n"] == number


def _nest(depth: int) -> str:
    return '{"a": ' * (depth - 1) + "[]" + "}" * (depth - 1)


def test_depth_is_limited_at_max_depth() -> None:
    assert loads(_nest(MAX_DEPTH)) is not None
    with pytest.raises(JsonInputError) as refused:
        loads(_nest(MAX_DEPTH + 1))
    assert refused.value.rule == "depth"
    assert refused.value.position == f"line 1 column {6 * MAX_DEPTH + 1}"  # the 201st opening


@pytest.mark.parametrize(("text", "rule", "position"), [
    ('{"s": "\\ud800"}', "surrogate", "line 1 column 8"),
    ('{"s": "ok \\udc00 x"}', "surrogate", "line 1 column 11"),
    ('["\\ud83d\\ude00", "\\udfff"]', "surrogate", "line 1 column 19"),
    ('{"x":\n NaN}', "number", "line 2 column 2"),
    ("[1e400]", "number", "line 1 column 2"),
    ('{"a": 1,}', "syntax", "line 1 column 9"),
    ("7" * 4301, "number", "line 1 column 1"),
])
def test_refusals_name_the_rule_and_the_position(text: str, rule: str, position: str) -> None:
    for data in (text, text.encode()):
        with pytest.raises(JsonInputError) as refused:
            loads(data)
        assert (refused.value.rule, refused.value.position) == (rule, position), str(refused.value)
        assert position in str(refused.value)


def test_surrogate_pairs_and_escaped_backslashes_are_fine() -> None:
    assert loads('"\\ud83d\\ude00"') == "\U0001f600"
    assert loads('"\\\\ud800"') == "\\ud800"  # a backslash, then the text "ud800"


def test_bytes_that_are_not_utf8_are_refused_with_their_place() -> None:
    with pytest.raises(JsonInputError) as refused:
        loads(b'{"a":\n "x\xff"}')
    assert refused.value.rule == "utf-8" and refused.value.position == "line 2 column 4"


def test_a_line_of_a_larger_text_is_named() -> None:
    with pytest.raises(JsonInputError) as refused:
        loads('{"x": NaN}', line=7)
    assert refused.value.position == "line 7 column 7"
    with pytest.raises(JsonInputError, match=r"nested more than 200 levels deep at line 7 column"):
        loads("[" * 1000 + "]" * 1000, line=7)


def test_many_brackets_in_strings_or_shallow_arrays_are_fine() -> None:
    assert loads(json.dumps({"s": "[" * 5000})) == {"s": "[" * 5000}
    assert len(loads(json.dumps([[i] for i in range(5000)]))) == 5000


def test_brackets_inside_strings_cannot_hide_depth() -> None:
    """Strings that close and reopen brackets must not make 300 levels look like 150."""
    hiding = ("[" * 150 + '"' + "]" * 150 + '", ' + "[" * 150 + "]" * 150 + ', "' + "[" * 150
              + '\\\\\\"' + '"' + "]" * 150)
    with pytest.raises(JsonInputError) as refused:
        loads(hiding.encode())
    assert refused.value.rule == "depth"
