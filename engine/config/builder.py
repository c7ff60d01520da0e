"""One parsed file -> model objects (pipelines, steps, modules), with every problem positioned.

The builder never raises for bad input: it appends diagnostics and builds what it can, so
one load reports every error. References to modules and pipelines are returned to the
loader, which checks them once all imports are merged; step references are checked here
because a pipeline never spans files.

Decisions the spec leaves open:

- ``if``/``skip_if`` accept a ``{{ }}`` template or a bare jq program (``.qty > 1``);
  booleans and numbers are kept as their jq text (``false``).
- A step's ``compensate`` step may omit its name; it is then called ``compensate``. A
  ``single`` sub-step (e.g. ``fallback``) without a name is named after its key. Steps in
  lists always need a name.
- Step references (``StepType.step_refs``) may name a top-level step of the pipeline or a
  sibling in the same step list.
- Unknown module keys and unknown keys of an environment are warnings (Go engine files carry
  extra keys there); unknown pipeline, step, retry and trigger keys are errors.
"""

from __future__ import annotations

import json
import math
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.config import validate
from engine.config.envvars import expand_tree
from engine.config.model import ModuleDef, PipelineDef, Pos, RetryPolicy, StepDef, TriggerDef
from engine.config.yamlpos import Path, PosMap, diagnostic
from engine.durations import parse_duration
from engine.errors import Diagnostic
from engine.format.json_types import schema_type
from engine.format.step_refs import find_paths
from engine.steps.base import Registry, StepType

TOP_LEVEL_KEYS = ("name", "version", "description", "imports", "modules", "pipelines",
                  "connectors", "schemas", "environments")
PIPELINE_KEYS = ("description", "trigger", "steps", "on_error", "timeout", "compensation",
                 "outputs", "dlq", "record", "max_jumps")
STEP_KEYS = ("name", "type", "config", "if", "skip_if", "on_error", "timeout", "retry",
             "compensate", "idempotency_key", "idempotency_ttl", "error_status")
MODULE_KEYS = ("name", "type", "config", "description")
RETRY_KEYS = ("max_attempts", "initial_delay", "max_delay", "multiplier", "jitter")
TRIGGER_KEYS = ("type", "config")
TRIGGER_TYPES = ("manual", "http", "schedule", "event")
ON_ERROR = ("stop", "continue", "compensate")
RECORD = ("full", "redacted", "metadata")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")

STEP_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
PIPELINE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,?#-]+$")
SCHEDULE_KEYS = ("cron", "timezone", "missed", "catch_up_limit", "enabled")
_CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


@dataclass
class Ref:
    """A config value that must name a module or a pipeline; checked after imports merge."""

    kind: str  # "module" | "pipeline"
    name: str
    pos: Pos
    owner: str  # e.g. "step 'store' (step.db_exec) config.database"


@dataclass
class FileModel:
    """What one file contributes before imports are merged."""

    path: str
    name: str = ""
    version: str = ""
    description: str = ""
    modules: list[ModuleDef] = field(default_factory=list)
    pipelines: dict[str, PipelineDef] = field(default_factory=dict)
    connectors: list[dict[str, Any]] = field(default_factory=list)
    connector_pos: dict[str, Pos] = field(default_factory=dict)  # by name: where declared
    schemas: dict[str, Any] = field(default_factory=dict)
    refs: list[Ref] = field(default_factory=list)


@dataclass
class _StepRef:
    name: str
    pos: Pos
    owner: str
    siblings: set[str]  # names of the list the referencing step lives in


def scalar_text(value: Any, positions: PosMap, path: Path) -> str:
    """A scalar as text, using the source text for numbers (``version: 1.10`` stays "1.10")."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return positions.raw.get(path) or json.dumps(value)


class FileBuilder:
    def __init__(self, positions: PosMap, registry: Registry, variables: Mapping[str, str],
                 out: list[Diagnostic]) -> None:
        self.positions = positions
        self.registry = registry
        self.variables = variables
        self.out = out
        self.step_refs: list[_StepRef] = []
        self.programs = validate.ProgramChecks()  # jq checks, run together at the end

    # ------------------------------------------------------------ reporting

    def error(self, path: Path, message: str, *, key: bool = False,
              severity: str = "error") -> None:
        pos = self.positions.key(path) if key else self.positions.at(path)
        self.out.append(diagnostic(pos, message, severity))

    def unknown_keys(self, raw: Mapping[str, Any], path: Path, known: tuple[str, ...], what: str,
                     *, severity: str = "error") -> None:
        for key in raw:
            if key not in known:
                self.error((*path, key), f"unknown {what} key {key!r}"
                           f"{validate.suggest(key, known, known=True)}",
                           key=True, severity=severity)

    # ------------------------------------------------------------ file

    def build(self, doc: Any) -> FileModel:
        model = self._build(doc)
        self.programs.report(self.out)
        return model

    def _build(self, doc: Any) -> FileModel:
        model = FileModel(self.positions.file)
        if doc is None:
            self.error((), "the file is empty: a pipeline file is a mapping with a "
                           "'pipelines:' section")
            return model
        if not isinstance(doc, dict):
            self.error((), f"the file must be a mapping with a 'pipelines:' section, "
                           f"not {schema_type(doc)}")
            return model
        for key in doc:
            if key not in TOP_LEVEL_KEYS:
                self.error((key,), f"unknown top-level key {key!r} is ignored (known keys: "
                           f"{', '.join(TOP_LEVEL_KEYS)})", key=True, severity="warning")
        for key in ("name", "version", "description"):
            value = doc.get(key)
            if isinstance(value, dict | list):
                self.error((key,), f"'{key}' must be text")
            else:
                setattr(model, key, scalar_text(value, self.positions, (key,)))
        model.modules = self.modules(doc.get("modules"))
        model.connectors = self.connectors(doc.get("connectors"), model)
        model.schemas = self.schemas(doc.get("schemas"))
        pipelines = doc.get("pipelines")
        if isinstance(pipelines, dict):
            for name, raw in pipelines.items():
                pipeline = self.pipeline(name, raw, ("pipelines", name), model)
                if pipeline is not None:
                    model.pipelines[name] = pipeline
        elif pipelines is not None:
            self.error(("pipelines",), "'pipelines' must be a mapping of pipeline name to "
                                       "pipeline, e.g. 'pipelines: {create-order: {steps: [...]}}'")
        return model

    # ------------------------------------------------------------ modules and connectors

    def modules(self, raw: Any) -> list[ModuleDef]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.error(("modules",), "'modules' must be a list of {name, type, config}")
            return []
        found: list[ModuleDef] = []
        seen: dict[str, Pos] = {}
        for i, item in enumerate(raw):
            module = self.module(item, ("modules", i))
            if module is None:
                continue
            if module.name in seen:
                first = seen[module.name]
                self.error(("modules", i, "name"), f"duplicate module name {module.name!r} "
                           f"(first defined at line {first.line})")
                continue
            seen[module.name] = module.pos
            found.append(module)
        return found

    def module(self, raw: Any, path: Path) -> ModuleDef | None:
        if not isinstance(raw, dict):
            self.error(path, "a module must be a mapping with 'name', 'type' and 'config'")
            return None
        self.unknown_keys(raw, path, MODULE_KEYS, "module", severity="warning")
        name = self.required_text(raw, path, "name", "module", ": add 'name:' so steps can "
                                  "refer to it")
        type_name = self.required_text(raw, path, "type", "module", ": add 'type:' with a "
                                       "module type such as database.sql")
        config = raw.get("config")
        if config is None:
            config = {}
        elif not isinstance(config, dict):
            self.error((*path, "config"), "module 'config' must be a mapping")
            config = {}
        expanded: dict[Path, str] = {}
        broken: set[Path] = set()

        def env_error(at: Path, message: str) -> None:
            broken.add(at)
            self.error(at, message)

        config = expand_tree(config, self.variables, (*path, "config"), env_error, expanded)
        if type_name is not None:
            module_type = self.registry.modules.get(type_name)
            if module_type is None:
                self.error((*path, "type"), f"unknown module type {type_name!r}"
                           f"{validate.suggest(type_name, self.registry.modules, known=True)}")
            else:
                validate.check_module_config(module_type.schema, config, self.positions,
                                             (*path, "config"), expanded, type_name, self.out,
                                             skip=broken)
        if name is None or type_name is None:
            return None
        return ModuleDef(name=name, type=type_name, config=config, pos=self.positions.at(path))

    def env_error(self, path: Path, message: str) -> None:
        self.error(path, message)

    def connectors(self, raw: Any, model: FileModel) -> list[dict[str, Any]]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.error(("connectors",), "'connectors' must be a list of {name, type, config}")
            return []
        found: list[dict[str, Any]] = []
        seen: set[str] = set()
        for i, item in enumerate(raw):
            path: Path = ("connectors", i)
            if not isinstance(item, dict):
                self.error(path, "a connector must be a mapping with 'name', 'type' and 'config'")
                continue
            self.unknown_keys(item, path, MODULE_KEYS, "connector", severity="warning")
            name = self.required_text(item, path, "name", "connector", ": add 'name:'")
            type_name = self.required_text(item, path, "type", "connector", ": add 'type:' "
                                           "with a connector type such as source.webhook")
            expanded: dict[Path, str] = {}
            broken: set[Path] = set()

            def env_error(at: Path, message: str, broken: set[Path] = broken) -> None:
                broken.add(at)
                self.error(at, message)

            item = expand_tree(item, self.variables, path, env_error, expanded)
            config = item.get("config")
            if config is None:
                config = item["config"] = {}
            elif not isinstance(config, dict):
                self.error((*path, "config"), "connector 'config' must be a mapping")
                continue
            if type_name is not None:
                kind = self.registry.connector(type_name)
                if kind is None:
                    known = [*self.registry.sources, *self.registry.sinks]
                    hint = validate.suggest(type_name, known, known=True)
                    self.error((*path, "type"), f"unknown connector type {type_name!r}{hint}; "
                               "a plugin that provides it may not be installed")
                else:
                    validate.check_module_config(kind.schema, config, self.positions,
                                                 (*path, "config"), expanded, type_name,
                                                 self.out, skip=broken, what="connector type")
            if name is None or type_name is None:
                continue
            if name in seen:
                self.error((*path, "name"), f"duplicate connector name {name!r}")
                continue
            seen.add(name)
            model.connector_pos[name] = self.positions.at((*path, "name"))
            found.append(item)
        return found

    def schemas(self, raw: Any) -> dict[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.error(("schemas",), "'schemas' must be a mapping of schema name to JSON Schema")
            return {}
        for name, schema in raw.items():
            if not isinstance(schema, dict | bool):
                self.error(("schemas", name), f"schema {name!r} must be a JSON Schema (a "
                                              "mapping)")
                continue
            problem = validate.schema_problem(schema)
            if problem:
                self.error(("schemas", name), f"schema {name!r} is invalid: {problem}")
        return dict(raw)

    # ------------------------------------------------------------ pipelines

    def pipeline(self, name: str, raw: Any, path: Path, model: FileModel) -> PipelineDef | None:
        if not PIPELINE_NAME.match(name):
            self.error(path, f"invalid pipeline name {name!r}: use letters, digits, '_', '-' "
                             "and '.'", key=True)
        if not isinstance(raw, dict):
            self.error(path, f"pipeline {name!r} must be a mapping with a 'steps:' list")
            return None
        self.unknown_keys(raw, path, PIPELINE_KEYS, "pipeline")
        self.step_refs = []
        pipeline = PipelineDef(name=name, steps=[], pos=self.positions.at(path))
        steps = raw.get("steps")
        if "steps" not in raw:
            self.error(path, f"pipeline {name!r} has no steps: add a 'steps:' list", key=True)
        elif not isinstance(steps, list) or not steps:
            self.error((*path, "steps"), f"pipeline {name!r}: 'steps' must be a non-empty list "
                                         "of steps")
        else:
            pipeline.steps = self.step_list(steps, (*path, "steps"), model)
        description = raw.get("description")
        if description is not None:
            if isinstance(description, str):
                pipeline.description = description
            else:
                self.error((*path, "description"), "'description' must be text")
        pipeline.trigger = self.trigger(raw.get("trigger"), (*path, "trigger"))
        connector = pipeline.trigger.config.get("connector")
        if pipeline.trigger.type == "event" and isinstance(connector, str):
            model.refs.append(Ref("source", connector,
                                  self.positions.at((*path, "trigger", "config", "connector")),
                                  f"pipeline {name!r} event trigger connector"))
        on_error = self.choice(raw, path, "on_error", ON_ERROR)
        if on_error is not None:
            pipeline.on_error = on_error
        pipeline.timeout = self.duration(raw, path, "timeout")
        compensation = raw.get("compensation")
        if compensation is not None:
            if isinstance(compensation, list):
                pipeline.compensation = self.step_list(compensation, (*path, "compensation"),
                                                       model)
            else:
                self.error((*path, "compensation"), "'compensation' must be a list of steps")
        pipeline.outputs = raw.get("outputs")
        self.dlq(raw, path, pipeline)
        record = self.choice(raw, path, "record", RECORD)
        if record is not None:
            pipeline.record = record
        if "max_jumps" in raw:
            jumps = raw["max_jumps"]
            if isinstance(jumps, int) and not isinstance(jumps, bool) and jumps >= 1:
                pipeline.max_jumps = jumps
            else:
                self.error((*path, "max_jumps"), f"'max_jumps' must be a whole number of at "
                                                 f"least 1, got {validate.short(jumps)}")
        top = {step.name for step in pipeline.steps}
        for ref in self.step_refs:
            if ref.name not in top and ref.name not in ref.siblings:
                choices = top | ref.siblings
                hint = validate.suggest(ref.name, choices)
                self.out.append(diagnostic(ref.pos, f"{ref.owner}: no step named {ref.name!r} in "
                                           f"pipeline {name!r}{hint}"))
        return pipeline

    def dlq(self, raw: Mapping[str, Any], path: Path, pipeline: PipelineDef) -> None:
        value = raw.get("dlq")
        if value is None:
            return
        if isinstance(value, bool):
            pipeline.dlq = value
        elif isinstance(value, dict):
            self.unknown_keys(value, (*path, "dlq"), ("max_retries",), "dlq")
            pipeline.dlq = True
            retries = value.get("max_retries", pipeline.dlq_max_retries)
            if isinstance(retries, int) and not isinstance(retries, bool) and retries >= 0:
                pipeline.dlq_max_retries = retries
            else:
                self.error((*path, "dlq", "max_retries"), "'dlq.max_retries' must be a whole "
                           f"number of at least 0, got {validate.short(retries)}")
        else:
            self.error((*path, "dlq"), "'dlq' must be true, false or {max_retries: N}")

    def trigger(self, raw: Any, path: Path) -> TriggerDef:
        trigger = TriggerDef(pos=self.positions.at(path))
        if raw is None:
            return trigger
        if not isinstance(raw, dict):
            self.error(path, "'trigger' must be a mapping like {type: http, config: {method: "
                             "POST, path: /orders}}")
            return trigger
        for key in raw:
            if key not in TRIGGER_KEYS:
                hint = (" (trigger settings go under 'config:')"
                        if key in ("method", "path", "cron", "timezone", "connector")
                        else validate.suggest(key, TRIGGER_KEYS, known=True))
                self.error((*path, key), f"unknown trigger key {key!r}{hint}", key=True)
        kind = self.choice(raw, path, "type", TRIGGER_TYPES)
        if kind is None and "type" in raw:
            return trigger
        trigger.type = kind or "manual"
        config = raw.get("config")
        if config is None:
            config = {}
        elif not isinstance(config, dict):
            self.error((*path, "config"), "trigger 'config' must be a mapping")
            return trigger
        trigger.config = config
        cpath = (*path, "config")
        if trigger.type == "http":
            method = config.get("method")
            if method is None:
                self.error(cpath, "an http trigger needs 'method' (GET, POST, ...) in its config")
            elif not isinstance(method, str) or method.upper() not in HTTP_METHODS:
                self.error((*cpath, "method"), f"invalid HTTP method {validate.short(method)} "
                                               f"(use one of {', '.join(HTTP_METHODS)})")
            route = config.get("path")
            if route is None:
                self.error(cpath, "an http trigger needs 'path' (e.g. /orders/{id}) in its config")
            elif not isinstance(route, str) or not route.startswith("/"):
                self.error((*cpath, "path"), f"invalid HTTP path {validate.short(route)}: it must "
                                             "start with '/'")
        elif trigger.type == "schedule":
            cron = config.get("cron")
            if cron is None:
                self.error(cpath, "a schedule trigger needs 'cron' (e.g. '*/5 * * * *') in its "
                                  "config")
            else:
                problem = _cron_problem(cron)
                if problem:
                    self.error((*cpath, "cron"), problem)
            zone = config.get("timezone")
            if zone is not None and not _valid_zone(zone):
                self.error((*cpath, "timezone"), f"unknown time zone {validate.short(zone)} "
                                                 "(use an IANA name such as Europe/Paris or UTC)")
            self.schedule_options(config, cpath)
        elif trigger.type == "event":
            if "connector" not in config:
                self.error(cpath, "an event trigger needs 'connector': the name of a source "
                                  "connector under 'connectors:' whose events start this "
                                  "pipeline")
            for key in ("connector", "type"):
                if key in config and not isinstance(config[key], str):
                    self.error((*cpath, key), f"event trigger '{key}' must be text")
        return trigger

    def schedule_options(self, config: Mapping[str, Any], cpath: Path) -> None:
        """What a schedule does when enabled and after missed fires (engine/connectors/schedule.py)."""
        self.unknown_keys(config, cpath, SCHEDULE_KEYS, "schedule trigger")
        self.choice(config, cpath, "missed", ("skip", "catch_up"))
        limit = config.get("catch_up_limit")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                                  or limit < 1):
            self.error((*cpath, "catch_up_limit"), "'catch_up_limit' must be a whole number of "
                                                   f"at least 1, got {validate.short(limit)}")
        enabled = config.get("enabled")
        if enabled is not None and not isinstance(enabled, bool):
            self.error((*cpath, "enabled"), f"'enabled' must be true or false, got "
                                            f"{validate.short(enabled)}")

    # ------------------------------------------------------------ steps

    def step_list(self, raw: list[Any], path: Path, model: FileModel) -> list[StepDef]:
        steps: list[StepDef] = []
        names: dict[str, Pos] = {}
        siblings: set[str] = set()
        for i, item in enumerate(raw):
            step = self.step(item, (*path, i), model, siblings)
            if step is None:
                continue
            if step.name:
                if step.name in names:
                    first = names[step.name]
                    self.error((*path, i, "name"), f"duplicate step name {step.name!r} (first "
                               f"used at line {first.line}); step names must be unique")
                else:
                    names[step.name] = step.pos
            steps.append(step)
        siblings.update(names)
        return steps

    def step(self, raw: Any, path: Path, model: FileModel, siblings: set[str],
             default_name: str | None = None) -> StepDef | None:
        if not isinstance(raw, dict):
            self.error(path, "a step must be a mapping with 'name', 'type' and 'config', not "
                             f"{schema_type(raw)}")
            return None
        self.unknown_keys(raw, path, STEP_KEYS, "step")
        if "name" in raw or default_name is None:
            name = self.required_text(raw, path, "name", "step",
                                      ": add 'name:' (unique in its list; letters, digits, _ -)")
            if name is not None and not STEP_NAME.match(name):
                self.error((*path, "name"), f"invalid step name {name!r}: use letters, digits, "
                                            "'_' and '-'")
        else:
            name = default_name
        type_name = self.required_text(raw, path, "type", f"step {name!r}" if name else "step",
                                       ": add 'type:' with a step type such as step.set")
        config = raw.get("config")
        cpath = (*path, "config")
        config_ok = True
        if config is None:
            config = {}
        elif not isinstance(config, dict):
            label = f"step {name!r}" if name else "step"
            self.error(cpath, f"{label}: 'config' must be a mapping of the type's settings, "
                              f"not {schema_type(config)}")
            config, config_ok = {}, False
        step = StepDef(name=name or "", type=type_name or "", config=config,
                       pos=self.positions.at(path))
        step.if_ = self.condition(raw, path, "if")
        step.skip_if = self.condition(raw, path, "skip_if")
        step.on_error = self.choice(raw, path, "on_error", ON_ERROR)
        step.timeout = self.duration(raw, path, "timeout")
        step.retry = self.retry(raw.get("retry"), (*path, "retry"))
        if raw.get("compensate") is not None:
            step.compensate = self.step(raw["compensate"], (*path, "compensate"), model, set(),
                                        default_name="compensate")
        key = raw.get("idempotency_key")
        if key is not None:
            if isinstance(key, str):
                step.idempotency_key = key
                validate.check_strings(key, (*path, "idempotency_key"), self.positions, self.out,
                                       programs=self.programs)
            else:
                self.error((*path, "idempotency_key"), "'idempotency_key' must be text, usually "
                                                       "a template like '{{ .order_id }}'")
        step.idempotency_ttl = self.duration(raw, path, "idempotency_ttl")
        if "error_status" in raw:
            status = raw["error_status"]
            if isinstance(status, int) and not isinstance(status, bool) and 100 <= status <= 599:
                step.error_status = status
            else:
                self.error((*path, "error_status"), "'error_status' must be an HTTP status code "
                                                    f"(100-599), got {validate.short(status)}")
        step_type = None
        if type_name is not None:
            step_type = self.registry.steps.get(type_name)
            if step_type is None:
                self.error((*path, "type"), f"unknown step type {type_name!r}"
                           f"{validate.suggest(type_name, self.registry.steps)}")
        if step_type is None:
            validate.check_strings(config, cpath, self.positions, self.out,
                                   programs=self.programs)
        elif config_ok:
            self.check_config(step, step_type, cpath, model, siblings)
        return step

    def check_config(self, step: StepDef, step_type: StepType, cpath: Path, model: FileModel,
                     siblings: set[str]) -> None:
        config = step.config
        owner = f"step {step.name!r} ({step_type.name})" if step.name else step_type.name
        sub_keys = frozenset(step_type.substep_keys)
        errors = validate.schema_errors(step_type.schema, config)
        if isinstance(errors, str):
            self.error(cpath, f"step type {step_type.name}: {errors}")
        else:
            validate.report_schema_errors(errors, self.positions, cpath, owner, self.out,
                                          substeps=step_type.substep_keys)
        validate.check_strings(config, cpath, self.positions, self.out, skip=sub_keys,
                               programs=self.programs)
        for pattern in sorted(step_type.program_keys):
            for rel, value in find_paths(config, pattern):
                if isinstance(value, str) and "{{" not in value:
                    validate.check_condition(value, (*cpath, *rel), self.positions, self.out,
                                             f"jq program in {validate.path_text(rel)}",
                                             self.programs)
        for kind, patterns in (("step", step_type.step_refs), ("module", step_type.module_refs),
                               ("pipeline", step_type.pipeline_refs),
                               ("sink", step_type.sink_refs)):
            for pattern in sorted(patterns):
                for rel, value in find_paths(config, pattern):
                    if not isinstance(value, str) or "{{" in value:
                        continue
                    pos = self.positions.at((*cpath, *rel))
                    where = f"{owner} {validate.path_text(rel)}"
                    if kind == "step":
                        self.step_refs.append(_StepRef(value, pos, where, siblings))
                    else:
                        model.refs.append(Ref(kind, value, pos, where))
        for key, kind in step_type.substep_keys.items():
            value = config.get(key)
            if value is None:
                continue
            kpath = (*cpath, key)
            if kind == "list":
                if isinstance(value, list):
                    step.substeps[key] = self.step_list(value, kpath, model)
                else:
                    self.error(kpath, f"{owner}: {validate.path_text((key,))} must be a list of "
                                      "steps")
            elif kind == "single":
                if isinstance(value, dict):
                    child = self.step(value, kpath, model, set(), default_name=key)
                    if child is not None:
                        step.substeps[key] = [child]
                else:
                    self.error(kpath, f"{owner}: {validate.path_text((key,))} must be one step "
                                      "(a mapping with 'type' and 'config')")
            elif kind == "map":
                if not isinstance(value, dict):
                    self.error(kpath, f"{owner}: {validate.path_text((key,))} must map each "
                                      "value to a list of steps")
                    continue
                for match, branch in value.items():
                    bpath = (*kpath, match)
                    if isinstance(branch, list):
                        step.substeps[f"{key}/{match}"] = self.step_list(branch, bpath, model)
                    else:
                        self.error(bpath, f"{owner}: {validate.path_text((key, match))} must be "
                                          "a list of steps")

    # ------------------------------------------------------------ small values

    def required_text(self, raw: Mapping[str, Any], path: Path, key: str, what: str,
                      hint: str = "") -> str | None:
        value = raw.get(key)
        if value is None:
            self.error(path, f"{what} has no '{key}'{hint}")
            return None
        if not isinstance(value, str) or not value:
            self.error((*path, key), f"{what} '{key}' must be non-empty text, got "
                                     f"{validate.short(value)}")
            return None
        return value

    def choice(self, raw: Mapping[str, Any], path: Path, key: str,
               options: tuple[str, ...]) -> str | None:
        value = raw.get(key)
        if value is None:
            return None
        if isinstance(value, str) and value in options:
            return value
        hint = validate.suggest(value, options) if isinstance(value, str) else ""
        self.error((*path, key), f"'{key}' must be one of {', '.join(options)}, got "
                                 f"{validate.short(value)}{hint}")
        return None

    def duration(self, raw: Mapping[str, Any], path: Path, key: str, *,
                 positive: bool = True) -> float | None:
        value = raw.get(key)
        if value is None:
            return None
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.error((*path, key), f"'{key}': {exc}")
            return None
        except OverflowError:  # an integer too large for a float
            seconds = math.inf
        if not math.isfinite(seconds):
            self.error((*path, key), f"'{key}' must be a finite duration such as 30s or 1h, got "
                                     f"{validate.short(value)}")
            return None
        if positive and seconds <= 0:
            self.error((*path, key), f"'{key}' must be greater than zero, got "
                                     f"{validate.short(value)}")
            return None
        return seconds

    def condition(self, raw: Mapping[str, Any], path: Path, key: str) -> str | None:
        value = raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool | int | float):
            return json.dumps(value)
        if not isinstance(value, str) or not value.strip():
            self.error((*path, key), f"'{key}' must be a template like '{{{{ .qty > 1 }}}}' or a "
                                     f"jq program like '.qty > 1', got {validate.short(value)}")
            return None
        validate.check_condition(value, (*path, key), self.positions, self.out, f"'{key}'",
                                 self.programs)
        return value

    def retry(self, raw: Any, path: Path) -> RetryPolicy | None:
        if raw is None:
            return None
        if not isinstance(raw, dict):
            self.error(path, "'retry' must be a mapping like {max_attempts: 3, initial_delay: "
                             "100ms}")
            return None
        self.unknown_keys(raw, path, RETRY_KEYS, "retry")
        policy = RetryPolicy()
        ok = True
        attempts = raw.get("max_attempts", policy.max_attempts)
        if isinstance(attempts, int) and not isinstance(attempts, bool) and attempts >= 1:
            policy.max_attempts = attempts
        else:
            ok = False
            self.error((*path, "max_attempts"), "'max_attempts' must be a whole number of at "
                                                f"least 1, got {validate.short(attempts)}")
        for key in ("initial_delay", "max_delay"):
            if key in raw:
                seconds = self.duration(raw, path, key, positive=False)
                if seconds is None:
                    ok = False
                else:
                    setattr(policy, key, seconds)
        if ok and policy.max_delay < policy.initial_delay:
            ok = False
            where = "max_delay" if "max_delay" in raw else "initial_delay"
            self.error((*path, where), f"'max_delay' ({policy.max_delay:g}s) must not be shorter "
                                       f"than 'initial_delay' ({policy.initial_delay:g}s)")
        multiplier = raw.get("multiplier", policy.multiplier)
        if _number(multiplier) and multiplier >= 1:
            policy.multiplier = float(multiplier)
        else:
            ok = False
            self.error((*path, "multiplier"), "'multiplier' must be a number of at least 1, "
                                              f"got {validate.short(multiplier)}")
        jitter = raw.get("jitter", policy.jitter)
        if _number(jitter) and 0 <= jitter <= 1:
            policy.jitter = float(jitter)
        else:
            ok = False
            self.error((*path, "jitter"), "'jitter' must be a fraction between 0 and 1, got "
                                          f"{validate.short(jitter)}")
        return policy if ok else None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _cron_problem(cron: Any) -> str | None:
    if not isinstance(cron, str):
        return f"'cron' must be text like '*/5 * * * *', got {validate.short(cron)}"
    text = cron.strip()
    if text in _CRON_MACROS:
        return None
    fields = text.split()
    if len(fields) not in (5, 6) or not all(_CRON_FIELD.match(f) for f in fields):
        return (f"invalid cron expression {cron!r}: use five fields 'minute hour day month "
                f"weekday' (e.g. '*/5 * * * *') or one of {', '.join(_CRON_MACROS)}")
    from croniter import croniter  # here: only files with a schedule pay for the import

    if not croniter.is_valid(text):
        return (f"invalid cron expression {cron!r}: a field is out of range or malformed "
                "(minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-6, an optional "
                "6th field for seconds 0-59)")
    return None


def _valid_zone(zone: Any) -> bool:
    if not isinstance(zone, str) or not zone:
        return False
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True
