"""The rules of steps in a pipeline file, on the round-trip tree: finding a step, names unique in
their pipeline, and what else changes when a step is renamed (the config values that name it at
its types' ``step_refs`` and the templates that read its output). Qt-free.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from ruamel.yaml.comments import CommentedMap

from app.editor import yaml_edit
from app.editor.outline import PipelineOutline, StepNode, TypeShape, YamlPath, scope_names
from engine.format.step_refs import find_paths


class EditError(Exception):
    """A structural edit cannot be made; the message says what to do. Nothing was changed."""


def path_text(path: YamlPath) -> str:
    """``pipelines.x.steps[2].config`` for a message."""
    return ".".join(f"[{k}]" if isinstance(k, int) else str(k) for k in path).replace(".[", "[")


def step_at(tree: CommentedMap, path: YamlPath) -> CommentedMap:
    """The step (a mapping in a list) at ``path``, or EditError."""
    try:
        node = yaml_edit.walk(tree, path)
    except (KeyError, IndexError, TypeError) as exc:
        raise EditError(f"there is no step at {path_text(path)} any more") from exc
    if not isinstance(node, CommentedMap) or not path or not isinstance(path[-1], int):
        raise EditError(f"{path_text(path)} is not a step")
    return node


def step_name_at(tree: CommentedMap, path: YamlPath) -> str:
    return str(step_at(tree, path).get("name", ""))


def step_names(tree: CommentedMap, list_path: YamlPath) -> set[str]:
    """Every step name in the pipeline holding ``list_path`` (from the tree, sub-steps too)."""
    root = yaml_edit.get(tree, list_path[:2]) if len(list_path) >= 2 and list_path[0] == "pipelines" else None
    names: set[str] = set()
    for value in _walk_maps(root if root is not None else yaml_edit.get(tree, list_path)):
        name = value.get("name")
        if isinstance(name, str) and "type" in value:
            names.add(name)
    return names


def default_name(step: Mapping[str, Any]) -> str:
    """A name from the step's type (``http.request`` -> ``request``)."""
    kind = str(step.get("type") or "step")
    return re.sub(r"[^A-Za-z0-9_-]+", "-", kind.rsplit(".", 1)[-1]).strip("-") or "step"


def unique_name(base: str, names: set[str]) -> str:
    """``base``, or ``base-2``, ``base-3``, ... (a number already at its end is replaced)."""
    if base not in names:
        return base
    stem = re.sub(r"-\d+$", "", base) or base
    n = 2
    while f"{stem}-{n}" in names:
        n += 1
    return f"{stem}-{n}"


def node_by_path(pipeline: PipelineOutline, path: YamlPath) -> StepNode | None:
    return next((n for n in pipeline.nodes.values() if n.path == path), None)


def reference_changes(tree: CommentedMap, shapes: Mapping[str, TypeShape], pipeline: PipelineOutline,
                      target: StepNode, old: str, new: str) -> dict[YamlPath, Any]:
    """What renaming ``target`` from ``old`` to ``new`` changes besides its name: config values
    naming it (at the types' step_refs, where the name reaches it) and templates reading its output."""
    changes: dict[YamlPath, Any] = {}
    for node in pipeline.nodes.values():
        shape = shapes.get(node.type)
        if shape is None or not shape.step_refs:
            continue
        if scope_names(pipeline, node).get(old) != target.id:
            continue
        config = yaml_edit.get(tree, (*node.path, "config"))
        for pattern in sorted(shape.step_refs):
            for rel, value in find_paths(config, pattern):
                if value == old:
                    changes[(*node.path, "config", *rel)] = new
    pattern = re.compile(r"(\.steps\.)" + re.escape(old) + r"(?![\w-])|(\.steps\[\s*)([\"'])"
                         + re.escape(old) + r"\3(\s*\])")

    ident = re.compile(r"[A-Za-z_]\w*")
    dotted = ident.fullmatch(new) is not None or ident.fullmatch(old) is None

    def fix(match: re.Match[str]) -> str:
        if match.group(1):  # .steps.old -> .steps.new (or .steps["new"] when that would not read)
            return f".steps.{new}" if dotted else f'.steps["{new}"]'
        return f"{match.group(2)}{match.group(3)}{new}{match.group(3)}{match.group(4)}"

    base = pipeline.path
    for rel, value in _strings(yaml_edit.get(tree, base), ()):
        if ".steps" in value and old in value:
            fixed = pattern.sub(fix, value)
            if fixed != value:
                changes[(*base, *rel)] = fixed
    return changes


def _walk_maps(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _walk_maps(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk_maps(item)


def _strings(value: Any, at: YamlPath) -> Iterator[tuple[YamlPath, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*at, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, (*at, i))
    elif isinstance(value, str):
        yield at, value
