"""A form for a test event's data, generated from the source's event schema (JSON Schema).

One row per top-level property of an object schema: a combo for an ``enum``, a check box
for a boolean, a line for a string or a number, and a line taking JSON for anything else
(objects, arrays, combinators). Empty optional lines are left out of the value. Keys the
form has no row for (loaded from the JSON editor) are kept as they are.

:func:`form_fits` says whether a schema gets a form at all; without one the dialog offers
the JSON editor only.
"""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QLabel, QLineEdit, QWidget

from app import theme


def form_fits(schema: dict[str, Any]) -> bool:
    properties = schema.get("properties")
    return schema.get("type", "object") == "object" and isinstance(properties, dict) and bool(properties)


def _types(schema: dict[str, Any]) -> set[str]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {str(k) for k in kind}
    return set()


class EventForm(QWidget):
    def __init__(self, schema: dict[str, Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("testEventForm")
        self.schema = schema
        self.required = set(schema.get("required") or [])
        self.editors: dict[str, QWidget] = {}
        self._extra: dict[str, Any] = {}
        layout = QFormLayout(self)
        layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for key, spec in (schema.get("properties") or {}).items():
            spec = spec if isinstance(spec, dict) else {}
            editor = self._editor_for(key, spec)
            editor.setObjectName(f"testEventField_{key}")
            if spec.get("description"):
                editor.setToolTip(str(spec["description"]))
            label = QLabel(f"{key}{' *' if key in self.required else ''}")
            label.setToolTip("required" if key in self.required else "optional: left out when empty")
            layout.addRow(label, editor)
            self.editors[key] = editor
        if self.required:
            note = QLabel("* required")
            note.setStyleSheet(f"color: {theme.colors().muted};")
            layout.addRow("", note)

    def _editor_for(self, key: str, spec: dict[str, Any]) -> QWidget:
        types = _types(spec)
        if isinstance(spec.get("enum"), list):
            combo = QComboBox()
            if key not in self.required:
                combo.addItem("(not set)", None)
            for value in spec["enum"]:
                combo.addItem(value if isinstance(value, str) else json.dumps(value), json.dumps(value))
            if "default" in spec:
                combo.setCurrentIndex(max(0, combo.findData(json.dumps(spec["default"]))))
            return combo
        if types == {"boolean"}:
            box = QCheckBox()
            box.setChecked(bool(spec.get("default", False)))
            return box
        line = QLineEdit()
        if types & {"integer", "number"} and not types - {"integer", "number", "null"}:
            line.setPlaceholderText("a number" if "number" in types else "a whole number")
        elif types <= {"string", "null"} and types:
            fmt = spec.get("format")
            line.setPlaceholderText(f"text ({fmt})" if fmt else "text")
        else:
            line.setPlaceholderText("JSON, e.g. {\"a\": 1} or [1, 2]")
        if "default" in spec:
            line.setText(self._text_of(spec, spec["default"]))
        return line

    def _spec(self, key: str) -> dict[str, Any]:
        spec = (self.schema.get("properties") or {}).get(key)
        return spec if isinstance(spec, dict) else {}

    def _text_of(self, spec: dict[str, Any], value: Any) -> str:
        types = _types(spec)
        if isinstance(value, str) and "string" in types:
            return value
        return json.dumps(value, ensure_ascii=False)

    # ------------------------------------------------------------------ values

    def load(self, data: Any) -> None:
        """Fill the rows from ``data`` (an object; the keys without a row are kept aside)."""
        data = data if isinstance(data, dict) else {}
        self._extra = {k: v for k, v in data.items() if k not in self.editors}
        for key, editor in self.editors.items():
            present = key in data
            value = data.get(key)
            if isinstance(editor, QComboBox):
                found = editor.findData(json.dumps(value)) if present else editor.findData(None)
                editor.setCurrentIndex(max(0, found))
            elif isinstance(editor, QCheckBox):
                editor.setChecked(bool(value))
            elif isinstance(editor, QLineEdit):
                editor.setText(self._text_of(self._spec(key), value) if present else "")

    def value(self) -> tuple[dict[str, Any], list[str]]:
        """The data the rows make, and what keeps a row from making a value (by field name)."""
        data: dict[str, Any] = dict(self._extra)
        problems: list[str] = []
        for key, editor in self.editors.items():
            if isinstance(editor, QComboBox):
                raw = editor.currentData()
                if raw is not None:
                    data[key] = json.loads(raw)
                else:
                    data.pop(key, None)
            elif isinstance(editor, QCheckBox):
                data[key] = editor.isChecked()
            elif isinstance(editor, QLineEdit):
                text = editor.text()
                if not text.strip() and key not in self.required:
                    data.pop(key, None)
                    continue
                try:
                    data[key] = self._parse(self._spec(key), text)
                except ValueError as exc:
                    problems.append(f"{key}: {exc}")
        return data, problems

    def _parse(self, spec: dict[str, Any], text: str) -> Any:
        types = _types(spec)
        stripped = text.strip()
        if types and types <= {"string", "null"}:
            return None if "null" in types and stripped == "null" else text
        if types and types <= {"integer", "number", "null"}:
            if "null" in types and stripped == "null":
                return None
            try:
                return int(stripped)
            except ValueError:
                pass
            if "number" in types:
                try:
                    return float(stripped)
                except ValueError:
                    pass
            raise ValueError(f"{stripped!r} is not {'a number' if 'number' in types else 'a whole number'}")
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as exc:
            if "string" in types:  # a string among other types: plain text is that string
                return text
            raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno}); write e.g. "
                             "{\"a\": 1}, [1, 2] or \"text\"") from None
