from __future__ import annotations

from app.editor.outline import parse_outline, type_shapes


def test_service_runs_on_the_qt_loop(qloop, service, type_infos):
    result = qloop.run_until_complete(service.run("score-users", {"users": [
        {"name": "ada", "orders": 2, "age": 30, "email": "a@x"}]}))
    assert result.status == "completed"
    assert result.output["ranking"] == ["ADA"]
    by_name = {t.name: t for t in type_infos}
    assert by_name["step.foreach"].substep_keys == {"steps": "list"}


def test_outline_uses_the_services_shapes(workspace, type_infos):
    shapes = type_shapes(type_infos)
    outline = parse_outline((workspace / "routing.yaml").read_text(), shapes)
    triage = outline.pipelines["triage"]
    kinds = {(e.source, e.target, e.kind, e.label) for e in triage.edges}
    assert ("route", "page-on-call", "route", "urgent") in kinds
    assert ("queue", "queue/billing-queue", "branch", "billing") in kinds
    assert ("queue", "reply", "jump", "merge_step") in kinds
    assert triage.node_at_line(triage.nodes["queue/billing-queue"].line).id == "queue/billing-queue"


def test_outline_reports_a_yaml_error_with_its_line():
    outline = parse_outline("pipelines:\n  p:\n    steps: [1\n")
    assert not outline.ok
    assert outline.error_line == 4
