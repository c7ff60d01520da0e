"""Contract: info, definitions, step types and plugins."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import __version__
from engine.service.errors import Conflict, InvalidInput, NotFound
from engine.service.protocol import StudioService

try:
    from tests.contract.contract_harness import PIPELINES, Workspace
except ImportError:
    from contract_harness import PIPELINES, Workspace  # type: ignore[no-redef]


async def test_version_and_health(service: StudioService, variant: str) -> None:
    info = await service.version()
    assert (info.engine_version, info.api_version) == (__version__, "1")
    assert info.backend == ("local" if variant == "local" else "remote")
    assert info.store.startswith("postgresql" if variant == "remote-postgres" else "sqlite")
    health = await service.health()
    assert health["ok"] is True and health["pipelines"] == 5


def file_name(variant: str, workspace: Workspace) -> str:
    """How the service names the served file: the studio by its path, a server relative to
    its folder (a server never shows where it keeps files)."""
    return str(workspace.file) if variant == "local" else workspace.file.name


async def test_pipelines_and_their_definition(service: StudioService, workspace: Workspace,
                                              variant: str) -> None:
    pipelines = await service.list_pipelines()
    assert [p.name for p in pipelines] == ["fragile", "greet", "order", "screen", "slow"]
    greet = pipelines[1]
    assert greet.description == "Say hello" and greet.file == file_name(variant, workspace)
    assert greet.steps == [{"name": "hello", "type": "step.set"},
                           {"name": "out", "type": "step.pipeline_output"}]
    definition = await service.get_definition("greet")
    assert definition.text == PIPELINES and definition.file == file_name(variant, workspace)
    assert definition.hash == greet.definition_hash
    assert sorted(definition.pipelines) == ["fragile", "greet", "order", "screen", "slow"]
    with pytest.raises(NotFound, match="no pipeline named 'nope'"):
        await service.get_definition("nope")


async def test_validate_reports_positions(service: StudioService) -> None:
    assert await service.validate(PIPELINES, "ok.yaml") == []
    bad = ("pipelines:\n"
           "  p:\n"
           "    steps:\n"
           "      - {name: a, type: step.nope}\n")
    [diagnostic] = await service.validate(bad, "bad.yaml")
    assert (diagnostic.file, diagnostic.line, diagnostic.severity) == ("bad.yaml", 4, "error")
    assert diagnostic.col > 1 and "step.nope" in diagnostic.message
    warned = await service.validate(PIPELINES + "deploy: {replicas: 2}\n", "w.yaml")
    assert [d.severity for d in warned] == ["warning"] and warned[0].line == PIPELINES.count("\n") + 1


async def test_step_types_carry_schema_and_category(service: StudioService) -> None:
    types = {t.name: t for t in await service.step_types()}
    assert {"step.set", "step.delay", "step.foreach", "step.dlq_send"} <= set(types)
    set_type = types["step.set"]
    assert set_type.category and set_type.description
    assert set_type.schema_["type"] == "object" and "values" in set_type.schema_["properties"]


async def test_connector_types_carry_kind_and_config_schema(service: StudioService) -> None:
    types = {t.name: t for t in await service.connector_types()}
    assert {"source.webhook", "sink.webhook", "source.redis_streams", "source.postgres_cdc",
            "source.sqs", "source.rabbitmq"} <= set(types)
    assert types["source.webhook"].kind == "source" and types["sink.webhook"].kind == "sink"
    webhook = types["source.webhook"]
    assert webhook.description and webhook.schema_["type"] == "object"
    assert "path" in webhook.schema_["properties"] and "secret" in webhook.secret_keys
    # every source takes the common settings the intake reads
    assert "max_deliveries" in types["source.redis_streams"].schema_["properties"]


async def test_put_definition_deploys_a_file(service: StudioService, workspace: Workspace,
                                            monkeypatch: pytest.MonkeyPatch, variant: str) -> None:
    # A relative file name: the server's deploy directory (the tenant's part of it), the
    # local service's working one.
    monkeypatch.chdir(workspace.root)
    text = ("pipelines:\n"
            "  added:\n"
            "    steps:\n"
            "      - {name: one, type: step.pipeline_output, config: {values: {n: 1}}}\n")
    target = "sub/added.yaml"
    deployed = await service.put_definition(text, target)
    assert deployed.pipelines == ["added"] and deployed.text == text
    if variant == "local":
        assert deployed.file.endswith(target) and Path(deployed.file).read_text() == text
    else:  # named as deployed, kept in the tenant's part of the deploy directory
        assert deployed.file == target
        assert (workspace.root / "default" / target).read_text() == text
    assert (await service.get_definition("added")).file == deployed.file
    assert next(p for p in await service.list_pipelines() if p.name == "added").file == deployed.file
    assert (await service.run("added", {})).output == {"n": 1}
    assert "added" in [p.name for p in await service.list_pipelines()]

    # Invalid text: the diagnostics come back as details; nothing changes.
    with pytest.raises(InvalidInput) as caught:
        await service.put_definition(text.replace("step.pipeline_output", "step.bogus"), target)
    [detail] = caught.value.details
    assert detail["line"] == 4 and "step.bogus" in detail["message"]
    assert detail["file"] == deployed.file  # on a server: no path of the server's
    assert (await service.get_definition("added")).hash == deployed.hash



async def test_a_deployment_that_clashes_is_refused_and_leaves_nothing(
        service: StudioService, workspace: Workspace, monkeypatch: pytest.MonkeyPatch,
        variant: str) -> None:
    monkeypatch.chdir(workspace.root)
    text = ("pipelines:\n"
            "  greet:\n"
            "    steps:\n"
            "      - {name: one, type: step.pipeline_output, config: {values: {n: 1}}}\n")
    with pytest.raises(Conflict, match="'greet'"):
        await service.put_definition(text, "other.yaml")
    assert (await service.get_definition("greet")).file == file_name(variant, workspace)
    # A refused file must not stay on disk: the next start would load it and fail.
    assert not (workspace.root / "other.yaml").exists()


async def test_installed_plugins(service: StudioService) -> None:
    plugins = await service.installed_plugins()
    groups = {(p.group, p.name) for p in plugins}
    assert {("wfstudio.steps", "builtin"), ("wfstudio.modules", "builtin")} <= groups
