"""The one expression language: jq inside ``{{ }}`` (pipeline-format.md §3).

Config values are compiled once (``compile_value``) into small render trees so the hot
path does no parsing: constants come back as they are, plain dotted paths (hyphens
allowed) are dictionary lookups, and only real programs reach jq, each compiled once per
distinct text. jq's common subset then runs as Python closures (engine/jq) that read only
what they name; libjq gets the rest, fed only the context paths the program can read.
"""

from __future__ import annotations

import bisect
import json
import re
import uuid as _uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple

import jq

from engine.context import Environment, without_env
from engine.errors import ExpressionError
from engine.format import templates
from engine.format.json_types import value_type as type_name
from engine.jq import JqError, Unsupported, compile_tree, parse, result
from engine.jq.paths import prune, read_paths

# Helpers every program can call. Only the definitions a program mentions are compiled
# with it (jq compiles each definition every time). ``uuid`` and ``now_iso`` read hidden
# values the renderer injects only for programs that mention them.
_HELPERS = {
    **templates.HELPERS,
    "uuid": "def uuid: $__ctx.__uuid; ",
    "now_iso": "def now_iso: $__ctx.__now; ",
}
_HELPER_NAMES = re.compile(r"\b(" + "|".join(_HELPERS) + r")\b")
_NEEDS_VOLATILE = re.compile(r"\b(uuid|now_iso)\b")
# jq builtins that reach the host process are redefined: ``$ENV`` and ``env`` are the run's
# ``.env`` (on the server only the variables it allows, see envvars.allowed_env; in the
# studio the process environment), the rest say nothing about the host. jq has no way to
# name a function or variable other than by its text, so a program that does not mention
# one cannot reach it. jq accepts ``import``/``include`` (which read files on the host)
# only at the very start of a program, after blanks and comments: ``_DIRECTIVE`` refuses them.
_HOST = {
    "env": "def env: $ENV; ",
    "get_search_list": "def get_search_list: []; ",
    "input_filename": "def input_filename: null; ",
    "get_jq_origin": "def get_jq_origin: null; ",
    "get_prog_origin": "def get_prog_origin: null; ",
    "modulemeta": 'def modulemeta: error("jq modules are not available"); ',
    "debug": "def debug: .; def debug(m): .; ",  # would write to the server's stderr
    "stderr": "def stderr: .; ",
}
_HOST_NAMES = re.compile(r"\b(" + "|".join(_HOST) + r")\b")
_NEEDS_ENV = re.compile(r"\$ENV\b|\benv\b")
_ENV = "($__ctx.env // {}) as $ENV | "
_DIRECTIVE = re.compile(r"^(?:\s|#[^\n]*)*(import|include|module)\b")
_ROOT = ". as $__ctx | "
_PATH = templates.LOOKUP
_FALSY_STRINGS = frozenset({"false", "0", "no", "off"})


def truthy(value: Any) -> bool:
    """The single truthiness rule used by ``if``, ``skip_if``, conditions and breakpoints."""
    if value is None or value is False:
        return False
    if isinstance(value, str):
        return value != "" and value.strip().lower() not in _FALSY_STRINGS
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, list | dict | tuple):
        return len(value) > 0
    return True


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | tuple):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


@lru_cache(maxsize=4096)
def _compile_jq(program: str) -> Any:
    """Compile ``program`` with the prelude; the cache keys on the program text."""
    directive = _DIRECTIVE.match(program)
    if directive:
        raise ExpressionError(f"jq {directive.group(1)!r} is not available in {program.strip()!r}: "
                              "jq modules would read files of the host; define what you need "
                              "with 'def name: ...;' in the program")
    used = sorted(set(_HELPER_NAMES.findall(program)))
    prelude = "".join(_HELPERS[name] for name in used)
    prelude += "".join(_HOST[name] for name in sorted(set(_HOST_NAMES.findall(program))))
    env = _NEEDS_ENV.search(program)
    prefix = (_ROOT if env or _NEEDS_VOLATILE.search(program) else "") + (_ENV if env else "")
    prefix += prelude
    try:
        return jq.compile(prefix + program)
    except ValueError as exc:
        message = templates.jq_message(str(exc), len(prefix))
        raise ExpressionError(f"jq syntax error in {program.strip()!r}: {message}") from None


def _lookup(path: tuple[str, ...], vars: Mapping[str, Any]) -> Any:
    value: Any = vars
    for key in path:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise ExpressionError(
                f"cannot read .{'.'.join(path)}: .{key} is applied to a {type_name(value)}, "
                "not an object"
            )
        value = value.get(key)
    return value


def detached(vars: Mapping[str, Any]) -> Any:
    """The context as a value of its own: new dicts for the root and ``steps``, the two
    containers a step's output is written into (``vars`` by ``Scope.record``, ``steps`` by
    name). A result holding either would make the output contain itself once recorded
    (``{{ . }}`` into ``step.set``: a cycle every later walk recursed into forever). The
    values are shared: a copy per key, not per byte of payload. A run's ``env`` is left
    out (context.Environment). (``step.jq`` may pass any JSON value as ``vars``: not a
    mapping, nothing to detach.)"""
    if not isinstance(vars, Mapping):
        return vars
    out = without_env(vars)
    steps = out.get("steps")
    if isinstance(steps, dict):
        out["steps"] = dict(steps)
    return out


def _lookup_detached(path: tuple[str, ...], vars: Mapping[str, Any]) -> Any:
    value = _lookup(path, vars)
    if path == ("steps",) and isinstance(value, dict):
        return dict(value)  # the live dict outputs are recorded into (see detached)
    if type(value) is Environment:
        return dict(value.plain)  # `.env` named whole: the variables, as a value of its own
    return value


def evaluate(program: str, vars: Mapping[str, Any]) -> Any:
    """Run a bare jq program against ``vars``: one result → it, several → list, none → null.

    A result never is, nor holds, the live root or ``steps`` container (see ``detached``)."""
    match = _PATH.match(program)
    if match:
        return _lookup_detached(tuple(match.group(1).split(".")), vars)
    if templates.IDENTITY.match(program):
        return detached(vars)
    plan = _plan(program)  # syntax errors and refusals come from libjq
    compiled, fast, paths = plan.compiled, plan.fast, plan.paths
    vars = _root(plan, vars)
    if fast is not None:
        try:
            outputs = fast(vars)
            if len(outputs) == 1:
                return result(outputs[0])
            return [result(value) for value in outputs] or None
        except JqError as exc:
            raise ExpressionError(f"jq error in {program.strip()!r}: {exc}") from None
        except Unsupported:
            pass  # a value outside the exact subset (big integer, exponent...): libjq decides
    if paths is not None:
        vars = prune(vars, paths)
    if _NEEDS_VOLATILE.search(program):
        vars = {**vars, "__uuid": str(_uuid.uuid4()),
                "__now": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")}
    try:
        text = json.dumps(vars, default=_json_default, separators=(",", ":"))
        results = compiled.input_text(text).all()
    except ValueError as exc:
        raise ExpressionError(f"jq error in {program.strip()!r}: {templates.jq_message(str(exc))}") from None
    if len(results) == 1:
        return results[0]
    return results if results else None


def _reads_containers(paths: frozenset[tuple[str, ...]] | None) -> bool:
    return paths is None or () in paths or ("steps",) in paths


class _Plan(NamedTuple):
    """What ``evaluate`` needs of a program, decided once per program text."""

    compiled: Any  # libjq's
    fast: Any  # the compiled subset's, or None
    paths: frozenset[tuple[str, ...]] | None  # what libjq is fed (None: the whole context)
    whole: bool  # may read the root or ``steps`` whole
    names_env: bool  # mentions ``env`` or ``$ENV``
    keys: tuple[str, ...]  # the root keys it can reach when not ``whole``


@lru_cache(maxsize=4096)
def _plan(program: str) -> _Plan:
    compiled = _compile_jq(program)
    fast, paths = _compile_fast(program)
    whole = _reads_containers(paths)
    keys = () if whole or paths is None else tuple(sorted({path[0] for path in paths}))
    return _Plan(compiled, fast, paths, whole, bool(_NEEDS_ENV.search(program)), keys)


def _root(plan: _Plan, vars: Mapping[str, Any]) -> Any:
    """What a program reads as ``.``. A program that may read the root or ``steps`` whole
    may also return it (``[.]``, ``{s: .steps}``): it gets ``detached`` copies; the others
    only reach values below them (libjq's results are new objects parsed from text). A run's
    ``env`` (context.Environment) is there as a plain dict only when the program names it
    (``.env``, ``$ENV``, ``env``), else it is left out: whole-context values never hold it."""
    if not plan.names_env:  # (a program not naming it cannot read the key but whole)
        return detached(vars) if plan.whole else vars
    env = vars.get("env") if isinstance(vars, Mapping) else None
    if type(env) is not Environment:
        return detached(vars) if plan.whole else vars  # not a run's context: data as it is
    if plan.whole:
        root = {key: env.plain if value is env else value for key, value in vars.items()}
        if type(root.get("steps")) is dict:
            root["steps"] = dict(root["steps"])
        return root
    # Only the keys it can reach (engine/jq/paths.py): such a root is indistinguishable.
    return {key: env.plain if key == "env" else vars[key] for key in plan.keys if key in vars}


@lru_cache(maxsize=4096)
def _compile_fast(program: str) -> tuple[Any, frozenset[tuple[str, ...]] | None]:
    """jq's common subset as Python closures (engine/jq), decided once per program text;
    else None, and the context paths libjq needs (None: the whole context)."""
    paths = read_paths(program)
    if paths is not None and _NEEDS_ENV.search(program):
        paths |= {("env",)}  # the prelude reads it before the program runs
    try:
        return compile_tree(parse(program), bool(_NEEDS_ENV.search(program))), paths
    except (Unsupported, RecursionError):
        return None, paths


def check_program(program: str) -> str | None:
    """Return a syntax error message for a bare program, or None when it compiles."""
    if templates.is_lookup(program):
        return None
    if not program.strip():
        return "empty expression"
    try:
        _compile_jq(program)
    except ExpressionError as exc:
        return str(exc)
    return None


def check_programs(programs: list[str]) -> dict[str, str]:
    """Syntax errors of many bare programs (program -> message as ``check_program`` says it).

    Every jq compile pays ~1.5 ms for jq's builtins, which made validating big files slow;
    here the programs are compiled together, each as one parenthesized branch, and the
    broken programs of a failing batch are found from jq's error lines (or by halving). A program that
    could leave its ``def`` (unbalanced brackets, strings, comments) is checked alone.
    """
    errors: dict[str, str] = {}
    batch: list[str] = []
    for program in dict.fromkeys(programs):
        if templates.is_lookup(program):
            continue
        if _batchable(program):
            batch.append(program)
        else:
            error = check_program(program)
            if error:
                errors[program] = error
    for at in range(0, len(batch), _BATCH):
        _bisect(batch[at:at + _BATCH], errors)
    return errors


_BATCH = 100  # jq's compile time grows faster than the batch beyond a few hundred


def _bisect(programs: list[str], errors: dict[str, str]) -> None:
    """Find the broken programs of a batch: those named by the lines of jq's errors first,
    then halves of what is left, until every remaining batch compiles."""
    while len(programs) > 2:
        failed = _compile_together(programs)
        if failed is None:
            return
        if not failed:  # jq named no line we can map: split
            middle = len(programs) // 2
            _bisect(programs[:middle], errors)
            _bisect(programs[middle:], errors)
            return
        for index in failed:
            error = check_program(programs[index])
            if error:
                errors[programs[index]] = error
        programs = [program for i, program in enumerate(programs) if i not in failed]
    for program in programs:
        error = check_program(program)
        if error:
            errors[program] = error


_ERROR_LINE = re.compile(r"at <top-level>, line (\d+)")


def _compile_together(programs: list[str]) -> set[int] | None:
    """None when the batch compiles, else the indexes of the programs jq's errors point at.

    The batch is ``(p0), (p1), ...``: jq checks every branch (unused definitions would not
    be checked), and the line of each error names its program.
    """
    used = sorted({name for program in programs for name in _HELPER_NAMES.findall(program)})
    root = _ROOT if any(_NEEDS_VOLATILE.search(program) for program in programs) else ""
    starts = []  # the first line of each program's branch
    line = 1
    chunks = []
    for program in programs:
        starts.append(line)
        chunk = f"(\n{program}\n)"
        chunks.append(chunk)
        line += chunk.count("\n") + 1
    try:
        jq.compile(root + "".join(_HELPERS[name] for name in used) + ",\n".join(chunks))
    except ValueError as exc:
        lines = [int(found) for found in _ERROR_LINE.findall(str(exc))]
        return {bisect.bisect_right(starts, found) - 1 for found in lines if found >= 1}
    return None


_CLOSING = {")": "(", "]": "[", "}": "{"}


def _batchable(program: str) -> bool:
    """True when ``program`` cannot reach outside ``( ... )``: brackets, strings (with their
    ``\\( )`` interpolations) and comments all close inside it, and it does not use the
    hidden ``$__`` variables. Unsure means False (the program is then compiled alone)."""
    if not program.strip() or "$__" in program:
        return False
    stack: list[str] = []  # open brackets; '"' is a string, '\\' an interpolation
    i, n = 0, len(program)
    while i < n:
        ch = program[i]
        if stack and stack[-1] == '"':
            if ch == "\\":
                if program.startswith("(", i + 1):
                    stack.append("\\")
                i += 2
                continue
            if ch == '"':
                stack.pop()
        elif ch == '"':
            stack.append('"')
        elif ch == "#":
            end = program.find("\n", i)
            comment = program[i:] if end < 0 else program[i:end]
            if "\\" in comment:  # jq 1.7 lets a backslash continue a comment
                return False
            i = n if end < 0 else end
            continue
        elif ch in "([{":
            stack.append(ch)
        elif ch in ")]}":
            if not stack:
                return False
            top = stack.pop()
            if top == "\\" and ch == ")":
                pass  # back inside the string
            elif top != _CLOSING[ch]:
                return False
        i += 1
    return not stack


# ---------------------------------------------------------------- template splitting


def split_template(text: str) -> list[tuple[bool, str]]:
    """Split ``text`` into (is_program, piece) parts (block ends: ``engine.format.templates``).
    Raises ExpressionError for an unterminated block."""
    try:
        parts = templates.split(text)
    except templates.UnclosedBlock as exc:
        raise ExpressionError(f"unterminated '{{{{' at character {exc.start + 1} in {text!r}") from None
    return [(is_program, piece) for is_program, piece, _ in parts]


def check_template(text: str) -> str | None:
    """Return the first error in a config string's ``{{ }}`` blocks, or None."""
    if "{{" not in text:
        return None
    try:
        parts = split_template(text)
    except ExpressionError as exc:
        return str(exc)
    for is_program, piece in parts:
        if is_program:
            error = check_program(piece)
            if error:
                return error
    return None


# ---------------------------------------------------------------- compiled values


class Compiled:
    """A config value compiled for rendering. ``constant`` means render returns it unchanged."""

    __slots__ = ("constant",)

    def __init__(self, constant: bool):
        self.constant = constant

    def render(self, vars: Mapping[str, Any]) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError


class _Constant(Compiled):
    __slots__ = ("value",)

    def __init__(self, value: Any):
        super().__init__(True)
        self.value = value

    def render(self, vars: Mapping[str, Any]) -> Any:
        return self.value


class _Path(Compiled):
    __slots__ = ("path",)

    def __init__(self, path: tuple[str, ...]):
        super().__init__(False)
        self.path = path

    def render(self, vars: Mapping[str, Any]) -> Any:
        return _lookup_detached(self.path, vars)


class _Program(Compiled):
    __slots__ = ("program",)

    def __init__(self, program: str):
        super().__init__(False)
        self.program = program
        _compile_jq(program)  # fail at compile time, not at run time

    def render(self, vars: Mapping[str, Any]) -> Any:
        return evaluate(self.program, vars)


class _Interpolation(Compiled):
    __slots__ = ("parts",)

    def __init__(self, parts: list[str | Compiled]):
        super().__init__(False)
        self.parts = parts

    def render(self, vars: Mapping[str, Any]) -> str:
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = part.render(vars)
            if value is None:
                continue
            if isinstance(value, str):
                out.append(value)
            else:
                out.append(json.dumps(value, default=_json_default, separators=(",", ":")))
        return "".join(out)


class _Map(Compiled):
    __slots__ = ("items",)

    def __init__(self, items: list[tuple[str, Compiled]]):
        super().__init__(False)
        self.items = items

    def render(self, vars: Mapping[str, Any]) -> dict[str, Any]:
        return {key: value.render(vars) for key, value in self.items}


class _List(Compiled):
    __slots__ = ("items",)

    def __init__(self, items: list[Compiled]):
        super().__init__(False)
        self.items = items

    def render(self, vars: Mapping[str, Any]) -> list[Any]:
        return [item.render(vars) for item in self.items]


def _compile_program(program: str) -> Compiled:
    match = _PATH.match(program)
    if match:
        return _Path(tuple(match.group(1).split(".")))
    return _Program(program)


def compile_value(value: Any) -> Compiled:
    """Compile a config value (any JSON-like tree). Raises ExpressionError on bad syntax."""
    if isinstance(value, str):
        if "{{" not in value:
            return _Constant(value)
        parts = split_template(value)
        if len(parts) == 1 and parts[0][0]:
            return _compile_program(parts[0][1])
        return _Interpolation([_compile_program(p) if is_prog else p for is_prog, p in parts])
    if isinstance(value, Mapping):
        items = [(str(k), compile_value(v)) for k, v in value.items()]
        if all(c.constant for _, c in items):
            return _Constant(value)
        return _Map(items)
    if isinstance(value, list):
        compiled = [compile_value(v) for v in value]
        if all(c.constant for c in compiled):
            return _Constant(value)
        return _List(compiled)
    return _Constant(value)


def render(value: Any, vars: Mapping[str, Any]) -> Any:
    """Resolve templates in ``value`` once (compiles with the cache-less tree; prefer compile_value)."""
    return compile_value(value).render(vars)


def compile_condition(text: str) -> Compiled:
    """``if``/``skip_if``/conditions accept a ``{{ }}`` template or a bare jq program."""
    if "{{" in text:
        return compile_value(text)
    return _compile_program(text)
