"""What is under the mouse in the timeline, and the tooltip that says so.

Both read the pane's :class:`ViewState` only: hit-testing works on the layout's per-row bar
index (one numpy pass over the bars of one row), the tooltip on the model's records.
"""

from __future__ import annotations

import html
import time

import numpy as np

from app.executions.timeline_items import ViewState
from app.executions.timeline_model import BAND, ITERATION, PauseSpan
from app.executions.timeline_style import MARKER_KINDS, format_ms, format_seconds, timeline_style

GLYPHS = {"retry": "●", "route": "▶", "mock": "◆", "pause": "❚❚", "edit": "▼", "cached": "■"}
_TOPS = np.array([BAND[k][0] for k in range(3)])
_BOTTOMS = np.array([BAND[k][1] for k in range(3)])


def bar_at(state: ViewState, x: float, y: float, tolerance: float) -> tuple[int, int]:
    """(bar index, how many other bars are at the same spot) at view point (x, y); (-1, 0) for none.

    ``tolerance`` widens thin bars (view units, a few pixels) so a 1-pixel bar can be hit.
    """
    model, lay = state.model, state.layout
    if model is None or lay is None or not lay.rows:
        return -1, 0
    row = round(y)
    if not 0 <= row < len(lay.rows):
        return -1, 0
    index = lay.order[lay.row_first[row]: lay.row_first[row + 1]]
    if not index.size:
        return -1, 0
    starts = model.start[index]
    ends = state.ends(index)
    hit = (starts - tolerance <= x) & (ends + tolerance >= x)
    offset = y - row
    kinds = lay.bar_kind[index]
    inside = hit & (offset >= _TOPS[kinds] - 0.06) & (offset <= _BOTTOMS[kinds] + 0.06)
    pick = inside if inside.any() else hit
    if not pick.any():
        return -1, 0
    candidates = index[pick]
    # the bar whose middle is nearest, preferring short ones (a loop's bar spans its children)
    ends = state.ends(candidates)
    middles = (model.start[candidates] + ends) / 2
    widths = ends - model.start[candidates]
    best = int(candidates[np.argmin(np.abs(middles - x) + widths * 0.1)])
    return best, int(candidates.size) - 1


def describe_bar(state: ViewState, index: int, others: int = 0) -> str:
    """The tooltip (rich text) of bar ``index``: step, status, timing, attempt, error, markers."""
    model = state.model
    assert model is not None
    item = model.items[index]
    style = timeline_style()
    muted = style.muted.name()
    lines: list[str] = []
    if isinstance(item, PauseSpan):
        end = f"resumed: {html.escape(item.action)}" if item.ended_at else "still paused"
        length = format_seconds((item.ended_at or time.time()) - item.started_at)
        lines.append(f"<b>paused at {html.escape(item.step)}</b> ({html.escape(item.reason)})")
        lines.append(f"for {length} · {end}")
    else:
        kind = f" · {html.escape(item.type)}" if item.type else ""
        lines.append(f"<b>{html.escape(item.step)}</b> <span style='color:{muted}'>"
                     f"{html.escape(item.path)}{kind}</span>")
        status = item.status + (f" ({', '.join(item.flags)})" if item.flags else "")
        lines.append(f"status: {html.escape(status)}")
        start = float(model.start[index])
        duration = item.duration_ms if item.duration_ms is not None else \
            (float(state.ends(np.array([index]))[0]) - start) * 1000
        lines.append(f"started +{format_seconds(start)} · duration {format_ms(duration)}"
                     + (" (running)" if item.status == "running" else ""))
        details = []
        if any(model.nodes[a].kind == ITERATION for a in model.ancestors(int(model.node[index]))):
            details.append(f"iteration {item.iteration}")
        details.append(f"attempt {item.attempt}")
        lines.append(" · ".join(details))
        if item.error:
            lines.append(f"<span style='color:{style.hex_of('failed')}'>error: "
                         f"{html.escape(item.error[:300])}</span>")
    for marker in model.markers:
        if marker.run == index and marker.text:
            lines.append(f"{GLYPHS[MARKER_KINDS[marker.kind]]} {html.escape(marker.text)}")
    if others:
        lines.append(f"<span style='color:{muted}'>… and {others} more here (zoom in)</span>")
    return "<br>".join(lines)
