"""One place where "this execution" and "this step run" are chosen, for every pane at once.

Clicking a bar in the timeline, a row in the event list or a node in the editor calls
``select_step_run``; every pane that shows executions listens to the hub instead of to each
other, so adding a pane never means wiring it to all the others.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal


class SelectionHub(QObject):
    executionSelected = Signal(str)  # execution id ("" clears)
    stepRunSelected = Signal(str, str, int)  # (execution id, step path like "fan-out/row", started seq)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.execution_id = ""
        self.step_path = ""
        self.seq = 0

    def select_execution(self, execution_id: str) -> None:
        if execution_id != self.execution_id:
            self.execution_id, self.step_path, self.seq = execution_id, "", 0
            self.executionSelected.emit(execution_id)

    def select_step_run(self, execution_id: str, step_path: str, seq: int = 0) -> None:
        if (execution_id, step_path, seq) == (self.execution_id, self.step_path, self.seq):
            return  # panes re-emitting what they were told stop here
        if execution_id != self.execution_id:
            self.select_execution(execution_id)
        self.step_path, self.seq = step_path, seq
        self.stepRunSelected.emit(execution_id, step_path, seq)
