"""The CLI's JSON options under hostile input: one error line and exit 2, never a traceback.

Every value goes through the real entry point (``engine.cli.main``) in-process, against a
real pipeline and a real SQLite store; a few go through a real ``wfstudio`` process to prove
the exit code and the bytes the shell passes.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.cli import main

ROOT = Path(__file__).resolve().parents[2]

ECHO = """
pipelines:
  echo:
    record: full
    steps:
      - {name: copy, type: step.set, config: {values: {got: "{{ .trigger }}"}}}
"""


def call(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def error_lines(err: str) -> list[str]:
    """stderr without argparse's usage block (``usage: …`` and its indented continuation)."""
    return [line for line in err.splitlines() if not line.startswith(("usage:", " "))]


def assert_one_line_error(code: int, out: str, err: str, message: str = "") -> None:
    assert "Traceback" not in err and "Error:" not in err, err
    assert code == 2, (code, err)
    assert out == ""
    [line] = error_lines(err)
    assert line.startswith(("wfstudio: ", "wfstudio run: error: ")), line
    assert message in line, (message, line)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("cli_input")
    (tmp / "echo.yaml").write_text(ECHO)
    return {"file": str(tmp / "echo.yaml"), "store": f"sqlite:///{tmp / 'store.db'}",
            "tmp": str(tmp)}


# ---------------------------------------------------------------- the values

NO_SURROGATES = st.characters(exclude_categories=("Cs",))
KEYS = st.text(NO_SURROGATES, max_size=8)
SCALARS = (st.none() | st.booleans() | st.integers() | st.text(NO_SURROGATES, max_size=20)
           | st.floats(allow_nan=False, allow_infinity=False))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(KEYS, inner, max_size=4), max_leaves=20)


@dataclass
class Case:
    text: str
    expect: str  # "ok": runs and echoes ``value``; "any": ok or a one-line error; else the error
    value: Any = None


def _nest(depth: int, kind: str) -> str:
    """An object nested ``depth`` levels deep: objects in objects, or arrays in one object."""
    if kind == "object":
        return '{"k": ' * depth + "1" + "}" * depth
    return '{"a": ' + "[" * (depth - 1) + "1" + "]" * (depth - 1) + "}"


valid = st.dictionaries(KEYS, VALUES, max_size=5).map(lambda v: Case(json.dumps(v), "ok", v))
ascii_escaped = st.dictionaries(KEYS, VALUES, max_size=3).map(
    lambda v: Case(json.dumps(v, ensure_ascii=True), "ok", v))
not_objects = VALUES.filter(lambda v: not isinstance(v, dict)).map(
    lambda v: Case(json.dumps(v), "expected a JSON object"))
deep = st.builds(lambda depth, kind: Case(_nest(depth, kind), "nested more than 200 levels deep"),
                 st.integers(201, 5000), st.sampled_from(["object", "array"]))
shallow = st.builds(lambda depth: Case(_nest(depth, "object"), "ok",
                                       json.loads(_nest(depth, "object"))),
                    st.integers(1, 200))
huge = st.builds(lambda digits, sign: Case(f'{{"n": {sign}{"7" * digits}}}', "digits (at most 4300)"),
                 st.integers(4301, 30_000), st.sampled_from(["", "-"]))
big_ok = st.integers(10**19, 10**60).map(lambda n: Case(f'{{"n": {n}}}', "ok", {"n": n}))
# What the shell passes for bytes that are not UTF-8 (Python keeps them as \udc80-\udcff).
raw_bytes = st.builds(lambda before, bad: Case(f'{{"s": "{before}{bad}"}}', "not valid UTF-8"),
                      st.text("abc", max_size=5),
                      st.text(st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF), min_size=1,
                              max_size=3))
escaped_surrogate = st.integers(0xD800, 0xDFFF).map(
    lambda c: Case(f'{{"s": "x\\u{c:04x}"}}', "unpaired surrogate"))
not_numbers = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999"]).map(
    lambda t: Case(f'{{"x": {t}}}', "invalid JSON"))
random_text = st.text(max_size=40).map(lambda t: Case(t, "any"))
dashes = st.builds(lambda dash, rest: Case(dash + rest, "any"),
                   st.sampled_from(["-", "--", "-1", "-0.5", "- "]), st.text(max_size=12))
CASES = st.one_of(valid, ascii_escaped, not_objects, deep, shallow, huge, big_ok, raw_bytes,
                  escaped_surrogate, not_numbers, random_text, dashes)


@settings(max_examples=520, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])
@given(case=CASES, attached=st.booleans())
def test_any_input_value_runs_or_is_one_error_line(world: dict[str, str], case: Case,
                                                   attached: bool) -> None:
    given_as = [f"--input={case.text}"] if attached else ["--input", case.text]
    code, out, err = call(["run", world["file"], *given_as, "--json", "--store", world["store"]])
    assert "Traceback" not in err, err
    if not attached and case.text.startswith("-") and "expected one argument" in err:
        # argparse takes "-1.5e3" for an option, not a value: it says how to give it
        assert_one_line_error(code, out, err, "goes after '=', e.g. --input=-1")
        return
    if case.expect == "ok":
        assert code == 0, err
        assert json.loads(out)["output"]["got"] == case.value
    elif case.expect == "any":
        if code == 0:
            assert isinstance(json.loads(out)["output"]["got"], dict)
        else:
            assert_one_line_error(code, out, err)
    else:
        assert_one_line_error(code, out, err, case.expect)


# ---------------------------------------------------------------- every JSON option


@pytest.fixture(scope="module")
def execution(world: dict[str, str]) -> str:
    code, out, err = call(["run", world["file"], "--input", '{"n": 1}', "--json",
                           "--store", world["store"]])
    assert code == 0, err
    execution_id: str = json.loads(out)["execution_id"]
    return execution_id


HOSTILE = [
    ("[" * 100_000, "nested more than 200 levels deep"),
    ("[" * 300 + "]" * 300, "nested more than 200 levels deep"),
    ("1" * 5000, "an integer of 5000 digits (at most 4300)"),
    ('{"x": NaN}', "NaN is not JSON"),
    ('{"x": 1e400}', "out of range"),
    ('"\udcff"', "not valid UTF-8 at line 1 column 2"),
    ('"\\udfff"', "unpaired surrogate"),
    ("{nope", "invalid JSON at line 1 column 2"),
]
OPTIONS = {  # the option, how to pass a value, whether it must be an object (a payload)
    "--input": (["run", "{file}", "--input"], "object"),
    "--payload": (["replay", "{exec}", "--payload"], "object"),
    "--patch": (["replay", "{exec}", "--patch"], "patch"),
    "--mock copy": (["replay", "{exec}", "--mock"], "any"),
    "--output": (["mocks", "set", "echo", "copy", "--file", "{file}", "--output"], "any"),
    "--patch ": (["dlq", "retry", "--all-pending", "--patch"], "patch"),
}


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize(("text", "message"), HOSTILE, ids=range(len(HOSTILE)))
def test_every_json_option_has_the_same_rules(world: dict[str, str], execution: str, option: str,
                                              text: str, message: str) -> None:
    prefix, _ = OPTIONS[option]
    argv = [a.format(file=world["file"], exec=execution) for a in prefix]
    value = f"copy={text}" if option == "--mock copy" else text
    code, out, err = call([*argv, value, "--store", world["store"]])
    assert_one_line_error(code, out, err, f"{option.strip()}: ")
    assert message in err


@pytest.mark.parametrize("option", OPTIONS)
def test_shapes_are_checked(world: dict[str, str], execution: str, option: str) -> None:
    prefix, shape = OPTIONS[option]
    argv = [a.format(file=world["file"], exec=execution) for a in prefix]
    value = "copy=[1]" if option == "--mock copy" else "[1]"
    code, out, err = call([*argv, value, "--store", world["store"]])
    if shape == "any":  # a step may answer anything
        assert code == 0, err
        return
    expected = "expected a JSON object" if shape == "object" else "expected a JSON Patch"
    assert_one_line_error(code, out, err, expected)


def test_a_value_that_starts_with_a_dash(world: dict[str, str]) -> None:
    run = ["run", world["file"], "--store", world["store"]]
    code, out, err = call([*run, "--input", "-x"])
    assert_one_line_error(code, out, err, "--input: expected one argument")
    assert "goes after '='" in err and "--input=-1" in err
    assert err.startswith("usage: wfstudio run ")  # the subcommand's usage, not wfstudio's
    # a negative number is taken as a value (and is not an object)
    code, out, err = call([*run, "--input", "-5"])
    assert_one_line_error(code, out, err, "--input: expected a JSON object such as")
    assert "got a number" in err
    code, out, err = call([*run, "--input=-5"])
    assert_one_line_error(code, out, err, "got a number")
    code, out, err = call([*run, "--input=--"])  # argparse alone would make it an empty list
    assert_one_line_error(code, out, err, "--input: invalid JSON at line 1 column 1")
    # a mock may answer with a negative number, given either way
    code, _, err = call(["mocks", "set", "echo", "copy", "--file", world["file"], "--output=-2.5",
                         "--store", world["store"]])
    assert code == 0 and "→ -2.5" in _ + err


def test_input_and_jsonl_files_follow_the_same_rules(world: dict[str, str]) -> None:
    tmp = Path(world["tmp"])
    (tmp / "deep.json").write_text("[" * 5000)
    (tmp / "latin1.json").write_bytes(b'{"s": "caf\xe9"}')
    (tmp / "list.json").write_text("[1, 2]")
    run = ["run", world["file"], "--store", world["store"], "--input-file"]
    for name, message in [("deep.json", "--input-file: values are nested more than 200"),
                          ("latin1.json", "not valid UTF-8 (byte 11, line 1)"),
                          ("list.json", "--input-file: expected a JSON object"),
                          ("missing.json", "cannot read --input-file")]:
        assert_one_line_error(*call([*run, str(tmp / name)]), message)

    (tmp / "in.jsonl").write_text('{"n": 1}\n\n' + '{"n": ' + "9" * 5000 + "}\n")
    (tmp / "scalar.jsonl").write_text('{"n": 1}\n7\n')
    backfill = ["backfill", "echo", "--file", world["file"], "--store", world["store"], "--jsonl"]
    assert_one_line_error(*call([*backfill, str(tmp / "in.jsonl")]),
                          "--jsonl: invalid JSON at line 3 column 7: an integer of 5000 digits")
    assert_one_line_error(*call([*backfill, str(tmp / "scalar.jsonl")]),
                          "--jsonl: line 2: expected a JSON object")


# ---------------------------------------------------------------- a real process


def _wfstudio(args: list[str | bytes], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True,
                          timeout=120, cwd=ROOT, **kwargs)


@pytest.mark.parametrize("value", [b"[" * 100_000, b'{"n": ' + b"1" * 5000 + b"}",
                                   b'{"s": "\xff\xfe"}', b"-x", b"7"],
                         ids=["deep", "huge-int", "not-utf8", "dash", "not-object"])
def test_the_process_exits_2_with_one_line(world: dict[str, str], value: bytes) -> None:
    done = _wfstudio(["run", world["file"], "--input", value, "--store", world["store"]])
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2 and done.stdout == b"", err
    assert "Traceback" not in err and len(error_lines(err)) == 1, err


def test_a_closed_pipe_ends_quietly(world: dict[str, str]) -> None:
    """``wfstudio executions list | head -1``: the reader goes; no BrokenPipeError traceback."""
    for _ in range(3):
        assert call(["run", world["file"], "--input", "{}", "--store", world["store"]])[0] == 0
    read, write = os.pipe()
    os.close(read)  # the reader has gone before anything is written
    try:
        done = subprocess.run([sys.executable, "-m", "engine.cli", "executions", "list",
                               "--store", world["store"]], stdout=write, stderr=subprocess.PIPE,
                              timeout=120, cwd=ROOT)
    finally:
        os.close(write)
    assert done.stderr == b"" and done.returncode == 141
