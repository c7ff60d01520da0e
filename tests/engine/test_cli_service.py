"""The ``wfstudio`` verbs over the studio service: replay, diff, dlq, mocks, breakpoints, backfill.

Everything runs ``main([...])`` in-process against a real SQLite store and real pipeline
files; side effects land in a real SQLite database (``app.db``) that the tests count rows in.
"""

from __future__ import annotations

import io
import json
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.cli import main
from engine.cli.common import ProgressBar

ROOT = Path(__file__).resolve().parents[2]

PIPELINES = """
modules:
  - name: app
    type: database.sql
    config: {{url: "sqlite:///{db}"}}
pipelines:
  chain:
    record: full
    steps:
      - name: first
        type: step.db_exec
        config: {{database: app, query: "INSERT INTO log(step, n) VALUES ('first', :n)",
                  params: {{n: "{{{{ .n }}}}"}}}}
      - {{name: calc, type: step.set, config: {{values: {{twice: "{{{{ .n * 2 }}}}"}}}}}}
      - name: second
        type: step.db_exec
        config: {{database: app, query: "INSERT INTO log(step, n) VALUES ('second', :n)",
                  params: {{n: "{{{{ .twice }}}}"}}}}
  ingest:
    dlq: true
    record: full
    steps:
      - name: save
        type: step.db_exec
        config: {{database: app, query: "INSERT INTO items(name) VALUES (:name)",
                  params: {{name: "{{{{ .name }}}}"}}}}
  slow:
    steps:
      - {{name: wait, type: step.delay, config: {{duration: 400ms}}}}
"""

DOUBLE = """
pipelines:
  double:
    record: full
    steps:
      - {{name: calc, type: step.set, config: {{values: {{result: "{{{{ .n * {factor} }}}}"}}}}}}
      - {{name: label, type: step.set, config: {{values: {{label: "n={{{{ .n }}}}"}}}}}}
"""


@dataclass
class World:
    tmp: Path
    file: str
    store: str
    store_db: Path
    app_db: Path
    capsys: pytest.CaptureFixture[str]

    def cli(self, *args: str) -> tuple[int, str, str]:
        code = main([*args, "--store", self.store])
        out, err = self.capsys.readouterr()
        return code, out, err

    def run(self, pipeline: str, payload: dict[str, Any], file: str | None = None) -> str:
        code, out, err = self.cli("run", file or self.file, "-p", pipeline, "--input",
                                  json.dumps(payload), "--json")
        assert code in (0, 1), err
        return str(json.loads(out)["execution_id"])

    def app(self, query: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.app_db) as conn:
            return conn.execute(query).fetchall()

    def log(self) -> dict[str, list[int]]:
        rows: dict[str, list[int]] = {"first": [], "second": []}
        for step, n in self.app("SELECT step, n FROM log ORDER BY rowid"):
            rows[step].append(n)
        return rows

    def stored(self, query: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.store_db) as conn:
            return conn.execute(query).fetchall()

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row the service verbs could change."""
        return {table: sorted(self.stored(f"SELECT * FROM {table}"), key=repr)
                for table in ("executions", "dlq_entries", "step_mocks", "breakpoints",
                              "backfills")}

    def dlq(self) -> list[dict[str, Any]]:
        code, out, _ = self.cli("dlq", "list", "--json")
        assert code == 0
        return list(json.loads(out))


@pytest.fixture
def world(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> World:
    app_db = tmp_path / "app.db"
    with sqlite3.connect(app_db) as conn:
        conn.execute("CREATE TABLE log (step TEXT, n INTEGER)")
    file = tmp_path / "app.yaml"
    file.write_text(PIPELINES.format(db=app_db))
    store_db = tmp_path / "store.db"
    return World(tmp_path, str(file), f"sqlite:///{store_db}", store_db, app_db, capsys)


# ---------------------------------------------------------------- replay


def test_replay_plan_then_exact(world: World) -> None:
    original = world.run("chain", {"n": 2})
    code, out, _ = world.cli("replay", original[:10], "--plan")
    assert code == 0
    assert f"replay plan of {original} (chain, mode exact)" in out
    assert "definition: unchanged" in out and 'payload: {"n": 2}' in out
    assert [line.split()[:2] for line in out.splitlines()[-3:]] == [
        ["first", "run"], ["calc", "run"], ["second", "run"]]
    assert world.log() == {"first": [2], "second": [4]}  # a plan runs nothing

    code, out, _ = world.cli("replay", original[:10], "--plan", "--json")
    plan = json.loads(out)
    assert plan["mode"] == "exact" and plan["definition_changed"] is False
    assert plan["payload"] == {"n": 2}

    code, out, _ = world.cli("replay", original)
    assert code == 0
    head, *rest = out.splitlines()
    assert head.startswith("chain ") and " completed in " in head
    assert f"(replay of {original[:12]}, exact)" in head
    assert json.loads("\n".join(rest))["twice"] == 4
    assert world.log() == {"first": [2, 2], "second": [4, 4]}
    replay_id = head.split()[1]
    assert world.stored(f"SELECT replay_of FROM executions WHERE id = '{replay_id}'") == [
        (original,)]


def test_replay_from_step_reuses_the_earlier_steps(world: World) -> None:
    original = world.run("chain", {"n": 3})
    code, out, _ = world.cli("replay", original[:8], "--from-step", "second", "--plan")
    assert code == 0
    actions = {line.split()[0]: line.split()[1] for line in out.splitlines()[-3:]}
    assert actions == {"first": "reuse", "calc": "reuse", "second": "run"}

    code, out, _ = world.cli("replay", original[:8], "--from-step", "second", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["status"] == "completed" and result["replay_of"] == original
    assert result["output"]["twice"] == 6
    # The INSERT of ``first`` did not run again; ``second`` did, with the reused ``twice``.
    assert world.log() == {"first": [3], "second": [6, 6]}


def test_replay_modified_with_patch_payload_and_mocks(world: World) -> None:
    original = world.run("chain", {"n": 1})
    code, out, _ = world.cli("replay", original, "--patch",
                             '[{"op": "replace", "path": "/n", "value": 5}]', "--json")
    assert code == 0 and json.loads(out)["output"]["twice"] == 10
    code, out, _ = world.cli("replay", original, "--payload", '{"n": 7}', "--json")
    assert code == 0 and json.loads(out)["output"]["twice"] == 14
    code, out, _ = world.cli("replay", original, "--mock", 'calc={"twice": 99}',
                             "--recorded-mock", "first", "--json")
    assert code == 0 and json.loads(out)["output"]["twice"] == 99
    # the mocked replay answered ``first`` from the record: no INSERT of its own
    assert world.log() == {"first": [1, 5, 7], "second": [2, 10, 14, 99]}


def test_a_failing_replay_exits_1(world: World) -> None:
    failed = world.run("ingest", {"name": "x"})
    code, out, err = world.cli("replay", failed)
    assert code == 1 and err == ""
    assert " failed in " in out and "no such table: items (step save)" in out


def test_replay_current_definition_then_diff(world: World) -> None:
    v1, v2 = world.tmp / "double.yaml", world.tmp / "double-v2.yaml"
    v1.write_text(DOUBLE.format(factor=2))
    v2.write_text(DOUBLE.format(factor=3))
    original = world.run("double", {"n": 2}, file=str(v1))

    code, out, _ = world.cli("replay", original, "--current", str(v2), "--plan", "--json")
    assert code == 0 and json.loads(out)["definition_changed"] is True
    code, out, _ = world.cli("replay", original, "--current", str(v2), "--json")
    assert code == 0
    replay = json.loads(out)
    assert replay["output"]["result"] == 6

    code, out, _ = world.cli("diff", original[:8], replay["execution_id"][:8])
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["a", original, "double", "completed"]
    assert lines[1].split() == ["b", replay["execution_id"], "double", "completed"]
    assert "definition: changed" in out
    assert "steps: 1 same, 1 changed, 0 only in a, 0 only in b" in out
    calc = next(line for line in lines if " calc " in line)
    label = next(line for line in lines if " label " in line)
    assert calc.startswith("≠") and not label.startswith("≠")
    assert "first divergence: calc attempt 1" in out
    assert "  output /result: 4 → 6" in out
    assert "definition diff:" in out
    assert any(line.startswith("-") and "* 2" in line for line in lines)
    assert any(line.startswith("+") and "* 3" in line for line in lines)

    code, out, _ = world.cli("diff", original, replay["execution_id"], "--json")
    diff = json.loads(out)
    assert diff["definition_changed"] is True and diff["summary"]["changed"] == 1
    assert diff["first_divergence"]["path"] == "calc"
    assert diff["first_divergence"]["output_changes"] == [
        {"path": "/result", "value_a": 4, "value_b": 6}]


def test_diff_of_exact_replays(world: World) -> None:
    original = world.run("chain", {"n": 4})
    _, out, _ = world.cli("replay", original, "--json")
    replay = json.loads(out)["execution_id"]
    code, out, _ = world.cli("diff", original, replay)
    assert code == 0 and "definition: same" in out and "definition diff:" not in out
    # each INSERT made a new row: calc is the same, the two inserts' last_id differ
    assert "steps: 1 same, 2 changed" in out
    assert "first divergence: first attempt 1\n  output /last_id: 1 → 3\n" in out

    pure = world.tmp / "double.yaml"
    pure.write_text(DOUBLE.format(factor=2))
    original = world.run("double", {"n": 1}, file=str(pure))
    _, out, _ = world.cli("replay", original, "--json")
    code, out, _ = world.cli("diff", original, json.loads(out)["execution_id"])
    assert code == 0 and "≠" not in out
    assert "no divergence: every step has the same status, route and output" in out


# ---------------------------------------------------------------- dead-letter queue


def test_dlq_list_stats_and_retry_after_the_fix(world: World) -> None:
    world.run("ingest", {"name": "apple"})
    world.run("ingest", {"name": "pear"})
    entries = world.dlq()
    assert [e["status"] for e in entries] == ["pending", "pending"]
    by_name = {e["payload"]["name"]: e["id"] for e in entries}

    code, out, _ = world.cli("dlq", "list", "--pipeline", "ingest")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["id", "created", "status"]
    assert out.count("no such table: items") == 2
    code, out, _ = world.cli("dlq", "list", "--text", by_name["pear"][:12], "--json")
    assert code == 0 and [e["id"] for e in json.loads(out)] == [by_name["pear"]]
    code, out, _ = world.cli("dlq", "stats")
    assert out.strip() == "pending 2  retrying 0  resolved 0  discarded 0  total 2"
    code, out, _ = world.cli("dlq", "show", by_name["apple"][:8])
    assert json.loads(out)["payload"] == {"name": "apple"}

    # still broken: the retry fails, the entry goes back to pending with its count
    code, out, err = world.cli("dlq", "retry", by_name["apple"], "--file", world.file)
    assert code == 1 and " failed " in out
    assert err == "dlq retry: 0/1 completed\n"  # not a terminal: only the final line

    with sqlite3.connect(world.app_db) as conn:
        conn.execute("CREATE TABLE items (name TEXT)")
    code, out, err = world.cli("dlq", "retry", by_name["apple"][:10], "--file", world.file,
                               "--patch", '[{"op": "replace", "path": "/name", "value": "Apple"}]')
    assert code == 0, err
    assert out.splitlines()[1].split()[:2] == [by_name["apple"][:12], "completed"]
    assert world.app("SELECT name FROM items") == [("Apple",)]

    code, out, _ = world.cli("dlq", "retry", "--all-pending", "--file", world.file, "--json")
    assert code == 0
    assert [(r["entry_id"], r["status"]) for r in json.loads(out)] == [(by_name["pear"], "completed")]
    assert sorted(world.app("SELECT name FROM items")) == [("Apple",), ("pear",)]
    statuses = {e["id"]: (e["status"], e["retry_count"]) for e in world.dlq()}
    assert statuses == {by_name["apple"]: ("resolved", 2), by_name["pear"]: ("resolved", 1)}
    code, out, _ = world.cli("dlq", "retry", "--all-pending", "--file", world.file)
    assert code == 0 and out.strip() == "no pending DLQ entries"


def test_dlq_resolve_discard_purge(world: World) -> None:
    for name in ("a", "b", "c"):
        world.run("ingest", {"name": name})
    ids = {e["payload"]["name"]: e["id"] for e in world.dlq()}
    code, out, _ = world.cli("dlq", "resolve", ids["a"][:9])
    assert code == 0 and out.startswith(f"resolved {ids['a']}")
    code, out, _ = world.cli("dlq", "discard", ids["b"])
    assert code == 0 and out.startswith(f"discarded {ids['b']}")

    before = world.snapshot()
    code, out, err = world.cli("dlq", "resolve", ids["b"])  # a state conflict, not bad input
    assert code == 1 and out == ""
    assert err.strip() == f"wfstudio: cannot resolve DLQ entry '{ids['b']}': it is already discarded"
    assert world.snapshot() == before

    code, out, _ = world.cli("dlq", "purge", "--older-than", "7d")
    assert code == 0 and out.startswith("purged 0 ")
    time.sleep(0.01)
    code, out, _ = world.cli("dlq", "purge", "--older-than", "0s")
    assert code == 0 and out.startswith("purged 2 ")
    assert [(e["id"], e["status"]) for e in world.dlq()] == [(ids["c"], "pending")]


def test_the_retry_progress_bar_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    bar = ProgressBar("dlq retry", screen, width=10)
    bar.update(3, 10)
    bar.update(10, 10)
    bar.finish("10/10 completed")
    assert screen.getvalue().split("\r")[1:] == [
        "dlq retry [###.......] 3/10", "dlq retry [##########] 10/10",
        "dlq retry: 10/10 completed".ljust(len("\rdlq retry [##########] 10/10")) + "\n"]

    quiet = io.StringIO()
    bar = ProgressBar("dlq retry", quiet)
    bar.update(1, 2)
    bar.finish("2/2 completed")
    assert quiet.getvalue() == "dlq retry: 2/2 completed\n"


# ---------------------------------------------------------------- mocks and breakpoints


def test_mocks_set_capture_list_remove_clear(world: World) -> None:
    original = world.run("chain", {"n": 2})
    code, out, _ = world.cli("mocks", "set", "chain", "calc", "--output", '{"twice": 50}',
                             "--delay", "20ms", "--file", world.file)
    assert code == 0 and out.startswith("mock ") and "chain/calc (fixed)" in out
    assert "after 20ms" in out
    code, out, _ = world.cli("replay", original, "--plan")
    assert "calc    mock    an enabled step mock" in out
    code, out, _ = world.cli("replay", original, "--json")
    assert code == 0 and json.loads(out)["output"]["twice"] == 50
    assert world.log()["second"] == [4, 50]

    code, out, _ = world.cli("mocks", "capture", original[:8], "first")
    assert code == 0 and "chain/first (recorded)" in out and '"last_id": 1' in out
    code, out, _ = world.cli("mocks", "set", "chain", "second", "--error", "down for maintenance",
                             "--file", world.file)
    assert code == 0 and "error 'down for maintenance'" in out

    code, out, _ = world.cli("mocks", "list", "--json")
    mocks = {m["step"]: m for m in json.loads(out)}
    assert set(mocks) == {"calc", "first", "second"}
    assert mocks["calc"]["hit_count"] == 1 and mocks["calc"]["delay_ms"] == 20
    assert mocks["first"]["mode"] == "recorded" and mocks["first"]["source_execution_id"] == original
    code, out, _ = world.cli("mocks", "list", "--pipeline", "chain")
    assert len(out.splitlines()) == 4 and "down for maintenance" in out

    code, out, _ = world.cli("mocks", "remove", mocks["calc"]["id"][:6])
    assert code == 0 and out.strip() == f"removed mock {mocks['calc']['id']}"
    code, out, _ = world.cli("mocks", "clear", "--pipeline", "chain")
    assert out.strip() == "removed 2 mock(s)"
    code, out, _ = world.cli("mocks", "list")
    assert out.strip() == "no mocks"
    assert world.stored("SELECT count(*) FROM step_mocks") == [(0,)]


def test_breakpoints_set_list_toggle_remove(world: World) -> None:
    code, out, _ = world.cli("breakpoints", "set", "chain", "calc", "--condition", ".n > 1",
                             "--file", world.file)
    assert code == 0 and out.endswith("chain/calc when .n > 1 (enabled)\n")
    point = out.split()[1].rstrip(":")
    code, out, _ = world.cli("breakpoints", "disable", point[:5])
    assert out.strip().endswith("(disabled)")
    code, out, _ = world.cli("breakpoints", "list", "--json")
    assert [(b["id"], b["enabled"], b["condition"]) for b in json.loads(out)] == [
        (point, False, ".n > 1")]
    code, out, _ = world.cli("breakpoints", "enable", point)
    assert out.strip().endswith("(enabled)")
    code, out, _ = world.cli("breakpoints", "list")
    assert out.splitlines()[1].split() == [point, "chain", "calc", "yes", "0", ".n", ">", "1"]
    code, out, _ = world.cli("breakpoints", "remove", point)
    assert code == 0 and out.strip() == f"removed breakpoint {point}"
    assert world.stored("SELECT count(*) FROM breakpoints") == [(0,)]


def test_a_replay_here_does_not_stop_at_breakpoints(world: World) -> None:
    """No debugger can resume it in this process: CLI replays run with breakpoints off."""
    original = world.run("chain", {"n": 2})
    assert world.cli("breakpoints", "set", "chain", "calc", "--file", world.file)[0] == 0
    done = subprocess.run([sys.executable, "-m", "engine.cli", "replay", original, "--json",
                           "--store", world.store], capture_output=True, text=True, timeout=60,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "completed"
    _, out, _ = world.cli("breakpoints", "list", "--json")
    assert json.loads(out)[0]["hit_count"] == 0


# ---------------------------------------------------------------- backfill


def test_backfill_over_past_executions(world: World) -> None:
    for n in (1, 2, 3):
        world.run("chain", {"n": n})
    code, out, err = world.cli("backfill", "chain", "--file", world.file, "--since", "1h",
                               "--concurrency", "2", "--json")
    assert code == 0, err
    backfill = json.loads(out)
    assert (backfill["status"], backfill["total"], backfill["succeeded"], backfill["failed"]) == (
        "completed", 3, 3, 0)
    assert backfill["source"]["kind"] == "executions"
    assert err.strip() == "backfill: completed, 3/3 run"
    assert sorted(world.log()["first"]) == [1, 1, 2, 2, 3, 3]
    assert world.stored("SELECT count(*) FROM executions WHERE trigger_type = 'backfill'") == [(3,)]

    code, out, _ = world.cli("backfills", "list")
    assert out.splitlines()[1].split()[3:5] == ["completed", "3/3"]
    code, out, _ = world.cli("backfills", "show", backfill["id"][:8])
    assert out.startswith(f"backfill {backfill['id']} of chain completed in ")
    assert "3/3 run, 3 succeeded, 0 failed" in out
    # a window with nothing in it
    code, out, _ = world.cli("backfill", "chain", "--file", world.file, "--until", "2000-01-01")
    assert code == 0 and "0/0 run" in out


def test_backfill_from_jsonl_exits_1_when_a_run_fails(world: World) -> None:
    lines = world.tmp / "in.jsonl"
    lines.write_text('{"n": 10}\n\n{"n": 20}\n')
    code, out, _ = world.cli("backfill", "chain", "--file", world.file, "--jsonl", str(lines))
    assert code == 0 and "2/2 run, 2 succeeded, 0 failed" in out
    assert sorted(world.log()["second"]) == [20, 40]

    names = world.tmp / "names.jsonl"
    names.write_text('{"name": "a"}\n{"name": "b"}\n')
    code, out, _ = world.cli("backfill", "ingest", "--file", world.file, "--jsonl", str(names))
    assert code == 1 and "2/2 run, 0 succeeded, 2 failed" in out


def test_ctrl_c_cancels_the_backfill(world: World) -> None:
    lines = world.tmp / "many.jsonl"
    lines.write_text("".join(f'{{"i": {i}}}\n' for i in range(30)))
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "backfill", "slow", "--file", world.file,
         "--jsonl", str(lines), "--concurrency", "2", "--store", world.store],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        # a runner started in the background may ignore SIGINT: the child must not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if world.store_db.exists():
                try:
                    if world.stored("SELECT done FROM backfills WHERE done > 0"):
                        break
                except sqlite3.OperationalError:
                    pass  # the store is still being created
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert " cancelled in " in out and "Traceback" not in err
    assert "interrupted: the backfill was cancelled" in err
    [(status, done, total)] = world.stored("SELECT status, done, total FROM backfills")
    assert status == "cancelled" and 0 < done < total == 30
    assert world.stored("SELECT count(*) FROM executions WHERE status = 'running'") == [(0,)]


# ---------------------------------------------------------------- ids and bad input


def test_an_ambiguous_prefix_is_refused(world: World) -> None:
    for n in range(17):  # 17 ids over 16 hex digits: two share a first character
        world.run("chain", {"n": n})
    ids = [row[0] for row in world.stored("SELECT id FROM executions")]
    shared = next(c for c in "0123456789abcdef" if sum(i.startswith(c) for i in ids) > 1)
    before = world.snapshot()
    code, out, err = world.cli("replay", shared)
    assert code == 2 and out == ""
    assert err.startswith(f"wfstudio: execution id '{shared}' is ambiguous (")
    assert err.strip().endswith("give more characters") and len(err.splitlines()) == 1
    assert world.snapshot() == before


def test_the_store_comes_from_the_environment(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.run("ingest", {"name": "x"})
    monkeypatch.setenv("WFSTUDIO_STORE", world.store)
    assert main(["dlq", "stats", "--json"]) == 0
    assert json.loads(world.capsys.readouterr().out)["pending"] == 1


BAD_INPUT = [
    (["replay", "nope"], "no execution 'nope'"),
    (["replay", "{exec}", "--patch", "{bad"], "--patch: invalid JSON at line 1 column 2"),
    (["replay", "{exec}", "--patch", '{"op": "add"}'], "--patch: expected a JSON Patch"),
    (["replay", "{exec}", "--patch", '[{"op": "replace", "path": "/missing", "value": 1}]'],
     "patch does not apply to the trigger payload"),
    (["replay", "{exec}", "--patch", "[]", "--payload", "{}"], "either --patch or --payload"),
    (["replay", "{exec}", "--from-step", "nope"], "no top-level step 'nope' in pipeline 'chain'"),
    (["replay", "{exec}", "--mock", "calc"], "use STEP=JSON"),
    (["replay", "{exec}", "--recorded-mock", "nope"], "no recorded output of step 'nope'"),
    (["diff", "{exec}", "nope"], "no execution 'nope'"),
    (["dlq", "show", "nope"], "no DLQ entry 'nope'"),
    (["dlq", "list", "--status", "weird"], "unknown DLQ status 'weird'"),
    (["dlq", "retry", "nope", "--file", "{file}"], "no DLQ entry 'nope'"),
    (["dlq", "retry", "{entry}"], "pipeline 'ingest' of the entries to retry is not loaded: "
                                  "pass the file(s) defining them with --file FILE"),
    (["dlq", "retry", "{entry}", "--file", "{file}", "--patch",
      '[{"op": "remove", "path": "/nothing"}]'], "the patch does not apply to the payload of DLQ entry"),
    (["dlq", "retry"], "dlq retry needs entry ids or --all-pending"),
    (["dlq", "resolve", "nope"], "no DLQ entry 'nope'"),
    (["dlq", "discard", "nope"], "no DLQ entry 'nope'"),
    (["dlq", "purge", "--older-than", "soon"], "--older-than: invalid duration 'soon'"),
    (["mocks", "set", "chain", "nope", "--output", "1", "--file", "{file}"],
     "pipeline 'chain' has no step 'nope'"),
    (["mocks", "set", "nope", "calc", "--output", "1", "--file", "{file}"],
     "no pipeline named 'nope'"),
    (["mocks", "set", "chain", "calc", "--output", "{x", "--file", "{file}"],
     "--output: invalid JSON"),
    (["mocks", "set", "chain", "calc", "--output", "1", "--delay", "fast", "--file", "{file}"],
     "--delay: invalid duration 'fast'"),
    (["mocks", "capture", "{exec}", "nope"], "step 'nope' has no recorded output"),
    (["mocks", "capture", "nope", "calc"], "no execution 'nope'"),
    (["mocks", "remove", "nope"], "no mock 'nope'"),
    (["breakpoints", "set", "chain", "calc", "--condition", ".n >", "--file", "{file}"],
     "breakpoint condition does not compile"),
    (["breakpoints", "set", "chain", "nope", "--file", "{file}"], "has no step 'nope'"),
    (["breakpoints", "enable", "nope"], "no breakpoint 'nope'"),
    (["breakpoints", "remove", "nope"], "no breakpoint 'nope'"),
    (["backfill", "nope", "--file", "{file}"], "cannot backfill 'nope'"),
    (["backfill", "chain", "--file", "{file}", "--since", "yesterday"],
     "--since: 'yesterday' is neither an age"),
    (["backfill", "chain", "--file", "{file}", "--concurrency", "0"],
     "backfill: concurrency: Input should be greater than or equal to 1"),
    (["backfill", "chain", "--file", "{file}", "--jsonl", "{tmp}/missing.jsonl"],
     "cannot read --jsonl"),
    (["backfill", "chain", "--file", "{file}", "--jsonl", "{tmp}/bad.jsonl"],
     "--jsonl: invalid JSON at line 2 column 2"),
    (["backfill", "chain", "--file", "{file}", "--jsonl", "{tmp}/bad.jsonl", "--since", "1d"],
     "give either --jsonl or past executions"),
    (["backfills", "show", "nope"], "no backfill 'nope'"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT, ids=[" ".join(a[:3]) for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(world: World, args: list[str],
                                                          message: str) -> None:
    execution = world.run("chain", {"n": 2})
    world.run("ingest", {"name": "x"})
    (world.tmp / "bad.jsonl").write_text('{"n": 1}\n{nope\n')
    [entry] = world.dlq()
    before = world.snapshot()
    log = world.log()
    values = {"exec": execution, "entry": entry["id"], "file": world.file, "tmp": str(world.tmp)}
    filled = []
    for arg in args:
        for key, value in values.items():
            arg = arg.replace("{" + key + "}", value)
        filled.append(arg)
    code, out, err = world.cli(*filled)
    assert code == 2, err
    assert out == ""
    assert err.startswith("wfstudio: ") and len(err.splitlines()) == 1
    assert message in err
    assert world.snapshot() == before
    assert world.log() == log


def test_an_invalid_file_prints_its_diagnostics(world: World) -> None:
    broken = world.tmp / "broken.yaml"
    broken.write_text("pipelines:\n  p:\n    steps:\n      - {name: a, type: step.sett}\n")
    code, _, err = world.cli("mocks", "set", "p", "a", "--output", "1", "--file", str(broken))
    assert code == 1 and f"{broken}:4:" in err and "Traceback" not in err
