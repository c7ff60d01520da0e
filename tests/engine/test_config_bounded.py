"""Bounded parsing: alias and merge-key bombs, nesting through aliases, file reads that
could hang or exhaust memory, and the import policy the server passes in."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from engine.config.loader import ImportPolicy, load_file, load_text
from engine.config.yamlpos import parse_yaml
from engine.errors import ConfigError

try:
    from tests.engine.test_config_support import REGISTRY
except ImportError:
    from test_config_support import REGISTRY  # type: ignore[no-redef]

PIPELINE = "pipelines: {p: {steps: [{name: a, type: step.set, config: {values: {x: 1}}}]}}\n"


def merge_bomb(levels: int = 10, width: int = 9) -> str:
    """Each level merges the previous one ``width`` times: width**levels pair visits."""
    lines = ["a0: &a0 {k: v}"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} {{<<: [{', '.join([f'*a{i - 1}'] * width)}]}}")
    return "\n".join(lines) + "\n"


def wide_merge_bomb(levels: int = 10, width: int = 9) -> str:
    """Every level merges the previous one and adds a key holding it ``width`` times."""
    lines = ["b0: &b0 {k0: v}"]
    for i in range(1, levels + 1):
        copies = ", ".join([f"*b{i - 1}"] * width)
        lines.append(f"b{i}: &b{i} {{<<: *b{i - 1}, k{i}: [{copies}]}}")
    return "\n".join(lines) + "\n"


def laughs(levels: int = 9, width: int = 9) -> str:
    lines = ["l0: &l0 [lol]"]
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def cpu_seconds(work: object) -> float:
    start = time.process_time()
    assert callable(work)
    work()
    return time.process_time() - start


def _refused(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_text(text + PIPELINE, "bomb.yaml", registry=REGISTRY, env={})
    found = [d for d in caught.value.diagnostics if "too large" in d.message]
    assert len(found) == 1, caught.value.diagnostics
    [problem] = found
    assert problem.file == "bomb.yaml" and problem.line > 1 and problem.col > 1
    assert "write the values out or use fewer nested aliases" in problem.message
    return str(problem)


@pytest.mark.parametrize(
    "text",
    [merge_bomb(12, 20), wide_merge_bomb(10, 9), laughs(), laughs(12, 25)],
    ids=["merge", "wide-merge", "laughs", "laughs-wide"],
)
def test_alias_and_merge_bombs_are_refused_with_a_position(text: str) -> None:
    # Before: the merge bomb of 483 bytes ran for 30 s and more (merged pairs were not
    # counted); now every value, position and pair aliases produce counts against a budget.
    assert len(text) < 3000
    if "k0" in text or "l0" in text:
        spent = cpu_seconds(lambda: _refused(text))
    else:  # repeating the same source adds no keys: bounded, and the file loads
        spent = cpu_seconds(lambda: load_text(text + PIPELINE, registry=REGISTRY, env={}))
    assert spent < 10  # generous for a loaded machine: the bombs took minutes


def test_the_budget_scales_with_the_text_so_real_files_with_merges_load() -> None:
    lines = [
        "defaults: &defaults {type: step.set, retry: {max_attempts: 2}}",
        "pipelines:",
        "  p:",
        "    steps:",
    ]
    lines += [f"      - {{<<: *defaults, name: s{i}, config: {{values: {{i: {i}}}}}}}" for i in range(12_000)]
    definition = load_text("\n".join(lines) + "\n", registry=REGISTRY, env={})
    steps = definition.pipelines["p"].steps
    assert len(steps) == 12_000 and steps[-1].retry is not None and steps[-1].type == "step.set"


def test_nesting_through_aliases_is_bounded() -> None:
    lines = ["d0: &d0 " + "[" * 150 + "x" + "]" * 150]
    for i in range(1, 40):
        lines.append(f"d{i}: &d{i} " + "[" * 150 + f"*d{i - 1}" + "]" * 150)
    parsed = parse_yaml("\n".join(lines) + "\n", "deep.yaml")
    assert any("nested more than 200 levels deep (through aliases)" in d.message for d in parsed.diagnostics)


def test_aliases_do_not_share_containers() -> None:
    parsed = parse_yaml("a: &a {x: [1]}\nb: *a\nc: {<<: *a}\n", "f")
    value = parsed.value
    assert value["a"] == value["b"] == value["c"] == {"x": [1]}
    assert value["a"]["x"] is not value["b"]["x"] and value["a"]["x"] is not value["c"]["x"]
    assert parsed.positions.values[("b", "x", 0)] == (1, 12)  # where the value is written


def test_merge_of_an_aliased_list_and_unknown_aliases() -> None:
    parsed = parse_yaml("m: &m [{a: 1}, {b: 2}]\nx: {<<: *m, c: 3}\n", "f")
    assert parsed.diagnostics == [] and parsed.value["x"] == {"c": 3, "a": 1, "b": 2}
    parsed = parse_yaml("x: *nope\ny: [1\n", "f")
    assert [(d.line, d.col) for d in parsed.diagnostics] == [(1, 4), (3, 1)]
    assert "unknown alias *nope: define the anchor &nope" in parsed.diagnostics[0].message


# ---------------------------------------------------------------- reading files


def _import_error(tmp_path: Path, name: str, policy: ImportPolicy | None = None) -> str:
    root = tmp_path / "root.yaml"
    root.write_text(f"imports: [{name!r}]\n" + PIPELINE)
    with pytest.raises(ConfigError) as caught:
        load_file(root, registry=REGISTRY, env={}, **({"policy": policy} if policy else {}))
    [problem] = caught.value.diagnostics
    assert (problem.file, problem.line, problem.col) == (str(root), 1, 11)
    return problem.message


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")
    outcome: list[str] = []
    worker = threading.Thread(
        target=lambda: outcome.append(_import_error(tmp_path, "pipe.yaml")), daemon=True
    )
    worker.start()
    worker.join(60)  # before: open() blocked forever waiting for a writer
    assert outcome and "not a regular file" in outcome[0]
    with pytest.raises(ConfigError, match="not a regular file"):
        load_file(tmp_path / "pipe.yaml", registry=REGISTRY)


def test_devices_and_oversize_files_are_refused(tmp_path: Path) -> None:
    # Before: /dev/zero was read until MemoryError.
    assert "not a regular file" in _import_error(tmp_path, "/dev/zero")
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * 2000)
    message = _import_error(tmp_path, "big.yaml", ImportPolicy(max_bytes=10_000))
    assert "too large (20,000 bytes; the limit is 10,000)" in message


def test_roots_confine_imports_and_do_not_reveal_what_exists(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    (served / "shared.yaml").write_text("schemas: {order: {type: object}}\n")
    (tmp_path / "secret.json").write_text('{"password": "x"}')
    os.symlink(tmp_path / "secret.json", served / "link.yaml")
    policy = ImportPolicy(roots=(str(served),), base=str(served))

    # Inside the roots, relative to the base (the text's display name has no folder).
    text = "imports: [shared.yaml]\n" + PIPELINE
    definition = load_text(text, "orders.yaml", registry=REGISTRY, env={}, policy=policy)
    assert "order" in definition.schemas and "shared.yaml" in definition.sources

    answers = {}
    for name in (
        "../secret.json",
        str(tmp_path / "secret.json"),
        "/etc/passwd",
        "/etc/no-such-file",
        "../../../../etc/shadow",
        "link.yaml",
        "/dev/zero",
    ):
        with pytest.raises(ConfigError) as caught:
            load_text(
                f"imports: [{name!r}]\n" + PIPELINE, "orders.yaml", registry=REGISTRY, env={}, policy=policy
            )
        [problem] = caught.value.diagnostics
        assert (problem.file, problem.line, problem.col) == ("orders.yaml", 1, 11)
        answers[name] = problem.message.split(": ", 1)[1]
        assert "password" not in problem.message and "root:" not in problem.message
    # One answer whether the outside file exists or not (the symlink leads outside too).
    assert len(set(answers.values())) == 1, answers
    assert "outside the folders this server reads pipeline files from" in answers["/etc/passwd"]


def test_studio_and_cli_imports_stay_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "common.yaml").write_text("schemas: {thing: {type: string}}\n")
    (tmp_path / "app").mkdir()
    root = tmp_path / "app" / "main.yaml"
    root.write_text("imports: [../lib/common.yaml]\n" + PIPELINE)
    assert "thing" in load_file(root, registry=REGISTRY, env={}).schemas


@pytest.mark.parametrize("value", ["9" * 400, ".nan", ".inf"])
def test_durations_must_be_finite(value: str) -> None:
    # Found by the fuzz test: a 400-digit timeout raised OverflowError (a traceback).
    text = (
        "pipelines: {p: {timeout: " + value + ", steps: [{name: a, type: step.set, "
        "config: {values: {x: 1}}}]}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_text(text, "t.yaml", registry=REGISTRY, env={})
    [problem] = caught.value.diagnostics
    assert (problem.line, problem.col) == (1, 26)
    assert "'timeout' must be a finite duration such as 30s or 1h" in problem.message
