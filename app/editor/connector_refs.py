"""A step config form whose connector key is a combo of the file's connectors of one kind.

``step.emit``'s ``config.connector`` names a sink under ``connectors:``. Step types do not
declare such keys (see :data:`connector_rules.STEP_CONNECTOR_KEYS`), so this plan gives the
key the role "sink" (or "source") and shows it with the step-reference editor: an editable
combo filled by the panel's ``names_for(role)``. A template, or the user's "Edit as ..."
choice, keeps the editor the value needs.
"""

from __future__ import annotations

from typing import Any

from app.editor.connector_rules import STEP_CONNECTOR_KEYS
from app.editor.form_values import MISSING, REF, FieldSpec, RelPath, Roles
from app.editor.schema_form import FormPlan
from engine.service.models import StepTypeInfo


class ConnectorRefPlan(FormPlan):
    def __init__(self, schema: dict[str, Any], base: RelPath, roles: Roles, overrides: dict[RelPath, str],
                 key: str, kind: str) -> None:
        super().__init__(schema, base, roles, overrides)
        self.connector_path: RelPath = (*base, key)
        self.connector_kind = kind

    def specs(self, schema: dict[str, Any], base: RelPath, here: Any, top: bool) -> list[FieldSpec]:
        specs = super().specs(schema, base, here, top)
        for spec in specs:
            if spec.path == self.connector_path:
                spec.role = self.connector_kind
        return specs

    def kind_of(self, spec: FieldSpec, value: Any) -> str:
        plain = value is MISSING or (isinstance(value, str) and "{{" not in value)
        if spec.path == self.connector_path and spec.path not in self.overrides and plain:
            return REF
        return super().kind_of(spec, value)


def config_plan(info: StepTypeInfo, roles: Roles, overrides: dict[RelPath, str]) -> FormPlan:
    """The config plan of a step of type ``info`` (connector keys as combos)."""
    spec = STEP_CONNECTOR_KEYS.get(info.name)
    if spec is None:
        return FormPlan(info.schema_, ("config",), roles, overrides)
    key, kind = spec
    return ConnectorRefPlan(info.schema_, ("config",), roles, overrides, key, kind)
