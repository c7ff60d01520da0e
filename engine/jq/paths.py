"""Which parts of its input a jq program can read, so that libjq is fed only those.

``read_paths(program)`` walks the syntax tree with, for each expression, the set of root
paths its input may be (``()`` is the root itself; an empty set: nothing of the root, or
only parts already kept whole). A path step ``.k`` extends a path; anything that looks at a
value as a whole (arithmetic, a function, ``.[]``, output) keeps that value whole. Reading
the root itself as a whole, a function definition, or syntax the parser does not know
means "no answer" (None): the caller then passes the whole context.

A pruned context keeps every value on a kept path whole and, above it, objects holding
only the kept keys. A program that only steps through those objects by name cannot tell
them from the originals: missing keys were never read, and a non-object on the way is kept
as it is, so the same errors happen.
"""

from __future__ import annotations

from typing import Any

from engine.jq.lexer import Unsupported
from engine.jq.parser import Node, parse

Paths = frozenset[tuple[str, ...]]
NOTHING: Paths = frozenset()
ROOT: Paths = frozenset({()})
# Builtins whose arguments see the call's input but which never read that input themselves.
_ARGS_ONLY = frozenset({"error/1", "range/1", "range/2", "range/3", "first/1", "last/1",
                        "limit/2", "isempty/1", "add/1", "until/2", "repeat/1"})
# Builtins that read neither their input nor the context (uuid/now_iso: the engine's
# helpers read values the renderer adds next to the kept paths).
_CONSTANTS = frozenset({"empty/0", "now/0", "uuid/0", "now_iso/0", "nan/0", "infinite/0",
                        "input_line_number/0", "get_search_list/0", "input_filename/0",
                        "get_jq_origin/0", "get_prog_origin/0", "builtins/0", "halt/0",
                        "input/0", "inputs/0"})


class _GiveUp(Exception):
    pass


def read_paths(program: str) -> Paths | None:
    """The root paths ``program`` may read (each value under them whole), or None."""
    try:
        tree = parse(program)
    except (Unsupported, RecursionError):
        return None
    walker = _Walker()
    try:
        walker.whole(walker.visit(tree, ROOT, {}))
    except (_GiveUp, RecursionError):
        return None
    return frozenset(walker.reads)


def prune(value: Any, paths: Paths) -> Any:
    """``value`` reduced to the given paths (see the module doc)."""
    if () in paths or type(value) is not dict:
        return value
    groups: dict[str, set[tuple[str, ...]]] = {}
    for path in paths:
        groups.setdefault(path[0], set()).add(path[1:])
    return {key: prune(value[key], frozenset(rest)) for key, rest in groups.items() if key in value}


class _Walker:
    def __init__(self) -> None:
        self.reads: set[tuple[str, ...]] = set()

    def whole(self, paths: Paths) -> None:
        if () in paths:
            raise _GiveUp
        self.reads.update(paths)

    def visit(self, node: Node | None, inp: Paths, env: dict[str, Paths]) -> Paths:
        if node is None:
            return inp
        kind, kids = node.kind, node.kids
        if kind in ("identity", "paren", "label"):
            return self.visit(kids[0], inp, env) if kids else inp
        if kind in ("literal", "text", "loc"):
            return NOTHING
        if kind == "index":
            target = self.visit(kids[0], inp, env)
            key = kids[1]
            if key is not None and key.kind == "literal" and type(key.value) is str:
                return frozenset((*path, key.value) for path in target)
            self.whole(self.visit(key, inp, env))
            self.whole(target)
            return NOTHING
        if kind == "var":
            if node.value == "ENV":
                self.reads.add(("env",))
                return NOTHING
            if node.value not in env:
                raise _GiveUp
            return env[node.value]
        if kind == "format" or kind == "recurse":
            self.whole(inp)
            return NOTHING
        if kind == "call":
            return self.call(node, inp, env)
        if kind in ("pipe",):
            return self.visit(kids[1], self.visit(kids[0], inp, env), env)
        if kind in ("comma", "alt"):  # ``//`` passes its values through untouched
            return self.visit(kids[0], inp, env) | self.visit(kids[1], inp, env)
        if kind == "if":
            out: Paths = NOTHING
            for k in range(0, len(kids) - 1, 2):
                self.whole(self.visit(kids[k], inp, env))
                out |= self.visit(kids[k + 1], inp, env)
            return out | self.visit(kids[-1], inp, env)
        if kind == "try":
            out = self.visit(kids[0], inp, env)
            if kids[1] is not None:  # the handler's input is an error message
                out |= self.visit(kids[1], NOTHING, env)
            return out
        if kind == "bind":
            source = self.visit(kids[0], inp, env)
            return self.visit(kids[1], inp, {**env, node.value: source})
        if kind in ("reduce", "foreach"):
            source = self.visit(kids[0], inp, env)
            inner = {**env, node.value: source}
            self.whole(self.visit(kids[1], inp, env))
            self.whole(self.visit(kids[2], NOTHING, inner))
            if kind == "foreach" and kids[3] is not None:
                self.whole(self.visit(kids[3], NOTHING, inner))
            return NOTHING
        # everything else reads its operands whole: arithmetic, comparisons, and/or,
        # negation, constructions, iteration, slices, string interpolation, assignments
        if kind in ("iterate", "slice", "assign"):
            self.whole(inp if kind == "assign" else self.visit(kids[0], inp, env))
            rest = kids if kind == "assign" else kids[1:]
            for kid in rest:
                if kid is not None:
                    self.whole(self.visit(kid, inp if kind == "slice" else NOTHING, env))
            return NOTHING
        if kind == "object":
            for key, value in node.value:
                self.whole(self.visit(key, inp, env))
                self.whole(self.visit(value, inp, env))
            return NOTHING
        for kid in kids:
            self.whole(self.visit(kid, inp, env))
        return NOTHING

    def call(self, node: Node, inp: Paths, env: dict[str, Paths]) -> Paths:
        name = node.value
        if name in _CONSTANTS:
            return NOTHING
        if name == "env/0":
            self.reads.add(("env",))
            return NOTHING
        if name == "select/1":
            self.whole(self.visit(node.kids[0], inp, env))
            return inp
        if name in _ARGS_ONLY:
            for kid in node.kids:
                self.whole(self.visit(kid, inp, env))
            return NOTHING
        # Any other builtin reads its input whole; its arguments then see that input, parts
        # of it or values it makes, all of which are kept whole already.
        self.whole(inp)
        for kid in node.kids:
            self.whole(self.visit(kid, NOTHING, env))
        return NOTHING
