"""The gallery's grid: a list model that fetches its rows from the catalogue a page at a time
(Qt asks for more as the view scrolls: canFetchMore/fetchMore), thumbnails decoded off the
GUI thread, and a delegate that paints each picture with its badges: CP-CLIP and TI-CLIP,
"test models" when the tiny test models scored it, a star for a favourite, "layout" for a
layout-guided picture, its rating as stars.

Thousands of pictures stay smooth: a page is one SQL query (engine.project GalleryQuery with
limit/offset), only the cells on screen are painted, and only their thumbnails decoded.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPixmap
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from desktop_app.state.thumbnails import BackgroundLoader, render_cutout
from engine.models.profiles import made_with_test_models
from engine.project import GalleryQuery

PAGE = 48  # rows per fetch: about two screens; a fetch runs on the GUI thread (~0.2 ms a row)
THUMB = 160
CELL = QSize(THUMB + 12, THUMB + 40)
ImageRole = Qt.ItemDataRole.UserRole
BADGE_BG = QColor(0, 0, 0, 160)
TEST_BG = QColor(138, 90, 0, 220)
RATING_BG = QColor(40, 40, 40, 200)


SCORE_DECIMALS = 2  # how a score is shown on a badge, and so what a score filter compares


def score_text(value: float | None) -> str:
    return "–" if value is None else f"{round(value, SCORE_DECIMALS):.{SCORE_DECIMALS}f}"


def lowest_shown_as(bound: float) -> float:
    """The least score whose badge reads `bound` or more: a filter "CP ≥ 0.97" keeps every
    picture whose badge reads 0.97 (0.9651 too), by the badge's own rounding."""
    shown = round(bound, SCORE_DECIMALS)
    edge = shown - 0.5 * 10.0 ** -SCORE_DECIMALS
    while round(edge, SCORE_DECIMALS) >= shown:  # round() is monotone: walk to the exact edge
        edge = math.nextafter(edge, -math.inf)
    while round(edge, SCORE_DECIMALS) < shown:
        edge = math.nextafter(edge, math.inf)
    return edge


def render_thumb(path: str, side: int) -> Any:
    return render_cutout(path, side)



def made_by_test_models(image: Any) -> bool:
    """The picture's recipe names a test profile: it is noise, whatever scored it."""
    return made_with_test_models(image.generation.settings)

class GalleryModel(QAbstractListModel):
    """The pictures a GalleryQuery selects, fetched PAGE rows at a time."""

    def __init__(self, thumbs: BackgroundLoader) -> None:
        super().__init__()
        self.thumbs = thumbs
        self.project: Any = None
        self.query = GalleryQuery()
        self.images: list[Any] = []
        self.total = 0
        self._rows_by_key: dict[object, int] = {}
        thumbs.ready.connect(self._thumb_ready)

    # ------------------------------------------------------------------ Qt's model

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.images)

    def canFetchMore(self, parent: QModelIndex = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and len(self.images) < self.total

    def fetchMore(self, parent: QModelIndex = QModelIndex()) -> None:  # noqa: B008
        if parent.isValid() or self.project is None:
            return
        page = self._page(len(self.images), PAGE)
        if not page:
            self.total = len(self.images)
            return
        start = len(self.images)
        self.beginInsertRows(QModelIndex(), start, start + len(page) - 1)
        self.images += page
        self.endInsertRows()

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.images):
            return None
        image = self.images[index.row()]
        if role == ImageRole:
            return image
        if role == Qt.ItemDataRole.DisplayRole:
            return image.generation.prompt
        if role == Qt.ItemDataRole.ToolTipRole:
            g = image.generation
            lines = [f"#{g.id}: {g.prompt}", f"seed {g.seed} · run {g.run_id or '–'} · "
                     f"{(g.created_at or '').replace('T', ' ')[:16]}",
                     f"CP-CLIP {score_text(image.cp_clip)} · TI-CLIP {score_text(image.ti_clip)}"]
            if g.rating:
                lines.append(f"rated {rating_badge(g.rating)} ({g.rating} of 5)")
            if made_by_test_models(image):
                lines.append("Made with the test models: a picture of noise, kept apart from "
                             "real work.")
            if image.test_model:
                lines.append("Scored by the test models: the numbers mean nothing.")
            return "\n".join(lines)
        if role == Qt.ItemDataRole.DecorationRole:
            return self.pixmap(index.row())
        return None

    # ------------------------------------------------------------------ reading

    def _page(self, offset: int, limit: int) -> list[Any]:
        query = dataclasses.replace(self.query, limit=limit, offset=offset)
        return self.project.gallery(query)

    def set_query(self, project: Any, query: GalleryQuery) -> None:
        """Show what `query` selects from its first page."""
        self.beginResetModel()
        self.project, self.query = project, query
        self.images, self.total = [], 0
        if project is not None:
            self.total = project.gallery_count(query)
            self.images = self._page(0, PAGE) if self.total else []
        self.endResetModel()

    def reload(self) -> None:
        """Read again as many rows as are shown (the data changed)."""
        if self.project is None:
            return
        shown = max(PAGE, len(self.images))
        self.beginResetModel()
        self.total = self.project.gallery_count(self.query)
        self.images = self._page(0, shown) if self.total else []
        self.endResetModel()

    def row_of(self, generation_id: int) -> int | None:
        return next((r for r, image in enumerate(self.images) if image.id == generation_id),
                    None)

    # ------------------------------------------------------------------ thumbnails

    def pixmap(self, row: int) -> QPixmap | None:
        image = self.images[row]
        if image.path is None:
            return None
        key = ("gallery", str(image.path), THUMB)
        found = self.thumbs.request(key, render_thumb, str(image.path), THUMB)
        if found is None:
            self._rows_by_key[key] = row
            return None
        return QPixmap.fromImage(found)

    def _thumb_ready(self, key: object, _image: object) -> None:
        row = self._rows_by_key.pop(key, None)
        if row is not None and row < len(self.images):
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


def rating_badge(rating: int | None) -> str:
    """A tile's rating: as many stars as it has ('' when unrated)."""
    return "★" * rating if rating else ""


def _badge(painter: QPainter, rect: QRect, text: str, bg: QColor, right: bool = False,
           bottom: bool = False, row: int = 0) -> None:
    metrics = painter.fontMetrics()
    w, h = metrics.horizontalAdvance(text) + 8, metrics.height() + 2
    x = rect.right() - w - 2 if right else rect.left() + 2
    y = rect.bottom() - h - 2 if bottom else rect.top() + 2 + row * (h + 2)
    box = QRect(x, y, w, h)
    painter.fillRect(box, bg)
    painter.setPen(Qt.GlobalColor.white)
    painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)


class GalleryDelegate(QStyledItemDelegate):
    """A picture with its score badges, and its prompt below."""

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        return CELL

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        image = index.data(ImageRole)
        if image is None:
            return
        painter.save()
        cell = option.rect.adjusted(3, 3, -3, -3)
        if option.state & QStyle.StateFlag.State_Selected:
            painter.fillRect(cell, option.palette.highlight())
        frame = QRect(cell.left() + 3, cell.top() + 3, THUMB, THUMB)
        pixmap = index.data(Qt.ItemDataRole.DecorationRole)
        if isinstance(pixmap, QPixmap) and not pixmap.isNull():
            scaled = pixmap.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                                   Qt.TransformationMode.FastTransformation
                                   if pixmap.width() >= THUMB else
                                   Qt.TransformationMode.SmoothTransformation)
            x = frame.left() + (THUMB - scaled.width()) // 2
            y = frame.top() + (THUMB - scaled.height()) // 2
            painter.drawPixmap(x, y, scaled)
        else:
            painter.fillRect(frame, QColor(60, 60, 60))
        if image.scored:
            _badge(painter, frame, f"CP {score_text(image.cp_clip)} · TI "
                                   f"{score_text(image.ti_clip)}", BADGE_BG, bottom=True)
        else:
            _badge(painter, frame, "not scored yet", BADGE_BG, bottom=True)
        if image.test_model or made_by_test_models(image):
            _badge(painter, frame, "test models", TEST_BG)
        if image.generation.favourite:
            _badge(painter, frame, "★", QColor(230, 160, 0, 230), right=True)
        elif image.guided:
            _badge(painter, frame, "layout", BADGE_BG, right=True)
        if image.generation.rating:
            _badge(painter, frame, rating_badge(image.generation.rating), RATING_BG, right=True,
                   row=1)
        painter.setPen(option.palette.highlightedText().color()
                       if option.state & QStyle.StateFlag.State_Selected
                       else option.palette.text().color())
        text_rect = QRect(cell.left() + 3, frame.bottom() + 3, THUMB,
                          cell.bottom() - frame.bottom() - 3)
        text = painter.fontMetrics().elidedText(image.generation.prompt,
                                                Qt.TextElideMode.ElideRight, THUMB)
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, text)
        painter.restore()
