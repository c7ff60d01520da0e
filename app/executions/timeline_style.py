"""Colours, marker glyphs and time formatting of the timeline, per theme.

Status colours come in a light and a dark variant (saturated enough to read on the light
base, bright enough on the dark one); :func:`timeline_style` builds the brushes once per theme
so a frame allocates nothing but the rectangles it draws.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtGui import QBrush, QColor, QPen

from app import theme

# Index order is the colour index stored per bar (TimelineModel.color).
COLOR_KEYS = ("completed", "failed", "skipped", "running", "mocked", "paused", "cancelled", "reused", "other")
COLOR_INDEX = {name: i for i, name in enumerate(COLOR_KEYS)}
_LIGHT = {
    "completed": "#2da44e", "failed": "#cf222e", "skipped": "#a3abb4", "running": "#2f6feb",
    "mocked": "#8250df", "paused": "#d4a72c", "cancelled": "#6e7781", "reused": "#1b8a94",
    "other": "#9a6700",
}
_DARK = {
    "completed": "#3fb950", "failed": "#f85149", "skipped": "#59626d", "running": "#4c8dff",
    "mocked": "#a371f7", "paused": "#e3b341", "cancelled": "#8b949e", "reused": "#39c5cf",
    "other": "#db6d28",
}
STATUS_ALIASES = {"error": "failed", "interrupted": "cancelled", "compensated": "failed"}

# Marker kinds (TimelineModel marker kind index) and what the legend calls them.
MARKER_KINDS = ("retry", "route", "mock", "pause", "edit", "cached")
MARKER_INDEX = {name: i for i, name in enumerate(MARKER_KINDS)}
MARKER_LABELS = {
    "retry": "retry (attempt > 1)", "route": "route / jump", "mock": "answered by a mock",
    "pause": "debugger pause", "edit": "context edited in the debugger", "cached": "idempotency hit",
}


def color_key(status: str, flags: list[str] | tuple[str, ...] = ()) -> str:
    """The colour a run is drawn in: its status, except mocked/reused successes."""
    status = STATUS_ALIASES.get(status, status)
    if status in ("completed", "running"):
        if "mocked" in flags:
            return "mocked"
        if "reused" in flags:
            return "reused"
    return status if status in COLOR_INDEX else "other"


@dataclass(frozen=True)
class TimelineStyle:
    dark: bool
    bars: tuple[QBrush, ...]  # by colour index
    bar_text: tuple[QColor, ...]  # readable text on each bar colour
    markers: tuple[QColor, ...]  # by marker kind
    base: QColor
    stripe: QColor  # every other row
    text: QColor
    muted: QColor
    accent: QColor
    selection: QPen
    now: QPen
    marker_outline: QPen

    def hex_of(self, key: str) -> str:
        return self.bars[COLOR_INDEX[key]].color().name()


def _readable_on(color: QColor) -> QColor:
    luminance = 0.2126 * color.redF() + 0.7152 * color.greenF() + 0.0722 * color.blueF()
    return QColor("#111111") if luminance > 0.55 else QColor("#ffffff")


_cache: dict[str, TimelineStyle] = {}


def timeline_style() -> TimelineStyle:
    """The style of the current app theme (made once per theme)."""
    c = theme.colors()
    cached = _cache.get(c.name)
    if cached is not None:
        return cached
    dark = c.name == "dark"
    table = _DARK if dark else _LIGHT
    colors = [QColor(table[key]) for key in COLOR_KEYS]
    base = QColor(c.base)
    stripe = base.lighter(112) if dark else base.darker(103)
    accent = QColor(c.accent)
    selection = QPen(QColor(c.text), 2.0)
    now = QPen(accent, 1.0)
    now.setDashPattern([4.0, 3.0])
    marker_colors = {
        "retry": QColor(c.warning), "route": QColor(c.accent), "mock": QColor(table["mocked"]),
        "pause": QColor(table["paused"]), "edit": QColor(c.error), "cached": QColor(table["reused"]),
    }
    style = TimelineStyle(
        dark=dark, bars=tuple(QBrush(col) for col in colors),
        bar_text=tuple(_readable_on(col) for col in colors),
        markers=tuple(marker_colors[k] for k in MARKER_KINDS), base=base, stripe=stripe,
        text=QColor(c.text), muted=QColor(c.muted), accent=accent,
        selection=selection, now=now, marker_outline=QPen(base, 1.0))
    _cache[c.name] = style
    return style


def format_seconds(seconds: float, spacing: float | None = None) -> str:
    """A time offset for a person: µs, ms, s or m:ss, chosen from ``spacing`` (tick step) or the value."""
    scale = abs(spacing) if spacing else abs(seconds)
    if seconds == 0:
        return "0"
    if scale >= 60:
        minutes, rest = divmod(seconds, 60)
        return f"{int(minutes)}:{rest:04.1f}" if scale < 120 else f"{int(minutes)}:{int(rest):02d}"
    if scale >= 1:
        return f"{seconds:.6g} s" if spacing else f"{seconds:.3g} s"
    if scale >= 1e-3:
        return f"{seconds * 1e3:.6g} ms" if spacing else f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.6g} µs" if spacing else f"{seconds * 1e6:.3g} µs"


def format_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    return format_seconds(ms / 1000.0)

