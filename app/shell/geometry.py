"""Fitting a window to the screen it opens on.

A default size (or one remembered from a bigger monitor) can be larger than the screen the
window opens on: its title bar or its status bar then lies off-screen and the window cannot
be moved or resized by hand. Qt's restoreGeometry() moves a window back onto a screen but
keeps a size that may not fit once the frame is counted; this keeps the whole frame inside
the screen's available area (without the taskbar or the dock).
"""

from __future__ import annotations

from PySide6.QtCore import QMargins, QRect
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget


def fitted(geometry: QRect, frame: QMargins, available: QRect, *, center: bool = False) -> QRect:
    """``geometry`` (the client area) resized and moved so that it and its ``frame`` lie
    inside ``available``; centred there when ``center``."""
    width = min(geometry.width(), available.width() - frame.left() - frame.right())
    height = min(geometry.height(), available.height() - frame.top() - frame.bottom())
    outer_w, outer_h = width + frame.left() + frame.right(), height + frame.top() + frame.bottom()
    if center:
        x = available.x() + (available.width() - outer_w) // 2
        y = available.y() + (available.height() - outer_h) // 2
    else:
        x = min(max(geometry.x() - frame.left(), available.x()), available.right() + 1 - outer_w)
        y = min(max(geometry.y() - frame.top(), available.y()), available.bottom() + 1 - outer_h)
    return QRect(x + frame.left(), y + frame.top(), width, height)


def fit_to_screen(window: QWidget, *, center: bool = False) -> None:
    """Fit ``window`` (a top-level widget) to the available area of the screen it is on."""
    if window.isMaximized() or window.isFullScreen():
        return  # the window manager sizes those to the screen
    geometry = window.geometry()
    screen = QGuiApplication.screenAt(geometry.center()) or window.screen() or QGuiApplication.primaryScreen()
    if screen is None:  # no screen at all (nothing to fit to)
        return
    handle = window.windowHandle()
    # the frame is known once the window is shown; before that the title bar is not counted
    frame = handle.frameMargins() if handle is not None and window.isVisible() else QMargins()
    target = fitted(geometry, frame, screen.availableGeometry(), center=center)
    if target != geometry:
        window.setGeometry(target)
