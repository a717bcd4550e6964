"""Each EM iteration of an extraction: a slider through the iterations, the photo with every
mask over it (the run's overlay.png), each concept's mask on its own, and how much each mask
covers and how like the previous iteration's it is. Mask images are decoded off the GUI
thread."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from desktop_app.state.thumbnails import BackgroundLoader, render_cutout

MASK_SIDE = 120


def iteration_text(record: Any) -> str:
    parts = [f"Iteration {record.iteration} (step {record.step})"]
    for token, area in record.area.items():
        iou = record.iou.get(token)
        parts.append(f"{token}: {area * 100:.0f}% of the photo"
                     + (f", {iou:.2f} like the last" if iou is not None else ""))
    if record.converged:
        parts.append("the masks stopped changing")
    return " · ".join(parts)


class IterationView(QWidget):
    def __init__(self, thumbs: BackgroundLoader) -> None:
        super().__init__()
        self.thumbs = thumbs
        self.iterations: list[Any] = []
        self.busy = False
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("extractIteration")
        self.slider.setRange(0, 0)
        self.slider.valueChanged.connect(self.show_iteration)
        self.overlay = QLabel()
        self.overlay.setObjectName("extractOverlay")
        self.overlay.setMinimumSize(320, 240)
        self.overlay.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.mask_row = QHBoxLayout()
        self.mask_labels: dict[str, QLabel] = {}
        self._keys: dict[object, str] = {}
        thumbs.ready.connect(self._ready)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.slider)
        lay.addWidget(self.overlay, 1)
        lay.addLayout(self.mask_row)
        lay.addWidget(self.label)

    def set_iterations(self, records: list[Any], busy: bool) -> None:
        """Show these iterations; the newest when the last one was on show."""
        at_end = self.slider.value() >= len(self.iterations) - 1
        self.iterations, self.busy = list(records), busy
        count = len(records)
        self.slider.setRange(0, max(0, count - 1))
        self.slider.setEnabled(count > 1)
        if at_end and count:
            self.slider.setValue(count - 1)
        self.show_iteration(self.slider.value())

    def show_iteration(self, index: int) -> None:
        while self.mask_row.count():
            widget = self.mask_row.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        self.mask_labels = {}
        if not 0 <= index < len(self.iterations):
            self.overlay.clear()
            self.label.setText("No iteration yet." if self.busy else "")
            return
        record = self.iterations[index]
        pixmap = QPixmap(str(record.overlay))
        if not pixmap.isNull():
            self.overlay.setPixmap(pixmap.scaled(
                self.overlay.width(), self.overlay.height(), Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation))
        self.label.setText(iteration_text(record))
        for token, path in record.masks.items():
            cell = QWidget()
            column = QVBoxLayout(cell)
            column.setContentsMargins(0, 0, 0, 0)
            label = QLabel()
            label.setFixedSize(MASK_SIDE, MASK_SIDE)
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label.setToolTip(token)
            self.mask_labels[token] = label
            column.addWidget(label)
            column.addWidget(QLabel(token), 0, Qt.AlignmentFlag.AlignHCenter)
            self.mask_row.addWidget(cell)
            key = ("extract-mask", str(path), MASK_SIDE)
            self._keys[key] = token
            found = self.thumbs.request(key, render_cutout, str(path), MASK_SIDE)
            if found is not None:
                self._ready(key, found)
        self.mask_row.addStretch(1)

    def _ready(self, key: object, image: object) -> None:
        token = self._keys.get(key)
        label = self.mask_labels.get(token) if token else None
        if label is not None:  # a mask is stored at the model's size: fit it to the cell
            label.setPixmap(QPixmap.fromImage(image).scaled(  # type: ignore[arg-type]
                MASK_SIDE, MASK_SIDE, Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.FastTransformation))
