"""Load a pipeline file with its imports into a ``Definition``, reporting every error at once.

    definition = load_file("orders.yaml", env={"DATA_DIR": "/tmp"}, environment="dev")

Errors raise ``ConfigError`` whose ``diagnostics`` list every problem as
``file:line:col: message``; warnings (unknown top-level keys ...) land in
``Definition.warnings``.

Imports (pipeline-format.md §1) are paths relative to the importing file. Files are merged
depth-first in pre-order (the file, then each import's tree in order) and the first
definition of a name wins: an importing file overrides what it imports, an earlier import
overrides a later one. That gives "modules and connectors concatenate, first definition of a
name wins" and "pipelines and schemas map-merge, the importing file wins" in one rule. A
file reached twice (diamond imports) is read once; a cycle is an error naming the chain.

Environments: ``environments: {dev: {variables: {DATA_DIR: /srv/dev}}}``. An environment is
a mapping whose ``variables`` map names to scalar values (an optional ``description`` is
allowed too). Environments from imports merge per variable, the importing file winning.
The active environment is the ``environment`` argument, else ``WFSTUDIO_ENV`` from ``env``.
``${NAME}`` in module and connector config is expanded from ``env`` (default ``os.environ``)
overlaid with the active environment's variables (the file's variables win). Naming an
environment that is not defined is an error when passed as ``environment`` and a warning
when it comes from ``WFSTUDIO_ENV`` (a shell-wide setting may predate the file).

``Definition.sources`` holds the exact text of the root and of every import, keyed by the
path used in diagnostics; ``Definition.hash`` is the sha256 of those (path, text) pairs in
sorted order. ``load_sources`` reloads such a snapshot without touching the disk.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.config import validate
from engine.config.builder import FileBuilder, FileModel
from engine.config.envvars import Substitutions
from engine.config.model import Definition
from engine.config.yamlpos import Parsed, diagnostic, parse_yaml, paused_gc
from engine.errors import ConfigError, Diagnostic
from engine.steps.base import Registry, default_registry

__all__ = ["ENV_VARIABLE", "LOCAL", "ImportPolicy", "load_file", "load_sources", "load_text",
           "validate_paths"]

ENV_VARIABLE = "WFSTUDIO_ENV"
TEXT_PATH = "<text>"
_MAX_IMPORT_DEPTH = 64
_ENVIRONMENT_KEYS = ("variables", "description")


class _Unreadable(Exception):
    def __init__(self, message: str, line: int = 1, col: int = 1) -> None:
        super().__init__(message)
        self.message, self.line, self.col = message, line, col


MAX_FILE_BYTES = 10_000_000  # no real pipeline file comes close; bounds memory and parse time


@dataclass(frozen=True)
class ImportPolicy:
    """Which files a load may read (the root file given by path, and every import).

    ``roots``: None reads anywhere (the studio and the CLI: imports are relative to the
    importing file, as the user wrote them); otherwise only files whose real path (symlinks
    resolved) lies inside one of these folders: the hosted server passes the folders of
    the files it serves and its deploy directory, so a caller cannot make it read
    ``/etc/passwd``. Refusals never say whether an outside file exists.
    ``base``: the folder relative display paths are read from (None: the working
    directory). The server names a validated text ``orders.yaml`` but reads its imports
    from the deploy directory, without showing that path in diagnostics.
    ``exclude``: folders not read even when a root contains them, except through a root
    inside them (the server's deploy directory, when a served folder contains it: only the
    caller's own tenant folder in it is readable).
    ``max_bytes``: larger files are refused before they are read. Everywhere, only regular
    files are read: a FIFO or a device (``/dev/zero``) is refused instead of hanging or
    exhausting memory.
    """

    roots: tuple[str, ...] | None = None
    base: str | None = None
    max_bytes: int = MAX_FILE_BYTES
    exclude: tuple[str, ...] = ()  # never read, even inside a root, except through a root inside

    def allows(self, real: str) -> bool:
        """Inside a root, and not inside an excluded folder unless through a root in it."""
        roots = [root for root in self.roots or () if _inside(real, root)]
        return bool(roots) and not any(
            _inside(real, fence) and not any(_inside(root, fence) for root in roots)
            for fence in self.exclude)

    def disk_path(self, path: str) -> str:
        return os.path.join(self.base, path) if self.base is not None else path

    def identity(self, path: str) -> str:
        """The file a path names (for diamond and cycle detection)."""
        return os.path.realpath(self.disk_path(path))

    def read(self, path: str) -> str:
        """The UTF-8 text of ``path``, or ``_Unreadable`` saying why not."""
        disk = self.disk_path(path)
        if self.roots is not None:
            # The checked path is the one opened: symlinks and '..' resolved once, here.
            disk = os.path.realpath(disk)
            if not self.allows(disk):
                raise _Unreadable("outside the folders this server reads pipeline files from "
                                  "(imports must stay in the folder of the served files or in "
                                  "the deploy directory)")
        return _decode(_read_regular(disk, self.max_bytes))


LOCAL = ImportPolicy()


def _inside(path: str, root: str) -> bool:
    root = os.path.realpath(root)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _read_regular(path: str, max_bytes: int) -> bytes:
    """Read a regular file of at most ``max_bytes``; never blocks on a FIFO or a device."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below anyway.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise _Unreadable("file not found") from None
    except IsADirectoryError:
        raise _Unreadable("is a directory, not a pipeline file") from None
    except OSError as exc:
        raise _Unreadable(exc.strerror or str(exc)) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise _Unreadable("is a directory, not a pipeline file")
        if not stat.S_ISREG(info.st_mode):
            raise _Unreadable("not a regular file (a pipe, socket or device cannot be a "
                              "pipeline file)")
        if info.st_size > max_bytes:
            raise _Unreadable(f"the file is too large ({info.st_size:,} bytes; the limit is "
                              f"{max_bytes:,}): split it into files that import each other")
        chunks = []
        size = 0
        while size <= max_bytes:  # the file may grow while it is read
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:
            raise _Unreadable(f"the file is too large (more than {max_bytes:,} bytes): split it "
                              "into files that import each other")
        return b"".join(chunks)
    except OSError as exc:
        raise _Unreadable(exc.strerror or str(exc)) from None
    finally:
        os.close(fd)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        col = len(before[before.rfind(b"\n") + 1:].decode("utf-8", "replace")) + 1
        raise _Unreadable(f"the file is not UTF-8 text (invalid byte 0x{data[exc.start]:02x}); "
                          "save it as UTF-8", line, col) from None


@dataclass
class _File:
    path: str
    text: str
    parsed: Parsed
    imports: list[str] = field(default_factory=list)  # display paths of loaded imports


def load_file(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None,
              environment: str | None = None, registry: Registry | None = None,
              policy: ImportPolicy = LOCAL) -> Definition:
    """Load ``path`` and its imports; raise ``ConfigError`` listing every error."""
    path = os.fspath(path)
    try:
        text = policy.read(path)
    except _Unreadable as exc:
        raise ConfigError([Diagnostic(path, exc.line, exc.col,
                                      f"cannot read {path}: {exc.message}")]) from None
    return _Session(policy.read, policy.identity, env, environment, registry).load(path, text)


def load_text(text: str, path: str = TEXT_PATH, *, env: Mapping[str, str] | None = None,
              environment: str | None = None, registry: Registry | None = None,
              policy: ImportPolicy = LOCAL) -> Definition:
    """Load YAML text; ``path`` names it in diagnostics and anchors relative imports."""
    def identity(name: str) -> str:
        return name if name == TEXT_PATH else policy.identity(name)

    return _Session(policy.read, identity, env, environment, registry).load(path, text)


def load_sources(sources: Mapping[str, str], root: str, *, env: Mapping[str, str] | None = None,
                 environment: str | None = None, registry: Registry | None = None) -> Definition:
    """Reload a snapshot (``Definition.sources``); imports resolve inside ``sources`` only."""
    def read(path: str) -> str:
        if path not in sources:
            raise _Unreadable("not part of the stored definition snapshot")
        return sources[path]

    if root not in sources:
        raise ConfigError([Diagnostic(root, 1, 1, "the snapshot does not contain its root file")])
    return _Session(read, os.path.normpath, env, environment, registry).load(root, sources[root])


def validate_paths(paths: Iterable[str], *, registry: Registry | None = None,
                   env: Mapping[str, str] | None = None,
                   environment: str | None = None) -> list[Diagnostic]:
    """Load each file in ``paths``; return all errors and warnings. Never raises for bad input."""
    found: list[Diagnostic] = []
    for path in paths:
        try:
            definition = load_file(path, env=env, environment=environment, registry=registry)
        except ConfigError as exc:
            found.extend(exc.diagnostics)
        else:
            found.extend(definition.warnings)
    return found


class _Session:
    """One load: every file read, parsed, built and merged, with one list of diagnostics."""

    def __init__(self, read: Callable[[str], str], identity: Callable[[str], str],
                 env: Mapping[str, str] | None, environment: str | None,
                 registry: Registry | None) -> None:
        self.read = read
        self.identity = identity
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.environment = environment
        self.registry = registry if registry is not None else default_registry()
        self.files: dict[str, _File] = {}
        self.by_identity: dict[str, str] = {}
        self.out: list[Diagnostic] = []

    def load(self, root: str, text: str) -> Definition:
        with paused_gc():  # see yamlpos.paused_gc: big files were superlinear without it
            return self._load(root, text)

    def _load(self, root: str, text: str) -> Definition:
        self.add(root, text, [])
        order = self.preorder(root)
        environments, values = self.environments(order)
        variables = Substitutions(values)  # notes what ${VAR} put in, for engine.scrub
        models: dict[str, FileModel] = {}
        for path in order:
            file = self.files[path]
            if file.parsed.value is None and file.parsed.diagnostics:
                continue  # a syntax error; nothing to build
            builder = FileBuilder(file.parsed.positions, self.registry, variables, self.out)
            models[path] = builder.build(file.parsed.value)
        definition = self.merge(root, order, models)
        definition.environments = environments
        definition.substituted = variables.used
        self.check_references(order, models, definition)
        self.unused_sources(definition, models)
        if root in models and not definition.pipelines:
            self.no_pipelines(root)
        definition.sources = {path: self.files[path].text for path in order}
        digest = hashlib.sha256()
        for path, source in sorted(definition.sources.items()):
            digest.update(path.encode("utf-8", "surrogatepass") + b"\0")
            digest.update(source.encode("utf-8", "surrogatepass") + b"\0")
        definition.hash = digest.hexdigest()
        rank = {path: i for i, path in enumerate(self.files)}
        found = sorted(self.out, key=lambda d: (rank.get(d.file, len(rank)), d.line, d.col))
        if any(d.severity == "error" for d in found):
            raise ConfigError(found)
        definition.warnings = found
        return definition

    # ------------------------------------------------------------ reading and imports

    def add(self, path: str, text: str, stack: list[tuple[str, str]]) -> None:
        parsed = parse_yaml(text, path)
        self.out.extend(parsed.diagnostics)
        file = _File(path, text, parsed)
        self.files[path] = file
        own = self.identity(path)
        self.by_identity.setdefault(own, path)
        doc = parsed.value
        if not isinstance(doc, dict) or doc.get("imports") is None:
            return
        imports = doc["imports"]
        positions = parsed.positions
        if not isinstance(imports, list):
            self.out.append(diagnostic(positions.at(("imports",)), "'imports' must be a list of "
                                       "paths, e.g. 'imports: [shared/common.yaml]'"))
            return
        chain = [*stack, (own, path)]
        for i, name in enumerate(imports):
            at = positions.at(("imports", i))
            if not isinstance(name, str) or not name.strip():
                self.out.append(diagnostic(at, f"an import must be a file path, got "
                                           f"{validate.short(name)}"))
                continue
            base = "" if path == TEXT_PATH else os.path.dirname(path)
            target = os.path.normpath(os.path.join(base, name))
            target_id = self.identity(target)
            if any(ident == target_id for ident, _ in chain):
                names = [shown for _, shown in chain]
                start = next(i for i, (ident, _) in enumerate(chain) if ident == target_id)
                cycle = " -> ".join([*names[start:], target])
                self.out.append(diagnostic(at, f"import cycle: {cycle}; remove one of these "
                                           "imports"))
                continue
            if target_id in self.by_identity:  # already loaded through another import
                file.imports.append(self.by_identity[target_id])
                continue
            if len(chain) >= _MAX_IMPORT_DEPTH:
                self.out.append(diagnostic(at, f"imports are nested more than "
                                           f"{_MAX_IMPORT_DEPTH} levels deep"))
                continue
            try:
                source = self.read(target)
            except _Unreadable as exc:
                self.out.append(diagnostic(at, f"cannot import {name!r} (resolved to {target}): "
                                           f"{exc.message}"))
                continue
            self.add(target, source, chain)
            file.imports.append(target)

    def preorder(self, root: str) -> list[str]:
        order: list[str] = []
        seen: set[str] = set()

        def visit(path: str) -> None:
            if path in seen:
                return
            seen.add(path)
            order.append(path)
            for child in self.files[path].imports:
                visit(child)

        visit(root)
        return order

    # ------------------------------------------------------------ environments

    def environments(self, order: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
        merged: dict[str, dict[str, Any]] = {}
        for path in order:
            parsed = self.files[path].parsed
            doc = parsed.value
            if not isinstance(doc, dict) or doc.get("environments") is None:
                continue
            raw = doc["environments"]
            positions = parsed.positions
            if not isinstance(raw, dict):
                self.out.append(diagnostic(positions.at(("environments",)), "'environments' must "
                                           "map names to {variables: {NAME: value}}"))
                continue
            for name, spec in raw.items():
                at = ("environments", name)
                if not isinstance(spec, dict):
                    self.out.append(diagnostic(positions.at(at), f"environment {name!r} must be a "
                                               "mapping like {variables: {NAME: value}}"))
                    continue
                for key in spec:
                    if key not in _ENVIRONMENT_KEYS:
                        self.out.append(diagnostic(
                            positions.key((*at, key)),
                            f"unknown environment key {key!r} is ignored"
                            f"{validate.suggest(key, _ENVIRONMENT_KEYS, known=True)}",
                            "warning"))
                target = merged.setdefault(name, {"variables": {}})
                if "description" in spec:
                    target.setdefault("description", spec["description"])
                variables = spec.get("variables")
                if variables is None:
                    continue
                if not isinstance(variables, dict):
                    self.out.append(diagnostic(positions.at((*at, "variables")),
                                               f"environment {name!r}: 'variables' must map "
                                               "names to values"))
                    continue
                for var, value in variables.items():
                    if isinstance(value, dict | list):
                        self.out.append(diagnostic(positions.at((*at, "variables", var)),
                                                   f"environment variable {var!r} must be a "
                                                   "single value, not a list or mapping"))
                        continue
                    text = _env_text(value, positions.raw.get((*at, "variables", var)))
                    target["variables"].setdefault(var, text)
        active = self.environment
        explicit = active is not None
        if active is None:
            active = self.env.get(ENV_VARIABLE) or None
        variables = dict(self.env)
        if active is not None:
            if active in merged:
                variables.update(merged[active]["variables"])
            else:
                source = "" if explicit else f" (from {ENV_VARIABLE})"
                defined = ", ".join(sorted(merged)) or "none"
                root = next(iter(self.files))
                self.out.append(Diagnostic(root, 1, 1, f"environment {active!r}{source} is not "
                                           f"defined in 'environments' (defined: {defined})",
                                           "error" if explicit else "warning"))
        return dict(merged), variables

    # ------------------------------------------------------------ merging and references

    def merge(self, root: str, order: list[str], models: dict[str, FileModel]) -> Definition:
        definition = Definition(path=root)
        if root in models:
            top = models[root]
            definition.name, definition.version = top.name, top.version
            definition.description = top.description
        connector_names: set[str] = set()
        for path in order:
            model = models.get(path)
            if model is None:
                continue
            for module in model.modules:
                definition.modules.setdefault(module.name, module)
            for connector in model.connectors:
                if connector["name"] not in connector_names:
                    connector_names.add(connector["name"])
                    definition.connectors.append(connector)
            for name, pipeline in model.pipelines.items():
                definition.pipelines.setdefault(name, pipeline)
            for name, schema in model.schemas.items():
                definition.schemas.setdefault(name, schema)
        return definition

    def check_references(self, order: list[str], models: dict[str, FileModel],
                         definition: Definition) -> None:
        for path in order:
            model = models.get(path)
            if model is None:
                continue
            for ref in model.refs:
                names = self._names(ref.kind, definition)
                if ref.name in names:
                    continue
                hint = validate.suggest(ref.name, names)
                if not hint:
                    section = ("connectors:' with a " + ref.kind + ".* type"
                               if ref.kind in ("source", "sink") else ref.kind + "s:'")
                    hint = (f"; define it under '{section}" if not names
                            else f" (defined: {', '.join(sorted(names))})")
                self.out.append(diagnostic(ref.pos, f"{ref.owner}: no {ref.kind} named "
                                           f"{ref.name!r}{hint}"))

    def _names(self, kind: str, definition: Definition) -> Collection[str]:
        if kind == "module":
            return definition.modules
        if kind == "pipeline":
            return definition.pipelines
        # "source" / "sink": connectors of that kind of type
        kinds = self.registry.sources if kind == "source" else self.registry.sinks
        return {c["name"] for c in definition.connectors if c.get("type") in kinds}

    def unused_sources(self, definition: Definition, models: dict[str, FileModel]) -> None:
        """A source connector no pipeline's event trigger names never runs: say so."""
        taken = {p.trigger.config.get("connector") for p in definition.pipelines.values()
                 if p.trigger.type == "event"}
        for model in models.values():
            for connector in model.connectors:
                if connector.get("type") in self.registry.sources \
                        and connector["name"] not in taken:
                    pos = model.connector_pos[connector["name"]]
                    self.out.append(diagnostic(pos, f"source {connector['name']!r} is not "
                                               "used: no pipeline's event trigger names it, so "
                                               "it will not run", severity="warning"))

    def no_pipelines(self, root: str) -> None:
        parsed = self.files[root].parsed
        doc = parsed.value
        if not isinstance(doc, dict):
            return  # the builder already said what the file should look like
        if "pipelines" not in doc:
            self.out.append(Diagnostic(root, 1, 1, "the file defines no pipelines: add a "
                                       "'pipelines:' mapping with at least one pipeline"))
        elif not doc["pipelines"]:
            self.out.append(diagnostic(parsed.positions.at(("pipelines",)),
                                       "'pipelines' is empty: define at least one pipeline"))


def _env_text(value: Any, raw: str | None) -> str:
    """An environment variable's value as text (numbers keep their source spelling)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return raw if raw is not None else str(value)
