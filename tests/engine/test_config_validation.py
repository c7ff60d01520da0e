"""Building the model and validating it: one test per kind of error, each with its position."""

from __future__ import annotations

from engine.config.loader import validate_paths
from engine.config.model import RetryPolicy

try:
    from tests.engine.test_config_support import REGISTRY, errors, load, one_error
except ImportError:
    from test_config_support import REGISTRY, errors, load, one_error  # type: ignore[no-redef]


def pipeline(steps: str, extra: str = "") -> str:
    """A file with one pipeline ``p`` whose step list (indented 6) is ``steps``."""
    return ("modules:\n  - {name: db, type: database.sql, config: {url: 'sqlite://'}}\n"
            "pipelines:\n  p:\n" + extra + "    steps:\n" + steps)


# ---------------------------------------------------------------- the model


def test_full_step_model() -> None:
    definition = load(pipeline("""\
      - name: store
        type: step.db_exec
        config: {database: db, query: "INSERT INTO t VALUES (:x)", params: {x: "{{ .x }}"}}
        if: .x > 1
        skip_if: "{{ .skip }}"
        on_error: continue
        timeout: 2m
        retry: {max_attempts: 3, initial_delay: 100ms, max_delay: 2s, multiplier: 3, jitter: 0.5}
        compensate: {type: step.db_exec, config: {database: db, query: "DELETE FROM t"}}
        idempotency_key: "{{ .order_id }}"
        idempotency_ttl: 1h
        error_status: 409
""", extra="""\
    description: stores things
    trigger: {type: http, config: {method: POST, path: /orders}}
    timeout: 30s
    on_error: compensate
    record: full
    dlq: {max_retries: 5}
    max_jumps: 50
    outputs: {id: integer}
    compensation:
      - name: undo
        type: step.log
        config: {message: undone}
"""))
    pipe = definition.pipelines["p"]
    assert (pipe.description, pipe.on_error, pipe.timeout, pipe.record) == (
        "stores things", "compensate", 30.0, "full")
    assert (pipe.dlq, pipe.dlq_max_retries, pipe.max_jumps) == (True, 5, 50)
    assert pipe.outputs == {"id": "integer"}
    assert (pipe.trigger.type, pipe.trigger.config) == ("http", {"method": "POST",
                                                                 "path": "/orders"})
    assert str(pipe.trigger.pos) == "p.yaml:6:14"
    assert [s.name for s in pipe.compensation] == ["undo"]
    [step] = pipe.steps
    assert str(step.pos) == "p.yaml:18:9"
    assert step.if_ == ".x > 1" and step.skip_if == "{{ .skip }}"
    assert (step.on_error, step.timeout, step.idempotency_ttl, step.error_status) == (
        "continue", 120.0, 3600.0, 409)
    assert step.retry == RetryPolicy(max_attempts=3, initial_delay=0.1, max_delay=2.0,
                                     multiplier=3.0, jitter=0.5)
    assert step.idempotency_key == "{{ .order_id }}"
    assert step.compensate is not None
    assert step.compensate.name == "compensate"
    assert str(step.compensate.pos) == "p.yaml:26:21"
    assert pipe.step("store") is step


def test_defaults() -> None:
    pipe = load(pipeline("      - {name: a, type: step.set, config: {values: {}}}\n")).pipelines["p"]
    assert (pipe.on_error, pipe.record, pipe.dlq, pipe.max_jumps) == ("stop", "redacted",
                                                                      False, 10_000)
    assert pipe.trigger.type == "manual"
    step = pipe.steps[0]
    assert (step.retry, step.timeout, step.on_error, step.if_) == (None, None, None, None)


def test_dlq_true_and_literal_conditions() -> None:
    pipe = load(pipeline("      - {name: a, type: step.set, config: {values: {}}, if: false}\n",
                         extra="    dlq: true\n")).pipelines["p"]
    assert (pipe.dlq, pipe.dlq_max_retries) == (True, 3)
    assert pipe.steps[0].if_ == "false"  # a jq program that yields false


def test_substeps_list_single_and_map_are_full_steps() -> None:
    definition = load(pipeline("""\
      - name: loop
        type: step.foreach
        config:
          collection: "{{ .items }}"
          steps:
            - name: inner
              type: step.set
              config: {values: {y: "{{ .item }}"}}
              retry: {max_attempts: 2}
              on_error: continue
      - name: guarded
        type: step.circuit_breaker
        config:
          steps: [{name: call, type: step.log, config: {message: hi}}]
          fallback: {type: step.set, config: {values: {fallback: true}}}
      - name: route
        type: step.branch
        config:
          field: "{{ .kind }}"
          branches:
            big:
              - {name: b1, type: step.log, config: {message: big}}
              - name: nested
                type: step.foreach
                config:
                  collection: [1, 2]
                  steps: [{name: deep, type: step.log, config: {message: deep}}]
            small: [{name: s1, type: step.log, config: {message: small}}]
          default: [{name: d1, type: step.log, config: {message: other}}]
"""))
    loop, guarded, route = definition.pipelines["p"].steps
    [inner] = loop.substeps["steps"]
    assert (inner.name, inner.on_error, inner.retry.max_attempts) == ("inner", "continue", 2)
    assert str(inner.pos) == "p.yaml:11:15"
    assert loop.config["steps"][0]["name"] == "inner"  # the raw config is kept too
    assert [s.name for s in guarded.substeps["steps"]] == ["call"]
    assert [s.name for s in guarded.substeps["fallback"]] == ["fallback"]
    assert sorted(route.substeps) == ["branches/big", "branches/small", "default"]
    nested = route.substeps["branches/big"][1]
    assert [s.name for s in nested.substeps["steps"]] == ["deep"]
    assert str(nested.substeps["steps"][0].pos) == "p.yaml:32:27"


def test_sub_step_names_are_scoped_to_their_list() -> None:
    definition = load(pipeline("""\
      - name: a
        type: step.foreach
        config: {collection: [1], steps: [{name: a, type: step.log, config: {message: x}}]}
      - name: b
        type: step.foreach
        config: {collection: [1], steps: [{name: a, type: step.log, config: {message: x}}]}
"""))
    assert len(definition.pipelines["p"].steps) == 2


# ---------------------------------------------------------------- step keys and names


def test_unknown_step_key_suggests_the_closest() -> None:
    assert one_error(pipeline("""\
      - name: a
        type: step.set
        config: {values: {}}
        retries: {max_attempts: 2}
""")) == ("p.yaml:9:9: error: unknown step key 'retries' (did you mean 'retry'?)")


def test_missing_step_name() -> None:
    assert one_error(pipeline("      - {type: step.set, config: {values: {}}}\n")) == (
        "p.yaml:6:9: error: step has no 'name': add 'name:' (unique in its list; letters, "
        "digits, _ -)")


def test_invalid_step_name() -> None:
    assert one_error(pipeline("      - {name: 'a b', type: step.set, config: {values: {}}}\n")) == (
        "p.yaml:6:16: error: invalid step name 'a b': use letters, digits, '_' and '-'")


def test_missing_step_type() -> None:
    assert one_error(pipeline("      - {name: a, config: {values: {}}}\n")) == (
        "p.yaml:6:9: error: step 'a' has no 'type': add 'type:' with a step type such as "
        "step.set")


def test_duplicate_step_name_in_pipeline() -> None:
    assert one_error(pipeline("""\
      - {name: a, type: step.set, config: {values: {}}}
      - {name: a, type: step.set, config: {values: {}}}
""")) == ("p.yaml:7:16: error: duplicate step name 'a' (first used at line 6); step names must "
          "be unique")


def test_duplicate_step_name_in_sub_step_list() -> None:
    assert one_error(pipeline("""\
      - name: loop
        type: step.foreach
        config:
          collection: [1]
          steps:
            - {name: x, type: step.log, config: {message: a}}
            - {name: x, type: step.log, config: {message: b}}
""")) == ("p.yaml:12:22: error: duplicate step name 'x' (first used at line 11); step names "
          "must be unique")


def test_step_must_be_a_mapping() -> None:
    assert one_error(pipeline("      - just-a-string\n")) == (
        "p.yaml:6:9: error: a step must be a mapping with 'name', 'type' and 'config', not string")


def test_config_must_be_a_mapping() -> None:
    assert one_error(pipeline("      - {name: a, type: step.log, config: hello}\n")) == (
        "p.yaml:6:43: error: step 'a': 'config' must be a mapping of the type's settings, not "
        "string")


# ---------------------------------------------------------------- types and config schemas


def test_unknown_step_type_suggests_close_names() -> None:
    assert one_error(pipeline("      - {name: a, type: step.sett, config: {values: {}}}\n")) == (
        "p.yaml:6:25: error: unknown step type 'step.sett' (did you mean 'step.set'?)")


def test_unknown_step_type_far_from_anything() -> None:
    assert one_error(pipeline("      - {name: a, type: kafka.produce}\n")) == (
        "p.yaml:6:25: error: unknown step type 'kafka.produce'")


def test_schema_type_error_points_at_the_value() -> None:
    assert one_error(pipeline("""\
      - name: respond
        type: step.json_response
        config:
          status: "created"
          body: {ok: true}
""")) == ("p.yaml:9:19: error: step 'respond' (step.json_response): config.status: expected "
          "integer, got string \"created\"")


def test_schema_range_and_enum_errors() -> None:
    found = errors(pipeline("""\
      - {name: r, type: step.json_response, config: {status: 42}}
      - {name: l, type: step.log, config: {message: hi, level: loud}}
"""))
    assert found == [
        "p.yaml:6:62: error: step 'r' (step.json_response): config.status: 42 is less than the "
        "minimum of 100",
        "p.yaml:7:64: error: step 'l' (step.log): config.level: \"loud\" is not one of: "
        "\"debug\", \"info\", \"warn\", \"error\"",
    ]


def test_nested_schema_error_points_at_the_nested_value() -> None:
    assert one_error(pipeline("""\
      - name: r
        type: step.json_response
        config:
          headers:
            X-Count: 3
""")) == ("p.yaml:10:22: error: step 'r' (step.json_response): config.headers.X-Count: "
          "expected string, got integer 3")


def test_unknown_config_key_points_at_the_key() -> None:
    assert one_error(pipeline("""\
      - name: r
        type: step.json_response
        config:
          status: 200
          bdy: {}
""")) == ("p.yaml:10:11: error: step 'r' (step.json_response): unknown key 'bdy' in config "
          "(did you mean 'body'?)")
    assert one_error(pipeline("      - {name: r, type: step.json_response, config: {x: 1}}\n")
                     ) == ("p.yaml:6:54: error: step 'r' (step.json_response): unknown key 'x' "
                           "in config (known: body, headers, status)")


def test_missing_required_config_points_at_the_step_without_config() -> None:
    assert one_error(pipeline("      - {name: a, type: step.set}\n")) == (
        "p.yaml:6:9: error: step 'a' (step.set): config: 'values' is required")


def test_template_is_accepted_where_a_number_is_expected() -> None:
    definition = load(pipeline("""\
      - {name: r, type: step.json_response, config: {status: "{{ .code }}"}}
      - {name: l, type: step.log, config: {message: hi, level: "{{ .level }}"}}
      - {name: o, type: step.pipeline_output, config: {values: "{{ .result }}"}}
"""))
    assert definition.pipelines["p"].steps[0].config == {"status": "{{ .code }}"}


def test_oneof_failure_is_reported_once() -> None:
    assert one_error(pipeline("      - {name: o, type: step.pipeline_output, config: {values: 3}}\n")
                     ) == ("p.yaml:6:55: error: step 'o' (step.pipeline_output): config: does not "
                           "match any allowed form: values: expected object, got integer 3; or "
                           "'source' is required")


# ---------------------------------------------------------------- templates and programs


def test_invalid_template_in_config() -> None:
    assert one_error(pipeline("""\
      - name: a
        type: step.set
        config:
          values: {total: "{{ .qty * }}"}
""")).startswith("p.yaml:9:27: error: invalid template: jq syntax error in '.qty *': syntax "
                 "error, unexpected end of file")


def test_unterminated_template() -> None:
    message = one_error(pipeline("      - {name: a, type: step.log, config: {message: 'hi {{ .x'}}\n"))
    assert message.startswith("p.yaml:6:53: error: invalid template: unterminated '{{'")


def test_invalid_if_program_and_template() -> None:
    found = errors(pipeline("""\
      - {name: a, type: step.log, config: {message: hi}, if: ".x >"}
      - {name: b, type: step.log, config: {message: hi}, skip_if: "{{ .x >"}
      - {name: c, type: step.log, config: {message: hi}, if: [1]}
"""))
    assert found[0].startswith("p.yaml:6:62: error: invalid 'if': jq syntax error in '.x >'")
    assert found[1].startswith("p.yaml:7:67: error: invalid 'skip_if': unterminated '{{'")
    assert found[2].startswith("p.yaml:8:62: error: 'if' must be a template like")


def test_invalid_program_key() -> None:
    assert one_error(pipeline("      - {name: j, type: step.jq, config: {expression: 'map(.x'}}\n")
                     ).startswith("p.yaml:6:55: error: invalid jq program in config.expression: "
                                  "jq syntax error in 'map(.x'")


def test_invalid_idempotency_key_template() -> None:
    message = one_error(pipeline("      - {name: a, type: step.set, config: {values: {}}, "
                                 "idempotency_key: '{{ . | }}'}\n"))
    assert message.startswith("p.yaml:6:74: error: invalid template:")


def test_templates_in_sub_steps_are_checked_once() -> None:
    found = errors(pipeline("""\
      - name: loop
        type: step.foreach
        config:
          collection: [1]
          steps: [{name: x, type: step.log, config: {message: "{{ ( }}"}}]
"""))
    assert len(found) == 1 and found[0].startswith("p.yaml:10:63: error: invalid template")


# ---------------------------------------------------------------- references


def test_step_reference_to_a_missing_step() -> None:
    assert one_error(pipeline("""\
      - name: route
        type: step.conditional
        config: {field: "{{ .kind }}", routes: {a: first, b: "{{ .dynamic }}"}, default: lats}
      - {name: first, type: step.log, config: {message: a}}
      - {name: last, type: step.log, config: {message: b}}
""")) == ("p.yaml:8:90: error: step 'route' (step.conditional) config.default: no step named "
          "'lats' in pipeline 'p' (did you mean 'last'?)")


def test_step_reference_may_name_a_sibling_in_a_sub_step_list() -> None:
    load(pipeline("""\
      - name: loop
        type: step.foreach
        config:
          collection: [1]
          steps:
            - {name: pick, type: step.conditional, config: {field: x, routes: {a: other}}}
            - {name: other, type: step.log, config: {message: x}}
"""))


def test_module_reference_to_a_missing_module() -> None:
    assert one_error(pipeline("      - {name: s, type: step.db_exec, config: {database: dbb, "
                              "query: SELECT 1}}\n")) == (
        "p.yaml:6:58: error: step 's' (step.db_exec) config.database: no module named 'dbb' "
        "(did you mean 'db'?)")


def test_pipeline_reference_to_a_missing_pipeline() -> None:
    assert one_error(pipeline("      - {name: c, type: step.workflow_call, config: {workflow: q}}\n")
                     ) == ("p.yaml:6:64: error: step 'c' (step.workflow_call) config.workflow: no "
                           "pipeline named 'q' (defined: p)")


def test_template_references_are_skipped() -> None:
    load(pipeline("      - {name: c, type: step.workflow_call, config: {workflow: '{{ .w }}'}}\n"))


# ---------------------------------------------------------------- step settings


def test_bad_durations() -> None:
    found = errors(pipeline("""\
      - name: a
        type: step.log
        config: {message: x}
        timeout: soon
        idempotency_ttl: 0
""", extra="    timeout: -5\n"))
    assert found == [
        "p.yaml:5:14: error: 'timeout': invalid duration -5: must not be negative",
        "p.yaml:10:18: error: 'timeout': invalid duration 'soon': use e.g. 250ms, 5s, 2m, 1h, 1d "
        "or seconds",
        "p.yaml:11:26: error: 'idempotency_ttl' must be greater than zero, got 0",
    ]


def test_retry_ranges() -> None:
    found = errors(pipeline("""\
      - name: a
        type: step.log
        config: {message: x}
        retry: {max_attempts: 0, multiplier: 0.5, jitter: 2, initial_delay: 1x, backoff: 2}
      - name: b
        type: step.log
        config: {message: x}
        retry: {initial_delay: 10s, max_delay: 1s}
"""))
    assert found == [  # sorted by position
        "p.yaml:9:31: error: 'max_attempts' must be a whole number of at least 1, got 0",
        "p.yaml:9:46: error: 'multiplier' must be a number of at least 1, got 0.5",
        "p.yaml:9:59: error: 'jitter' must be a fraction between 0 and 1, got 2",
        "p.yaml:9:77: error: 'initial_delay': invalid duration '1x': use e.g. 250ms, 5s, 2m, "
        "1h, 1d or seconds",
        "p.yaml:9:81: error: unknown retry key 'backoff' (known: initial_delay, jitter, "
        "max_attempts, max_delay, multiplier)",
        "p.yaml:13:48: error: 'max_delay' (1s) must not be shorter than 'initial_delay' (10s)",
    ]


def test_enumerated_settings() -> None:
    found = errors(pipeline("""\
      - {name: a, type: step.log, config: {message: x}, on_error: contine, error_status: 700}
""", extra="    record: everything\n    on_error: 3\n"))
    assert found == [
        "p.yaml:5:13: error: 'record' must be one of full, redacted, metadata, got \"everything\"",
        "p.yaml:6:15: error: 'on_error' must be one of stop, continue, compensate, got 3",
        "p.yaml:8:67: error: 'on_error' must be one of stop, continue, compensate, got "
        "\"contine\" (did you mean 'continue'?)",
        "p.yaml:8:90: error: 'error_status' must be an HTTP status code (100-599), got 700",
    ]


def test_dlq_and_max_jumps() -> None:
    found = errors(pipeline("      - {name: a, type: step.log, config: {message: x}}\n",
                            extra="    dlq: {max_retries: -1}\n    max_jumps: 0\n"))
    assert found == [
        "p.yaml:5:24: error: 'dlq.max_retries' must be a whole number of at least 0, got -1",
        "p.yaml:6:16: error: 'max_jumps' must be a whole number of at least 1, got 0",
    ]


def test_unknown_pipeline_key() -> None:
    assert one_error(pipeline("      - {name: a, type: step.log, config: {message: x}}\n",
                              extra="    timout: 5s\n")) == (
        "p.yaml:5:5: error: unknown pipeline key 'timout' (did you mean 'timeout'?)")


# ---------------------------------------------------------------- triggers


def test_trigger_checks() -> None:
    found = errors("""\
pipelines:
  h:
    trigger: {type: http, config: {method: FETCH}}
    steps: [{name: a, type: step.log, config: {message: x}}]
  s:
    trigger: {type: schedule, config: {cron: "every minute", timezone: Mars/Olympus}}
    steps: [{name: a, type: step.log, config: {message: x}}]
  e:
    trigger: {type: webhook}
    steps: [{name: a, type: step.log, config: {message: x}}]
  m:
    trigger: {type: schedule, path: /x}
    steps: [{name: a, type: step.log, config: {message: x}}]
""")
    assert found == [
        "p.yaml:3:35: error: an http trigger needs 'path' (e.g. /orders/{id}) in its config",
        "p.yaml:3:44: error: invalid HTTP method \"FETCH\" (use one of GET, POST, PUT, PATCH, "
        "DELETE, HEAD, OPTIONS)",
        "p.yaml:6:46: error: invalid cron expression 'every minute': use five fields 'minute hour "
        "day month weekday' (e.g. '*/5 * * * *') or one of @yearly, @annually, @monthly, "
        "@weekly, @daily, @midnight, @hourly",
        "p.yaml:6:72: error: unknown time zone \"Mars/Olympus\" (use an IANA name such as "
        "Europe/Paris or UTC)",
        "p.yaml:9:21: error: 'type' must be one of manual, http, schedule, event, got "
        "\"webhook\"",
        "p.yaml:12:14: error: a schedule trigger needs 'cron' (e.g. '*/5 * * * *') in its config",
        "p.yaml:12:31: error: unknown trigger key 'path' (trigger settings go under 'config:')",
    ]


def test_valid_triggers() -> None:
    definition = load("""\
pipelines:
  s:
    trigger: {type: schedule, config: {cron: "*/5 * * * *", timezone: Europe/Paris}}
    steps: [{name: a, type: step.log, config: {message: x}}]
""")
    assert definition.pipelines["s"].trigger.config["cron"] == "*/5 * * * *"
    # event triggers, which must name a declared source: tests/engine/test_config_connectors.py


# ---------------------------------------------------------------- file-level structure


def test_no_pipelines() -> None:
    assert one_error("name: x\n") == ("p.yaml:1:1: error: the file defines no pipelines: add a "
                                     "'pipelines:' mapping with at least one pipeline")
    assert one_error("pipelines: {}\n") == ("p.yaml:1:12: error: 'pipelines' is empty: define at "
                                            "least one pipeline")


def test_pipeline_without_steps() -> None:
    found = errors("pipelines:\n  a: {description: nothing}\n  b: {steps: []}\n")
    assert found == [
        "p.yaml:2:3: error: pipeline 'a' has no steps: add a 'steps:' list",
        "p.yaml:3:14: error: pipeline 'b': 'steps' must be a non-empty list of steps",
    ]


def test_unknown_top_level_key_is_a_warning() -> None:
    definition = load(pipeline("      - {name: a, type: step.log, config: {message: x}}\n")
                      + "deploy: {replicas: 3}\n")
    assert [str(w) for w in definition.warnings] == [
        "p.yaml:7:1: warning: unknown top-level key 'deploy' is ignored (known keys: name, "
        "version, description, imports, modules, pipelines, connectors, schemas, environments)"]


def test_metadata() -> None:
    definition = load("name: orders\nversion: 1.10\ndescription: Orders\n"
                      + pipeline("      - {name: a, type: step.log, config: {message: x}}\n"))
    assert (definition.name, definition.version, definition.description) == (
        "orders", "1.10", "Orders")


def test_every_error_is_reported_not_just_the_first() -> None:
    found = errors("""\
modules:
  - {name: db, type: database.sqll}
pipelines:
  p:
    steps:
      - {name: a, type: step.nope}
      - {name: b, type: step.log, config: {message: 1}}
      - {name: b, type: step.log, config: {message: x}, timeout: never}
""")
    assert [f.split(": error: ")[0] for f in found] == [
        "p.yaml:2:22", "p.yaml:6:25", "p.yaml:7:53", "p.yaml:8:16", "p.yaml:8:66"]


# ---------------------------------------------------------------- modules


def test_module_errors() -> None:
    found = errors("""\
modules:
  - {name: db, type: database.sqll, config: {url: x}}
  - {name: db2, type: database.sql, config: {url: x, pool_size: none}}
  - {name: db2, type: cache.memory}
  - {type: cache.memory}
pipelines:
  p:
    steps: [{name: a, type: step.log, config: {message: x}}]
""")
    assert found == [
        "p.yaml:2:22: error: unknown module type 'database.sqll' (did you mean 'database.sql'?)",
        "p.yaml:3:65: error: module type database.sql: config.pool_size: expected integer, got "
        "string \"none\"",
        "p.yaml:4:12: error: duplicate module name 'db2' (first defined at line 3)",
        "p.yaml:5:5: error: module has no 'name': add 'name:' so steps can refer to it",
    ]


def test_unknown_module_key_is_a_warning() -> None:
    definition = load("""\
modules:
  - {name: db, type: database.sql, config: {url: x}, dependsOn: [cache]}
pipelines:
  p:
    steps: [{name: a, type: step.log, config: {message: x}}]
""")
    assert [str(w) for w in definition.warnings] == [
        "p.yaml:2:54: warning: unknown module key 'dependsOn' (known: config, description, "
        "name, type)"]


def test_schemas_are_checked() -> None:
    assert one_error("""\
schemas:
  order: {type: objekt}
pipelines:
  p:
    steps: [{name: a, type: step.log, config: {message: x}}]
""").startswith("p.yaml:2:10: error: schema 'order' is invalid:")


# ---------------------------------------------------------------- validate_paths


def test_validate_paths_collects_from_every_file(tmp_path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("extra: 1\npipelines:\n  p:\n    steps: [{name: a, type: step.log, config: "
                    "{message: x}}]\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipelines:\n  p:\n    steps: [{name: a, type: step.lg}]\n")
    missing = tmp_path / "missing.yaml"
    found = validate_paths([str(good), str(bad), str(missing)], registry=REGISTRY, env={})
    assert [str(d) for d in found] == [
        f"{good}:1:1: warning: unknown top-level key 'extra' is ignored (known keys: name, "
        "version, description, imports, modules, pipelines, connectors, schemas, environments)",
        f"{bad}:3:29: error: unknown step type 'step.lg' (did you mean 'step.log'?)",
        f"{missing}:1:1: error: cannot read {missing}: file not found",
    ]
