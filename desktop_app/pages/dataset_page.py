"""The Dataset step: build the training images (job "build-dataset"), watch them arrive, review
them (with undo, and the way back to the filter's verdict), look at one large, export them (job
"export-dataset")."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop_app.state.jobs_bridge import JobsBridge
from desktop_app.state.observable import AppState, Bindings
from desktop_app.state.plain_words import failure_text
from desktop_app.state.thumbnails import BackgroundLoader
from desktop_app.widgets.dataset_review import (
    DatasetGrid,
    DatasetItemsModel,
    automatic_state,
    review_counts,
)
from desktop_app.widgets.dataset_viewer import ItemViewer
from desktop_app.widgets.jobs_panel import show_preview
from engine.dataset.jobs import BUILD_DATASET, EXPORT_DATASET
from engine.errors import MyCanvasError
from engine.jobs import JobCancelled, JobEvent, JobFailed, JobFinished
from engine.models.profiles import get_profile

PREVIEW_SIDE = 128


class ReviewChange(QUndoCommand):
    """Review states of some items, before and after (by item id)."""

    def __init__(self, page: DatasetPage, text: str, before: list[tuple[int, str]],
                 after: list[tuple[int, str]]) -> None:
        super().__init__(text)
        self.page, self.before, self.after = page, before, after

    def redo(self) -> None:
        self.page.apply_states(self.after)

    def undo(self) -> None:
        self.page.apply_states(self.before)


class DatasetPage(QWidget):
    def __init__(self, state: AppState, jobs: JobsBridge, thumbs: BackgroundLoader) -> None:
        super().__init__()
        self.state, self.jobs = state, jobs
        self.build_job: str | None = None
        self.build_project: Path | None = None  # the project the running build works on
        self._status_is_readiness = False
        self.undo_stack = QUndoStack(self)
        self.count = QSpinBox()
        self.count.setObjectName("datasetCount")
        self.count.setRange(1, 10_000)
        self.count.setValue(24)
        self.count.setPrefix("items: ")
        self.count.setToolTip("How many training images the dataset should have in total; "
                              "building again only makes the missing ones")
        self.steps = QSpinBox()
        self.steps.setObjectName("datasetSteps")
        self.steps.setRange(0, 200)
        self.steps.setSpecialValueText("steps: default")
        self.steps.setPrefix("steps: ")
        self.steps.setToolTip("Denoising steps per image (default: 60 on a GPU, 20 on a CPU)")
        self.build_button = QPushButton("Build dataset")
        self.build_button.setObjectName("buildDatasetButton")
        self.build_button.clicked.connect(self.build)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_build)
        self.export_button = QPushButton("Export…")
        self.export_button.clicked.connect(self._choose_export_folder)
        self.undo_button = QPushButton("Undo")
        self.undo_button.setObjectName("reviewUndo")
        self.redo_button = QPushButton("Redo")
        self.redo_button.setObjectName("reviewRedo")
        self.automatic_button = QPushButton("Filter's verdict")
        self.automatic_button.setObjectName("reviewAutomatic")
        self.automatic_button.setToolTip("Give the selected pictures back to the filter's "
                                         "verdict, as if you had not decided (U)")
        self.undo_button.clicked.connect(self.undo_stack.undo)
        self.redo_button.clicked.connect(self.undo_stack.redo)
        self.automatic_button.clicked.connect(
            lambda: self.review(self.grid_selection(), "automatic"))
        self.undo_stack.canUndoChanged.connect(self.undo_button.setEnabled)
        self.undo_stack.canRedoChanged.connect(self.redo_button.setEnabled)
        self.undo_stack.undoTextChanged.connect(
            lambda text: self.undo_button.setToolTip(f"Undo {text} (Ctrl+Z)"))
        self.undo_stack.redoTextChanged.connect(
            lambda text: self.redo_button.setToolTip(f"Redo {text} (Ctrl+Shift+Z)"))
        self.undo_button.setEnabled(False)
        self.redo_button.setEnabled(False)
        for keys, slot in ((QKeySequence.StandardKey.Undo, self.undo_stack.undo),
                           (QKeySequence.StandardKey.Redo, self.undo_stack.redo)):
            shortcut = QShortcut(self)
            shortcut.setKeys(keys)  # every binding of the platform (Ctrl+Y, Ctrl+Shift+Z)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)
        self.show_combo = QComboBox()
        for label, key in (("Show all", "all"), ("Only kept", "kept"),
                           ("Only rejected", "rejected")):
            self.show_combo.addItem(label, key)
        self.show_combo.currentIndexChanged.connect(self._filter)
        self.status = QLabel()
        self.status.setObjectName("datasetStatus")
        self.status.setWordWrap(True)
        self.counts = QLabel()
        self.counts.setObjectName("datasetCounts")
        self.counts.setWordWrap(True)
        self.preview = QLabel()
        self.preview.setFixedSize(PREVIEW_SIDE, PREVIEW_SIDE)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.hide()
        self.model = DatasetItemsModel(thumbs)
        self.grid = DatasetGrid(self.model)
        self.grid.review.connect(self.review)
        self.viewer = ItemViewer(self.model, self)
        self.viewer.review.connect(self.review)
        self.grid.open_item.connect(self.viewer.show_row)
        controls = QHBoxLayout()
        for widget in (self.count, self.steps, self.build_button, self.cancel_button):
            controls.addWidget(widget)
        controls.addStretch(1)
        for widget in (self.undo_button, self.redo_button, self.automatic_button,
                       self.show_combo, self.export_button):
            controls.addWidget(widget)
        info = QHBoxLayout()
        text = QVBoxLayout()
        text.addWidget(self.status)
        text.addWidget(self.counts)
        hint = QLabel("Click ✓ or ✗ on a picture, or select pictures and press A (accept), R "
                      "(reject) or U (the filter's verdict). Double-click a picture to see it "
                      "large.")
        hint.setWordWrap(True)
        hint.setStyleSheet("color: gray")
        text.addWidget(hint)
        info.addLayout(text, 1)
        info.addWidget(self.preview)
        lay = QVBoxLayout(self)
        lay.addLayout(controls)
        lay.addLayout(info)
        lay.addWidget(self.grid, 1)
        self.bindings = Bindings()
        self.build_bindings = Bindings()  # to the build job's JobState
        self.bindings.on(state, "project", self._project_changed)
        self.bindings.on(state, "dataset_rev", lambda _v: self.reload())
        self.bindings.on(state, "settings", lambda _v: self._show_counts())
        for name in ("layouts_rev", "photos_rev"):
            self.bindings.on(state, name, lambda _v: self._explain_readiness())
        self.reload()

    # ------------------------------------------------------------------ showing

    def _project_changed(self, _project: object) -> None:
        # Another project: its review history and the last build's outcome do not apply.
        self.undo_stack.clear()
        self.viewer.hide()
        self.preview.hide()
        self._status_is_readiness = True
        self.reload()

    def reload(self) -> None:
        self.model.reload(self.state.project)
        self._show_counts()
        self._explain_readiness()

    def _show_counts(self) -> None:
        project = self.state.project
        items = project.dataset_items() if project is not None else []
        test = get_profile(self.state.settings.profile or None).test_models
        self.counts.setText(review_counts(items, test) if items else "No dataset items yet.")
        self.export_button.setEnabled(bool(items))

    def _building_here(self) -> bool:
        project = self.state.project
        return (self.build_job is not None and project is not None
                and self.build_project == project.root)

    def _explain_readiness(self) -> None:
        """Say what is missing before a build can start, instead of failing later."""
        project = self.state.project
        if self._building_here():
            return
        problem = ""
        if project is None:
            problem = "Open a project first."
        elif self.build_job is not None:
            problem = "A build of another project is still running (see Jobs)."
        elif not any(layout.objects for layout in project.layouts()):
            problem = "Plan some layouts first (Layouts step)."
        elif not any(m.cutout_file for m in project.masks()):
            problem = "Add photos and let the app find the objects first (Concepts step)."
        self.build_button.setEnabled(not problem)
        self.build_button.setToolTip(problem)
        self.cancel_button.setEnabled(False)
        # A readiness note replaces an older one, never the outcome of the last build.
        if problem or not self.status.text() or self._status_is_readiness:
            self.status.setText(problem or "Ready to build.")
            self._status_is_readiness = True

    def _filter(self) -> None:
        self.model.show = self.show_combo.currentData()
        self.model.reload(self.state.project)

    # ------------------------------------------------------------------ reviewing

    def grid_selection(self) -> list[int]:
        return sorted(i.row() for i in self.grid.selectionModel().selectedIndexes())

    def review(self, rows: list[int], state: str) -> None:
        """Set the review state of these rows ("automatic": the filter's verdict), as one
        step that undo takes back."""
        items = [self.model.items[r] for r in rows if 0 <= r < len(self.model.items)]
        before, after = [], []
        for item in items:
            new = automatic_state(item) if state == "automatic" else state
            if item.id is not None and new != item.review_state:
                before.append((item.id, item.review_state))
                after.append((item.id, new))
        if not after:
            return
        verb = {"accepted": "accept", "rejected": "reject"}.get(state, "give back to the filter")
        count = len(after)
        self.undo_stack.push(ReviewChange(
            self, f"{verb} {count} picture{'s' * (count != 1)}", before, after))

    def apply_states(self, changes: list[tuple[int, str]]) -> None:
        try:
            self.model.set_states(changes)
        except MyCanvasError as exc:
            self.status.setText(str(exc))
            self._status_is_readiness = False
        self.state.touch("dataset")

    # ------------------------------------------------------------------ building

    def build(self) -> None:
        project = self.state.project
        if project is None or self.build_job is not None:
            return
        try:
            params = self.state.job_params(BUILD_DATASET, count=self.count.value(),
                                           steps=self.steps.value() or None)
            handle = self.jobs.submit(BUILD_DATASET, params, on_event=self._build_event)
        except MyCanvasError as exc:
            self.status.setText(str(exc))
            return
        self.build_job, self.build_project = handle.job_id, project.root
        self.build_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("Building… the pictures appear below as they are made.")
        self._status_is_readiness = False
        job = self.jobs.states[handle.job_id]
        self.build_bindings.on(job, "line", lambda line: self._building_here() and
                               self.status.setText(line))
        self.build_bindings.on(job, "preview", lambda p: p is not None and
                               self._building_here() and show_preview(self.preview, p))

    def cancel_build(self) -> None:
        if self.build_job is not None:
            self.jobs.cancel(self.build_job)
            self.status.setText("Cancelling after the current step…")

    def _build_event(self, event: JobEvent) -> None:
        # The grid has reloaded already: the bridge touched "dataset" for every stored item.
        here = self._building_here()
        if isinstance(event, JobFinished | JobFailed | JobCancelled):
            self.build_bindings.clear()
            self.build_job, self.build_project = None, None
            self.cancel_button.setEnabled(False)
            if not here:  # the build was of another project: its outcome is not this one's
                self._explain_readiness()
                return
            self._status_is_readiness = False
            if isinstance(event, JobFinished):
                r = event.result
                self.status.setText(f"Done: {r.built} built now ({r.kept} kept, "
                                    f"{r.rejected} rejected), {r.already} were there.")
            elif isinstance(event, JobFailed):
                self.status.setText(failure_text(event.reason, event.fields))
            else:
                self.status.setText("Cancelled. The finished items are kept; building again "
                                    "makes only the missing ones.")
            self._explain_readiness()

    # ------------------------------------------------------------------ export

    def _choose_export_folder(self) -> None:
        folder = QFileDialog.getSaveFileName(self, "Export the dataset to a new folder")[0]
        if folder:
            self.export(Path(folder))

    def export(self, folder: Path) -> None:
        def done(event: JobEvent) -> None:
            if isinstance(event, JobFinished):
                self.status.setText(event.result.summary())
            elif isinstance(event, JobFailed):
                self.status.setText(failure_text(event.reason, event.fields))
            self._status_is_readiness = False

        try:
            params = self.state.job_params(EXPORT_DATASET, out_dir=str(folder))
            self.jobs.submit(EXPORT_DATASET, params, on_event=done)
        except MyCanvasError as exc:
            self.status.setText(str(exc))

    def teardown(self) -> None:
        self.bindings.clear()
        self.build_bindings.clear()
        self.viewer.hide()
