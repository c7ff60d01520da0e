"""Checks that need the step and module types: config schemas, templates, jq programs, references.

Every check appends positioned ``Diagnostic``s to a list instead of raising, so one pass
reports every problem in a file. The loader calls these while it builds the model.

Templates and schemas: a string holding ``{{ }}`` is only known at run time, so it is
accepted wherever the schema expects another type (or a pattern, enum, range ...). We run
the schema as written and drop the errors whose value is such a string, including
``anyOf``/``oneOf`` failures where one alternative fails only because of such strings.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError, best_match

from engine import expressions
from engine.config.model import Pos
from engine.config.yamlpos import Path, PathKey, PosMap, diagnostic
from engine.errors import Diagnostic, ExpressionError
from engine.format.json_types import schema_type
from engine.format.templates import is_template

Schema = Mapping[str, Any] | bool
_validators: dict[int, tuple[Schema, Draft202012Validator | str]] = {}


def suggest(word: str, choices: Iterable[str], *, known: bool = False) -> str:
    """`` (did you mean 'x'?)`` for close matches; with ``known``, else the list of choices."""
    options = sorted(set(choices))
    scored = sorted(((difflib.SequenceMatcher(None, word, option).ratio(), option)
                     for option in options), reverse=True)
    # Names share prefixes ("step."), which lifts every score; keep only the near-best.
    best = scored[0][0] if scored else 0.0
    close = [option for score, option in scored[:3] if score >= 0.6 and score >= best - 0.08]
    if close:
        return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
    if known and options:
        return " (known: " + ", ".join(options) + ")"
    return ""


def path_text(path: Iterable[PathKey], root: str = "config") -> str:
    out = root
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def short(value: Any, limit: int = 80) -> str:
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------- JSON Schema


def schema_problem(schema: Schema) -> str | None:
    """Why ``schema`` is not a valid Draft 2020-12 schema, or None."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return exc.message
    return None


def _validator(schema: Schema) -> Draft202012Validator | str:
    """A validator for a type's schema (cached: type schemas live as long as the process),
    or the message saying why the schema is broken."""
    cached = _validators.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    problem = schema_problem(schema)
    result = (f"its JSON Schema is invalid: {problem}" if problem
              else Draft202012Validator(schema))
    _validators[id(schema)] = (schema, result)
    return result


def _template_only(error: ValidationError) -> bool:
    """True when ``error`` exists only because some value is a run-time template."""
    if is_template(error.instance):
        return True
    if error.validator in ("anyOf", "oneOf") and error.context:
        by_branch: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            branch = sub.relative_schema_path[0] if sub.relative_schema_path else None
            by_branch.setdefault(branch, []).append(sub)
        return any(all(_template_only(sub) for sub in subs) for subs in by_branch.values())
    return False


def schema_errors(schema: Schema, instance: Any) -> list[ValidationError] | str:
    """The errors that remain once template values are given the benefit of the doubt."""
    validator = _validator(schema)
    if isinstance(validator, str):
        return validator
    return [e for e in validator.iter_errors(instance) if not _template_only(e)]


def report_schema_errors(errors: Iterable[ValidationError], positions: PosMap, base: Path,
                         owner: str, out: list[Diagnostic], *,
                         substeps: Mapping[str, str] | None = None,
                         substituted: Mapping[Path, str] | None = None) -> None:
    """Turn jsonschema errors on the value at ``base`` into positioned diagnostics.

    ``substituted`` maps the paths (from the document root) of values that came from
    ``${VAR}`` to their source text: an error on such a value, or on a value holding one,
    describes it by that text and its type, never by the value (a secret, a home path).

    ``substeps`` (key -> "list" | "single" | "map") marks config keys holding sub-steps:
    errors inside the steps are dropped (each sub-step is validated as a step of its own),
    and so are shape errors of the container, which the loader reports in its own words.
    Other errors on the container (e.g. ``minItems``) stay.
    """
    for error in errors:
        rel = tuple(error.absolute_path)
        if substeps and rel and rel[0] in substeps:
            depth = 2 if substeps[rel[0]] == "map" else 1
            if len(rel) > depth or error.validator == "type":
                continue
        where = path_text(rel)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = list(error.schema.get("properties", {}))
            patterns = list(error.schema.get("patternProperties", {}))
            for key in error.instance:
                if key in known or any(_matches(p, key) for p in patterns):
                    continue
                out.append(diagnostic(
                    positions.key((*base, *rel, key)),
                    f"{owner}: unknown key {key!r} in {where}"
                    f"{suggest(key, known, known=True)}"))
            continue
        full = (*base, *rel)
        hidden = substituted and any(p[:len(full)] == full for p in substituted)
        message = (_hidden_message(error, substituted.get(full)) if substituted and hidden
                   else _message(error))
        out.append(diagnostic(positions.at(full), f"{owner}: {where}: {message}"))


def _matches(pattern: str, key: str) -> bool:
    try:
        return re.search(pattern, key) is not None
    except re.error:  # a type's broken pattern must not break validation
        return False


def _hidden_message(error: ValidationError, source: str | None) -> str:
    """``_message`` for a value that holds ``${VAR}`` results: the variable, not its value."""
    kind = error.validator
    if kind == "required":  # names the missing key only
        return _message(error)
    typed = schema_type(error.instance)
    article = "an" if typed[0] in "aeiou" else "a"
    described = (f"{source} ({article} {typed})" if source is not None
                 else f"{article} {typed} holding ${{VAR}} values")
    if kind == "type":
        expected = error.validator_value
        wanted = " or ".join(expected) if isinstance(expected, list) else str(expected)
        return f"expected {wanted}, got {described}"
    if kind == "enum":
        return f"{described} is not one of: {', '.join(short(v, 40) for v in error.validator_value)}"
    return f"{described} does not satisfy {kind!r} {short(error.validator_value, 60)}"


def _message(error: ValidationError) -> str:
    kind = error.validator
    if kind == "type":
        expected = error.validator_value
        wanted = " or ".join(expected) if isinstance(expected, list) else str(expected)
        return f"expected {wanted}, got {schema_type(error.instance)} {short(error.instance)}"
    if kind == "enum":
        options = ", ".join(short(v, 40) for v in error.validator_value)
        return f"{short(error.instance)} is not one of: {options}"
    if kind == "required":
        return error.message.replace("is a required property", "is required")
    if kind in ("anyOf", "oneOf") and error.context:
        by_branch: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            if not _template_only(sub):
                branch = sub.relative_schema_path[0] if sub.relative_schema_path else None
                by_branch.setdefault(branch, []).append(sub)
        reasons = []
        for subs in list(by_branch.values())[:4]:
            best = best_match(subs)
            if best is not None:
                rel = tuple(best.absolute_path)[len(error.absolute_path):]
                prefix = f"{path_text(rel, '').lstrip('.')}: " if rel else ""
                reasons.append(prefix + _message(best))
        if reasons:
            return "does not match any allowed form: " + "; or ".join(reasons)
    message = error.message
    return message if len(message) <= 200 else message[:197] + "..."


# ---------------------------------------------------------------- templates and programs


class ProgramChecks:
    """jq syntax checks gathered while a file is built, run together by ``report``.

    Checking each program alone costs ~1.5 ms of jq start-up; a 20,000-step file spent most
    of its validation there. ``expressions.check_programs`` compiles them in batches.
    """

    def __init__(self) -> None:
        # (programs of one string, where, message prefix); a template has one per block
        self.pending: list[tuple[list[str], Pos, str]] = []

    def add(self, programs: list[str], pos: Pos, prefix: str) -> None:
        if programs:
            self.pending.append((programs, pos, prefix))

    def report(self, out: list[Diagnostic]) -> None:
        errors = expressions.check_programs([p for programs, _, _ in self.pending
                                             for p in programs])
        for programs, pos, prefix in self.pending:
            problem = next((errors[p] for p in programs if p in errors), None)
            if problem is not None:  # a template reports its first broken block, as before
                out.append(diagnostic(pos, prefix + problem))
        self.pending.clear()


def _template(text: str, pos_path: Path, positions: PosMap, out: list[Diagnostic],
              programs: ProgramChecks | None, prefix: str) -> None:
    if programs is None:
        problem = expressions.check_template(text)
        if problem:
            out.append(diagnostic(positions.at(pos_path), prefix + problem))
        return
    try:
        parts = expressions.split_template(text)
    except ExpressionError as exc:
        out.append(diagnostic(positions.at(pos_path), prefix + str(exc)))
        return
    programs.add([piece for is_program, piece in parts if is_program], positions.at(pos_path),
                 prefix)


def check_strings(value: Any, path: Path, positions: PosMap, out: list[Diagnostic], *,
                  skip: Collection[str] = (), programs: ProgramChecks | None = None) -> None:
    """Check every ``{{ }}`` block in the strings of ``value``, except under keys in ``skip``.

    With ``programs`` the jq syntax checks are left to ``programs.report``."""
    if isinstance(value, str):
        if "{{" in value:
            _template(value, path, positions, out, programs, "invalid template: ")
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in skip:
                check_strings(item, (*path, key), positions, out, programs=programs)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_strings(item, (*path, i), positions, out, programs=programs)


def check_condition(text: str, pos_path: Path, positions: PosMap, out: list[Diagnostic],
                    what: str, programs: ProgramChecks | None = None) -> None:
    """``if``/``skip_if`` and program keys: a ``{{ }}`` template or a bare jq program."""
    prefix = f"invalid {what}: "
    if "{{" in text:
        _template(text, pos_path, positions, out, programs, prefix)
    elif programs is not None:
        if not text.strip():
            out.append(diagnostic(positions.at(pos_path), prefix + "empty expression"))
        else:
            programs.add([text], positions.at(pos_path), prefix)
    else:
        problem = expressions.check_program(text)
        if problem:
            out.append(diagnostic(positions.at(pos_path), prefix + problem))


# ---------------------------------------------------------------- modules


def check_module_config(schema: Mapping[str, Any], config: dict[str, Any], positions: PosMap,
                        base: Path, expanded: Mapping[Path, str], owner: str,
                        out: list[Diagnostic], *, skip: Collection[Path] = (),
                        what: str = "module type") -> None:
    """Validate a module's config, converting ``${VAR}`` results where a number/bool is asked.

    Environment variables are text, so ``port: ${PORT}`` gives ``"8080"``; when the schema
    wants an integer there we store 8080 instead of failing. Values at ``skip`` (a failed
    expansion, already reported) are not judged again. ``expanded`` maps the paths of
    ``${VAR}`` results to their source text, which errors show instead of the values.
    """
    errors = schema_errors(schema, config)
    if isinstance(errors, str):
        out.append(diagnostic(positions.at(base), f"{what} {owner}: {errors}"))
        return
    converted = False
    for error in errors:
        rel = tuple(error.absolute_path)
        if error.validator != "type" or (*base, *rel) not in expanded or not rel:
            continue
        value = _coerce(error.instance, error.validator_value)
        if value is not None:
            _set(config, rel, value)
            converted = True
    if converted:
        again = schema_errors(schema, config)
        errors = again if isinstance(again, list) else []
    errors = [e for e in errors if (*base, *e.absolute_path) not in skip]
    report_schema_errors(errors, positions, base, f"{what} {owner}", out,
                         substituted=expanded)


def _coerce(text: Any, wanted: Any) -> Any:
    if not isinstance(text, str):
        return None
    kinds = wanted if isinstance(wanted, list) else [wanted]
    stripped = text.strip()
    if "integer" in kinds and re.fullmatch(r"[-+]?\d+", stripped):
        return int(stripped)
    if "number" in kinds:
        try:
            return float(stripped)
        except ValueError:
            pass
    if "boolean" in kinds and stripped.lower() in ("true", "false"):
        return stripped.lower() == "true"
    return None


def _set(container: Any, path: tuple[PathKey, ...], value: Any) -> None:
    for part in path[:-1]:
        container = container[part]
    container[path[-1]] = value

