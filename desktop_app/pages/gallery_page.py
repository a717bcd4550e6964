"""The Gallery: every generated picture in a virtualised grid with its scores; filters (run,
concept, prompt text, score ranges, favourites, date), sort; a picture large with its concept
boxes (double-click), two compared side by side; favourite, rate (keys 0-5 on the selected
pictures or the large view, with undo), delete (to the trash, with undo; the Trash view lists,
restores and empties it), export the selected ones with their recipes; "use this recipe"
(only the fields the user ticks go to the Generate page); the HTML report (job "report"),
opened when written.

Export writes one picture per turn of the event loop, so a large selection never blocks it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QKeySequence, QShortcut, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop_app.state.gallery_model import GalleryDelegate, GalleryModel, lowest_shown_as
from desktop_app.state.jobs_bridge import JobsBridge
from desktop_app.state.observable import AppState, Bindings
from desktop_app.state.plain_words import for_window
from desktop_app.state.thumbnails import BackgroundLoader
from desktop_app.widgets.gallery_view import PictureDialog, RecipeFieldsDialog
from desktop_app.widgets.trash_view import TrashDialog
from engine.errors import MyCanvasError
from engine.jobs import JobEvent, JobFailed, JobFinished
from engine.project import SORTS, GalleryQuery
from engine.report import REPORT

DATES = (("any time", None), ("today", 0), ("last 7 days", 7), ("last 30 days", 30))
SORT_LABELS = {"newest": "newest first", "oldest": "oldest first", "cp-clip": "best CP-CLIP",
               "ti-clip": "best TI-CLIP", "rating": "rating"}


def _score_box(name: str, tip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setObjectName(name)
    box.setRange(-1.01, 1.0)
    box.setDecimals(2)
    box.setSingleStep(0.05)
    box.setSpecialValueText("any")
    box.setValue(-1.01)
    box.setToolTip(tip)
    return box


class TrashPictures(QUndoCommand):
    def __init__(self, page: GalleryPage, ids: list[int]) -> None:
        count = len(ids)
        super().__init__(f"delete {count} picture{'s' * (count != 1)}")
        self.page, self.ids = page, ids

    def redo(self) -> None:
        self.page.project_call("trash_generations", self.ids)

    def undo(self) -> None:
        self.page.project_call("restore_generations", self.ids)


class RatePictures(QUndoCommand):
    """Give pictures `stars` (0: no rating); undo gives each its rating back."""

    def __init__(self, page: GalleryPage, ids: list[int], stars: int,
                 before: dict[int, int | None]) -> None:
        count = len(ids)
        what = f"rate {count} picture{'s' * (count != 1)}"
        super().__init__(f"{what} {stars}★" if stars else f"clear the rating of "
                         f"{count} picture{'s' * (count != 1)}")
        self.page, self.ids, self.stars, self.before = page, ids, stars, before

    def redo(self) -> None:
        self.page.project_call("set_rating", self.ids, self.stars or None)

    def undo(self) -> None:
        by_rating: dict[int | None, list[int]] = {}
        for gid in self.ids:
            by_rating.setdefault(self.before.get(gid), []).append(gid)
        for rating, ids in by_rating.items():
            self.page.project_call("set_rating", ids, rating)


STAR_KEYS = {getattr(Qt.Key, f"Key_{n}"): n for n in range(6)}


class GalleryPage(QWidget):
    recipe_chosen = Signal(dict, set)  # a picture's settings, the fields to fill

    def __init__(self, state: AppState, jobs: JobsBridge, thumbs: BackgroundLoader) -> None:
        super().__init__()
        self.setObjectName("galleryPage")
        self.state, self.jobs = state, jobs
        self.undo_stack = QUndoStack(self)
        self._exporting: list[int] = []
        self._export_dir: Path | None = None
        self._export_done = 0
        self._stale = False
        self.export_timer = QTimer(self)
        self.export_timer.setObjectName("galleryExport")
        self.export_timer.setInterval(0)
        self.export_timer.timeout.connect(self._export_next)
        self.run = QComboBox()
        self.run.setObjectName("galleryRun")
        self.concept = QComboBox()
        self.concept.setObjectName("galleryConcept")
        self.text = QLineEdit()
        self.text.setObjectName("galleryText")
        self.text.setPlaceholderText("prompt contains…")
        self.text.setClearButtonEnabled(True)
        self.text.setMinimumWidth(150)
        self.min_cp = _score_box("galleryMinCp", "CP-CLIP at least")
        self.min_ti = _score_box("galleryMinTi", "TI-CLIP at least")
        self.favourites = QCheckBox("★ only")
        self.favourites.setObjectName("galleryFavourites")
        self.date = QComboBox()
        for label, days in DATES:
            self.date.addItem(label, days)
        self.sort = QComboBox()
        self.sort.setObjectName("gallerySort")
        for key in SORTS:
            self.sort.addItem(SORT_LABELS.get(key, key), key)
        self.text_timer = QTimer(self)
        self.text_timer.setObjectName("galleryTextDelay")
        self.text_timer.setSingleShot(True)
        self.text_timer.setInterval(250)
        self.text_timer.timeout.connect(self.apply_filters)
        self.text.textChanged.connect(lambda _t: self.text_timer.start())
        for combo in (self.run, self.concept, self.date, self.sort):
            combo.currentIndexChanged.connect(lambda _i: self.apply_filters())
        for box in (self.min_cp, self.min_ti):
            box.valueChanged.connect(lambda _v: self.apply_filters())
        self.favourites.toggled.connect(lambda _v: self.apply_filters())

        self.model = GalleryModel(thumbs)
        self.grid = QListView()
        self.grid.setObjectName("galleryGrid")
        self.grid.setViewMode(QListView.ViewMode.IconMode)
        self.grid.setResizeMode(QListView.ResizeMode.Adjust)
        self.grid.setMovement(QListView.Movement.Static)
        self.grid.setUniformItemSizes(True)
        self.grid.setLayoutMode(QListView.LayoutMode.Batched)
        self.grid.setBatchSize(200)
        self.grid.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.grid.setItemDelegate(GalleryDelegate(self.grid))
        self.grid.setModel(self.model)
        self.grid.doubleClicked.connect(lambda index: self.open_picture(index.row()))
        self.grid.selectionModel().selectionChanged.connect(lambda *_a: self._selection())
        self.grid.installEventFilter(self)

        self.favourite_button = QPushButton("☆ Favourite")
        self.favourite_button.setObjectName("galleryFavourite")
        self.favourite_button.clicked.connect(self.toggle_favourite)
        self.delete_button = QPushButton("Delete")
        self.delete_button.setObjectName("galleryDelete")
        self.delete_button.clicked.connect(self.delete_selected)
        self.undo_button = QPushButton("Undo")
        self.undo_button.setObjectName("galleryUndo")
        self.undo_button.clicked.connect(self.undo_stack.undo)
        self.undo_button.setEnabled(False)
        self.undo_stack.canUndoChanged.connect(self.undo_button.setEnabled)
        self.undo_stack.undoTextChanged.connect(
            lambda text: self.undo_button.setToolTip(f"Undo {text} (Ctrl+Z)"))
        self.trash_button = QPushButton("Trash…")
        self.trash_button.setObjectName("galleryTrashButton")
        self.trash_button.setToolTip("The deleted pictures: restore them, or empty the trash")
        self.trash_button.clicked.connect(self.open_trash)
        self.compare_button = QPushButton("Compare")
        self.compare_button.clicked.connect(self.compare_selected)
        self.recipe_button = QPushButton("Use this recipe…")
        self.recipe_button.setObjectName("galleryRecipe")
        self.recipe_button.clicked.connect(lambda: self.use_recipe(self.selected_ids()[0]))
        self.export_button = QPushButton("Export…")
        self.export_button.clicked.connect(self._choose_export_folder)
        self.report_button = QPushButton("Open the report")
        self.report_button.setObjectName("galleryReport")
        self.report_button.setToolTip("Write the HTML report (best and worst pictures, scores "
                                      "per run and concept) and open it in the browser")
        self.report_button.clicked.connect(self.open_report)
        # Shown when no browser opened the report: its folder, in the file manager.
        self.report_folder_button = QPushButton("Open the report's folder")
        self.report_folder_button.setObjectName("galleryReportFolder")
        self.report_folder_button.hide()
        self.report_folder: Path | None = None
        self.report_folder_button.clicked.connect(self._open_report_folder)
        self.status = QLabel()
        self.status.setObjectName("galleryStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        for keys, slot in ((QKeySequence.StandardKey.Undo, self.undo_stack.undo),
                           (QKeySequence.StandardKey.Delete, self.delete_selected)):
            shortcut = QShortcut(self)
            shortcut.setKeys(keys)
            shortcut.activated.connect(slot)

        filters = QHBoxLayout()
        for label, widget in (("Run", self.run), ("Concept", self.concept), ("", self.text),
                              ("CP ≥", self.min_cp), ("TI ≥", self.min_ti),
                              ("", self.favourites), ("Made", self.date), ("Sort", self.sort)):
            if label:
                filters.addWidget(QLabel(label))
            filters.addWidget(widget)
        filters.setStretchFactor(self.text, 1)
        actions = QHBoxLayout()
        for button in (self.favourite_button, self.delete_button, self.undo_button,
                       self.trash_button, self.compare_button, self.recipe_button,
                       self.export_button):
            actions.addWidget(button)
        actions.addStretch(1)
        actions.addWidget(self.report_button)
        actions.addWidget(self.report_folder_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(filters)
        lay.addLayout(actions)
        lay.addWidget(self.status)
        lay.addWidget(self.grid, 1)
        self.bindings = Bindings()
        self.bindings.on(state, "project", lambda _p: self._project_changed())
        self.bindings.on(state, "generations_rev", lambda _v: self.reload())
        self.bindings.on(state, "runs_rev", lambda _v: self._fill_choices())
        self.bindings.on(state, "concepts_rev", lambda _v: self._fill_choices())
        self._project_changed()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._stale:
            self.reload()

    # ------------------------------------------------------------------ filters

    def _fill_choices(self) -> None:
        project = self.state.project
        for combo, everything, items in (
                (self.run, "every run",
                 [] if project is None else [(f"run {r.id} ({r.kind})", r.id)
                                             for r in project.runs()]),
                (self.concept, "every concept",
                 [] if project is None else [(f"{c.name} {c.token}", c.id)
                                             for c in project.concepts()])):
            chosen = combo.currentData()
            blocked = combo.blockSignals(True)
            combo.clear()
            combo.addItem(everything, None)
            for label, value in items:
                combo.addItem(label, value)
            combo.setCurrentIndex(max(0, combo.findData(chosen)))
            combo.blockSignals(blocked)

    def query(self) -> GalleryQuery:
        days = self.date.currentData()
        since = None if days is None else \
            (dt.date.today() - dt.timedelta(days=days)).isoformat()
        # A bound compares scores as their badges show them (one rounding rule for both).
        low = lambda box: None if box.value() <= box.minimum() else \
            lowest_shown_as(box.value())  # noqa: E731
        return GalleryQuery(run_id=self.run.currentData(), concept_id=self.concept.currentData(),
                            text=self.text.text(), min_cp=low(self.min_cp),
                            min_ti=low(self.min_ti), favourites=self.favourites.isChecked(),
                            since=since, sort=self.sort.currentData() or "newest")

    def apply_filters(self) -> None:
        self.text_timer.stop()
        self.model.set_query(self.state.project, self.query())
        self._show_counts()

    def _project_changed(self) -> None:
        self.undo_stack.clear()
        self._fill_choices()
        self.apply_filters()

    def reload(self) -> None:
        """Read the pictures again (they changed). While the page is hidden that waits until
        it is shown: a generation touches the pictures at every preview."""
        if not self.isVisible():
            self._stale = True
            return
        self._stale = False
        chosen = self.selected_ids()
        self.model.reload()
        selection = self.grid.selectionModel()
        for gid in chosen:
            row = self.model.row_of(gid)
            if row is not None:
                selection.select(self.model.index(row),
                                 selection.SelectionFlag.Select)
        self._show_counts()

    def _show_counts(self) -> None:
        project = self.state.project
        if project is None:
            self.status.setText("Open a project first.")
        elif not self.model.total:
            every = project.gallery_count(GalleryQuery())
            self.status.setText("No pictures yet: make some on the Generate step." if not every
                                else f"None of the {every} pictures matches these filters.")
        else:
            self.status.setText(f"{self.model.total} picture{'s' * (self.model.total != 1)}.")
        self._selection()

    # ------------------------------------------------------------------ selection, actions

    def selected_ids(self) -> list[int]:
        rows = sorted(i.row() for i in self.grid.selectionModel().selectedIndexes())
        return [self.model.images[r].id for r in rows if r < len(self.model.images)]

    def _selection(self) -> None:
        ids = self.selected_ids()
        for button in (self.favourite_button, self.delete_button, self.export_button):
            button.setEnabled(bool(ids))
        self.compare_button.setEnabled(len(ids) == 2)
        self.recipe_button.setEnabled(len(ids) == 1)
        images = [self.model.images[i.row()] for i in self.grid.selectionModel().selectedIndexes()]
        all_favourite = bool(images) and all(i.generation.favourite for i in images)
        self.favourite_button.setText("★ Unfavourite" if all_favourite else "☆ Favourite")

    def project_call(self, method: str, *args: Any) -> Any:
        """A gallery write on the project; the views showing pictures reload after it."""
        project = self.state.project
        if project is None:
            return None
        try:
            result = getattr(project, method)(*args)
        except MyCanvasError as exc:
            self.status.setText(str(exc))
            return None
        self.state.touch("generations")
        return result

    def toggle_favourite(self) -> None:
        ids = self.selected_ids()
        images = [i for i in self.model.images if i.id in ids]
        if images:
            self.set_favourite(ids, not all(i.generation.favourite for i in images))

    def set_favourite(self, ids: list[int], favourite: bool) -> None:
        self.project_call("set_favourite", ids, favourite)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Keys 0-5 on the grid rate the selected pictures (0 clears)."""
        if watched is self.grid and event.type() == QEvent.Type.KeyPress:
            stars = STAR_KEYS.get(event.key())  # type: ignore[attr-defined]
            if stars is not None and not event.modifiers() & (  # type: ignore[attr-defined]
                    Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier):
                self.rate(self.selected_ids(), stars)
                return True
        return super().eventFilter(watched, event)

    def rate(self, ids: list[int], stars: int) -> None:
        """Give the pictures `stars` (0 clears the rating), undoable."""
        project = self.state.project
        if not ids or project is None:
            return
        try:
            before = {gid: project.generation(gid).rating for gid in ids}
        except MyCanvasError as exc:
            self.status.setText(str(exc))
            return
        self.undo_stack.push(RatePictures(self, ids, stars, before))
        count = f"{len(ids)} picture{'s' * (len(ids) != 1)}"
        self.status.setText((f"Rated {count} {'★' * stars}." if stars else
                             f"Cleared the rating of {count}.") + " Undo: Ctrl+Z.")

    def open_trash(self) -> TrashDialog | None:
        project = self.state.project
        if project is None:
            return None
        dialog = TrashDialog(project, self._trash_call, self)
        dialog.open()
        self.trash = dialog
        return dialog

    def _trash_call(self, method: str, *args: Any) -> Any:
        if method == "empty_trash":  # what the undo history could bring back is gone
            self.undo_stack.clear()
        return self.project_call(method, *args)

    def delete_selected(self) -> None:
        ids = self.selected_ids()
        if ids:
            self.undo_stack.push(TrashPictures(self, ids))
            self.status.setText(f"{len(ids)} moved to the trash. Undo (Ctrl+Z) or the Trash "
                                "view brings them back.")

    def open_picture(self, row: int) -> None:
        if 0 <= row < len(self.model.images):
            self._dialog([self.model.images[row]])

    def compare_selected(self) -> None:
        rows = sorted(i.row() for i in self.grid.selectionModel().selectedIndexes())
        if len(rows) == 2:
            self._dialog([self.model.images[r] for r in rows])

    def _dialog(self, images: list[Any]) -> PictureDialog:
        dialog = PictureDialog(images, self)
        dialog.favourite.connect(lambda gid, on: self.set_favourite([gid], on))
        dialog.rated.connect(lambda gid, stars: self.rate([gid], stars))
        dialog.use_recipe.connect(self.use_recipe)
        dialog.open()
        self.viewer = dialog
        return dialog

    def use_recipe(self, generation_id: int) -> None:
        row = self.model.row_of(generation_id)
        if row is None:
            return
        image = self.model.images[row]
        dialog = RecipeFieldsDialog(image, self)
        dialog.accepted.connect(lambda: self.recipe_chosen.emit(
            dict(image.generation.settings), dialog.chosen()))
        dialog.open()
        self.recipe_dialog = dialog

    # ------------------------------------------------------------------ export, report

    def _choose_export_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export the selected pictures to")
        if folder:
            self.export(Path(folder))

    def export(self, folder: Path) -> None:
        """Export the selected pictures with their recipes, one per event-loop turn."""
        self._exporting, self._export_dir, self._export_done = self.selected_ids(), folder, 0
        if self._exporting:
            self.export_timer.start()

    def _export_next(self) -> None:
        if not self._exporting or self.state.project is None or self._export_dir is None:
            self.export_timer.stop()
            return
        gid = self._exporting.pop(0)
        try:
            self.state.project.export_generations([gid], self._export_dir)
            self._export_done += 1
        except MyCanvasError as exc:
            self.status.setText(str(exc))
        if not self._exporting:
            self.export_timer.stop()
            self.status.setText(f"Exported {self._export_done} picture(s) with their recipes "
                                f"to {self._export_dir}.")

    def open_report(self) -> None:
        def done(event: JobEvent) -> None:
            if isinstance(event, JobFinished):
                self.status.setText(event.result.summary())
                self.report_folder = Path(event.result.path).parent
                opened = self.open_url(QUrl.fromLocalFile(event.result.path))
                self.report_folder_button.setVisible(not opened)
                if not opened:
                    self.status.setText(f"No browser opened the report (is one set as the "
                                        f"default?). It is {event.result.path}")
            elif isinstance(event, JobFailed):
                self.status.setText(for_window(event.reason))

        try:
            params = self.state.job_params(REPORT, run_id=self.run.currentData())
            self.jobs.submit(REPORT, params, on_event=done)
        except MyCanvasError as exc:
            self.status.setText(str(exc))
            return
        self.status.setText("Writing the report…")

    def open_url(self, url: QUrl) -> bool:
        """Open a file in the browser, a folder in the file manager; False when nothing
        opened it (tests replace this)."""
        return bool(QDesktopServices.openUrl(url))

    def _open_report_folder(self) -> None:
        if self.report_folder is not None and \
                not self.open_url(QUrl.fromLocalFile(str(self.report_folder))):
            self.status.setText(f"Nothing opened the folder either: the report is in "
                                f"{self.report_folder}")

    def teardown(self) -> None:
        self.export_timer.stop()
        self.text_timer.stop()
        self.bindings.clear()
