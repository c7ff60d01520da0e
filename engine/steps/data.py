"""Pure data step types: set, log, validate, jq, transform, json_parse, hash, regex_match,
delay, fail and pipeline_output.

None of them touches the outside world; they read the resolved config (and, where a
``source``/``input`` is omitted, the live context) and return an output.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, cast

import jsonschema
from jsonschema.exceptions import SchemaError

from engine.durations import parse_duration
from engine.errors import ExpressionError, StepError
from engine.expressions import evaluate
from engine.format.json_types import value_type as type_name
from engine.steps.base import StepContext, StepResult, StepType

RESERVED_KEYS = frozenset({"steps", "trigger", "meta", "env"})


# ---------------------------------------------------------------- helpers shared by the groups


def config_schema(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """A strict object schema for a step's ``config`` (draft 2020-12)."""
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False,
                              "properties": properties}
    if required:
        schema["required"] = required
    return schema


# A list of full steps (validated by the loader like top-level steps).
STEP_LIST_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {"type": "object", "required": ["name", "type"],
              "properties": {"name": {"type": "string"}, "type": {"type": "string"}}},
}


def current_data(ctx: StepContext) -> dict[str, Any]:
    """The context's current values: trigger fields with step outputs merged, no reserved keys."""
    return {k: v for k, v in ctx.vars.items() if k not in RESERVED_KEYS}


def short(value: Any, limit: int = 120) -> str:
    """Compact JSON of ``value`` for a message, cut at ``limit`` characters."""
    try:
        text = json.dumps(value, separators=(",", ":"), default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def int_option(config: Mapping[str, Any], key: str, default: int, minimum: int) -> int:
    """An integer option that may have come from a template; a bad value is a StepError."""
    value = config.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        value_ok = False
    else:
        try:
            number = int(value)
            value_ok = number == float(value) and number >= minimum
        except ValueError:
            value_ok = False
    if not value_ok:
        raise StepError(f"`{key}` must be an integer >= {minimum}, got {short(value)}",
                        type="config")
    return number


def canonical_json(value: Any) -> str:
    """Stable text of a value: sorted keys, no spaces (what hash and convert-to-json produce)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


# ---------------------------------------------------------------- step.set / step.log


async def run_set(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    return dict(config.get("values") or {})


async def run_log(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    message = config.get("message")
    text = message if isinstance(message, str) else short(message, 10_000)
    ctx.log(config.get("level", "info"), text)
    return {}


# ---------------------------------------------------------------- step.validate


def _missing_fields(data: Mapping[str, Any], fields: list[str]) -> list[dict[str, str]]:
    violations = []
    for field_path in fields:
        value: Any = data
        for part in field_path.split("."):
            if isinstance(value, Mapping) and part in value:
                value = value[part]
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                value = _ABSENT
                break
        if value is _ABSENT:
            violations.append({"path": field_path, "message": "is required but missing"})
        elif value is None:
            violations.append({"path": field_path, "message": "is required but null"})
    return violations


_ABSENT = object()


def _schema_violations(data: Any, schema: Any) -> list[dict[str, str]]:
    if not isinstance(schema, Mapping):
        raise StepError(f"step.validate: `schema` must be an object (a JSON Schema), got "
                        f"{type_name(schema)} {short(schema)}", type="config")
    validator_cls = jsonschema.validators.validator_for(
        schema, default=jsonschema.Draft202012Validator)
    try:
        validator_cls.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "(root)"
        raise StepError(f"step.validate: `schema` is not a valid JSON Schema at {where}: "
                        f"{exc.message}", type="config") from None
    validator = validator_cls(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    return [{"path": e.json_path, "message": e.message} for e in errors]


async def run_validate(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    data = config["source"] if "source" in config else current_data(ctx)
    strategy = config.get("strategy", "required_fields")
    if strategy == "required_fields":
        if not isinstance(data, Mapping):
            raise StepError(f"step.validate: required_fields needs an object to check but the "
                            f"source is {type_name(data)} {short(data)}; point `source` at an "
                            "object, e.g. '{{ .body }}'", type="validation", status=400)
        violations = _missing_fields(data, list(config.get("required_fields") or []))
    else:
        if "schema" not in config:
            raise StepError("step.validate: strategy json_schema needs a `schema`", type="config")
        violations = _schema_violations(data, config["schema"])
    if violations:
        listed = "; ".join(f"{v['path']}: {v['message']}" for v in violations)
        plural = "s" if len(violations) > 1 else ""
        raise StepError(f"validation failed ({len(violations)} violation{plural}): {listed}",
                        type="validation", status=400, details=violations)
    return {}


# ---------------------------------------------------------------- step.jq


async def run_jq(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    program = config["expression"]
    try:
        if "input" not in config:
            result = ctx.evaluate(program)
        elif program.strip() == ".":
            result = config["input"]
        else:
            # evaluate() serialises whatever it is given; non-object inputs are fine for jq.
            result = evaluate(program, cast(Mapping[str, Any], config["input"]))
    except ExpressionError as exc:
        raise StepError(f"step.jq: {exc}", type="expression") from None
    if isinstance(result, Mapping):
        return {**result, "result": result}
    return {"result": result}


# ---------------------------------------------------------------- step.transform


def _walk(data: Any, path: str) -> Any:
    """Follow a dotted path; digit segments index arrays. Raises KeyError naming the miss."""
    value = data
    if path in ("", "."):
        return value
    for part in path.removeprefix(".").split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif (isinstance(value, list) and part.lstrip("-").isdigit()
              and -len(value) <= int(part) < len(value)):
            value = value[int(part)]
        else:
            raise KeyError(f"no {part!r} in {type_name(value)} {short(value, 80)}")
    return value


def _each_object(data: Any, op: str, fn: Any) -> Any:
    """Apply ``fn`` to an object, or to every object of an array (other items pass through)."""
    if isinstance(data, Mapping):
        return fn(data)
    if isinstance(data, list):
        return [fn(item) if isinstance(item, Mapping) else item for item in data]
    raise StepError(f"step.transform: {op} needs an object or an array of objects, got "
                    f"{type_name(data)} {short(data)}", type="transform")


_BOOL_TEXT = {"true": True, "yes": True, "on": True, "1": True,
              "false": False, "no": False, "off": False, "0": False}


def _convert_value(value: Any, source: str, target: str) -> Any:
    """One conversion of the table documented on ``operations``; ValueError when it can't."""
    if source == "json" and target == "object":
        if not isinstance(value, str):
            raise ValueError(f"expected JSON text, got {type_name(value)}")
        return json.loads(value)
    if source == "object" and target == "json":
        return canonical_json(value)
    if source == "string" and target in ("number", "integer", "boolean"):
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {type_name(value)}")
        text = value.strip()
        if target == "boolean":
            if text.lower() not in _BOOL_TEXT:
                raise ValueError(f"{value!r} is not a boolean (true/false/yes/no/on/off/1/0)")
            return _BOOL_TEXT[text.lower()]
        if target == "integer":
            return int(text)
        try:
            return int(text)
        except ValueError:
            return float(text)
    if target == "string" and source in ("number", "integer", "boolean"):
        if isinstance(value, bool):
            return "true" if value else "false"
        if not isinstance(value, int | float):
            raise ValueError(f"expected a {source}, got {type_name(value)}")
        return json.dumps(value)
    if source == "number" and target == "integer":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number, got {type_name(value)}")
        return int(value)  # truncates toward zero
    if source == "integer" and target == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected an integer, got {type_name(value)}")
        return float(value)
    raise ValueError(f"converting {source} to {target} is not supported; supported: "
                     + ", ".join(f"{a}->{b}" for a, b in CONVERSIONS))


CONVERSIONS = [("json", "object"), ("object", "json"), ("string", "number"),
               ("string", "integer"), ("string", "boolean"), ("number", "string"),
               ("integer", "string"), ("boolean", "string"), ("number", "integer"),
               ("integer", "number")]


def _apply_operation(data: Any, index: int, operation: Mapping[str, Any]) -> Any:
    kind = operation.get("type")
    params = operation.get("config") or {}
    where = f"operation {index} ({kind})"
    if kind == "extract":
        path = params.get("path", "")
        try:
            return _walk(data, path)
        except KeyError as exc:
            if "default" in params:
                return params["default"]
            raise StepError(f"step.transform: {where}: path {path!r} not found: {exc.args[0]}",
                            type="transform") from None
    if kind == "map":
        mappings = params.get("mappings") or {}

        def rename(obj: Mapping[str, Any]) -> dict[str, Any]:
            out = {k: v for k, v in obj.items() if k not in mappings}
            for old, new in mappings.items():
                if old in obj:
                    out[new] = obj[old]
            return out

        return _each_object(data, where, rename)
    if kind == "filter":
        fields = list(params.get("fields") or [])
        return _each_object(data, where, lambda obj: {k: obj[k] for k in fields if k in obj})
    if kind == "convert":
        source, target = str(params.get("from")), str(params.get("to"))
        names = params.get("fields")
        try:
            if names is None:
                return _convert_value(data, source, target)

            def convert_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
                out = dict(obj)
                for name in names:
                    if name in out:
                        try:
                            out[name] = _convert_value(out[name], source, target)
                        except ValueError as exc:
                            raise ValueError(
                                f"field {name!r} ({short(out[name], 60)}): {exc}") from None
                return out

            return _each_object(data, where, convert_fields)
        except ValueError as exc:
            raise StepError(f"step.transform: {where}: cannot convert {source} to {target}: {exc}",
                            type="transform") from None
    raise StepError(f"step.transform: {where}: unknown operation type {kind!r}; use extract, map, "
                    "filter or convert", type="config")


async def run_transform(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    data: Any = config["source"] if "source" in config else current_data(ctx)
    for index, operation in enumerate(config.get("operations") or []):
        data = _apply_operation(data, index, operation)
    return {"data": data}


# ---------------------------------------------------------------- json_parse, hash, regex


async def run_json_parse(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    source = config.get("source")
    target = config.get("target", "value")
    if isinstance(source, bytes):
        source = source.decode("utf-8", "replace")
    if not isinstance(source, str):
        # Already structured (e.g. a parsed HTTP body): nothing to parse.
        return {target: source}
    try:
        return {target: json.loads(source)}
    except json.JSONDecodeError as exc:
        around = source[max(exc.pos - 20, 0): exc.pos + 20]
        raise StepError(f"step.json_parse: invalid JSON at line {exc.lineno} column {exc.colno}: "
                        f"{exc.msg} (near {around!r})", type="parse", status=400) from None


async def run_hash(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    value = config.get("input")
    text = value if isinstance(value, str) else canonical_json(value)
    algorithm = config.get("algorithm", "sha256")
    digest = hashlib.new(algorithm, text.encode("utf-8"))
    return {"hash": digest.hexdigest()}


async def run_regex_match(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    value = config.get("input")
    if value is None or isinstance(value, Mapping | list):
        raise StepError(f"step.regex_match: `input` must be a string, got {type_name(value)} "
                        f"{short(value)}", type="config")
    text = value if isinstance(value, str) else json.dumps(value)
    flags = re.IGNORECASE if config.get("ignore_case") else 0
    try:
        pattern = re.compile(config["pattern"], flags)
    except re.error as exc:
        raise StepError(f"step.regex_match: invalid pattern {config['pattern']!r}: {exc}",
                        type="config") from None
    match = pattern.fullmatch(text) if config.get("full_match") else pattern.search(text)
    if match is None:
        return {"matched": False, "match": None, "groups": [], "named": {}}
    return {"matched": True, "match": match.group(0), "groups": list(match.groups()),
            "named": match.groupdict()}


# ---------------------------------------------------------------- delay, fail, pipeline_output


async def run_delay(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    try:
        seconds = parse_duration(config.get("duration"))
    except ValueError as exc:
        raise StepError(f"step.delay: {exc}", type="config") from None
    await asyncio.sleep(seconds)  # a plain sleep: cancellation (timeouts, cancel) interrupts it
    return {}


async def run_fail(ctx: StepContext, config: dict[str, Any]) -> None:
    message = config.get("message", "step.fail was reached")
    raise StepError(message if isinstance(message, str) else short(message, 1000),
                    type="fail", status=config.get("status"))


async def run_pipeline_output(ctx: StepContext, config: dict[str, Any]) -> StepResult:
    if "values" in config:
        output = config["values"]
    elif "source" in config:
        output = config["source"]
    else:
        output = current_data(ctx)
    return StepResult(output=output, stop=True)


# ---------------------------------------------------------------- metadata

_DATA_SOURCE = ("What to work on: a template such as '{{ .body }}' (or any literal value). "
                "Default: the current data (trigger fields with step outputs merged over them, "
                "without steps/trigger/meta/env).")

_OPERATIONS_DOC = (
    "Applied in order, each to the previous result, starting from `source`. Each item is "
    "{type, config}. extract {path, default?}: the value at a dotted path (digit segments "
    "index arrays; '' or '.' is the whole value); a missing path fails unless `default` is "
    "given. map {mappings: {old: new}}: renames keys of an object (or of every object in an "
    "array); unmapped keys are kept, missing ones ignored. filter {fields: [..]}: keeps only "
    "the listed keys of an object (or of every object in an array). convert {from, to, "
    "fields?}: converts the whole value, or only the listed fields of an object (or of every "
    "object in an array); pairs: json->object (parse JSON text), object->json (canonical "
    "JSON text, sorted keys), string->number|integer|boolean (true/false/yes/no/on/off/1/0), "
    "number|integer|boolean->string, number->integer (truncates), integer->number."
)

_OPERATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type"],
    "properties": {
        "type": {"enum": ["extract", "map", "filter", "convert"], "description": "The operation."},
        "config": {
            "type": "object",
            "description": "The operation's parameters (see `operations`).",
            "additionalProperties": False,
            "properties": {
                "path": {"type": "string",
                         "description": "extract: dotted path, e.g. data.items.0"},
                "default": {"description": "extract: value when the path is missing"},
                "mappings": {"type": "object", "additionalProperties": {"type": "string"},
                             "description": "map: old key -> new key"},
                "fields": {"type": "array", "items": {"type": "string"},
                           "description": "filter: keys to keep; convert: keys to convert"},
                "from": {"enum": sorted({a for a, _ in CONVERSIONS}),
                         "description": "convert: the value's current form"},
                "to": {"enum": sorted({b for _, b in CONVERSIONS}),
                       "description": "convert: the wanted form"},
            },
        },
    },
    "allOf": [
        {"if": {"properties": {"type": {"const": "extract"}}},
         "then": {"properties": {"config": {"required": ["path"]}}, "required": ["config"]}},
        {"if": {"properties": {"type": {"const": "map"}}},
         "then": {"properties": {"config": {"required": ["mappings"]}}, "required": ["config"]}},
        {"if": {"properties": {"type": {"const": "filter"}}},
         "then": {"properties": {"config": {"required": ["fields"]}}, "required": ["config"]}},
        {"if": {"properties": {"type": {"const": "convert"}}},
         "then": {"properties": {"config": {"required": ["from", "to"]}}, "required": ["config"]}},
    ],
}

STEP_TYPES: list[StepType] = [
    StepType(
        name="step.set",
        run=run_set,
        description="Set values in the context: each key of `values` becomes an output field.",
        category="data",
        schema=config_schema(
            {"values": {"type": "object", "description": "Keys to set; values may be templates "
                        "that keep their JSON type, e.g. '{{ .qty * 2 }}'."}},
            required=["values"]),
        output="The resolved `values` map.",
        example={"values": {"total": "{{ .qty * .price }}", "currency": "EUR"}},
    ),
    StepType(
        name="step.log",
        run=run_log,
        description="Write a line to the execution's log (a `log` event).",
        category="data",
        schema=config_schema({
            "message": {"description": "The text; a template, non-strings are logged as JSON."},
            "level": {"enum": ["debug", "info", "warn", "error"], "default": "info",
                      "description": "Log level."},
        }, required=["message"]),
        output="{} (the line is recorded as a log event).",
        example={"message": "order {{ .id }} priced at {{ .total }}", "level": "info"},
    ),
    StepType(
        name="step.validate",
        run=run_validate,
        description="Check data against required fields or a JSON Schema; a failure lists "
                    "every violation.",
        category="data",
        schema={
            **config_schema({
                "strategy": {"enum": ["required_fields", "json_schema"],
                             "default": "required_fields", "description": "How to validate."},
                "required_fields": {"type": "array", "items": {"type": "string"},
                                    "description": "required_fields: keys (dotted paths allowed) "
                                    "that must be present and not null."},
                "schema": {"type": "object", "description": "json_schema: a full JSON Schema "
                           "(draft 2020-12 unless it names another `$schema`)."},
                "source": {"description": _DATA_SOURCE},
            }),
            "allOf": [
                {"if": {"properties": {"strategy": {"const": "json_schema"}},
                        "required": ["strategy"]},
                 "then": {"required": ["schema"]},
                 "else": {"required": ["required_fields"]}},
            ],
        },
        output="{}; on failure the error (type validation, status 400) lists every violation "
               "with its path, and `details` holds them as [{path, message}].",
        example={"strategy": "json_schema",
                 "schema": {"type": "object", "required": ["sku", "qty"],
                            "properties": {"qty": {"type": "integer", "minimum": 1}}}},
    ),
    StepType(
        name="step.jq",
        run=run_jq,
        description="Run a jq program over the context (or over `input`).",
        category="data",
        schema=config_schema({
            "expression": {"type": "string", "description": "A bare jq program (no {{ }}), "
                           "e.g. '[.items[] | select(.qty > 0)]'."},
            "input": {"description": "What the program reads: a template such as '{{ .body }}'. "
                      "Default: the whole context (current keys plus steps, trigger, meta, env)."},
        }, required=["expression"]),
        output="{result}: the program's result (several results become a list, none null); "
               "if the result is an object its keys are also spread into the output.",
        program_keys=frozenset({"expression"}),
        raw_keys=frozenset({"expression"}),
        example={"expression": "[.items[] | .price * .qty] | add"},
    ),
    StepType(
        name="step.transform",
        run=run_transform,
        description="Reshape data with a list of extract / map / filter / convert operations.",
        category="data",
        schema=config_schema({
            "operations": {"type": "array", "items": _OPERATION_SCHEMA,
                           "description": _OPERATIONS_DOC},
            "source": {"description": _DATA_SOURCE},
        }, required=["operations"]),
        output="{data}: the result of the last operation.",
        example={"source": "{{ .body }}", "operations": [
            {"type": "extract", "config": {"path": "customer"}},
            {"type": "map", "config": {"mappings": {"mail": "email"}}},
            {"type": "filter", "config": {"fields": ["id", "email"]}},
        ]},
    ),
    StepType(
        name="step.json_parse",
        run=run_json_parse,
        description="Parse a JSON text into a value.",
        category="data",
        schema=config_schema({
            "source": {"description": "The JSON text, usually a template such as '{{ .body }}'. "
                       "A value that is already structured passes through unchanged."},
            "target": {"type": "string", "default": "value", "pattern": r"^[A-Za-z_][\w-]*$",
                       "description": "Output key for the parsed value."},
        }, required=["source"]),
        output="{<target>: parsed value}; invalid JSON fails (type parse) naming line and column.",
        example={"source": "{{ .body }}", "target": "payload"},
    ),
    StepType(
        name="step.hash",
        run=run_hash,
        description="Hash a value (hex digest): strings as UTF-8, anything else as canonical JSON.",
        category="data",
        schema=config_schema({
            "input": {"description": "What to hash; strings are hashed as UTF-8 bytes, other "
                      "values as canonical JSON (sorted keys, no spaces)."},
            "algorithm": {"enum": ["md5", "sha1", "sha256", "sha512"], "default": "sha256",
                          "description": "Hash algorithm."},
        }, required=["input"]),
        output="{hash}: the lowercase hex digest.",
        example={"input": "{{ .email | lower }}", "algorithm": "sha256"},
    ),
    StepType(
        name="step.regex_match",
        run=run_regex_match,
        description="Match a regular expression (Python syntax) against a string.",
        category="data",
        schema=config_schema({
            "input": {"description": "The text to search (numbers and booleans are matched as "
                      "their JSON text)."},
            "pattern": {"type": "string", "description": "Python regular expression; named "
                        "groups (?P<name>...) appear under `named`."},
            "ignore_case": {"type": "boolean", "default": False,
                            "description": "Case-insensitive matching."},
            "full_match": {"type": "boolean", "default": False,
                           "description": "Require the whole input to match (default: search)."},
        }, required=["input", "pattern"]),
        output="{matched, match (the matched text or null), groups (positional groups, null when "
               "a group did not take part), named (named groups)}.",
        example={"input": "{{ .reference }}", "pattern": r"^(?P<prefix>[A-Z]{3})-(?P<num>\d+)$"},
    ),
    StepType(
        name="step.delay",
        run=run_delay,
        description="Wait for a duration (cancellable).",
        category="flow",
        schema=config_schema({
            "duration": {"type": ["string", "number"], "description": "250ms, 5s, 2m, 1h, 1d or "
                         "seconds."},
        }, required=["duration"]),
        output="{}",
        example={"duration": "500ms"},
    ),
    StepType(
        name="step.fail",
        run=run_fail,
        description="Always fail with a message (explicit error paths and tests).",
        category="testing",
        schema=config_schema({
            "message": {"type": "string", "description": "The error message (a template)."},
            "status": {"type": "integer", "minimum": 100, "maximum": 599,
                       "description": "HTTP status to answer under an HTTP trigger."},
        }),
        output="Never completes: raises an error of type `fail`.",
        example={"message": "order {{ .id }} is not payable", "status": 422},
    ),
    StepType(
        name="step.pipeline_output",
        run=run_pipeline_output,
        description="End the pipeline successfully with this output as the execution's result.",
        category="flow",
        schema={
            **config_schema({
                "values": {"type": "object", "description": "A map of output fields (templates)."},
                "source": {"description": "One value to return, e.g. '{{ .steps.price }}'."},
            }),
            "not": {"required": ["values", "source"]},
        },
        output="The output (`values`, `source`, or the current data when neither is given); stops.",
        example={"values": {"id": "{{ .id }}", "total": "{{ .total }}"}},
    ),
]
