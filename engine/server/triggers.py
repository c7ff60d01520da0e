"""The route table of the loaded pipelines' ``http`` triggers.

A trigger's ``path`` may hold ``{name}`` segments (``/orders/{id}``), matched against one
path segment each. Where several triggers match a request, the one with the most literal
characters wins, then the one with fewer parameters. Paths under ``/api/`` and ``/docs``
belong to the server and are not served as triggers (a warning is logged).

The table is rebuilt when the set of loaded definitions changes (a file deployed or
reloaded), so it always serves what the service has loaded. A deployed file's triggers
answer its tenant's requests only (``LocalService.owner_of``); to anyone else the path does
not exist. Two tenants may declare the same path, each reaching its own pipeline.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from engine.config.model import Definition, PipelineDef, StepDef
from engine.service.local import LocalService
from engine.tenancy import current_tenant

log = logging.getLogger("wfstudio.server")

RESPONSE_TYPES = frozenset({"step.json_response", "step.raw_response"})
RESERVED = ("/api/", "/docs/")
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SUFFIX = re.compile(r"\[\d+\]|@\d+")  # loop iteration and attempt marks in a step path


@dataclass(frozen=True)
class TriggerRoute:
    method: str
    path: str  # as declared
    pattern: re.Pattern[str]
    pipeline: PipelineDef
    responds: bool  # has a response step: the reply waits for the run
    owner: str | None = None  # the tenant that deployed it; None: the server's own, for all

    def serves(self, tenant: str) -> bool:
        return self.owner is None or self.owner == tenant

    @property
    def specificity(self) -> tuple[int, int]:
        literal = len(_PARAM.sub("", self.path))
        return -literal, len(self.pattern.groupindex)


def normalize(path: str) -> str:
    return path.rstrip("/") or "/"


def compile_path(path: str) -> re.Pattern[str]:
    parts: list[str] = []
    last = 0
    for match in _PARAM.finditer(path):
        parts.append(re.escape(path[last:match.start()]))
        parts.append(f"(?P<{match.group(1)}>[^/]+)")
        last = match.end()
    parts.append(re.escape(path[last:]))
    return re.compile("".join(parts))


def _walk(steps: Iterable[StepDef]) -> Iterable[StepDef]:
    for step in steps:
        yield step
        for children in step.substeps.values():
            yield from _walk(children)


def responds(pipeline: PipelineDef) -> bool:
    return any(step.type in RESPONSE_TYPES for step in _walk(pipeline.steps))


def failing_step(pipeline: PipelineDef, path: str) -> StepDef | None:
    """The step a recorded step path (``each[2]/charge@2``…) names, if it still exists."""
    steps = pipeline.steps
    found: StepDef | None = None
    names = _SUFFIX.sub("", path).split("/")
    for depth, name in enumerate(names):
        found = next((s for s in steps if s.name == name), None)
        if found is None:
            return None
        if depth < len(names) - 1:
            steps = [child for children in found.substeps.values() for child in children]
    return found


def build_routes(definitions: Iterable[Definition],
                 owner_of: Callable[[Definition], str | None] = lambda _d: None) -> list[TriggerRoute]:
    routes: list[TriggerRoute] = []
    for definition in definitions:
        owner = owner_of(definition)
        for pipeline in definition.pipelines.values():
            trigger = pipeline.trigger
            if trigger.type != "http":
                continue
            method = str(trigger.config.get("method", "")).upper()
            path = normalize(str(trigger.config.get("path", "")))
            if path in ("/api", "/docs") or path.startswith(RESERVED):
                log.warning("pipeline %r: trigger path %s is reserved for the server's API; not "
                            "served", pipeline.name, path)
                continue
            try:
                pattern = compile_path(path)
            except re.error:  # e.g. a parameter named twice
                log.warning("pipeline %r: trigger path %s is not usable (a parameter named "
                            "twice?); not served", pipeline.name, path)
                continue
            routes.append(TriggerRoute(method, path, pattern, pipeline, responds(pipeline), owner))
    routes.sort(key=lambda r: r.specificity)
    return routes


class TriggerTable:
    def __init__(self, service: LocalService):
        self.service = service
        self._key: tuple[tuple[str, str, str | None], ...] | None = None
        self._routes: list[TriggerRoute] = []
        # (method, path) -> routes (one per tenant at most), for the paths without
        # parameters. Such a route beats any templated one on its path (it has more literal
        # characters), so a hit here is the answer the scan in match() would give.
        self._literal: dict[tuple[str, str], list[TriggerRoute]] = {}

    def routes(self) -> list[TriggerRoute]:
        owned = self.service.owned_definitions()  # one pass: this runs on every request
        key = tuple((d.path, d.hash, owner) for d, owner in owned)
        if key != self._key:
            owners = {id(d): owner for d, owner in owned}
            self._routes = build_routes([d for d, _ in owned], lambda d: owners[id(d)])
            literal: dict[tuple[str, str], list[TriggerRoute]] = {}
            for route in self._routes:  # most specific first: the first one listed wins
                if not route.pattern.groupindex:
                    literal.setdefault((route.method, route.path), []).append(route)
            self._literal = literal
            self._key = key
        return self._routes

    def match(self, method: str, path: str,
              tenant: str | None = None) -> tuple[TriggerRoute | None, dict[str, str], list[str]]:
        """(route, path params, methods allowed on the path when only the method differs),
        among the routes that serve ``tenant`` (default: the caller's)."""
        tenant = current_tenant.get() if tenant is None else tenant
        path = normalize(path)
        routes = self.routes()
        for exact in self._literal.get((method, path), ()):
            if exact.serves(tenant):
                return exact, {}, []
        allowed: list[str] = []
        for route in routes:
            if not route.serves(tenant):
                continue
            found = route.pattern.fullmatch(path)
            if found is None:
                continue
            if route.method == method:
                return route, found.groupdict(), []
            if route.method not in allowed:
                allowed.append(route.method)
        return None, {}, allowed
