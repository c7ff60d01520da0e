"""app.editor.text_patch without Qt: plans of structural edits found in the text and spliced."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap

from app.editor import text_patch, yaml_edit
from app.editor.outline import parse_outline
from app.editor.text_patch import Plan, Source
from app.editor.yaml_edit import Entry

TEXT = """\
# orders
pipelines:
  orders:
    steps:
      - name: fetch   # the order
        type: http.request
        config:
          url: https://shop.example/orders
      - name: score
        type: step.set
        config:
          values: {risk: 1}
      - name: notify
        type: step.log
        config: {message: done}
"""
STEPS = ("pipelines", "orders", "steps")


def load(text: str) -> tuple[Any, CommentedMap]:
    ry = yaml_edit.make_yaml(text)
    return ry, yaml_edit.load_tree(ry, text)


def patch(text: str, plan: Plan, change: Any, outline: bool = True) -> tuple[str, Any, CommentedMap,
                                                                           text_patch.TreeOps]:
    """Locate ``plan`` in ``text``, apply ``change`` to the tree, render: the new text."""
    ry, tree = load(text)
    src = Source(text, parse_outline(text) if outline else None)
    located = text_patch.locate_plan(src, ry, tree, plan)
    assert located is not None, "the plan was not found in the text"
    change(tree)
    hunks, ops = text_patch.render_plan(ry, tree, plan, located)
    return text_patch.apply_hunks(text, hunks), ry, tree, ops


def test_a_replaced_entry_changes_only_its_own_lines_and_keeps_comments() -> None:
    path = (*STEPS, 1, "config", "values", "risk")
    entry = text_patch.entry_for(load(TEXT)[1], path)
    assert entry == Entry((*STEPS, 1, "config"), "values")  # the flow map re-renders as a whole

    def change(tree: CommentedMap) -> None:
        yaml_edit.walk(tree, path[:-1])["risk"] = 7

    new, *_ = patch(TEXT, Plan(replace=[(entry, entry)]), change)
    assert new == TEXT.replace("values: {risk: 1}", "values: {risk: 7}")


def test_undo_ops_put_the_tree_back_to_the_original_text() -> None:
    entry = Entry(STEPS, 2)
    new, ry, tree, (redo, undo) = patch(TEXT, Plan(delete=[entry]), lambda t: yaml_edit.walk(t, STEPS).pop(2))
    assert "notify" not in new and new.count("- name:") == 2
    assert yaml_edit.dump(ry, tree) == new
    yaml_edit.replay(ry, tree, undo)
    assert yaml_edit.dump(ry, tree) == TEXT
    yaml_edit.replay(ry, tree, redo)
    assert yaml_edit.dump(ry, tree) == new


def test_insert_plans_anchor_on_a_neighbour_or_re_render_the_holder() -> None:
    _ry, tree = load(TEXT)
    new = Entry(STEPS, 1)
    assert text_patch.insert_plan(tree, STEPS, 1, new) == Plan(insert=[(new, Entry(STEPS, 1), False)])
    end = Entry(STEPS, 3)
    assert text_patch.insert_plan(tree, STEPS, 3, end) == Plan(insert=[(end, Entry(STEPS, 2), True)])
    _ry, tree = load("pipelines:\n  orders:\n    steps: []\n")  # a flow list: its holder re-renders
    holder = Entry(("pipelines", "orders"), "steps")
    assert text_patch.insert_plan(tree, STEPS, 0, Entry(STEPS, 0)) == Plan(replace=[(holder, holder)])


def test_inserted_step_lands_before_its_anchor() -> None:
    step = yaml_edit.new_step_node({"name": "check", "type": "step.log", "config": {"message": "hi"}})
    new_entry = Entry(STEPS, 1)
    _ry, tree = load(TEXT)
    plan = text_patch.insert_plan(tree, STEPS, 1, new_entry)
    assert plan is not None
    new, *_ = patch(TEXT, plan, lambda t: yaml_edit.walk(t, STEPS).insert(1, step))
    lines = new.splitlines()
    at = lines.index("      - name: check")
    assert lines[at - 1] == "          url: https://shop.example/orders"
    assert lines[at + 1:at + 5] == ["        type: step.log", "        config:", "          message: hi",
                                   "      - name: score"]
    assert len(lines) == len(TEXT.splitlines()) + 4


def test_delete_plan_deletes_a_key_or_re_renders_the_only_one() -> None:
    _ry, tree = load(TEXT)
    path = (*STEPS, 0, "config")
    plan = text_patch.delete_plan(tree, path)
    assert plan == Plan(delete=[Entry(path[:-1], "config")], key_index={path: 2})
    first_key = (*STEPS, 0, "name")  # the key on the dash line: the whole step re-renders
    step = Entry(STEPS, 0)
    assert text_patch.delete_plan(tree, first_key) == Plan(replace=[(step, step)])
    only = (*STEPS, 0, "config", "url")
    holder = Entry((*STEPS, 0), "config")
    assert text_patch.delete_plan(tree, only) == Plan(replace=[(holder, holder)])


def test_an_ambiguous_entry_is_found_only_with_the_outline_narrowing_the_search() -> None:
    twice = TEXT + TEXT.split("\n", 1)[1].replace("pipelines:\n  orders:", "  returns:")
    ry, tree = load(twice)
    entry = Entry((*STEPS, 1, "config"), "values")  # the same text in both pipelines
    assert text_patch.locate(Source(twice), ry, tree, entry) is None
    src = Source(twice, parse_outline(twice))
    found = text_patch.locate(src, ry, tree, entry)
    assert found is not None
    pos, block = found
    assert block == "          values: {risk: 1}\n"
    assert pos == twice.index(block)  # the orders one, not the returns one
    other = text_patch.locate(src, ry, tree, Entry(("pipelines", "returns", "steps", 1, "config"), "values"))
    assert other is not None and other[0] == twice.rindex(block)


def test_a_file_with_anchors_is_never_patched_in_place() -> None:
    text = "defaults: &d {retries: 2}\npipelines:\n  orders:\n    steps:\n      - {name: a, type: step.log, config: *d}\n"
    ry, tree = load(text)
    entry = Entry(STEPS, 0)
    assert text_patch.locate_plan(Source(text), ry, tree, Plan(replace=[(entry, entry)])) is None


def test_overlapping_entries_give_up_the_plan() -> None:
    ry, tree = load(TEXT)
    step, config = Entry(STEPS, 1), Entry((*STEPS, 1), "config")
    assert text_patch.locate_plan(Source(TEXT), ry, tree, Plan(replace=[(step, step)])) is not None
    assert text_patch.locate_plan(Source(TEXT), ry, tree, Plan(replace=[(step, step), (config, config)])) is None


def test_shift_after_removal_and_outermost() -> None:
    assert text_patch.shift_after_removal((*STEPS, 3, "config"), STEPS, 1) == (*STEPS, 2, "config")
    assert text_patch.shift_after_removal((*STEPS, 1, "config"), STEPS, 1) == (*STEPS, 1, "config")
    assert text_patch.shift_after_removal(("other", 3), STEPS, 1) == ("other", 3)
    outer, inner = Entry(STEPS, 1), Entry((*STEPS, 1), "config")
    assert text_patch.outermost([inner, outer, Entry(STEPS, 1)]) == [outer]


def test_hunks_trimmed_and_applied() -> None:
    assert text_patch.trim_common("name: fetch\n", "name: fetch-2\n") == (11, "", "-2")
    assert text_patch.refine([(4, "abc", "abc"), (10, "xay", "xby")]) == [(11, "a", "b")]
    assert text_patch.apply_hunks("0123456789", [(1, "12", ""), (5, "", "X"), (8, "8", "88")]) == "034X567889"


def test_line_starts() -> None:
    src = Source("a\nbb\n\nc")
    assert [src.line_start(i) for i in (-1, 0, 1, 2, 3, 4, 9)] == [0, 0, 2, 5, 6, 7, 7]


def test_the_planner_and_the_step_rules_load_without_qt() -> None:
    code = ("import sys, app.editor.text_patch, app.editor.step_rules; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'qasync')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
