"""A small live line plot for training curves (QtCharts is not in PySide6-Essentials)."""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

COLOURS = (QColor(66, 133, 244), QColor(234, 67, 53), QColor(52, 168, 83), QColor(251, 188, 5))


class LossPlot(QWidget):
    def __init__(self, series: tuple[str, ...] = ("loss_d", "loss_g"), parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.series = series
        self.points: dict[str, list[tuple[float, float]]] = {name: [] for name in series}
        self.setMinimumHeight(160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAccessibleName("Training loss plot")

    def clear(self) -> None:
        self.points = {name: [] for name in self.series}
        self.update()

    def add(self, step: float, metrics: dict) -> None:
        for name in self.series:
            value = metrics.get(name)
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.points[name].append((float(step), float(value)))
        self.update()

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        painter.fillRect(self.rect(), palette.base())
        text = palette.text().color()
        area = QRectF(self.rect()).adjusted(48, 12, -12, -28)
        everything = [p for pts in self.points.values() for p in pts]
        painter.setPen(QPen(palette.mid().color(), 1))
        painter.drawRect(area)
        if not everything:
            painter.setPen(palette.placeholderText().color())
            painter.drawText(area, Qt.AlignmentFlag.AlignCenter, "Loss curves appear here while training runs")
            return
        x0, x1 = min(p[0] for p in everything), max(p[0] for p in everything)
        y0, y1 = min(p[1] for p in everything), max(p[1] for p in everything)
        if x1 == x0:
            x1 = x0 + 1
        if y1 - y0 < 1e-9:
            y0, y1 = y0 - 0.5, y1 + 0.5

        def map_point(x: float, y: float) -> QPointF:
            return QPointF(area.left() + (x - x0) / (x1 - x0) * area.width(),
                           area.bottom() - (y - y0) / (y1 - y0) * area.height())

        painter.setPen(text)
        for fraction in (0.0, 0.5, 1.0):
            value = y0 + (y1 - y0) * fraction
            y = area.bottom() - area.height() * fraction
            painter.drawText(QRectF(0, y - 8, 44, 16), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                             f"{value:.3g}")
        painter.drawText(QRectF(area.left(), area.bottom() + 4, area.width(), 20), Qt.AlignmentFlag.AlignCenter,
                         f"step {int(x0)} – {int(x1)}")
        legend_x = area.left() + 8
        for colour, name in zip(COLOURS, self.series, strict=False):
            pts = self.points[name]
            if len(pts) >= 1:
                path = QPainterPath(map_point(*pts[0]))
                for point in pts[1:]:
                    path.lineTo(map_point(*point))
                painter.setPen(QPen(colour, 2))
                painter.drawPath(path)
            painter.fillRect(QRectF(legend_x, area.top() + 8, 12, 4), colour)
            painter.setPen(text)
            painter.drawText(QPointF(legend_x + 16, area.top() + 14), name)
            legend_x += 24 + painter.fontMetrics().horizontalAdvance(name)
