"""The Generate step: pick a run; write a prompt with concept chips (typing `<` completes the
tokens), or pick concepts and a scene; reuse a layout of the project or draw boxes for
layout-guided generation; count, seed (locked or a new random one each time), steps,
guidance, size, sampler; previews while denoising; cancel. The pictures land in the gallery;
the ones the job could not score (no scoring models then) are scored right after.

`apply_recipe(settings, fields)` fills only the named fields from a picture's recipe (the
Gallery's "use this recipe"): whatever else is on the page stays as the user set it.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from desktop_app.state.job_state import JobState
from desktop_app.state.jobs_bridge import JobsBridge
from desktop_app.state.observable import AppState, Bindings
from desktop_app.state.plain_words import failure_text, for_window
from desktop_app.widgets.box_canvas import BoxCanvas
from desktop_app.widgets.jobs_panel import show_preview
from desktop_app.widgets.params_form import ParamsForm, field_specs
from desktop_app.widgets.prompt_edit import ConceptChips, PromptEdit
from engine.errors import MyCanvasError
from engine.generate import GENERATE, GenerateParams, load_run_concepts
from engine.jobs import (
    JobCancelled,
    JobEvent,
    JobFailed,
    JobFinished,
)
from engine.score import SCORE

RUN_KINDS = ("custom-diffusion", "em-extract")
FORM_FIELDS = ["count", "steps", "guidance", "width", "height", "scheduler", "negative",
               "layout_strength", "guided_fraction"]
NO_LAYOUT, DRAW = "none", "draw"
PREVIEW_SIDE = 256


class GeneratePage(QWidget):
    def __init__(self, state: AppState, jobs: JobsBridge) -> None:
        super().__init__()
        self.setObjectName("generatePage")
        self.state, self.jobs = state, jobs
        self.job: str | None = None
        self.concepts: list[Any] = []  # the chosen run's ConceptInfo
        self.run = QComboBox()
        self.run.setObjectName("generateRun")
        self.run.currentIndexChanged.connect(lambda _i: self._run_chosen())
        self.prompt_mode = QRadioButton("Prompt")
        self.prompt_mode.setChecked(True)
        self.concepts_mode = QRadioButton("Concepts and a scene")
        group = QButtonGroup(self)
        group.addButton(self.prompt_mode)
        group.addButton(self.concepts_mode)
        self.prompt_mode.toggled.connect(lambda _v: self._show_mode())
        self.prompt = PromptEdit()
        self.chips = ConceptChips()
        self.chips.chosen.connect(self.prompt.insert_concept)
        self.concept_list = QListWidget()
        self.concept_list.setObjectName("generateConcepts")
        self.concept_list.setMaximumHeight(110)
        self.concept_list.itemChanged.connect(lambda _i: self._names_changed())
        self.scene = QLineEdit()
        self.scene.setObjectName("generateScene")
        self.scene.setPlaceholderText("where they are: on a beach, in a cosy kitchen…")
        self.layout_choice = QComboBox()
        self.layout_choice.setObjectName("generateLayout")
        self.layout_choice.currentIndexChanged.connect(lambda _i: self._layout_chosen())
        self.canvas = BoxCanvas()
        self.canvas.setObjectName("generateBoxes")
        self.box_for = QComboBox()
        self.box_for.currentTextChanged.connect(self.canvas.set_current)
        self.form = ParamsForm(field_specs(GenerateParams, FORM_FIELDS, labels={
            "count": "Pictures", "negative": "Negative prompt", "scheduler": "Sampler"}),
            compact=True)
        self.seed = QLineEdit()
        self.seed.setObjectName("generateSeed")
        self.seed.setValidator(QRegularExpressionValidator(r"\d{0,18}", self))
        self.seed.setPlaceholderText("random")
        self.lock_seed = QCheckBox("lock")
        self.lock_seed.setObjectName("generateLockSeed")
        self.lock_seed.setToolTip("Locked: the same seed every time (the same picture for the "
                                  "same settings). Unlocked: a new random seed each time.")
        self.generate_button = QPushButton("Generate")
        self.generate_button.setObjectName("generateButton")
        self.generate_button.clicked.connect(self.generate)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("generateCancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(lambda: self.job and self.jobs.cancel(self.job))
        self.preview = QLabel()
        self.preview.setObjectName("generatePreview")
        self.preview.setFixedSize(PREVIEW_SIDE, PREVIEW_SIDE)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setStyleSheet("background: #2b2b2b")
        self.status = QLabel()
        self.status.setObjectName("generateStatus")
        self.status.setWordWrap(True)

        left = QWidget()
        column = QVBoxLayout(left)
        run_row = QHBoxLayout()
        run_row.addWidget(QLabel("Run"))
        run_row.addWidget(self.run, 1)
        column.addLayout(run_row)
        modes = QHBoxLayout()
        modes.addWidget(self.prompt_mode)
        modes.addWidget(self.concepts_mode)
        modes.addStretch(1)
        column.addLayout(modes)
        column.addWidget(self.prompt)
        column.addWidget(self.chips)
        column.addWidget(self.concept_list)
        column.addWidget(self.scene)
        seed_row = QHBoxLayout()
        seed_row.addWidget(QLabel("Seed"))
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.lock_seed)
        column.addLayout(seed_row)
        column.addWidget(self.form)
        column.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(left)
        scroll.setMinimumWidth(360)
        right = QWidget()
        column = QVBoxLayout(right)
        layout_row = QHBoxLayout()
        layout_row.addWidget(QLabel("Layout"))
        layout_row.addWidget(self.layout_choice, 1)
        layout_row.addWidget(QLabel("box for"))
        layout_row.addWidget(self.box_for)
        column.addLayout(layout_row)
        column.addWidget(self.canvas, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        column.addLayout(buttons)
        column.addWidget(self.status)
        column.addWidget(self.preview, 0, Qt.AlignmentFlag.AlignHCenter)
        split = QSplitter()
        split.addWidget(scroll)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(split)
        self.bindings = Bindings()
        self.job_bindings = Bindings()  # to the running job's JobState
        jobs.job_added.connect(self._job_added)
        self.bindings.on(state, "project", lambda _p: self.reload())
        self.bindings.on(state, "runs_rev", lambda _v: self.reload())
        self.bindings.on(state, "layouts_rev", lambda _v: self._fill_layouts())
        self.reload()
        self._show_mode()

    # ------------------------------------------------------------------ choices

    def reload(self) -> None:
        project = self.state.project
        runs = [] if project is None else [
            r for r in project.runs() if r.kind in RUN_KINDS and r.status == "finished"]
        chosen = self.run.currentData()
        blocked = self.run.blockSignals(True)
        self.run.clear()
        for run in reversed(runs):
            noun = "extraction" if run.kind == "em-extract" else "training"
            self.run.addItem(f"run {run.id} ({noun}, {(run.finished_at or '')[:10]})", run.id)
        self.run.setCurrentIndex(max(0, self.run.findData(chosen)))
        self.run.blockSignals(blocked)
        self._fill_layouts()
        self._run_chosen()

    def _fill_layouts(self) -> None:
        project = self.state.project
        chosen = self.layout_choice.currentData()
        blocked = self.layout_choice.blockSignals(True)
        self.layout_choice.clear()
        self.layout_choice.addItem("no layout", NO_LAYOUT)
        self.layout_choice.addItem("draw boxes", DRAW)
        for layout in [] if project is None else project.layouts():
            if layout.objects:
                self.layout_choice.addItem(f"layout {layout.id}: {layout.scene}", layout.id)
        self.layout_choice.setCurrentIndex(max(0, self.layout_choice.findData(chosen)))
        self.layout_choice.blockSignals(blocked)
        self._layout_chosen()

    def _run_chosen(self) -> None:
        project, run_id = self.state.project, self.run.currentData()
        self.concepts = []
        problem = ""
        if project is None:
            problem = "Open a project first."
        elif run_id is None:
            problem = "Train first (Train step) or extract concepts from a photo: " \
                      "generation uses a finished run's concepts."
        else:
            try:
                self.concepts = list(load_run_concepts(project, run_id).concepts)
            except MyCanvasError as exc:
                problem = str(exc)
        tokens = [(c.token, c.class_word) for c in self.concepts]
        self.prompt.set_concepts(tokens)
        self.chips.set_concepts([(c.token, c.name, c.class_word) for c in self.concepts])
        checked = self.checked_concepts()
        blocked = self.concept_list.blockSignals(True)
        self.concept_list.clear()
        for concept in self.concepts:
            item = QListWidgetItem(f"{concept.name} {concept.token} ({concept.class_word})")
            item.setData(Qt.ItemDataRole.UserRole, concept.token)
            item.setCheckState(Qt.CheckState.Checked if concept.token in checked or not checked
                               else Qt.CheckState.Unchecked)
            self.concept_list.addItem(item)
        self.concept_list.blockSignals(blocked)
        self._names_changed()
        self.generate_button.setEnabled(not problem and self.job is None)
        self.generate_button.setToolTip(problem)
        if self.job is None:
            self.status.setText(problem or "Ready.")

    def _show_mode(self) -> None:
        prompt = self.prompt_mode.isChecked()
        for widget in (self.prompt, self.chips):
            widget.setVisible(prompt)
        for widget in (self.concept_list, self.scene):
            widget.setVisible(not prompt)

    def checked_concepts(self) -> list[str]:
        return [self.concept_list.item(i).data(Qt.ItemDataRole.UserRole)
                for i in range(self.concept_list.count())
                if self.concept_list.item(i).checkState() == Qt.CheckState.Checked]

    def _names_changed(self) -> None:
        tokens = [c.token for c in self.concepts]
        self.canvas.set_names(tokens)
        blocked = self.box_for.blockSignals(True)
        self.box_for.clear()
        self.box_for.addItems(tokens)
        self.box_for.blockSignals(blocked)
        self.canvas.set_current(self.box_for.currentText() or None)

    def _layout_chosen(self) -> None:
        choice, project = self.layout_choice.currentData(), self.state.project
        self.canvas.setVisible(choice != NO_LAYOUT)
        self.box_for.setEnabled(choice == DRAW)
        self.canvas.setEnabled(choice == DRAW)
        if isinstance(choice, int) and project is not None:
            layout = project.layout(choice)
            by_id = {c.id: c.token for c in project.concepts()}
            self.canvas.clear_marks()
            for obj in layout.objects:
                token = by_id.get(obj.concept_id)
                if token in self.canvas.marks:
                    self.canvas.set_box(token, (obj.x, obj.y, obj.x + obj.w, obj.y + obj.h))

    # ------------------------------------------------------------------ recipes

    def apply_recipe(self, settings: dict[str, Any], fields: set[str]) -> None:
        """Fill only `fields` ("run", "prompt", "negative", "seed", "steps", "guidance",
        "size", "scheduler", "layout") from a picture's recipe."""
        if "run" in fields and settings.get("run_id") is not None:
            index = self.run.findData(settings["run_id"])
            if index >= 0:
                self.run.setCurrentIndex(index)
        if "prompt" in fields and settings.get("prompt"):
            self.prompt_mode.setChecked(True)
            self.prompt.setText(str(settings["prompt"]))
        values: dict[str, Any] = {}
        for field, key in (("negative", "negative_prompt"), ("steps", "steps"),
                           ("guidance", "guidance"), ("scheduler", "scheduler")):
            if field in fields and settings.get(key) is not None:
                values[field if field != "negative" else "negative"] = settings[key]
        if "size" in fields and settings.get("width") and settings.get("height"):
            values.update(width=settings["width"], height=settings["height"])
        self.form.set_values(values)
        if "seed" in fields and settings.get("seed") is not None:
            self.seed.setText(str(settings["seed"]))
            self.lock_seed.setChecked(True)
        layout = settings.get("layout")
        if "layout" in fields and isinstance(layout, dict):
            index = self.layout_choice.findData(layout.get("layout_id"))
            if layout.get("layout_id") is not None and index >= 0:
                self.layout_choice.setCurrentIndex(index)
            else:
                self.layout_choice.setCurrentIndex(self.layout_choice.findData(DRAW))
                self.canvas.clear_marks()
                for box in layout.get("boxes", []):
                    self.canvas.set_box(box["token"], (box["x"], box["y"], box["x"] + box["w"],
                                                       box["y"] + box["h"]))
            self.form.set_values({"layout_strength": layout.get("strength", 1.0),
                                  "guided_fraction": layout.get("guided_fraction", 0.3)})
        self.status.setText(f"Filled from the recipe: {', '.join(sorted(fields))}.")

    # ------------------------------------------------------------------ generating

    def params_fields(self) -> dict[str, Any]:
        """The GENERATE fields the page sets."""
        values = self.form.values()
        fields: dict[str, Any] = {"run_id": self.run.currentData(), **values}
        if self.prompt_mode.isChecked():
            # No prompt with a layout: the layout's own caption (the engine writes it).
            fields["prompt"] = self.prompt.text().strip() or None
        else:
            fields["concepts"] = self.checked_concepts()
            fields["scene"] = self.scene.text().strip()
        seed = self.seed.text().strip()
        fields["seed"] = int(seed) if seed and self.lock_seed.isChecked() else None
        choice = self.layout_choice.currentData()
        if isinstance(choice, int):
            fields["layout_id"] = choice
        elif choice == DRAW:
            boxes = {t: list(m.box) for t, m in self.canvas.marks.items() if m.box is not None}
            fields["boxes"] = boxes or None
        return fields

    def generate(self) -> None:
        if self.state.project is None or self.job is not None:
            return
        try:
            params = self.state.job_params(GENERATE, **self.params_fields())
            handle = self.jobs.submit(GENERATE, params, on_event=self._job_event)
        except MyCanvasError as exc:
            self.status.setText(for_window(str(exc)))
            return
        self.job = handle.job_id
        self.generate_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("Starting: loading the model and the run's concepts…")
        self._bind_job(self.jobs.states[handle.job_id])

    def _bind_job(self, job: JobState) -> None:
        self.job_bindings.on(job, "line", self.status.setText)
        self.job_bindings.on(job, "preview", lambda p: p is not None and
                             show_preview(self.preview, p))

    def _job_added(self, job: JobState) -> None:
        """Pictures made on this project by a job queued elsewhere in the window (the resume
        bar) are shown here as if started here. Looked at once the queueing is over, when a
        job this page started has its id in `self.job`."""
        QTimer.singleShot(0, self, lambda: self._adopt(job))

    def _adopt(self, job: JobState) -> None:
        project = self.state.project
        if self.job is not None or project is None or \
                not job.works_on(GENERATE.name, project.root) or \
                not self.jobs.listen(job.job_id, self._job_event):
            return
        self.job = job.job_id
        self.generate_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(job.line or f"Resuming: {job.title}…")
        self._bind_job(job)

    def _job_event(self, event: JobEvent) -> None:
        if isinstance(event, JobFinished | JobFailed | JobCancelled):
            self.job_bindings.clear()
            self.job = None
            self.cancel_button.setEnabled(False)
            self.generate_button.setEnabled(self.run.currentData() is not None)
            if isinstance(event, JobFinished):
                result = event.result
                if not self.lock_seed.isChecked() and result.seeds:
                    self.seed.setText(str(result.seeds[0]))  # what it used, to lock it
                self.status.setText(f"{result.summary()}. They are in the Gallery.")
                self._score(list(result.generation_ids))
            elif isinstance(event, JobFailed):
                self.status.setText(failure_text(event.reason, event.fields))
            else:
                self.status.setText("Cancelled. The pictures made before are in the Gallery.")

    def _score(self, ids: list[int]) -> None:
        """Score what the job left unscored (it scores when the scoring models are here)."""
        project = self.state.project
        if project is None or not ids:
            return
        unscored = [i for i in ids if not project.gallery_image(i).scored]
        if unscored:
            try:
                self.jobs.submit(SCORE, self.state.job_params(SCORE, generation_ids=unscored))
            except MyCanvasError as exc:
                self.status.setText(f"{self.status.text()} Not scored: {exc}")

    def teardown(self) -> None:
        self.job_bindings.clear()
        self.bindings.clear()
