"""Values of the generated forms: YAML in and out, type coercion and the choice of editor.

Nothing here touches widgets, so the property panel can tell whether a changed step still
fits the editors on screen (:func:`choose_kind` per key) before it rebuilds anything.
"""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from app.editor.jq_field import PROGRAM

RelPath = tuple[str, ...]
MISSING: Any = object()

# Kinds of editor; the layout signature of a form is its (path, kind) list.
SUBSTEPS = "substeps"
RAW = "raw"
TEXT = "text"
TEXT_AREA = "text_area"
ENUM = "enum"
BOOL = "bool"
REF = "ref"
OBJECT = "object"
MAP = "map"
LIST = "list"

ERROR_COLOUR = "#D9363E"
_COMBINATORS = ("oneOf", "anyOf", "allOf", "not", "if")
_SCALAR_TYPES = {"string", "number", "integer", "boolean", "null"}


@dataclass
class Roles:
    """Keys of the mapping with a meaning beyond their schema (from ``StepTypeInfo``)."""

    programs: frozenset[str] = frozenset()  # a bare jq program or a template
    step_refs: frozenset[str] = frozenset()  # name a step of the pipeline
    module_refs: frozenset[str] = frozenset()  # name a module of the file
    substeps: dict[str, str] = field(default_factory=dict)  # key -> list|single|map

    def of(self, key: str) -> str:
        if key in self.substeps:
            return SUBSTEPS
        if key in self.programs:
            return PROGRAM
        if key in self.step_refs:
            return "step"
        if key in self.module_refs:
            return "module"
        return ""



@dataclass
class FieldSpec:
    path: RelPath
    key: str
    schema: dict[str, Any]
    required: bool = False
    role: str = ""
    unknown: bool = False  # a key the schema does not know

    @property
    def name(self) -> str:
        return ".".join(self.path)

    @property
    def default(self) -> Any:
        return self.schema.get("default", MISSING)

    @property
    def description(self) -> str:
        return str(self.schema.get("description") or "")



# -- values ------------------------------------------------------------------------------


def _yaml() -> YAML:
    y = YAML(typ="safe", pure=True)
    return y


def _dumper() -> YAML:
    # The round-trip dumper keeps key order (the safe one sorts keys) and indents like the files.
    y = YAML(typ="rt")
    y.default_flow_style = False
    y.indent(mapping=2, sequence=4, offset=2)
    y.width = 100
    return y


def dump_yaml(value: Any) -> str:
    """Block YAML for the raw editor (a lone scalar without the document-end marker)."""
    stream = io.StringIO()
    _dumper().dump(value, stream)
    text = textwrap.dedent(stream.getvalue())  # a top-level list starts at column 0
    return text.removesuffix("...\n").rstrip("\n")


def dump_flow(value: Any) -> str:
    """One-line YAML for a table cell."""
    if isinstance(value, str):
        return value
    y = YAML(typ="rt")
    y.default_flow_style = True
    y.width = 10_000
    stream = io.StringIO()
    y.dump(value, stream)
    return stream.getvalue().removesuffix("...\n").strip()


def parse_yaml(text: str) -> Any:
    """YAML 1.2 (as the document's round trip reads it); raises ValueError with a short message."""
    try:
        return _yaml().load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise ValueError(f"YAML error: {where}{problem}") from None


def to_text(value: Any) -> str:
    if value is MISSING or value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    return dump_flow(value)


def schema_types(schema: dict[str, Any]) -> set[str] | None:
    kind = schema.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {str(k) for k in kind}
    if "properties" in schema or "additionalProperties" in schema:
        return {"object"}
    if "items" in schema:
        return {"array"}
    return None


def type_ok(value: Any, types: set[str] | None) -> bool:
    if types is None:
        return True
    if isinstance(value, bool):
        return "boolean" in types
    if isinstance(value, int):
        return bool({"integer", "number"} & types)
    if isinstance(value, float):
        return "number" in types or ("integer" in types and value.is_integer())
    if isinstance(value, str):
        return "string" in types
    if value is None:
        return "null" in types
    if isinstance(value, dict):
        return "object" in types
    if isinstance(value, list):
        return "array" in types
    return False


def coerce(text: str, types: set[str] | None) -> Any:
    """The value a one-line field means; raises ValueError naming what it expected.

    A template is a string whatever the type. Otherwise the text is read as a YAML scalar
    and kept when the schema allows its type, else taken as text when strings are allowed.
    """
    if "{{" in text:
        return text
    try:
        parsed = parse_yaml(text)
    except ValueError:
        parsed = text
    if parsed is None or (isinstance(parsed, dict | list) and types is not None
                          and not type_ok(parsed, types)):
        parsed = text  # "~" or "[x]" typed where no structure belongs is text
    if type_ok(parsed, types):
        return parsed
    if types is None or "string" in types:
        return text
    wanted = " or ".join(sorted(types - {"null"}))
    names = {"integer": "a whole number", "number": "a number", "boolean": "true or false"}
    wanted = names.get(wanted, wanted)
    raise ValueError(f"expected {wanted} or a {{{{ template }}}}")


def range_problem(value: Any, schema: dict[str, Any]) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ""
    if "minimum" in schema and value < schema["minimum"]:
        return f"must be at least {schema['minimum']}"
    if "maximum" in schema and value > schema["maximum"]:
        return f"must be at most {schema['maximum']}"
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        return f"must be greater than {schema['exclusiveMinimum']}"
    return ""


def lookup(value: Any, path: RelPath) -> Any:
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return MISSING
        value = value[key]
    return value


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, dict | list)


def _simple(schema: dict[str, Any]) -> bool:
    """False when a combinator, not the schema itself, defines the value's shape."""
    if not any(key in schema for key in _COMBINATORS):
        return True
    return any(key in schema for key in ("type", "properties", "enum", "const", "items"))


def choose_kind(schema: dict[str, Any], value: Any, role: str = "") -> str:
    """Which editor shows ``value`` (MISSING when the key is absent) under ``schema``."""
    if role == SUBSTEPS:
        return SUBSTEPS
    if schema.get("x-raw"):
        return RAW  # the owner knows there is no form for this value
    if isinstance(value, str) and "{{" in value:
        return TEXT_AREA if "\n" in value else TEXT
    if not _simple(schema):
        return RAW if value is not MISSING and not _is_scalar(value) else TEXT
    enum = schema.get("enum", [schema["const"]] if "const" in schema else None)
    if isinstance(enum, list) and enum:
        if value is MISSING or value in enum:
            return ENUM
        return TEXT if _is_scalar(value) else RAW
    if role == PROGRAM:
        return TEXT if _is_scalar(value) else RAW
    if role in ("step", "module") and (value is MISSING or isinstance(value, str)):
        return REF
    types = schema_types(schema)
    only = types == {"object"} or types == {"array"}
    if isinstance(value, dict) or (value is MISSING and types == {"object"}):
        if types is not None and "object" not in types:
            return RAW
        if schema.get("properties"):
            known = set(schema["properties"])
            return OBJECT if value is MISSING or set(value) <= known else RAW
        values = [] if value is MISSING else list(value.values())
        return MAP if all(_is_scalar(v) for v in values) else RAW
    if isinstance(value, list) or (value is MISSING and types == {"array"}):
        if types is not None and "array" not in types:
            return RAW
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        item_types = schema_types(items) or ({"string"} if "enum" in items else None)
        scalar_items = item_types is not None and item_types <= _SCALAR_TYPES
        values = [] if value is MISSING else value
        return LIST if scalar_items and all(_is_scalar(v) for v in values) else RAW
    if only:
        return RAW  # a scalar where a structure belongs
    if isinstance(value, bool) or (value is MISSING and types == {"boolean"}):
        return BOOL if types is None or "boolean" in types else TEXT
    if isinstance(value, str) and "\n" in value:
        return TEXT_AREA
    return TEXT
