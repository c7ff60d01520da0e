"""``${NAME}`` expansion in module and connector config (pipeline-format.md §1).

``${NAME}`` and ``${env:NAME}`` mean the same variable; ``${NAME:-default}`` falls back to
``default`` when it is unset, as in the shell. ``$${`` writes a literal ``${``.
Values are substituted as text: the result is always a string (a whole-value reference to
``PORT=8080`` gives ``"8080"``; validation then accepts such strings where a module's schema
asks for a number or boolean and converts them, see ``validate.check_module_config``).
``{{ }}`` is left alone: it is a run-time expression.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from fnmatch import fnmatchcase
from typing import Any

from engine.config.yamlpos import Path

_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_NAME = re.compile(r"^(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$", re.DOTALL)


def expand_string(text: str, variables: Mapping[str, str]) -> tuple[str, list[str]]:
    """Return ``text`` with references replaced, and the errors found (empty when fine)."""
    if "${" not in text:
        return text, []
    errors: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole == "$${":
            return "${"
        if match.group(1) is None:  # "${" with no closing brace
            errors.append(f"unterminated variable reference in {text!r}: add the closing '}}' "
                          "or write '$${' for a literal '${'")
            return whole
        found = _NAME.match(match.group(1).strip())  # NAME, env:NAME or NAME:-default
        if found is None:
            errors.append(f"invalid variable reference {whole!r}: use ${{NAME}} or ${{env:NAME}} "
                          "with letters, digits and '_'")
            return whole
        name, default = found.group(1), found.group(2)
        if name not in variables and default is not None:
            return default
        if name not in variables:
            # Not "is not set": on a server the variable may be set but not allowed, and
            # whether it is set is not the file's business.
            errors.append(f"environment variable {name!r} is not available (referenced as "
                          f"{whole!r}): set it (on a server: allow it with serve --allow-env "
                          f"{name}) or define it in the active environment's variables")
            return whole
        return str(variables[name])

    return _REFERENCE.sub(substitute, text), errors


def expand_tree(value: Any, variables: Mapping[str, str], path: Path,
                report: Callable[[Path, str], None], expanded: dict[Path, str]) -> Any:
    """Expand every string inside ``value``; ``expanded`` maps each path whose string held a
    reference to its source text (``${HOME}/data``), which diagnostics show instead of the
    value: a message names the variable, never what it holds."""
    if isinstance(value, str):
        result, errors = expand_string(value, variables)
        for error in errors:
            report(path, error)
        if any(match.group(1) is not None for match in _REFERENCE.finditer(value)):
            expanded[path] = value
        return result
    if isinstance(value, dict):
        return {key: expand_tree(item, variables, (*path, key), report, expanded)
                for key, item in value.items()}
    if isinstance(value, list):
        return [expand_tree(item, variables, (*path, i), report, expanded)
                for i, item in enumerate(value)]
    return value


class Substitutions(Mapping[str, str]):
    """The variables a load may substitute, noting which it did (name -> value): errors
    at run time hide those values (``engine.scrub``). Membership tests note nothing."""

    def __init__(self, variables: Mapping[str, str]):
        self._variables = variables
        self.used: dict[str, str] = {}

    def __getitem__(self, name: str) -> str:
        value = self._variables[name]
        self.used[name] = str(value)
        return value

    def __contains__(self, name: object) -> bool:
        return name in self._variables

    def __iter__(self) -> Iterator[str]:
        return iter(self._variables)

    def __len__(self) -> int:
        return len(self._variables)


def allowed_env(allowed: Iterable[str], environ: Mapping[str, str]) -> dict[str, str]:
    """The part of ``environ`` a server's pipelines may see: the variables named in
    ``allowed`` (exact names, or shell patterns such as ``APP_*``). Everything else, for
    ``${VAR}``, ``.env``, jq's ``$ENV`` and ``env`` alike, looks unset."""
    patterns = [name.strip() for name in allowed if name.strip()]
    return {name: value for name, value in environ.items()
            if any(fnmatchcase(name, pattern) for pattern in patterns)}


def check_allow_pattern(pattern: str) -> str:
    """``pattern`` if it is a variable name or a name pattern (letters, digits, ``_``,
    ``*``, ``?``); raises ValueError naming what is wrong otherwise."""
    if not re.fullmatch(r"[A-Za-z_*?][A-Za-z0-9_*?]*", pattern.strip()):
        raise ValueError(f"--allow-env {pattern!r}: give a variable name such as DATA_DIR, or a "
                         "pattern such as 'APP_*'")
    return pattern.strip()
