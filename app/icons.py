"""The studio's icons: SVG files under ``resources/icons`` turned into cached QIcons.

Action icons are ``resources/icons/<name>.svg``; step categories are
``resources/icons/steps/<category>.svg`` with ``generic.svg`` for categories we have no
drawing for (plugins bring their own categories). The folder is found next to the
package in a source checkout or editable install, in ``<prefix>/share/wfstudio/resources``
for a wheel install, or wherever ``WFSTUDIO_RESOURCES`` points.
"""

from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path

from PySide6.QtGui import QIcon

GENERIC_CATEGORY = "generic"


def _candidates() -> list[Path]:
    found = []
    override = os.environ.get("WFSTUDIO_RESOURCES")
    if override:
        found.append(Path(override))
    found.append(Path(__file__).resolve().parent.parent / "resources")
    found.append(Path(sys.prefix) / "share" / "wfstudio" / "resources")
    return found


@cache
def resources_dir() -> Path:
    """The first candidate holding ``icons/``; the checkout's folder when none does."""
    candidates = _candidates()
    for folder in candidates:
        if (folder / "icons").is_dir():
            return folder
    return candidates[-2]


def icon_path(name: str) -> Path | None:
    path = resources_dir() / "icons" / f"{name}.svg"
    return path if path.is_file() else None


def step_icon_path(category: str) -> Path:
    folder = resources_dir() / "icons" / "steps"
    path = folder / f"{_safe(category)}.svg"
    return path if path.is_file() else folder / f"{GENERIC_CATEGORY}.svg"


@cache
def icon(name: str) -> QIcon:
    """The action or app icon ``name`` (e.g. "save"); an empty QIcon when there is none."""
    path = icon_path(_safe(name))
    return QIcon(str(path)) if path is not None else QIcon()


@cache
def step_icon(category: str) -> QIcon:
    """The palette/graph icon of a step category; unknown categories get the generic one."""
    return QIcon(str(step_icon_path(category)))


def _safe(name: str) -> str:
    # Names come from plugins too: never let one walk out of the icon folder.
    return "".join(ch for ch in name.lower() if ch.isalnum() or ch in "-_") or GENERIC_CATEGORY
