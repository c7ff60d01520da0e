"""Retry DLQ entries with changes: edit the payload (one entry) or write a JSON Patch (any).

For one entry the payload is shown for editing and the patch sent is the difference
between it and the original (RFC 6902, made by ``jsonpatch``), so the retry's record says
exactly what changed. For several entries one JSON Patch applies to each payload; the
service checks that it applies to every one before anything runs. Text that is not JSON,
or not a patch, is refused with its position and the caret moved there.
"""

from __future__ import annotations

from typing import Any, Final

import jsonpatch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.debugger.json_edit import JsonEdit
from app.run.http_input import InputError
from engine.service.models import DlqEntry

PATCH_EXAMPLE: Final = '[\n  {"op": "replace", "path": "/qty", "value": 1}\n]'
OPS: Final = frozenset({"add", "remove", "replace", "move", "copy", "test"})


class DlqRetryDialog(QDialog):
    """``patch()`` after ``accepted``: the JSON Patch to send (None: retry as is)."""

    def __init__(self, entries: list[DlqEntry], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("dlqRetryDialog")
        self.entries = entries
        self._patch: list[dict[str, Any]] | None = None
        many = len(entries) > 1
        self.setWindowTitle(f"Retry {len(entries)} DLQ entries with changes" if many
                            else "Retry the DLQ entry with changes")
        self.tabs = QTabWidget(objectName="dlqRetryTabs")
        self.payload_edit = JsonEdit("payload")
        self.payload_edit.setObjectName("dlqPayloadEdit")
        self.patch_edit = JsonEdit("patch")
        self.patch_edit.setObjectName("dlqPatchEdit")
        self.patch_edit.set_text(PATCH_EXAMPLE)
        if many:
            self.tabs.addTab(self.patch_edit, "JSON Patch for every payload")
        else:
            self.payload_edit.set_value(entries[0].payload)
            self.tabs.addTab(self.payload_edit, "Payload")
            self.tabs.addTab(self.patch_edit, "JSON Patch")
        self.force = QCheckBox("Retry even entries whose retries are used up", objectName="dlqRetryForce")
        self.message = QLabel(objectName="dlqRetryMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        note = QLabel("Each retry runs the pipeline again as a new execution; the entries keep "
                      "the payload they arrived with.")
        note.setWordWrap(True)
        ok, cancel = QDialogButtonBox.StandardButton.Ok, QDialogButtonBox.StandardButton.Cancel
        buttons = QDialogButtonBox(ok | cancel)
        buttons.button(ok).setText("Retry")
        buttons.button(ok).setObjectName("dlqRetryOk")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(note)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.force)
        layout.addWidget(self.message)
        layout.addWidget(buttons)
        self.resize(560, 420)

    def patch(self) -> list[dict[str, Any]] | None:
        return self._patch

    def accept(self) -> None:
        try:
            self._patch = self._read_patch()
        except InputError as exc:
            editor = self.patch_edit if self.tabs.currentWidget() is self.patch_edit else self.payload_edit
            editor.show_error(exc.message)
            editor.go_to_error()
            self.message.setText(exc.message)
            return
        super().accept()

    def _read_patch(self) -> list[dict[str, Any]] | None:
        if self.tabs.currentWidget() is self.payload_edit:
            edited = self.payload_edit.value()
            patch = jsonpatch.make_patch(self.entries[0].payload, edited).patch
            return list(patch) or None
        value = self.patch_edit.value()
        if not isinstance(value, list):
            example = PATCH_EXAMPLE.replace("\n", "")
            raise InputError(f"patch: a JSON Patch is a list of operations, like {example}", "patch")
        for n, op in enumerate(value, 1):
            if not isinstance(op, dict) or op.get("op") not in OPS or not isinstance(op.get("path"), str):
                raise InputError(f"patch: operation {n} needs \"op\" (one of {', '.join(sorted(OPS))}) and "
                                 "a \"path\" like \"/qty\"", "patch")
        return value or None
