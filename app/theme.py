"""Light and dark themes: Qt's Fusion style with our own palettes and a few colours.

Widgets that paint themselves (the graph, the YAML highlighter) read :func:`colors` so a
theme switch repaints them consistently; nothing hard-codes a colour that only works on
one background.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication


@dataclass(frozen=True)
class Colors:
    name: str
    window: str
    base: str
    alt_base: str
    text: str
    muted: str
    accent: str
    border: str
    error: str
    warning: str
    ok: str


LIGHT = Colors("light", window="#f3f4f6", base="#ffffff", alt_base="#f7f8fa", text="#1f2328",
               muted="#6b7280", accent="#2f6feb", border="#d0d7de", error="#cf222e",
               warning="#bf8700", ok="#1a7f37")
DARK = Colors("dark", window="#1e2227", base="#16191d", alt_base="#1b1f24", text="#e6edf3",
              muted="#8b949e", accent="#4c8dff", border="#30363d", error="#f85149",
              warning="#d29922", ok="#3fb950")
THEMES = {"light": LIGHT, "dark": DARK}
_current = LIGHT


def colors() -> Colors:
    return _current


def apply(name: str, app: QApplication | None = None) -> Colors:
    """Switch the whole application to theme ``name`` ("light" or "dark")."""
    global _current
    _current = THEMES.get(name, LIGHT)
    app = app or QApplication.instance()  # type: ignore[assignment]
    if app is None:
        return _current
    c = _current
    app.setStyle("Fusion")
    palette = QPalette()
    for role, value in (
        (QPalette.ColorRole.Window, c.window), (QPalette.ColorRole.WindowText, c.text),
        (QPalette.ColorRole.Base, c.base), (QPalette.ColorRole.AlternateBase, c.alt_base),
        (QPalette.ColorRole.Text, c.text), (QPalette.ColorRole.Button, c.window),
        (QPalette.ColorRole.ButtonText, c.text), (QPalette.ColorRole.ToolTipBase, c.base),
        (QPalette.ColorRole.ToolTipText, c.text), (QPalette.ColorRole.Highlight, c.accent),
        (QPalette.ColorRole.HighlightedText, "#ffffff"), (QPalette.ColorRole.Link, c.accent),
        (QPalette.ColorRole.PlaceholderText, c.muted), (QPalette.ColorRole.Mid, c.border),
    ):
        palette.setColor(role, QColor(value))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor(c.muted))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor(c.muted))
    app.setPalette(palette)
    app.setStyleSheet(f"""
        QMainWindow::separator {{ background: {c.border}; width: 1px; height: 1px; }}
        QDockWidget::title {{ padding: 4px 6px; background: {c.window}; color: {c.muted}; }}
        QTabBar::tab {{ padding: 5px 12px; }}
        QTabBar::tab:selected {{ color: {c.text}; border-bottom: 2px solid {c.accent}; }}
        QStatusBar QLabel {{ color: {c.muted}; padding: 0 6px; }}
        QToolTip {{ border: 1px solid {c.border}; padding: 4px; }}
    """)
    return _current
