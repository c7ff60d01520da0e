"""YAML parsing with positions: syntax errors, duplicate keys, scalars, aliases."""

from __future__ import annotations

import math

import pytest

from engine.config.loader import load_file
from engine.config.yamlpos import parse_yaml
from engine.errors import ConfigError

try:
    from tests.engine.test_config_support import REGISTRY, errors, load, one_error
except ImportError:
    from test_config_support import REGISTRY, errors, load, one_error  # type: ignore[no-redef]

VALID = """
pipelines:
  p:
    steps:
      - name: a
        type: step.set
        config: {values: {x: 1}}
"""


def test_positions_are_one_based_and_keys_are_tracked() -> None:
    parsed = parse_yaml("a:\n  b: [1, {c: x}]\n", "f.yaml")
    assert parsed.diagnostics == []
    assert parsed.value == {"a": {"b": [1, {"c": "x"}]}}
    assert parsed.positions.values[("a", "b", 1, "c")] == (2, 14)
    assert parsed.positions.keys[("a", "b")] == (2, 3)
    assert str(parsed.positions.at(("a", "b", 1, "missing"))) == "f.yaml:2:10"


def test_syntax_error_is_a_positioned_diagnostic() -> None:
    found = errors("""
        pipelines:
          p:
            steps: [a, b
        """)
    assert len(found) == 1
    assert found[0].startswith("p.yaml:4:1: error: YAML syntax error: did not find expected ',' "
                               "or ']' while parsing a flow sequence (line 3, column 12)")


def test_bad_indentation_error() -> None:
    message = one_error("a:\n  - b\n c: 1\n")
    assert message.startswith("p.yaml:3:2: error: YAML syntax error: did not find expected key")


def test_control_character_is_reported_with_its_position() -> None:
    message = one_error("é: 1\nb: \x01\n")
    assert message.startswith("p.yaml:2:4: error: YAML syntax error: unacceptable character #x0001")


def test_lone_surrogate_is_reported() -> None:
    message = one_error("a: 1\nb: \ud800\n")
    assert message.startswith("p.yaml:2:4: error: the file contains an invalid character")


def test_several_documents_are_an_error() -> None:
    message = one_error("a: 1\n---\nb: 2\n")
    assert message.startswith("p.yaml:2:1: error: YAML syntax error: but found another document")


def test_duplicate_keys_are_errors_naming_the_first() -> None:
    found = errors("""
        pipelines:
          p:
            steps:
              - name: a
                type: step.set
                name: b
                config: {values: {x: 1, x: 2}}
        """)
    assert found == [
        "p.yaml:6:9: error: duplicate key 'name' (first defined at line 4, column 9)",
        "p.yaml:7:33: error: duplicate key 'x' (first defined at line 7, column 27)",
    ]


def test_yaml_1_2_scalars() -> None:
    parsed = parse_yaml("a: [yes, no, on, off, 010, 1:20, 2024-01-01, 0x1f, 0o17, 1e3, .inf, "
                        "~, true, False, '1', 1.10]\n", "f")
    assert parsed.diagnostics == []
    value = parsed.value["a"]
    assert value[:7] == ["yes", "no", "on", "off", 10, "1:20", "2024-01-01"]
    assert value[7:10] == [31, 15, 1000.0]
    assert math.isinf(value[10])
    assert value[11:] == [None, True, False, "1", 1.1]
    assert parsed.positions.raw[("a", 15)] == "1.10"


def test_mapping_keys_are_strings() -> None:
    parsed = parse_yaml("1: a\ntrue: b\nnull: c\n", "f")
    assert parsed.value == {"1": "a", "true": "b", "null": "c"}


def test_merge_keys_and_aliases() -> None:
    parsed = parse_yaml("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n", "f")
    assert parsed.diagnostics == []
    assert parsed.value["other"] == {"y": 3, "x": 1}
    # The merged value keeps the position of its definition.
    assert parsed.positions.values[("other", "x")] == (1, 14)


def test_unsupported_tag_is_an_error() -> None:
    message = one_error("a: !Ref thing\n" + VALID)
    assert message == "p.yaml:1:4: error: unsupported YAML tag '!Ref'"


def test_recursive_alias_is_an_error() -> None:
    message = one_error("a: &x [1, *x]\n" + VALID)
    assert message == "p.yaml:1:4: error: recursive alias: a value cannot contain itself"


def test_complex_key_is_an_error() -> None:
    message = one_error("? [1, 2]\n: x\n" + VALID)
    assert message == "p.yaml:1:3: error: mapping keys must be plain strings, not lists or mappings"


def test_alias_bomb_is_bounded() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    message = one_error("\n".join(lines) + VALID)
    assert "the document is too large" in message


def test_deep_nesting_is_bounded() -> None:
    found = errors("a: " + "[" * 300 + "]" * 300 + "\n")
    assert any("nested more than 200 levels" in e for e in found)


def test_empty_file() -> None:
    assert one_error("") == ("p.yaml:1:1: error: the file is empty: a pipeline file is a mapping "
                             "with a 'pipelines:' section")


def test_root_must_be_a_mapping() -> None:
    assert one_error("- a\n- b\n") == ("p.yaml:1:1: error: the file must be a mapping with a "
                                        "'pipelines:' section, not array")


def test_missing_file_is_a_diagnostic(tmp_path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_file(tmp_path / "nope.yaml", registry=REGISTRY)
    [diagnostic] = caught.value.diagnostics
    assert diagnostic.file == str(tmp_path / "nope.yaml")
    assert (diagnostic.line, diagnostic.col) == (1, 1)
    assert diagnostic.message.endswith("nope.yaml: file not found")


def test_non_utf8_file_is_a_diagnostic(tmp_path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"name: ok\ndescription: caf\xe9\n")
    with pytest.raises(ConfigError) as caught:
        load_file(path, registry=REGISTRY)
    [diagnostic] = caught.value.diagnostics
    assert (diagnostic.line, diagnostic.col) == (2, 17)
    assert "not UTF-8 text (invalid byte 0xe9)" in diagnostic.message


def test_load_file_reads_and_keeps_the_exact_source(tmp_path) -> None:
    path = tmp_path / "p.yaml"
    text = "# comment\r\npipelines:\r\n  p:\r\n    steps: [{name: a, type: step.set, config: " \
           "{values: {}}}]\r\n"
    path.write_bytes(text.encode())
    definition = load_file(path, registry=REGISTRY, env={})
    assert definition.sources == {str(path): text}
    assert definition.path == str(path)
    assert definition.pipelines["p"].steps[0].pos.line == 4


def test_valid_text_loads() -> None:
    definition = load(VALID)
    assert definition.warnings == []
    assert definition.pipelines["p"].steps[0].config == {"values": {"x": 1}}
