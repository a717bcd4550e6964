"""Dataset review: a grid of the built items with their masks and captions. What the filter
rejected is dimmed with its reason; accept (A, Enter, ✓) or reject (R, Delete, ✗) any item, or
give it back to the filter's verdict (U); double-click (or Space) shows it large. Pictures made
with the test models carry a badge: a run on a real profile leaves them out of training.

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

from desktop_app.state.project_reads import built_with_test_models
from desktop_app.state.thumbnails import BackgroundLoader, render_item
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


TEST_BADGE = "test model"
TEST_NOTE = ("Made with the test models (its picture is noise): a run on a real profile "
             "leaves it out of training unless asked to include such pictures.")


def automatic_state(item: DatasetItem) -> str:
    """The filter's own verdict on an item. The filter keeps an item with no failed check and
    rejects one with reasons (engine.dataset.quality); the reasons stay when the user decides,
    so the verdict can always be restored."""
    return "auto-rejected" if item.reasons else "auto-kept"


def review_counts(items: list[DatasetItem], test_profile: bool = True) -> str:
    """The counts line. `test_profile`: the profile in use is a test one, so pictures made
    with the test models would train; on a real profile they are left out."""
    states = Counter(i.review_state for i in items)
    kept = [i for i in items if i.review_state in KEPT]
    tests = sum(1 for i in kept if built_with_test_models(i))
    used = len(kept) if test_profile else len(kept) - tests
    left_out = "" if test_profile or not tests else (
        f" ({tests} kept picture{'s' * (tests != 1)} made with the test models "
        f"{'are' if tests != 1 else 'is'} left out on this profile)")
    return (f"{len(items)} item{'s' * (len(items) != 1)}: {states['auto-kept']} kept by the "
            f"filter, {states['accepted']} accepted, {states['auto-rejected']} rejected by the "
            f"filter, {states['rejected']} rejected by you. {used} will be used for "
            f"training{left_out}.")


def caption_lines(metrics: Any, text: str, width: int, max_lines: int) -> list[str]:
    """`text` word-wrapped into at most `max_lines` lines of `width` pixels; what does not fit
    ends the last line with an ellipsis (never cut off mid-word without one)."""
    words, lines = text.split(), []
    while words and len(lines) < max_lines:
        line = words.pop(0)
        while words and metrics.horizontalAdvance(f"{line} {words[0]}") <= width:
            line = f"{line} {words.pop(0)}"
        lines.append(line)
    if lines and (words or metrics.horizontalAdvance(lines[-1]) > width):
        rest = " ".join([lines[-1], *words])
        lines[-1] = metrics.elidedText(rest + (" …" if words else ""),
                                       Qt.TextElideMode.ElideRight, width)
        if words and not lines[-1].endswith("…"):
            lines[-1] = metrics.elidedText(lines[-1] + " …", Qt.TextElideMode.ElideRight,
                                           width)
    return lines


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
            test = f"\n{TEST_NOTE}" if built_with_test_models(item) else ""
            return (f"#{item.build_index}: {item.token_caption or item.caption}\n"
                    f"{STATE_TEXT[item.review_state]}{reasons}{test}")
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

    def set_states(self, changes: list[tuple[int, str]]) -> None:
        """Set review states by item id (a review, its undo or redo); rows on show follow."""
        if self.project is None:
            return
        rows = {item.id: row for row, item in enumerate(self.items)}
        for item_id, state in changes:
            stored = self.project.set_review_state(item_id, state)
            row = rows.get(item_id)
            if row is not None:
                self.items[row] = stored
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
        for k, text in enumerate(caption_lines(metrics, caption, text_rect.width(), 2)):
            painter.drawText(QRect(text_rect.left(), text_rect.top() + (k + 1) * line,
                                   text_rect.width(), line), Qt.AlignmentFlag.AlignLeft, text)
        if built_with_test_models(item):
            badge = QRect(image_rect.left() + 4, image_rect.top() + 4,
                          metrics.horizontalAdvance(TEST_BADGE) + 10, line + 2)
            painter.fillRect(badge, QColor(255, 214, 102, 230))
            painter.setPen(QColor(107, 78, 0))
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, TEST_BADGE)
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
    """The grid; A/Enter accepts, R/Delete rejects, U gives the selected items back to the
    filter's verdict; Space or a double-click shows the current item large."""

    review = Signal(list, str)  # rows, new state ("automatic": the filter's verdict)
    open_item = Signal(int)  # row

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
        self.doubleClicked.connect(lambda index: self.open_item.emit(index.row()))

    def keyPressEvent(self, event) -> None:
        rows = sorted(i.row() for i in self.selectionModel().selectedIndexes())
        key = event.key()
        if rows and key in (Qt.Key.Key_A, Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.review.emit(rows, "accepted")
        elif rows and key in (Qt.Key.Key_R, Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.review.emit(rows, "rejected")
        elif rows and key == Qt.Key.Key_U:
            self.review.emit(rows, "automatic")
        elif key == Qt.Key.Key_Space and self.currentIndex().isValid():
            self.open_item.emit(self.currentIndex().row())
        else:
            super().keyPressEvent(event)
