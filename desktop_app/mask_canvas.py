"""The mask editor's canvas: the photo, the mask over it in blue, the clicks and the box, and
the mouse input of each tool (click, box, brush, eraser). It edits nothing in the project; the
editor turns what it reports into jobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QGraphicsScene, QGraphicsView

OVERLAY = QColor(30, 144, 255, 120)
TOOLS = ("add", "remove", "box", "brush", "erase")


@dataclass(frozen=True)
class Prompts:
    """What the user pointed at, in photo pixels."""

    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] = ()
    box: tuple[float, float, float, float] | None = None

    def with_point(self, x: float, y: float, label: int) -> Prompts:
        return Prompts((*self.points, (x, y)), (*self.labels, label), self.box)

    def with_box(self, box: tuple[float, float, float, float]) -> Prompts:
        return Prompts(self.points, self.labels, box)

    def to_dict(self, concept_id: int) -> dict[str, Any]:
        out: dict[str, Any] = {"concept": concept_id, "points": [list(p) for p in self.points],
                               "labels": list(self.labels)}
        if self.box is not None:
            out["box"] = list(self.box)
        return out


class MaskCanvas(QGraphicsView):
    """The photo, the mask over it in blue, the clicks and the box; mouse input per tool."""

    point_clicked = Signal(float, float, int)  # shown-image pixels, label 1 or 0
    box_drawn = Signal(QRectF)
    stroke_done = Signal(str, QImage)  # "add" | "erase", the stroke as an alpha image

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("maskCanvas")
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setMouseTracking(True)
        self.setBackgroundBrush(QColor(40, 40, 40))
        self.photo_item = self.scene().addPixmap(QPixmap())
        self.overlay_item = self.scene().addPixmap(QPixmap())
        self.overlay_item.setZValue(1)
        self.box_item = self.scene().addRect(QRectF(), QPen(QColor(255, 200, 0), 2,
                                                            Qt.PenStyle.DashLine))
        self.box_item.setZValue(3)
        self.cursor_item = self.scene().addEllipse(QRectF(), QPen(QColor(255, 255, 255), 1,
                                                                  Qt.PenStyle.DashLine))
        self.cursor_item.setZValue(4)
        self.cursor_item.hide()
        self.markers: list[Any] = []
        self.mask = QImage()
        self.tool = "add"
        self.brush_radius = 12
        self._drag_start: QPointF | None = None
        self._stroke: QImage | None = None
        self._last: QPointF | None = None

    # ------------------------------------------------------------------ content

    def set_images(self, photo: QImage, mask: QImage) -> None:
        self.photo_item.setPixmap(QPixmap.fromImage(photo))
        self.scene().setSceneRect(QRectF(photo.rect()))
        self.set_mask(mask)
        self.fit()

    def set_mask(self, mask: QImage) -> None:
        self.mask = mask.copy()
        self._refresh_overlay()

    def show_prompts(self, prompts: Prompts, scale: float) -> None:
        for marker in self.markers:
            self.scene().removeItem(marker)
        self.markers = []
        r = max(4.0, self.scene().width() / 120)
        for (x, y), label in zip(prompts.points, prompts.labels, strict=True):
            colour = QColor(46, 204, 113) if label else QColor(231, 76, 60)
            item = self.scene().addEllipse(QRectF(x * scale - r, y * scale - r, 2 * r, 2 * r),
                                           QPen(Qt.GlobalColor.white, 1.5), colour)
            item.setZValue(2)
            self.markers.append(item)
        if prompts.box is None:
            self.box_item.setRect(QRectF())
        else:
            x0, y0, x1, y1 = (v * scale for v in prompts.box)
            self.box_item.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))

    def fit(self) -> None:
        if not self.scene().sceneRect().isEmpty():
            self.fitInView(self.scene().sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.fit()

    def _refresh_overlay(self) -> None:
        if self.mask.isNull():
            self.overlay_item.setPixmap(QPixmap())
            return
        overlay = QImage(self.mask.size(), QImage.Format.Format_ARGB32_Premultiplied)
        overlay.fill(OVERLAY)
        painter = QPainter(overlay)
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_DestinationIn)
        painter.drawImage(0, 0, self.mask)
        painter.end()
        self.overlay_item.setPixmap(QPixmap.fromImage(overlay))

    # ------------------------------------------------------------------ mouse

    def _inside(self, pos: QPointF) -> QPointF:
        rect = self.scene().sceneRect()
        return QPointF(min(max(pos.x(), 0.0), rect.width() - 1),
                       min(max(pos.y(), 0.0), rect.height() - 1))

    def mousePressEvent(self, event) -> None:
        if self.mask.isNull():
            return
        pos = self._inside(self.mapToScene(event.position().toPoint()))
        right = event.button() == Qt.MouseButton.RightButton
        if self.tool in ("add", "remove") or right:
            label = 0 if right or self.tool == "remove" else 1
            self.point_clicked.emit(pos.x(), pos.y(), label)
        elif self.tool == "box":
            self._drag_start = pos
            self.box_item.setRect(QRectF(pos, pos))
        else:
            self._stroke = QImage(self.mask.size(), QImage.Format.Format_Alpha8)
            self._stroke.fill(0)
            self._last = pos
            self._paint_to(pos)

    def mouseMoveEvent(self, event) -> None:
        pos = self._inside(self.mapToScene(event.position().toPoint()))
        if self.tool in ("brush", "erase"):
            r = self.brush_radius
            self.cursor_item.setRect(QRectF(pos.x() - r, pos.y() - r, 2 * r, 2 * r))
            self.cursor_item.show()
        else:
            self.cursor_item.hide()
        if self._drag_start is not None:
            self.box_item.setRect(QRectF(self._drag_start, pos).normalized())
        elif self._stroke is not None:
            self._paint_to(pos)

    def mouseReleaseEvent(self, event) -> None:
        if self._drag_start is not None:
            pos = self._inside(self.mapToScene(event.position().toPoint()))
            rect = QRectF(self._drag_start, pos).normalized()
            self._drag_start = None
            if rect.width() >= 3 and rect.height() >= 3:
                self.box_drawn.emit(rect)
        elif self._stroke is not None:
            stroke, self._stroke, self._last = self._stroke, None, None
            self.stroke_done.emit("add" if self.tool == "brush" else "erase", stroke)

    def _paint_to(self, pos: QPointF) -> None:
        """Draw the segment from the last point on the stroke and on the shown mask."""
        assert self._stroke is not None and self._last is not None
        erase = self.tool == "erase"
        pen = QPen(QColor(0, 0, 0, 255), 2 * self.brush_radius, Qt.PenStyle.SolidLine,
                   Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin)
        for target, clear in ((self._stroke, False), (self.mask, erase)):
            painter = QPainter(target)
            painter.setPen(pen)
            if clear:
                painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Clear)
            painter.drawLine(self._last, pos)
            painter.end()
        self._last = pos
        self._refresh_overlay()
