"""Dataset review: a grid of the built items with their masks and captions. What the filter
rejected is dimmed with its reason; accept (A, Enter, ✓) or reject (R, Delete, ✗) any item.

The grid is a model/view pair so a dataset of thousands of items stays cheap: cells are painted
by a delegate and their thumbnails decoded off the GUI thread.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
)

from desktop_app.thumbnails import BackgroundLoader, render_item
from engine.project import DatasetItem, Project

ITEM_SIDE = 176
CELL = QSize(ITEM_SIDE + 16, ITEM_SIDE + 74)
BUTTON = 22
ItemRole = Qt.ItemDataRole.UserRole
STATE_TEXT = {"auto-kept": "kept by the filter", "auto-rejected": "rejected by the filter",
              "accepted": "accepted by you", "rejected": "rejected by you"}
STATE_COLOUR = {"auto-kept": QColor(90, 90, 90), "auto-rejected": QColor(179, 38, 30),
                "accepted": QColor(27, 125, 58), "rejected": QColor(179, 38, 30)}
REJECTED = ("auto-rejected", "rejected")
KEPT = ("auto-kept", "accepted")


def review_counts(items: list[DatasetItem]) -> str:
    states = Counter(i.review_state for i in items)
    used = states["auto-kept"] + states["accepted"]
    return (f"{len(items)} item{'s' * (len(items) != 1)}: {states['auto-kept']} kept by the "
            f"filter, {states['accepted']} accepted, {states['auto-rejected']} rejected by the "
            f"filter, {states['rejected']} rejected by you. {used} will be used for training.")


class DatasetItemsModel(QAbstractListModel):
    """The project's dataset items (optionally only kept or only rejected ones)."""

    def __init__(self, thumbs: BackgroundLoader) -> None:
        super().__init__()
        self.thumbs = thumbs
        self.items: list[DatasetItem] = []
        self.project: Project | None = None
        self.show = "all"  # all | kept | rejected
        self._rows_by_key: dict[object, int] = {}
        thumbs.ready.connect(self._thumb_ready)

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.items)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        item = self.items[index.row()]
        if role == ItemRole:
            return item
        if role == Qt.ItemDataRole.DisplayRole:
            return item.caption
        if role == Qt.ItemDataRole.ToolTipRole:
            reasons = f"\n{item.reasons}" if item.reasons else ""
            return (f"#{item.build_index}: {item.token_caption or item.caption}\n"
                    f"{STATE_TEXT[item.review_state]}{reasons}")
        if role == Qt.ItemDataRole.DecorationRole:
            return self.pixmap(item)
        return None

    def pixmap(self, item: DatasetItem) -> QPixmap | None:
        if self.project is None:
            return None
        masks = tuple(item.masks[cid] for cid in sorted(item.masks))
        key = ("item", item.image_file, masks, ITEM_SIDE)
        image = self.thumbs.request(key, render_item, str(self.project.abspath(item.image_file)),
                                    [str(self.project.abspath(m)) for m in masks], ITEM_SIDE)
        return QPixmap.fromImage(image) if image is not None else None

    def reload(self, project: Project | None) -> None:
        """Re-read the items; rows only added at the end (a build in progress) are appended,
        so the selection and the scroll position stay where they are."""
        self.project = project
        items = [] if project is None else project.dataset_items()
        if self.show == "kept":
            items = [i for i in items if i.review_state in KEPT]
        elif self.show == "rejected":
            items = [i for i in items if i.review_state in REJECTED]
        old_ids = [i.id for i in self.items]
        if [i.id for i in items[:len(old_ids)]] == old_ids and len(items) >= len(old_ids):
            for row, item in enumerate(items[:len(old_ids)]):
                if item != self.items[row]:
                    self.items[row] = item
                    self.dataChanged.emit(self.index(row), self.index(row))
            if len(items) > len(old_ids):
                self.beginInsertRows(QModelIndex(), len(old_ids), len(items) - 1)
                self.items.extend(items[len(old_ids):])
                self.endInsertRows()
        else:
            self.beginResetModel()
            self.items = items
            self.endResetModel()
        self._rows_by_key = {("item", i.image_file,
                              tuple(i.masks[c] for c in sorted(i.masks)), ITEM_SIDE): row
                             for row, i in enumerate(self.items)}

    def set_state(self, row: int, state: str) -> None:
        if self.project is None or not 0 <= row < len(self.items):
            return
        item = self.items[row]
        if item.review_state == state:
            return
        self.items[row] = self.project.set_review_state(item.id, state)
        self.dataChanged.emit(self.index(row), self.index(row))

    def _thumb_ready(self, key: object, _image: object) -> None:
        row = self._rows_by_key.get(key)
        if row is not None and row < len(self.items):
            self.dataChanged.emit(self.index(row), self.index(row),
                                  [Qt.ItemDataRole.DecorationRole])


def button_rects(cell: QRect) -> tuple[QRect, QRect]:
    """Where the ✓ (accept) and ✗ (reject) buttons of a cell are."""
    top = cell.top() + 12
    reject = QRect(cell.right() - 12 - BUTTON, top, BUTTON, BUTTON)
    accept = QRect(reject.left() - 4 - BUTTON, top, BUTTON, BUTTON)
    return accept, reject


class DatasetItemDelegate(QStyledItemDelegate):
    state_clicked = Signal(int, str)  # row, new review state

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        return CELL

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        item: DatasetItem = index.data(ItemRole)
        rect = option.rect.adjusted(4, 4, -4, -4)
        painter.save()
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.fillRect(rect, QColor(205, 225, 250) if selected else QColor(248, 248, 248))
        rejected = item.review_state in REJECTED
        pixmap = index.data(Qt.ItemDataRole.DecorationRole)
        image_rect = QRect(rect.left() + 4, rect.top() + 4, ITEM_SIDE, ITEM_SIDE)
        painter.setOpacity(0.3 if rejected else 1.0)
        if isinstance(pixmap, QPixmap):
            target = QRect(0, 0, pixmap.width(), pixmap.height())
            target.moveCenter(image_rect.center())
            painter.drawPixmap(target, pixmap)
        else:
            painter.fillRect(image_rect, QColor(220, 220, 220))
        painter.setOpacity(1.0)
        accept, reject = button_rects(rect)
        for box, mark, active in ((accept, "✓", item.review_state == "accepted"),
                                  (reject, "✗", item.review_state == "rejected")):
            painter.setPen(QPen(QColor(80, 80, 80)))
            painter.setBrush(QColor(27, 125, 58) if active and mark == "✓" else
                             QColor(179, 38, 30) if active else QColor(255, 255, 255, 220))
            painter.drawRoundedRect(box, 4, 4)
            painter.setPen(QColor(255, 255, 255) if active else QColor(60, 60, 60))
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, mark)
        text_rect = QRect(rect.left() + 4, image_rect.bottom() + 4, rect.width() - 8, 60)
        font = QFont(option.font)
        font.setPointSizeF(max(7.0, font.pointSizeF() - 1))
        painter.setFont(font)
        state = STATE_TEXT[item.review_state]
        if item.review_state == "auto-rejected" and item.reasons:
            state += f": {item.reasons}"
        painter.setPen(STATE_COLOUR[item.review_state])
        metrics = painter.fontMetrics()
        line = metrics.height()
        painter.drawText(QRect(text_rect.left(), text_rect.top(), text_rect.width(), line),
                         Qt.AlignmentFlag.AlignLeft,
                         metrics.elidedText(f"#{item.build_index} · {state}",
                                            Qt.TextElideMode.ElideRight, text_rect.width()))
        painter.setPen(QColor(120, 120, 120) if rejected else QColor(30, 30, 30))
        caption = item.token_caption or item.caption
        painter.drawText(QRect(text_rect.left(), text_rect.top() + line, text_rect.width(),
                               2 * line), Qt.TextFlag.TextWordWrap, caption)
        painter.restore()

    def editorEvent(self, event, model, option: QStyleOptionViewItem, index: QModelIndex) -> bool:
        from PySide6.QtCore import QEvent

        if event.type() == QEvent.Type.MouseButtonRelease:
            accept, reject = button_rects(option.rect.adjusted(4, 4, -4, -4))
            pos = event.position().toPoint()
            if accept.contains(pos):
                self.state_clicked.emit(index.row(), "accepted")
                return True
            if reject.contains(pos):
                self.state_clicked.emit(index.row(), "rejected")
                return True
        return super().editorEvent(event, model, option, index)


class DatasetGrid(QListView):
    """The grid; A/Enter accepts and R/Delete rejects the selected items."""

    review = Signal(list, str)  # rows, new state

    def __init__(self, model: DatasetItemsModel) -> None:
        super().__init__()
        self.setObjectName("datasetGrid")
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)
        self.setGridSize(CELL)
        self.setSpacing(0)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setModel(model)
        self.delegate = DatasetItemDelegate(self)
        self.setItemDelegate(self.delegate)
        self.delegate.state_clicked.connect(lambda row, state: self.review.emit([row], state))

    def keyPressEvent(self, event) -> None:
        rows = sorted(i.row() for i in self.selectionModel().selectedIndexes())
        key = event.key()
        if rows and key in (Qt.Key.Key_A, Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.review.emit(rows, "accepted")
        elif rows and key in (Qt.Key.Key_R, Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.review.emit(rows, "rejected")
        else:
            super().keyPressEvent(event)
