"""Validation tells the truth about connectors: an unknown or uninstalled connector type,
a config that does not match its type's JSON Schema, an event trigger that names no
source, each is an error at its position (never "ok"); an unused source is a warning."""

from __future__ import annotations

from tests.engine.test_config_support import errors, load

SOURCE = """
connectors:
  - name: orders
    type: source.redis_streams
    config: {stream: orders}
  - name: notify
    type: sink.webhook
    config: {url: "http://127.0.0.1:9/hook"}
pipelines:
  handle:
    trigger: {type: event, config: {connector: orders, type: "order.*"}}
    steps: [{name: a, type: step.log, config: {message: x}}]
"""


def test_a_declared_source_and_sink_load() -> None:
    definition = load(SOURCE)
    assert [c["name"] for c in definition.connectors] == ["orders", "notify"]
    assert definition.pipelines["handle"].trigger.config == {"connector": "orders",
                                                             "type": "order.*"}
    assert definition.warnings == []


def test_an_unknown_connector_type_is_an_error_at_its_type() -> None:
    found = errors(SOURCE.replace("source.redis_streams", "source.kafka"))
    assert found[0].startswith("p.yaml:3:11: error: unknown connector type 'source.kafka' "
                               "(did you mean")
    assert found[0].endswith("a plugin that provides it may not be installed")
    # and the trigger naming it finds no source either
    assert "p.yaml:10:48: error: pipeline 'handle' event trigger connector: no source named " \
           "'orders'" in found[1]


def test_a_misspelt_type_gets_a_suggestion() -> None:
    [found] = [e for e in errors(SOURCE.replace("sink.webhook", "sink.webhok")) if "sink." in e]
    assert found.startswith("p.yaml:6:11: error: unknown connector type 'sink.webhok'")
    assert "sink.webhook" in found


def test_a_config_that_does_not_match_the_schema_is_an_error_at_the_value() -> None:
    found = errors(SOURCE.replace("{stream: orders}", "{stream: orders, batch: many}"))
    assert len(found) == 1
    assert found[0] == ("p.yaml:4:37: error: connector type source.redis_streams: "
                        'config.batch: expected integer, got string "many"')
    missing = errors(SOURCE.replace('{url: "http://127.0.0.1:9/hook"}', "{}"))
    assert missing[0].startswith("p.yaml:7:13: error: connector type sink.webhook")
    assert "url" in missing[0]


def test_an_event_trigger_must_name_a_declared_source() -> None:
    found = errors(SOURCE.replace("connector: orders", "connector: notify"))
    # a sink is not a source (and 'orders' is now unused: a warning, listed first)
    assert found[0].startswith("p.yaml:2:11: warning: source 'orders' is not used")
    assert found[1].startswith("p.yaml:10:48: error: pipeline 'handle' event trigger "
                               "connector: no source named 'notify'")
    none = errors(SOURCE.replace("config: {connector: orders, type: \"order.*\"}", "config: {}"))
    assert any("p.yaml:10:36: error: an event trigger needs 'connector'" in e for e in none)


def test_a_source_no_pipeline_takes_is_a_warning() -> None:
    definition = load(SOURCE.replace("type: event, config: {connector: orders, type: \"order.*\"}",
                                     "type: manual"))
    assert [str(w) for w in definition.warnings] == [
        "p.yaml:2:11: warning: source 'orders' is not used: no pipeline's event trigger names "
        "it, so it will not run"]
