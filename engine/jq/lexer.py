"""Tokens of jq's program syntax (the lexer of jq 1.7/1.8, enough to parse every program
the engine meets; anything it does not know raises ``Unsupported`` and the caller uses libjq).

A string literal is one token whose ``value`` is a list of parts: ``str`` pieces and, for
each ``\\(...)`` interpolation, the token list of the expression inside.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


class Unsupported(Exception):
    """The program (or, at run time, a value) is outside what the Python evaluator handles."""


@dataclass(slots=True)
class Token:
    kind: str  # "num", "str", "ident", "field", "var", "format", "op", "kw", "end"
    value: Any
    text: str = ""  # the source text of a number literal


KEYWORDS = frozenset({"as", "def", "module", "import", "include", "if", "then", "elif", "else",
                      "end", "and", "or", "reduce", "foreach", "try", "catch", "label", "__loc__"})
# Longest operators first so that ``//=`` is not read as ``//`` then ``=``.
_OPS = ("?//", "//=", "|=", "+=", "-=", "*=", "/=", "%=", "==", "!=", "<=", ">=", "//", "..",
        "|", ",", "+", "-", "*", "/", "%", "=", "<", ">", "(", ")", "[", "]", "{", "}", ":",
        ";", "?", ".")
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_IDENT = re.compile(r"(?:[a-zA-Z_][a-zA-Z_0-9]*::)*[a-zA-Z_][a-zA-Z_0-9]*")
_NAME = re.compile(r"[a-zA-Z_][a-zA-Z_0-9]*")
_SPACE = re.compile(r"(?:\s|#[^\n]*)*")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
            "t": "\t"}


def tokenize(text: str) -> list[Token]:
    return _tokens(text, 0, nested=False)[0]


def _tokens(text: str, pos: int, nested: bool) -> tuple[list[Token], int]:
    """Tokens from ``pos``; when ``nested`` (inside ``\\(``), stop after the closing ``)``."""
    out: list[Token] = []
    depth = 0
    n = len(text)
    while True:
        match = _SPACE.match(text, pos)
        assert match is not None  # the pattern matches the empty string
        if "\\" in match.group(0):  # jq lets a backslash continue a comment: be careful
            raise Unsupported("backslash in a comment")
        pos = match.end()
        if pos >= n:
            if nested:
                raise Unsupported("unterminated interpolation")
            out.append(Token("end", None))
            return out, pos
        ch = text[pos]
        if ch == '"':
            parts, pos = _string(text, pos + 1)
            out.append(Token("str", parts))
            continue
        if ch.isdigit() or (ch == "." and pos + 1 < n and text[pos + 1].isdigit()):
            number = _NUMBER.match(text, pos)
            assert number is not None
            out.append(Token("num", None, number.group(0)))
            pos = number.end()
            continue
        if ch == "." and pos + 1 < n and (text[pos + 1].isalpha() or text[pos + 1] == "_"):
            name = _NAME.match(text, pos + 1)
            assert name is not None
            out.append(Token("field", name.group(0)))
            pos = name.end()
            continue
        if ch == "$":
            name = _NAME.match(text, pos + 1)
            if name is None:
                raise Unsupported("'$' without a name")
            out.append(Token("var", name.group(0)))
            pos = name.end()
            continue
        if ch == "@":
            name = _NAME.match(text, pos + 1)
            if name is None:
                raise Unsupported("'@' without a name")
            out.append(Token("format", name.group(0)))
            pos = name.end()
            continue
        if ch.isalpha() or ch == "_":
            ident = _IDENT.match(text, pos)
            assert ident is not None
            word = ident.group(0)
            out.append(Token("kw" if word in KEYWORDS else "ident", word))
            pos = ident.end()
            continue
        for op in _OPS:
            if text.startswith(op, pos):
                break
        else:
            raise Unsupported(f"unexpected character {ch!r}")
        pos += len(op)
        if nested and op == "(":
            depth += 1
        elif nested and op == ")":
            if depth == 0:
                out.append(Token("end", None))
                return out, pos
            depth -= 1
        out.append(Token("op", op))


def _string(text: str, pos: int) -> tuple[list[str | list[Token]], int]:
    """The parts of a string literal whose opening quote ends before ``pos``."""
    parts: list[str | list[Token]] = []
    piece: list[str] = []
    n = len(text)
    while pos < n:
        ch = text[pos]
        if ch == '"':
            if piece or not parts:
                parts.append("".join(piece))
            return parts, pos + 1
        if ch != "\\":
            piece.append(ch)
            pos += 1
            continue
        escape = text[pos + 1: pos + 2]
        if escape == "(":
            if piece:
                parts.append("".join(piece))
                piece = []
            inner, pos = _tokens(text, pos + 2, nested=True)
            parts.append(inner)
            continue
        if escape == "u":
            code, pos = _unicode(text, pos)
            piece.append(code)
            continue
        if escape not in _ESCAPES:
            raise Unsupported(f"invalid escape \\{escape}")
        piece.append(_ESCAPES[escape])
        pos += 2
    raise Unsupported("unterminated string")


def _unicode(text: str, pos: int) -> tuple[str, int]:
    digits = text[pos + 2: pos + 6]
    if not re.fullmatch(r"[0-9a-fA-F]{4}", digits):
        raise Unsupported("invalid \\u escape")
    code = int(digits, 16)
    pos += 6
    if 0xD800 <= code < 0xDC00 and text.startswith("\\u", pos):
        low_digits = text[pos + 2: pos + 6]
        if re.fullmatch(r"[0-9a-fA-F]{4}", low_digits):
            low = int(low_digits, 16)
            if 0xDC00 <= low < 0xE000:
                return chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)), pos + 6
    if 0xD800 <= code < 0xE000:  # a lone surrogate: libjq replaces it, we do not guess how
        raise Unsupported("lone surrogate escape")
    return chr(code), pos
