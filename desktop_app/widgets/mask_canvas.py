"""The mask editor's canvas: the photo, the mask over it in blue (its opacity adjustable), the
clicks and the box, and the mouse input of each tool (click, box, brush, eraser). The wheel
zooms around the pointer, the middle button (or Space held with the left one) pans. It edits
nothing in the project; the editor turns what it reports into jobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QKeySequence, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QGraphicsScene,
    QGraphicsView,
    QLabel,
    QSlider,
    QSpinBox,
    QToolBar,
)

OVERLAY = QColor(30, 144, 255, 255)  # drawn at the canvas's overlay opacity
LOST = QColor(231, 76, 60, 200)  # what a box prompt took away (see mask_compare)
TOOLS = ("add", "remove", "box", "brush", "erase")
MAX_ZOOM = 16.0


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
        self.overlay_item.setOpacity(0.5)
        self.lost_item = self.scene().addPixmap(QPixmap())
        self.lost_item.setZValue(1.5)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self._zoomed = False  # fitted to the view until the user zooms
        self._pan: QPointF | None = None
        self._space = False
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

    def set_images(self, photo: QImage, mask: QImage, keep_view: bool = False) -> None:
        """Show a photo and its mask; `keep_view`: the same photo again (a new mask), so the
        zoom and scroll position stay."""
        self.photo_item.setPixmap(QPixmap.fromImage(photo))
        same = self.scene().sceneRect() == QRectF(photo.rect())
        self.scene().setSceneRect(QRectF(photo.rect()))
        self.set_mask(mask)
        if not (keep_view and same and self._zoomed):
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
        self._zoomed = False
        if not self.scene().sceneRect().isEmpty():
            self.fitInView(self.scene().sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if not self._zoomed:
            self.fit()

    def zoom(self, factor: float) -> None:
        """Zoom by `factor` around the pointer (or the middle), between fitted and 16×."""
        rect = self.scene().sceneRect()
        if rect.isEmpty():
            return
        fitted = min(self.viewport().width() / rect.width(),
                     self.viewport().height() / rect.height())
        now = self.transform().m11()
        target = min(max(now * factor, fitted), MAX_ZOOM)
        if target <= fitted * 1.0001:
            self.fit()
            return
        self._zoomed = True
        self.scale(target / now, target / now)

    def zoom_level(self) -> float:
        return self.transform().m11()

    def set_overlay_opacity(self, opacity: float) -> None:
        self.overlay_item.setOpacity(min(max(opacity, 0.0), 1.0))

    def set_lost(self, lost: QImage | None) -> None:
        """Draw the pixels a box prompt took away in red (None: clear)."""
        if lost is None or lost.isNull():
            self.lost_item.setPixmap(QPixmap())
            return
        red = QImage(lost.size(), QImage.Format.Format_ARGB32_Premultiplied)
        red.fill(LOST)
        painter = QPainter(red)
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_DestinationIn)
        painter.drawImage(0, 0, lost)
        painter.end()
        self.lost_item.setPixmap(QPixmap.fromImage(red))

    def wheelEvent(self, event) -> None:
        steps = event.angleDelta().y() / 120
        if steps:
            self.zoom(1.25 ** steps)
        event.accept()

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            self.viewport().unsetCursor()
            return
        super().keyReleaseEvent(event)

    def _pan_to(self, pos: QPointF) -> None:
        assert self._pan is not None
        delta = pos - self._pan
        self._pan = pos
        for bar, d in ((self.horizontalScrollBar(), delta.x()),
                       (self.verticalScrollBar(), delta.y())):
            bar.setValue(bar.value() - round(d))

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
        if event.button() == Qt.MouseButton.MiddleButton or self._space:
            self._pan = event.position()
            return
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
        if self._pan is not None:
            self._pan_to(event.position())
            return
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
        if self._pan is not None:
            self._pan = None
            return
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


def step_brush(brush_size: QSpinBox, direction: int) -> None:
    """[ and ]: the brush a fifth smaller or bigger (at least one pixel's change)."""
    size = brush_size.value()
    brush_size.setValue(size + direction * max(1, round(size * 0.2)))


def view_toolbar(canvas: MaskCanvas, brush_size: QSpinBox) -> tuple[QToolBar, QSlider]:
    """Zoom, fit, brush size and the mask's opacity: the view, not the mask. Returns the bar
    and its opacity slider."""
    bar = QToolBar()
    bar.setObjectName("maskViewBar")
    for text, keys, tip, slot in (
            ("−", [QKeySequence.StandardKey.ZoomOut, "-"], "Zoom out (−, wheel)",
             lambda: canvas.zoom(1 / 1.25)),
            ("+", [QKeySequence.StandardKey.ZoomIn, "+", "="], "Zoom in (+, wheel)",
             lambda: canvas.zoom(1.25)),
            ("Fit", ["0", "Ctrl+0"], "Fit the photo in view (0)", canvas.fit),
            ("[", ["["], "Smaller brush ([)", lambda: step_brush(brush_size, -1)),
            ("]", ["]"], "Bigger brush (])", lambda: step_brush(brush_size, +1))):
        action = bar.addAction(text, slot)
        action.setShortcuts([QKeySequence(k) for k in keys])
        action.setToolTip(tip)
    opacity = QSlider(Qt.Orientation.Horizontal)
    opacity.setObjectName("overlayOpacity")
    opacity.setRange(0, 100)
    opacity.setValue(round(canvas.overlay_item.opacity() * 100))
    opacity.setFixedWidth(90)
    opacity.setToolTip("How strongly the mask is drawn over the photo")
    opacity.valueChanged.connect(lambda v: canvas.set_overlay_opacity(v / 100))
    bar.addWidget(QLabel(" mask "))
    bar.addWidget(opacity)
    return bar, opacity
