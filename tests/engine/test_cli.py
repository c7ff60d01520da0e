"""The ``wfstudio`` CLI: exit codes, one-line errors, JSON output, reading the store."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import build_parser, main
from engine.cli.parser import walk

ROOT = Path(__file__).resolve().parents[2]
WORKSPACE = ROOT / "resources" / "workspace"

GOOD = """
pipelines:
  double:
    steps:
      - {name: calc, type: step.set, config: {values: {twice: "{{ .n * 2 }}"}}}
  broken:
    steps:
      - {name: boom, type: step.fail, config: {message: "cannot {{ .n }}"}}
"""

BAD = """pipelines:
  p:
    steps:
      - {name: a, type: step.sett, config: {}}
      - {name: a, type: step.set, config: {values: {x: "{{ .x + }}"}}}
"""


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "bad.yaml").write_text(BAD)
    return {"good": str(tmp_path / "good.yaml"), "bad": str(tmp_path / "bad.yaml"),
            "store": f"sqlite:///{tmp_path}/cli.db"}


def test_validate_ok_and_errors_with_positions(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", files["good"]]) == 0
    assert "ok: 1 file(s) valid" in capsys.readouterr().out
    assert main(["validate", files["good"], files["bad"]]) == 1
    err = capsys.readouterr().err
    assert f"{files['bad']}:4:" in err and "step.sett" in err and "step.set" in err
    assert f"{files['bad']}:5:" in err and "duplicate" in err.lower()
    assert "syntax error" in err
    assert "Traceback" not in err


def test_validate_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 1
    assert "nope.yaml" in capsys.readouterr().err


def test_run_json_and_read_back(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", files["good"], "-p", "double", "--input", '{"n": 21}', "--json",
                 "--store", files["store"]]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "completed" and result["output"]["twice"] == 42
    assert result["error"] is None
    execution_id = result["execution_id"]

    assert main(["executions", "list", "--store", files["store"], "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [e["id"] for e in listed["executions"]] == [execution_id]

    assert main(["executions", "timeline", execution_id[:10], "--store", files["store"]]) == 0
    assert "calc" in capsys.readouterr().out

    assert main(["executions", "events", execution_id, "--store", files["store"], "--type",
                 "step.completed"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and '"twice": 42' in out[0]

    assert main(["executions", "show", execution_id, "--store", files["store"]]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "completed"


def test_run_failed_execution_exits_1(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", files["good"], "-p", "broken", "--input", '{"n": 1}', "--json",
                 "--store", files["store"]]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "failed"
    assert result["error"]["message"] == "cannot 1" and result["error"]["step"] == "boom"


@pytest.mark.parametrize(("args", "message"), [
    (["--input", "{nope"], "--input: invalid JSON at line 1 column 2"),
    (["--input-file", "/definitely/missing.json"], "cannot read --input-file"),
    ([], "has 2 pipelines (double, broken): choose one with -p"),
    (["-p", "nope"], "no pipeline named 'nope'"),
])
def test_run_usage_errors_are_one_line(files: dict[str, str], capsys: pytest.CaptureFixture[str],
                                       args: list[str], message: str) -> None:
    code = main(["run", files["good"], "--store", files["store"], *args])
    err = capsys.readouterr().err
    assert code in (1, 2)
    assert message in err and len(err.strip().splitlines()) == 1


def test_run_an_invalid_file_prints_diagnostics(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", files["bad"], "--store", files["store"]]) == 1
    assert f"{files['bad']}:4:" in capsys.readouterr().err


def test_unknown_execution(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["executions", "show", "abc", "--store", files["store"]]) == 2
    assert "no execution 'abc'" in capsys.readouterr().err


def test_bad_store_url_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["executions", "list", "--store", "nosuchdb://x"]) == 1
    err = capsys.readouterr().err
    assert "wfstudio:" in err and "Traceback" not in err


def test_inspect(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(WORKSPACE / "orders.yaml")]) == 0
    out = capsys.readouterr().out
    assert "pipeline create-order [http POST /orders]" in out
    assert "store: step.db_exec" in out and "compensated" in out


def test_the_example_workspace_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(str(p) for p in WORKSPACE.glob("*.yaml"))
    assert len(files) >= 4
    assert main(["validate", *files]) == 0


def test_demo_runs_every_sample(tmp_path: Path) -> None:
    """The README's first command: every example pipeline runs and ends as expected."""
    done = subprocess.run([sys.executable, "-m", "engine.cli", "demo", "--store",
                           f"sqlite:///{tmp_path}/demo.db"], capture_output=True, text=True,
                          timeout=120, env={"DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin",
                                            "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "8/8 samples as expected" in done.stdout
    assert "BAD" not in done.stdout


def test_console_script_never_prints_a_traceback(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "engine.cli", "run", str(tmp_path / "x.yaml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "x.yaml" in done.stderr and "Traceback" not in done.stderr


# ---------------------------------------------------------------- a consistent CLI


def _parsers() -> list[argparse.ArgumentParser]:
    return list(walk(build_parser()))


def test_every_command_and_option_says_what_it_is_for() -> None:
    """So that it stays true: each option, argument and subcommand has help text, and each
    subcommand a description atop its own --help."""
    missing = []
    for parser in _parsers():
        if not parser.description:
            missing.append(f"{parser.prog}: no description")
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{parser.prog} {choice.dest}: no help"
                            for choice in action._choices_actions if not choice.help]
            elif not action.help:
                missing.append(f"{parser.prog} {'/'.join(action.option_strings) or action.dest}: "
                               "no help")
    assert missing == []
    assert {"studio", "validate", "inspect", "executions", "serve"} <= set(
        build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]


def _readme_commands() -> list[list[str]]:
    """Every ``wfstudio …`` line of the README's shell blocks, placeholders filled in."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("wfstudio "):
                line = re.sub(r"<id[^>]*>(\.\.\.)?", "0123abcd", line)
                commands.append(shlex.split(line)[1:])
    return commands


def test_the_readme_examples_parse() -> None:
    commands = _readme_commands()
    assert len(commands) > 20
    for argv in commands:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                build_parser().parse_args(argv)
            except SystemExit as exc:
                raise AssertionError(f"README: wfstudio {shlex.join(argv)}: {err.getvalue()}") from exc


def test_commands_on_the_store_take_store() -> None:
    """The README says every command that reads or writes the store takes --store."""
    own_files = {"wfstudio studio", "wfstudio validate", "wfstudio inspect"}
    for parser in _parsers():
        if parser._subparsers is None and parser.prog not in own_files:
            assert "--store" in parser._option_string_actions, parser.prog


def test_an_unknown_option_shows_the_subcommands_usage(files: dict[str, str],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["executions", "list", "--bogus", "--store", files["store"]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: wfstudio executions list ")
    assert err.strip().endswith("wfstudio executions list: error: unrecognized arguments: --bogus")
    assert main(["dlq", "retry", "--nope"]) == 2
    assert capsys.readouterr().err.startswith("usage: wfstudio dlq retry ")


def test_executions_status_and_event_filters(files: dict[str, str],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", files["good"], "-p", "double", "--input", '{"n": 1}', "--json",
                 "--store", files["store"]]) == 0
    execution_id = json.loads(capsys.readouterr().out)["execution_id"]
    assert main(["executions", "list", "--status", "done", "--store", files["store"]]) == 2
    err = capsys.readouterr().err
    assert err == ("wfstudio: --status: unknown execution status 'done' (one of running, paused, "
                   "completed, failed, cancelled, interrupted)\n")
    assert main(["executions", "list", "--status", "failed", "--store", files["store"]]) == 0
    assert capsys.readouterr().out == "no executions\n"
    assert main(["executions", "events", execution_id, "--type", "step.nothing",
                 "--store", files["store"]]) == 0
    assert capsys.readouterr().out == "no events of type step.nothing\n"
    assert main(["executions", "events", execution_id, "--type", "step.nothing", "--json",
                 "--store", files["store"]]) == 0
    assert capsys.readouterr().out == ""  # JSON lines: none


def test_studio_is_a_command_that_the_launcher_opens(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["studio", "x"]) == 2  # engine/ never loads Qt: the `wfstudio` launcher does
    assert "wfstudio studio x" in capsys.readouterr().err
