"""``wfstudio sources`` and ``wfstudio schemas``: over local files and a SQLite store, and
on a real server (uvicorn on loopback) with ``--server`` and a key.

Everything runs ``main([...])`` in-process; the store is a real SQLite file that each
command opens anew, so what one command recorded (a delivery, a registered schema) is what
the next one finds.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.cli import main
from tests.contract.contract_harness import LoopbackHost, Served

REDIS_URL = "redis://127.0.0.1:6379/0"
FILE = """\
schemas:
  order.created:
    type: object
    required: [id, lines]
    properties:
      id: {type: string}
      lines:
        type: array
        items:
          type: object
          required: [sku]
          properties: {sku: {type: string}, qty: {type: integer, minimum: 1}}
connectors:
  - name: orders
    type: source.redis_streams
    config: {url: "REDIS_URL", stream: "STREAM", group: wfstudio, schema: order.created}
pipelines:
  take_order:
    record: full
    trigger: {type: event, config: {connector: orders, type: order.created}}
    steps:
      - name: check
        type: step.fail
        if: "{{ .data.fail }}"
        config: {message: refused on purpose}
      - {name: linger, type: step.delay, if: "{{ .data.linger }}", config: {duration: 3s}}
      - {name: out, type: step.pipeline_output, config: {values: {order: "{{ .data.id }}"}}}
"""
GOOD = {"id": "o-1", "lines": [{"sku": "a", "qty": 2}]}


@pytest.fixture
def stream() -> Iterator[str]:
    import redis

    name = f"wfstudio-cli-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.delete(name)
    finally:
        client.close()


@pytest.fixture
def pipeline_file(tmp_path: Path, stream: str) -> Path:
    path = tmp_path / "orders.yaml"
    path.write_text(FILE.replace("REDIS_URL", REDIS_URL).replace("STREAM", stream))
    return path


@pytest.fixture
def local(pipeline_file: Path, tmp_path: Path) -> list[str]:
    """The options that make a command work on the file and a SQLite store here."""
    return ["--file", str(pipeline_file), "--store", f"sqlite:///{tmp_path / 'store.db'}"]


@pytest.fixture(autouse=True)
def no_server_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WFSTUDIO_SERVER", raising=False)
    monkeypatch.delenv("WFSTUDIO_API_KEY", raising=False)
    monkeypatch.delenv("WFSTUDIO_STORE", raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def as_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def shown(capsys: pytest.CaptureFixture[str], execution: str, store: str) -> Any:
    """``wfstudio executions show``: the execution as the store keeps it."""
    code, out, err = run(capsys, "executions", "show", execution, "--store", store)
    assert code == 0, err
    return json.loads(out)


# ---------------------------------------------------------------- sources, local


def test_list_shows_the_files_source(capsys: pytest.CaptureFixture[str], local: list[str],
                                     stream: str) -> None:
    code, out, err = run(capsys, "sources", "list", *local)
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split()[:4] == ["name", "type", "state", "pipelines"]
    assert row.split()[:4] == ["orders", "source.redis_streams", "stopped", "take_order"]
    [listed] = as_json(capsys, "sources", "list", *local)
    assert listed["config"]["stream"] == stream and listed["state"] == "stopped"


def test_list_without_files_says_how_to_give_them(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    code, out, _ = run(capsys, "sources", "list", "--store", f"sqlite:///{tmp_path / 's.db'}")
    assert code == 0 and "no sources" in out and "--file" in out


def test_send_runs_the_event_once_and_a_resend_is_a_duplicate(
        capsys: pytest.CaptureFixture[str], local: list[str]) -> None:
    code, out, err = run(capsys, "sources", "send", "orders", *local, "--id", "evt-1",
                         "--data", json.dumps(GOOD))
    assert code == 0, err
    words = out.split()
    assert words[:3] == ["evt-1", "started:", "take_order"] and words[-1] == "completed", out
    execution = words[3]

    code, out, err = run(capsys, "sources", "send", "orders", *local, "--id", "evt-1",
                         "--data", json.dumps(GOOD))
    assert code == 0, err
    assert out.startswith(f"evt-1 duplicate: taken in before as execution {execution}")
    assert "delivered 2 times" in out

    [delivery] = as_json(capsys, "sources", "deliveries", "orders", *local)
    assert (delivery["event_id"], delivery["execution_id"], delivery["outcome"],
            delivery["execution_status"], delivery["deliveries"]) == (
        "evt-1", execution, "done", "completed", 2)
    code, out, _ = run(capsys, "sources", "deliveries", "orders", *local)
    assert code == 0 and "evt-1" in out and execution[:12] in out
    summary = shown(capsys, execution, local[3])
    assert summary["status"] == "completed" and summary["output"] == {"order": "o-1"}


def test_send_reads_data_from_a_file_and_takes_type_and_subject(
        capsys: pytest.CaptureFixture[str], local: list[str], tmp_path: Path) -> None:
    data = tmp_path / "event.json"
    data.write_text(json.dumps(GOOD))
    sent = as_json(capsys, "sources", "send", "orders", *local, "--data-file", str(data),
                   "--type", "order.created", "--subject", "orders/o-1")
    assert (sent["outcome"], sent["type"], sent["execution_status"]) == (
        "started", "order.created", "completed")
    summary = shown(capsys, sent["execution_id"], local[3])
    assert summary["trigger_payload"]["subject"] == "orders/o-1"


def test_data_failing_the_schema_is_dead_lettered_with_its_paths(
        capsys: pytest.CaptureFixture[str], local: list[str]) -> None:
    code, out, _ = run(capsys, "sources", "send", "orders", *local, "--id", "bad-1", "--data",
                       json.dumps({"id": "o-2", "lines": [{"qty": 0}]}))
    assert code == 1
    first, error = out.splitlines()
    assert first.startswith("bad-1 dead-lettered: DLQ entry ")
    assert "lines/0: 'sku' is a required property" in error
    assert "lines/0/qty: 0 is less than the minimum of 1" in error
    [entry] = as_json(capsys, "dlq", "list", "--store", local[3])
    assert entry["pipeline"] == "take_order" and first.split()[4] == entry["id"]


def test_a_failed_execution_and_an_unrouted_type_exit_1(capsys: pytest.CaptureFixture[str],
                                                        local: list[str]) -> None:
    code, out, _ = run(capsys, "sources", "send", "orders", *local, "--data",
                       json.dumps({**GOOD, "fail": True}))
    assert code == 1 and out.split()[-1] == "failed", out
    code, out, _ = run(capsys, "sources", "send", "orders", *local, "--type", "order.lost",
                       "--data", "{}")
    assert code == 1 and "filtered" in out and "'order.lost'" in out


def test_an_execution_still_running_after_the_timeout_exits_1(
        capsys: pytest.CaptureFixture[str], local: list[str]) -> None:
    code, out, err = run(capsys, "sources", "send", "orders", *local, "--timeout", "1",
                         "--data", json.dumps({**GOOD, "linger": True}))
    assert code == 1 and out.split()[-1] == "running", out
    assert "had not ended after --timeout 1s; it runs on" in err
    code, out, _ = run(capsys, "sources", "send", "orders", *local, "--no-wait", "--data",
                       json.dumps(GOOD))
    assert code == 0 and out.split()[1] == "started:", out


@pytest.mark.parametrize(("argv", "message"), [
    (["sources", "start", "orders"], "acts on a running server"),
    (["sources", "stop", "orders"], "acts on a running server"),
    (["sources", "send", "nope", "--data", "{}"], "no source named 'nope' (sources: orders)"),
    (["sources", "deliveries", "nope"], "no source named 'nope'"),
    (["sources", "send", "orders", "--data", '{"id": '], "--data: "),
    (["sources", "send", "orders", "--data", "{}", "--data-file", "x.json"], "not both"),
    (["sources", "send", "orders", "--data-file", "/nonexistent/x.json"],
     "cannot read --data-file /nonexistent/x.json"),
    (["sources", "send", "orders", "--id", "", "--data", "{}"], "'id' must not be"),
    (["sources", "deliveries", "orders", "--limit", "0"], "not a positive number"),
])
def test_bad_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], local: list[str],
                                          argv: list[str], message: str) -> None:
    code, _out, err = run(capsys, *argv, *local)
    assert code == 2, err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(("extra", "message"), [
    (["--server", "http://127.0.0.1:9", "--store", "sqlite:///x.db"], "drop --store/--file"),
    (["--server", "127.0.0.1:8000"], "give the server's URL"),
    (["--server", "http://127.0.0.1:9"], "--server needs an API key"),
])
def test_server_options_are_checked(capsys: pytest.CaptureFixture[str], extra: list[str],
                                    message: str) -> None:
    code, _out, err = run(capsys, "sources", "list", *extra)
    assert code == 2 and message in err, err


def test_an_unreachable_server_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    code, _out, err = run(capsys, "sources", "list", "--server", "http://127.0.0.1:9",
                          "--key", "wfs_nope")
    assert code == 1 and err.startswith("wfstudio: ") and len(err.splitlines()) == 1, err


# ---------------------------------------------------------------- schemas, local


def test_schemas_list_add_validate(capsys: pytest.CaptureFixture[str], local: list[str],
                                   tmp_path: Path) -> None:
    code, out, _ = run(capsys, "schemas", "list", *local)
    assert code == 0 and out.splitlines()[1].split()[:2] == ["order.created", "0"]
    schema = tmp_path / "moved.json"
    schema.write_text(json.dumps({"type": "object", "required": ["sku", "to"],
                                  "properties": {"to": {"type": "object", "required": ["bin"]}}}))
    code, out, err = run(capsys, "schemas", "add", "item.moved", str(schema), *local)
    assert (code, out.strip()) == (0, "registered item.moved version 1"), err
    code, out, _ = run(capsys, "schemas", "add", "item.moved", str(schema), *local)
    assert out.strip() == "registered item.moved version 2"
    listed = as_json(capsys, "schemas", "list", *local)
    assert [(s["type"], s["version"]) for s in listed] == [
        ("order.created", 0), ("item.moved", 1), ("item.moved", 2)]

    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps({"sku": "a", "to": {"bin": "b1"}}))
    bad.write_text(json.dumps({"to": {"shelf": 3}}))
    code, out, _ = run(capsys, "schemas", "validate", "item.moved", str(good), *local)
    assert (code, out.strip()) == (0, f"{good}: valid item.moved")
    code, out, _ = run(capsys, "schemas", "validate", "item.moved", str(bad), *local)
    assert code == 1
    assert out.splitlines() == [f"{bad}: 2 violations of item.moved:",
                                "  (root): 'sku' is a required property",
                                "  to: 'bin' is a required property"]
    checked = as_json_code(capsys, 1, "schemas", "validate", "item.moved", str(bad), *local)
    assert checked["valid"] is False and len(checked["violations"]) == 2
    # The declared schema of the file is there too, and nested paths are named.
    order = tmp_path / "order.json"
    order.write_text(json.dumps({"id": "o-1", "lines": [{"sku": "a"}, {"qty": "2"}]}))
    code, out, _ = run(capsys, "schemas", "validate", "order.created", str(order), *local)
    assert code == 1 and "  lines/1: 'sku' is a required property" in out.splitlines()
    assert "  lines/1/qty: '2' is not of type 'integer'" in out.splitlines()


def as_json_code(capsys: pytest.CaptureFixture[str], expected: int, *argv: str) -> Any:
    code, out, err = run(capsys, *argv, "--json")
    assert code == expected, err
    return json.loads(out)


def test_schema_errors_are_one_line(capsys: pytest.CaptureFixture[str], local: list[str],
                                    tmp_path: Path) -> None:
    not_schema, not_json, array = (tmp_path / n for n in ("s.json", "j.json", "a.json"))
    not_schema.write_text(json.dumps({"type": "no-such-type"}))
    not_json.write_text('{"type": "object",\n  "required": [sku]}')
    array.write_text("[1, 2]")
    for argv, message in (
            (["add", "t", str(not_schema)], "not a valid JSON Schema"),
            (["add", "t", str(not_json)], f"{not_json}: "),
            (["add", "t", str(array)], "expected a JSON object"),
            (["add", "t", str(tmp_path / "missing.json")], "cannot read schema file"),
            (["validate", "nope", str(array)], "no schema registered for event type 'nope'")):
        code, _out, err = run(capsys, "schemas", *argv, *local)
        assert code == 2, (argv, err)
        assert message in err and len(err.splitlines()) == 1, err
    code, _out, err = run(capsys, "schemas", "add", "t", str(not_json), *local)
    assert "line 2" in err  # where in the file


# ---------------------------------------------------------------- on a server


@pytest.fixture(scope="module")
def host() -> Iterator[LoopbackHost]:
    server = LoopbackHost().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def served(host: LoopbackHost, pipeline_file: Path, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    with host.serve([pipeline_file], f"sqlite:///{tmp_path / 'server.db'}") as server:
        monkeypatch.setenv("WFSTUDIO_API_KEY", server.admin_key)  # how a key stays out of ps
        yield server


def test_every_verb_on_a_server(capsys: pytest.CaptureFixture[str], served: Served,
                                tmp_path: Path) -> None:
    on = ["--server", served.base_url]
    code, out, err = run(capsys, "sources", "list", *on)
    assert code == 0 and out.splitlines()[1].split()[:3] == [
        "orders", "source.redis_streams", "stopped"], err
    assert run(capsys, "sources", "start", "orders", *on)[1].strip() == "orders running"
    assert as_json(capsys, "sources", "list", *on)[0]["state"] == "running"
    assert run(capsys, "sources", "stop", "orders", *on)[1].strip() == "orders stopped"

    sent = as_json(capsys, "sources", "send", "orders", *on, "--id", "evt-9", "--data",
                   json.dumps(GOOD))
    assert (sent["outcome"], sent["execution_status"]) == ("started", "completed")
    code, out, _ = run(capsys, "sources", "send", "orders", *on, "--id", "evt-9", "--data",
                       json.dumps(GOOD))
    assert code == 0 and "duplicate" in out
    [delivery] = as_json(capsys, "sources", "deliveries", "orders", *on, "--limit", "5")
    assert (delivery["event_id"], delivery["execution_id"]) == ("evt-9", sent["execution_id"])

    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "required": ["sku"]}))
    assert run(capsys, "schemas", "add", "item.moved", str(schema), *on)[1].strip() == (
        "registered item.moved version 1")
    event = tmp_path / "event.json"
    event.write_text("{}")
    code, out, _ = run(capsys, "schemas", "validate", "item.moved", str(event), *on)
    assert code == 1 and "(root): 'sku' is a required property" in out
    assert [s["type"] for s in as_json(capsys, "schemas", "list", *on)] == [
        "order.created", "item.moved"]

    code, _out, err = run(capsys, "sources", "start", "nope", *on)
    assert code == 2 and "no source named 'nope'" in err


def test_a_server_refuses_a_wrong_key_and_a_missing_scope(
        capsys: pytest.CaptureFixture[str], served: Served) -> None:
    on = ["--server", served.base_url]
    code, _out, err = run(capsys, "sources", "list", *on, "--key", "wfs_wrong_key")
    assert code == 1 and "API key" in err and len(err.splitlines()) == 1, err
    _, reader = served.keys.create("reader", scopes=["read"])
    code, _out, err = run(capsys, "sources", "start", "orders", *on, "--key", reader)
    assert code == 1 and "'admin'" in err, err
