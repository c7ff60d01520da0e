"""Info, definitions, step types and plugins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request

from engine.config.loader import ImportPolicy
from engine.server.auth import optional_key
from engine.server.bodies import Deployment, YamlText
from engine.server.deps import Service, needs
from engine.server.keys import check_tenant
from engine.service.errors import Forbidden, InvalidInput
from engine.service.models import (
    ConnectorTypeInfo,
    DefinitionText,
    DiagnosticInfo,
    PipelineInfo,
    PluginInfo,
    StepTypeInfo,
    VersionInfo,
)
from engine.tenancy import current_tenant

router = APIRouter()


@router.get("/health", tags=["info"], response_model=dict[str, Any])
async def health(request: Request, service: Service) -> dict[str, Any]:
    """No key needed. Anonymous callers learn only whether the server is up."""
    report = await service.health()
    if optional_key(request) is None:
        return {"ok": bool(report.get("ok"))}
    return report


@router.get("/version", tags=["info"], dependencies=needs("read"))
async def version(service: Service) -> VersionInfo:
    return await service.version()


@router.get("/pipelines", tags=["definitions"], dependencies=needs("read"))
async def list_pipelines(service: Service) -> list[PipelineInfo]:
    return await service.list_pipelines()


@router.get("/pipelines/{name}/definition", tags=["definitions"], dependencies=needs("read"))
async def get_definition(name: str, service: Service) -> DefinitionText:
    return await service.get_definition(name)


@router.post("/definitions/validate", tags=["definitions"], dependencies=needs("read"))
async def validate(body: YamlText, request: Request, service: Service) -> list[DiagnosticInfo]:
    """Diagnostics of a pipeline file's text (errors and warnings); nothing is loaded.

    Its imports are read only inside the server's definition roots (see ``import_policy``),
    relative to the caller's deploy folder (else the served files' folder). A check that
    takes longer than the server's load time limit is answered with 422.
    """
    return await service.validate(body.yaml, body.file, policy=import_policy(request, service))


def import_policy(request: Request, service: Service) -> ImportPolicy:
    """What a load on the server may read: the folders of the files the server was started
    with and the caller's tenant's deploy folder, nothing else (not another tenant's)."""
    deploy: Path | None = request.app.state.deploy_dir
    served = [Path(file).resolve().parent for file in service.loaded_files()]
    roots = [str(folder) for folder in dict.fromkeys(served)
             if deploy is None or not folder.is_relative_to(deploy)]
    base = roots[0] if roots else None
    if deploy is None:
        return ImportPolicy(roots=tuple(roots), base=base)
    mine = str(tenant_dir(deploy, current_tenant.get()))
    # A served folder may contain the deploy directory: other tenants' folders stay closed.
    return ImportPolicy(roots=(*roots, mine), base=mine, exclude=(str(deploy),))


@router.put("/definitions", tags=["definitions"], dependencies=needs("deploy"))
async def deploy(body: Deployment, request: Request, service: Service) -> DefinitionText:
    """Write a pipeline file into the caller's tenant's part of the server's deploy directory
    and (re)load it. Needs the ``deploy`` scope (``admin`` does not imply it).

    The file's pipelines belong to the deploying tenant: no other tenant lists, reads, runs
    or triggers them. Invalid text changes nothing (422 with the diagnostics). Refused (403)
    unless the server was started with a deploy directory.
    """
    root: Path | None = request.app.state.deploy_dir
    if root is None:
        raise Forbidden("this server does not accept deployments: start it with --deploy-dir")
    tenant = current_tenant.get()
    target = str(deploy_path(tenant_dir(root, tenant), body.file))
    service.set_owner(target, tenant)  # before it loads: never visible to others, even briefly
    return await service.put_definition(body.yaml, target, policy=import_policy(request, service))


def tenant_dir(root: Path, tenant: str) -> Path:
    """Where a tenant's deployments live: ``<deploy dir>/<tenant>/`` (tenant names are
    checked when keys are made: no separators, no '..')."""
    return root / check_tenant(tenant)


def deploy_path(root: Path, file: str) -> Path:
    """``file`` inside ``root``; anything that would land elsewhere is refused."""
    if "\x00" in file:
        raise InvalidInput("deploy file name contains a NUL character")
    relative = Path(file)
    if relative.is_absolute() or ".." in relative.parts or relative.suffix not in (".yaml", ".yml"):
        raise InvalidInput(f"deploy file {file!r} must be a relative .yaml/.yml path without '..'")
    target = (root / relative).resolve()
    if not target.is_relative_to(root.resolve()):
        raise InvalidInput(f"deploy file {file!r} leaves the deploy directory")
    return target


@router.get("/connector-types", tags=["definitions"], dependencies=needs("read"))
async def connector_types(service: Service) -> list[ConnectorTypeInfo]:
    """The source and sink types a file's ``connectors:`` may use, with their config schemas."""
    return await service.connector_types()


@router.get("/step-types", tags=["definitions"], dependencies=needs("read"))
async def step_types(service: Service) -> list[StepTypeInfo]:
    return await service.step_types()


@router.get("/plugins", tags=["info"], dependencies=needs("read"))
async def plugins(service: Service) -> list[PluginInfo]:
    return await service.installed_plugins()
