"""Syntax colours for pipeline YAML: keys, strings, comments, ``{{ jq }}`` blocks, list dashes.

A line scanner rather than a YAML parse, so a half-typed line colours sensibly. Block scalars
(``|`` / ``>``) are followed across lines through the block state: the state holds the
column of the key (or dash) that opened the scalar, and more indented lines belong to it.
"""

from __future__ import annotations

import re

from PySide6.QtGui import QColor, QFont, QSyntaxHighlighter, QTextCharFormat, QTextDocument

from app import theme
from engine.format import yaml12

_KEY_PLAIN = re.compile(r"[^\s#'\"{}\[\],&*!|>%@`-][^#{}\[\],]*?(?=\s*:(?:\s|$))|-[^\s#{}\[\],:][^#{}\[\],]*?"
                        r"(?=\s*:(?:\s|$))")
_KEY_FLOW = re.compile(r"[^\s#'\"{}\[\],&*!|>%@`][^#{}\[\],:]*?(?=\s*:(?:[\s,}\]]|$))")
_PLAIN_BLOCK = re.compile(r"[^#]*?(?=\s+#|\s*$)")
_PLAIN_FLOW = re.compile(r"[^,{}\[\]#]*?(?=\s*[,{}\[\]]|\s+#|\s*$)")
_JQ = re.compile(r"\{\{.*?(?:\}\}|$)")
_BLOCK_SCALAR = re.compile(r"[|>][-+0-9]*\s*(?:#.*)?$")
_DQ = re.compile(r'"(?:[^"\\]|\\.)*(?:"|$)')
_SQ = re.compile(r"'(?:[^']|'')*(?:'|$)")
_ANCHOR = re.compile(r"[&*!][^\s,{}\[\]]*")

_LIGHT = {"key": "#0550ae", "string": "#0a3069", "comment": "#6e7781", "jq": "#8250df",
          "dash": "#cf222e", "literal": "#953800", "punct": "#57606a", "anchor": "#116329"}
_DARK = {"key": "#79c0ff", "string": "#a5d6ff", "comment": "#8b949e", "jq": "#d2a8ff",
         "dash": "#ff7b72", "literal": "#ffa657", "punct": "#8b949e", "anchor": "#7ee787"}


class YamlHighlighter(QSyntaxHighlighter):
    def __init__(self, document: QTextDocument) -> None:
        super().__init__(document)
        self.formats: dict[str, QTextCharFormat] = {}
        self._load_colors()

    def _load_colors(self) -> None:
        colors = _DARK if theme.colors().name == "dark" else _LIGHT
        self.formats = {}
        for name, color in colors.items():
            fmt = QTextCharFormat()
            fmt.setForeground(QColor(color))
            if name == "key":
                fmt.setFontWeight(QFont.Weight.DemiBold)
            if name == "comment":
                fmt.setFontItalic(True)
            self.formats[name] = fmt

    def refresh_theme(self) -> None:
        self._load_colors()
        self.rehighlight()

    def highlightBlock(self, text: str) -> None:
        state = self.previousBlockState()
        indent = len(text) - len(text.lstrip(" "))
        if state >= 0 and (not text.strip() or indent > state):  # in a block scalar opened at `state`
            self._set(0, len(text), "string")
            self._jq(0, text)
            self.setCurrentBlockState(state)
            return
        self.setCurrentBlockState(-1)
        self._line(text, indent)

    def _line(self, text: str, i: int) -> None:
        n = len(text)
        if text.startswith(("---", "...")) and text[3:4] in ("", " "):
            self._set(0, 3, "punct")
            i = 3
        owner = i  # column of the key or dash a block scalar here would belong to
        while i < n and text[i] == "-" and (i + 1 == n or text[i + 1] == " "):
            self._set(i, 1, "dash")
            owner = i
            i += 1
            while i < n and text[i] == " ":
                i += 1
        key_end = self._key(text, i, _KEY_PLAIN)
        if key_end > i:
            owner = i
            i = key_end
        self._value(text, i, owner)

    def _key(self, text: str, i: int, plain: re.Pattern[str]) -> int:
        """Colour a key at ``i``; returns the position after its colon (``i`` when there is none)."""
        match = None
        if i < len(text) and text[i] in "\"'":
            quoted = (_DQ if text[i] == '"' else _SQ).match(text, i)
            if quoted is not None:
                rest = text[quoted.end():]
                stripped = rest.lstrip(" ")
                if stripped.startswith(":") and (len(stripped) == 1 or stripped[1] in " ,}]"):
                    match = quoted
        else:
            match = plain.match(text, i)
        if match is None or match.end() == i:
            return i
        self._set(i, match.end() - i, "key")
        colon = text.index(":", match.end())
        self._set(colon, 1, "punct")
        return colon + 1

    def _value(self, text: str, i: int, owner: int) -> None:
        n = len(text)
        depth = 0
        while i < n:
            ch = text[i]
            if ch == " ":
                i += 1
                continue
            if ch == "#" and (i == 0 or text[i - 1] in " \t"):
                self._set(i, n - i, "comment")
                return
            if depth == 0 and ch in "|>" and _BLOCK_SCALAR.match(text, i):
                self._set(i, 1, "punct")
                hash_at = text.find("#", i)
                if hash_at >= 0:
                    self._set(hash_at, n - hash_at, "comment")
                self.setCurrentBlockState(owner)
                return
            if ch in "{[":
                depth += 1
                self._set(i, 1, "punct")
                i += 1
                if ch == "{":
                    i = self._flow_key(text, i)
                continue
            if ch in "}]":
                depth = max(0, depth - 1)
                self._set(i, 1, "punct")
                i += 1
                continue
            if ch == ",":
                self._set(i, 1, "punct")
                i += 1
                i = self._flow_key(text, i) if depth else i
                continue
            if ch in "\"'":
                quoted = (_DQ if ch == '"' else _SQ).match(text, i)
                end = quoted.end() if quoted is not None else n
                self._set(i, end - i, "string")
                self._jq(i, text[:end])
                i = end
                continue
            if ch in "&*!":
                anchor = _ANCHOR.match(text, i)
                end = anchor.end() if anchor is not None else i + 1
                self._set(i, end - i, "anchor")
                i = end
                continue
            plain = (_PLAIN_FLOW if depth else _PLAIN_BLOCK).match(text, i)
            end = plain.end() if plain is not None and plain.end() > i else i + 1
            word = text[i:end]
            if yaml12.resolve(word) != "str":  # null, bool or number, as the engine reads it
                self._set(i, end - i, "literal")
            else:
                self._jq(i, text[:end])
            i = end

    def _flow_key(self, text: str, i: int) -> int:
        while i < len(text) and text[i] == " ":
            i += 1
        return self._key(text, i, _KEY_FLOW)

    def _jq(self, start: int, text: str) -> None:
        for match in _JQ.finditer(text, start):
            self._set(match.start(), match.end() - match.start(), "jq")

    def _set(self, start: int, length: int, kind: str) -> None:
        if length > 0:
            self.setFormat(start, length, self.formats[kind])
