"""What the graph knows of step types (from the service's ``StepTypeInfo``) and of step references.

Until the service answers, the outline's fallback shapes are used so composites and routes
still draw; categories then come from those shapes or are "generic".
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from app.editor.outline import FALLBACK_SHAPES, StepNode, TypeShape, ref_values, type_shapes
from engine.service.models import StepTypeInfo

GENERIC = "generic"


@dataclass(frozen=True)
class RefSlot:
    """One config value naming a step: where it is, how the edge is labelled, what it says now."""

    config_path: tuple[str | int, ...]  # below the step's ``config``
    label: str
    value: Any  # None: not set yet


class TypeCatalog:
    def __init__(self, infos: Iterable[StepTypeInfo] = ()) -> None:
        self.infos: dict[str, StepTypeInfo] = {info.name: info for info in infos}
        self.shapes: dict[str, TypeShape] = type_shapes(self.infos.values()) or dict(FALLBACK_SHAPES)

    def category(self, type_name: str) -> str:
        shape = self.shapes.get(type_name)
        return shape.category if shape is not None and shape.category else GENERIC

    def step_refs(self, type_name: str) -> frozenset[str]:
        shape = self.shapes.get(type_name)
        return shape.step_refs if shape is not None else frozenset()

    def by_category(self) -> dict[str, list[str]]:
        """Type names grouped by category, both sorted (for the context menu)."""
        out: dict[str, list[str]] = {}
        for name in sorted(self.infos):
            out.setdefault(self.category(name), []).append(name)
        return dict(sorted(out.items()))

    def new_step(self, type_name: str, taken: Iterable[str]) -> dict[str, Any]:
        """A step of ``type_name`` to insert: a name from the type and the type's example config.

        Sub-steps of the example (a foreach's body, a branch's arms) are renamed when their
        names are already used in the pipeline, since names must be unique there. The top
        name is left to the document, which makes it unique itself.
        """
        base = type_name.rsplit(".", 1)[-1].replace("_", "-") or "step"
        step: dict[str, Any] = {"name": base, "type": type_name}
        info = self.infos.get(type_name)
        if info is not None and info.example:
            config = copy.deepcopy(info.example)
            used = set(taken) | {base}
            _unique_substeps(config, used)
            step["config"] = config
        return step


def ref_slots(node: StepNode, refs: Iterable[str]) -> list[RefSlot]:
    """The step-naming config values of ``node`` for the type's ``step_refs`` patterns.

    Existing values come first (one per ``routes.*`` key); a pattern without a wildcard that
    is not set yet is listed with ``value=None`` so it can be wired from the output port.
    """
    config = node.value.get("config")
    config = config if isinstance(config, dict) else {}
    found: list[RefSlot] = []
    missing: list[RefSlot] = []
    for ref in sorted(refs):
        parts = ref.split(".")
        hits = list(ref_values(config, ref))
        found += [RefSlot(path, label, value) for path, label, value in hits]
        if not hits and "*" not in parts:
            missing.append(RefSlot(tuple(parts), parts[-1], None))
    return found + missing


def _unique_substeps(value: Any, used: set[str]) -> None:
    if isinstance(value, list):
        for item in value:
            _unique_substeps(item, used)
    elif isinstance(value, dict):
        name = value.get("name")
        if isinstance(name, str) and isinstance(value.get("type"), str):
            if name in used:
                n = 2
                while f"{name}-{n}" in used:
                    n += 1
                value["name"] = name = f"{name}-{n}"
            used.add(name)
        for item in value.values():
            _unique_substeps(item, used)
