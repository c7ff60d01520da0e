"""Which schedules a loaded file has: one implicit source per enabled ``schedule`` trigger.

A pipeline ``P`` with ``trigger: {type: schedule, config: {...}}`` gets the source
``schedule:P`` of type ``source.schedule``, whose config is the trigger's config and whose
only route is ``P``. The source manager lists, starts and stops it like a declared
connector (``wfstudio serve`` starts it; the studio on demand). A schedule with
``enabled: false`` gets no source: it never fires.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from engine.config.model import Definition, PipelineDef
from engine.connectors.schedule import FIRED, TYPE, source_name


def schedule_connectors(definition: Definition) -> Iterator[dict[str, Any]]:
    """The implicit connectors of ``definition``'s enabled schedules."""
    for pipeline in definition.pipelines.values():
        trigger = pipeline.trigger
        if trigger.type == "schedule" and trigger.config.get("enabled", True) is not False:
            yield {"name": source_name(pipeline.name), "type": TYPE,
                   "config": dict(trigger.config)}


def schedules_pipeline(pipeline: PipelineDef, source: str) -> str | None:
    """The event type ``pipeline`` takes from ``source`` if that is its own schedule."""
    if pipeline.trigger.type == "schedule" and source == source_name(pipeline.name):
        return FIRED
    return None
