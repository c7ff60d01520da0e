"""schemathesis (its CLI, every check) against the server's own OpenAPI document, on a real
server: generated requests, valid and invalid, never get a 5xx, and every answer conforms:
status documented, content type, body and headers as declared, 405 with ``Allow`` for an
undeclared method, invalid input refused, valid input accepted.

Valid input accepted: a value the schema allows is never a 422, except where the operation
checks what a JSON Schema cannot say. Those operations, and why, are ``SEMANTIC_422`` below;
each still must not answer 422 for anything else the schema states (types, lengths, enums,
unknown fields are all in the schema).

Bounded: a fixed seed and a few examples per operation. Two servers, so that no run waits
on a pause: one takes every operation that runs pipelines, the other the debugger and the
mocks (which make runs stop or wait). The event streams are left out (the stream of all
executions never ends by itself); revoking keys is fuzzed without the stateful phase, which
would otherwise revoke the key it fuzzes with.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.server.keys import SCOPES, KeyStore
from engine.store.store import Store

SEED = 20251207
EXAMPLES = 12  # per operation and phase

SEMANTIC_422: dict[tuple[str, str], str] = {
    ("GET", "/api/v1/executions"): "cursor must be one the server handed out",
    ("POST", "/api/v1/backfills"): "jsonl must be JSON Lines; jsonl excludes since/until/"
                                   "source_pipeline; since <= until",
    ("POST", "/api/v1/debug/breakpoints"): "the condition must compile (jq); the step must exist",
    ("POST", "/api/v1/mocks"): "the step must exist; mode error needs error.message",
    ("POST", "/api/v1/mocks/from-execution"): "the step must have a recorded output",
    ("POST", "/api/v1/executions/{execution_id}/replay"): "fields allowed depend on mode; "
                                                          "from_step must have run; the patch must apply",
    ("POST", "/api/v1/executions/{execution_id}/replay/plan"): "as the replay",
    ("PUT", "/api/v1/definitions"): "the YAML must be a valid pipeline file",
    ("POST", "/api/v1/schemas"): "the schema must be a valid JSON Schema",
    ("POST", "/api/v1/dlq/retry"): "the patch must apply to each entry's payload",
    ("POST", "/api/v1/debug/paused/{execution_id}/resume"): "the patch must apply to the context",
}
# Operations that make runs stop or wait (the debugger, the mocks), and revoking keys.
STEERING = r"^/api/v1/(debug/|mocks|keys/\{key_id\})"

def _config(tmp_path: Path) -> Path:
    lines = ["[checks.positive_data_acceptance]",
             'expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]', ""]
    for (method, path), _why in SEMANTIC_422.items():
        lines += ["[[operations]]", f'include-path = "{path}"', f'include-method = "{method}"',
                  "checks.positive_data_acceptance.expected-statuses = "
                  '["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]', ""]
    config = tmp_path / "schemathesis.toml"
    config.write_text("\n".join(lines))
    return config


def _run(url: str, secret: str, config: Path, *selection: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(config),
               "run", f"{url}/api/v1/openapi.json", "--header", f"X-API-Key: {secret}",
               "--checks", "all", "--seed", str(SEED), "--max-examples", str(EXAMPLES),
               "--workers", "1", "--request-timeout", "60", "--suppress-health-check", "all",
               "--no-color", *selection]
    # in the config's folder: schemathesis keeps its example database in the working directory
    return subprocess.run(command, capture_output=True, text=True, timeout=1200, check=False,
                          cwd=config.parent)


@pytest.fixture
def servers(live_factory: Any, tmp_path: Path) -> list[tuple[Any, str]]:
    """Two servers, each with a key holding every scope (admin does not imply deploy)."""
    started = []
    for n in range(2):
        url = f"sqlite:///{tmp_path / f'fuzzed-{n}.db'}"
        server, _secrets = live_factory(url, deploy_dir=tmp_path / f"deployed-{n}")
        with Store.open(url) as store:
            started.append((server, KeyStore(store).create("fuzzer", scopes=list(SCOPES))[1]))
    return started


def test_the_api_honours_its_openapi_document(servers: list[tuple[Any, str]],
                                              tmp_path: Path) -> None:
    config = _config(tmp_path)
    (running, running_key), (steering, steering_key) = servers
    runs = [
        _run(running.url, running_key, config, "--exclude-path-regex", f"(stream$)|{STEERING}"),
        _run(steering.url, steering_key, config, "--include-path-regex", STEERING,
             "--phases", "examples,coverage,fuzzing"),
    ]
    for result in runs:
        report = result.stdout[-30_000:] + result.stderr[-5_000:]
        assert result.returncode == 0, report
        assert "Tested:" in result.stdout, report
        assert "returned only 401/403" not in result.stdout, report  # the key reached them all
