"""Property tests: whatever text or structure reaches the loader, it answers with a
``Definition`` or a ``ConfigError`` (every diagnostic positioned), never another exception,
and never hangs (each example has a deadline)."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config.builder import PIPELINE_KEYS, RETRY_KEYS, STEP_KEYS, TOP_LEVEL_KEYS
from engine.config.loader import load_text
from engine.config.model import Definition
from engine.errors import ConfigError

try:
    from tests.engine.test_config_support import REGISTRY
except ImportError:
    from test_config_support import REGISTRY  # type: ignore[no-redef]

SETTINGS = settings(max_examples=300, deadline=2000,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ENV = {"HOME": "/home/x", "PORT": "80"}


def check(text: str) -> None:
    try:
        definition = load_text(text, "h.yaml", registry=REGISTRY, env=ENV)
    except ConfigError as exc:
        assert exc.diagnostics, "a ConfigError must carry diagnostics"
        assert any(d.severity == "error" for d in exc.diagnostics)
        for diagnostic in exc.diagnostics:
            assert diagnostic.file == "h.yaml"
            assert diagnostic.line >= 1 and diagnostic.col >= 1
            assert diagnostic.message
    else:
        assert isinstance(definition, Definition)
        assert definition.pipelines


# ---------------------------------------------------------------- raw text

YAML_PIECES = st.sampled_from([
    ":", ": ", "- ", "-", "[", "]", "{", "}", ",", "&a ", "*a", "<<: ", "!tag ", "!!str ",
    "\n", "\n  ", "\n    ", "  ", "\t", "'", '"', "#", "?", "|", ">", "---\n", "...",
    "pipelines", "steps", "name", "type", "config", "step.set", "values", "imports",
    "{{ .x }}", "{{", "}}", "${HOME}", "${", "$${", "1", "1.5", "true", "null", "~", "é", "\x00",
    "\ud800", "retry", "max_attempts", "timeout", "5s", "on_error", "trigger",
])


@SETTINGS
@given(st.text(max_size=400))
def test_arbitrary_text_never_crashes(text: str) -> None:
    check(text)


@SETTINGS
@given(st.lists(YAML_PIECES, max_size=60).map("".join))
def test_yaml_like_token_soup_never_crashes(text: str) -> None:
    check(text)


# ---------------------------------------------------------------- structures

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(["5s", "250ms", "-1", "stop", "continue", "compensate", "full",
                     "step.set", "step.foreach", "step.branch", "step.circuit_breaker",
                     "step.conditional", "step.jq", "step.db_exec", "step.json_response",
                     "database.sql", "http", "schedule", "{{ .x }}", "{{ .x | }}",
                     "${HOME}", "${MISSING}", ".x > 1", "*/5 * * * *", "db", "p", "a"]),
)
KEYS = st.sampled_from(sorted({*TOP_LEVEL_KEYS, *PIPELINE_KEYS, *STEP_KEYS, *RETRY_KEYS,
                               "values", "steps", "branches", "fallback", "routes",
                               "collection", "expression", "database", "query", "status",
                               "variables", "dev", "method", "path", "cron", "x"}))


def values(leaves: int = 25) -> st.SearchStrategy[Any]:
    return st.recursive(SCALARS, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=5)),
        max_leaves=leaves)


def step_like() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"name": st.sampled_from(["a", "b", "bad name", "c"]),
         "type": st.sampled_from(["step.set", "step.foreach", "step.branch", "step.jq",
                                  "step.circuit_breaker", "step.conditional", "step.nope"])},
        optional={key: values(6) for key in STEP_KEYS if key not in ("name", "type")},
    )


DOCUMENTS = st.fixed_dictionaries(
    {"pipelines": st.dictionaries(
        st.sampled_from(["p", "q", "bad name"]),
        st.fixed_dictionaries({"steps": st.lists(step_like(), max_size=4)},
                              optional={key: values(6) for key in PIPELINE_KEYS
                                        if key != "steps"}),
        max_size=3)},
    optional={key: values(6) for key in TOP_LEVEL_KEYS if key not in ("pipelines", "imports")},
)


@SETTINGS
@given(values())
def test_arbitrary_structures_never_crash(value: Any) -> None:
    check(yaml.safe_dump(value, allow_unicode=True))


@settings(SETTINGS, max_examples=120)  # generating these is slow; each load is quick
@given(DOCUMENTS)
def test_pipeline_shaped_documents_never_crash(document: dict[str, Any]) -> None:
    check(yaml.safe_dump(document, allow_unicode=True, sort_keys=False))


def test_a_big_valid_file_loads_quickly() -> None:
    steps = []
    for i in range(200):
        kind = i % 4
        if kind == 0:
            steps.append(f"      - name: s{i}\n        type: step.set\n"
                         f"        config: {{values: {{v{i}: \"{{{{ .x + {i} }}}}\"}}}}\n"
                         "        retry: {max_attempts: 3, initial_delay: 10ms}\n")
        elif kind == 1:
            steps.append(f"      - name: s{i}\n        type: step.foreach\n"
                         "        config:\n          collection: \"{{ .items }}\"\n"
                         "          steps:\n"
                         f"            - {{name: inner, type: step.log, config: {{message: "
                         f"\"item {{{{ .item }}}}\"}}}}\n")
        elif kind == 2:
            steps.append(f"      - name: s{i}\n        type: step.conditional\n"
                         f"        config: {{field: \"{{{{ .kind }}}}\", routes: {{a: s{i + 1}}},"
                         f" default: s{i + 1}}}\n        if: .x > {i}\n")
        else:
            steps.append(f"      - name: s{i}\n        type: step.db_exec\n"
                         "        config: {database: db, query: \"INSERT INTO t VALUES (:v)\","
                         " params: {v: \"{{ .v }}\"}}\n        timeout: 5s\n"
                         "        compensate: {type: step.db_exec, config: {database: db, "
                         "query: \"DELETE FROM t\"}}\n")
    steps.append("      - {name: s200, type: step.log, config: {message: done}}\n")
    text = ("modules:\n  - {name: db, type: database.sql, config: {url: \"sqlite:///${HOME}/"
            "x.db\"}}\npipelines:\n  big:\n    steps:\n" + "".join(steps))
    definition = load_text(text, "big.yaml", registry=REGISTRY, env=ENV)
    assert len(definition.pipelines["big"].steps) == 201
    assert definition.pipelines["big"].steps[1].substeps["steps"][0].name == "inner"
