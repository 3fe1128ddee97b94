"""Before/after comparison of one image: split slider, flicker, amplified difference, zoom and pan.

Mouse: drag the split line (split mode) or pan (elsewhere, when zoomed); wheel zooms at the cursor;
double-click toggles fit / 100 %. Keyboard: +/- zoom, 0 fit, 1 actual pixels, Left/Right move the split.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

MODES = ("split", "flicker", "before", "after", "difference")


def difference_image(before: QImage, after: QImage, gain: float = 10.0) -> QImage:
    """|after - before| x gain around mid-grey, so an invisible watermark becomes visible on purpose."""
    a = _to_array(before)
    b = _to_array(after)
    if a.shape != b.shape:
        return QImage()
    diff = np.clip(128 + (b.astype(np.int16) - a.astype(np.int16)) * gain, 0, 255).astype(np.uint8)
    diff[a[..., 3] == 0, :3] = 128   # what no one sees in the artwork is no difference either
    diff[..., 3] = 255
    h, w = diff.shape[:2]
    return QImage(diff.tobytes(), w, h, w * 4, QImage.Format.Format_RGBA8888).copy()


def _to_array(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_RGBA8888)
    ptr = image.constBits()
    return np.frombuffer(ptr, np.uint8, image.sizeInBytes()).reshape(image.height(), image.bytesPerLine())[
        :, : image.width() * 4].reshape(image.height(), image.width(), 4).copy()


class CompareView(QWidget):
    zoom_changed = Signal(float)
    mode_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Before and after comparison")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(240, 180)
        self.before = QImage()
        self.after = QImage()
        self._difference: QImage | None = None
        self.mode = "split"
        self.split = 0.5
        self.zoom: float | None = None  # None: fit to the view
        self.pan = QPointF(0, 0)
        self.placeholder = "Select an image to preview it"
        self.flicker_showing_after = True
        self._drag: str | None = None
        self._last = QPointF()
        self.flicker_timer = QTimer(self)
        self.flicker_timer.setInterval(600)
        self.flicker_timer.timeout.connect(self._flip)

    # -- state ----------------------------------------------------------------------------------
    def set_images(self, before: QImage, after: QImage | None = None) -> None:
        self.before = before
        self.after = after if after is not None else QImage()
        self._difference = None
        self.update()

    def clear(self, placeholder: str | None = None) -> None:
        if placeholder is not None:
            self.placeholder = placeholder
        self.set_images(QImage(), QImage())

    def set_placeholder(self, text: str) -> None:
        self.placeholder = text
        self.update()

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(mode)
        self.mode = mode
        if mode == "flicker":
            self.flicker_timer.start()
        else:
            self.flicker_timer.stop()
        self.mode_changed.emit(mode)
        self.update()

    def set_zoom(self, zoom: float | None) -> None:
        self.zoom = None if zoom is None else max(0.05, min(16.0, zoom))
        if zoom is None:
            self.pan = QPointF(0, 0)
        self.zoom_changed.emit(self.effective_zoom())
        self.update()

    def effective_zoom(self) -> float:
        if self.zoom is not None:
            return self.zoom
        if self.before.isNull():
            return 1.0
        return min(self.width() / self.before.width(), self.height() / self.before.height(), 1.0)

    def _flip(self) -> None:
        self.flicker_showing_after = not self.flicker_showing_after
        self.update()

    def image_rect(self) -> QRectF:
        zoom = self.effective_zoom()
        w, h = self.before.width() * zoom, self.before.height() * zoom
        return QRectF((self.width() - w) / 2 + self.pan.x(), (self.height() - h) / 2 + self.pan.y(), w, h)

    # -- painting -------------------------------------------------------------------------------
    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        palette = self.palette()
        painter.fillRect(self.rect(), palette.base())
        if self.before.isNull():
            painter.setPen(palette.placeholderText().color())
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.placeholder)
            return
        _checkerboard(painter, self.image_rect())
        smooth = self.effective_zoom() < 1.0
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        target = self.image_rect()
        after = self.after if not self.after.isNull() else self.before
        label = ""
        if self.mode == "before":
            painter.drawImage(target, self.before)
            label = "Before"
        elif self.mode == "after":
            painter.drawImage(target, after)
            label = "After" if not self.after.isNull() else "After (computing…)"
        elif self.mode == "flicker":
            painter.drawImage(target, after if self.flicker_showing_after else self.before)
            label = "After" if self.flicker_showing_after else "Before"
        elif self.mode == "difference":
            if self._difference is None and not self.after.isNull():
                self._difference = difference_image(self.before, self.after)
            painter.drawImage(target, self._difference if self._difference is not None else self.before)
            label = "Difference ×10 (what the watermark changed)"
        else:
            painter.drawImage(target, after)
            split_x = target.left() + target.width() * self.split
            painter.save()
            painter.setClipRect(QRectF(target.left(), target.top(), split_x - target.left(), target.height()))
            painter.drawImage(target, self.before)
            painter.restore()
            painter.setPen(QPen(QColor(255, 255, 255, 230), 2))
            painter.drawLine(QPointF(split_x, target.top()), QPointF(split_x, target.bottom()))
            painter.setPen(QPen(QColor(0, 0, 0, 120), 1))
            painter.drawLine(QPointF(split_x + 1.5, target.top()), QPointF(split_x + 1.5, target.bottom()))
            _handle(painter, QPointF(split_x, target.center().y()))
            _badge(painter, QPointF(max(8, target.left() + 8), max(8, target.top() + 8)), "Before", left=True)
            _badge(painter, QPointF(min(self.width() - 8, target.right() - 8), max(8, target.top() + 8)),
                   "After" if not self.after.isNull() else "After (computing…)", left=False)
        if label:
            _badge(painter, QPointF(max(8, target.left() + 8), max(8, target.top() + 8)), label, left=True)
        _badge(painter, QPointF(self.width() - 8, self.height() - 30), f"{self.effective_zoom() * 100:.0f} %", left=False)

    # -- interaction ----------------------------------------------------------------------------
    def _near_split(self, x: float) -> bool:
        target = self.image_rect()
        return self.mode == "split" and abs(x - (target.left() + target.width() * self.split)) < 12

    def mousePressEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        if self.mode == "split" and self.image_rect().contains(pos) and (self._near_split(pos.x()) or self.zoom is None):
            self._drag = "split"
            self._move_split(pos.x())
        else:
            self._drag = "pan"
        self._last = pos

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        if self._drag == "split":
            self._move_split(pos.x())
        elif self._drag == "pan":
            self.pan += pos - self._last
            self.update()
        else:
            split_cursor = self._near_split(pos.x()) or (self.mode == "split" and self.zoom is None)
            self.setCursor(Qt.CursorShape.SplitHCursor if split_cursor else Qt.CursorShape.OpenHandCursor)
        self._last = pos

    def mouseReleaseEvent(self, _event: QMouseEvent) -> None:
        self._drag = None

    def mouseDoubleClickEvent(self, _event: QMouseEvent) -> None:
        self.set_zoom(1.0 if self.zoom is None else None)

    def _move_split(self, x: float) -> None:
        target = self.image_rect()
        if target.width() > 0:
            self.split = min(1.0, max(0.0, (x - target.left()) / target.width()))
            self.update()

    def wheelEvent(self, event: QWheelEvent) -> None:
        if self.before.isNull():
            return
        old = self.effective_zoom()
        factor = 1.25 if event.angleDelta().y() > 0 else 0.8
        new = max(0.05, min(16.0, old * factor))
        # keep the point under the cursor still
        cursor = event.position()
        centre = QPointF(self.width() / 2, self.height() / 2) + self.pan
        self.pan += (cursor - centre) * (1 - new / old)
        self.set_zoom(new)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.set_zoom(self.effective_zoom() * 1.25)
        elif key == Qt.Key.Key_Minus:
            self.set_zoom(self.effective_zoom() * 0.8)
        elif key == Qt.Key.Key_0:
            self.set_zoom(None)
        elif key == Qt.Key.Key_1:
            self.set_zoom(1.0)
        elif key == Qt.Key.Key_Left:
            self.split = max(0.0, self.split - 0.05)
            self.update()
        elif key == Qt.Key.Key_Right:
            self.split = min(1.0, self.split + 0.05)
            self.update()
        else:
            super().keyPressEvent(event)


_CHECKER: QBrush | None = None


def _checkerboard(painter: QPainter, rect: QRectF, cell: int = 8) -> None:
    """Transparent areas of artwork read as transparent, not as black or white paint."""
    global _CHECKER
    if _CHECKER is None:
        tile = QImage(cell * 2, cell * 2, QImage.Format.Format_RGB32)
        tile.fill(QColor(204, 204, 204))
        tile_painter = QPainter(tile)
        tile_painter.fillRect(0, 0, cell, cell, QColor(170, 170, 170))
        tile_painter.fillRect(cell, cell, cell, cell, QColor(170, 170, 170))
        tile_painter.end()
        _CHECKER = QBrush(tile)
    painter.fillRect(rect.intersected(QRectF(painter.viewport())), _CHECKER)


def _badge(painter: QPainter, anchor: QPointF, text: str, left: bool) -> None:
    painter.save()
    font = QFont(painter.font())
    font.setPointSizeF(max(8.0, font.pointSizeF() * 0.95))
    painter.setFont(font)
    metrics = painter.fontMetrics()
    w, h = metrics.horizontalAdvance(text) + 14, metrics.height() + 6
    x = anchor.x() if left else anchor.x() - w
    rect = QRectF(x, anchor.y(), w, h)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(0, 0, 0, 150))
    painter.drawRoundedRect(rect, 5, 5)
    painter.setPen(QColor(255, 255, 255))
    painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
    painter.restore()


def _handle(painter: QPainter, centre: QPointF) -> None:
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(QPen(QColor(0, 0, 0, 140), 1))
    painter.setBrush(QColor(255, 255, 255, 235))
    painter.drawEllipse(centre, 13, 13)
    painter.setPen(QPen(QColor(60, 60, 60), 2))
    for sign in (-1, 1):
        tip = centre + QPointF(sign * 7, 0)
        painter.drawLine(tip, tip + QPointF(-sign * 4, -4))
        painter.drawLine(tip, tip + QPointF(-sign * 4, 4))
    painter.restore()
