"""The gallery's trash: the deleted pictures, restored (all or the selected ones) or deleted for
good after a confirmation that says how many. Nothing is lost until the trash is emptied; the
same project functions serve `mycanvas trash list|restore|empty` (engine/project/trash.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop_app.widgets.confirm import ask
from engine.project import GalleryQuery

ICON = 96
PICTURE_ID = Qt.ItemDataRole.UserRole


class TrashDialog(QDialog):
    """The trash of `project`; `call(method, *args)` makes a gallery write (the page's, so
    every view of the pictures follows)."""

    def __init__(self, project: Any, call: Callable[..., Any],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("galleryTrash")
        self.setWindowTitle("Trash")
        self.project, self.call = project, call
        self.list = QListWidget()
        self.list.setObjectName("trashList")
        self.list.setViewMode(QListWidget.ViewMode.IconMode)
        self.list.setIconSize(QSize(ICON, ICON))
        self.list.setGridSize(QSize(ICON + 70, ICON + 44))
        self.list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.list.setMovement(QListWidget.Movement.Static)
        self.list.setWordWrap(True)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.itemSelectionChanged.connect(self._buttons)
        self.status = QLabel()
        self.status.setObjectName("trashStatus")
        self.status.setWordWrap(True)
        self.restore_button = QPushButton("Restore")
        self.restore_button.setObjectName("trashRestore")
        self.restore_button.setToolTip("Put the selected pictures (all, when none is "
                                       "selected) back in the gallery")
        self.restore_button.clicked.connect(self.restore)
        self.empty_button = QPushButton("Empty the trash…")
        self.empty_button.setObjectName("trashEmpty")
        self.empty_button.clicked.connect(self.empty)
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        buttons = QHBoxLayout()
        buttons.addWidget(self.restore_button)
        buttons.addWidget(self.empty_button)
        buttons.addStretch(1)
        buttons.addWidget(close)
        lay = QVBoxLayout(self)
        lay.addWidget(self.status)
        lay.addWidget(self.list, 1)
        lay.addLayout(buttons)
        self.resize(720, 480)
        self.reload()

    def reload(self) -> None:
        pictures = self.project.gallery(GalleryQuery(trash="trash", sort="newest"))
        self.list.clear()
        for picture in pictures:
            g = picture.generation
            when = (g.deleted_at or "").replace("T", " ")[:16]
            item = QListWidgetItem(f"#{g.id} {g.prompt}\ndeleted {when}")
            item.setData(PICTURE_ID, picture.id)
            item.setToolTip(f"#{g.id}: {g.prompt}\nseed {g.seed} · run {g.run_id or '–'}\n"
                            f"deleted {when}")
            pixmap = QPixmap(str(picture.path)) if picture.path is not None else QPixmap()
            if not pixmap.isNull():
                item.setIcon(QIcon(pixmap.scaled(ICON, ICON, Qt.AspectRatioMode.KeepAspectRatio,
                                                 Qt.TransformationMode.SmoothTransformation)))
            self.list.addItem(item)
        count = len(pictures)
        self.status.setText(
            "The trash is empty: deleted pictures wait here until the trash is emptied."
            if not count else f"{count} deleted picture{'s' * (count != 1)}: restore them, "
            "or empty the trash to delete them (and their scores) for good.")
        self._buttons()

    def ids(self) -> list[int]:
        return [self.list.item(r).data(PICTURE_ID) for r in range(self.list.count())]

    def selected_ids(self) -> list[int]:
        return [item.data(PICTURE_ID) for item in self.list.selectedItems()]

    def _buttons(self) -> None:
        has = self.list.count() > 0
        self.restore_button.setEnabled(has)
        self.empty_button.setEnabled(has)
        self.restore_button.setText("Restore the selected" if self.selected_ids()
                                    else "Restore all")

    def restore(self) -> None:
        ids = self.selected_ids() or self.ids()
        if ids:
            self.call("restore_generations", ids)
            self.reload()

    def empty(self) -> None:
        count = self.list.count()
        if count and self.confirm_empty(count):
            self.call("empty_trash")
            self.reload()

    def confirm_empty(self, count: int) -> bool:
        """Ask before deleting for good (tests answer instead)."""
        return ask(self, "Empty the trash",
                   f"Delete the {count} picture{'s' * (count != 1)} in the trash, with their "
                   "scores, for good? This cannot be undone.")
