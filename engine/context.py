"""The execution context of pipeline-format.md §2.1 and the flat view expressions read.

``vars`` is kept up to date incrementally (one dict update per step output) instead of
being rebuilt for every expression: it holds ``current``'s keys at the top level plus the
reserved keys ``steps``, ``trigger``, ``meta`` and ``env``.

``env`` holds an ``Environment``: expressions read it only by naming it (``.env.NAME``,
``$ENV``, ``env``); a whole-context value (``{{ . }}``, ``keys``, ``..``, a step returning
``ctx.vars``, the snapshot) leaves it out, so the process environment is never recorded
unless a pipeline asks for a variable (pipeline-format.md §2.1).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

RESERVED = frozenset({"steps", "trigger", "meta", "env"})


class Environment(Mapping[str, Any]):
    """The run's environment variables under ``vars["env"]``, marking ``vars`` as a run's
    context: ``expressions`` hands ``plain`` only to programs that name ``env``, and leaves
    the key out of every whole-context value. A wrapper, not a copy (one per run); its text
    form names no value, so a step that serialises ``ctx.vars`` itself shows none either."""

    __slots__ = ("plain",)

    def __init__(self, plain: Mapping[str, Any]):
        self.plain: dict[str, Any] = plain if type(plain) is dict else dict(plain)

    def __getitem__(self, key: str) -> Any:
        return self.plain[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.plain)

    def __len__(self) -> int:
        return len(self.plain)

    def __repr__(self) -> str:
        return f"<environment: {len(self.plain)} variables>"

    __str__ = __repr__


def without_env(vars: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a context's root without its ``Environment`` (any other ``env`` stays:
    ``step.jq``'s ``input`` and a called workflow's output are data, not a context)."""
    out = dict(vars)
    if type(out.get("env")) is Environment:
        del out["env"]
    return out


class Scope:
    """One context. Loop iterations and parallel branches get a child scope."""

    __slots__ = ("current", "steps", "vars")

    def __init__(self, current: dict[str, Any], steps: dict[str, Any], vars: dict[str, Any]):
        self.current = current
        self.steps = steps
        self.vars = vars

    @classmethod
    def root(cls, trigger: Any, meta: dict[str, Any], env: Mapping[str, Any]) -> Scope:
        current: dict[str, Any] = dict(trigger) if isinstance(trigger, Mapping) else {}
        steps: dict[str, Any] = {}
        vars = {k: v for k, v in current.items() if k not in RESERVED}
        environment = env if type(env) is Environment else Environment(env)
        vars.update(steps=steps, trigger=trigger, meta=meta, env=environment)
        return cls(current, steps, vars)

    def child(self, extra: Mapping[str, Any] | None = None) -> Scope:
        """A copy whose step outputs do not leak back into this scope."""
        steps = dict(self.steps)
        vars = dict(self.vars)
        vars["steps"] = steps
        if extra:
            vars.update(extra)
        return Scope(dict(self.current), steps, vars)

    def record(self, name: str, output: Any) -> None:
        """A completed step's output: by name under ``steps`` and shallow-merged into current.

        An output that is (or directly holds) one of the containers it is written into is
        recorded as a copy, so the context never contains itself (expressions already hand
        out such copies, ``expressions.detached``; this covers steps that return their
        ``ctx.vars``). A check per key of the output, not per byte of it."""
        if type(output) is dict or isinstance(output, Mapping):
            own = {id(self.vars), id(self.steps), id(self.current)}
            if id(output) in own:
                output = self._copy(output)
            if not own.isdisjoint(map(id, output.values())):
                output = {k: self._copy(v) if id(v) in own else v for k, v in output.items()}
        self.steps[name] = output
        if type(output) is dict or isinstance(output, Mapping):
            self.current.update(output)
            if RESERVED.isdisjoint(output):
                self.vars.update(output)
            else:
                self.vars.update((k, v) for k, v in output.items() if k not in RESERVED)

    def _copy(self, container: Any) -> dict[str, Any]:
        """One of this scope's own containers as a value (``vars`` holds ``steps``, and
        ``env``, which no whole-context value shows)."""
        if container is self.vars:
            out = without_env(container)
            out["steps"] = dict(self.steps)
            return out
        return dict(container)

    def snapshot(self) -> dict[str, Any]:
        """The context as the debugger and the recorder show it."""
        return {"current": self.current, "steps": self.steps, "trigger": self.vars["trigger"],
                "meta": self.vars["meta"]}
