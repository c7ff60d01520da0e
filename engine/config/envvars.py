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
from collections.abc import Callable, Mapping
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
            errors.append(f"environment variable {name!r} is not set (referenced as {whole!r}); "
                          "set it or define it in the active environment's variables")
            return whole
        return str(variables[name])

    return _REFERENCE.sub(substitute, text), errors


def expand_tree(value: Any, variables: Mapping[str, str], path: Path,
                report: Callable[[Path, str], None], expanded: set[Path]) -> Any:
    """Expand every string inside ``value``; ``expanded`` collects paths that changed."""
    if isinstance(value, str):
        result, errors = expand_string(value, variables)
        for error in errors:
            report(path, error)
        if result != value:
            expanded.add(path)
        return result
    if isinstance(value, dict):
        return {key: expand_tree(item, variables, (*path, key), report, expanded)
                for key, item in value.items()}
    if isinstance(value, list):
        return [expand_tree(item, variables, (*path, i), report, expanded)
                for i, item in enumerate(value)]
    return value
