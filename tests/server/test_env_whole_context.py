"""Over a real ``wfstudio serve --allow-env``: a variable the server allows is still read
only by the programs that name it; ``{{ . }}`` and step.jq's ``.`` hold none, and none is
recorded (docs/pipeline-format.md §2.1; the in-process twin is
``tests/engine/test_env_reach.py``)."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx

from engine.server import KeyStore
from engine.store.store import Store
from tests.server.support import auth, healthy
from tests.waiting import wait_until

SHOWN = "wfs-served-shown-41c8e2"
HIDDEN = "wfs-served-hidden-7b90d3"  # allowed by the server, never named by the pipeline

PIPELINE = """\
pipelines:
  probe:
    record: full
    steps:
      - name: whole
        type: step.set
        config: {values: {all: "{{ . }}", keys: "{{ keys }}", text: "{{ tojson }}"}}
      - {name: jq_root, type: step.jq, config: {expression: "."}}
      - name: named
        type: step.set
        config:
          values:
            dot: "{{ .env.WFS_ENVTEST_SHOWN }}"
            var: "{{ $ENV.WFS_ENVTEST_SHOWN }}"
            fn: "{{ env.WFS_ENVTEST_SHOWN }}"
      - {name: out, type: step.pipeline_output, config: {values: "{{ . }}"}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _stored_text(path: Path) -> str:
    with sqlite3.connect(path) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return "\n".join(value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                         for table in tables for row in db.execute(f'SELECT * FROM "{table}"')
                         for value in row)


def test_serve_records_no_allowed_variable_a_pipeline_does_not_name(tmp_path: Path) -> None:
    (tmp_path / "probe.yaml").write_text(PIPELINE)
    store = tmp_path / "served.db"
    with Store.open(f"sqlite:///{store}") as opened:
        secret = KeyStore(opened).create("runner", scopes=["run", "read"])[1]
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "WFS_ENVTEST_SHOWN": SHOWN,
           "WFS_ENVTEST_HIDDEN": HIDDEN}
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "serve", str(tmp_path / "probe.yaml"), "--addr",
         f"127.0.0.1:{port}", "--store", f"sqlite:///{store}", "--allow-env", "WFS_ENVTEST_*"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        cwd=Path(__file__).resolve().parents[2])
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: healthy(base) or process.poll() is not None, "the server to come up",
                   timeout=60)
        assert process.poll() is None, process.communicate()[1]
        answer = httpx.post(f"{base}/api/v1/pipelines/probe/runs", headers=auth(secret),
                            json={"input": {"qty": 2}}, timeout=30)
        assert answer.status_code == 201, answer.text
        output = answer.json()["output"]
        assert output["dot"] == output["var"] == output["fn"] == SHOWN
        assert "env" not in output and "env" not in output["all"] and "env" not in output["keys"]
        assert "env" not in output["steps"]["jq_root"]["result"]
        assert HIDDEN not in answer.text
        wait_until(lambda: SHOWN in _stored_text(store), "the run's values in the store",
                   timeout=60)
        assert HIDDEN not in _stored_text(store)
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
