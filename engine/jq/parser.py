"""jq programs to syntax trees, with jq's operator precedence (parser.y of jq 1.7/1.8):

    |  (right)  <  ,  <  // (right)  <  = |= += ... (nonassoc)  <  or  <  and
       <  == != < <= > >= (nonassoc)  <  + -  <  * / %  <  unary -, try  <  postfix ( .a [e] ? )

libjq checks every program's syntax before this parser sees it, so being more permissive
than jq is harmless; what must hold is that a program jq accepts gets the same tree.
Constructs outside the tree kinds below (``def``, destructuring, ``?//``, ``import``)
raise ``Unsupported``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.jq.lexer import Token, Unsupported, tokenize


@dataclass(slots=True)
class Node:
    """``kind`` names the construct; ``kids`` are sub-trees (None for an absent part)."""

    kind: str
    kids: list[Node | None] = field(default_factory=list)
    value: Any = None
    text: str = ""  # a number literal's source text


IDENTITY = Node("identity")
_ASSIGN = frozenset({"=", "|=", "+=", "-=", "*=", "/=", "%=", "//="})
_COMPARE = frozenset({"==", "!=", "<", "<=", ">", ">="})


def parse(program: str) -> Node:
    return _Parser(tokenize(program)).parse_all()


class _Parser:
    def __init__(self, tokens: list[Token]):
        self.tokens = tokens
        self.pos = 0

    # -------------------------------------------------------------- helpers

    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.pos + offset, len(self.tokens) - 1)]

    def take(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def at(self, kind: str, value: Any = None) -> bool:
        token = self.peek()
        return token.kind == kind and (value is None or token.value == value)

    def accept(self, kind: str, value: Any = None) -> bool:
        if self.at(kind, value):
            self.pos += 1
            return True
        return False

    def expect(self, kind: str, value: Any = None) -> Token:
        if not self.at(kind, value):
            raise Unsupported(f"expected {value or kind} at token {self.pos}")
        return self.take()

    def parse_all(self) -> Node:
        node = self.parse_pipe()
        self.expect("end")
        return node

    # -------------------------------------------------------------- binary levels

    def parse_pipe(self, no_comma: bool = False) -> Node:
        if self.at("kw", "def"):
            raise Unsupported("function definitions")
        left = self.parse_comma(no_comma)
        if self.accept("op", "|"):
            return Node("pipe", [left, self.parse_pipe(no_comma)])
        return left

    def parse_comma(self, no_comma: bool) -> Node:
        left = self.parse_alt()
        while not no_comma and self.accept("op", ","):
            left = Node("comma", [left, self.parse_alt()])
        return left

    def parse_alt(self) -> Node:
        left = self.parse_assign()
        if self.accept("op", "//"):
            return Node("alt", [left, self.parse_alt()])
        return left

    def parse_assign(self) -> Node:
        left = self.parse_or()
        token = self.peek()
        if token.kind == "op" and token.value in _ASSIGN:
            self.pos += 1
            return Node("assign", [left, self.parse_or()], token.value)
        return left

    def parse_or(self) -> Node:
        left = self.parse_and()
        while self.accept("kw", "or"):
            left = Node("or", [left, self.parse_and()])
        return left

    def parse_and(self) -> Node:
        left = self.parse_compare()
        while self.accept("kw", "and"):
            left = Node("and", [left, self.parse_compare()])
        return left

    def parse_compare(self) -> Node:
        left = self.parse_additive()
        token = self.peek()
        if token.kind == "op" and token.value in _COMPARE:
            self.pos += 1
            return Node("binop", [left, self.parse_additive()], token.value)
        return left

    def parse_additive(self) -> Node:
        left = self.parse_multiplicative()
        while self.peek().kind == "op" and self.peek().value in ("+", "-"):
            op = self.take().value
            left = Node("binop", [left, self.parse_multiplicative()], op)
        return left

    def parse_multiplicative(self) -> Node:
        left = self.parse_unary()
        while self.peek().kind == "op" and self.peek().value in ("*", "/", "%"):
            op = self.take().value
            left = Node("binop", [left, self.parse_unary()], op)
        return left

    def parse_unary(self) -> Node:
        term = self.parse_prefixed()
        if self.accept("kw", "as"):  # ``-. as $x | ...`` binds ``-.``
            name = self.parse_pattern()
            self.expect("op", "|")
            return Node("bind", [term, self.parse_pipe()], name)
        return term

    def parse_prefixed(self) -> Node:
        """Unary minus and ``try`` apply to a postfix term (``-.a?`` is ``-(.a?)``)."""
        if self.accept("op", "-"):
            return Node("neg", [self.parse_prefixed()])
        if self.accept("kw", "try"):
            body = self.parse_prefixed()
            handler = self.parse_prefixed() if self.accept("kw", "catch") else None
            return Node("try", [body, handler])
        return self.parse_postfix()

    # -------------------------------------------------------------- terms

    def parse_postfix(self) -> Node:
        term = self.parse_primary()
        while True:
            token = self.peek()
            if token.kind == "field":
                self.pos += 1
                term = self._index(term, Node("literal", value=token.value))
            elif token.kind == "op" and token.value == "." and self.peek(1).kind == "str":
                self.pos += 1
                term = self._index(term, self.parse_string(self.take(), None))
            elif token.kind == "op" and token.value == "." and self.peek(1) == Token("op", "["):
                self.pos += 1
            elif token.kind == "op" and token.value == "[":
                self.pos += 1
                term = self._bracket(term)
            elif token.kind == "op" and token.value == "?":
                self.pos += 1
                if term.kind in ("index", "iterate", "slice") and not term.value:
                    term.value = True  # ``?`` after a step guards that step only
                else:
                    term = Node("try", [term, None])
            else:
                break
        return term

    @staticmethod
    def _index(target: Node, key: Node) -> Node:
        return Node("index", [target, key], False)

    def _bracket(self, target: Node) -> Node:
        if self.accept("op", "]"):
            return Node("iterate", [target], False)
        if self.accept("op", ":"):
            end = self.parse_pipe()
            self.expect("op", "]")
            return Node("slice", [target, None, end], False)
        key = self.parse_pipe()
        if self.accept("op", ":"):
            upper: Node | None = None if self.at("op", "]") else self.parse_pipe()
            self.expect("op", "]")
            return Node("slice", [target, key, upper], False)
        self.expect("op", "]")
        return Node("index", [target, key], False)

    def parse_pattern(self) -> str:
        token = self.peek()
        if token.kind != "var" or token.value == "__loc__":
            raise Unsupported("destructuring patterns")
        self.pos += 1
        if self.at("op", "?//"):
            raise Unsupported("destructuring alternatives")
        return str(token.value)

    def parse_primary(self) -> Node:
        token = self.take()
        kind, value = token.kind, token.value
        if kind == "field":
            return Node("index", [IDENTITY, Node("literal", value=value)], False)
        if kind == "num":
            return _number(token.text)
        if kind == "str":
            return self.parse_string(token, None)
        if kind == "format":
            if self.at("str"):
                return self.parse_string(self.take(), value)
            return Node("format", value=value)
        if kind == "var":
            return Node("loc") if value == "__loc__" else Node("var", value=value)
        if kind == "ident":
            return self.parse_call(value)
        if kind == "kw":
            return self.parse_keyword(value)
        if kind == "op":
            if value == ".":
                if self.at("str"):
                    return Node("index", [IDENTITY, self.parse_string(self.take(), None)], False)
                return IDENTITY
            if value == "..":
                return Node("recurse")
            if value == "(":
                inner = self.parse_pipe()
                self.expect("op", ")")
                return Node("paren", [inner])
            if value == "[":
                if self.accept("op", "]"):
                    return Node("array", [])
                inner = self.parse_pipe()
                self.expect("op", "]")
                return Node("array", [inner])
            if value == "{":
                return self.parse_object()
        raise Unsupported(f"unexpected {value!r}")

    def parse_call(self, name: str) -> Node:
        if name in ("true", "false", "null") and not self.at("op", "("):
            return Node("literal", value={"true": True, "false": False, "null": None}[name])
        args: list[Node | None] = []
        if self.accept("op", "("):
            args.append(self.parse_pipe())
            while self.accept("op", ";"):
                args.append(self.parse_pipe())
            self.expect("op", ")")
        if name == "break":
            raise Unsupported("break")
        return Node("call", args, f"{name}/{len(args)}")

    def parse_keyword(self, word: str) -> Node:
        if word == "if":
            kids: list[Node | None] = [self.parse_pipe()]
            self.expect("kw", "then")
            kids.append(self.parse_pipe())
            while self.accept("kw", "elif"):
                kids.append(self.parse_pipe())
                self.expect("kw", "then")
                kids.append(self.parse_pipe())
            kids.append(self.parse_pipe() if self.accept("kw", "else") else None)
            self.expect("kw", "end")
            return Node("if", kids)
        if word in ("reduce", "foreach"):
            source = self.parse_postfix()
            self.expect("kw", "as")
            name = self.parse_pattern()
            self.expect("op", "(")
            parts: list[Node | None] = [source, self.parse_pipe()]
            self.expect("op", ";")
            parts.append(self.parse_pipe())
            if word == "foreach":
                parts.append(self.parse_pipe() if self.accept("op", ";") else None)
            self.expect("op", ")")
            return Node(word, parts, name)
        if word == "label":
            name = self.expect("var").value
            self.expect("op", "|")
            return Node("label", [self.parse_pipe()], name)
        raise Unsupported(f"keyword {word!r}")

    def parse_string(self, token: Token, fmt: str | None) -> Node:
        parts: list[Node | None] = []
        for part in token.value:
            if isinstance(part, str):
                parts.append(Node("text", value=part))
            else:
                parts.append(_Parser(part).parse_all())
        if fmt is None and len(parts) == 1 and parts[0] is not None and parts[0].kind == "text":
            return Node("literal", value=parts[0].value)
        return Node("string", parts, fmt)

    def parse_object(self) -> Node:
        entries: list[tuple[Node, Node]] = []
        if self.accept("op", "}"):
            return Node("object", value=entries)
        while True:
            token = self.take()
            key: Node
            value: Node | None = None
            if token.kind in ("ident", "kw") and "::" not in token.value:
                key = Node("literal", value=token.value)
            elif token.kind == "var" and token.value != "__loc__":
                key = Node("literal", value=token.value)
                value = Node("var", value=token.value)
            elif token.kind == "str":
                key = self.parse_string(token, None)
            elif token.kind == "op" and token.value == "(":
                key = self.parse_pipe()
                self.expect("op", ")")
                key = Node("paren", [key])
            else:
                raise Unsupported("object key")
            if value is None:
                if self.accept("op", ":"):
                    value = self.parse_pipe(no_comma=True)
                elif key.kind == "literal":
                    value = Node("index", [IDENTITY, key], False)
                else:
                    raise Unsupported("object shorthand")
            entries.append((key, value))
            if self.accept("op", "}"):
                return Node("object", value=entries)
            self.expect("op", ",")


def _number(text: str) -> Node:
    """A number literal. jq keeps a literal's text (``1.50 | tostring`` is "1.50"); only
    literals whose text Python's int/float would print back the same are evaluated here."""
    if text.isdigit():
        return Node("literal", value=int(text), text=text)
    number = float(text)
    return Node("literal", value=number, text=text)
