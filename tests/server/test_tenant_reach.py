"""What a tenant's pipeline may reach on the server (docs/security.md, "Tenancy" and "What a
pipeline may reach"): only the environment variables the server allows, never the event
store, and only its own tenant's deployed pipelines.

The app runs in-process over httpx's ASGI transport on a real SQLite file (and the store
tests also on PostgreSQL); ``test_serve_*`` starts a real ``wfstudio serve``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import make_url

from engine.cli import main as cli_main
from engine.config.envvars import allowed_env
from engine.server import KeyStore, create_app
from engine.service.local import LocalService
from engine.service.naming import ServerNames
from engine.store.store import Store
from tests.server.support import auth, healthy, write_pipelines
from tests.waiting import wait_for_condition, wait_until

API = "/api/v1"
SECRET = "wfs-secret-7f3a9c51"
ALLOWED = "allowed-value-0b2e"

PROBE = """
pipelines:
  probe:
    steps:
      - name: look
        type: step.set
        config:
          values:
            env_var: "{{ $ENV }}"
            env_fn: "{{ env }}"
            dot_env: "{{ .env }}"
            named: "{{ [$ENV.WFS_TEST_SECRET, env.WFS_TEST_SECRET, .env.WFS_TEST_SECRET] }}"
            host: '{{ [$__loc__, input_filename, get_search_list, get_jq_origin, get_prog_origin, ("x" | debug), ("x" | stderr)] }}'
      - name: out
        type: step.pipeline_output
        config: {values: {env_var: "{{ .env_var }}", env_fn: "{{ .env_fn }}", dot_env: "{{ .dot_env }}", named: "{{ .named }}", host: "{{ .host }}"}}
  probe-too:
    steps:
      - {name: look, type: step.set, config: {values: {x: 1}}}
"""


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WFS_TEST_SECRET", SECRET)
    monkeypatch.setenv("WFS_TEST_ALLOWED", ALLOWED)


@pytest.fixture
async def service(tmp_path: Path, environment: None) -> AsyncIterator[LocalService]:
    svc = await LocalService.open([write_pipelines(tmp_path)],
                                  store=f"sqlite:///{tmp_path / 'store.db'}",
                                  env=allowed_env(["WFS_TEST_ALLOWED"], os.environ),
                                  names=ServerNames(tmp_path / "deployed"))
    try:
        yield svc
    finally:
        await svc.close()


@pytest.fixture
def keys(service: LocalService) -> dict[str, dict[str, str]]:
    """Per tenant a (deploy + admin), b (deploy + admin) and a's admin without deploy."""
    store = KeyStore(service.store)
    return {"a": auth(store.create("a deployer", "a", ["admin", "deploy"])[1]),
            "b": auth(store.create("b deployer", "b", ["admin", "deploy"])[1]),
            "a-admin": auth(store.create("a admin", "a", ["admin"])[1])}


@pytest.fixture
async def client(service: LocalService, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(service, keys=KeyStore(service.store), deploy_dir=tmp_path / "deployed")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://server") as c:
        yield c


async def deploy(client: httpx.AsyncClient, headers: dict[str, str], text: str,
                 file: str = "probe.yaml") -> httpx.Response:
    return await client.put(f"{API}/definitions", headers=headers, json={"yaml": text, "file": file})


async def run(client: httpx.AsyncClient, headers: dict[str, str], pipeline: str,
              **options: Any) -> dict[str, Any]:
    answer = await client.post(f"{API}/pipelines/{pipeline}/runs", headers=headers,
                               json={"input": {}, "options": options})
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


# ---------------------------------------------------------------- the environment


async def test_jq_env_and_host_builtins_show_only_the_allowed_variables(
        client: httpx.AsyncClient, keys: dict[str, dict[str, str]]) -> None:
    assert (await deploy(client, keys["a"], PROBE)).status_code == 200
    result = await run(client, keys["a"], "probe")
    assert result["status"] == "completed", result
    seen = result["output"]
    for name in ("env_var", "env_fn", "dot_env"):
        assert seen[name] == {"WFS_TEST_ALLOWED": ALLOWED}, name
    assert seen["named"] == [None, None, None]
    assert seen["host"] == [{"file": "<top-level>", "line": 1}, None, [], None, None, "x", "x"]
    # Nothing of the process environment is anywhere in what was recorded either.
    events = (await client.get(f"{API}/executions/{result['execution_id']}/events",
                               headers=keys["a"])).text
    assert SECRET not in events and os.environ["PATH"] not in events


async def test_jq_modules_cannot_read_host_files(client: httpx.AsyncClient,
                                                 keys: dict[str, dict[str, str]],
                                                 tmp_path: Path) -> None:
    (tmp_path / "leak.json").write_text(json.dumps({"secret": SECRET}))
    program = f'import "leak" as $d {{search: "{tmp_path}"}}; $d'
    text = PROBE.replace('"{{ $ENV }}"', "'{{ " + program + " }}'")
    refused = await deploy(client, keys["a"], text)
    assert refused.status_code == 422, refused.text
    assert "'import' is not available" in refused.text and SECRET not in refused.text


async def test_an_undeclared_variable_is_a_positioned_error_naming_it(
        client: httpx.AsyncClient, keys: dict[str, dict[str, str]], tmp_path: Path) -> None:
    text = ("modules:\n"
            "  - {name: db, type: database.sql, config: {url: \"sqlite:///${WFS_TEST_SECRET}.db\"}}\n"
            "pipelines:\n  p:\n    steps: [{name: a, type: step.log, config: {message: x}}]\n")
    for answer in (await deploy(client, keys["a"], text),
                   await client.post(f"{API}/definitions/validate", headers=keys["a"],
                                     json={"yaml": text, "file": "p.yaml"})):
        assert SECRET not in answer.text
        body = answer.json()
        diagnostics = body["details"] if isinstance(body, dict) else body
        [found] = [d for d in diagnostics if d["severity"] == "error"]
        assert (found["line"], found["col"]) == (2, 50)
        assert "'WFS_TEST_SECRET' is not available" in found["message"]
        assert "--allow-env WFS_TEST_SECRET" in found["message"]
    # The allowed one is substituted.
    allowed = text.replace("${WFS_TEST_SECRET}", f"{tmp_path}/${{WFS_TEST_ALLOWED}}")
    assert (await deploy(client, keys["a"], allowed)).status_code == 200


async def test_diagnostics_name_the_variable_never_its_value(
        client: httpx.AsyncClient, keys: dict[str, dict[str, str]]) -> None:
    text = ("modules:\n"
            "  - {name: db, type: database.sql, config: {url: \"sqlite://\", pool_size: \"${WFS_TEST_ALLOWED}\","
            " init: \"x-${WFS_TEST_ALLOWED}\"}}\n"
            "pipelines:\n  p:\n    steps: [{name: a, type: step.log, config: {message: x}}]\n")
    answer = await client.post(f"{API}/definitions/validate", headers=keys["a"],
                               json={"yaml": text, "file": "p.yaml"})
    messages = [d["message"] for d in answer.json()]
    assert ALLOWED not in answer.text
    assert any("expected integer, got ${WFS_TEST_ALLOWED} (a string)" in m for m in messages)
    assert any("expected array, got x-${WFS_TEST_ALLOWED} (a string)" in m for m in messages)


DB_SECRETS = ("wfs_secret_db_4711", "hunter2-pass/word@x", "plain-pw-9c1")  # database, passwords
FAILING_DBS = {  # a URL parsers disagree on (host 'x@127.0.0.1'), and a database that is not there
    "WFS_DB_URL": f"postgresql://postgres:{DB_SECRETS[1]}@127.0.0.1:5432/{DB_SECRETS[0]}",
    "WFS_DB2_URL": f"postgresql://postgres:{DB_SECRETS[2]}@127.0.0.1:5432/{DB_SECRETS[0]}",
    "WFS_TIMEOUT": "forever-9f3e"}  # not a duration: the module refuses it when it starts


async def test_run_errors_name_the_variable_never_its_value(store_url: str, tmp_path: Path) -> None:
    """A driver's error quotes what ${VAR} lent the module (the database, maybe the URL):
    the run's error, events, timeline and DLQ entry show the variable instead; any URL's
    password is masked in every error."""
    text = ("modules:\n"
            "  - {name: db, type: database.sql, config: {url: \"${WFS_DB_URL}\"}}\n"
            "  - {name: db2, type: database.sql, config: {url: \"${WFS_DB2_URL}\"}}\n"
            "pipelines:\n"
            "  reach:\n    dlq: true\n    steps:\n"
            "      - {name: q, type: step.db_query, config: {database: db, query: 'SELECT 1'}}\n"
            "  reach2:\n    dlq: true\n    steps:\n"
            "      - {name: q, type: step.db_query, config: {database: db2, query: 'SELECT 1'}}\n"
            "  careless:\n    on_error: continue\n    steps:\n"
            "      - {name: f, type: step.fail, config: {message: 'no postgresql://app:s3cr3t@h/db'}}\n")
    async with await LocalService.open([], store=store_url, env=FAILING_DBS) as svc:
        store = KeyStore(svc.store)
        a = auth(store.create("a", "a", ["run", "read", "deploy"])[1])
        app = create_app(svc, keys=store, deploy_dir=tmp_path / "deployed")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://s") as c:
            assert (await deploy(c, a, text, "reach.yaml")).status_code == 200
            for pipeline, variable in (("reach", "WFS_DB_URL"), ("reach2", "WFS_DB2_URL")):
                result = await run(c, a, pipeline)
                assert result["status"] == "failed", result
                message = result["error"]["message"]
                assert "(postgresql) statement failed" in message, message
                assert f"of ${{{variable}}}>" in message, message  # e.g. <host of ${WFS_DB_URL}>
                said = [json.dumps(result)]
                execution = f"{API}/executions/{result['execution_id']}"
                for url in (execution, f"{execution}/events", f"{execution}/timeline", f"{API}/dlq"):
                    answer = await c.get(url, headers=a)
                    assert answer.status_code == 200, (url, answer.text)
                    said.append(answer.text)
                assert "step.failed" in said[2] and "execution.failed" in said[2]
                assert f'"{pipeline}"' in said[4]  # the dead letter is there, with the message
                for secret in (*DB_SECRETS, "hunter2", "x@127.0.0.1"):
                    assert not any(secret in text for text in said), (secret, message)

            # A module that refuses its config at start: the 422 names the variable too.
            slow = ("modules:\n  - {name: api, type: http.client, config: {timeout: \"${WFS_TIMEOUT}\"}}\n"
                    "pipelines:\n  slow:\n    steps: [{name: a, type: step.log, config: {message: x}}]\n")
            refused = await deploy(c, a, slow, "slow.yaml")
            assert refused.status_code == 422 and "forever-9f3e" not in refused.text
            assert "invalid duration '${WFS_TIMEOUT}'" in refused.text, refused.text

            careless = await run(c, a, "careless")
            events = (await c.get(f"{API}/executions/{careless['execution_id']}/events",
                                  headers=a)).text
            assert "s3cr3t" not in events and "postgresql://app:[REDACTED]@h/db" in events


async def test_a_breakpoint_condition_cannot_probe_the_environment(
        client: httpx.AsyncClient, keys: dict[str, dict[str, str]]) -> None:
    assert (await deploy(client, keys["a"], PROBE)).status_code == 200
    probes = {"probe": f'$ENV.WFS_TEST_SECRET == "{SECRET}" or (env | has("WFS_TEST_SECRET"))',
              "probe-too": f'$ENV.WFS_TEST_ALLOWED == "{ALLOWED}"'}  # the control: it stops
    for pipeline, condition in probes.items():
        answer = await client.post(f"{API}/debug/breakpoints", headers=keys["a"],
                                   json={"pipeline": pipeline, "step": "look", "condition": condition})
        assert answer.status_code == 201, answer.text
    control = await run(client, keys["a"], "probe-too", wait=False)

    async def paused() -> bool:
        listed = (await client.get(f"{API}/debug/paused", headers=keys["a"])).json()
        return any(p["execution_id"] == control["execution_id"] for p in listed)

    await wait_for_condition(paused, "the control run to stop at its breakpoint")
    probing = await run(client, keys["a"], "probe", wait=False)

    async def finished() -> str | None:
        record = (await client.get(f"{API}/executions/{probing['execution_id']}",
                                   headers=keys["a"])).json()
        status: str = record["status"]
        return status if status not in ("running", "pending") else None

    assert await wait_for_condition(finished, "the probing run to end") == "completed"
    resumed = await client.post(f"{API}/debug/paused/{control['execution_id']}/resume",
                                headers=keys["a"], json={"action": "continue"})
    assert resumed.status_code == 204


# ---------------------------------------------------------------- tenancy of deployments


MINE = """
pipelines:
  mine:
    trigger: {type: http, config: {method: POST, path: /mine}}
    steps:
      - {name: answer, type: step.json_response, config: {body: {owner: OWNER}}}
"""


async def test_deployed_pipelines_belong_to_the_tenant_that_deployed_them(
        client: httpx.AsyncClient, keys: dict[str, dict[str, str]], tmp_path: Path) -> None:
    a, b = keys["a"], keys["b"]
    assert (await deploy(client, a, MINE.replace("OWNER", "a"), "mine.yaml")).status_code == 200
    # B sees the server's own pipelines but nothing of A's: not listed, no definition, no
    # run, no trigger, and the not-found message names none of A's pipelines.
    listed = [p["name"] for p in (await client.get(f"{API}/pipelines", headers=b)).json()]
    assert "greet" in listed and "mine" not in listed
    assert (await client.get(f"{API}/pipelines/mine/definition", headers=b)).status_code == 404
    refused = await client.post(f"{API}/pipelines/mine/runs", headers=b, json={"input": {}})
    assert refused.status_code == 404 and "mine" not in refused.json()["message"].split("(")[-1]
    assert (await client.post("/mine", headers=b, json={})).status_code == 404
    assert "mine" in [p["name"] for p in (await client.get(f"{API}/pipelines", headers=a)).json()]
    assert (await client.post("/mine", headers=a, json={})).json() == {"owner": "a"}

    # B may deploy the same file name, pipeline name and trigger path: each reaches its own.
    assert (await deploy(client, b, MINE.replace("OWNER", "b"), "mine.yaml")).status_code == 200
    assert (await client.post("/mine", headers=b, json={})).json() == {"owner": "b"}
    assert (await client.post("/mine", headers=a, json={})).json() == {"owner": "a"}
    assert (await client.get(f"{API}/pipelines/mine/definition", headers=a)).json()["text"] \
        == MINE.replace("OWNER", "a")
    assert (tmp_path / "deployed" / "a" / "mine.yaml").read_text() == MINE.replace("OWNER", "a")
    assert (tmp_path / "deployed" / "b" / "mine.yaml").read_text() == MINE.replace("OWNER", "b")
    b_runs = (await client.get(f"{API}/executions", headers=b, params={"pipeline": "mine"})).json()
    assert len(b_runs["items"]) == 1  # B's own trigger run only


async def test_deployments_found_on_disk_keep_their_tenant_after_a_restart(
        tmp_path: Path, environment: None) -> None:
    deployed = tmp_path / "deployed" / "a" / "mine.yaml"
    deployed.parent.mkdir(parents=True)
    deployed.write_text(MINE.replace("OWNER", "a"))
    async with await LocalService.open([deployed], store=f"sqlite:///{tmp_path / 's.db'}") as svc:
        store = KeyStore(svc.store)
        a, b = (auth(store.create(t, t, ["read"])[1]) for t in ("a", "b"))
        app = create_app(svc, keys=store, deploy_dir=tmp_path / "deployed")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://s") as c:
            assert [p["name"] for p in (await c.get(f"{API}/pipelines", headers=a)).json()] == ["mine"]
            assert (await c.get(f"{API}/pipelines", headers=b)).json() == []


async def test_files_are_named_relative_to_their_root_never_by_server_paths(
        client: httpx.AsyncClient, keys: dict[str, dict[str, str]], tmp_path: Path,
        environment: None) -> None:
    a = keys["a"]
    where = str(tmp_path)  # the server's own paths: in no answer
    mine = MINE.replace("OWNER", "a")
    assert (await deploy(client, a, mine, "team/mine.yaml")).json()["file"] == "team/mine.yaml"
    listed = {p["name"]: p["file"] for p in (await client.get(f"{API}/pipelines", headers=a)).json()}
    assert listed["mine"] == "team/mine.yaml" and listed["greet"] == "pipelines.yaml"
    said = [json.dumps(listed)]
    for name in ("mine", "greet"):
        answer = await client.get(f"{API}/pipelines/{name}/definition", headers=a)
        assert answer.json()["file"] == listed[name]
        said.append(answer.text)
    # Diagnostics of a deployment, of a validation (with an import) and of a module that
    # refuses its config at start are positioned by the same names.
    broken = mine.replace("step.json_response", "step.nope")
    refused = await deploy(client, a, broken, "team/mine.yaml")
    assert refused.status_code == 422 and refused.json()["details"][0]["file"] == "team/mine.yaml"
    checked = await client.post(f"{API}/definitions/validate", headers=a, json={
        "yaml": "imports: [missing.yaml]\n" + mine, "file": "other.yaml"})
    assert [d["file"] for d in checked.json()] == ["other.yaml"]
    module = ("modules:\n  - {name: api, type: http.client, config: {timeout: never}}\n"
              "pipelines:\n  m:\n    steps: [{name: a, type: step.log, config: {message: x}}]\n")
    started = await deploy(client, a, module, "m.yaml")
    assert started.status_code == 422 and started.json()["details"][0]["file"] == "m.yaml"
    assert not (tmp_path / "deployed" / "a" / "m.yaml").exists()  # refused: not left on disk
    said += [refused.text, checked.text, started.text,
             (await client.get(f"{API}/version", headers=a)).text]
    assert not any(where in text for text in said), [t for t in said if where in t]

    # A restarted server finds the deployment on disk: same name, same tenant.
    async with await LocalService.open(
            [tmp_path / "deployed" / "a" / "team" / "mine.yaml"], env={},
            store=f"sqlite:///{tmp_path / 'again.db'}",
            names=ServerNames(tmp_path / "deployed")) as again:
        store = KeyStore(again.store)
        a2, b2 = (auth(store.create(t, t, ["read"])[1]) for t in ("a", "b"))
        app = create_app(again, keys=store, deploy_dir=tmp_path / "deployed")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://s") as c:
            assert [(p["name"], p["file"]) for p in
                    (await c.get(f"{API}/pipelines", headers=a2)).json()] == [("mine", "team/mine.yaml")]
            assert (await c.get(f"{API}/pipelines", headers=b2)).json() == []


async def test_deploying_is_a_scope_admin_does_not_imply(
        client: httpx.AsyncClient, keys: dict[str, dict[str, str]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    refused = await deploy(client, keys["a-admin"], MINE)
    assert refused.status_code == 403 and "'deploy'" in refused.json()["message"]
    assert not (tmp_path / "deployed").exists()
    # An admin cannot mint itself the scope either.
    minted = await client.post(f"{API}/keys", headers=keys["a-admin"],
                               json={"name": "sneaky", "scopes": ["deploy"]})
    assert minted.status_code == 403 and "deploy" in minted.json()["message"]
    # The operator grants it by name through the CLI.
    store = f"sqlite:///{tmp_path / 'store.db'}"
    assert cli_main(["keys", "create", "--name", "ci", "--tenant", "a", "--scope", "deploy",
                     "--store", store, "--json"]) == 0
    secret = json.loads(capsys.readouterr().out)["secret"]
    assert (await deploy(client, auth(secret), MINE.replace("OWNER", "a"))).status_code == 200


async def test_event_schemas_belong_to_the_tenant_that_registered_them(
        store_url: str, tmp_path: Path) -> None:
    async with await LocalService.open([], store=store_url, env={}) as svc:
        store = KeyStore(svc.store)
        a, b = (auth(store.create(t, t, ["admin"])[1]) for t in ("a", "b"))
        app = create_app(svc, keys=store)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://s") as c:
            strict = {"type": "object", "required": ["secret_field_of_a"]}
            made = await c.post(f"{API}/schemas", headers=a, json={"type": "order.created",
                                                                    "schema": strict})
            assert (made.status_code, made.json()["version"]) == (201, 1), made.text
            # B neither lists nor reads it, nor validates against it.
            listed = await c.get(f"{API}/schemas", headers=b)
            assert listed.json() == [] and "secret_field_of_a" not in listed.text
            checked = await c.post(f"{API}/schemas/validate", headers=b,
                                   json={"type": "order.created", "data": {}})
            assert checked.status_code == 404 and "secret_field_of_a" not in checked.text
            # B's registration of the same type is its own version 1, not a new latest of A's.
            loose = await c.post(f"{API}/schemas", headers=b, json={"type": "order.created",
                                                                     "schema": {"type": "object"}})
            assert (loose.status_code, loose.json()["version"]) == (201, 1), loose.text
            valid = await c.post(f"{API}/schemas/validate", headers=b,
                                 json={"type": "order.created", "data": {}})
            assert valid.status_code == 200 and valid.json()["errors"] == []
            still = await c.post(f"{API}/schemas/validate", headers=a,
                                 json={"type": "order.created", "data": {}})
            assert "secret_field_of_a" in still.text  # A's schema still rules A's events
            assert [(s["type"], s["version"]) for s in
                    (await c.get(f"{API}/schemas", headers=a)).json()] == [("order.created", 1)]


# ---------------------------------------------------------------- the event store


def _same_store_spellings(store_url: str, tmp_path: Path) -> list[str]:
    url = make_url(store_url)
    if url.get_backend_name() == "sqlite":
        path = Path(str(url.database))
        (tmp_path / "alias").symlink_to(path.parent, target_is_directory=True)
        os.link(path, tmp_path / "hardlink.db")
        return [f"sqlite:///{path}",
                f"sqlite:///{path.parent}/./sub/../{path.name}",
                f"sqlite:///{tmp_path / 'alias' / path.name}",
                f"sqlite:///{tmp_path / 'hardlink.db'}",
                f"sqlite:///file:{path}?mode=ro&uri=true"]
    return [url.render_as_string(hide_password=False),
            url.set(host="localhost", drivername="postgresql").render_as_string(hide_password=False),
            url.set(query={"application_name": "sneaky"}).render_as_string(hide_password=False)]


async def test_a_database_module_cannot_open_the_event_store(store_url: str, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    async with await LocalService.open([], store=store_url, env={}) as svc:
        store = KeyStore(svc.store)
        a = auth(store.create("a", "a", ["run", "read", "deploy"])[1])
        app = create_app(svc, keys=store, deploy_dir=tmp_path / "deployed")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://s") as c:
            spellings = _same_store_spellings(store_url, tmp_path)
            other = f"sqlite:///{tmp_path / 'own.db'}"  # the control: a database of its own
            for i, url in enumerate([*spellings, other]):
                text = (f"modules:\n  - {{name: db, type: database.sql, config: {{url: {json.dumps(url)}}}}}\n"
                        f"pipelines:\n  steal-{i}:\n    steps:\n"
                        "      - {name: keys, type: step.db_query, config: {database: db, "
                        "query: 'SELECT count(*) AS n FROM api_keys'}}\n")
                if url == other:
                    text = text.replace("FROM api_keys", "FROM sqlite_master")
                assert (await deploy(c, a, text, f"steal-{i}.yaml")).status_code == 200
                result = await run(c, a, f"steal-{i}")
                if url == other:
                    assert result["status"] == "completed", result
                    continue
                assert result["status"] == "failed", (url, result)
                assert "may not be opened: it is the event store" in result["error"]["message"], url
            if make_url(store_url).get_backend_name() == "sqlite":
                path = make_url(store_url).database
                attach = (f"modules:\n  - {{name: db, type: database.sql, config: {{url: {json.dumps(other)}}}}}\n"
                          "pipelines:\n  attach:\n    steps:\n"
                          f"      - {{name: a, type: step.db_exec, config: {{database: db, query: \"ATTACH '{path}' AS s\"}}}}\n")
                assert (await deploy(c, a, attach, "attach.yaml")).status_code == 200
                result = await run(c, a, "attach")
                assert result["status"] == "failed" and "ATTACH" in result["error"]["message"]


# ---------------------------------------------------------------- a real server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _serve(tmp_path: Path, files: list[Path], *extra: str) -> tuple[subprocess.Popen[str], str]:
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "WFS_TEST_SECRET": SECRET,
           "WFS_TEST_ALLOWED": ALLOWED}
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "serve", *map(str, files), "--addr",
         f"127.0.0.1:{port}", "--store", f"sqlite:///{tmp_path / 'served.db'}", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        cwd=Path(__file__).resolve().parents[2])
    return process, f"http://127.0.0.1:{port}"


def test_serve_shows_pipelines_only_the_variables_it_allows(tmp_path: Path) -> None:
    probe = tmp_path / "probe.yaml"
    probe.write_text(PROBE)
    with Store.open(f"sqlite:///{tmp_path / 'served.db'}") as opened:
        secret = KeyStore(opened).create("runner", scopes=["run", "read"])[1]
    process, base = _serve(tmp_path, [probe], "--allow-env", "WFS_TEST_ALLOW*")
    try:
        wait_until(lambda: healthy(base) or process.poll() is not None, "the server to come up",
                   timeout=60)
        assert process.poll() is None, process.communicate()[1]
        answer = httpx.post(f"{base}/api/v1/pipelines/probe/runs", headers=auth(secret),
                            json={"input": {}}, timeout=30)
        assert answer.status_code == 201, answer.text
        assert answer.json()["output"]["env_var"] == {"WFS_TEST_ALLOWED": ALLOWED}
        assert SECRET not in answer.text
        # wfstudio serve names its files relative to their folder, never by its own paths.
        listed = httpx.get(f"{base}/api/v1/pipelines", headers=auth(secret), timeout=30)
        assert {p["file"] for p in listed.json()} == {"probe.yaml"}
        assert str(tmp_path) not in listed.text
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)


def test_serve_refuses_a_file_that_reads_a_variable_it_does_not_allow(tmp_path: Path) -> None:
    text = ("modules:\n"
            "  - {name: db, type: database.sql, config: {url: \"sqlite:///${WFS_TEST_SECRET}.db\"}}\n"
            "pipelines:\n  p:\n    steps: [{name: a, type: step.log, config: {message: x}}]\n")
    (tmp_path / "p.yaml").write_text(text)
    process, _base = _serve(tmp_path, [tmp_path / "p.yaml"])
    _out, err = process.communicate(timeout=60)
    assert process.returncode != 0
    assert "p.yaml:2:50" in err and "'WFS_TEST_SECRET' is not available" in err
    assert SECRET not in err and "Traceback" not in err


def test_serve_refuses_a_malformed_allow_pattern(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["serve", "--allow-env", "A-B", "--store",
                     f"sqlite:///{tmp_path / 's.db'}", str(write_pipelines(tmp_path))]) == 2
    assert "--allow-env 'A-B'" in capsys.readouterr().err
