"""A line edit for jq: syntax checking of ``{{ }}`` templates and bare programs, plus completion.

The checks follow pipeline-format.md §3 through the rules the engine uses
(``engine.format.templates``): where a ``{{ }}`` block ends, which programs are plain
lookups (never compiled), and the prelude helpers every program may call. The studio
compiles with jq itself; ``uuid`` and ``now_iso`` get constant stand-ins here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import jq
from PySide6.QtCore import QStringListModel, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QCompleter, QLineEdit, QWidget

from app.editor.outline import PipelineOutline, StepNode
from engine.format import templates

TEMPLATE = "template"  # text that may hold {{ }} blocks; plain text is fine
PROGRAM = "program"  # a condition or program key: a {{ }} template, else a bare jq program

_PRELUDE = {
    **templates.HELPERS,
    "uuid": 'def uuid: "00000000-0000-0000-0000-000000000000"; ',
    "now_iso": 'def now_iso: "1970-01-01T00:00:00Z"; ',
}
_HELPER = re.compile(r"\b(" + "|".join(_PRELUDE) + r")\b")
# A path at the start of a jq term: ".a.b-c" but not the ".b" of "x.b" or "].b".
_PATH_IN_PROGRAM = re.compile(r"(?<![\w\]\)\}\"$])\.([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*)")
_TOKEN_AT_END = re.compile(r"\.(?:[A-Za-z_][\w-]*\.?)*$")

RESERVED_KEYS = (".steps", ".trigger", ".meta", ".env")
META_KEYS = (".meta.execution_id", ".meta.pipeline", ".meta.started_at", ".meta.attempt",
             ".meta.replay_of")


@lru_cache(maxsize=2048)
def check_program(program: str) -> str | None:
    """A syntax error message for a bare jq program, or None when it compiles."""
    if templates.is_lookup(program):
        return None
    if not program.strip():
        return "empty expression"
    prelude = "".join(_PRELUDE[name] for name in sorted(set(_HELPER.findall(program))))
    try:
        jq.compile(prelude + program)
    except ValueError as exc:
        return templates.jq_message(str(exc), len(prelude))
    return None


def check_text(text: str, mode: str = TEMPLATE) -> str | None:
    """The first problem of ``text`` as a template (or, in PROGRAM mode, a bare program)."""
    if mode == PROGRAM and "{{" not in text:
        error = check_program(text)
        return f"jq: {error}" if error else None
    if "{{" not in text:
        return None
    try:
        parts = templates.split(text)
    except templates.UnclosedBlock as exc:
        return str(exc)
    for is_program, piece, _ in parts:
        if is_program:
            error = check_program(piece)
            if error:
                return f"jq in {{{{{piece}}}}}: {error}"
    return None


def paths_in(value: Any) -> Iterable[str]:
    """Every dotted path (``.a.b``) used in the templates inside ``value``."""
    if isinstance(value, dict):
        for item in value.values():
            yield from paths_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from paths_in(item)
    elif isinstance(value, str) and "{{" in value:
        try:
            parts = templates.split(value)
        except templates.UnclosedBlock:
            return
        for is_program, piece, _ in parts:
            if is_program:
                for match in _PATH_IN_PROGRAM.finditer(piece):
                    yield "." + match.group(1)


def context_keys(pipeline: PipelineOutline | None, step: StepNode | None = None) -> list[str]:
    """Completion candidates for a jq field of ``step``: step outputs, context keys, reserved keys.

    Trigger fields are guessed from the paths the pipeline's templates already use; step.set
    values of earlier steps are context keys too; loop variables of enclosing loops and
    ``.compensating`` inside a compensation are added where they exist.
    """
    keys: set[str] = set(RESERVED_KEYS) | set(META_KEYS)
    if pipeline is None:
        return sorted(keys)
    for node in pipeline.nodes.values():
        keys.add(f".steps.{node.name}")
        values = node.value.get("config", {}).get("values") if node.type == "step.set" else None
        if isinstance(values, dict):
            for key in values:
                keys.add(f".steps.{node.name}.{key}")
                if step is None or node.line < step.line:
                    keys.add(f".{key}")
    for node in pipeline.nodes.values():
        for path in paths_in(node.value):
            parts = path.split(".")[1:]
            for n in range(1, len(parts) + 1):
                keys.add("." + ".".join(parts[:n]))
    for path in paths_in(pipeline.trigger):
        keys.add(path)
    if step is not None:
        keys |= _scope_keys(pipeline, step)
    return sorted(keys)


def _scope_keys(pipeline: PipelineOutline, step: StepNode) -> set[str]:
    keys: set[str] = set()
    node: StepNode | None = step
    while node is not None:
        if node.slot == "compensate":
            keys |= {".compensating", ".compensating.step", ".compensating.output", ".compensating.error"}
        parent = pipeline.nodes.get(node.parent) if node.parent else None
        if parent is not None:
            config = parent.value.get("config") or {}
            if parent.type == "step.foreach" and isinstance(config, dict):
                keys.add("." + str(config.get("item_var") or "item"))
                keys.add("." + str(config.get("index_var") or "index"))
            elif parent.type == "step.while":
                keys.add(".iteration")
        node = parent
    return keys


class JqField(QLineEdit):
    """A QLineEdit that checks its jq as you type and completes context paths.

    The check never blocks typing: an error only paints a red border, sets the tooltip and
    emits ``errorChanged`` (the form shows the message under the field).
    """

    errorChanged = Signal(str)  # "" when the text is fine

    def __init__(self, mode: str = TEMPLATE, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.mode = mode
        self._error = ""
        self._extra_error = ""  # set by the owner (e.g. "expected a number")
        self._tooltip = ""
        self._model = QStringListModel(self)
        self._completer = QCompleter(self._model, self)
        self._completer.setWidget(self)
        self._completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self._completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        self._completer.activated.connect(self._insert_completion)
        self.textChanged.connect(self._recheck)
        self.textEdited.connect(self._maybe_complete)

    # -- public API --------------------------------------------------------------------
    def set_completions(self, keys: Iterable[str]) -> None:
        self._model.setStringList(list(keys))

    def completions(self) -> list[str]:
        return list(self._model.stringList())

    def completer_popup_visible(self) -> bool:
        return self._completer.popup().isVisible()

    def error(self) -> str:
        return self._extra_error or self._error

    def set_extra_error(self, message: str) -> None:
        """An error found by the owner (type checks); shown like a jq error."""
        if message != self._extra_error:
            self._extra_error = message
            self._show()

    def setToolTip(self, text: str) -> None:
        self._tooltip = text
        self._show()

    def set_text_keep_cursor(self, text: str) -> None:
        """Replace the text (a refresh from the document) keeping the caret where it was."""
        if text == self.text():
            return
        cursor = self.cursorPosition()
        self.setText(text)
        self.setCursorPosition(min(cursor, len(text)))

    # -- checking ----------------------------------------------------------------------
    def _recheck(self, text: str) -> None:
        error = check_text(text, self.mode) or ""
        if error != self._error:
            self._error = error
            self._show()

    def _show(self) -> None:
        message = self.error()
        self.setProperty("error", bool(message))
        self.setStyleSheet("JqField { border: 1px solid #D9363E; border-radius: 2px; }" if message else "")
        tip = f"<b style='color:#D9363E'>{_escape(message)}</b>" if message else ""
        if self._tooltip:
            tip = f"{tip}<br>{self._tooltip}" if tip else self._tooltip
        super().setToolTip(tip)
        self.errorChanged.emit(message)

    # -- completion --------------------------------------------------------------------
    def _token(self) -> tuple[int, str] | None:
        """The path being typed at the caret, if the caret is where jq is expected."""
        before = self.text()[: self.cursorPosition()]
        if self.mode == TEMPLATE or "{{" in before:
            opened = before.rfind("{{")
            if opened < 0 or "}}" in before[opened:]:
                return None
        match = _TOKEN_AT_END.search(before)
        if match is None:
            return None
        return match.start(), match.group(0)

    def _maybe_complete(self, _text: str) -> None:
        token = self._token()
        if token is None or not self._model.stringList():
            self._completer.popup().hide()
            return
        self._completer.setCompletionPrefix(token[1])
        if self._completer.completionCount() == 0 or (
            self._completer.completionCount() == 1 and self._completer.currentCompletion() == token[1]
        ):
            self._completer.popup().hide()
            return
        self._popup()

    def _popup(self) -> None:
        rect = self.cursorRect()
        rect.setWidth(max(self.width() // 2, 220))
        self._completer.complete(rect)
        # Preselect the first match, so Enter/Tab take it as in an IDE.
        self._completer.popup().setCurrentIndex(self._completer.completionModel().index(0, 0))

    def _insert_completion(self, completion: str) -> None:
        token = self._token()
        if token is None:
            return
        start, typed = token
        text = self.text()
        end = start + len(typed)
        self.setText(text[:start] + completion + text[end:])
        self.setCursorPosition(start + len(completion))

    def keyPressEvent(self, event: QKeyEvent) -> None:
        popup = self._completer.popup()
        if popup.isVisible() and event.key() in (Qt.Key.Key_Enter, Qt.Key.Key_Return, Qt.Key.Key_Tab,
                                                 Qt.Key.Key_Escape, Qt.Key.Key_Backtab):
            event.ignore()  # the completer's popup takes these
            return
        if event.key() == Qt.Key.Key_Space and event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self._complete_now()
            return
        super().keyPressEvent(event)

    def _complete_now(self) -> None:
        token = self._token()
        self._completer.setCompletionPrefix(token[1] if token else "")
        if token is not None and self._completer.completionCount():
            self._popup()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
