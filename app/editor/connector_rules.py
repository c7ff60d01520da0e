"""What the editor knows about a file's ``connectors:`` without widgets.

The kind of a connector (source or sink) comes from the service's ``connector_types()``;
a type the service does not list is "unknown". References to a connector are an event
trigger's ``config.connector`` (a source) and ``step.emit``'s ``config.connector`` (a
sink); step types do not declare connector keys, so the one built-in that has one is named
here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from app.editor.document import PipelineDocument
from app.editor.outline import ConnectorNode, Outline, YamlPath
from app.editor.step_rules import unique_name
from app.editor.yaml_edit import to_node, walk
from engine.service.models import ConnectorTypeInfo

SOURCE, SINK, UNKNOWN = "source", "sink", "unknown"
# step type -> config key naming a connector of the file, and the kind it must be
STEP_CONNECTOR_KEYS: dict[str, tuple[str, str]] = {"step.emit": ("connector", SINK)}


def kind_of(type_name: str, infos: dict[str, ConnectorTypeInfo]) -> str:
    """"source", "sink" or "unknown" (types the service does not list)."""
    info = infos.get(type_name)
    if info is not None:
        return info.kind
    if not infos and type_name.startswith(("source.", "sink.")):
        return type_name.split(".", 1)[0]  # the service has not answered yet: trust the prefix
    return UNKNOWN


def names_of_kind(outline: Outline, kind: str, infos: dict[str, ConnectorTypeInfo]) -> list[str]:
    """Declared connector names of ``kind``, in file order."""
    return list(dict.fromkeys(c.name for c in outline.connectors
                              if c.name and kind_of(c.type, infos) == kind))


def find(outline: Outline, name: str) -> ConnectorNode | None:
    return next((c for c in outline.connectors if c.name == name), None)


def connector_at_line(outline: Outline, line: int) -> ConnectorNode | None:
    return next((c for c in outline.connectors if c.line <= line <= c.end_line), None)


def references(outline: Outline, name: str) -> Iterator[YamlPath]:
    """YAML paths of the values naming connector ``name`` (triggers and step.emit steps)."""
    for pipeline in outline.pipelines.values():
        trigger = pipeline.trigger
        config = trigger.get("config")
        if trigger.get("type") == "event" and isinstance(config, dict) and config.get("connector") == name:
            yield (*pipeline.path, "trigger", "config", "connector")
        for node in pipeline.nodes.values():
            spec = STEP_CONNECTOR_KEYS.get(node.type)
            step_config = node.value.get("config")
            if spec is not None and isinstance(step_config, dict) and step_config.get(spec[0]) == name:
                yield (*node.path, "config", spec[0])


def rename(document: PipelineDocument, outline: Outline, node: ConnectorNode, new: str) -> None:
    """Rename a connector and every reference to it: one undo command."""
    targets = [(*node.path, "name"), *references(outline, node.name)]

    def change(tree: Any) -> None:
        for path in targets:
            walk(tree, path[:-1])[path[-1]] = new

    document.edit(f"Rename connector {node.name} to {new}", change)


def add(document: PipelineDocument, outline: Outline, info: ConnectorTypeInfo) -> str:
    """Append a connector of type ``info`` (its example as config); returns its unique name."""
    taken = {c.name for c in outline.connectors}
    base = info.name.split(".", 1)[-1].replace("_", "-") or "connector"
    name = unique_name(base, taken)
    entry: dict[str, Any] = {"name": name, "type": info.name, "config": dict(info.example or {})}
    if outline.connectors:
        document.insert_step(("connectors",), len(outline.connectors), entry)
    else:
        # A new list goes before `pipelines:` (where files declare it), not after the last key.
        def change(tree: Any) -> None:
            keys = list(tree)
            position = keys.index("pipelines") if "pipelines" in keys else len(keys)
            if "connectors" in tree:
                del tree["connectors"]  # null or an empty []: replaced by the list
                keys.remove("connectors")
                position = keys.index("pipelines") if "pipelines" in keys else len(keys)
            tree.insert(position, "connectors", to_node([entry]))

        document.edit(f"Add connector {name}", change)
        return name
    _describe_last(document, f"Add connector {name}")
    return name


def delete(document: PipelineDocument, outline: Outline, node: ConnectorNode) -> None:
    """Remove a connector (the whole ``connectors:`` key with the last one)."""
    if len(outline.connectors) == 1 and node.path == outline.connectors[0].path:
        document.delete_value(("connectors",))
    else:
        document.delete_value(node.path)
    _describe_last(document, f"Delete connector {node.name or node.path[-1]}")


def _describe_last(document: PipelineDocument, text: str) -> None:
    # The document names list edits after steps; the Edit menu should say what happened.
    stack = document.undo_stack
    command = stack.command(stack.index() - 1) if stack.index() > 0 else None
    if command is not None:
        command.setText(text)


def grouped(infos: Iterable[ConnectorTypeInfo]) -> list[tuple[str, list[ConnectorTypeInfo]]]:
    """Types by kind for menus and combos: ("Sources", [...]), ("Sinks", [...])."""
    items = sorted(infos, key=lambda i: i.name)
    return [("Sources", [i for i in items if i.kind == SOURCE]),
            ("Sinks", [i for i in items if i.kind == SINK])]
