"""One dataset item, large: the picture with each concept's outline, the whole caption, the
filter's reasons, and the review keys (A accept, R reject, U the filter's verdict, ← → the
neighbours, Escape closes). Opened by a double-click (or Space) on the review grid."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from desktop_app.state.project_reads import built_with_test_models
from desktop_app.state.thumbnails import render_item
from desktop_app.widgets.dataset_review import (
    STATE_TEXT,
    TEST_NOTE,
    DatasetItemsModel,
    automatic_state,
)

VIEW_SIDE = 640


class ItemViewer(QDialog):
    review = Signal(list, str)  # rows, new state (as the grid's)

    def __init__(self, model: DatasetItemsModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("datasetItemViewer")
        self.setWindowTitle("Dataset item")
        self.model = model
        self.row = -1
        self._key: object = None
        self.picture = QLabel("Loading…")
        self.picture.setObjectName("viewerPicture")
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setMinimumSize(VIEW_SIDE // 2, VIEW_SIDE // 2)
        self.caption = QLabel()
        self.caption.setObjectName("viewerCaption")
        self.caption.setWordWrap(True)
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.verdict = QLabel()
        self.verdict.setObjectName("viewerVerdict")
        self.verdict.setWordWrap(True)
        buttons = QHBoxLayout()
        for text, tip, slot in (("◀", "Previous (←)", lambda: self.step(-1)),
                                ("✓ Accept", "A", lambda: self._review("accepted")),
                                ("✗ Reject", "R", lambda: self._review("rejected")),
                                ("Filter's verdict", "U", lambda: self._review("automatic")),
                                ("▶", "Next (→)", lambda: self.step(1))):
            button = QPushButton(text)
            button.setToolTip(tip)
            button.setAutoDefault(False)
            button.clicked.connect(slot)
            buttons.addWidget(button)
        lay = QVBoxLayout(self)
        lay.addWidget(self.picture, 1)
        lay.addWidget(self.caption)
        lay.addWidget(self.verdict)
        lay.addLayout(buttons)
        model.thumbs.ready.connect(self._ready)
        model.dataChanged.connect(lambda *_a: self._describe())
        self.resize(VIEW_SIDE + 40, VIEW_SIDE + 160)

    def show_row(self, row: int) -> None:
        if not 0 <= row < self.model.rowCount() or self.model.project is None:
            return
        self.row = row
        item = self.model.items[row]
        masks = tuple(item.masks[cid] for cid in sorted(item.masks))
        project = self.model.project
        self._key = ("item", item.image_file, masks, VIEW_SIDE)
        image = self.model.thumbs.request(self._key, render_item,
                                          str(project.abspath(item.image_file)),
                                          [str(project.abspath(m)) for m in masks], VIEW_SIDE)
        if image is not None:
            self._ready(self._key, image)
        else:
            self.picture.setText("Loading…")
        self._describe()
        self.show()
        self.raise_()

    def _ready(self, key: object, image: object) -> None:
        if key == self._key:
            self.picture.setPixmap(QPixmap.fromImage(image))

    def _describe(self) -> None:
        if not 0 <= self.row < len(self.model.items):
            return
        item = self.model.items[self.row]
        self.setWindowTitle(f"Dataset item #{item.build_index} ({self.row + 1} of "
                            f"{self.model.rowCount()})")
        self.caption.setText(item.token_caption or item.caption)
        lines = [STATE_TEXT[item.review_state]
                 + ("" if item.review_state == automatic_state(item) else
                    f" (the filter said: {STATE_TEXT[automatic_state(item)]})")]
        if item.reasons:
            lines.append(f"Filter: {item.reasons}")
        if built_with_test_models(item):
            lines.append(TEST_NOTE)
        self.verdict.setText("\n".join(lines))

    def step(self, delta: int) -> None:
        self.show_row(min(max(self.row + delta, 0), self.model.rowCount() - 1))

    def _review(self, state: str) -> None:
        if self.row >= 0:
            self.review.emit([self.row], state)

    def keyPressEvent(self, event) -> None:
        key = event.key()
        actions = {Qt.Key.Key_Left: lambda: self.step(-1), Qt.Key.Key_Right: lambda: self.step(1),
                   Qt.Key.Key_A: lambda: self._review("accepted"),
                   Qt.Key.Key_R: lambda: self._review("rejected"),
                   Qt.Key.Key_U: lambda: self._review("automatic")}
        if key in actions:
            actions[key]()
        else:
            super().keyPressEvent(event)
