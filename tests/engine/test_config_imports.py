"""Imports (relative paths, merge rules, cycles), snapshots and ``${VAR}`` expansion."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from engine.config.loader import load_file, load_sources
from engine.errors import ConfigError

try:
    from tests.engine.test_config_support import REGISTRY, errors, load, one_error, yaml_text
except ImportError:
    from test_config_support import (  # type: ignore[no-redef]
        REGISTRY,
        errors,
        load,
        one_error,
        yaml_text,
    )

STEP = "[{name: a, type: step.log, config: {message: %s}}]"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml_text(text))
    return path


def load_errors(path: Path, **kwargs) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_file(path, registry=REGISTRY, env=kwargs.pop("env", {}), **kwargs)
    return [str(d) for d in caught.value.diagnostics]


# ---------------------------------------------------------------- imports


def test_imports_are_relative_to_the_importing_file_and_merge(tmp_path: Path) -> None:
    root = write(tmp_path / "orders.yaml", f"""
        imports: [shared/common.yaml, other.yaml]
        modules:
          - {{name: db, type: database.sql, config: {{url: "sqlite:///root.db"}}}}
        connectors:
          - {{name: bus, type: sink.webhook, config: {{url: "http://127.0.0.1:9/root"}}}}
        schemas:
          order: {{type: object}}
        pipelines:
          main:
            steps: {STEP % "root"}
          shared:
            steps: {STEP % "overridden-by-root"}
        """)
    write(tmp_path / "shared" / "common.yaml", f"""
        imports: [../base/base.yaml]
        modules:
          - {{name: db, type: database.sql, config: {{url: "sqlite:///common.db"}}}}
          - {{name: cache, type: cache.memory}}
        connectors:
          - {{name: bus, type: sink.redis_streams, config: {{stream: common}}}}
          - {{name: audit, type: sink.redis_streams, config: {{stream: audit}}}}
        schemas:
          order: {{type: array}}
          event: {{type: object}}
        pipelines:
          shared:
            steps: {STEP % "common"}
          helper:
            steps: {STEP % "common-helper"}
        """)
    write(tmp_path / "base" / "base.yaml", f"""
        modules:
          - {{name: cache, type: cache.memory, config: {{max_items: 1}}}}
          - {{name: base-db, type: database.sql, config: {{url: "sqlite:///base.db"}}}}
        pipelines:
          helper:
            steps: {STEP % "base-helper"}
          base-only:
            steps: {STEP % "base"}
        """)
    write(tmp_path / "other.yaml", f"""
        pipelines:
          base-only:
            steps: {STEP % "other"}
          other:
            steps: {STEP % "other"}
        """)
    definition = load_file(root, registry=REGISTRY, env={})
    # Modules: the importing file first, then imports depth-first; first definition wins.
    assert list(definition.modules) == ["db", "cache", "base-db"]
    assert definition.modules["db"].config == {"url": "sqlite:///root.db"}
    assert definition.modules["cache"].config == {}
    assert definition.modules["base-db"].pos.file == str(tmp_path / "base" / "base.yaml")
    assert [(c["name"], c["type"]) for c in definition.connectors] == [
        ("bus", "sink.webhook"), ("audit", "sink.redis_streams")]
    assert definition.schemas == {"order": {"type": "object"}, "event": {"type": "object"}}

    def message(name: str) -> str:
        return definition.pipelines[name].steps[0].config["message"]

    assert message("shared") == "overridden-by-root"
    assert message("helper") == "common-helper"  # common imports base: common wins
    assert message("base-only") == "base"  # depth-first: base (via common) before other.yaml
    assert message("other") == "other"
    assert list(definition.sources) == [str(root), str(tmp_path / "shared" / "common.yaml"),
                                        str(tmp_path / "base" / "base.yaml"),
                                        str(tmp_path / "other.yaml")]
    assert definition.sources[str(tmp_path / "other.yaml")] == (tmp_path / "other.yaml").read_text()


def test_diamond_imports_are_read_once(tmp_path: Path) -> None:
    root = write(tmp_path / "root.yaml", f"""
        imports: [a.yaml, b.yaml]
        pipelines:
          p:
            steps: {STEP % "x"}
        """)
    write(tmp_path / "a.yaml", "imports: [d.yaml]\n")
    write(tmp_path / "b.yaml", "imports: [./d.yaml]\n")
    write(tmp_path / "d.yaml", "modules: [{name: db, type: database.sql, config: {url: x}}]\n")
    definition = load_file(root, registry=REGISTRY, env={})
    assert sorted(definition.sources) == sorted(str(tmp_path / n) for n in
                                                ("root.yaml", "a.yaml", "b.yaml", "d.yaml"))
    assert list(definition.modules) == ["db"]


def test_import_cycle_names_the_chain(tmp_path: Path) -> None:
    root = write(tmp_path / "a.yaml", f"""
        imports: [b.yaml]
        pipelines:
          p:
            steps: {STEP % "x"}
        """)
    write(tmp_path / "b.yaml", "name: b\nimports:\n  - sub/c.yaml\n")
    write(tmp_path / "sub" / "c.yaml", "imports: [../a.yaml]\n")
    [message] = load_errors(root)
    c = tmp_path / "sub" / "c.yaml"
    assert message == (f"{c}:1:11: error: import cycle: {root} -> {tmp_path / 'b.yaml'} -> {c} "
                       f"-> {root}; remove one of these imports")


def test_self_import_is_a_cycle(tmp_path: Path) -> None:
    root = write(tmp_path / "a.yaml", f"""
        pipelines:
          p:
            steps: {STEP % "x"}
        imports: [a.yaml]
        """)
    assert load_errors(root) == [f"{root}:4:11: error: import cycle: {root} -> {root}; remove "
                                 "one of these imports"]


def test_missing_import_is_an_error_at_the_import(tmp_path: Path) -> None:
    root = write(tmp_path / "a.yaml", f"""
        imports:
          - shared/missing.yaml
        pipelines:
          p:
            steps: {STEP % "x"}
        """)
    assert load_errors(root) == [
        f"{root}:2:5: error: cannot import 'shared/missing.yaml' (resolved to "
        f"{tmp_path / 'shared' / 'missing.yaml'}): file not found"]


def test_imports_must_be_a_list_of_paths(tmp_path: Path) -> None:
    root = write(tmp_path / "a.yaml", f"""
        imports: shared.yaml
        pipelines:
          p:
            steps: {STEP % "x"}
        """)
    assert load_errors(root) == [f"{root}:1:10: error: 'imports' must be a list of paths, e.g. "
                                 "'imports: [shared/common.yaml]'"]


def test_errors_in_imported_files_name_that_file(tmp_path: Path) -> None:
    root = write(tmp_path / "a.yaml", f"""
        imports: [lib.yaml]
        pipelines:
          p:
            steps: {STEP % "x"}
        """)
    lib = write(tmp_path / "lib.yaml", """
        modules:
          - {name: db, type: database.sq, config: {url: x}}
        pipelines:
          q:
            steps: [{name: a, type: step.set}]
        """)
    assert load_errors(root) == [
        f"{lib}:2:22: error: unknown module type 'database.sq' (did you mean 'database.sql'?)",
        f"{lib}:5:13: error: step 'a' (step.set): config: 'values' is required",
    ]


def test_module_and_pipeline_references_see_imported_names(tmp_path: Path) -> None:
    root = write(tmp_path / "a.yaml", """
        imports: [lib.yaml]
        pipelines:
          p:
            steps:
              - {name: s, type: step.db_exec, config: {database: db, query: SELECT 1}}
              - {name: c, type: step.workflow_call, config: {workflow: q}}
        """)
    write(tmp_path / "lib.yaml", f"""
        modules: [{{name: db, type: database.sql, config: {{url: x}}}}]
        pipelines:
          q:
            steps: {STEP % "x"}
        """)
    assert set(load_file(root, registry=REGISTRY, env={}).pipelines) == {"p", "q"}


def test_load_text_resolves_imports_from_the_working_directory(tmp_path: Path,
                                                              monkeypatch) -> None:
    write(tmp_path / "lib.yaml", f"pipelines:\n  q:\n    steps: {STEP % 'x'}\n")
    monkeypatch.chdir(tmp_path)
    definition = load("imports: [lib.yaml]\n", path="<text>")
    assert list(definition.pipelines) == ["q"]
    assert list(definition.sources) == ["<text>", "lib.yaml"]


# ---------------------------------------------------------------- snapshot and hash


def test_hash_is_sha256_over_sorted_sources(tmp_path: Path) -> None:
    root = write(tmp_path / "a.yaml", f"""
        imports: [lib.yaml]
        pipelines:
          p:
            steps: {STEP % "x"}
        """)
    lib = write(tmp_path / "lib.yaml", "modules: []\n")
    first = load_file(root, registry=REGISTRY, env={})
    digest = hashlib.sha256()
    for path, text in sorted(first.sources.items()):
        digest.update(path.encode() + b"\0" + text.encode() + b"\0")
    assert first.hash == digest.hexdigest()
    assert load_file(root, registry=REGISTRY, env={}).hash == first.hash
    lib.write_text("modules: []  # changed\n")
    assert load_file(root, registry=REGISTRY, env={}).hash != first.hash


def test_load_sources_reloads_a_snapshot_without_the_disk(tmp_path: Path) -> None:
    root = write(tmp_path / "a.yaml", f"""
        imports: [lib/lib.yaml]
        pipelines:
          p:
            steps: {STEP % "x"}
        """)
    write(tmp_path / "lib" / "lib.yaml", f"pipelines:\n  q:\n    steps: {STEP % 'y'}\n")
    original = load_file(root, registry=REGISTRY, env={})
    (tmp_path / "lib" / "lib.yaml").unlink()
    again = load_sources(original.sources, str(root), registry=REGISTRY, env={})
    assert again.hash == original.hash
    assert set(again.pipelines) == {"p", "q"}
    with pytest.raises(ConfigError) as caught:
        load_sources({"x.yaml": "imports: [y.yaml]\n"}, "x.yaml", registry=REGISTRY, env={})
    assert (
        "x.yaml:1:11: error: cannot import 'y.yaml' (resolved to y.yaml): not part of the "
        "stored definition snapshot") in [str(d) for d in caught.value.diagnostics]


# ---------------------------------------------------------------- ${VAR} expansion


MODULES = """
modules:
  - name: db
    type: database.sql
    config:
      url: "sqlite:///${DATA_DIR}/orders.db"
      pool_size: ${POOL}
      echo: ${env:ECHO}
connectors:
  - {name: bus, type: sink.redis_streams, config: {url: "${BROKERS}", stream: "$${NOT_A_VAR}"}}
pipelines:
  p:
    steps:
      - {name: a, type: step.log, config: {message: "${NOT_EXPANDED} {{ .x }}"}}
"""


def test_env_expansion_in_module_and_connector_config() -> None:
    definition = load(MODULES, env={"DATA_DIR": "/srv", "POOL": "5", "ECHO": "true",
                                    "BROKERS": "redis://k1:6379/0"})
    # Environment values are text; where the module schema wants a number or a boolean the
    # text is converted.
    assert definition.modules["db"].config == {"url": "sqlite:////srv/orders.db",
                                               "pool_size": 5, "echo": True}
    assert definition.connectors == [{"name": "bus", "type": "sink.redis_streams", "config": {
        "url": "redis://k1:6379/0", "stream": "${NOT_A_VAR}"}}]
    # Step config is not expanded, and {{ }} is never touched at load time.
    assert definition.pipelines["p"].steps[0].config == {"message": "${NOT_EXPANDED} {{ .x }}"}


def test_unset_variable_is_an_error_naming_it() -> None:
    found = errors(MODULES, env={"DATA_DIR": "/srv", "POOL": "5", "ECHO": "true"})
    assert found == [
        "p.yaml:9:57: error: environment variable 'BROKERS' is not available (referenced as "
        "'${BROKERS}'): set it (on a server: allow it with serve --allow-env BROKERS) or define "
        "it in the active environment's variables"]


def test_converted_variable_that_does_not_fit_is_an_error() -> None:
    found = errors(MODULES, env={"DATA_DIR": "/srv", "POOL": "many", "ECHO": "true",
                                 "BROKERS": "redis://x:6379/0"})
    assert found == ["p.yaml:6:18: error: module type database.sql: config.pool_size: expected "
                     "integer, got ${POOL} (a string)"]


def test_malformed_references() -> None:
    found = errors("""
        modules:
          - {name: db, type: database.sql, config: {url: "${}", echo: "${A-B}x", pool_size: "${X"}}
        pipelines:
          p:
            steps: [{name: a, type: step.log, config: {message: x}}]
        """)
    assert found == [
        "p.yaml:2:50: error: invalid variable reference '${}': use ${NAME} or ${env:NAME} with "
        "letters, digits and '_'",
        "p.yaml:2:63: error: invalid variable reference '${A-B}': use ${NAME} or ${env:NAME} "
        "with letters, digits and '_'",
        "p.yaml:2:85: error: unterminated variable reference in '${X': add the closing '}' or "
        "write '$${' for a literal '${'",
    ]


ENVIRONMENTS = """
environments:
  dev: {variables: {DATA_DIR: /tmp/dev, POOL: 2}}
  prod: {description: production, variables: {DATA_DIR: /srv/prod}}
modules:
  - {name: db, type: database.sql, config: {url: "sqlite:///${DATA_DIR}/x.db", pool_size: "${POOL}"}}
pipelines:
  p:
    steps: [{name: a, type: step.log, config: {message: x}}]
"""


def test_active_environment_overlays_the_process_environment() -> None:
    env = {"DATA_DIR": "/from-env", "POOL": "9"}
    dev = load(ENVIRONMENTS, env=env, environment="dev")
    assert dev.modules["db"].config == {"url": "sqlite:////tmp/dev/x.db", "pool_size": 2}
    prod = load(ENVIRONMENTS, env={**env, "WFSTUDIO_ENV": "prod"})
    assert prod.modules["db"].config == {"url": "sqlite:////srv/prod/x.db", "pool_size": 9}
    plain = load(ENVIRONMENTS, env=env)
    assert plain.modules["db"].config["url"] == "sqlite:////from-env/x.db"
    assert plain.environments["prod"] == {"description": "production",
                                          "variables": {"DATA_DIR": "/srv/prod"}}


def test_unknown_environment() -> None:
    env = {"DATA_DIR": "/d", "POOL": "1"}
    assert one_error(ENVIRONMENTS, env=env, environment="staging") == (
        "p.yaml:1:1: error: environment 'staging' is not defined in 'environments' (defined: "
        "dev, prod)")
    definition = load(ENVIRONMENTS, env={**env, "WFSTUDIO_ENV": "staging"})
    assert [str(w) for w in definition.warnings] == [
        "p.yaml:1:1: warning: environment 'staging' (from WFSTUDIO_ENV) is not defined in "
        "'environments' (defined: dev, prod)"]


def test_environment_variables_merge_from_imports(tmp_path: Path) -> None:
    root = write(tmp_path / "a.yaml", """
        imports: [env.yaml]
        environments:
          dev: {variables: {DATA_DIR: /root-dev}}
        modules:
          - {name: db, type: database.sql, config: {url: "${DATA_DIR}", pool_size: "${POOL}"}}
        pipelines:
          p:
            steps: [{name: a, type: step.log, config: {message: x}}]
        """)
    write(tmp_path / "env.yaml", "environments:\n  dev: {variables: {DATA_DIR: /lib, POOL: 4}}\n")
    definition = load_file(root, registry=REGISTRY, env={}, environment="dev")
    assert definition.modules["db"].config == {"url": "/root-dev", "pool_size": 4}


def test_bad_environment_definitions() -> None:
    found = errors("""
        environments:
          dev: {variables: {A: [1]}, vars: {}}
          qa: 3
        pipelines:
          p:
            steps: [{name: a, type: step.log, config: {message: x}}]
        """)
    assert found == [
        "p.yaml:2:24: error: environment variable 'A' must be a single value, not a list or "
        "mapping",
        "p.yaml:2:30: warning: unknown environment key 'vars' is ignored (did you mean "
        "'variables'?)",
        "p.yaml:3:7: error: environment 'qa' must be a mapping like {variables: {NAME: value}}",
    ]
