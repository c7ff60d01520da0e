"""The structure of a pipeline file, read fast enough to redo on every keystroke.

The editor draws nodes and edges from an :class:`Outline`: every step (sub-steps included)
with the YAML path of its mapping, its source position and the edges between steps. It is
read with PyYAML's C composer (nodes carry marks) and never executes anything. What a step
type holds (sub-step slots, config keys naming other steps) comes from the service's
``step_types()``, so plugin types are drawn exactly like built-ins.

A YAML path is a tuple of mapping keys and list indexes from the document root, e.g.
``("pipelines", "orders", "steps", 2, "config", "steps", 0)``; the document edits in
:mod:`app.editor.yaml_edit` take the same paths.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from engine.format import step_refs, yaml12
from engine.service.models import StepTypeInfo

YamlPath = tuple[str | int, ...]


@dataclass(frozen=True)
class TypeShape:
    """What the outline needs to know of a step type (from ``StepTypeInfo``)."""

    substep_keys: Mapping[str, str] = field(default_factory=dict)  # key -> list|single|map
    step_refs: frozenset[str] = frozenset()  # dotted config paths naming steps; "*" = any key
    category: str = ""


def type_shapes(infos: Iterable[StepTypeInfo]) -> dict[str, TypeShape]:
    """The shapes of the service's step types (``step_types()``), plugins included."""
    return {t.name: TypeShape(dict(t.substep_keys), frozenset(t.step_refs), t.category) for t in infos}


# Used when the service has not answered yet; the service's answer replaces it.
FALLBACK_SHAPES: dict[str, TypeShape] = {
    "step.foreach": TypeShape({"steps": "list"}, category="control"),
    "step.while": TypeShape({"steps": "list"}, category="control"),
    "step.parallel": TypeShape({"steps": "list"}, category="control"),
    "step.branch": TypeShape({"branches": "map", "default": "list"}, frozenset({"merge_step"}),
                             "control"),
    "step.circuit_breaker": TypeShape({"steps": "list", "fallback": "list"}, category="resilience"),
    "step.conditional": TypeShape(step_refs=frozenset({"routes.*", "default", "then", "else"}),
                                  category="control"),
    "step.ff_gate": TypeShape(step_refs=frozenset({"on_enabled", "on_disabled"}),
                              category="messaging"),
}


@dataclass
class StepNode:
    id: str  # pipeline-relative path of names: "fan-out/enrich/score"; unique in the pipeline
    name: str
    type: str
    path: YamlPath  # YAML path of the step's mapping
    line: int  # 1-based position of the mapping's first key
    col: int
    end_line: int
    slot: str = ""  # where it sits in its parent: "steps", "branches.gold", "fallback", "compensate"
    parent: str | None = None  # id of the composite holding it
    children: list[StepNode] = field(default_factory=list)
    compensate: StepNode | None = None
    value: dict[str, Any] = field(default_factory=dict)  # the step mapping as plain data

    @property
    def is_group(self) -> bool:
        return bool(self.children)


@dataclass(frozen=True)
class Edge:
    source: str  # step id
    target: str
    kind: str  # next | route | jump | branch | compensate
    label: str = ""


@dataclass
class PipelineOutline:
    name: str
    path: YamlPath
    line: int
    trigger: dict[str, Any]
    steps: list[StepNode]  # top level, in order
    compensation: list[StepNode]
    edges: list[Edge]
    nodes: dict[str, StepNode]  # every step by id, sub-steps and compensations included

    def node_at_line(self, line: int) -> StepNode | None:
        """The innermost step whose text spans ``line``."""
        best: StepNode | None = None
        for node in self.nodes.values():
            if node.line <= line <= node.end_line and (best is None or node.line >= best.line):
                best = node
        return best


@dataclass
class ConnectorNode:
    """One entry of the file's ``connectors:`` list (a source or a sink)."""

    name: str  # "" when the entry has none yet
    type: str
    path: YamlPath  # ("connectors", index)
    line: int
    col: int
    end_line: int
    value: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outline:
    pipelines: dict[str, PipelineOutline] = field(default_factory=dict)
    modules: list[str] = field(default_factory=list)
    connectors: list[ConnectorNode] = field(default_factory=list)
    error: str | None = None  # the YAML error, with its position, when the text does not parse
    error_line: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


def parse_outline(text: str, shapes: Mapping[str, TypeShape] | None = None) -> Outline:
    """Read ``text``; a YAML error comes back in ``Outline.error`` instead of raising."""
    shapes = FALLBACK_SHAPES if shapes is None else shapes
    try:
        root = yaml.compose(text, Loader=yaml.CSafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        where = f"line {line}, column {mark.column + 1}: " if mark else ""
        return Outline(error=f"{where}{exc.problem or exc}", error_line=line)
    except yaml.YAMLError as exc:
        return Outline(error=str(exc))
    outline = Outline()
    if not isinstance(root, MappingNode):
        return outline
    top = _pairs(root)
    modules = top.get("modules")
    if isinstance(modules, SequenceNode):
        for item in modules.value:
            name = _pairs(item).get("name") if isinstance(item, MappingNode) else None
            if isinstance(name, ScalarNode):
                outline.modules.append(str(name.value))
    connectors = top.get("connectors")
    if isinstance(connectors, SequenceNode):
        for index, item in enumerate(connectors.value):
            value = _plain(item) if isinstance(item, MappingNode) else None
            if isinstance(value, dict):
                outline.connectors.append(ConnectorNode(
                    name=str(value.get("name") or ""), type=str(value.get("type") or ""),
                    path=("connectors", index), line=item.start_mark.line + 1,
                    col=item.start_mark.column + 1, end_line=_end_line(item), value=value))
        # A block item's end mark sits on the next item's "- ": it ends on the line before.
        for before, after in pairwise(outline.connectors):
            before.end_line = max(before.line, min(before.end_line, after.line - 1))
    pipelines = top.get("pipelines")
    if isinstance(pipelines, MappingNode):
        for key, node in pipelines.value:
            if isinstance(key, ScalarNode) and isinstance(node, MappingNode):
                name = str(key.value)
                outline.pipelines[name] = _pipeline(name, node, shapes)
    return outline


def _pipeline(name: str, node: MappingNode, shapes: Mapping[str, TypeShape]) -> PipelineOutline:
    base: YamlPath = ("pipelines", name)
    keys = _pairs(node)
    nodes: dict[str, StepNode] = {}
    steps = _step_list(keys.get("steps"), (*base, "steps"), "", None, "steps", shapes, nodes)
    compensation = _step_list(keys.get("compensation"), (*base, "compensation"), "compensation/",
                              None, "compensation", shapes, nodes)
    trigger = _plain(keys["trigger"]) if "trigger" in keys else {"type": "manual"}
    outline = PipelineOutline(name=name, path=base, line=node.start_mark.line + 1,
                              trigger=trigger if isinstance(trigger, dict) else {},
                              steps=steps, compensation=compensation, edges=[], nodes=nodes)
    outline.edges = list(_edges(outline, shapes))
    return outline


def _step_list(node: Node | None, path: YamlPath, prefix: str, parent: str | None, slot: str,
               shapes: Mapping[str, TypeShape], nodes: dict[str, StepNode],
               values: Any = None) -> list[StepNode]:
    if not isinstance(node, SequenceNode):
        return []
    values = values if isinstance(values, list) and len(values) == len(node.value) else None
    out = []
    for index, item in enumerate(node.value):
        if isinstance(item, MappingNode):
            out.append(_step(item, (*path, index), prefix, parent, slot, shapes, nodes, index,
                             values[index] if values is not None else None))
    return out


def _step(node: MappingNode, path: YamlPath, prefix: str, parent: str | None, slot: str,
          shapes: Mapping[str, TypeShape], nodes: dict[str, StepNode], index: int = 0,
          value: Any = None) -> StepNode:
    # Sub-steps reuse their slice of the parent's plain value instead of converting twice.
    value = _plain(node) if value is None else value
    value = value if isinstance(value, dict) else {}
    name = str(value.get("name") or f"#{index + 1}")
    step_id = _unique(f"{prefix}{name}", nodes)
    step = StepNode(id=step_id, name=name, type=str(value.get("type") or ""), path=path,
                    line=node.start_mark.line + 1, col=node.start_mark.column + 1,
                    end_line=_end_line(node), slot=slot, parent=parent, value=value)
    nodes[step_id] = step
    keys = _pairs(node)
    config = keys.get("config")
    shape = shapes.get(step.type)
    config_value = value.get("config")
    if shape is not None and isinstance(config, MappingNode) and isinstance(config_value, dict):
        config_keys = _pairs(config)
        for key, kind in shape.substep_keys.items():
            sub, sub_value = config_keys.get(key), config_value.get(key)
            sub_path: YamlPath = (*path, "config", key)
            if kind == "list":
                step.children += _step_list(sub, sub_path, f"{step_id}/", step_id, key, shapes, nodes,
                                            sub_value)
            elif kind == "single" and isinstance(sub, MappingNode):
                step.children.append(_step(sub, sub_path, f"{step_id}/", step_id, key, shapes, nodes,
                                           value=sub_value))
            elif kind == "map" and isinstance(sub, MappingNode) and isinstance(sub_value, dict):
                for arm_key, arm in sub.value:
                    arm_name = str(arm_key.value) if isinstance(arm_key, ScalarNode) else "?"
                    step.children += _step_list(arm, (*sub_path, arm_name), f"{step_id}/", step_id,
                                                f"{key}.{arm_name}", shapes, nodes, sub_value.get(arm_name))
    compensate = keys.get("compensate")
    if isinstance(compensate, MappingNode):
        step.compensate = _step(compensate, (*path, "compensate"), f"{step_id}/", step_id,
                                "compensate", shapes, nodes, value=value.get("compensate"))
    return step


def _edges(p: PipelineOutline, shapes: Mapping[str, TypeShape]) -> Iterable[Edge]:
    scopes: dict[str | None, dict[str, str]] = {}  # reachable names, per parent
    for siblings in _sibling_lists(p):
        for before, after in pairwise(siblings):
            yield Edge(before.id, after.id, "next")
    for node in p.nodes.values():
        if node.compensate is not None:
            yield Edge(node.id, node.compensate.id, "compensate", "compensate")
        for child in node.children:
            if child.slot.startswith("branches.") or child.slot == "default":
                first = next(c for c in node.children if c.slot == child.slot)
                if first is child:
                    label = child.slot.removeprefix("branches.")
                    yield Edge(node.id, child.id, "branch", label)
        shape = shapes.get(node.type)
        config = node.value.get("config")
        if shape is None or not shape.step_refs or not isinstance(config, dict):
            continue
        scope = scopes.get(node.parent)
        if scope is None:
            scope = scopes[node.parent] = scope_names(p, node)
        for ref in sorted(shape.step_refs):
            for _path, label, target in ref_values(config, ref):
                target_id = scope.get(target) if isinstance(target, str) else None
                if target_id is not None:
                    kind = "route" if ref.startswith(("routes", "default", "then", "else")) else "jump"
                    yield Edge(node.id, target_id, kind, label)


def _sibling_lists(p: PipelineOutline) -> Iterable[list[StepNode]]:
    yield p.steps
    yield p.compensation
    for node in p.nodes.values():
        slots: dict[str, list[StepNode]] = {}
        for child in node.children:
            slots.setdefault(child.slot, []).append(child)
        yield from slots.values()


def scope_names(p: PipelineOutline, node: StepNode) -> dict[str, str]:
    """Step names a reference in ``node`` can reach: its siblings' and the top level's (name -> id)."""
    siblings = p.steps if node.parent is None else p.nodes[node.parent].children
    scope = {s.name: s.id for s in p.steps}
    scope.update({s.name: s.id for s in siblings})
    return scope


def ref_values(config: Any, pattern: str) -> Iterator[tuple[tuple[str | int, ...], str, Any]]:
    """The values at a dotted ``step_refs`` pattern of a step's config, read as the engine
    reads them: (path below config, edge label, value); see ``engine.format.step_refs``."""
    for path, value in step_refs.find_paths(config, pattern):
        yield path, step_refs.label(pattern, path), value


def _pairs(node: MappingNode) -> dict[str, Node]:
    return {str(k.value): v for k, v in node.value if isinstance(k, ScalarNode)}


def _end_line(node: Node) -> int:
    # end_mark sits just past the node; a block mapping ends at the start of the next line.
    end = node.end_mark
    return end.line if end.column == 0 and end.line > node.start_mark.line else end.line + 1


def _unique(step_id: str, nodes: Mapping[str, StepNode]) -> str:
    if step_id not in nodes:
        return step_id
    n = 2
    while f"{step_id}~{n}" in nodes:
        n += 1
    return f"{step_id}~{n}"


def _plain(node: Node) -> Any:
    """Node -> plain data as the engine reads it (mapping keys are their source text)."""
    if isinstance(node, MappingNode):
        return {str(k.value) if isinstance(k, ScalarNode) else str(_plain(k)): _plain(v)
                for k, v in node.value}
    if isinstance(node, SequenceNode):
        return [_plain(v) for v in node.value]
    if isinstance(node, ScalarNode):
        return _scalar(node)
    return None


def _scalar(node: ScalarNode) -> Any:
    # Quoted and block scalars are strings; plain ones follow the engine's YAML 1.2 rules.
    return node.value if node.style else yaml12.plain_value(node.value)
