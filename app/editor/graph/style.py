"""Pens, brushes, fonts and category colours of the graph, made once per theme.

Items only read these while painting, so a frame allocates nothing; a theme switch makes a
new :class:`GraphStyle` and the scene hands it to every item.
"""

from __future__ import annotations

import zlib

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontMetricsF,
    QPainter,
    QPalette,
    QPen,
    QPixmap,
    QStaticText,
    QTransform,
)
from PySide6.QtWidgets import QApplication

CATEGORY_COLORS = {
    "control": "#7a5af8",
    "data": "#2e90fa",
    "http": "#12b76a",
    "database": "#f79009",
    "cache": "#dd2590",
    "messaging": "#06aed4",
    "flags": "#65a30d",
    "resilience": "#ef6820",
    "flow": "#667085",
    "testing": "#f04438",
    "security": "#15b79e",
}
ICON_PX = 16
TRIGGER_COLOR = "#12b76a"


def category_color(category: str) -> QColor:
    """A fixed colour per built-in category; plugin categories get a stable hue from their name."""
    known = CATEGORY_COLORS.get(category)
    if known is not None:
        return QColor(known)
    hue = zlib.crc32(category.encode()) % 360
    return QColor.fromHsl(hue, 150, 120)


def _theme() -> tuple[str, str, str, str, str, str, str] | None:
    try:  # the app's theme when it is there; the widget palette otherwise
        from app.theme import colors
    except ImportError:
        return None
    c = colors()
    return c.base, c.window, c.text, c.muted, c.border, c.error, c.warning


class GraphStyle:
    def __init__(self, palette: QPalette | None = None) -> None:
        palette = palette or QApplication.palette()
        theme = _theme()
        if theme is not None:
            base, window, text, muted, border, error, warning = (QColor(v) for v in theme)
        else:
            base = palette.color(QPalette.ColorRole.Base)
            window = palette.color(QPalette.ColorRole.Window)
            text = palette.color(QPalette.ColorRole.Text)
            muted = palette.color(QPalette.ColorRole.PlaceholderText)
            border = palette.color(QPalette.ColorRole.Mid)
            error, warning = QColor("#cf222e"), QColor("#bf8700")
        self.dark = window.lightness() < 128
        self.accent = palette.color(QPalette.ColorRole.Highlight)
        self.background = QBrush(window.darker(106) if not self.dark else window)
        self.base = base
        self.text = text
        self.muted = muted
        self.node_brush = QBrush(base)
        self.node_pen = _pen(border, 1.2)
        self.selected_pen = _pen(self.accent, 2.6)
        self.error = error
        self.warning = warning
        self.error_pen = _pen(error, 2.4)
        self.warning_pen = _pen(warning, 2.4)
        self.error_brush = QBrush(error)
        self.warning_brush = QBrush(warning)
        self.badge_text_pen = QPen(QColor("#ffffff"))
        self.text_pen = QPen(text)
        self.muted_pen = QPen(muted)
        self.placeholder_pen = _pen(muted, 1.0, Qt.PenStyle.DashLine)
        self.marker_pen = _pen(self.accent, 3.0)
        self.marker_brush = QBrush(self.accent)
        self.ghost_pen = _pen(self.accent, 1.5, Qt.PenStyle.DashLine)
        self.ghost_brush = QBrush(_alpha(self.accent, 40))
        self.port_brush = QBrush(self.accent)
        self.name_font = QFont()
        self.name_font.setPointSizeF(9.5)
        self.name_font.setBold(True)
        self.type_font = QFont()
        self.type_font.setPointSizeF(8.0)
        self.label_font = QFont()
        self.label_font.setPointSizeF(8.0)
        self.badge_font = QFont()
        self.badge_font.setPointSizeF(7.5)
        self.badge_font.setBold(True)
        self.name_metrics = QFontMetricsF(self.name_font)
        self.type_metrics = QFontMetricsF(self.type_font)
        self.label_metrics = QFontMetricsF(self.label_font)
        edge = muted if not self.dark else muted.lighter(120)
        route = QColor("#2f6feb") if not self.dark else QColor("#58a6ff")
        branch = QColor("#7a5af8") if not self.dark else QColor("#a78bfa")
        jump = QColor("#bf5af2") if not self.dark else QColor("#d2a8ff")
        comp = QColor("#d97706") if not self.dark else QColor("#f0a04b")
        self.edge_colors = {
            "start": edge,
            "next": edge,
            "route": route,
            "branch": branch,
            "jump": jump,
            "compensate": comp,
        }
        self.edge_pens = {
            "start": _pen(edge, 1.6),
            "next": _pen(edge, 1.6),
            "route": _pen(route, 1.6),
            "branch": _pen(branch, 1.6),
            "jump": _pen(jump, 1.6, Qt.PenStyle.DashLine),
            "compensate": _pen(comp, 1.6, Qt.PenStyle.DotLine),
        }
        pens = self.edge_pens.items()
        self.edge_hot_pens = {kind: _pen(pen.color(), 3.2, pen.style()) for kind, pen in pens}
        self.edge_low_pens = {kind: _cosmetic(pen.color(), 1.0) for kind, pen in self.edge_pens.items()}
        self.low_selected_pen = _cosmetic(self.accent, 2.0)
        self.low_error_pen = _cosmetic(error, 2.0)
        self.low_warning_pen = _cosmetic(warning, 2.0)
        self.compensate_pen = _pen(comp, 1.4, Qt.PenStyle.DashLine)
        self.edge_brushes = {kind: QBrush(color) for kind, color in self.edge_colors.items()}
        self.label_brush = QBrush(_alpha(base, 235))
        self.trigger_color = QColor(TRIGGER_COLOR)
        self.trigger_brush = QBrush(_alpha(self.trigger_color, 45))
        self.trigger_pen = _pen(self.trigger_color, 1.4)
        # Debugger marks: a breakpoint dot at a node's left edge, an amber border where a run is paused.
        bp = QColor("#e51400") if not self.dark else QColor("#f14c4c")
        paused = QColor("#f59e0b") if not self.dark else QColor("#fbbf24")
        self.breakpoint_color = bp
        self.breakpoint_brush = QBrush(bp)
        self.breakpoint_pen = _pen(bp, 2.0)  # the ring of a disabled breakpoint
        self.breakpoint_gap_pen = _pen(base, 1.5)  # sets a filled dot off the node's border
        self.breakpoint_text_pen = QPen(QColor("#ffffff"))
        self.breakpoint_mark_pen = QPen(bp)
        self.low_breakpoint_pen = _cosmetic(bp, 7.0)  # a dot of fixed screen size, far zoomed out
        self.low_breakpoint_pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        self.low_breakpoint_off_pen = QPen(self.low_breakpoint_pen)
        self.low_breakpoint_off_pen.setColor(_alpha(bp, 90))
        self.paused_color = paused
        self.paused_pen = _pen(paused, 4.0)
        self.low_paused_pen = _cosmetic(paused, 3.0)
        self.paused_brush = QBrush(paused)
        self.paused_text_pen = QPen(QColor("#3b2300"))
        self.paused_ring_pen = _pen(self.accent, 1.5)  # a paused node that is also selected
        self.condition_text = _prepared("?", self.badge_font)
        self.paused_text = _prepared("paused", self.badge_font)
        self._category: dict[str, tuple[QColor, QBrush, QBrush, QPen, QBrush]] = {}
        self._icons: dict[str, QPixmap | None] = {}

    def category(self, category: str) -> tuple[QColor, QBrush, QBrush, QPen, QBrush]:
        """(colour, badge brush, light fill, group border pen, group body brush) of a category."""
        found = self._category.get(category)
        if found is None:
            color = category_color(category)
            found = (
                color,
                QBrush(color),
                QBrush(_alpha(color, 70 if self.dark else 55)),
                _pen(_alpha(color, 170), 1.4),
                QBrush(_alpha(color, 26 if self.dark else 16)),
            )
            self._category[category] = found
        return found

    def icon(self, category: str) -> QPixmap | None:
        """The category's icon from app.icons as a pixmap, None when there is none to load."""
        if category not in self._icons:
            self._icons[category] = _load_icon(category)
        return self._icons[category]


def _load_icon(category: str) -> QPixmap | None:
    try:
        from app.icons import step_icon
    except ImportError:
        return None
    icon = step_icon(category or "generic")
    if icon.isNull():
        return None
    ratio = 2.0  # crisp when zoomed in a little, still one small pixmap per category
    pixmap = icon.pixmap(int(ICON_PX * ratio), int(ICON_PX * ratio))
    if pixmap.isNull():
        return None
    pixmap.setDevicePixelRatio(ratio)
    return pixmap


def draw_badge(
    painter: QPainter, style: GraphStyle, category: str, rect: QRectF, icon_rect: QRectF, dot_rect: QRectF
) -> None:
    """The category badge: a tinted circle with the category icon (or a solid dot without one)."""
    _, solid, light, _, _ = style.category(category)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(light)
    painter.drawEllipse(rect)
    pixmap = style.icon(category)
    if pixmap is not None:
        painter.drawPixmap(icon_rect, pixmap, QRectF(pixmap.rect()))
    else:
        painter.setBrush(solid)
        painter.drawEllipse(dot_rect)


def badge_rects(x: float, cy: float, size: float = 26.0) -> tuple[QRectF, QRectF, QRectF]:
    """(circle, icon, dot) rects of a badge whose left edge is ``x``, centred on ``cy``."""
    circle = QRectF(x, cy - size / 2, size, size)
    icon = QRectF(circle.center().x() - ICON_PX / 2, cy - ICON_PX / 2, ICON_PX, ICON_PX)
    return circle, icon, circle.adjusted(6, 6, -6, -6)


def _prepared(text: str, font: QFont) -> QStaticText:
    static = QStaticText(text)
    static.setTextFormat(Qt.TextFormat.PlainText)
    static.prepare(QTransform(), font)
    return static


def _pen(color: QColor, width: float, style: Qt.PenStyle = Qt.PenStyle.SolidLine) -> QPen:
    pen = QPen(color, width, style)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    return pen


def _cosmetic(color: QColor, width: float) -> QPen:
    pen = QPen(color, width)
    pen.setCosmetic(True)
    return pen


def _alpha(color: QColor, alpha: int) -> QColor:
    out = QColor(color)
    out.setAlpha(alpha)
    return out
