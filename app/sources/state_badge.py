"""The coloured state badge of the sources table: a rounded pill in the state's colour.

The pill is a light tint of the colour with the state's name in the colour itself, so it
reads on the light and the dark base alike; on a selected row it is filled with the base
colour instead. The colours are the theme's (:func:`app.sources.sources_model.state_color`).
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from app import theme
from app.sources.sources_model import STATE_ROLE, state_color

PAD_X = 8
PAD_Y = 3


class StateBadgeDelegate(QStyledItemDelegate):
    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        state = str(index.data(STATE_ROLE) or "")
        # the row's background and selection first, as for any cell, without its text
        plain = QStyleOptionViewItem(option)
        self.initStyleOption(plain, index)
        plain.text = ""
        style = plain.widget.style() if plain.widget is not None else None
        if style is not None:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, plain, painter, plain.widget)
        if not state:
            return
        colour = state_color(state)
        metrics = QFontMetrics(option.font)
        width = metrics.horizontalAdvance(state) + 2 * PAD_X
        height = metrics.height() + 2 * PAD_Y - 2
        rect = option.rect  # type: ignore[attr-defined]
        pill = QRectF(rect.x() + 4, rect.y() + (rect.height() - height) / 2,
                      min(width, rect.width() - 8), height)
        tint = QColor(colour)
        tint.setAlphaF(0.16)
        if option.state & QStyle.StateFlag.State_Selected:  # type: ignore[attr-defined]
            # a tint over the selection colour does not read: the pill gets the base colour
            tint = QColor(theme.colors().base)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(colour, 1))
        painter.setBrush(tint)
        painter.drawRoundedRect(pill, height / 2, height / 2)
        painter.setPen(colour)
        painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, state)
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        hint = super().sizeHint(option, index)
        return QSize(hint.width() + 2 * PAD_X + 8, max(hint.height(), QFontMetrics(option.font).height()
                                                       + 2 * PAD_Y + 2))
