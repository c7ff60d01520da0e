"""Syntax trees to Python closures that evaluate jq's common subset exactly as libjq does.

Each node becomes ``fn(input, env)``. A node that always yields exactly one value (paths,
literals, arithmetic of such, ``if`` of such, constructions, ...) compiles to a *single*
closure returning that value; the others return a list of every output, in jq's order.
Nothing is lazy: jq's ``first``/``limit``/``label`` are not in the subset, and an error
ends the evaluation as it ends libjq's ``.all()``.

``env`` maps variable names to values; the key "" holds the root input (what ``$ENV``
reads its ``env`` from, as the engine's prelude defines it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import suppress
from functools import cmp_to_key
from typing import Any

from engine.jq import values as v
from engine.jq.lexer import Unsupported
from engine.jq.parser import Node

Fn = Callable[[Any, dict[str, Any]], Any]
Compiled = tuple[Fn, bool]  # (closure, single)
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": v.add, "-": v.subtract, "*": v.multiply, "/": v.divide, "%": v.modulo,
    "==": v.equal, "!=": lambda a, b: not v.equal(a, b),
    "<": lambda a, b: v.order(a, b) < 0, "<=": lambda a, b: v.order(a, b) <= 0,
    ">": lambda a, b: v.order(a, b) > 0, ">=": lambda a, b: v.order(a, b) >= 0,
}
_TONUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def compile_tree(node: Node, env_first: bool = False) -> Callable[[Any], list[Any]]:
    """The program as ``run(root) -> outputs`` (raises JqError, or Unsupported at run time).

    ``env_first``: the engine's prelude binds ``$ENV`` before the program runs, so reading
    the root's ``env`` fails (a root that is neither object nor null) even when the program
    never gets to its ``$ENV``; the run does the same.
    """
    fn, single = _Compiler(frozenset()).node(node)
    if env_first:
        def checked_env(root: Any) -> list[Any]:
            _env(root)
            return [fn(root, {"": root})] if single else list(fn(root, {"": root}))
        return checked_env
    if single:
        return lambda root: [fn(root, {"": root})]
    return lambda root: list(fn(root, {"": root}))


def _many(compiled: Compiled) -> Fn:
    fn, single = compiled
    if single:
        return lambda i, e: [fn(i, e)]
    return fn


# ------------------------------------------------------------------ primitive operations


def index(value: Any, key: Any) -> Any:
    kind, key_kind = type(value), type(key)
    if key_kind is str:
        if kind is dict:
            return value.get(key)
        if value is None:
            return None
        raise v.JqError(f'Cannot index {v.type_name(value)} with "{key}"')
    if key_kind is int or key_kind is float:
        if kind is list:
            if key_kind is float and not key.is_integer():
                raise Unsupported("fractional array index")
            position = int(v.checked(key))
            if position < 0:
                position += len(value)
            return value[position] if 0 <= position < len(value) else None
        if value is None:
            return None
        raise v.JqError(f"Cannot index {v.type_name(value)} with number")
    raise Unsupported("index by a non-string, non-number key")


def field_path(value: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if type(value) is dict:
            value = value.get(key)
        elif value is None:
            return None
        else:
            raise v.JqError(f'Cannot index {v.type_name(value)} with "{key}"')
    return value


def iterate(value: Any) -> list[Any]:
    kind = type(value)
    if kind is list:
        return value
    if kind is dict:
        return list(value.values())
    raise v.JqError(f"Cannot iterate over {v.describe(value)}")


def _length(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is list or kind is dict:
        return len(value)
    if value is None:
        return 0
    if kind is int or kind is float:
        return v.computed(abs(v.checked(value)))
    raise v.JqError(f"{v.describe(value)} has no length")


def _keys(value: Any, sort: bool) -> list[Any]:
    if type(value) is dict:
        return v.sorted_keys(value) if sort else [_str_key(key) for key in value]
    if type(value) is list:
        return list(range(len(value)))
    raise v.JqError(f"{v.describe(value)} has no keys")


def _str_key(key: Any) -> str:
    if type(key) is not str:
        raise Unsupported("non-string object key")
    return key


def _add_all(value: Any) -> Any:
    total = None
    for item in iterate(value):
        total = v.add(total, item)
    return total


def _tonumber(value: Any) -> Any:
    kind = type(value)
    if kind is int or kind is float:
        return value
    if kind is str:
        if _TONUMBER.fullmatch(value) and value != "-0":
            number = float(value) if "." in value else int(value)
            if str(number) == value:
                return number
        raise Unsupported("number text libjq reads its own way")
    raise v.JqError(f"{v.describe(value)} cannot be parsed as a number")


def _case(table: dict[int, int]) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if type(value) is not str:
            raise v.JqError("explode input must be a string")
        return value.translate(table)
    return convert


def _floor(value: Any) -> Any:
    kind = type(value)
    if kind is int or kind is float:
        return v.computed(float(v.checked(value)).__floor__())
    raise v.JqError(f"{v.describe(value)} number required")


def _sort(value: Any) -> list[Any]:
    if type(value) is not list:
        raise v.JqError(f"{v.describe(value)} cannot be sorted, as it is not an array")
    return sorted(value, key=cmp_to_key(v.compare))


def _has(value: Any, key: Any) -> bool:
    kind, key_kind = type(value), type(key)
    if kind is dict and key_kind is str:
        return key in value
    if value is None:  # libjq: null has no key of any kind
        v.type_name(key)
        return False
    if kind is list and (key_kind is int or key_kind is float):
        if key_kind is float and not key.is_integer():
            raise Unsupported("fractional array index")
        return 0 <= v.checked(key) < len(value)
    raise v.JqError(f"Cannot check whether {v.type_name(value)} has a {v.type_name(key)} key")


def _env(root: Any) -> Any:
    env = index(root, "env")
    return env if v.truthy(env) else {}


_SIMPLE: dict[str, Callable[[Any], Any]] = {
    "length/0": _length,
    "not/0": lambda x: not v.truthy(x),
    "keys/0": lambda x: _keys(x, True),
    "keys_unsorted/0": lambda x: _keys(x, False),
    "add/0": _add_all,
    "tostring/0": v.tostring,
    "tojson/0": v.dump,
    "tonumber/0": _tonumber,
    "type/0": v.type_name,
    "ascii_downcase/0": _case(_LOWER),
    "ascii_upcase/0": _case(_UPPER),
    "lower/0": _case(_LOWER),  # the engine's helpers (expressions._HELPERS)
    "upper/0": _case(_UPPER),
    "floor/0": _floor,
    "sort/0": _sort,
    "first/0": lambda x: index(x, 0),
    "last/0": lambda x: index(x, -1),
}


# ------------------------------------------------------------------ the compiler


class _Compiler:
    def __init__(self, bound: frozenset[str]):
        self.bound = bound

    def node(self, node: Node | None) -> Compiled:
        if node is None:
            return (lambda i, e: i), True
        method = getattr(self, "n_" + node.kind, None)
        if method is None:
            raise Unsupported(node.kind)
        compiled: Compiled = method(node)
        return compiled

    def n_identity(self, node: Node) -> Compiled:
        return (lambda i, e: i), True

    def n_paren(self, node: Node) -> Compiled:
        return self.node(node.kids[0])

    def n_literal(self, node: Node) -> Compiled:
        value = node.value
        if node.text and node.text != (str(value) if type(value) is int else repr(value)):
            raise Unsupported("number literal jq would print differently")
        return (lambda i, e: value), True

    def n_var(self, node: Node) -> Compiled:
        name = node.value
        if name in self.bound:
            return (lambda i, e: e[name]), True
        if name == "ENV":
            return (lambda i, e: _env(e[""])), True
        raise Unsupported(f"variable ${name}")

    def n_index(self, node: Node) -> Compiled:
        target, key = node.kids
        assert target is not None and key is not None
        optional = bool(node.value)
        path = _field_chain(node)
        if path is not None and not optional:
            keys = tuple(path)
            if len(keys) == 1:
                name = keys[0]

                def one(i: Any, e: dict[str, Any]) -> Any:
                    if type(i) is dict:
                        return i.get(name)
                    return field_path(i, keys)
                return one, True
            return (lambda i, e: field_path(i, keys)), True
        (tfn, tsingle), (kfn, ksingle) = self.node(target), self.node(key)
        if tsingle and ksingle and not optional:
            return (lambda i, e: index(tfn(i, e), kfn(i, e))), True
        targets, keys_of = _many((tfn, tsingle)), _many((kfn, ksingle))

        def run(i: Any, e: dict[str, Any]) -> list[Any]:
            out = []
            for k in keys_of(i, e):
                for t in targets(i, e):
                    if optional:
                        with suppress(v.JqError):
                            out.append(index(t, k))
                    else:
                        out.append(index(t, k))
            return out
        return run, False

    def n_iterate(self, node: Node) -> Compiled:
        targets = _many(self.node(node.kids[0]))
        optional = bool(node.value)

        def run(i: Any, e: dict[str, Any]) -> list[Any]:
            out: list[Any] = []
            for t in targets(i, e):
                if optional:
                    with suppress(v.JqError):
                        out.extend(iterate(t))
                else:
                    out.extend(iterate(t))
            return out
        return run, False

    def n_string(self, node: Node) -> Compiled:
        if node.value is not None:
            raise Unsupported("format strings")
        parts = []
        for kid in node.kids:
            assert kid is not None
            if kid.kind == "text":
                parts.append((True, kid.value))
            else:
                parts.append((False, self.node(kid)))
        if all(const or part[1] for const, part in parts):
            fns = [(const, part if const else part[0]) for const, part in parts]

            def single(i: Any, e: dict[str, Any]) -> str:
                return "".join(p if c else v.tostring(p(i, e)) for c, p in fns)
            return single, True
        pieces = [(lambda i, e, p=part: [p]) if const else _many(part) for const, part in parts]

        def run(i: Any, e: dict[str, Any]) -> list[str]:
            # the last interpolation is the outermost loop, as in jq: evaluate from the end
            suffixes = [""]
            for piece in reversed(pieces):
                suffixes = [v.tostring(item) + rest for rest in suffixes for item in piece(i, e)]
            return suffixes
        return run, False

    def n_array(self, node: Node) -> Compiled:
        if not node.kids:
            return (lambda i, e: []), True
        fn, single = self.node(node.kids[0])
        if single:
            return (lambda i, e: [fn(i, e)]), True
        return (lambda i, e: list(fn(i, e))), True

    def n_object(self, node: Node) -> Compiled:
        entries: list[tuple[Compiled | None, str | None, Compiled]] = []
        for key, value in node.value:
            if key.kind == "literal":
                entries.append((None, key.value, self.node(value)))
            else:
                entries.append((self.node(key), None, self.node(value)))
        if all(k is None and val[1] for k, _, val in entries):
            fields = [(name, val[0]) for _, name, val in entries]
            return (lambda i, e: {name: fn(i, e) for name, fn in fields}), True
        steps = [(None if k is None else _many(k), name, _many(val)) for k, name, val in entries]

        def run(i: Any, e: dict[str, Any]) -> list[dict[str, Any]]:
            # nested loops, the first entry outermost: an entry with no values means the
            # later entries are never evaluated (nor fail), as in jq
            objects: list[dict[str, Any]] = [{}]
            for keys_of, name, values_of in steps:
                grown = []
                for obj in objects:
                    for key in [name] if keys_of is None else keys_of(i, e):
                        for item in values_of(i, e):  # jq checks the key when it inserts
                            if type(key) is not str:
                                raise v.JqError(f"Object keys must be strings, not {v.describe(key)}")
                            grown.append({**obj, key: item})
                objects = grown
                if not objects:
                    break
            return objects
        return run, False

    def n_pipe(self, node: Node) -> Compiled:
        (afn, asingle), (bfn, bsingle) = self.node(node.kids[0]), self.node(node.kids[1])
        if asingle and bsingle:
            return (lambda i, e: bfn(afn(i, e), e)), True
        lefts, rights = _many((afn, asingle)), _many((bfn, bsingle))
        return (lambda i, e: [out for x in lefts(i, e) for out in rights(x, e)]), False

    def n_comma(self, node: Node) -> Compiled:
        first, second = _many(self.node(node.kids[0])), _many(self.node(node.kids[1]))
        return (lambda i, e: [*first(i, e), *second(i, e)]), False

    def n_alt(self, node: Node) -> Compiled:
        (afn, asingle), (bfn, bsingle) = self.node(node.kids[0]), self.node(node.kids[1])
        if asingle and bsingle:
            def single(i: Any, e: dict[str, Any]) -> Any:
                value = afn(i, e)
                return value if value is not None and value is not False else bfn(i, e)
            return single, True
        lefts, rights = _many((afn, asingle)), _many((bfn, bsingle))

        def run(i: Any, e: dict[str, Any]) -> list[Any]:
            found = [x for x in lefts(i, e) if x is not None and x is not False]
            return found or rights(i, e)
        return run, False

    def n_and(self, node: Node) -> Compiled:
        return self._logic(node, is_and=True)

    def n_or(self, node: Node) -> Compiled:
        return self._logic(node, is_and=False)

    def _logic(self, node: Node, is_and: bool) -> Compiled:
        (afn, asingle), (bfn, bsingle) = self.node(node.kids[0]), self.node(node.kids[1])
        if asingle and bsingle:
            if is_and:
                return (lambda i, e: v.truthy(afn(i, e)) and v.truthy(bfn(i, e))), True
            return (lambda i, e: v.truthy(afn(i, e)) or v.truthy(bfn(i, e))), True
        lefts, rights = _many((afn, asingle)), _many((bfn, bsingle))

        def run(i: Any, e: dict[str, Any]) -> list[bool]:
            out = []
            for left in lefts(i, e):
                if v.truthy(left) != is_and:  # decided by the left side
                    out.append(not is_and)
                else:
                    out.extend(v.truthy(right) for right in rights(i, e))
            return out
        return run, False

    def n_binop(self, node: Node) -> Compiled:
        op = _OPS[node.value]
        (afn, asingle), (bfn, bsingle) = self.node(node.kids[0]), self.node(node.kids[1])
        if asingle and bsingle:
            right = node.kids[1]
            if right is not None and right.kind == "literal":  # ``.x * 2``: one call fewer
                const = right.value
                return (lambda i, e: op(afn(i, e), const)), True
            return (lambda i, e: op(afn(i, e), bfn(i, e))), True
        lefts, rights = _many((afn, asingle)), _many((bfn, bsingle))
        # the right operand varies slowest, as in jq
        return (lambda i, e: [op(a, b) for b in rights(i, e) for a in lefts(i, e)]), False

    def n_neg(self, node: Node) -> Compiled:
        fn, single = self.node(node.kids[0])
        if single:
            return (lambda i, e: v.negate(fn(i, e))), True
        return (lambda i, e: [v.negate(x) for x in fn(i, e)]), False

    def n_if(self, node: Node) -> Compiled:
        kids = node.kids
        branches = [(self.node(kids[k]), self.node(kids[k + 1])) for k in range(0, len(kids) - 1, 2)]
        otherwise = self.node(kids[-1])
        if all(c[1] and b[1] for c, b in branches) and otherwise[1]:
            tests = [(c[0], b[0]) for c, b in branches]
            other = otherwise[0]

            def single(i: Any, e: dict[str, Any]) -> Any:
                for test, body in tests:
                    cond = test(i, e)
                    if cond is not None and cond is not False:
                        return body(i, e)
                return other(i, e)
            return single, True
        chain: Fn = _many(otherwise)
        for cond, body in reversed(branches):
            chain = _if_step(_many(cond), _many(body), chain)
        return chain, False

    def n_try(self, node: Node) -> Compiled:
        body, handler = node.kids
        if handler is not None:
            raise Unsupported("try ... catch")
        fn, single = self.node(body)
        if single:
            def one(i: Any, e: dict[str, Any]) -> list[Any]:
                try:
                    return [fn(i, e)]
                except v.JqError:
                    return []
            return one, False
        inner = self._try_body(body)

        def run(i: Any, e: dict[str, Any]) -> list[Any]:
            out: list[Any] = []
            with suppress(v.JqError):
                inner(i, e, out)
            return out
        return run, False

    def _try_body(self, body: Node | None) -> Callable[[Any, dict[str, Any], list[Any]], None]:
        """The outputs of a ``try`` body up to its first error: jq keeps those."""
        assert body is not None
        if body.kind == "comma":
            first, second = self._try_body(body.kids[0]), self._try_body(body.kids[1])

            def both(i: Any, e: dict[str, Any], out: list[Any]) -> None:
                first(i, e, out)
                second(i, e, out)
            return both
        if body.kind == "paren":
            return self._try_body(body.kids[0])
        if body.kind == "pipe":
            left, right = _many(self.node(body.kids[0])), self._try_body(body.kids[1])

            def piped(i: Any, e: dict[str, Any], out: list[Any]) -> None:
                for x in left(i, e):
                    right(x, e, out)
            return piped
        fn = _many(self.node(body))
        return lambda i, e, out: out.extend(fn(i, e))

    def n_bind(self, node: Node) -> Compiled:
        name = node.value
        sfn, ssingle = self.node(node.kids[0])
        bfn, bsingle = _Compiler(self.bound | {name}).node(node.kids[1])
        if ssingle and bsingle:
            return (lambda i, e: bfn(i, {**e, name: sfn(i, e)})), True
        sources, bodies = _many((sfn, ssingle)), _many((bfn, bsingle))
        return (lambda i, e: [out for x in sources(i, e) for out in bodies(i, {**e, name: x})]), False

    def n_call(self, node: Node) -> Compiled:
        name = node.value
        simple = _SIMPLE.get(name)
        if simple is not None:
            return (lambda i, e: simple(i)), True
        if name == "empty/0":
            return (lambda i, e: []), False
        if name == "env/0":
            return (lambda i, e: _env(e[""])), True
        if name not in ("map/1", "select/1", "has/1", "default/1"):
            raise Unsupported(f"function {name}")
        fn, single = self.node(node.kids[0])
        if name == "map/1":
            if single:
                return (lambda i, e: [fn(x, e) for x in iterate(i)]), True
            return (lambda i, e: [out for x in iterate(i) for out in fn(x, e)]), True
        if name == "select/1":
            if single:
                return (lambda i, e: [i] if v.truthy(fn(i, e)) else []), False
            return (lambda i, e: [i for c in fn(i, e) if v.truthy(c)]), False
        if name == "has/1":
            if single:
                return (lambda i, e: _has(i, fn(i, e))), True
            return (lambda i, e: [_has(i, k) for k in fn(i, e)]), False
        # default(x): the engine's ``if . == null then x else . end``
        if single:
            return (lambda i, e: fn(i, e) if v.equal(i, None) else i), True
        return (lambda i, e: fn(i, e) if v.equal(i, None) else [i]), False


def _if_step(cond: Fn, body: Fn, otherwise: Fn) -> Fn:
    def run(i: Any, e: dict[str, Any]) -> list[Any]:
        out: list[Any] = []
        for c in cond(i, e):
            out.extend(body(i, e) if c is not None and c is not False else otherwise(i, e))
        return out
    return run


def _field_chain(node: Node) -> list[str] | None:
    """``.a.b.c`` (plain field steps from ``.``) as its keys, else None."""
    keys: list[str] = []
    while node.kind == "index" and not node.value:
        target, key = node.kids
        if key is None or key.kind != "literal" or type(key.value) is not str or target is None:
            return None
        keys.append(key.value)
        node = target
    if node.kind != "identity":
        return None
    keys.reverse()
    return keys
