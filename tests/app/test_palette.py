"""The step palette (grouping, search, drag data, insert requests) and the icon lookup."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QLabel, QLineEdit, QTreeWidget

from app.editor.palette import STEP_TYPE_MIME, StepPalette
from app.icons import icon, step_icon, step_icon_path
from engine.service.models import StepTypeInfo

ACTIONS = ("wfstudio", "new-file", "open-folder", "save", "run", "validate", "undo", "redo", "zoom-fit",
           "zoom-in", "zoom-out", "layout", "search", "problems", "settings", "theme")

PLUGIN_TYPE = StepTypeInfo(name="step.summarise", description="Summarise a text with a language model",
                           category="ai", schema={"type": "object"}, output="{summary}")


def make_palette(qtbot, infos) -> StepPalette:
    palette = StepPalette()
    qtbot.addWidget(palette)
    palette.set_type_infos(infos)
    palette.show()
    qtbot.waitExposed(palette)
    return palette


def tree_of(palette: StepPalette) -> QTreeWidget:
    return palette.findChild(QTreeWidget, "paletteTree")


def test_types_are_grouped_by_category_with_plugins_alongside(qtbot, type_infos):
    palette = make_palette(qtbot, [*type_infos, PLUGIN_TYPE])
    tree = tree_of(palette)
    groups = {}
    for i in range(tree.topLevelItemCount()):
        group = tree.topLevelItem(i)
        groups[group.text(0).lower()] = {group.child(j).data(0, Qt.ItemDataRole.UserRole)
                                         for j in range(group.childCount())}
    expected: dict[str, set[str]] = {}
    for info in type_infos:
        expected.setdefault(info.category, set()).add(info.name)
    for category, names in expected.items():
        assert groups[category] == names
    assert groups["ai"] == {"step.summarise"}
    assert palette.categories()[:2] == ["data", "control"]  # the usual order, plugins after
    assert palette.categories()[-1] == "ai"
    assert len(palette.visible_types()) == len(type_infos) + 1


def test_search_filters_by_name_and_description(qtbot, type_infos):
    palette = make_palette(qtbot, [*type_infos, PLUGIN_TYPE])
    search = palette.findChild(QLineEdit, "paletteSearch")
    qtbot.keyClicks(search, "cache")
    shown = set(palette.visible_types())
    assert {"step.cache_get", "step.cache_set", "step.cache_delete"} <= shown
    by_name = {i.name: i for i in type_infos}
    for name in shown:
        info = by_name[name]
        assert "cache" in f"{info.name} {info.description} {info.category}".lower()
    assert "step.set" not in shown

    search.setText("language model")  # words of the description, in any order
    assert palette.visible_types() == ["step.summarise"]

    search.setText("no-such-type-anywhere")
    assert palette.visible_types() == []
    assert palette.findChild(QLabel, "paletteEmpty").isVisible()
    search.clear()
    assert len(palette.visible_types()) == len(type_infos) + 1


def test_drag_carries_the_type_name_and_groups_do_not_drag(qtbot, type_infos):
    palette = make_palette(qtbot, type_infos)
    tree = tree_of(palette)
    item = palette.item_for("step.http_call")
    assert item.flags() & Qt.ItemFlag.ItemIsDragEnabled
    data = tree.mimeData([item])
    assert bytes(data.data(STEP_TYPE_MIME)).decode("utf-8") == "step.http_call"
    assert STEP_TYPE_MIME in tree.mimeTypes()
    group = item.parent()
    assert not group.flags() & Qt.ItemFlag.ItemIsDragEnabled
    assert not tree.mimeData([group]).hasFormat(STEP_TYPE_MIME)
    assert "Output:" in item.toolTip(0) and "HTTP" in item.toolTip(0).upper()


def test_double_click_and_enter_ask_for_an_insert(qtbot, type_infos):
    palette = make_palette(qtbot, type_infos)
    tree = tree_of(palette)
    item = palette.item_for("step.log")
    tree.scrollToItem(item)
    rect = tree.visualItemRect(item)
    with qtbot.waitSignal(palette.insertRequested) as blocker:
        QTest.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        QTest.mouseDClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert blocker.args == ["step.log"]

    search = palette.findChild(QLineEdit, "paletteSearch")
    search.setFocus()
    qtbot.keyClicks(search, "http_call")
    with qtbot.waitSignal(palette.insertRequested) as blocker:
        QTest.keyClick(search, Qt.Key.Key_Return)
    assert blocker.args == ["step.http_call"]

    tree.setFocus()
    tree.setCurrentItem(palette.item_for("step.http_call"))
    with qtbot.waitSignal(palette.insertRequested) as blocker:
        QTest.keyClick(tree, Qt.Key.Key_Return)
    assert blocker.args == ["step.http_call"]


def test_icons_exist_for_actions_and_every_category(qtbot, type_infos):
    for name in ACTIONS:
        assert not icon(name).isNull(), name
        assert not icon(name).pixmap(24, 24).isNull(), name
    for info in type_infos:
        path = step_icon_path(info.category)
        assert path.stem == info.category, f"no drawing for category {info.category!r}"
        assert not step_icon(info.category).pixmap(24, 24).isNull()
    assert step_icon_path("ai").stem == "generic"
    assert step_icon_path("../../etc/passwd").stem == "generic"
    assert icon("no-such-icon").isNull()
