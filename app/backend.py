"""The service behind the studio and how a workspace's files reach it.

Every pane talks to ``backend.service`` (a :class:`StudioService`); which implementation
it is (the embedded engine or a remote server) is decided here and nowhere else. The one
thing that differs is how a saved file reaches the engine: the embedded service loads it
from disk, a remote server receives it through ``put_definition``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from engine.service.errors import ServiceError
from engine.service.models import ConnectorTypeInfo, DiagnosticInfo, StepTypeInfo, VersionInfo
from engine.service.protocol import StudioService

if TYPE_CHECKING:
    from engine.service.local import LocalService

PIPELINE_SUFFIXES = (".yaml", ".yml")


def pipeline_files(folder: Path) -> list[Path]:
    """Pipeline files of a workspace, hidden folders and files skipped."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / f for f in sorted(files)
                  if f.endswith(PIPELINE_SUFFIXES) and not f.startswith(".")]
    return found


class Backend(QObject):
    """The connected service, its version and step types, and file synchronisation."""

    diagnosticsChanged = Signal(str, list)  # (file, list[DiagnosticInfo])
    pipelinesChanged = Signal()

    def __init__(self, service: StudioService, label: str, parent: QObject | None = None, *,
                 owns_service: bool = True) -> None:
        super().__init__(parent)
        self.service = service
        self.label = label  # "Embedded" or a profile name
        self.owns_service = owns_service  # False when a ConnectionManager opened (and closes) it
        self.version: VersionInfo | None = None
        self.type_infos: list[StepTypeInfo] = []
        self.connector_infos: list[ConnectorTypeInfo] = []  # for the editor's connector forms

    @property
    def embedded(self) -> bool:
        # The embedded engine (SQLAlchemy, Alembic, ...) is imported when it is opened, not
        # when the window starts: a service can only be a LocalService once that happened.
        local = sys.modules.get("engine.service.local")
        return local is not None and isinstance(self.service, local.LocalService)

    def _local(self) -> LocalService:
        assert self.embedded
        return self.service  # type: ignore[return-value]

    @classmethod
    async def embedded_backend(cls, store: str | None = None) -> Backend:
        from engine.service.local import LocalService

        backend = cls(await LocalService.open(store=store), "Embedded")
        await backend.refresh_info()
        return backend

    async def refresh_info(self) -> None:
        self.version = await self.service.version()
        self.type_infos = await self.service.step_types()
        try:
            self.connector_infos = await self.service.connector_types()
        except ServiceError:  # a server from before connector types: connectors edit as YAML
            self.connector_infos = []

    async def close(self) -> None:
        if not self.owns_service:
            return
        close = getattr(self.service, "close", None) or getattr(self.service, "aclose", None)
        if close is not None:
            await close()

    async def validate(self, path: Path, text: str) -> list[DiagnosticInfo]:
        if self.embedded:
            diagnostics = await self.service.validate(text, str(path))
        else:  # a server takes a bare file name; our diagnostics name the local file again
            diagnostics = [d.model_copy(update={"file": str(path)}) if d.file == path.name else d
                           for d in await self.service.validate(text, path.name)]
        self.diagnosticsChanged.emit(str(path), diagnostics)
        return diagnostics

    async def sync_file(self, path: Path, text: str, *, deploy: bool = False) -> list[DiagnosticInfo]:
        """Validate a saved file and, when it is valid, (re)load it into the engine.

        The embedded engine always loads it. A remote server only validates it unless
        ``deploy`` (a run from the editor): saving a file never changes a shared server.
        Returns the diagnostics (errors mean the engine keeps the previous version). A clash
        with a pipeline of another file comes back as a diagnostic too.
        """
        diagnostics = await self.validate(path, text)
        if any(d.severity == "error" for d in diagnostics):
            return diagnostics
        if not self.embedded and not deploy:
            return diagnostics
        try:
            if self.embedded:
                await self._local().load_file(path)
            else:
                await self.service.put_definition(text, path.name)
        except ServiceError as exc:
            diagnostics = [*diagnostics, DiagnosticInfo(file=str(path), line=1, col=1, message=str(exc))]
            self.diagnosticsChanged.emit(str(path), diagnostics)
            return diagnostics
        self.pipelinesChanged.emit()
        return diagnostics

    async def forget_file(self, path: Path) -> None:
        """A file was deleted: the embedded engine stops serving its pipelines."""
        if self.embedded:
            await self._local().unload_file(path)
            self.pipelinesChanged.emit()
        self.diagnosticsChanged.emit(str(path), [])

    async def load_workspace(self, folder: Path) -> dict[str, list[DiagnosticInfo]]:
        """Validate every pipeline file of ``folder`` and load the valid ones."""
        problems: dict[str, list[DiagnosticInfo]] = {}
        for path in pipeline_files(folder):
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                problems[str(path)] = [DiagnosticInfo(file=str(path), line=1, col=1,
                                                      message=f"cannot read the file: {exc}")]
                self.diagnosticsChanged.emit(str(path), problems[str(path)])
                continue
            problems[str(path)] = await self.sync_file(path, text)
        return problems
