"""A picture (a photo, or an empty canvas) with one coloured box per name drawn over it: drag
to draw the box of the current name, click to mark a point of it (right-click: a point that
is not it). Boxes and points are kept in 0..1 of the picture, so the caller converts them to
its own units (photo pixels for extraction, the canvas for layout-guided generation).

Marks are kept per key; a key may be shown under another label (Extract keys them by a stable
row id, so renaming a concept keeps its box)."""

from __future__ import annotations

from dataclasses import dataclass, field

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from desktop_app.state.thumbnails import ITEM_COLOURS

CLICK_PIXELS = 4  # a press and release closer than this is a click, not a box


@dataclass
class Marks:
    box: tuple[float, float, float, float] | None = None  # x0, y0, x1, y1 in 0..1
    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)


class BoxCanvas(QWidget):
    changed = Signal(str)  # the name whose marks changed

    def __init__(self, points: bool = False) -> None:
        super().__init__()
        self.setObjectName("boxCanvas")
        self.setMinimumSize(240, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.allow_points = points
        self.image = QImage()
        self.aspect = 1.0  # width / height of an empty canvas
        self.names: list[str] = []  # the keys, in order
        self.labels: dict[str, str] = {}  # what a key is shown as, when not the key itself
        self.marks: dict[str, Marks] = {}
        self.current: str | None = None
        self._press: QPointF | None = None
        self._drag: QPointF | None = None

    def sizeHint(self) -> QSize:
        return QSize(420, 420)

    # ------------------------------------------------------------------ content

    def set_image(self, image: QImage | None, aspect: float = 1.0) -> None:
        self.image = image if image is not None else QImage()
        self.aspect = (self.image.width() / max(1, self.image.height())
                       if not self.image.isNull() else aspect)
        self.update()

    def set_names(self, names: list[str], labels: dict[str, str] | None = None) -> None:
        """The names (keys) that can have marks; marks of names no longer listed go.
        `labels`: what to show for a key instead of the key."""
        self.names = list(names)
        self.labels = dict(labels or {})
        self.marks = {n: self.marks.get(n, Marks()) for n in names}
        if self.current not in self.marks:
            self.current = names[0] if names else None
        self.update()

    def set_current(self, name: str | None) -> None:
        self.current = name
        self.update()

    def set_box(self, name: str, box: tuple[float, float, float, float] | None) -> None:
        self.marks.setdefault(name, Marks()).box = box
        self.update()

    def clear_marks(self, name: str | None = None) -> None:
        for key in ([name] if name else list(self.marks)):
            if key in self.marks:
                self.marks[key] = Marks()
        self.update()

    def colour(self, name: str) -> QColor:
        index = self.names.index(name) if name in self.names else 0
        return QColor(*ITEM_COLOURS[index % len(ITEM_COLOURS)])

    # ------------------------------------------------------------------ geometry

    def frame(self) -> QRectF:
        """Where the picture is drawn: the widget, fitted to the aspect ratio."""
        w, h = self.width() - 2, self.height() - 2
        if w / max(1, h) > self.aspect:
            fw, fh = h * self.aspect, h
        else:
            fw, fh = w, w / self.aspect
        return QRectF((self.width() - fw) / 2, (self.height() - fh) / 2, fw, fh)

    def to_unit(self, pos: QPointF) -> tuple[float, float]:
        f = self.frame()
        x = min(1.0, max(0.0, (pos.x() - f.left()) / f.width()))
        y = min(1.0, max(0.0, (pos.y() - f.top()) / f.height()))
        return x, y

    def from_unit(self, x: float, y: float) -> QPointF:
        f = self.frame()
        return QPointF(f.left() + x * f.width(), f.top() + y * f.height())

    # ------------------------------------------------------------------ input

    def mousePressEvent(self, event) -> None:
        if self.current is not None:
            self._press = self._drag = event.position()

    def mouseMoveEvent(self, event) -> None:
        if self._press is not None:
            self._drag = event.position()
            self.update()

    def mouseReleaseEvent(self, event) -> None:
        start, self._press, self._drag = self._press, None, None
        if start is None or self.current is None:
            return
        end = event.position()
        marks = self.marks.setdefault(self.current, Marks())
        if (end - start).manhattanLength() < CLICK_PIXELS:
            if not self.allow_points:
                return
            marks.points.append(self.to_unit(end))
            marks.labels.append(0 if event.button() == Qt.MouseButton.RightButton else 1)
        else:
            (x0, y0), (x1, y1) = self.to_unit(start), self.to_unit(end)
            marks.box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        self.update()
        self.changed.emit(self.current)

    # ------------------------------------------------------------------ drawing

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        f = self.frame()
        if self.image.isNull():
            painter.fillRect(f, QColor(235, 235, 235))
            painter.setPen(QColor(160, 160, 160))
            painter.drawRect(f)
        else:
            painter.drawImage(f, self.image)
        for name in self.names:
            marks = self.marks.get(name)
            if marks is None:
                continue
            colour = self.colour(name)
            width = 3 if name == self.current else 2
            if marks.box is not None:
                x0, y0, x1, y1 = marks.box
                rect = QRectF(self.from_unit(x0, y0), self.from_unit(x1, y1))
                painter.setPen(QPen(colour, width))
                painter.drawRect(rect)
                painter.fillRect(QRectF(rect.left(), rect.top(), 90, 16), colour)
                painter.setPen(Qt.GlobalColor.black)
                painter.drawText(rect.adjusted(3, 0, 0, 0), self.labels.get(name, name))
            for (x, y), label in zip(marks.points, marks.labels, strict=True):
                painter.setPen(QPen(Qt.GlobalColor.white, 1.5))
                painter.setBrush(colour if label else QColor(231, 76, 60))
                painter.drawEllipse(self.from_unit(x, y), 5, 5)
        if self._press is not None and self._drag is not None and self.current is not None:
            painter.setPen(QPen(self.colour(self.current), 2, Qt.PenStyle.DashLine))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(QRectF(self._press, self._drag))
        painter.end()
