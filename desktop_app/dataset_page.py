"""The Dataset step: build the training images (job "build-dataset"), watch them arrive, review
them, export them (job "export-dataset")."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
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

from desktop_app.dataset_review import DatasetGrid, DatasetItemsModel, review_counts
from desktop_app.jobs_bridge import JobsBridge
from desktop_app.jobs_panel import show_preview
from desktop_app.observable import AppState, Bindings
from desktop_app.thumbnails import BackgroundLoader
from engine.dataset.jobs import BUILD_DATASET, EXPORT_DATASET
from engine.errors import MyCanvasError
from engine.jobs import JobCancelled, JobEvent, JobFailed, JobFinished, JobPreview, JobProgress

PREVIEW_SIDE = 128


class DatasetPage(QWidget):
    def __init__(self, state: AppState, jobs: JobsBridge, thumbs: BackgroundLoader) -> None:
        super().__init__()
        self.state, self.jobs = state, jobs
        self.build_job: str | None = None
        self._status_is_readiness = False
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
        controls = QHBoxLayout()
        for widget in (self.count, self.steps, self.build_button, self.cancel_button):
            controls.addWidget(widget)
        controls.addStretch(1)
        controls.addWidget(self.show_combo)
        controls.addWidget(self.export_button)
        info = QHBoxLayout()
        text = QVBoxLayout()
        text.addWidget(self.status)
        text.addWidget(self.counts)
        hint = QLabel("Click ✓ or ✗ on a picture, or select pictures and press A (accept) or "
                      "R (reject).")
        hint.setStyleSheet("color: gray")
        text.addWidget(hint)
        info.addLayout(text, 1)
        info.addWidget(self.preview)
        lay = QVBoxLayout(self)
        lay.addLayout(controls)
        lay.addLayout(info)
        lay.addWidget(self.grid, 1)
        self.bindings = Bindings()
        for name in ("project", "dataset_rev"):
            self.bindings.on(state, name, lambda _v: self.reload())
        for name in ("layouts_rev", "photos_rev"):
            self.bindings.on(state, name, lambda _v: self._explain_readiness())
        self.reload()

    # ------------------------------------------------------------------ showing

    def reload(self) -> None:
        project = self.state.project
        self.model.reload(project)
        items = project.dataset_items() if project is not None else []
        self.counts.setText(review_counts(items) if items else "No dataset items yet.")
        self.export_button.setEnabled(bool(items))
        self._explain_readiness()

    def _explain_readiness(self) -> None:
        """Say what is missing before a build can start, instead of failing later."""
        project = self.state.project
        if self.build_job is not None:
            return
        problem = ""
        if project is None:
            problem = "Open a project first."
        elif not any(layout.objects for layout in project.layouts()):
            problem = "Plan some layouts first (Layouts step)."
        elif not any(m.cutout_file for m in project.masks()):
            problem = "Add photos and let the app find the objects first (Concepts step)."
        self.build_button.setEnabled(not problem)
        self.build_button.setToolTip(problem)
        # A readiness note replaces an older one, never the outcome of the last build.
        if problem or not self.status.text() or self._status_is_readiness:
            self.status.setText(problem or "Ready to build.")
            self._status_is_readiness = True

    def _filter(self) -> None:
        self.model.show = self.show_combo.currentData()
        self.model.reload(self.state.project)

    # ------------------------------------------------------------------ reviewing

    def review(self, rows: list[int], state: str) -> None:
        try:
            for row in rows:
                self.model.set_state(row, state)
        except MyCanvasError as exc:
            self.status.setText(str(exc))
        self.state.touch("dataset")

    # ------------------------------------------------------------------ building

    def build(self) -> None:
        if self.state.project is None or self.build_job is not None:
            return
        try:
            params = self.state.job_params(BUILD_DATASET, count=self.count.value(),
                                           steps=self.steps.value() or None)
            handle = self.jobs.submit(BUILD_DATASET, params, on_event=self._build_event)
        except MyCanvasError as exc:
            self.status.setText(str(exc))
            return
        self.build_job = handle.job_id
        self.build_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("Building… the pictures appear below as they are made.")

    def cancel_build(self) -> None:
        if self.build_job is not None:
            self.jobs.cancel(self.build_job)
            self.status.setText("Cancelling after the current step…")

    def _build_event(self, event: JobEvent) -> None:
        if isinstance(event, JobProgress):
            self.status.setText(f"Building: {event.message} ({event.fraction:.0%})")
        elif isinstance(event, JobPreview):
            show_preview(self.preview, event)
            self.state.touch("dataset")  # the item was stored just before its preview
        elif isinstance(event, JobFinished | JobFailed | JobCancelled):
            self.build_job = None
            self._status_is_readiness = False
            self.cancel_button.setEnabled(False)
            if isinstance(event, JobFinished):
                r = event.result
                self.status.setText(f"Done: {r.built} built now ({r.kept} kept, "
                                    f"{r.rejected} rejected), {r.already} were there.")
            elif isinstance(event, JobFailed):
                self.status.setText(event.reason)
            else:
                self.status.setText("Cancelled. The finished items are kept; building again "
                                    "makes only the missing ones.")
            self.state.touch("dataset")
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
                self.status.setText(event.reason)

        try:
            params = self.state.job_params(EXPORT_DATASET, out_dir=str(folder))
            self.jobs.submit(EXPORT_DATASET, params, on_event=done)
        except MyCanvasError as exc:
            self.status.setText(str(exc))

    def teardown(self) -> None:
        self.bindings.clear()
