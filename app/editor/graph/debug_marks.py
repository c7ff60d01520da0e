"""The debugger's marks on the graph: breakpoints and the paused step, kept per pipeline by step id.

The graph pane draws what this holds and puts it back on every rebuild; it never talks to the
service. A breakpoint on a step hidden in a collapsed composite shows as a small count on that
composite, a pause inside one marks the composite with the paused step.
"""

from __future__ import annotations

from collections.abc import Mapping

from PySide6.QtWidgets import QInputDialog, QLineEdit, QWidget

from app.editor.graph.items import Marks
from app.editor.graph.layout import GraphLayout, visible_ancestor
from app.editor.outline import PipelineOutline

BreakpointMarks = dict[str, tuple[bool, str]]  # step id -> (enabled, jq condition or "")


class DebugMarks:
    def __init__(self) -> None:
        self._breakpoints: dict[str, BreakpointMarks] = {}  # by pipeline
        self._paused: dict[str, str] = {}  # pipeline -> the step id where a run is paused

    def set_breakpoints(self, pipeline: str, breakpoints: Mapping[str, tuple[bool, str | None]]) -> bool:
        """All the breakpoints of ``pipeline`` (step id -> (enabled, condition)); False when the
        pipeline had none and still has none (nothing to redraw)."""
        marks = {
            step: (bool(enabled), (condition or "").strip())
            for step, (enabled, condition) in breakpoints.items()
        }
        if marks:
            self._breakpoints[pipeline] = marks
            return True
        return self._breakpoints.pop(pipeline, None) is not None

    def breakpoints(self, pipeline: str) -> BreakpointMarks:
        return dict(self._breakpoints.get(pipeline, {}))

    def breakpoint(self, pipeline: str, step_id: str) -> tuple[bool, str] | None:
        return self._breakpoints.get(pipeline, {}).get(step_id)

    def set_paused(self, pipeline: str, step_id: str | None) -> str | None:
        """Where a run of ``pipeline`` is paused now (None: nowhere); returns where it was."""
        if step_id:
            before = self._paused.get(pipeline)
            self._paused[pipeline] = step_id
            return before
        return self._paused.pop(pipeline, None)

    def paused(self, pipeline: str) -> str | None:
        return self._paused.get(pipeline)

    def marks_for(self, p: PipelineOutline, layout: GraphLayout) -> dict[str, Marks]:
        """The marks of the drawn steps: a hidden step's go on its collapsed composite."""
        breakpoints = self._breakpoints.get(p.name, {})
        paused = self._paused.get(p.name, "")
        if not breakpoints and not paused:
            return {}
        own: dict[str, tuple[bool, str]] = {}
        inner: dict[str, int] = {}
        for step_id, breakpoint in breakpoints.items():
            shown = visible_ancestor(step_id, p, layout.boxes) if step_id in p.nodes else None
            if shown == step_id:
                own[step_id] = breakpoint
            elif shown is not None:
                inner[shown] = inner.get(shown, 0) + 1
        paused_on = visible_ancestor(paused, p, layout.boxes) if paused in p.nodes else None
        out: dict[str, Marks] = {}
        for step_id in {*own, *inner, *([paused_on] if paused_on else [])}:
            at = paused if step_id == paused_on else ""
            out[step_id] = Marks(own.get(step_id), inner.get(step_id, 0), at)
        return out


def ask_condition(parent: QWidget, step_name: str, current: str) -> str | None:
    """Ask for a breakpoint's jq condition (``current`` filled in); None when cancelled or empty."""
    text, ok = QInputDialog.getText(
        parent,
        "Breakpoint condition",
        f"Pause at {step_name} when this jq condition is true (e.g. .qty > 10):",
        QLineEdit.EchoMode.Normal,
        current,
    )
    return text if ok and text.strip() else None
