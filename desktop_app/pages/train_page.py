"""The Train step: a preset and the main settings (each with its plain-language help), start,
cancel, resume an unfinished run; the loss (raw and smoothed) and learning rate live, the
sample images in a strip as they are made, the time left; the runs with their status, steps
and dataset size, and a delete.

The page shows the training job on its project however it was started: from here, by the
resume bar, or by another process (a command line, Personalize's training stage). A train job
of this window is followed through its JobState (job_state.py: the object the jobs list binds
to as well); a run another process trains is known from the project store (its status is
"running" and its owner lock is held, engine.train.runs). While either goes, Start and Resume
are off, so a second run is never started beside it.

While a run trains, a timer follows its metrics.jsonl (the trainer appends a line per step and
per sample): the chart and the strip grow from it, and the time left comes from the job's own
timing, or until it has timed a step, from the run's recorded step times (right at once after
a resume). A finished run selected in the list shows its whole history.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, QTimer
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from desktop_app.state.job_state import JobState
from desktop_app.state.jobs_bridge import JobsBridge
from desktop_app.state.observable import AppState, Bindings
from desktop_app.state.plain_words import failure_text, for_window
from desktop_app.state.thumbnails import BackgroundLoader, render_cutout
from desktop_app.state.train_settings import CUSTOM, MAIN_SETTINGS, PRESETS
from desktop_app.widgets.confirm import ask
from desktop_app.widgets.params_form import ParamsForm, field_specs
from desktop_app.widgets.runs_list import RunsTable, run_total_steps
from desktop_app.widgets.train_chart import LossChart, MetricsTail, history_eta
from engine.errors import MyCanvasError
from engine.jobs import JobFailed, JobFinished, eta_text
from engine.train import TRAIN, delete_run
from engine.train.config import TrainConfig
from engine.train.runs import run_owner

RUN_KIND = "custom-diffusion"
FOLLOW_MS = 400
SAMPLE_SIDE = 96


class TrainPage(QWidget):
    def __init__(self, state: AppState, jobs: JobsBridge, thumbs: BackgroundLoader) -> None:
        super().__init__()
        self.setObjectName("trainPage")
        self.state, self.jobs, self.thumbs = state, jobs, thumbs
        self.job: str | None = None  # the train job of this window the page shows
        self.job_project: Path | None = None
        self.job_state: JobState | None = None
        self.job_bindings = Bindings()
        self.elsewhere: tuple[int, str] | None = None  # (run, its owner) trained elsewhere
        self.follow_run: int | None = None  # the run whose metrics the chart shows
        self._runs_before = 0  # the newest run id when the job was started
        self._resuming: int | None = None
        self._job_eta: float | None = None
        self._step = (0, 0)
        self._tail: MetricsTail | None = None
        self._records: list[dict[str, Any]] = []
        self._sample_keys: dict[object, QListWidgetItem] = {}
        self._form_before: tuple[str, dict[str, Any]] | None = None  # while a run is pinned
        self.preset = QComboBox()
        self.preset.setObjectName("trainPreset")
        for name in (*PRESETS, CUSTOM):
            self.preset.addItem(name)
        self.preset.setCurrentText("Standard (Custom Diffusion)")
        self.preset.currentTextChanged.connect(self._apply_preset)
        self.form = ParamsForm(field_specs(TrainConfig, MAIN_SETTINGS,
                                           scientific=("learning_rate",)))
        self.form.changed.connect(lambda _n: self._mark_custom())
        self.start_button = QPushButton("Start training")
        self.start_button.setObjectName("startTraining")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelTraining")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.resume_button = QPushButton("Resume run")
        self.resume_button.setObjectName("resumeTraining")
        self.resume_button.clicked.connect(self.resume_selected)
        self.delete_button = QPushButton("Delete run")
        self.delete_button.setObjectName("deleteRun")
        self.delete_button.clicked.connect(self.delete_selected)
        self.status = QLabel()
        self.status.setObjectName("trainStatus")
        self.status.setWordWrap(True)
        self.eta = QLabel()
        self.eta.setObjectName("trainEta")
        self.bar = QProgressBar()
        self.bar.hide()
        self.chart = LossChart()
        self.samples = QListWidget()
        self.samples.setObjectName("sampleStrip")
        self.samples.setViewMode(QListWidget.ViewMode.IconMode)
        self.samples.setFlow(QListWidget.Flow.LeftToRight)
        self.samples.setWrapping(False)
        self.samples.setIconSize(QSize(SAMPLE_SIDE, SAMPLE_SIDE))
        self.samples.setFixedHeight(SAMPLE_SIDE + 46)
        self.runs = RunsTable(thumbs)
        self.runs.run_selected.connect(self._run_selected)
        thumbs.ready.connect(self._thumb_ready)
        self.timer = QTimer(self)
        self.timer.setObjectName("trainFollow")
        self.timer.setInterval(FOLLOW_MS)
        self.timer.timeout.connect(self.follow)

        settings = QWidget()
        left = QVBoxLayout(settings)
        left.addWidget(QLabel("<b>Preset</b>"))
        left.addWidget(self.preset)
        left.addWidget(self.form)
        left.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(settings)
        scroll.setMinimumWidth(330)
        buttons = QHBoxLayout()
        for button in (self.start_button, self.cancel_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.eta)
        run_buttons = QHBoxLayout()
        run_buttons.addWidget(QLabel("<b>Runs</b>"))
        run_buttons.addStretch(1)
        run_buttons.addWidget(self.resume_button)
        run_buttons.addWidget(self.delete_button)
        right = QWidget()
        column = QVBoxLayout(right)
        column.addLayout(buttons)
        column.addWidget(self.bar)
        column.addWidget(self.status)
        column.addWidget(self.chart, 3)
        column.addWidget(QLabel("Samples over time"))
        column.addWidget(self.samples)
        column.addLayout(run_buttons)
        column.addWidget(self.runs, 2)
        split = QSplitter()
        split.addWidget(scroll)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(split)
        self._apply_preset(self.preset.currentText())
        self.bindings = Bindings()
        self.bindings.on(state, "project", lambda _p: self._project_changed())
        self.bindings.on(state, "runs_rev", lambda _v: self.reload())
        self.bindings.on(state, "dataset_rev", lambda _v: self._explain_readiness())
        jobs.job_added.connect(self._job_added)
        self.reload()

    # ------------------------------------------------------------------ settings

    def _apply_preset(self, name: str) -> None:
        if name in PRESETS:
            self.form.set_values(PRESETS[name])

    def _mark_custom(self) -> None:
        if self.preset.currentText() != CUSTOM:
            blocked = self.preset.blockSignals(True)
            self.preset.setCurrentText(CUSTOM)
            self.preset.blockSignals(blocked)

    def config(self) -> dict[str, Any]:
        """The TrainConfig fields the form sets."""
        return self.form.values()

    def _pin_settings(self) -> None:
        """While a run trains (here or elsewhere) the form shows the settings it trains with,
        read-only; when it ends, the preset and values the form had before come back."""
        project = self.state.project
        run_id = self.follow_run if self._live() else None
        run = None
        if run_id is not None and project is not None:
            try:
                run = project.run(run_id)
            except MyCanvasError:
                run = None
        if run is not None:
            if self._form_before is None:
                self._form_before = (self.preset.currentText(), self.form.values())
            trains_with = run.config.get("train") or {}  # the run's TrainConfig
            self.form.set_values({k: v for k, v in trains_with.items() if k in MAIN_SETTINGS})
            why = f"The settings run {run_id} trains with; they can be changed once it ends."
        elif self._form_before is not None:
            preset, values = self._form_before
            self._form_before = None
            blocked = self.preset.blockSignals(True)
            self.preset.setCurrentText(preset)
            self.preset.blockSignals(blocked)
            self.form.set_values(values)
            why = ""
        else:
            return
        for widget in (self.form, self.preset):
            widget.setEnabled(run is None)
            widget.setToolTip(why)

    # ------------------------------------------------------------------ showing

    def _project_changed(self) -> None:
        if self.elsewhere is not None:  # a run of the project shown before
            self.elsewhere = None
            self.timer.stop()
            self.bar.hide()
            self.eta.setText("")
        if not self._training_here():
            self._show_run(None)
        project = self.state.project
        job = self.jobs.running_on(TRAIN.name, project.root if project is not None else None)
        if job is not None and self.job is None:
            self._attach(job)
        self.reload()

    def _training_here(self) -> bool:
        project = self.state.project
        return self.job is not None and project is not None and \
            self.job_project is not None and self.job_project.resolve() == project.root.resolve()

    def _live(self) -> bool:
        """Whether the chart follows a run that trains now (here or elsewhere)."""
        return self._training_here() or self.elsewhere is not None

    def reload(self) -> None:
        project = self.state.project
        runs = [] if project is None else project.runs(RUN_KIND)
        self.runs.show_runs(project, runs)
        self._look_elsewhere(project, runs)
        self._pin_settings()
        self._explain_readiness()
        self._update_run_buttons()

    def _look_elsewhere(self, project: Any, runs: list[Any]) -> None:
        """A run of the project that another process trains now (a command line, Personalize):
        follow it; when it ends, say how."""
        was = self.elsewhere
        self.elsewhere = None
        if project is not None and self.job is None:
            for run in runs:
                owner = run_owner(project, run.id) if run.status == "running" else None
                if owner is not None:
                    self.elsewhere = (run.id, owner)
                    break
        if self.elsewhere is not None and (was is None or was[0] != self.elsewhere[0]):
            self._show_run(self.elsewhere[0])
            self.bar.setRange(0, 0)
            self.bar.show()
            self.timer.start()
        elif self.elsewhere is None and was is not None:
            self.follow()  # its last lines
            self.timer.stop()
            self.bar.hide()
            self.eta.setText("")
            ended = next((r for r in runs if r.id == was[0]), None)
            self.status.setText(
                f"Run {was[0]} trained elsewhere is gone." if ended is None else
                f"Run {was[0]} stopped: the process that trained it ended without saying how. "
                "Select it below and press Resume run to go on." if ended.status == "running"
                else f"Run {was[0]} trained elsewhere is {ended.status}.")
        if self.elsewhere is not None:
            run_id, owner = self.elsewhere
            if project is not None and self.jobs.running_on("personalize", project.root):
                self.status.setText(f"Run {run_id} is training as part of Personalize. This "
                                    "page follows it; Personalize's Cancel stops it.")
            else:
                self.status.setText(f"Run {run_id} is training elsewhere ({owner}). This "
                                    "page follows it; it can be stopped there.")

    def _explain_readiness(self) -> None:
        project = self.state.project
        problem = ""
        if project is None:
            problem = "Open a project first."
        elif self.job is not None:
            problem = "A training run is going (cancel it to start another)."
        elif self.elsewhere is not None:
            problem = f"Run {self.elsewhere[0]} is training now: wait for it to end."
        elif not any(i.review_state in ("auto-kept", "accepted")
                     for i in project.dataset_items()):
            problem = "Build a dataset first (Dataset step): training learns from its pictures."
        self.start_button.setEnabled(not problem)
        self.start_button.setToolTip(problem)
        if not self._live() and not self.status.text().startswith(("Done", "Cancel", "Run ")):
            self.status.setText(problem or "Ready to train.")

    def _update_run_buttons(self) -> None:
        chosen = self._selected()
        self.resume_button.setEnabled(chosen is not None and chosen.status != "finished"
                                      and self.job is None and self.elsewhere is None)
        self.delete_button.setEnabled(chosen is not None and not (
            self._live() and chosen.id == self.follow_run))

    def _selected(self) -> Any:
        run_id = self.runs.selected_run()
        return next((r for r in self.runs.runs if r.id == run_id), None)

    def _run_selected(self, run_id: int | None) -> None:
        self._update_run_buttons()
        if run_id is not None and not self._live():
            self._show_run(run_id)

    def _show_run(self, run_id: int | None) -> None:
        """Show a run's whole history (chart and samples)."""
        self.chart.clear()
        self.samples.clear()
        self._sample_keys.clear()
        self._records = []
        self.follow_run = run_id
        project = self.state.project
        if run_id is None or project is None:
            self._tail = None
            return
        self._tail = MetricsTail(project.root / "runs" / str(run_id) / "metrics.jsonl")
        self._pin_settings()
        self.follow()

    # ------------------------------------------------------------------ following a run

    def follow(self) -> None:
        """One look at the followed run: new metric lines to the chart, new samples to the
        strip, the time left."""
        project = self.state.project
        if project is None:
            return
        if self.elsewhere is not None and run_owner(project, self.elsewhere[0]) is None:
            self.reload()  # its trainer let go of it (ended, or died without a word)
            return
        if self.follow_run is None and self._training_here():
            newer = [r.id for r in project.runs(RUN_KIND) if r.id > self._runs_before]
            if not newer:
                return
            self._show_run(newer[0])
            return
        if self._tail is None:
            return
        records = self._tail.read_new()
        if not records:
            return
        self._records += records
        self.chart.add_records(records)
        for record in records:
            if isinstance(record.get("sample"), str):
                self._add_sample(project.root / "runs" / str(self.follow_run), record)
        self._show_eta()
        if self._live():
            self.runs.refresh_facts(project, self.follow_run)

    def _add_sample(self, run_dir: Path, record: dict[str, Any]) -> None:
        path = run_dir / record["sample"]
        item = QListWidgetItem(f"step {record.get('step', '?')}")
        item.setToolTip(str(record.get("prompt", "")))
        self.samples.addItem(item)
        self.samples.scrollToItem(item)
        key = ("train-sample", str(path), SAMPLE_SIDE)
        self._sample_keys[key] = item
        image = self.thumbs.request(key, render_cutout, str(path), SAMPLE_SIDE)
        if image is not None:
            self._thumb_ready(key, image)

    def _thumb_ready(self, key: object, image: object) -> None:
        item = self._sample_keys.pop(key, None)
        if item is not None:
            item.setIcon(QIcon(QPixmap.fromImage(image)))

    def _show_eta(self) -> None:
        if not self._live():
            self.eta.setText("")
            return
        step, total = self._step
        if not total:
            run = next((r for r in self.runs.runs if r.id == self.follow_run), None)
            total = (run_total_steps(run) if run is not None else None) or 0
            step = self.chart.last_step
        seconds = self._job_eta if self._training_here() and self._job_eta is not None else \
            history_eta(self._records, step, total)
        self.eta.setText(eta_text(seconds) if total else "")

    # ------------------------------------------------------------------ jobs

    def start(self) -> None:
        self._submit(None)

    def resume_selected(self) -> None:
        chosen = self._selected()
        if chosen is not None:
            self._submit(chosen.id)

    def _submit(self, run_id: int | None) -> None:
        project = self.state.project
        if project is None or self.job is not None or self.elsewhere is not None:
            return
        try:
            fields: dict[str, Any] = {"run_id": run_id} if run_id else {"config": self.config()}
            params = self.state.job_params(TRAIN, **fields)
            self.jobs.submit(TRAIN, params)  # the page shows it from job_added
        except MyCanvasError as exc:
            self.status.setText(for_window(str(exc)))

    def _job_added(self, job: JobState) -> None:
        """A job queued in this window (here, by the resume bar, ...): a train job on this
        page's project is this page's to show."""
        project = self.state.project
        if self.job is None and job.works_on(TRAIN.name, project.root if project else None):
            self._attach(job)

    def _attach(self, job: JobState) -> None:
        """Show `job` (a train job on this project that has not ended) until it ends."""
        project = self.state.project
        assert project is not None
        run_id = job.params.get("run_id")
        self.job, self.job_project, self.job_state = job.job_id, job.project, job
        self.elsewhere = None
        self._resuming, self._job_eta, self._step = run_id, None, (0, 0)
        self._runs_before = max((r.id for r in project.runs()), default=0)
        self._show_run(run_id)  # a resume shows its history now; a new run once it exists
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.bar.setRange(0, 0)
        self.bar.show()
        self.status.setText(f"Resuming run {run_id}…" if run_id else
                            "Starting: loading the models and caching the dataset…")
        self.job_bindings.on(job, "line", lambda _line: self._progress(job))
        self.job_bindings.on(job, "phase", lambda _phase: job.ended and self._ended(job))
        if job.line:
            self._progress(job)
        self._show_eta()
        self._explain_readiness()
        self._update_run_buttons()
        self.timer.start()

    def cancel(self) -> None:
        if self.job is not None:
            self.jobs.cancel(self.job)
            self.status.setText("Cancelling: the run saves where it is, so it can resume…")

    def _progress(self, job: JobState) -> None:
        self._job_eta, self._step = job.eta_seconds, (job.step, job.total)
        if not self._training_here():
            return
        self.bar.setRange(0, max(1, job.total))
        self.bar.setValue(job.step)
        self.status.setText(f"Training run {self.follow_run or '…'}: {job.message}")
        self.follow()
        self._show_eta()

    def _ended(self, job: JobState) -> None:
        here = self._training_here()
        if here:
            self.follow()  # the last lines, before the timer stops
        self.job_bindings.clear()
        self.job = self.job_project = self.job_state = None
        self.timer.stop()
        self.bar.hide()
        self.cancel_button.setEnabled(False)
        self.eta.setText("")
        event = job.end
        if here:
            if isinstance(event, JobFinished):
                self.status.setText(f"Done. {event.result.summary()}")
            elif isinstance(event, JobFailed):
                self.status.setText(failure_text(event.reason, event.fields))
            else:
                self.status.setText("Cancelled. The run saved where it stopped: select "
                                    "it below and press Resume run to go on.")
        self.reload()

    def delete_selected(self) -> None:
        chosen = self._selected()
        project = self.state.project
        if chosen is None or project is None or not self.confirm_delete(chosen):
            return
        try:
            delete_run(project, chosen.id)
        except MyCanvasError as exc:
            self.status.setText(str(exc))
            return
        if self.follow_run == chosen.id:
            self._show_run(None)
        self.state.touch("runs", "generations")

    def confirm_delete(self, run: Any) -> bool:
        """Asked before a run is deleted (tests answer it)."""
        return ask(self, "Delete run",
                   f"Delete run {run.id} ({run.status}) with its checkpoints, samples and "
                   "learned concepts? Pictures made from it stay in the gallery.")

    def teardown(self) -> None:
        self.timer.stop()
        self.bindings.clear()
        self.job_bindings.clear()
