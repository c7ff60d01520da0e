"""Node-RED as a peer: an HTTP-in → 4 function nodes → HTTP-response flow on loopback.

The flow does what the server benchmark's ``POST /webhook`` pipeline does (pick the event and
order ids, build a label, count the line items, set a flag, reply with three values), and
records nothing. Node-RED runs from benchmarks/peers/.node-red (install.sh) with its editor
and admin API off, bound to 127.0.0.1, with a throwaway user directory.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = HERE / ".node-red" / "node_modules" / "node-red"
RED_JS = PACKAGE / "red.js"


def version() -> str:
    """The installed Node-RED's version (from its package.json)."""
    try:
        found: str = json.loads((PACKAGE / "package.json").read_text())["version"]
        return found
    except (OSError, ValueError, KeyError):
        return "(not installed)"

FUNCTIONS = [
    "msg.event = msg.payload.id;\nmsg.order_id = msg.payload.data.order.id;\nreturn msg;",
    'msg.label = "order " + msg.order_id + " (" + msg.event + ")";\nreturn msg;',
    "msg.items = msg.payload.data.order.line_items.length;\nreturn msg;",
    "msg.ok = true;\nmsg.payload = {id: msg.event, label: msg.label, items: msg.items};\nreturn msg;",
]

SETTINGS = """module.exports = {
    uiHost: "127.0.0.1",
    httpAdminRoot: false,
    httpNodeRoot: "/",
    flowFile: "flows.json",
    credentialSecret: false,
    apiMaxLength: "5mb",
    diagnostics: {enabled: false},
    runtimeState: {enabled: false},
    telemetry: {enabled: false},
    logging: {console: {level: "warn", metrics: false, audit: false}},
};
"""


def flow() -> list[dict[str, object]]:
    nodes: list[dict[str, object]] = [
        {"id": "tab", "type": "tab", "label": "bench"},
        {"id": "in", "type": "http in", "z": "tab", "url": "/webhook", "method": "post",
         "upload": False, "wires": [["f0"]]},
    ]
    for i, body in enumerate(FUNCTIONS):
        following = f"f{i + 1}" if i + 1 < len(FUNCTIONS) else "out"
        nodes.append({"id": f"f{i}", "type": "function", "z": "tab", "name": f"step {i}",
                      "func": body, "outputs": 1, "wires": [[following]]})
    nodes.append({"id": "out", "type": "http response", "z": "tab", "statusCode": "200",
                  "headers": {}, "wires": []})
    return nodes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def node_version() -> str:
    done = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True)
    return done.stdout.strip()


@contextlib.contextmanager
def node_red(probe_body: bytes) -> Iterator[tuple[str, int]]:
    """Node-RED serving the flow on a free loopback port; yields (base URL, pid) once
    ``POST /webhook`` with ``probe_body`` answers 200, and stops it afterwards."""
    import httpx

    if not RED_JS.exists():
        raise RuntimeError(f"{RED_JS} is missing: run benchmarks/peers/install.sh")
    if shutil.which("node") is None:
        raise RuntimeError("node is not on PATH")
    port = free_port()
    with tempfile.TemporaryDirectory() as user_dir:
        (Path(user_dir) / "settings.js").write_text(SETTINGS)
        (Path(user_dir) / "flows.json").write_text(json.dumps(flow()))
        with tempfile.TemporaryFile() as log:
            proc = subprocess.Popen(
                ["node", str(RED_JS), "--userDir", user_dir, "--settings",
                 str(Path(user_dir) / "settings.js"), "--port", str(port)],
                stdout=log, stderr=log)
            base = f"http://127.0.0.1:{port}"
            try:
                deadline = time.monotonic() + 60
                while True:
                    if proc.poll() is not None:
                        log.seek(0)
                        raise RuntimeError(f"Node-RED exited:\n{log.read().decode()}")
                    with contextlib.suppress(httpx.HTTPError):
                        reply = httpx.post(f"{base}/webhook", content=probe_body, timeout=2,
                                           headers={"Content-Type": "application/json"})
                        if reply.status_code == 200:
                            break
                    if time.monotonic() > deadline:
                        log.seek(0)
                        raise RuntimeError(f"Node-RED did not answer within 60 s:\n"
                                           f"{log.read().decode()[-2000:]}")
                    time.sleep(0.2)
                yield base, proc.pid
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
