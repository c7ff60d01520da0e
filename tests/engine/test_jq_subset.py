"""The Python evaluator of jq's common subset (engine/jq) against libjq itself.

Random programs from a grammar of the subset run on random JSON contexts through both;
they must give the same outputs (same values, types and key order) or both fail. Programs
libjq rejects are skipped; a run the evaluator hands back (``Unsupported``) is skipped too,
and ``test_the_common_subset_is_evaluated_in_python`` checks that common programs are not.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.errors import ExpressionError
from engine.expressions import _NEEDS_ENV, _compile_jq, evaluate
from engine.jq import JqError, Unsupported, compile_tree, parse, result
from engine.jq.paths import prune, read_paths

KEYS = ("a", "b", "c")
NUMBERS = st.one_of(st.integers(-5, 20), st.sampled_from([0.5, 1.0, -2.5, 3.25, 100.0, 1e-7]),
                    st.integers(-(2**60), 2**60))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS,
                    st.text(alphabet=st.sampled_from("ab,c é\n\"\\\x7f"), max_size=5),
                    st.sampled_from(KEYS))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.sampled_from((*KEYS, "env")), inner, max_size=4)), max_leaves=12)
CONTEXT = st.one_of(st.dictionaries(st.sampled_from((*KEYS, "env")), JSON, max_size=4), JSON)

LEAVES = st.sampled_from([
    ".", ".a", ".b", ".c", ".a.b", ".b.c.a", '."a"', '.["b"]', ".[0]", ".[1]", ".[-1]", ".a?",
    ".a[0]", ".[]", ".[]?", ".a[]", "$ENV", "env", "$ENV.a", "null", "true", "false", "0", "1",
    "-1", "2", "2.5", "1.0", "3", '"a"', '"b"', '""', '","', '"x y"', "[]", "{}", "length",
    "keys", "keys_unsorted", "add", "tostring", "tonumber", "tojson", "type", "not", "empty",
    "ascii_downcase", "upper", "floor", "sort", "first", "last", "$v", "{a}", "{$v}", '"\\(.a)"',
])
BINARY = ["|", ",", "//", "and", "or", "+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">="]


def _extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, st.sampled_from(BINARY), inner).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        inner.map(lambda x: f"({x})"),
        inner.map(lambda x: f"[{x}]"),
        inner.map(lambda x: f"-{x}"),
        inner.map(lambda x: f"{x}?"),
        inner.map(lambda x: f"({x})?"),
        inner.map(lambda x: f"({x}).a"),
        st.tuples(inner, inner).map(lambda t: f".[{t[0]}] | {t[1]}"),
        st.tuples(inner, inner).map(lambda t: f"({t[0]})[{t[1]}]"),
        st.tuples(inner, inner).map(lambda t: f"{{a: {t[0]}, \"b\": {t[1]}}}"),
        st.tuples(inner, inner).map(lambda t: f"{{({t[0]}): {t[1]}}}"),
        st.tuples(inner, inner).map(lambda t: f'"x\\({t[0]})-\\({t[1]})"'),
        st.tuples(inner, inner, inner).map(lambda t: f"if {t[0]} then {t[1]} else {t[2]} end"),
        st.tuples(inner, inner, inner, inner).map(
            lambda t: f"if {t[0]} then {t[1]} elif {t[2]} then {t[3]} else . end"),
        st.tuples(inner, inner).map(lambda t: f"if {t[0]} then {t[1]} end"),
        st.tuples(inner, inner).map(lambda t: f"{t[0]} as $v | {t[1]}"),
        st.tuples(st.sampled_from(["map", "select", "has", "default"]), inner).map(
            lambda t: f"{t[0]}({t[1]})"),
        st.tuples(inner, st.sampled_from(["length", "add", "keys", "tostring", "not"])).map(
            lambda t: f"{t[0]} | {t[1]}"),
    )


# deferred, not st.recursive: the latter's repr grows with every level of .map(lambda)
PROGRAMS: st.SearchStrategy[str] = st.deferred(lambda: st.one_of(LEAVES, LEAVES, _extend(PROGRAMS)))


def _libjq(program: str, context: Any) -> tuple[str, Any]:
    try:
        compiled = _compile_jq(program)
    except Exception:
        return "syntax", None
    try:
        return "ok", compiled.input_text(json.dumps(context)).all()
    except ValueError:
        return "error", None


def _python(program: str, context: Any) -> tuple[str, Any]:
    run = compile_tree(parse(program), bool(_NEEDS_ENV.search(program)))
    try:
        return "ok", [result(x) for x in run(context)]
    except JqError:
        return "error", None


def _same(program: str, context: Any) -> None:
    expected = _libjq(program, context)
    assume(expected[0] != "syntax")
    try:
        got = _python(program, context)
    except Unsupported:
        assume(False)
        return
    # json.dumps keeps key order and tells 1 from 1.0 from true
    assert (got[0], json.dumps(got[1])) == (expected[0], json.dumps(expected[1])), \
        f"{program!r} on {json.dumps(context)}"


@settings(max_examples=1500, deadline=None, database=None,
          suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(PROGRAMS, CONTEXT)
def test_python_and_libjq_agree(program: str, context: Any) -> None:
    _same(program, context)


@pytest.mark.parametrize(("program", "context"), [
    (".a.b", {"a": "text"}),  # indexing a string is an error
    (".a", None),  # null | .a is null
    ("1 / 0", {}),
    ('"a,b" / ","', {}),
    ("[(1,2) + (10,20)]", {}),  # the right operand varies slowest
    ("{a: (1,2), b: (3,4)}", {}),
    ('"\\(1,2)-\\(3,4)"', {}),
    ("[(1, error(\"x\"), 2)?]", {}),
    ("[.a?.b]", {"a": "x"}),
    ("[.a.b?]", "x"),  # the ? guards the last step only
    ("(null, 1, false, 2) // 5", {}),
    ("[.[] | select(. > 1)] | add", [1, 2, 3]),
    ("-5 % 3, 5.5 % 2", {}),
    ('"ab" * 0, "ab" * -1, "ab" * 2.7', {}),
    ("{a: {b: 1, c: 2}} * {a: {b: 3}, d: 4}", {}),
    ("[1, 2, 3, 1] - [1]", {}),
    ("[{b: 1, a: 2}, {a: 2, b: 0}, null, true, \"s\", [1]] | sort", {}),
    ("keys", {"b": 1, "a": 2, "B": 3}),
    ("[.[] | tostring]", [1.0, 0.5, True, None, {"a": [1, "x"]}]),
    ("$ENV.HOME, env", {"env": {"HOME": "/h"}}),
    ("$ENV", {"env": None}),
    (".a + 1", {"a": 2**60}),  # beyond doubles' exact integers: libjq decides
    (".a", {"a": 1.0}),
    ("[.a, .b]", {"a": 2**60 + 1, "b": 1e300}),
])
def test_known_cases_agree(program: str, context: Any) -> None:
    expected = _libjq(program, context)
    try:
        got = _python(program, context)
    except Unsupported:
        return  # libjq evaluates it: nothing to compare
    assert (got[0], json.dumps(got[1])) == (expected[0], json.dumps(expected[1]))


@pytest.mark.parametrize("program", [
    ".a.b", ".a[0]", '.["k"]', ".a?", "$ENV.HOME", "env.HOME", ".qty * 2 + 1", '"\\(.a)-\\(.b)"',
    "if .severity >= 8 then \"urgent\" elif .severity >= 4 then \"normal\" else \"low\" end",
    ".body // .trigger", ".a and (.b or (.c | not))", "[.items[] | select(.qty > 1) | .price * .qty] | add",
    "{a: .b, \"c\": 1, (.k): .v}", ". as $x | {$x}", ".items | map(.sku) | length",
    ".user.name | upper", "keys | tostring", ".n | tonumber", ".x | default(3)", "has(\"a\")",
])
def test_the_common_subset_is_evaluated_in_python(program: str) -> None:
    compile_tree(parse(program))  # raises Unsupported otherwise


# ------------------------------------------------------------------ what libjq is fed

BEYOND = st.sampled_from([
    "to_entries", "sort_by(.a)", ".a[1:]", "reduce .[]? as $x (0; . + 1)", "[..]", "[paths]",
    'getpath(["a", "b"])', "with_entries(.)", ".a |= 1", "del(.a)", "tojson", ".a as [$x] | $x",
    "first(.[]?)", "limit(1; .a, .b)", "try error(.a) catch .", "[range(2)]", "[.[]?] | length",
    "reduce (.a, .b) as $x (null; $x)", "@base64", '@text "\\(.a)"', "[splits(\",\")?]",
    ". as $r | .a | $r.b", "def f: .b; .a | f", ".a // .b | .c", "[.a, .b] | map(.c?)",
    "select(.a) | .b", "if .a then .b.c else .c end", '.a | has("b")', "[.a[]?.b]",
    "[foreach (.a, .b) as $x (0; . + 1; [$x, .])]", "$__loc__", "label $out | .a | ., break $out",
])
MIXED = st.deferred(lambda: st.one_of(BEYOND, LEAVES, _extend(MIXED)))


@settings(max_examples=500, deadline=None, database=None,
          suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(MIXED, st.dictionaries(st.sampled_from((*KEYS, "env")), JSON, max_size=4))
def test_libjq_gives_the_same_on_the_parts_a_program_reads(program: str, context: Any) -> None:
    expected = _libjq(program, context)
    assume(expected[0] != "syntax")
    paths = read_paths(program)
    if paths is None:
        return
    pruned = prune(context, paths | {("env",)} if _NEEDS_ENV.search(program) else paths)
    got = _libjq(program, pruned)
    assert (got[0], json.dumps(got[1])) == (expected[0], json.dumps(expected[1])), \
        f"{program!r} on {json.dumps(context)}, pruned to {json.dumps(pruned)}"


class _Unserialisable:
    """A context value that fails the test if anything serialises it for libjq."""

    def __str__(self) -> str:
        raise AssertionError("the whole context was serialised")


def test_an_expression_reads_only_what_it_names() -> None:
    context = {"a": {"b": 2, "c": "x,y"}, "big": _Unserialisable(), "env": {"HOME": "/h"}}
    assert evaluate(".a.b * 10 + 1", context) == 21  # the Python evaluator
    assert evaluate('[.a.c / ",", $ENV.HOME]', context) == [["x", "y"], "/h"]
    assert evaluate(".a.c | @base64", context) == "eCx5"  # libjq, fed {"a": {"c": ...}}
    assert evaluate(".a | to_entries | map(.key)", context) == ["b", "c"]
    assert isinstance(evaluate("uuid", context), str)
    with pytest.raises(AssertionError, match="serialised"):
        evaluate("[paths] | length", context)  # reads the whole context: it gets all of it


@pytest.mark.parametrize(("program", "context"), [
    (".a.b", {"a": "text"}), ("1 / 0", {}), (".a[]", {"a": 5}), ("{(.a): 1}", {"a": 1}),
    (".a | tonumber", {"a": "x"}),
])
def test_errors_are_expression_errors_on_both_paths(program: str, context: Any) -> None:
    with pytest.raises(ExpressionError):
        evaluate(program, context)
    with pytest.raises(ExpressionError, match="jq error"):
        evaluate(f"{program} | @text", context)  # the same through libjq


def test_values_outside_the_exact_subset_go_to_libjq() -> None:
    assert evaluate(".a + 1", {"a": 2**60 + 1}) == 2**60  # doubles, as libjq computes
    assert evaluate(".a | tostring", {"a": 1e-7}) == "1E-7"  # libjq keeps the literal
    assert evaluate("[.a]", {"a": (1, 2)}) == [[1, 2]]  # a tuple is serialised as a list
    assert evaluate(".a | tostring", {"a": 1.0}) == "1.0"
