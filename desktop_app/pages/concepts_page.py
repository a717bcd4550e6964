"""The Concepts step: drop, choose or paste photos → import (job "import-photos") → find the
objects (job "segment") → fix a mask in the editor. A file the engine refuses becomes an error
row with its reason, shown with the concept it was meant for; nothing the user drops can crash
the window."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QMimeData, Signal
from PySide6.QtGui import QColor, QGuiApplication
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from desktop_app.state.jobs_bridge import JobsBridge
from desktop_app.state.observable import AppState, Bindings
from desktop_app.state.plain_words import for_window, import_outcome
from desktop_app.state.thumbnails import BackgroundLoader
from desktop_app.widgets.concept_drop import NewConceptForm, expand_paths, suggest_concept
from desktop_app.widgets.concepts_view import ConceptPhotosView
from desktop_app.widgets.mask_editor import MaskEditor
from desktop_app.widgets.photo_sources import PastedPhotos, choose_photo_files
from engine.errors import MyCanvasError
from engine.intake.jobs import IMPORT_PHOTOS
from engine.jobs import JobEvent, JobFailed, JobFinished
from engine.segment.jobs import SEGMENT

ERROR_COLOUR = QColor(179, 38, 30)


class ConceptsPage(QWidget):
    message = Signal(str)

    def __init__(self, state: AppState, jobs: JobsBridge, thumbs: BackgroundLoader) -> None:
        super().__init__()
        self.state, self.jobs = state, jobs
        self.form = NewConceptForm()
        self.form.create_requested.connect(self.import_new)
        self.page = ConceptPhotosView(state, thumbs)
        self.page.files_dropped.connect(self.handle_drop)
        self.page.photo_activated.connect(self.open_editor)
        self.page.add_photos_requested.connect(self._choose_photos)
        self.page.segment_requested.connect(self.segment)
        self.page.new_concept_requested.connect(self.new_concept_from_photos)
        self.page.paste_requested.connect(lambda: self.paste(None))
        self.page.message.connect(self.message)
        self.pasted = PastedPhotos()
        self._problems_for: int | None = None  # the concept the problems on show belong to
        self.editor = MaskEditor(state, jobs, thumbs)
        self.editor.closed.connect(lambda: self.stack.setCurrentWidget(self.page))
        self.editor.message.connect(self.message)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.page)
        self.stack.addWidget(self.editor)
        self.problems = QListWidget()
        self.problems.setObjectName("importProblems")
        self.problems.setMaximumHeight(120)
        self.problems_title = QLabel()
        dismiss = QPushButton("Dismiss")
        dismiss.clicked.connect(self.clear_problems)
        head = QHBoxLayout()
        head.addWidget(self.problems_title, 1)
        head.addWidget(dismiss)
        self.problems_box = QWidget()
        box = QVBoxLayout(self.problems_box)
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(head)
        box.addWidget(self.problems)
        self.problems_box.hide()
        lay = QVBoxLayout(self)
        lay.addWidget(self.form)
        lay.addWidget(self.problems_box)
        lay.addWidget(self.stack, 1)
        self.bindings = Bindings()
        self.bindings.on(state, "selected_concept", self._concept_changed)
        self.bindings.on(state, "project", lambda _p: self.clear_problems())

    # ------------------------------------------------------------------ drops

    def handle_drop(self, paths: list[Path], concept_id: int | None = None) -> None:
        """Photos dropped on a concept join it; anywhere else they start a new concept."""
        project = self.state.project
        if project is None:
            self.message.emit("Open or create a project first (Project menu), then drop the "
                              "photos again.")
            return
        files = expand_paths(paths)
        if not files:
            self.add_problems([(str(p), f"{p.name}: nothing to import here") for p in paths])
            return
        if concept_id is None:
            concepts = project.concepts()
            suggestion = suggest_concept(paths, [c.name for c in concepts],
                                         [c.token for c in concepts])
            self.stack.setCurrentWidget(self.page)
            self.form.ask(files, suggestion, [c.token for c in concepts])
        else:
            self.import_into(concept_id, files)

    def new_concept_from_photos(self) -> None:
        """Choose photos in a file dialog: the way in without drag-and-drop."""
        if self.state.project is None:
            self.message.emit("Open or create a project first (Project menu).")
            return
        files = choose_photo_files(self, "Photos of one thing: a new concept")
        if files:
            self.handle_drop(files, None)

    def paste(self, concept_id: int | None, mime: QMimeData | None = None) -> None:
        """Photos from the clipboard: into `concept_id`, or a new concept when None."""
        if mime is None:
            mime = QGuiApplication.clipboard().mimeData()
        files = self.pasted.paths(mime)
        if not files:
            self.message.emit("The clipboard holds no photo: copy a photo (or photo files in "
                              "the file manager) first.")
            return
        self.handle_drop(files, concept_id)

    def import_new(self, name: str, token: str, class_word: str, files: list[Path]) -> None:
        self._import({"concept": name, "class_word": class_word, "token": token}, files)

    def import_into(self, concept_id: int, files: list[Path]) -> None:
        concept = self.state.project.concept(concept_id)
        self._import({"concept": concept.name}, files)

    def _choose_photos(self, concept_id: int) -> None:
        files = choose_photo_files(self, "Add photos")
        if files:
            self.import_into(concept_id, files)

    def _import(self, fields: dict[str, Any], files: list[Path]) -> None:
        try:
            params = self.state.job_params(IMPORT_PHOTOS, paths=[str(f) for f in files],
                                           **fields)
            self.jobs.submit(IMPORT_PHOTOS, params, on_event=self._import_event)
        except MyCanvasError as exc:
            self.add_problems([("", str(exc))])

    def _import_event(self, event: JobEvent) -> None:
        if isinstance(event, JobFailed):
            self.add_problems([("", event.reason)])
        if not isinstance(event, JobFinished):
            return
        result = event.result
        if result.imported or result.duplicates:
            self.state.selected_concept = result.concept_id
        self.add_problems([(f["path"], f["reason"]) for f in result.failed],
                          result.concept_id if result.imported or result.duplicates else None)
        if result.imported:
            self.segment(result.concept_id, False)
        self.message.emit(import_outcome(result))

    # ------------------------------------------------------------------ segmentation

    def segment(self, concept_id: int, redo: bool = False) -> None:
        if self.state.project is None:
            return
        name = self.state.project.concept(concept_id).name
        try:
            params = self.state.job_params(SEGMENT, concept=concept_id, redo=redo)
            self.jobs.submit(SEGMENT, params, f"Find {name} in the photos",
                             on_event=self._segment_event)
        except MyCanvasError as exc:
            self.add_problems([("", str(exc))])

    def _segment_event(self, event: JobEvent) -> None:
        # The views have reloaded already: the bridge touched what the job changes.
        if isinstance(event, JobFailed):
            self.add_problems([("", event.reason)])
        elif isinstance(event, JobFinished):
            result = event.result
            self.add_problems([(f["photo"], f["reason"]) for f in result.failed])
            if result.fallback or result.test_model:
                self.message.emit(f"Masks made by: {result.segmenter}")

    # ------------------------------------------------------------------ editor, problems

    def open_editor(self, photo_id: int) -> None:
        try:
            self.editor.open_photo(photo_id)
        except MyCanvasError as exc:
            self.message.emit(str(exc))
            return
        self.stack.setCurrentWidget(self.editor)

    def add_problems(self, problems: list[tuple[str, str]],
                     concept_id: int | None = None) -> None:
        """Error rows, shown while `concept_id` (default: the one on show) is on show."""
        if not problems:
            return
        self._problems_for = self.state.selected_concept if concept_id is None else concept_id
        for path, raw in problems:
            reason = for_window(raw)
            item = QListWidgetItem(f"✗ {reason}")
            item.setForeground(ERROR_COLOUR)
            item.setToolTip(path or reason)
            self.problems.addItem(item)
        count = self.problems.count()
        self.problems_title.setText(f"{count} problem{'s' * (count != 1)} — every other file "
                                    "was imported:" if count else "")
        self.problems_box.setVisible(bool(count))

    def clear_problems(self) -> None:
        self.problems.clear()
        self.problems_box.hide()
        self._problems_for = None

    def _concept_changed(self, concept_id: int | None) -> None:
        # An error row belongs to the import it came from: another concept does not show it.
        if self.problems.count() and concept_id != self._problems_for:
            self.clear_problems()

    def teardown(self) -> None:
        self.bindings.clear()
        self.page.teardown()
        self.editor.teardown()
        self.pasted.cleanup()

