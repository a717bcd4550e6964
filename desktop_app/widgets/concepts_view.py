"""The concepts: a list on the left (thumbnail, name, token, class word) and the page of the
selected concept (its photos with their masks drawn over, how each mask was made).

Both accept dropped photos: on a concept they are added to it, on empty space they start a
new concept. Both read the project when the AppState says their part of it changed. The
concept's page renames it (name and token) and deletes it with what was made from it, after
a confirmation that counts what goes (widgets/concept_edit.py).
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from desktop_app.pages.start_page import WelcomePanel
from desktop_app.state.observable import AppState, Bindings
from desktop_app.state.project_reads import CHECK_HINT, mask_label
from desktop_app.state.thumbnails import BackgroundLoader, render_photo
from desktop_app.widgets.concept_drop import (
    CLASS_WORD_HELP,
    TOKEN_HELP,
    accept_as_copy,
    paths_from_mime,
)
from desktop_app.widgets.concept_edit import ConceptRenameDialog, concept_delete_box
from engine.errors import MyCanvasError

LIST_ICON = 56
GRID_ICON = 168
PHOTO_ID = Qt.ItemDataRole.UserRole
MASK_ID = Qt.ItemDataRole.UserRole + 1
FLAG_MARK = "⚠"  # a mask flagged as likely wrong
CONCEPT_ID = Qt.ItemDataRole.UserRole


class _DropList(QListWidget):
    """A list that takes dropped files: on an item or on empty space."""

    files_dropped = Signal(list, object)  # paths, the concept id dropped on (or None)

    def __init__(self) -> None:
        super().__init__()
        self.setAcceptDrops(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DropOnly)

    def concept_at(self, item: QListWidgetItem | None) -> int | None:
        return None if item is None else item.data(CONCEPT_ID)

    def dragEnterEvent(self, event) -> None:
        accept_as_copy(event)

    def dragMoveEvent(self, event) -> None:
        accept_as_copy(event)

    def dropEvent(self, event) -> None:
        paths = paths_from_mime(event.mimeData())
        if not paths or not accept_as_copy(event):
            event.ignore()
            return
        self.files_dropped.emit(paths, self.concept_at(self.itemAt(event.position().toPoint())))


class ConceptList(_DropList):
    """The left panel: every concept of the project; the selection is AppState's."""

    def __init__(self, state: AppState, thumbs: BackgroundLoader) -> None:
        super().__init__()
        self.setObjectName("conceptList")
        self.state = state
        self.thumbs = thumbs
        self.setIconSize(QSize(LIST_ICON, LIST_ICON))
        self.setSpacing(2)
        self.setWordWrap(True)
        self.setTextElideMode(Qt.TextElideMode.ElideNone)  # a long name wraps, never "Pink su…"
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._keys: dict[object, QListWidgetItem] = {}
        self._shown_project: object = None
        self._shown: list[object] = []
        self.bindings = Bindings()
        for name in ("project", "concepts_rev", "photos_rev"):
            self.bindings.on(state, name, lambda _v: self.reload())
        self.bindings.on(state, "selected_concept", self._select)
        self.currentItemChanged.connect(self._current_changed)
        thumbs.ready.connect(self._thumb_ready)
        self.reload()

    def reload(self) -> None:
        project = self.state.project
        rows = [] if project is None else [
            (c, project.photos(c.id), project.current_masks(c.id)) for c in project.concepts()]
        if project is self._shown_project and rows == self._shown:
            self._select(self.state.selected_concept)
            return  # nothing it shows changed: keep the rows (and what is selected)
        self._shown_project, self._shown = project, rows
        self.blockSignals(True)
        self.clear()
        self._keys.clear()
        if project is not None:
            for concept, photos, masks in rows:
                item = QListWidgetItem(f"{concept.name}\n{concept.token} · {concept.class_word}"
                                       f" · {len(photos)} photo{'s' * (len(photos) != 1)}")
                item.setData(CONCEPT_ID, concept.id)
                item.setToolTip("Drop more photos here to add them to this concept")
                if photos:
                    mask = masks.get(photos[0].id)
                    key = ("photo", photos[0].file, mask.file if mask else None, LIST_ICON)
                    self._keys[key] = item
                    image = self.thumbs.request(key, render_photo,
                                                str(project.abspath(photos[0].file)),
                                                str(project.abspath(mask.file)) if mask else None,
                                                LIST_ICON)
                    if image is not None:
                        item.setIcon(QIcon(QPixmap.fromImage(image)))
                self.addItem(item)
        self.blockSignals(False)
        self._select(self.state.selected_concept)

    def _select(self, concept_id: int | None) -> None:
        for row in range(self.count()):
            if self.item(row).data(CONCEPT_ID) == concept_id:
                if self.currentRow() != row:
                    self.setCurrentRow(row)
                return
        if concept_id is not None and self.count():
            self.state.selected_concept = self.item(0).data(CONCEPT_ID)
        elif concept_id is None and self.count():
            self.setCurrentRow(0)

    def _current_changed(self, item: QListWidgetItem | None, _previous: object) -> None:
        if item is not None:
            self.state.selected_concept = item.data(CONCEPT_ID)

    def _thumb_ready(self, key: object, image: object) -> None:
        item = self._keys.get(key)
        if item is not None:
            item.setIcon(QIcon(QPixmap.fromImage(image)))

    def teardown(self) -> None:
        self.bindings.clear()


class PhotoGrid(_DropList):
    """The photos of the concept on show; drops add to that concept."""

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("photoGrid")
        self.concept_id: int | None = None
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setIconSize(QSize(GRID_ICON, GRID_ICON))
        self.setGridSize(QSize(GRID_ICON + 24, GRID_ICON + 52))
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setWordWrap(True)

    def concept_at(self, item: QListWidgetItem | None) -> int | None:
        return self.concept_id


class ConceptPhotosView(QWidget):
    """One concept: editable name and class word, its photos with masks, and actions. With no
    concept yet, the welcome panel says what to do first."""

    photo_activated = Signal(int)  # photo id: open the mask editor
    files_dropped = Signal(list, object)
    add_photos_requested = Signal(int)
    segment_requested = Signal(int, bool)  # concept id, redo
    new_concept_requested = Signal()
    paste_requested = Signal()
    message = Signal(str)

    def __init__(self, state: AppState, thumbs: BackgroundLoader) -> None:
        super().__init__()
        self.state = state
        self.thumbs = thumbs
        self.concept_id: int | None = None
        self.hint = QLabel()
        self.hint.setObjectName("conceptsHint")
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setWordWrap(True)
        self.hint.setAcceptDrops(False)
        self.welcome = WelcomePanel()
        self.welcome.new_concept_requested.connect(self.new_concept_requested)
        self.welcome.paste_requested.connect(self.paste_requested)
        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("conceptName")
        self.token_label = QLabel()
        self.token_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.token_label.setToolTip(TOKEN_HELP)
        self.class_edit = QLineEdit()
        self.class_edit.setObjectName("conceptClass")
        self.class_edit.setToolTip(CLASS_WORD_HELP)
        self.status = QLabel()
        self.status.setObjectName("conceptStatus")
        self.status.setWordWrap(True)
        self.grid = PhotoGrid()
        self.grid.files_dropped.connect(self.files_dropped)
        self.grid.itemActivated.connect(self._activated)
        self.grid.itemClicked.connect(self._activated)
        add = QPushButton("Add photos…")
        add.clicked.connect(lambda: self.concept_id and self.add_photos_requested.emit(
            self.concept_id))
        self.again = QPushButton("Find the objects again")
        self.again.setToolTip("Make new masks for every photo of this concept")
        self.again.clicked.connect(lambda: self.concept_id and self.segment_requested.emit(
            self.concept_id, True))
        self.remove_photo = QPushButton("Remove photo")
        self.remove_photo.clicked.connect(self._remove_photo)
        self.rename_button = QPushButton("Rename…")
        self.rename_button.setObjectName("conceptRenameButton")
        self.rename_button.setToolTip("Change the concept's name or token")
        self.rename_button.clicked.connect(self.open_rename)
        self.delete_button = QPushButton("Delete concept…")
        self.delete_button.setObjectName("conceptDeleteButton")
        self.delete_button.setToolTip("Delete the concept with its photos, masks and what was "
                                      "built from it (asks first, saying what goes)")
        self.delete_button.clicked.connect(self.delete_concept)
        form = QFormLayout()
        form.addRow("Name", self.name_edit)
        form.addRow("Token", self.token_label)
        form.addRow("Class word", self.class_edit)
        buttons = QHBoxLayout()
        for button in (add, self.again, self.remove_photo):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.rename_button)
        buttons.addWidget(self.delete_button)
        detail = QWidget()
        lay = QVBoxLayout(detail)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(form)
        lay.addWidget(self.status)
        lay.addWidget(self.grid, 1)
        lay.addLayout(buttons)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.hint)
        self.stack.addWidget(self.welcome)
        self.stack.addWidget(detail)
        self.detail = detail
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.stack)
        self.name_edit.editingFinished.connect(self._rename)
        self.class_edit.editingFinished.connect(self._set_class_word)
        self._keys: dict[object, QListWidgetItem] = {}
        self._shown: object = None
        thumbs.ready.connect(self._thumb_ready)
        self.bindings = Bindings()
        for name in ("project", "concepts_rev", "photos_rev", "selected_concept", "settings"):
            self.bindings.on(state, name, lambda _v: self.reload())
        self.reload()

    def reload(self) -> None:
        project = self.state.project
        concept = None
        if project is not None and self.state.selected_concept is not None:
            try:
                concept = project.concept(self.state.selected_concept)
            except MyCanvasError:
                concept = None
        if concept is None:
            self.concept_id = self.grid.concept_id = None
            self._shown = None
            if project is not None and not project.concepts():
                self.stack.setCurrentWidget(self.welcome)
                return
            self.hint.setText(
                "Open or create a project (Project menu) to begin." if project is None else
                "Choose a concept on the left, or drop photos here for a new one.")
            self.stack.setCurrentWidget(self.hint)
            return
        self.stack.setCurrentWidget(self.detail)
        changed = concept.id != self.concept_id
        self.concept_id = self.grid.concept_id = concept.id
        # Keep what the user is typing, unless another concept is now on show.
        if changed or not self.name_edit.hasFocus():
            self.name_edit.setText(concept.name)
        if changed or not self.class_edit.hasFocus():
            self.class_edit.setText(concept.class_word)
        self.token_label.setText(concept.token)
        photos = project.photos(concept.id)
        masks = project.current_masks(concept.id)
        shown = (project, concept.id, photos, masks)
        if shown == self._shown:
            return  # the grid already shows this: keep its selection and scroll position
        self._shown = shown
        current = self.grid.currentItem()
        keep = current.data(PHOTO_ID) if current is not None and not changed else None
        self.grid.clear()
        self._keys.clear()
        for photo in photos:
            mask = masks.get(photo.id)
            label = mask_label(mask) if mask else "no mask yet"
            flagged = mask is not None and bool(mask.flag)
            item = QListWidgetItem(f"{photo.original_name}\n"
                                   + (f"{FLAG_MARK} check: click to fix" if flagged else label))
            item.setSizeHint(QSize(GRID_ICON + 20, GRID_ICON + 48))
            item.setData(PHOTO_ID, photo.id)
            item.setData(MASK_ID, mask.id if mask else None)
            why = f"likely wrong: {mask.flag}\n" if mask is not None and mask.flag else ""
            item.setToolTip(f"{photo.original_name} ({photo.width}×{photo.height})\n"
                            f"mask: {label}\n{why}Click to fix the mask")
            key = ("photo", photo.file, mask.file if mask else None, GRID_ICON)
            self._keys[key] = item
            image = self.thumbs.request(key, render_photo, str(project.abspath(photo.file)),
                                        str(project.abspath(mask.file)) if mask else None,
                                        GRID_ICON)
            if image is not None:
                item.setIcon(QIcon(QPixmap.fromImage(image)))
            self.grid.addItem(item)
            if photo.id == keep:
                self.grid.blockSignals(True)
                self.grid.setCurrentItem(item)
                self.grid.blockSignals(False)
        missing = sum(1 for p in photos if p.id not in masks)
        flagged = sum(1 for m in masks.values() if m.flag)
        self.status.setText(
            f"{len(photos)} photo{'s' * (len(photos) != 1)}"
            + (f", {missing} without a mask yet" if missing else ", every one with a mask")
            + (f". {FLAG_MARK} {flagged} mask{'s' * (flagged != 1)} look{'s' * (flagged == 1)} "
               f"wrong: open the photo and {CHECK_HINT}" if flagged else "")
            + ". Click a photo to fix its mask.")
        self.again.setEnabled(bool(photos))
        self.remove_photo.setEnabled(bool(photos))

    def _activated(self, item: QListWidgetItem) -> None:
        self.photo_activated.emit(item.data(PHOTO_ID))

    def _thumb_ready(self, key: object, image: object) -> None:
        item = self._keys.get(key)
        if item is not None:
            item.setIcon(QIcon(QPixmap.fromImage(image)))

    def _rename(self) -> None:
        project, cid = self.state.project, self.concept_id
        if project is None or cid is None:
            return
        new = self.name_edit.text().strip()
        try:
            if new != project.concept(cid).name:
                project.rename_concept(cid, new)
                self.state.touch("concepts")
        except MyCanvasError as exc:
            self.message.emit(str(exc))
            self.name_edit.setText(project.concept(cid).name)

    def open_rename(self) -> ConceptRenameDialog | None:
        project, cid = self.state.project, self.concept_id
        if project is None or cid is None:
            return None
        dialog = ConceptRenameDialog(project.concept(cid), self)
        dialog.accepted.connect(lambda: self.rename(cid, *dialog.values()))
        dialog.open()
        self.rename_dialog = dialog
        return dialog

    def rename(self, concept_id: int, name: str, token: str) -> bool:
        """Give the concept a new name and token; a refusal or bad input is said, nothing
        changed."""
        project = self.state.project
        if project is None:
            return False
        try:
            old = project.concept(concept_id)
            new = project.rename_concept(concept_id, name, token)
        except MyCanvasError as exc:
            self.message.emit(str(exc))
            return False
        self.state.touch("concepts", "dataset")
        if new.token != old.token:
            self.message.emit(f"{old.name} {old.token} is now {new.name} {new.token}. Runs "
                              f"already trained keep {old.token}.")
        return True

    def delete_concept(self) -> bool:
        """Delete the shown concept with what was made from it, after the confirmation."""
        project, cid = self.state.project, self.concept_id
        if project is None or cid is None:
            return False
        try:
            refusal = project.concept_refusal(cid, "delete")
            if refusal:
                self.message.emit(refusal)
                return False
            box = concept_delete_box(project.concept_footprint(cid), self)
            if not self.ask(box):
                return False
            done = project.remove_concept(cid)
        except MyCanvasError as exc:
            self.message.emit(str(exc))
            return False
        self.state.selected_concept = None
        self.state.touch("concepts", "photos", "layouts", "dataset")
        self.message.emit(f"Deleted {done.name} {done.token}: {', '.join(done.goes())}.")
        return True

    def ask(self, box: QMessageBox) -> bool:
        """Show a confirmation; True when the user chose to go on (tests answer instead)."""
        return box.exec() == QMessageBox.StandardButton.Yes

    def _set_class_word(self) -> None:
        project, cid = self.state.project, self.concept_id
        if project is None or cid is None:
            return
        new = self.class_edit.text().strip()
        try:
            if new != project.concept(cid).class_word:
                project.set_class_word(cid, new)
                self.state.touch("concepts")
        except MyCanvasError as exc:
            self.message.emit(str(exc))
            self.class_edit.setText(project.concept(cid).class_word)

    def _remove_photo(self) -> None:
        item = self.grid.currentItem()
        project = self.state.project
        if item is None or project is None:
            self.message.emit("Select a photo to remove first.")
            return
        project.delete_photo(item.data(PHOTO_ID))
        self.state.touch("photos", "concepts")

    def teardown(self) -> None:
        self.bindings.clear()

