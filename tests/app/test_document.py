"""PipelineDocument: one undo stack for typing and structural edits, minimal-diff round trips, saving."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import pytest

from app.editor import yaml_edit
from app.editor.document import EditError, PipelineDocument

STEPS = ("pipelines", "triage", "steps")


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    """(removed lines, added lines) of a line diff."""
    removed, added = [], []
    for line in difflib.ndiff(before.splitlines(), after.splitlines()):
        if line.startswith("- "):
            removed.append(line[2:])
        elif line.startswith("+ "):
            added.append(line[2:])
    return removed, added


def flow_braces(line: str) -> int:
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', line).count("{")


def comments(text: str) -> list[str]:
    return [line.split("#", 1)[1] for line in text.splitlines() if line.lstrip().startswith("#")]


@pytest.fixture
def routing(qapp, workspace: Path) -> PipelineDocument:  # type: ignore[no-untyped-def]
    return PipelineDocument.load(workspace / "routing.yaml")


def undo_all(doc: PipelineDocument) -> None:
    while doc.undo_stack.canUndo():
        doc.undo_stack.undo()


# ---------------------------------------------------------------- typing and undo


def test_typing_merges_into_one_command_and_breaks_at_newline(qapp) -> None:  # type: ignore[no-untyped-def]
    doc = PipelineDocument("name: x\n")
    changes: list[tuple[int, int, str]] = []
    doc.textChanged.connect(lambda p, r, i: changes.append((p, r, i)))
    for i, ch in enumerate("yz"):
        doc.replace(7 + i, 0, ch, typing=True)
    assert doc.text == "name: xyz\n"
    assert doc.undo_stack.count() == 1
    doc.replace(9, 0, "\n", typing=True)  # a new line is its own command
    doc.replace(10, 0, "a", typing=True)
    doc.replace(11, 0, "b", typing=True)
    assert doc.undo_stack.count() == 3
    doc.replace(11, 1, "", typing=True)  # backspace runs merge too
    doc.replace(10, 1, "", typing=True)
    assert doc.text == "name: xyz\n\n"
    assert doc.undo_stack.count() == 4
    doc.undo_stack.undo()
    assert doc.text == "name: xyz\nab\n"
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    assert doc.text == "name: x\n"
    assert not doc.is_modified()
    doc.undo_stack.redo()
    assert doc.text == "name: xyz\n"
    assert changes[-1] == (7, 0, "yz")  # undo/redo report their changes too


def test_modified_follows_the_clean_state(qapp, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = PipelineDocument("a: 1\n", tmp_path / "f.yaml")
    seen: list[bool] = []
    doc.modifiedChanged.connect(seen.append)
    doc.replace(3, 1, "2", typing=True)
    assert doc.is_modified() and seen == [True]
    doc.save()
    assert not doc.is_modified() and seen == [True, False]
    doc.replace(3, 1, "3", typing=True)  # no merge into the saved state
    assert doc.undo_stack.count() == 2
    doc.undo_stack.undo()
    assert not doc.is_modified()


def test_outline_is_debounced_after_typing_and_immediate_after_undo(qapp, qtbot) -> None:  # type: ignore[no-untyped-def]
    doc = PipelineDocument("pipelines:\n  p:\n    steps:\n      - {name: a, type: step.set}\n")
    assert list(doc.outline.pipelines["p"].nodes) == ["a"]
    doc.replace(doc.text.index("a,"), 1, "b", typing=True)
    assert list(doc.outline.pipelines["p"].nodes) == ["a"]  # not re-read on the keystroke
    with qtbot.waitSignal(doc.outlineChanged, timeout=2000):
        pass
    assert list(doc.outline.pipelines["p"].nodes) == ["b"]
    doc.undo_stack.undo()
    assert list(doc.outline.pipelines["p"].nodes) == ["a"]


def test_typing_never_loads_the_round_trip_tree(qapp, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    loads: list[str] = []
    real = yaml_edit.load_tree
    monkeypatch.setattr(yaml_edit, "load_tree", lambda ry, text: loads.append(text) or real(ry, text))
    doc = PipelineDocument("pipelines:\n  p:\n    steps: []\n")
    doc.replace(0, 0, "# hi\n", typing=True)
    doc.flush_outline()
    doc.undo_stack.undo()
    assert loads == []
    assert doc.outline.ok and doc.last_good.pipelines


def test_a_broken_text_keeps_the_last_good_outline(qapp) -> None:  # type: ignore[no-untyped-def]
    doc = PipelineDocument("pipelines:\n  p:\n    steps: []\n")
    doc.replace(len(doc.text), 0, "  q: [\n", typing=True)
    doc.flush_outline()
    assert not doc.outline.ok and "p" in doc.last_good.pipelines


# ---------------------------------------------------------------- step operations


def test_insert_step_makes_the_name_unique_and_undoes(routing: PipelineDocument) -> None:
    before = routing.text
    path = routing.insert_step(STEPS, 2, {"name": "notify", "type": "step.log",
                                          "config": {"message": "{{ .id }}"}})
    assert path == (*STEPS, 2)
    assert routing.value_at((*path, "name")) == "notify-2"
    assert routing.value_at((*path, "config", "message")) == "{{ .id }}"
    removed, added = changed_lines(before, routing.text)
    assert removed == []
    assert added == ["      - name: notify-2", "        type: step.log", "        config:",
                     '          message: "{{ .id }}"']
    assert [s.name for s in routing.outline.pipelines["triage"].steps][:4] == [
        "classify", "route", "notify-2", "page-on-call"]
    routing.undo_stack.undo()
    assert routing.text == before


def test_insert_step_without_a_name_takes_the_types_and_creates_missing_lists(
        routing: PipelineDocument) -> None:
    path = routing.insert_step(STEPS, 99, {"type": "step.foreach", "config": {"collection": "{{ .xs }}"}})
    assert path == (*STEPS, 8)
    assert routing.value_at((*path, "name")) == "foreach"
    inner = routing.insert_step((*path, "config", "steps"), 0, {"type": "step.set"})
    assert inner == (*path, "config", "steps", 0)
    assert routing.outline.pipelines["triage"].nodes["foreach/set"].parent == "foreach"
    new_pipeline = routing.insert_step(("pipelines", "fresh", "steps"), 0, {"name": "a", "type": "step.set"})
    assert routing.value_at(new_pipeline) == {"name": "a", "type": "step.set"}
    assert "fresh" in routing.outline.pipelines


def test_delete_step_and_undo(routing: PipelineDocument) -> None:
    before = routing.text
    routing.delete_step((*STEPS, 3))  # notify
    removed, added = changed_lines(before, routing.text)
    assert added == [] and removed == ['      - name: notify', '        type: step.log',
                                       '        config: {message: "paged on-call for ticket {{ .id }}", '
                                       'level: warn}']
    assert "notify" not in routing.outline.pipelines["triage"].nodes
    routing.undo_stack.undo()
    assert routing.text == before
    routing.undo_stack.redo()
    assert "notify" not in routing.text


def test_duplicate_step_inserts_a_renamed_copy_after_it(routing: PipelineDocument) -> None:
    before = routing.text
    path = routing.duplicate_step((*STEPS, 2))
    assert path == (*STEPS, 3)
    assert routing.value_at(path) == {"name": "page-on-call-2", "type": "step.set",
                                      "config": {"values": {"handled_by": "on-call", "sla": "15m"}}}
    removed, added = changed_lines(before, routing.text)
    assert removed == [] and sorted(added) == sorted([  # the flow map stays flow
        "      - name: page-on-call-2", "        type: step.set",
        "        config: {values: {handled_by: on-call, sla: 15m}}"])
    routing.undo_stack.undo()
    assert routing.text == before


def test_move_step_within_a_list_and_into_a_branch_arm(routing: PipelineDocument) -> None:
    before = routing.text
    new = routing.move_step((*STEPS, 3), STEPS, 1)  # notify before route
    assert new == (*STEPS, 1)
    names = [s.name for s in routing.outline.pipelines["triage"].steps]
    assert names[:4] == ["classify", "notify", "route", "page-on-call"]
    new = routing.move_step((*STEPS, 1), STEPS, 5)  # index as before the move: after done-urgent
    assert new == (*STEPS, 4)
    assert [s.name for s in routing.outline.pipelines["triage"].steps][:5] == [
        "classify", "route", "page-on-call", "done-urgent", "notify"]
    arm = (*STEPS, 5, "config", "branches", "billing")
    new = routing.move_step((*STEPS, 4), arm, 1)
    assert new == (*STEPS, 4, "config", "branches", "billing", 1)
    assert routing.outline.pipelines["triage"].nodes["queue/notify"].slot == "branches.billing"
    assert comments(routing.text) == comments(before)
    undo_all(routing)
    assert routing.text == before


def test_move_step_into_itself_is_refused(routing: PipelineDocument) -> None:
    with pytest.raises(EditError, match="into itself"):
        routing.move_step((*STEPS, 5), (*STEPS, 5, "config", "default"), 0)


def test_rename_updates_the_references_to_the_step(qapp, workspace: Path, type_infos) -> None:  # type: ignore[no-untyped-def]
    from app.editor.outline import type_shapes

    shapes = type_shapes(type_infos)
    doc = PipelineDocument.load(workspace / "routing.yaml", shapes)
    before = doc.text
    doc.rename_step((*STEPS, 6), "bot-reply")
    assert doc.value_at((*STEPS, 1, "config", "default")) == "bot-reply"
    removed, added = changed_lines(before, doc.text)
    assert removed == ["          default: auto-reply", "      - name: auto-reply"]
    assert added == ["          default: bot-reply", "      - name: bot-reply"]
    edges = {(e.source, e.target, e.label) for e in doc.outline.pipelines["triage"].edges}
    assert ("route", "bot-reply", "default") in edges
    doc.rename_step((*STEPS, 7), "answer")  # reply: merge_step of the branch and then of done-urgent
    assert doc.value_at((*STEPS, 5, "config", "merge_step")) == "answer"
    assert doc.value_at((*STEPS, 4, "config", "then")) == "answer"
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    assert doc.text == before


def test_rename_rewrites_templates_reading_the_steps_output(qapp, workspace: Path) -> None:  # type: ignore[no-untyped-def]
    doc = PipelineDocument.load(workspace / "fanout.yaml")
    steps = ("pipelines", "score-users", "steps")
    before = doc.text
    doc.rename_step((*steps, 0, "config", "steps", 0), "extra")  # enrich
    row = doc.value_at((*steps, 0, "config", "steps", 1, "config", "values"))
    assert row["score"] == "{{ .steps.extra.results.score.score }}"
    assert row["id"] == "{{ .steps.extra.results.fingerprint.hash[0:12] }}"
    removed, _added = changed_lines(before, doc.text)
    assert len(removed) == 3


def test_rename_to_nothing_is_refused(routing: PipelineDocument) -> None:
    with pytest.raises(EditError, match="needs a name"):
        routing.rename_step((*STEPS, 0), "  ")


def test_set_value_creates_maps_and_delete_value_removes_it(routing: PipelineDocument) -> None:
    before = routing.text
    routing.set_value((*STEPS, 0, "retry", "max_attempts"), 3)
    assert routing.value_at((*STEPS, 0, "retry")) == {"max_attempts": 3}
    routing.set_value((*STEPS, 0, "config", "values", "priority"), "low")
    assert routing.value_at((*STEPS, 0, "config", "values", "priority")) == "low"
    routing.delete_value((*STEPS, 0, "retry"))
    with pytest.raises(KeyError):
        routing.value_at((*STEPS, 0, "retry"))
    routing.set_value((*STEPS, 0, "config", "values", "priority"), "line one\nline two\n")
    assert routing.value_at((*STEPS, 0, "config", "values", "priority")) == "line one\nline two\n"
    routing.set_value(("description",), "yes")  # a string that must be quoted to stay one
    assert routing.value_at(("description",)) == "yes"
    assert routing.undo_stack.count() == 5
    undo_all(routing)
    assert routing.text == before


def test_setting_a_map_updates_it_in_place(routing: PipelineDocument) -> None:
    before = routing.text
    routing.set_value((*STEPS, 1, "config"), {"field": "{{ .priority }}",
                                              "routes": {"urgent": "page-on-call", "normal": "queue"},
                                              "default": "reply"})
    removed, added = changed_lines(before, routing.text)
    assert (removed, added) == (["          default: auto-reply"], ["          default: reply"])


def test_setting_the_same_value_changes_nothing(routing: PipelineDocument) -> None:
    routing.set_value((*STEPS, 2, "config", "values", "sla"), "15m")
    assert routing.undo_stack.count() == 0


def test_edit_takes_any_change_of_the_tree(routing: PipelineDocument) -> None:
    before = routing.text

    def change(tree: Any) -> None:
        tree["name"] = "support"

    routing.edit("Rename file", change)
    assert changed_lines(before, routing.text) == (["name: tickets"], ["name: support"])
    assert routing.undo_stack.undoText() == "Rename file"


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", ["fanout.yaml", "http-retry.yaml", "orders.yaml", "routing.yaml"])
def test_opened_and_saved_without_edits_is_byte_identical(qapp, workspace: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                          name: str) -> None:
    doc = PipelineDocument.load(workspace / name)
    doc.save(tmp_path / "copy.yaml")
    assert (tmp_path / "copy.yaml").read_bytes() == (workspace / name).read_bytes()
    assert doc.path == tmp_path / "copy.yaml"


def test_crlf_and_bom_survive_a_save(qapp, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    raw = "\ufeffname: x\r\npipelines: {}\r\n".encode()
    (tmp_path / "w.yaml").write_bytes(raw)
    doc = PipelineDocument.load(tmp_path / "w.yaml")
    assert doc.text == "name: x\npipelines: {}\n"
    doc.save()
    assert (tmp_path / "w.yaml").read_bytes() == raw


def _leaves(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, (*at, k))]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, (*at, i))]
    return [(at, value)]


@pytest.mark.parametrize("name", ["fanout.yaml", "http-retry.yaml", "orders.yaml", "routing.yaml"])
def test_setting_one_value_changes_only_its_line(qapp, workspace: Path, name: str,  # type: ignore[no-untyped-def]
                                                 monkeypatch) -> None:
    doc = PipelineDocument.load(workspace / name)
    full_dumps: list[int] = []
    real = yaml_edit.three_way
    monkeypatch.setattr(yaml_edit, "three_way", lambda *a: full_dumps.append(1) or real(*a))
    original = doc.text
    tried = 0
    for pipeline in doc.outline.pipelines.values():
        for node in pipeline.nodes.values():
            for rel, value in _leaves(doc.value_at(node.path)):
                if rel[0] in ("name", "compensate") or (isinstance(value, str) and "\n" in value) \
                        or any(k in ("steps", "branches") for k in rel):
                    continue  # names, sub-steps and multi-line text are tested elsewhere
                before = doc.text
                path = (*node.path, *rel)
                doc.set_value(path, "changed-value")
                removed, added = changed_lines(before, doc.text)
                assert len(removed) == 1 and len(added) == 1, (path, removed, added)
                assert "changed-value" in added[0]
                assert flow_braces(removed[0]) == flow_braces(added[0])  # flow stays flow
                assert comments(doc.text) == comments(original)
                doc.undo_stack.undo()
                assert doc.text == before
                tried += 1
    assert tried >= 6
    assert full_dumps == []  # each edit rendered only its entry


def test_a_big_file_is_edited_without_dumping_it_all(qapp, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    lines = ["# generated", "name: big", "pipelines:", "  big:", "    steps:"]
    for i in range(300):
        lines += [f"      - name: s{i}", "        type: step.set", "        config:",
                  f'          values: {{a: "{{{{ .x }}}}", b: {i}}}  # step {i}']
    doc = PipelineDocument("\n".join(lines) + "\n")
    dumps: list[int] = []
    real = yaml_edit.dump
    monkeypatch.setattr(yaml_edit, "three_way", lambda *a: dumps.append(1) or None)
    steps = ("pipelines", "big", "steps")
    doc.set_value((*steps, 150, "config", "values", "b"), 7)
    doc.insert_step(steps, 10, {"type": "step.log"})
    doc.move_step((*steps, 3), steps, 200)
    doc.duplicate_step((*steps, 20))
    doc.delete_step((*steps, 40))
    doc.rename_step((*steps, 50), "fifty")
    for _ in range(4):
        doc.undo_stack.undo()
    doc.undo_stack.redo()
    doc.set_value((*steps, 7, "type"), "step.log")
    assert dumps == []  # every edit stayed local
    # ... and the result is what a full dump of the tree gives
    tree = doc._parsed()
    assert real(yaml_edit.make_yaml(doc.text), tree) == doc.text


def test_consecutive_edits_and_undo_reuse_the_tree(routing: PipelineDocument, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    routing.set_value((*STEPS, 0, "config", "values", "priority"), "low")
    loads: list[str] = []
    real = yaml_edit.load_tree
    monkeypatch.setattr(yaml_edit, "load_tree", lambda ry, text: loads.append(text) or real(ry, text))
    routing.set_value((*STEPS, 0, "config", "values", "priority"), "high")
    routing.delete_step((*STEPS, 3))
    routing.move_step((*STEPS, 0), STEPS, 4)
    routing.insert_step(STEPS, 2, {"type": "step.log"})
    routing.delete_value((*STEPS, 1, "config", "field"))
    for _ in range(4):
        routing.undo_stack.undo()  # undo replays the edit on the cached tree
    routing.undo_stack.redo()
    routing.set_value((*STEPS, 0, "config", "values", "priority"), "mid")
    assert loads == []
    tree = routing._parsed()
    assert yaml_edit.dump(yaml_edit.make_yaml(routing.text), tree) == routing.text  # the tree is current
    routing.replace(0, 0, "# typed\n", typing=True)  # typing: the next edit parses again
    routing.set_value((*STEPS, 0, "config", "values", "priority"), "low")
    assert len(loads) == 1


# ---------------------------------------------------------------- reload, save errors, bad input


def test_reload_from_disk_is_one_undoable_command(routing: PipelineDocument) -> None:
    original = routing.text
    routing.replace(0, 0, "# mine\n", typing=True)
    assert routing.path is not None
    routing.path.write_text(original.replace("tickets", "support"))
    routing.reload_from_disk()
    assert "support" in routing.text and "# mine" not in routing.text
    assert not routing.is_modified()
    routing.undo_stack.undo()
    assert routing.text == "# mine\n" + original
    assert routing.is_modified()


def test_save_errors_leave_the_buffer_modified(routing: PipelineDocument, tmp_path: Path) -> None:
    routing.replace(0, 0, "# unsaved\n", typing=True)
    text = routing.text
    with pytest.raises(OSError):
        routing.save(tmp_path / "gone" / "routing.yaml")  # folder does not exist
    (tmp_path / "plain").write_text("")
    with pytest.raises(OSError):
        routing.save(tmp_path / "plain" / "routing.yaml")  # a file where the folder should be
    assert routing.text == text and routing.is_modified()
    assert routing.path is not None and routing.path.name == "routing.yaml"
    assert not list(tmp_path.glob("**/.routing.yaml.*"))  # no temporary files left behind


def test_a_document_without_a_path_cannot_be_saved_without_one(qapp) -> None:  # type: ignore[no-untyped-def]
    doc = PipelineDocument("a: 1\n")
    doc.replace(0, 0, "#\n")
    with pytest.raises(OSError, match="no file name"):
        doc.save()
    assert doc.is_modified()


def test_edit_on_broken_yaml_raises_and_changes_nothing(qapp) -> None:  # type: ignore[no-untyped-def]
    doc = PipelineDocument("pipelines:\n  p:\n    steps:\n      - name: a\n     type: x\n")
    with pytest.raises(EditError) as info:
        doc.set_value(("pipelines", "p", "description"), "x")
    assert "line 5" in str(info.value) and "Fix the YAML first" in str(info.value)
    with pytest.raises(EditError):
        doc.insert_step(("pipelines", "p", "steps"), 0, {"type": "step.set"})
    assert doc.text.endswith("     type: x\n") and doc.undo_stack.count() == 0


def test_duplicate_keys_are_reported_as_an_edit_error(qapp) -> None:  # type: ignore[no-untyped-def]
    doc = PipelineDocument("name: a\nname: b\n")
    with pytest.raises(EditError, match="Fix the YAML first"):
        doc.set_value(("description",), "x")


def test_operations_on_a_missing_step_explain_themselves(routing: PipelineDocument) -> None:
    with pytest.raises(EditError, match="no step"):
        routing.delete_step((*STEPS, 42))
    with pytest.raises(EditError, match="not a list"):
        routing.insert_step((*STEPS, 0, "name"), 0, {"type": "step.set"})
    assert routing.undo_stack.count() == 0
