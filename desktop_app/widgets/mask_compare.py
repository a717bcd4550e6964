"""Before and after a box prompt: what the mask had inside the box and lost.

A box around the whole object can make the segmenter's mask worse than the automatic one. The
editor never lets that pass unseen: when the new mask lost a noticeable part of what the
previous mask had inside the box, the lost pixels are drawn in red and the CompareBar asks to
keep the new mask or go back, with the previous mask one click away.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton

from desktop_app.state.thumbnails import mask_array

# Lost less than this share of the previous mask inside the box: not worth a question.
NOTICEABLE = 0.02


def box_loss(before_path: str, after_path: str, box: tuple[float, float, float, float],
             shown: tuple[int, int]) -> tuple[float, object]:
    """(share of the previous mask inside `box` that the new mask lacks, those pixels as an
    8-bit alpha QImage of the `shown` size). `box` is in photo pixels (x0, y0, x1, y1)."""
    import numpy as np
    from PIL import Image
    from PySide6.QtGui import QImage

    with Image.open(after_path) as im:
        size = im.size  # the photo's own pixels
    before, after = mask_array(before_path, size), mask_array(after_path, size)
    x0, y0, x1, y1 = (round(v) for v in box)
    inside = np.zeros_like(before)
    inside[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = True
    had = before & inside
    lost = had & ~after
    share = float(lost.sum()) / float(had.sum()) if had.any() else 0.0
    small = Image.fromarray(np.where(lost, 255, 0).astype(np.uint8), "L").resize(
        shown, Image.Resampling.NEAREST)
    image = QImage(small.tobytes(), small.width, small.height, small.width,
                   QImage.Format.Format_Alpha8).copy()
    return share, image


class CompareBar(QFrame):
    """Shown after a box prompt lost part of the previous mask inside the box."""

    show_before = Signal(bool)  # True: the previous mask on the canvas, False: the new one
    keep = Signal()
    go_back = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("maskCompareBar")
        self.setStyleSheet("#maskCompareBar { background: #fde8e6; border: 1px solid #d99; }")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.before_button = QPushButton("Show before")
        self.before_button.setObjectName("compareBefore")
        self.before_button.setCheckable(True)
        self.before_button.setToolTip("Show the previous mask; click again for the new one")
        self.before_button.toggled.connect(self._toggled)
        keep = QPushButton("Keep the new mask")
        keep.setObjectName("compareKeep")
        back = QPushButton("Go back to the previous")
        back.setObjectName("compareBack")
        keep.clicked.connect(self.keep)
        back.clicked.connect(self.go_back)
        lay = QHBoxLayout(self)
        lay.addWidget(self.label, 1)
        for button in (self.before_button, keep, back):
            lay.addWidget(button)
        self.hide()

    def ask(self, share: float) -> None:
        self.before_button.setChecked(False)
        self.label.setText(f"The box left out {share:.0%} of what the previous mask had inside "
                           "it (red). Compare before and after, then keep one.")
        self.show()

    def _toggled(self, before: bool) -> None:
        self.before_button.setText("Show after" if before else "Show before")
        self.show_before.emit(before)
